/**
 * A read-only GitHub deploy key managed as code: the key pair is generated as a Pulumi secret
 * (`@pulumi/tls`) or supplied by the operator as a secret, and its public half is registered on
 * the repository. Hosts receive the private half only on stdin (see HostDeployment's
 * `fetch-key` command) and use it only to fetch.
 */
import * as github from "@pulumi/github";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { normalizePrivateKey } from "./config";

export interface GitHubDeployKeyArgs {
  /** Repository name (the provider's owner is the owner). */
  repository: string;
  /** Title of the key on GitHub, e.g. `touchdeploy prod shop`. */
  title: string;
  /**
   * The private key to register (OpenSSH or PEM, a secret). Default: a new ED25519 key pair,
   * generated and kept in the (encrypted) state.
   */
  privateKey?: pulumi.Input<string>;
}

const OPENSSH_KEY =
  /^-----BEGIN OPENSSH PRIVATE KEY-----\n[\s\S]+\n-----END OPENSSH PRIVATE KEY-----\s*$/;
const PEM_KEY =
  /^-----BEGIN (RSA |EC )?PRIVATE KEY-----\n[\s\S]+\n-----END (RSA |EC )?PRIVATE KEY-----\s*$/;

/** The format of a private key; throws, without echoing the key, when it is neither. */
export function privateKeyFormat(key: string): "openssh" | "pem" {
  const text = key.trim() + "\n";
  if (OPENSSH_KEY.test(text)) return "openssh";
  if (PEM_KEY.test(text)) return "pem";
  throw new Error(
    "touchdeploy:deployPrivateKey is not an OpenSSH or PEM private key " +
      "(expected -----BEGIN OPENSSH PRIVATE KEY----- ...; generate one with ssh-keygen -t ed25519)",
  );
}

export class GitHubDeployKey extends pulumi.ComponentResource {
  /** The private half (secret), to install on the hosts. */
  readonly privateKey: pulumi.Output<string>;
  /** The public half, as registered on GitHub. */
  readonly publicKey: pulumi.Output<string>;
  /** The key registered on the repository (read-only). */
  readonly deployKey: github.RepositoryDeployKey;

  constructor(name: string, args: GitHubDeployKeyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("touchdeploy:index:GitHubDeployKey", name, {}, opts);

    if (args.privateKey === undefined) {
      const generated = new tls.PrivateKey(
        `${name}-key`,
        { algorithm: "ED25519" },
        { parent: this },
      );
      this.privateKey = pulumi.secret(generated.privateKeyOpenssh);
      this.publicKey = generated.publicKeyOpenssh;
    } else {
      // OpenSSH refuses a key without its final newline, which `pulumi config set --secret < file`
      // strips: normalised here too, for callers that pass a key of their own.
      const provided = pulumi.secret(pulumi.output(args.privateKey).apply(normalizePrivateKey));
      // Checked before it goes anywhere: a bad key would otherwise surface as an opaque
      // provider error, or worse, as a failed fetch on every host.
      const format = provided.apply((key) => {
        try {
          return privateKeyFormat(key);
        } catch (err) {
          throw new pulumi.ResourceError((err as Error).message, this);
        }
      });
      this.privateKey = provided;
      const keyIf = (wanted: "openssh" | "pem") =>
        pulumi.all([provided, format]).apply(([key, f]) => (f === wanted ? key : undefined));
      this.publicKey = tls.getPublicKeyOutput(
        { privateKeyOpenssh: keyIf("openssh"), privateKeyPem: keyIf("pem") },
        { parent: this },
      ).publicKeyOpenssh;
    }

    this.deployKey = new github.RepositoryDeployKey(
      `${name}-deploy-key`,
      {
        repository: args.repository,
        title: args.title,
        key: this.publicKey.apply((k) => k.trim()),
        readOnly: true,
      },
      // A new key is registered before the old one is removed: fetches never lose access.
      { parent: this, deleteBeforeReplace: false },
    );

    this.registerOutputs({ publicKey: this.publicKey });
  }
}
