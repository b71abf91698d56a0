/**
 * One host of an app: its setup (the app root), runtime image, long-lived container, and the two
 * commands keyed on the commit that fetch it and release it. A new commit replaces only those
 * two commands; the container's inputs never mention the commit.
 *
 * What replaces a command (pulumi-command v1.2.1): only `triggers`. Its inputs declare
 * `provider:"replaceOnChanges"` on `triggers` alone (provider/pkg/provider/common/inputs.go),
 * and pulumi-go-provider v1.3.0's default diff (infer/resource.go `diff`, via
 * `derivedResourceController.Diff`) replaces only on such fields when the resource implements
 * Update, as both Command kinds do (local/ and remote/commandController.go): a change of
 * `create`, `delete`, `stdin` or `connection` is an update (it runs `create` again). So the
 * setup and fetch-key commands, which have no triggers, are never replaced: their `delete`
 * (destroy the app root, remove the key) runs only when they are really deleted, i.e. on
 * `pulumi destroy` or when the host leaves the stack — never after a replacement's new create.
 */
import * as command from "@pulumi/command";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { ReleaseConfig } from "./config";
import { containerArgs } from "./containerArgs";
import { envNameProblem, envSizeProblem, envValueText } from "./config/schema";
import { RULES, UNMANAGED_FINGERPRINT } from "./contract";
import {
  destroyOptions,
  encodePayload,
  fetchOptions,
  containerUserCommand,
  installFetchKeyCommand,
  parseContainerUser,
  payloadRecords,
  phaseCommand,
  releaseOptions,
  releaseStdin,
  removeFetchKeyCommand,
  setupOptions,
} from "./hostScript";
import { hostKeyProblems } from "./hostSpec";
import {
  dockerSshOpts,
  knownHostsLine,
  OperatorSshFiles,
  operatorSshFiles,
  writeOperatorSshFiles,
} from "./operatorSsh";

/** The runtime image of a host: pulled by name, or built from a context directory. */
export type RuntimeImageSource =
  | { kind: "pull"; name: pulumi.Input<string> }
  | {
      kind: "build";
      /** Image name and tag to build, e.g. `touchdeploy/shop-runtime:0123abcd`. */
      name: pulumi.Input<string>;
      /** Build context, relative to the project directory (the state stays portable). */
      context: string;
      buildArgs: pulumi.Input<Record<string, pulumi.Input<string>>>;
    };

/**
 * Where a host's commands run and its Docker daemon lives; address and user may be Outputs. An
 * IPv6 address is given without brackets (the commands join it with the port themselves).
 */
export type HostTargetInput =
  | { kind: "local" }
  | { kind: "ssh"; user: pulumi.Input<string>; address: pulumi.Input<string>; port: number };

/** One host: how to reach it and where the app lives on it. */
export interface HostArgs {
  /** The local machine, or SSH (address and user may come from another resource). */
  target: HostTargetInput;
  /** `TYPE BASE64` (ed25519 or ecdsa) host key of an ssh target, verified by every connection. */
  hostKey?: pulumi.Input<string>;
  /** Absolute app root on the host: releases/, current, the reload trigger. */
  root: string;
  /** Port published on the host. */
  port: number;
  /** Address the port is published on, e.g. `0.0.0.0`. */
  bindAddress: string;
}

/** A private key for fetching (a secret) and the host keys of the git server. */
export interface FetchKey {
  privateKey: pulumi.Input<string>;
  knownHosts: readonly string[];
  /**
   * What must exist before hosts fetch with the key: the key's registration on the git server
   * (a `github.RepositoryDeployKey`), so the first fetch and every rotation never race it.
   */
  registeredBy?: pulumi.Input<pulumi.Resource>[];
}

/** What every host fetches: the URL, the commit, and the key if the repository needs one. */
export interface SourceArgs {
  repoUrl: string;
  /** The commit to deploy, 40 hex. */
  commit: pulumi.Input<string>;
  /** Default: none (a public repository, or one the host can already read). */
  fetchKey?: FetchKey;
}

export interface HostDeploymentArgs {
  /** The app's name; the container is named `<appName>-<host name>`. */
  appName: string;
  host: HostArgs;
  /** Private key for ssh targets (a secret). Required for ssh. */
  sshPrivateKey?: pulumi.Input<string>;
  source: SourceArgs;
  /** What the release does, passed through whole to the host script's options. */
  release: ReleaseConfig;
  image: RuntimeImageSource;
  /**
   * Dependency fingerprint the image is built for, or `unmanaged`. A container input: when it
   * changes, the container is replaced (a container deploy).
   */
  fingerprint: pulumi.Input<string>;
  /** Text of host/touchdeploy.sh, sent on stdin. */
  hostScript: string;
  /**
   * Where the Docker provider's key and known_hosts files for an ssh host go on this machine
   * (see operatorSsh.ts). Required for ssh.
   */
  operatorSshDir?: string;
  /** Resources this host's container and release wait for: the previous rollout batch's releases. */
  after?: pulumi.Input<pulumi.Resource>[];
  /**
   * The app's secret environment by name (a secret), sent only on the release command's stdin,
   * which is then a secret as a whole. Default: none.
   */
  secretEnv?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /**
   * Whether this host's release runs `release.releaseCommand`. Default: true. AppDeployment
   * sets it on the rollout's first host only for `releaseCommand.on` "first-host".
   */
  runsReleaseCommand?: boolean;
  /**
   * Resources this host's release (and not its container) waits for besides `after`: the
   * release of the host that runs the release command for the whole rollout.
   */
  releaseAfter?: pulumi.Input<pulumi.Resource>[];
}

/** Options every command resource gets: a local or a remote command with the same shape. */
interface CommandSpec {
  create: pulumi.Input<string>;
  delete?: pulumi.Input<string>;
  stdin?: pulumi.Input<string>;
  triggers?: pulumi.Input<unknown>[];
  /** `none` for commands that may see secrets. */
  logging?: "stdoutAndStderr" | "none";
}

/** An address as the host part of a URL: an IPv6 address in brackets. */
function urlHost(address: pulumi.Input<string>): pulumi.Output<string> {
  return pulumi.output(address).apply((a) => (a.includes(":") ? `[${a}]` : a));
}

/** The URL where a host serves the app, as seen from outside. */
export function publicUrl(
  target: HostTargetInput,
  bindAddress: string,
  port: number,
): pulumi.Output<string> {
  const address: pulumi.Input<string> =
    bindAddress !== "0.0.0.0"
      ? bindAddress === "127.0.0.1"
        ? "localhost"
        : bindAddress
      : target.kind === "local"
        ? "localhost"
        : urlHost(target.address);
  return pulumi.interpolate`http://${address}:${port}/`;
}

export class HostDeployment extends pulumi.ComponentResource {
  /** The Docker provider for this host's daemon. */
  readonly dockerProvider: docker.Provider;
  /** Creates the app root (idempotent); its delete destroys what touchdeploy made there. */
  readonly setup: pulumi.CustomResource;
  /** Reports the container's user (the deploy user's uid:gid, 10001:10001 for root). */
  readonly user: command.local.Command | command.remote.Command;
  /** The runtime image on this host's daemon. */
  readonly image: docker.RemoteImage;
  /** Installs the fetch key from stdin, when there is one (updated when the key rotates). */
  readonly fetchKey?: pulumi.CustomResource;
  /** Fetches the commit into releases/<sha> (replaced per commit). */
  readonly fetch: pulumi.CustomResource;
  /** The long-lived container; its inputs do not depend on the commit. */
  readonly container: docker.Container;
  /** Switches current, reloads once, waits for health (replaced per commit and per container). */
  readonly release: pulumi.CustomResource;
  /** The container's name. */
  readonly containerName: string;
  /** The commit this host serves once the release succeeded. */
  readonly commit: pulumi.Output<string>;
  /** Where the app is served. */
  readonly url: pulumi.Output<string>;

  constructor(name: string, args: HostDeploymentArgs, opts?: pulumi.ComponentResourceOptions) {
    super("touchdeploy:index:HostDeployment", name, {}, opts);
    const { host, source, release } = args;
    const target = host.target;
    if (target.kind === "ssh" && (!host.hostKey || !args.sshPrivateKey || !args.operatorSshDir)) {
      throw new pulumi.ResourceError(
        `host ${JSON.stringify(name)}: an ssh target needs \`host.hostKey\`, \`sshPrivateKey\` and \`operatorSshDir\``,
        this,
      );
    }
    const after = args.after ?? [];
    const script = args.hostScript;
    const payloadProblem = plainPayloadProblem(release);
    if (payloadProblem) {
      throw new pulumi.ResourceError(`host ${JSON.stringify(name)}: ${payloadProblem}`, this);
    }

    // A host key given as an Output is checked once known (the config checks its own at preview).
    const hostKey =
      host.hostKey === undefined
        ? undefined
        : pulumi.output(host.hostKey).apply((key) => {
            const problems = hostKeyProblems(key);
            if (problems.length > 0) {
              throw new pulumi.ResourceError(
                `host ${JSON.stringify(name)}: hostKey ${problems.join("; ")}`,
                this,
              );
            }
            return key.trim().split(/\s+/).slice(0, 2).join(" ");
          });

    const runOnHost = (
      role: string,
      spec: CommandSpec,
      dependsOn: pulumi.Input<pulumi.Resource>[],
      extra: pulumi.CustomResourceOptions = {},
    ): command.local.Command | command.remote.Command => {
      const resourceOpts: pulumi.CustomResourceOptions = { parent: this, dependsOn, ...extra };
      if (target.kind === "local") {
        return new command.local.Command(
          `${name}-${role}`,
          { ...spec, addPreviousOutputInEnv: false },
          resourceOpts,
        );
      }
      return new command.remote.Command(
        `${name}-${role}`,
        {
          ...spec,
          addPreviousOutputInEnv: false,
          connection: {
            host: target.address,
            port: target.port,
            user: target.user,
            privateKey: args.sshPrivateKey,
            hostKey,
          },
        },
        resourceOpts,
      );
    };

    this.containerName = `${args.appName}-${name}`;
    this.url = publicUrl(target, host.bindAddress, host.port);

    this.dockerProvider = new docker.Provider(
      `${name}-docker`,
      this.dockerProviderArgs(args, hostKey),
      {
        parent: this,
      },
    );

    // The app root: created once, updated in place (never replaced, see the header); the
    // container needs it before it starts. `pulumi destroy` runs its delete last (everything
    // depends on it): the host script's `destroy` removes what touchdeploy made under the root
    // and keeps shared/ and state/. Renamed from `<host>-app-root`: the alias keeps it the same
    // resource, so the rename is an update, not a create plus a delete. A new state dir is an
    // update too (setup runs again and creates it) before the container that mounts it.
    this.setup = runOnHost(
      "setup",
      {
        create: phaseCommand("setup", setupOptions(host.root, release)),
        delete: phaseCommand("destroy", destroyOptions(host.root)),
        stdin: script,
      },
      [],
      { aliases: [{ name: `${name}-app-root` }] },
    );

    // The container runs as the user setup makes the app's files readable by (COORD.md): the
    // deploy user's uid:gid, or 10001:10001 for root. A ForceNew input: set once per host.
    this.user = runOnHost("user", { create: containerUserCommand() }, []);
    const containerUser = this.user.stdout.apply((stdout) => {
      const user = parseContainerUser(stdout ?? "");
      if (user === undefined) {
        throw new pulumi.ResourceError(
          `host ${JSON.stringify(name)}: the user command printed ${JSON.stringify(stdout)}, not "touchdeploy: user UID:GID"`,
          this,
        );
      }
      return user;
    });

    this.image =
      args.image.kind === "pull"
        ? new docker.RemoteImage(
            `${name}-image`,
            { name: args.image.name, keepLocally: true },
            { parent: this, provider: this.dockerProvider },
          )
        : new docker.RemoteImage(
            `${name}-image`,
            {
              name: args.image.name,
              keepLocally: true,
              build: {
                context: args.image.context,
                dockerfile: "Dockerfile",
                buildArgs: args.image.buildArgs,
              },
            },
            { parent: this, provider: this.dockerProvider },
          );

    // The fetch key: its own command, so rotating the key rewrites the file and nothing else
    // (fetch and release name only its path). Secret on stdin, and no logs at all. Its delete
    // removes the key file for sure (also when the stack stops using a deploy key).
    const registered = source.fetchKey?.registeredBy ?? [];
    if (source.fetchKey) {
      this.fetchKey = runOnHost(
        "fetch-key",
        {
          create: installFetchKeyCommand(host.root, source.fetchKey.knownHosts),
          delete: removeFetchKeyCommand(host.root),
          stdin: pulumi.secret(source.fetchKey.privateKey),
          logging: "none",
        },
        [this.setup, ...registered],
      );
    }

    // Fetch + extract: replaced for each commit. Runs before the container so that a container
    // deploy (new dependencies) finds the release ready when the new container starts.
    this.fetch = runOnHost(
      "fetch",
      {
        create: pulumi
          .output(source.commit)
          .apply((commit) =>
            phaseCommand(
              "fetch",
              fetchOptions(
                host.root,
                { repoUrl: source.repoUrl, commit },
                source.fetchKey !== undefined,
              ),
            ),
          ),
        stdin: script,
        triggers: [source.commit],
      },
      this.fetchKey ? [this.setup, this.fetchKey, ...registered] : [this.setup],
    );

    this.container = new docker.Container(
      `${name}-container`,
      containerArgs({
        appName: args.appName,
        hostName: name,
        host,
        release,
        // The image id, not its name: the state holds the id (pulumi-docker#325).
        image: this.image.imageId,
        fingerprint: args.fingerprint,
        user: containerUser,
      }),
      {
        parent: this,
        provider: this.dockerProvider,
        // A fixed name and host port cannot exist twice: stop the old one first.
        deleteBeforeReplace: true,
        dependsOn: [this.setup, this.fetch, ...after],
      },
    );

    // The container's fingerprint as the container itself declares it (also right under
    // `pulumi up --target` of the release alone). With an unmanaged image there is nothing to
    // guard, so the host script is not asked to (it would warn on every deploy).
    const containerFingerprint = this.container.envs.apply((list) => {
      const fingerprint = (list ?? [])
        .find((e) => e.startsWith("TOUCHDEPLOY_FINGERPRINT="))
        ?.slice("TOUCHDEPLOY_FINGERPRINT=".length);
      return fingerprint === UNMANAGED_FINGERPRINT ? undefined : fingerprint;
    });
    // The release's stdin: the script, then the env, secrets and processes (the payload). A
    // change of any of them changes only this stdin: pulumi-command 1.2.1 replaces a command
    // only for `triggers` (see the header) and runs `create` again on an update
    // (local/commandController.go `Update`: "Use Create command if Update is unspecified"), so
    // an env or secret change is one more release of the same commit on the same container.
    const runsReleaseCommand = args.runsReleaseCommand ?? true;
    const stdin: pulumi.Input<string> =
      args.secretEnv === undefined
        ? releaseStdin(script, encodePayload(payloadRecords(release, {})))
        : pulumi.secret(
            pulumi.output(args.secretEnv).apply((secrets) => {
              const problem = secretEnvProblem(secrets, release.env);
              if (problem) {
                throw new pulumi.ResourceError(`host ${JSON.stringify(name)}: ${problem}`, this);
              }
              return releaseStdin(script, encodePayload(payloadRecords(release, secrets)));
            }),
          );
    this.release = runOnHost(
      "release",
      {
        create: pulumi.all([source.commit, containerFingerprint]).apply(([commit, fingerprint]) =>
          phaseCommand(
            "release",
            releaseOptions(host, release, commit, fingerprint, {
              container: this.containerName,
              runsReleaseCommand,
            }),
          ),
        ),
        stdin,
        // A new commit, or a new container, makes a new release.
        triggers: [source.commit, this.container.id],
      },
      [this.fetch, this.container, ...after, ...(args.releaseAfter ?? [])],
    );

    this.commit = pulumi.all([source.commit, this.release.urn]).apply(([commit]) => commit);
    this.registerOutputs({
      commit: this.commit,
      url: this.url,
      containerName: this.containerName,
    });
  }

  /** The local daemon, or the host's daemon over SSH with the stack's own key and host key. */
  private dockerProviderArgs(
    args: HostDeploymentArgs,
    hostKey: pulumi.Output<string> | undefined,
  ): docker.ProviderArgs {
    const target = args.host.target;
    if (target.kind === "local" || !hostKey || !args.operatorSshDir) {
      return {};
    }
    const files: OperatorSshFiles = operatorSshFiles(args.operatorSshDir);
    // The options name the files only once they are written (also in preview: the provider
    // connects then too).
    const sshOpts = pulumi
      .all([pulumi.secret(args.sshPrivateKey ?? ""), target.address, hostKey])
      .apply(([privateKey, address, key]) => {
        writeOperatorSshFiles(files, privateKey, knownHostsLine(address, target.port, key));
        return dockerSshOpts(files);
      });
    return {
      host: pulumi.interpolate`ssh://${target.user}@${urlHost(target.address)}:${target.port}`,
      // The paths are not secret; the key never leaves its file.
      sshOpts: pulumi.unsecret(sshOpts),
    };
  }
}

/**
 * The first problem with the payload's plain values (the env and the processes), or undefined.
 * The config checks them at preview; this holds for a program that builds the args itself.
 */
function plainPayloadProblem(release: ReleaseConfig): string | undefined {
  for (const [key, value] of Object.entries(release.env)) {
    const why = envNameProblem(key);
    if (why) return `release.env: ${JSON.stringify(key)} ${why}`;
    const text = envValueText(value);
    if ("problem" in text) return `release.env.${key}: ${JSON.stringify(value)} ${text.problem}`;
    const tooLong = envSizeProblem(key, value);
    if (tooLong) return `release.env.${key}: the value ${tooLong}`;
  }
  const names = new Set<string>();
  for (const p of release.processes) {
    if (!RULES.processName.test(p.name) || RULES.reservedProcessNames.includes(p.name)) {
      return `release.processes: ${JSON.stringify(p.name)} is not a process name`;
    }
    if (names.has(p.name)) return `release.processes: ${JSON.stringify(p.name)} is listed twice`;
    names.add(p.name);
    if (p.command.trim() === "" || RULES.control.test(p.command)) {
      return `release.processes: the command of ${JSON.stringify(p.name)} is empty or has control characters`;
    }
  }
  return undefined;
}

/** The first problem with the secret environment (never showing a value), or undefined. */
function secretEnvProblem(
  secrets: Record<string, string>,
  env: Record<string, string>,
): string | undefined {
  for (const [key, value] of Object.entries(secrets)) {
    const why = envNameProblem(key);
    if (why) return `secretEnv: ${JSON.stringify(key)} ${why}`;
    if (key in env) return `secretEnv: ${key} is also in release.env`;
    const text = envValueText(value);
    if ("problem" in text || text.text !== value) {
      return `secretEnv.${key}: the value (not shown: it is a secret) must be a string without NUL characters`;
    }
    const tooLong = envSizeProblem(key, value);
    if (tooLong) return `secretEnv.${key}: the value (not shown: it is a secret) ${tooLong}`;
  }
  return undefined;
}
