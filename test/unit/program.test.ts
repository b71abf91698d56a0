// The Pulumi program under mocks: the exact resources, inputs and ordering it declares.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { loadConfig } from "../../components/config";
import { privateKeyFormat } from "../../components/githubDeployKey";
import { localBranchHead } from "../../components/source";
import { APP_SUBDIR, TestRepo } from "../harness/git";
import {
  CONTAINER,
  dependsOn,
  IMAGE,
  LOCAL_CMD,
  plaintextOccurrences,
  REMOTE_CMD,
  PROJECT_DIR,
  isSecret,
  mockImageId,
  plain,
  ProgramRun,
  Registration,
  runProgram,
  StackConfig,
} from "../support/pulumiProgram";
import { releaseConfig } from "../support/releaseConfig";

const KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOhMwkhduvpYBsb1FQUL5gKNM9Iiy376AI435kGEPwua";
/** A host script for components built in a test: it ends with the line the payload follows. */
const SCRIPT = 'main() { echo script; exit 0; }\nmain "$@"\n';
const PRIVATE_KEY =
  "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-material\n-----END OPENSSH PRIVATE KEY-----\n";

/** A real git repository with the example app: c1, c2 (code only), c3 (dependencies). */
interface Repo {
  /** The work tree (what touchdeploy:repoPath points at). */
  dir: string;
  scratch: string;
  c1: string;
  c2: string;
  c3: string;
}

async function makeRepo(): Promise<Repo> {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "touchdeploy-unit-"));
  const test = await TestRepo.create(scratch);
  const c1 = await test.head();
  const c2 = await test.commitGreeting("Hello from c2");
  const c3 = await test.commitAptPackage("python3-yaml");
  // main's head is c2; c3 stays on a branch of its own.
  await test.git(test.work, "branch", "deps", c3);
  await test.git(test.work, "reset", "--quiet", "--hard", c2);
  return { dir: test.work, scratch, c1, c2, c3 };
}

/** requirements.txt of the example app, which every test commit keeps. */
const REQUIREMENTS = fs.readFileSync(
  path.join(PROJECT_DIR, APP_SUBDIR, "requirements.txt"),
  "utf8",
);

let repo: Repo;
/** The operator's home: the Docker provider's SSH files for ssh hosts are written under it. */
let home: string;
const realHome = process.env.HOME;
before(async () => {
  repo = await makeRepo();
  home = path.join(repo.scratch, "home");
  fs.mkdirSync(home);
  process.env.HOME = home;
});
after(() => {
  process.env.HOME = realHome;
  fs.rmSync(repo.scratch, { recursive: true, force: true });
});

/** The dev stack's shape, on the test repository. */
function devConfig(extra: StackConfig = {}): StackConfig {
  return {
    appName: "hello-wsgi",
    repoPath: repo.dir,
    appDir: APP_SUBDIR,
    hosts: ["local local port=8000 bind=127.0.0.1"],
    root: "/var/tmp/touchdeploy/hello-wsgi",
    ...extra,
  };
}

/** Three ssh hosts with keys and a private key. */
function sshConfig(extra: StackConfig = {}): StackConfig {
  return {
    appName: "shop",
    repoPath: repo.dir,
    appDir: APP_SUBDIR,
    hosts: [
      { name: "web1", ssh: "deploy@10.0.0.11", hostKey: `ssh-ed25519 ${KEY}` },
      { name: "web2", ssh: "deploy@10.0.0.12", hostKey: `ssh-ed25519 ${KEY}` },
      { name: "web3", ssh: "deploy@10.0.0.13:2222", hostKey: `ssh-ed25519 ${KEY} web3` },
    ],
    // As `pulumi config set --secret touchdeploy:sshPrivateKey < key` stores it: no final newline.
    sshPrivateKey: PRIVATE_KEY.trimEnd(),
    ...extra,
  };
}
const SSH_SECRETS = ["sshPrivateKey"];

function inputs(r: Registration): Record<string, unknown> {
  return plain(r.inputs);
}

/** Inputs of the container, without nothing removed: the whole declared container. */
function containerInputs(run: ProgramRun, host: string) {
  return inputs(run.get(CONTAINER, `${host}-container`));
}

/** sha256 hex of bytes, by `sha256sum` (not by the code under test). */
function sha256sum(input: Buffer | string): string {
  return execFileSync("sha256sum", { input }).toString().split(" ")[0];
}

/**
 * The dependency fingerprint of `commit`, computed independently of components/: each file's
 * raw bytes from `git show` hashed by sha256sum, as the host script does from a release.
 */
function expectedFingerprint(commit: string, files = ["requirements.txt", "Aptfile"]): string {
  const lines = files.map((f) => {
    const r = spawnSync("git", ["-C", repo.dir, "show", `${commit}:${APP_SUBDIR}/${f}`]);
    return `${f}\n${r.status === 0 ? sha256sum(r.stdout) : "absent"}\n`;
  });
  return sha256sum(lines.join(""));
}

/**
 * The hash of runtime/ as git tracks it, by a shell pipeline over `git ls-files` (not by the
 * code under test): per tracked file, sorted, its path and sha256 with CRLF read as LF.
 */
function expectedRuntimeHash(): string {
  const script =
    'cd runtime && git ls-files -z | sort -z | while IFS= read -r -d "" f; do ' +
    'printf "%s\\n%s\\n" "$f" "$(sed "s/\\r$//" "$f" | sha256sum | cut -d" " -f1)"; done | sha256sum | cut -d" " -f1';
  return execFileSync("bash", ["-c", script], { cwd: PROJECT_DIR }).toString().trim();
}

/** The image tag the program must declare for these build args (formula from README). */
function expectedImageName(apt: string, requirements: string): string {
  const digest = sha256sum(
    JSON.stringify([expectedRuntimeHash(), "debian:bookworm-slim", apt, requirements]),
  );
  return `touchdeploy/hello-wsgi-runtime:${digest.slice(0, 16)}`;
}

describe("the dev stack (one local host)", () => {
  let run: ProgramRun;
  before(async () => {
    run = await runProgram({ config: devConfig({ commit: repo.c1 }) });
  });

  it("declares exactly these resources, each child named after its host", () => {
    assert.deepEqual(
      run.resources.map((r) => `${r.type} ${r.name}`).sort(),
      [
        "pulumi:pulumi:Stack touchdeploy-test",
        "touchdeploy:index:AppDeployment hello-wsgi",
        "touchdeploy:index:HostDeployment local",
        "pulumi:providers:docker local-docker",
        `${LOCAL_CMD} local-setup`,
        `${LOCAL_CMD} local-user`,
        `${IMAGE} local-image`,
        `${LOCAL_CMD} local-fetch`,
        `${CONTAINER} local-container`,
        `${LOCAL_CMD} local-release`,
      ].sort(),
    );
    const host = run.get("touchdeploy:index:HostDeployment", "local");
    for (const child of ["local-setup", "local-user", "local-fetch", "local-release"]) {
      assert.equal(run.get(LOCAL_CMD, child).parentUrn, host.urn);
    }
  });

  it("the container: image id, read-only mount of the app root, port, restart, healthcheck, labels, explicit network, no log options", () => {
    const image = inputs(run.get(IMAGE, "local-image"));
    const imageName = expectedImageName("", REQUIREMENTS);
    assert.equal(image.name, imageName);
    const healthcheck = {
      tests: [
        "CMD",
        "python3",
        "-c",
        "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)",
        "http://127.0.0.1:8000/healthz",
      ],
      interval: "10s",
      timeout: "5s",
      startPeriod: "30s",
      retries: 3,
    };
    const HARDENING = {
      readOnly: true,
      tmpfs: { "/tmp": "rw,noexec,nosuid,nodev,size=64m" },
      capabilities: { drops: ["ALL"] },
      securityOpts: ["no-new-privileges"],
      ulimits: [{ name: "nproc", soft: 1024, hard: 1024 }],
      memory: 1024,
      memorySwap: 1024,
      cpus: "1.0",
    };
    const container = containerInputs(run, "local");
    assert.deepEqual(container, {
      name: "hello-wsgi-local",
      image: mockImageId(imageName),
      // What the mocks' local-user command printed (MOCK_CONTAINER_USER_LINE: root deploys).
      user: "10001:10001",
      envs: [
        "TOUCHDEPLOY_APP_SUBDIR=examples/hello-wsgi",
        `TOUCHDEPLOY_FINGERPRINT=${expectedFingerprint(repo.c1)}`,
        "TOUCHDEPLOY_HEALTH_PATH=/healthz",
        "TOUCHDEPLOY_RELOAD_FILE=.reload",
      ],
      volumes: [
        { hostPath: "/var/tmp/touchdeploy/hello-wsgi", containerPath: "/srv/app", readOnly: true },
      ],
      ports: [{ internal: 8000, external: 8000, ip: "127.0.0.1", protocol: "tcp" }],
      restart: "unless-stopped",
      healthcheck,
      // Hardened (issue 14), with the default limits: 1g, 1 CPU.
      readOnly: true,
      tmpfs: { "/tmp": "rw,noexec,nosuid,nodev,size=64m" },
      capabilities: { drops: ["ALL"] },
      securityOpts: ["no-new-privileges"],
      ulimits: [{ name: "nproc", soft: 1024, hard: 1024 }],
      memory: 1024,
      memorySwap: 1024,
      cpus: "1.0",
      labels: [
        { label: "touchdeploy.app", value: "hello-wsgi" },
        {
          label: "touchdeploy.hardening",
          value: sha256sum(JSON.stringify(HARDENING)).slice(0, 16),
        },
        {
          label: "touchdeploy.healthcheck",
          value: sha256sum(JSON.stringify(healthcheck)).slice(0, 16),
        },
        { label: "touchdeploy.host", value: "local" },
        { label: "touchdeploy.root", value: "/var/tmp/touchdeploy/hello-wsgi" },
      ],
      networkMode: "bridge",
      logDriver: "local",
      mustRun: true,
      wait: false,
      destroyGraceSeconds: 30,
    });
    assert.equal(run.outputs.dependencyFingerprint, expectedFingerprint(repo.c1));
    const registration = run.get(CONTAINER, "local-container");
    assert.equal(registration.deleteBeforeReplace, true, "fixed name and port: delete first");
    assert.ok(registration.provider.includes("pulumi:providers:docker::local-docker"));
  });

  it("the code mount is the app root, read-only, never a release directory", () => {
    const volumes = containerInputs(run, "local").volumes as {
      hostPath: string;
      readOnly: boolean;
    }[];
    assert.equal(volumes.length, 1);
    assert.equal(volumes[0].hostPath, "/var/tmp/touchdeploy/hello-wsgi");
    assert.equal(volumes[0].readOnly, true);
    const declared = JSON.stringify(containerInputs(run, "local"));
    assert.doesNotMatch(declared, /releases|current/);
    assert.ok(!declared.includes(repo.c1), "no commit in the container's inputs");
  });

  it("the image is built from runtime/ with the commit's dependencies as build args", () => {
    const image = inputs(run.get(IMAGE, "local-image"));
    assert.deepEqual(image.build, {
      context: "runtime",
      dockerfile: "Dockerfile",
      buildArgs: { BASE_IMAGE: "debian:bookworm-slim", APT_PACKAGES: "", REQUIREMENTS },
    });
    assert.equal(image.keepLocally, true);
  });

  it("the commands: setup once, then fetch and release keyed on the commit, the script on stdin", () => {
    const script = fs.readFileSync(
      path.join(__dirname, "..", "..", "host", "touchdeploy.sh"),
      "utf8",
    );
    const setup = inputs(run.get(LOCAL_CMD, "local-setup"));
    assert.equal(
      setup.create,
      "bash -s -- setup --root /var/tmp/touchdeploy/hello-wsgi --reload-file .reload",
    );
    assert.equal(setup.stdin, script);
    assert.equal(setup.triggers, undefined, "never replaced: its delete destroys the app root");

    const fetch = inputs(run.get(LOCAL_CMD, "local-fetch"));
    assert.equal(
      fetch.create,
      `bash -s -- fetch --root /var/tmp/touchdeploy/hello-wsgi --repo ${repo.dir} --commit ${repo.c1}`,
    );
    assert.deepEqual(fetch.triggers, [repo.c1]);
    assert.equal(fetch.stdin, script);

    const release = inputs(run.get(LOCAL_CMD, "local-release"));
    assert.equal(
      release.create,
      `bash -s -- release --root /var/tmp/touchdeploy/hello-wsgi --commit ${repo.c1} --subdir examples/hello-wsgi` +
        " --reload-file .reload --health-url http\\://127.0.0.1\\:8000/healthz --health-timeout 60 --keep 5" +
        " --release-command-timeout 600 --process-stop-timeout 10" +
        ` --dependency-files 'requirements.txt Aptfile' --container-fingerprint ${expectedFingerprint(repo.c1)}` +
        " --container hello-wsgi-local --payload stdin",
    );
    assert.deepEqual(release.triggers, [repo.c1, "local-container-id"]);
    // No env, secrets or processes: the script, then an empty payload (none on the host).
    assert.equal(release.stdin, script);
    for (const name of ["local-fetch", "local-release"]) {
      // Replaced per commit: a delete would run after the next commit's create (FACTS.md).
      assert.equal(inputs(run.get(LOCAL_CMD, name)).delete, undefined, `${name}: no delete`);
    }
    for (const name of ["local-setup", "local-fetch", "local-release"]) {
      assert.equal(inputs(run.get(LOCAL_CMD, name)).addPreviousOutputInEnv, false);
    }
  });

  it("`pulumi destroy`: setup's delete runs the host script's destroy on the root (script on stdin)", () => {
    const setup = inputs(run.get(LOCAL_CMD, "local-setup"));
    // pulumi-command passes the stored stdin to delete too (local/commandController.go `Delete`
    // → run(props.Delete, props.BaseInputs) at v1.2.1).
    assert.equal(setup.delete, "bash -s -- destroy --root /var/tmp/touchdeploy/hello-wsgi");
  });

  it("setup was `local-app-root`: an alias keeps it the same resource (an update, not a replace)", () => {
    assert.deepEqual(run.get(LOCAL_CMD, "local-setup").aliases, [
      { name: "local-app-root", type: "" },
    ]);
  });

  it("orders setup -> fetch -> container -> release", () => {
    assert.ok(dependsOn(run.get(LOCAL_CMD, "local-fetch"), LOCAL_CMD, "local-setup"));
    const container = run.get(CONTAINER, "local-container");
    assert.ok(dependsOn(container, LOCAL_CMD, "local-setup"));
    assert.ok(dependsOn(container, LOCAL_CMD, "local-fetch"));
    const release = run.get(LOCAL_CMD, "local-release");
    assert.ok(dependsOn(release, CONTAINER, "local-container"));
    assert.ok(dependsOn(release, LOCAL_CMD, "local-fetch"));
  });

  it("exports, per host, the commit, URL and container name", () => {
    assert.equal(run.outputs.commit, repo.c1);
    assert.deepEqual(run.outputs.hosts, {
      local: { commit: repo.c1, url: "http://localhost:8000/", container: "hello-wsgi-local" },
    });
  });
});

describe("a new commit is a code deploy: only the commands change", () => {
  let first: ProgramRun;
  let second: ProgramRun;
  before(async () => {
    first = await runProgram({ config: devConfig({ commit: repo.c1 }) });
    second = await runProgram({ config: devConfig({ commit: repo.c2 }) });
  });

  it("GIVEN c1 then c2 (code only) THEN the container's inputs are identical", () => {
    assert.notEqual(repo.c1, repo.c2);
    assert.deepEqual(containerInputs(second, "local"), containerInputs(first, "local"));
  });
  it("THEN the image, the provider and the app root are identical too", () => {
    assert.deepEqual(
      inputs(second.get(IMAGE, "local-image")),
      inputs(first.get(IMAGE, "local-image")),
    );
    assert.deepEqual(
      inputs(second.get("pulumi:providers:docker", "local-docker")),
      inputs(first.get("pulumi:providers:docker", "local-docker")),
    );
    assert.deepEqual(
      inputs(second.get(LOCAL_CMD, "local-setup")),
      inputs(first.get(LOCAL_CMD, "local-setup")),
    );
  });
  it("THEN the fetch and the release change their trigger (a replacement) and command", () => {
    for (const name of ["local-fetch", "local-release"]) {
      const a = inputs(first.get(LOCAL_CMD, name));
      const b = inputs(second.get(LOCAL_CMD, name));
      assert.deepEqual((a.triggers as string[])[0], repo.c1);
      assert.deepEqual((b.triggers as string[])[0], repo.c2);
      assert.equal(String(b.create), String(a.create).replace(repo.c1, repo.c2));
    }
  });
  it("THEN the only inputs that differ anywhere are those of the fetch and release commands", () => {
    const changed = second.resources
      .filter((r) => {
        const before = first.resources.find((f) => f.type === r.type && f.name === r.name);
        return JSON.stringify(plain(before?.inputs)) !== JSON.stringify(plain(r.inputs));
      })
      .map((r) => r.name);
    assert.deepEqual(changed, ["local-fetch", "local-release"]);
  });
});

describe("a dependency change is a container deploy", () => {
  it("GIVEN c3 adds an Aptfile THEN a new image (name and build args) and the container's fingerprint change", async () => {
    const code = await runProgram({ config: devConfig({ commit: repo.c2 }) });
    const deps = await runProgram({ config: devConfig({ commit: repo.c3 }) });
    const imageA = inputs(code.get(IMAGE, "local-image"));
    const imageB = inputs(deps.get(IMAGE, "local-image"));
    assert.notEqual(imageB.name, imageA.name);
    assert.equal(
      (imageB.build as { buildArgs: { APT_PACKAGES: string } }).buildArgs.APT_PACKAGES,
      "python3-yaml",
    );
    const a = containerInputs(code, "local");
    const b = containerInputs(deps, "local");
    assert.notEqual(b.image, a.image);
    assert.notEqual(deps.outputs.dependencyFingerprint, code.outputs.dependencyFingerprint);
    assert.deepEqual(
      (b.envs as string[])[1],
      `TOUCHDEPLOY_FINGERPRINT=${String(deps.outputs.dependencyFingerprint)}`,
    );
  });

  it("GIVEN only the base image changes THEN the image and the container change", async () => {
    const a = await runProgram({ config: devConfig({ commit: repo.c1 }) });
    const b = await runProgram({
      config: devConfig({ commit: repo.c1, baseImage: "debian:trixie-slim" }),
    });
    assert.notEqual(containerInputs(b, "local").image, containerInputs(a, "local").image);
    assert.deepEqual(
      { ...containerInputs(b, "local"), image: "" },
      { ...containerInputs(a, "local"), image: "" },
      "nothing but the image changes",
    );
  });

  it("GIVEN a pulled image with {fingerprint} THEN the fingerprint selects the tag", async () => {
    const run = await runProgram({
      config: devConfig({ commit: repo.c3, image: "ghcr.io/acme/rt:{fingerprint}" }),
    });
    assert.deepEqual(inputs(run.get(IMAGE, "local-image")), {
      name: `ghcr.io/acme/rt:${expectedFingerprint(repo.c3)}`,
      keepLocally: true,
    });
    assert.match(
      String(inputs(run.get(LOCAL_CMD, "local-release")).create),
      new RegExp(`--container-fingerprint ${expectedFingerprint(repo.c3)} `),
    );
  });

  it("GIVEN a fixed pulled image THEN the fingerprint is `unmanaged` and commits never change the container", async () => {
    const a = await runProgram({
      config: devConfig({ commit: repo.c2, image: "ghcr.io/acme/rt:1.0" }),
    });
    const b = await runProgram({
      config: devConfig({ commit: repo.c3, image: "ghcr.io/acme/rt:1.0" }),
    });
    assert.equal(a.outputs.dependencyFingerprint, "unmanaged");
    assert.deepEqual(containerInputs(b, "local"), containerInputs(a, "local"));
    // Nothing to guard: the host script is not asked to (it would warn on every deploy).
    const release = String(inputs(a.get(LOCAL_CMD, "local-release")).create);
    assert.doesNotMatch(release, /--dependency-files|--container-fingerprint/);
  });
});

describe("the commit comes from the branch head unless pinned", () => {
  it("GIVEN no pin THEN the local branch head is deployed", async () => {
    const run = await runProgram({ config: devConfig() });
    assert.equal(run.outputs.commit, repo.c2);
    const run2 = await runProgram({ config: devConfig({ branch: "deps" }) });
    assert.equal(run2.outputs.commit, repo.c3);
  });
  it("GIVEN a branch that does not exist THEN the error names it and the branches there are", async () => {
    // Called directly: inside the program the same error fails the Output that needs the commit.
    await assert.rejects(localBranchHead(repo.dir, "nope"), (err: Error) => {
      assert.equal(
        err.message,
        `touchdeploy:branch "nope" does not exist in ${repo.dir} (branches: deps, main): Could not find refs/heads/nope.`,
      );
      return true;
    });
  });
});

describe("rollout across hosts", () => {
  it("GIVEN rolling with batch size 1 THEN each host's container and release wait for the previous host's release", async () => {
    const run = await runProgram({
      config: sshConfig({ commit: repo.c1, rollout: "rolling", batchSize: 1 }),
      secretKeys: SSH_SECRETS,
    });
    const release = (h: string) => run.get(REMOTE_CMD, `${h}-release`);
    assert.ok(dependsOn(release("web2"), REMOTE_CMD, "web1-release"));
    assert.ok(dependsOn(release("web3"), REMOTE_CMD, "web2-release"));
    assert.ok(dependsOn(run.get(CONTAINER, "web2-container"), REMOTE_CMD, "web1-release"));
    assert.ok(!dependsOn(release("web1"), REMOTE_CMD, "web2-release"));
    // Fetching is never held back: every host fetches at once.
    for (const h of ["web1", "web2", "web3"]) {
      assert.ok(
        !run.get(REMOTE_CMD, `${h}-fetch`).dependencies.some((u) => u.includes("-release")),
      );
    }
  });
  it("GIVEN rolling with batch size 2 THEN web1 and web2 go together, web3 waits for both", async () => {
    const run = await runProgram({
      config: sshConfig({ commit: repo.c1, rollout: "rolling", batchSize: 2 }),
      secretKeys: SSH_SECRETS,
    });
    const release = (h: string) => run.get(REMOTE_CMD, `${h}-release`);
    assert.ok(!dependsOn(release("web2"), REMOTE_CMD, "web1-release"));
    assert.ok(dependsOn(release("web3"), REMOTE_CMD, "web1-release"));
    assert.ok(dependsOn(release("web3"), REMOTE_CMD, "web2-release"));
  });
  it("GIVEN parallel THEN no host waits for another", async () => {
    const run = await runProgram({
      config: sshConfig({ commit: repo.c1 }),
      secretKeys: SSH_SECRETS,
    });
    for (const r of run.resources) {
      const own = r.name.split("-")[0];
      assert.ok(
        !r.dependencies.some(
          (u) => /::(web\d)-/.exec(u)?.[1] !== undefined && /::(web\d)-/.exec(u)?.[1] !== own,
        ),
        `${r.name} depends on another host: ${r.dependencies.join(", ")}`,
      );
    }
  });
});

describe("ssh hosts", () => {
  let run: ProgramRun;
  before(async () => {
    run = await runProgram({ config: sshConfig({ commit: repo.c1 }), secretKeys: SSH_SECRETS });
  });
  it("commands run over SSH with the host key pinned and the private key as a secret", () => {
    const release = run.get(REMOTE_CMD, "web3-release");
    const connection = release.inputs.connection as Record<string, unknown>;
    assert.ok(
      isSecret(connection) || isSecret(connection.privateKey),
      "the private key travels as a secret",
    );
    assert.deepEqual(plain(connection), {
      dialErrorLimit: 10,
      perDialTimeout: 15,
      host: "10.0.0.13",
      port: 2222,
      user: "deploy",
      privateKey: PRIVATE_KEY,
      hostKey: `ssh-ed25519 ${KEY}`,
    });
  });
  it("the docker provider logs in with the stack's key and verifies the same host key, from 0600 files", () => {
    const dir = path.join(home, ".touchdeploy", "ssh", "touchdeploy.test.web3");
    assert.deepEqual(inputs(run.get("pulumi:providers:docker", "web3-docker")), {
      host: "ssh://deploy@10.0.0.13:2222",
      sshOpts: JSON.stringify([
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-i",
        `${dir}/id`,
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        `UserKnownHostsFile=${dir}/known_hosts`,
        "-o",
        "GlobalKnownHostsFile=/dev/null",
      ]),
    });
    // OpenSSH needs the key's final newline, which `pulumi config set --secret < file` strips.
    assert.equal(fs.readFileSync(`${dir}/id`, "utf8"), PRIVATE_KEY);
    assert.equal(
      fs.readFileSync(`${dir}/known_hosts`, "utf8"),
      `[10.0.0.13]:2222 ssh-ed25519 ${KEY}\n`,
    );
    assert.equal(fs.statSync(`${dir}/id`).mode & 0o777, 0o600);
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(
      fs.readFileSync(
        path.join(home, ".touchdeploy", "ssh", "touchdeploy.test.web1", "known_hosts"),
        "utf8",
      ),
      `10.0.0.11 ssh-ed25519 ${KEY}\n`,
    );
  });
  it("the commands' private key gets its final newline back too", () => {
    const connection = plain<{ privateKey: string }>(
      run.get(REMOTE_CMD, "web1-setup").inputs.connection,
    );
    assert.equal(connection.privateKey, PRIVATE_KEY);
  });
  it("the private key appears nowhere but as a secret", () => {
    assert.deepEqual(plaintextOccurrences(run, "secret-material"), []);
  });
  it("URLs use the host address", () => {
    assert.equal(
      (run.outputs.hosts as Record<string, { url: string }>).web1.url,
      "http://10.0.0.11:8000/",
    );
  });
});

/** GitHub's REST API as the program sees it through `fetch`: every request recorded. */
interface FakeGitHub {
  requests: { url: string; accept: string; authorization?: string }[];
  restore(): void;
}

/**
 * Replaces global `fetch` with a GitHub that has these files (raw bytes) at every commit in
 * `commits` (any commit when undefined) and answers 404 otherwise, as the contents API does.
 */
function fakeGitHub(files: Record<string, Buffer>, commits?: string[]): FakeGitHub {
  const original = globalThis.fetch;
  const requests: FakeGitHub["requests"] = [];
  globalThis.fetch = (input: string | URL | Request, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : input.toString();
    const headers = (init?.headers ?? {}) as Record<string, string>;
    requests.push({ url, accept: headers.Accept, authorization: headers.Authorization });
    const u = new URL(url);
    const commit = /\/commits\/([0-9a-f]{40})$/.exec(u.pathname)?.[1];
    if (commit) {
      const known = !commits || commits.includes(commit);
      return Promise.resolve(
        new Response(known ? commit : "Not Found", { status: known ? 200 : 404 }),
      );
    }
    const file = /\/contents\/(.+)$/.exec(u.pathname)?.[1] ?? "";
    const ref = u.searchParams.get("ref") ?? "";
    const body = files[decodeURIComponent(file)];
    if (body === undefined || (commits && !commits.includes(ref))) {
      return Promise.resolve(new Response('{"message":"Not Found"}', { status: 404 }));
    }
    return Promise.resolve(
      new Response(body, {
        status: 200,
        headers: { "content-type": "application/vnd.github.raw" },
      }),
    );
  };
  return { requests, restore: () => (globalThis.fetch = original) };
}

describe("GitHub source", () => {
  const HEAD = "feedfacefeedfacefeedfacefeedfacefeedface";
  // Latin-1, not UTF-8: the fingerprint must hash these bytes as they are (issue 9).
  const requirements = Buffer.from("flask==3.0  # caf\xe9\n", "latin1");
  const invoke = (token: string, args: Record<string, unknown>) => {
    if (token === "github:index/getBranch:getBranch") {
      return {
        repository: args.repository,
        branch: args.branch,
        sha: HEAD,
        ref: `refs/heads/${String(args.branch)}`,
      };
    }
    throw new Error(`unexpected invoke ${token}`);
  };
  let github: FakeGitHub;
  const envToken = process.env.GITHUB_TOKEN;
  beforeEach(() => {
    delete process.env.GITHUB_TOKEN; // the program falls back to it
    github = fakeGitHub({ "requirements.txt": requirements });
  });
  afterEach(() => {
    github.restore();
    if (envToken !== undefined) process.env.GITHUB_TOKEN = envToken;
  });

  it("GIVEN no pin THEN getBranch gives the commit and each file is one raw request at that exact SHA", async () => {
    const run = await runProgram({
      config: { github: "acme/shop", hosts: ["local local"], "github:token": "ghp_test" },
      secretKeys: ["github:token"],
      invoke,
    });
    assert.equal(run.outputs.commit, HEAD);
    assert.deepEqual(
      run.invokes.map((i) => [i.token, plain<Record<string, unknown>>(i.inputs)]),
      [["github:index/getBranch:getBranch", { repository: "shop", branch: "main" }]],
    );
    assert.deepEqual(github.requests, [
      {
        url: `https://api.github.com/repos/acme/shop/contents/requirements.txt?ref=${HEAD}`,
        accept: "application/vnd.github.raw",
        authorization: "Bearer ghp_test",
      },
      {
        url: `https://api.github.com/repos/acme/shop/contents/Aptfile?ref=${HEAD}`,
        accept: "application/vnd.github.raw",
        authorization: "Bearer ghp_test",
      },
    ]);
    // Independent of the code under test: sha256sum of the raw bytes, "absent" for Aptfile.
    assert.equal(
      run.outputs.dependencyFingerprint,
      sha256sum(`requirements.txt\n${sha256sum(requirements)}\nAptfile\nabsent\n`),
    );
    const provider = run.get("pulumi:providers:github", "github");
    assert.ok(isSecret(provider.inputs.token), "the token is a secret input");
    assert.equal(plain(provider.inputs.token), "ghp_test");
    assert.deepEqual(plaintextOccurrences(run, "ghp_test"), []);
    assert.equal(
      inputs(run.get(LOCAL_CMD, "local-fetch")).create,
      `bash -s -- fetch --root /srv/touchdeploy/app --repo https\\://github.com/acme/shop.git --commit ${HEAD}`,
    );
  });

  it("GIVEN GitHub Enterprise (github:baseUrl) THEN the provider and the file reads use its API", async () => {
    const run = await runProgram({
      config: {
        github: "acme/shop",
        hosts: ["local local"],
        "github:baseUrl": "https://ghe.acme.test/api/v3/",
      },
      invoke,
    });
    assert.equal(
      plain(run.get("pulumi:providers:github", "github").inputs.baseUrl),
      "https://ghe.acme.test/api/v3/",
    );
    assert.deepEqual(
      github.requests.map((r) => r.url),
      [
        `https://ghe.acme.test/api/v3/repos/acme/shop/contents/requirements.txt?ref=${HEAD}`,
        `https://ghe.acme.test/api/v3/repos/acme/shop/contents/Aptfile?ref=${HEAD}`,
      ],
    );
  });

  it("GIVEN a pin THEN getBranch is not asked, the pin is checked to exist, and it is deployed", async () => {
    const pin = "0123456789abcdef0123456789abcdef01234567";
    const run = await runProgram({ config: { github: "acme/shop", commit: pin }, invoke });
    assert.equal(run.outputs.commit, pin);
    assert.deepEqual(run.invokes, []);
    assert.deepEqual(github.requests[0], {
      url: `https://api.github.com/repos/acme/shop/commits/${pin}`,
      accept: "application/vnd.github.sha",
      authorization: undefined,
    });
  });
});

describe("preview", () => {
  it("GIVEN `pulumi preview` THEN the same resources are declared and no process is started", async () => {
    const spawned: string[] = [];
    const originals = new Map<string, unknown>();
    // The CommonJS module object (mutable), which is what every library's require() sees.
    const cp = require("node:child_process") as Record<string, (...a: unknown[]) => unknown>;
    for (const fn of [
      "spawn",
      "spawnSync",
      "exec",
      "execSync",
      "execFile",
      "execFileSync",
      "fork",
    ]) {
      originals.set(fn, cp[fn]);
      cp[fn] = (...args: unknown[]) => {
        spawned.push(`${fn} ${String(args[0])}`);
        return (originals.get(fn) as (...a: unknown[]) => unknown)(...args);
      };
    }
    try {
      const run = await runProgram({ config: devConfig(), preview: true });
      assert.equal(run.ofType(LOCAL_CMD).length, 4);
      assert.equal(run.outputs.commit, repo.c2);
    } finally {
      for (const [fn, original] of originals) {
        cp[fn] = original as (...a: unknown[]) => unknown;
      }
    }
    assert.deepEqual(spawned, []);
  });
});

describe("bad stack config fails the program with every problem listed", () => {
  it("GIVEN a bad SHA and a duplicate host THEN loadConfig (the program's first step) throws one ConfigError listing both", () => {
    pulumi.runtime.setAllConfig({
      "touchdeploy:repoPath": repo.dir,
      "touchdeploy:commit": "HEAD",
      "touchdeploy:hosts": JSON.stringify(["a local port=1", "a local port=2"]),
    });
    assert.throws(() => loadConfig(repo.dir), {
      name: "ConfigError",
      message:
        "invalid stack configuration (2 problems):\n" +
        '  - touchdeploy:commit: "HEAD" is not a full commit SHA (40 lowercase hex characters)\n' +
        '  - touchdeploy:hosts[1]: host name "a" is used twice',
    });
  });
  it("GIVEN a ConfigError THEN it is a RunError: the CLI prints the message without a stack trace", () => {
    pulumi.runtime.setAllConfig({ "touchdeploy:repoPath": repo.dir, "touchdeploy:port": "0" });
    assert.throws(
      () => loadConfig(repo.dir),
      (err: unknown) => pulumi.RunError.isInstance(err),
    );
  });
  it("GIVEN the private key is set THEN its value is read only as a secret Output", async () => {
    pulumi.runtime.setAllConfig(
      {
        "touchdeploy:repoPath": repo.dir,
        "touchdeploy:hosts": JSON.stringify(["web1 ssh://d@10.0.0.1"]),
        "touchdeploy:hostKeys": JSON.stringify([`web1 ssh-ed25519 ${KEY}`]),
        "touchdeploy:sshPrivateKey": PRIVATE_KEY,
      },
      ["touchdeploy:sshPrivateKey"],
    );
    const loaded = loadConfig(repo.dir);
    assert.ok(loaded.sshPrivateKey);
    assert.equal(await pulumi.isSecret(loaded.sshPrivateKey), true);
  });
  it("GIVEN a secret set in a config with a problem THEN the error never shows it: parsing sees only whether it is set", () => {
    pulumi.runtime.setAllConfig(
      {
        "touchdeploy:repoPath": repo.dir,
        "touchdeploy:port": "0",
        "touchdeploy:hosts": JSON.stringify([
          { name: "web1", ssh: "d@10.0.0.1", hostKey: `ssh-ed25519 ${KEY}` },
        ]),
        "touchdeploy:sshPrivateKey": PRIVATE_KEY,
        "touchdeploy:deployPrivateKey": PRIVATE_KEY,
      },
      ["touchdeploy:sshPrivateKey", "touchdeploy:deployPrivateKey"],
    );
    assert.throws(() => loadConfig(repo.dir), {
      message:
        "invalid stack configuration (1 problem):\n" +
        '  - touchdeploy:port: must be an integer from 1 to 65535, got "0"',
    });
  });
});

describe("a private GitHub repository: a read-only deploy key managed as code", () => {
  const HEAD = "feedfacefeedfacefeedfacefeedfacefeedface";
  const GENERATED =
    "-----BEGIN OPENSSH PRIVATE KEY-----\ngenerated-key-material\n-----END OPENSSH PRIVATE KEY-----\n";
  const keyOf = (privateKey: string) =>
    `ssh-ed25519 AAAAC3Nz${createHash("sha256").update(privateKey).digest("hex")}`;
  const invoke = (token: string, args: Record<string, unknown>) => {
    switch (token) {
      case "github:index/getBranch:getBranch":
        return { sha: HEAD };
      case "tls:index/getPublicKey:getPublicKey":
        return { publicKeyOpenssh: keyOf(String(args.privateKeyOpenssh)) + "\n" };
      default:
        throw new Error(`unexpected invoke ${token}`);
    }
  };
  const computed = (type: string) =>
    type === "tls:index/privateKey:PrivateKey"
      ? { privateKeyOpenssh: GENERATED, publicKeyOpenssh: keyOf(GENERATED) + "\n" }
      : {};
  const privateConfig = (extra: StackConfig = {}): StackConfig => ({
    appName: "shop",
    github: "acme/shop",
    deployKey: "generate",
    hosts: [
      { name: "web1", ssh: "deploy@10.0.0.11", hostKey: `ssh-ed25519 ${KEY}` },
      { name: "web2", ssh: "deploy@10.0.0.12", hostKey: `ssh-ed25519 ${KEY}` },
    ],
    sshPrivateKey: PRIVATE_KEY,
    ...extra,
  });
  let github: FakeGitHub;
  beforeEach(() => {
    github = fakeGitHub({});
  });
  afterEach(() => github.restore());

  it("GIVEN deployKey generate THEN an ED25519 key pair is generated and its public half registered read-only", async () => {
    const run = await runProgram({
      config: privateConfig(),
      secretKeys: SSH_SECRETS,
      invoke,
      computed,
    });
    assert.deepEqual(inputs(run.get("tls:index/privateKey:PrivateKey", "shop-github-key")), {
      algorithm: "ED25519",
    });
    assert.deepEqual(
      inputs(
        run.get("github:index/repositoryDeployKey:RepositoryDeployKey", "shop-github-deploy-key"),
      ),
      {
        repository: "shop",
        title: "touchdeploy test shop",
        key: keyOf(GENERATED),
        readOnly: true,
      },
    );
    // A new key is registered before the old one is removed: fetches never lose access.
    assert.equal(
      run.get("github:index/repositoryDeployKey:RepositoryDeployKey", "shop-github-deploy-key")
        .deleteBeforeReplace,
      false,
    );
  });

  it("THEN the generated key's private halves are secret outputs: the engine encrypts them in the state", async () => {
    const run = await runProgram({
      config: privateConfig(),
      secretKeys: SSH_SECRETS,
      invoke,
      computed,
    });
    // Set by the @pulumi/tls SDK itself (privateKey.js, `additionalSecretOutputs`), not by us:
    // this pins the SDK version's behaviour the README's "Security" section relies on.
    assert.deepEqual(
      [
        ...run.get("tls:index/privateKey:PrivateKey", "shop-github-key").options
          .additionalSecretOutputs,
      ].sort(),
      ["privateKeyOpenssh", "privateKeyPem", "privateKeyPemPkcs8"],
    );
  });

  it("THEN each host installs the private half from stdin (a secret, no logs) before fetching over SSH with pinned host keys", async () => {
    const run = await runProgram({
      config: privateConfig(),
      secretKeys: SSH_SECRETS,
      invoke,
      computed,
    });
    const install = run.get(REMOTE_CMD, "web1-fetch-key");
    assert.ok(isSecret(install.inputs.stdin), "the private key travels on stdin, as a secret");
    assert.equal(plain(install.inputs.stdin), GENERATED);
    assert.equal(inputs(install).logging, "none");
    const create = String(inputs(install).create);
    assert.ok(
      create.startsWith("set -eu; umask 077; mkdir -p /srv/touchdeploy/shop/.ssh;"),
      create,
    );
    assert.ok(
      create.includes(
        "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
      ),
    );
    assert.ok(!create.includes("generated-key-material"), "never in argv");

    const fetch = run.get(REMOTE_CMD, "web1-fetch");
    assert.equal(
      inputs(fetch).create,
      "bash -s -- fetch --root /srv/touchdeploy/shop --repo git\\@github.com\\:acme/shop.git" +
        ` --commit ${HEAD} --ssh-key /srv/touchdeploy/shop/.ssh/deploy_key --known-hosts /srv/touchdeploy/shop/.ssh/known_hosts`,
    );
    assert.ok(dependsOn(fetch, REMOTE_CMD, "web1-fetch-key"));
  });

  it("THEN every fetch and key install waits for the key's registration on GitHub (issue 8 item 3)", async () => {
    const run = await runProgram({
      config: privateConfig(),
      secretKeys: SSH_SECRETS,
      invoke,
      computed,
    });
    const registration = "github:index/repositoryDeployKey:RepositoryDeployKey";
    for (const host of ["web1", "web2"]) {
      for (const role of ["fetch-key", "fetch"]) {
        assert.ok(
          dependsOn(run.get(REMOTE_CMD, `${host}-${role}`), registration, "shop-github-deploy-key"),
          `${host}-${role} must wait for the deploy key's registration`,
        );
      }
    }
  });

  it("THEN `pulumi destroy` removes the key file for sure: the install's delete (it is never replaced)", async () => {
    const run = await runProgram({
      config: privateConfig(),
      secretKeys: SSH_SECRETS,
      invoke,
      computed,
    });
    const install = inputs(run.get(REMOTE_CMD, "web1-fetch-key"));
    assert.equal(
      install.delete,
      "set -eu; rm -f -- /srv/touchdeploy/shop/.ssh/deploy_key /srv/touchdeploy/shop/.ssh/deploy_key.new" +
        " /srv/touchdeploy/shop/.ssh/known_hosts /srv/touchdeploy/shop/.ssh/known_hosts.new;" +
        " echo 'touchdeploy: fetch key removed from /srv/touchdeploy/shop/.ssh'",
    );
    assert.equal(
      install.triggers,
      undefined,
      "no triggers: a replacement's delete would remove the new key",
    );
  });

  it("GIVEN a provided key without its final newline (as `config set --secret < key` stores it) THEN hosts get it with one (item 4)", async () => {
    const key = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-a\n-----END OPENSSH PRIVATE KEY-----";
    const run = await runProgram({
      config: privateConfig({ deployKey: "provided", deployPrivateKey: key }),
      secretKeys: [...SSH_SECRETS, "deployPrivateKey"],
      invoke,
      computed,
    });
    assert.equal(plain(run.get(REMOTE_CMD, "web1-fetch-key").inputs.stdin), `${key}\n`);
  });

  it("THEN the private key is nowhere in plaintext: not in any input, command line or stack output", async () => {
    const run = await runProgram({
      config: privateConfig(),
      secretKeys: SSH_SECRETS,
      invoke,
      computed,
    });
    assert.deepEqual(plaintextOccurrences(run, "generated-key-material"), []);
  });

  it("GIVEN the key rotates THEN only the key resources and the key installs change: no code or container deploy", async () => {
    const keyA = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-a\n-----END OPENSSH PRIVATE KEY-----\n";
    const keyB = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-b\n-----END OPENSSH PRIVATE KEY-----\n";
    const withKey = (key: string) =>
      runProgram({
        config: privateConfig({ deployKey: "provided", deployPrivateKey: key }),
        secretKeys: [...SSH_SECRETS, "deployPrivateKey"],
        invoke,
        computed,
      });
    const a = await withKey(keyA);
    const b = await withKey(keyB);
    const changed = b.resources
      .filter((r) => {
        const before = a.resources.find((f) => f.type === r.type && f.name === r.name);
        return JSON.stringify(plain(before?.inputs)) !== JSON.stringify(plain(r.inputs));
      })
      .map((r) => r.name)
      .sort();
    assert.deepEqual(changed, ["shop-github-deploy-key", "web1-fetch-key", "web2-fetch-key"]);
  });
});

describe("a provided deploy key is checked before it goes anywhere", () => {
  it("GIVEN OpenSSH or PEM keys THEN their format; GIVEN anything else THEN a message that does not echo it", () => {
    assert.equal(privateKeyFormat(PRIVATE_KEY), "openssh");
    assert.equal(
      privateKeyFormat("-----BEGIN RSA PRIVATE KEY-----\nabc\n-----END RSA PRIVATE KEY-----"),
      "pem",
    );
    assert.throws(() => privateKeyFormat("ssh-ed25519 AAAA-a-public-key"), {
      message:
        "touchdeploy:deployPrivateKey is not an OpenSSH or PEM private key " +
        "(expected -----BEGIN OPENSSH PRIVATE KEY----- ...; generate one with ssh-keygen -t ed25519)",
    });
  });
});

describe("the components from another program (issue 8 item 17)", () => {
  it("GIVEN a host whose address and user come from another resource's outputs THEN the commands and the Docker connection use them, after that resource", async () => {
    const run = await runProgram({
      config: {},
      computed: (type) =>
        type === "test:index:Instance" ? { publicIp: "203.0.113.7", user: "admin" } : {},
      program: () => {
        // Loaded here, after setMocks (a resource module must not load before the mocks).
        const { AppDeployment } = require("../../components") as typeof import("../../components");
        /** Stands for a VM another program creates (an aws.ec2.Instance, say). */
        class Instance extends pulumi.CustomResource {
          declare readonly publicIp: pulumi.Output<string>;
          declare readonly user: pulumi.Output<string>;
          constructor(name: string) {
            super("test:index:Instance", name, { publicIp: undefined, user: undefined });
          }
        }
        const vm = new Instance("vm");
        const app = new AppDeployment("shop", {
          hosts: [
            {
              name: "web1",
              target: { kind: "ssh", user: vm.user, address: vm.publicIp, port: 22 },
              hostKey: `ssh-ed25519 ${KEY}`,
              root: "/srv/shop",
              port: 8000,
              bindAddress: "0.0.0.0",
            },
          ],
          sshPrivateKey: pulumi.secret(PRIVATE_KEY),
          source: { repoUrl: "https://example.test/shop.git", commit: "c".repeat(40) },
          image: { kind: "pull", name: "ghcr.io/acme/runtime:1" },
          release: releaseConfig({ appDir: "", dependencyFiles: [] }),
          rollout: { strategy: "parallel" },
          hostScript: SCRIPT,
          operatorSshDir: (host) => path.join(home, "other-program", host),
        });
        return { hosts: app.summary };
      },
    });
    const vmUrn = run.get("test:index:Instance", "vm").urn;
    for (const role of ["setup", "fetch", "release"]) {
      const cmd = run.get(REMOTE_CMD, `web1-${role}`);
      const connection = plain<Record<string, unknown>>(cmd.inputs.connection);
      assert.equal(connection.host, "203.0.113.7");
      assert.equal(connection.user, "admin");
      assert.ok(cmd.dependencies.includes(vmUrn), `web1-${role} waits for the instance`);
    }
    const provider = run.get("pulumi:providers:docker", "web1-docker");
    assert.equal(plain(provider.inputs.host), "ssh://admin@203.0.113.7:22");
    assert.ok(provider.dependencies.includes(vmUrn));
    assert.equal(
      fs.readFileSync(path.join(home, "other-program", "web1", "known_hosts"), "utf8"),
      `203.0.113.7 ssh-ed25519 ${KEY}\n`,
    );
    assert.deepEqual(run.outputs.hosts, {
      web1: { commit: "c".repeat(40), url: "http://203.0.113.7:8000/", container: "shop-web1" },
    });
  });
});

describe("the Docker provider's context (issue 8 item 11)", () => {
  it("GIVEN DOCKER_CONTEXT exported THEN the program refuses to run before declaring anything, saying why and what to do", async () => {
    process.env.DOCKER_CONTEXT = "staging";
    let refused: unknown;
    try {
      const run = await runProgram({
        config: devConfig({ commit: repo.c1 }),
        program: () => {
          const entry = require.resolve(path.join(PROJECT_DIR, "index.ts"));
          delete require.cache[entry];
          try {
            require(entry);
          } catch (err) {
            refused = err;
          }
          return {};
        },
      });
      assert.deepEqual(
        run.resources.map((r) => r.type),
        ["pulumi:pulumi:Stack"],
      );
    } finally {
      delete process.env.DOCKER_CONTEXT;
    }
    assert.ok(pulumi.RunError.isInstance(refused), "a RunError: printed without a stack trace");
    assert.equal(
      refused.message,
      'DOCKER_CONTEXT is set ("staging"): the Docker provider would send every host\'s containers to that ' +
        "context's daemon instead of the host's. Unset it (`unset DOCKER_CONTEXT`) and run again.",
    );
  });
});

describe("the fetch key's stdin is a secret whatever the caller passes (issue 9)", () => {
  it("GIVEN a plain (non-secret) private key THEN the command's stdin is still a secret, and no logs", async () => {
    const run = await runProgram({
      config: {},
      program: () => {
        const { HostDeployment } = require("../../components") as typeof import("../../components");
        new HostDeployment("web1", {
          appName: "shop",
          host: {
            target: { kind: "local" },
            root: "/srv/shop",
            port: 8000,
            bindAddress: "0.0.0.0",
          },
          source: {
            repoUrl: "git@github.com:acme/shop.git",
            commit: "c".repeat(40),
            fetchKey: { privateKey: PRIVATE_KEY, knownHosts: ["github.com ssh-ed25519 AAAA"] },
          },
          release: releaseConfig({ appDir: "", dependencyFiles: [] }),
          image: { kind: "pull", name: "ghcr.io/acme/runtime:1" },
          fingerprint: "unmanaged",
          hostScript: SCRIPT,
        });
        return {};
      },
    });
    const install = run.get(LOCAL_CMD, "web1-fetch-key");
    assert.ok(isSecret(install.inputs.stdin), "stdin is a secret in the state");
    assert.equal(plain(install.inputs.stdin), PRIVATE_KEY);
    assert.equal(inputs(install).logging, "none");
    assert.deepEqual(plaintextOccurrences(run, "secret-material"), []);
  });
});
