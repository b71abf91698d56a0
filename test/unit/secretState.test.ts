// Where the secrets go in Pulumi's state. The program marks every secret it declares
// (pulumi.secret / requireSecret); what keeps it encrypted in the state is the provider's own
// rule for its outputs, which this test encodes for the resources that carry a secret.
//
// pulumi-command 1.2.1 is built on pulumi-go-provider v1.3.0 (provider/go.mod). Its outputs embed
// its inputs (provider/pkg/provider/local/command.go and remote/command.go: `CommandOutputs`
// embeds `CommandInputs`), so `stdin` and `connection` are outputs too, and it declares no
// secret flow of its own (no Secret()/AlwaysSecret()/NeverSecret() under provider/pkg). Then
// pulumi-go-provider v1.3.0 infer/resource.go `ensureDefaultSecrets` makes each output depend on
// the input of the same name, and `markSecret` returns it secret when that input contains a
// secret (its shortcut for an output "equal" to its input compares the Secret bit too:
// internal/putil/putil.go `DeepEquals`). The engine's own fallback, `annotateSecrets`
// (pulumi v3.248.0 sdk/go/common/resource/plugin/provider_plugin.go), applies only to providers
// that do not accept secrets; go-provider ones do. So a secret is encrypted in the state exactly
// when it travels in a command input that is secret as a whole, which is what is asserted here.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import {
  isSecret,
  plaintextOccurrences,
  ProgramRun,
  REMOTE_CMD,
  runProgram,
} from "../support/pulumiProgram";

const SHA = "0123456789abcdef0123456789abcdef01234567";
const KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOhMwkhduvpYBsb1FQUL5gKNM9Iiy376AI435kGEPwua";
const DJANGO_SECRET = "tdtest-state-secret-5c1d9e";
const PLAIN_ENV = "tdtest-plain-env-3b07f2";
const SSH_MATERIAL = "tdtest-ssh-material-77aa01";
const PRIVATE_KEY = `-----BEGIN OPENSSH PRIVATE KEY-----\n${SSH_MATERIAL}\n-----END OPENSSH PRIVATE KEY-----`;

/** Every top-level input (as `resource.key`) holding a secret anywhere inside it. */
function secretInputs(run: ProgramRun): string[] {
  const holds = (v: unknown): boolean =>
    isSecret(v) || (typeof v === "object" && v !== null && Object.values(v).some(holds));
  return run.resources
    .flatMap((r) =>
      Object.entries(r.inputs)
        .filter(([, v]) => holds(v))
        .map(([k, v]) => ({ where: `${r.name}.${k}`, type: r.type, whole: isSecret(v) })),
    )
    .map(({ where, type, whole }) => `${where} ${type} ${whole ? "secret" : "PART"}`)
    .sort();
}

describe("secrets in the state: only in command inputs that are secret as a whole", () => {
  let run: ProgramRun;
  before(async () => {
    run = await runProgram({
      config: {
        appName: "shop",
        repoUrl: "https://example.test/shop.git",
        commit: SHA,
        hosts: [{ name: "web1", ssh: "deploy@10.0.0.11", hostKey: `ssh-ed25519 ${KEY}` }],
        sshPrivateKey: PRIVATE_KEY,
        secretEnv: { DJANGO_SECRET_KEY: DJANGO_SECRET },
        env: { DJANGO_LOG_LEVEL: PLAIN_ENV },
      },
      secretKeys: ["sshPrivateKey", "secretEnv"],
    });
  });

  it("GIVEN an ssh host and a secret env THEN the secret inputs are exactly each command's connection and the release's stdin, each secret as a whole", () => {
    const cmd = REMOTE_CMD;
    assert.deepEqual(secretInputs(run), [
      `web1-fetch.connection ${cmd} secret`,
      `web1-release.connection ${cmd} secret`,
      `web1-release.stdin ${cmd} secret`,
      `web1-setup.connection ${cmd} secret`,
      `web1-user.connection ${cmd} secret`,
    ]);
  });

  it("THEN neither value is anywhere in plaintext: no other input, no stack output", () => {
    assert.deepEqual(plaintextOccurrences(run, DJANGO_SECRET), []);
    assert.deepEqual(plaintextOccurrences(run, SSH_MATERIAL), []);
  });

  // What someone holding the state (but not its secrets provider's key) reads, for the README's
  // "Security" section: the occurrences in plaintext, exactly.
  it("THEN in plaintext: the host's address and ssh user, the root, the commit, the repository URL and the host script's text; the env travels with the secret, encrypted", () => {
    assert.deepEqual(plaintextOccurrences(run, "10.0.0.11"), [
      "web1-docker inputs.host",
      "stack outputs.hosts.web1.url",
    ]);
    assert.deepEqual(plaintextOccurrences(run, "deploy@"), ["web1-docker inputs.host"]);
    assert.deepEqual(plaintextOccurrences(run, SHA), [
      "web1-fetch inputs.create",
      "web1-fetch inputs.triggers.0",
      "web1-release inputs.create",
      "web1-release inputs.triggers.0",
      "stack outputs.commit",
      "stack outputs.hosts.web1.commit",
    ]);
    const holding = (needle: string) => [
      ...new Set(plaintextOccurrences(run, needle).map((where) => where.split(" ")[0])),
    ];
    assert.deepEqual(holding("/srv/touchdeploy/shop"), [
      "web1-setup",
      "web1-fetch",
      "web1-container",
      "web1-release",
    ]);
    assert.deepEqual(plaintextOccurrences(run, "example.test/shop.git"), [
      "web1-fetch inputs.create",
    ]);
    assert.deepEqual(plaintextOccurrences(run, 'main "$@"'), [
      "web1-setup inputs.stdin",
      "web1-fetch inputs.stdin",
    ]);
    // With a secretEnv, the plain env and the secrets' names are inside the secret stdin only.
    assert.deepEqual(plaintextOccurrences(run, PLAIN_ENV), []);
    assert.deepEqual(plaintextOccurrences(run, "DJANGO_SECRET_KEY"), []);
    assert.deepEqual(
      plaintextOccurrences(run, KEY),
      [],
      "the host key is in the secret connection",
    );
  });
});
