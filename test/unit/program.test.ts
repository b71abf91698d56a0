// The Pulumi program under mocks: the exact resources, inputs and ordering it declares.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { loadConfig, localBranchHead, privateKeyFormat } from "../../components";
import { APP_SUBDIR, TestRepo } from "../e2e/support/git";
import {
  CONTAINER,
  dependsOn,
  IMAGE,
  LOCAL_CMD,
  plaintextOccurrences,
  REMOTE_CMD,
  PROJECT_DIR,
  isSecret,
  plain,
  ProgramRun,
  Registration,
  runProgram,
  StackConfig,
} from "../support/pulumiProgram";

const KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOhMwkhduvpYBsb1FQUL5gKNM9Iiy376AI435kGEPwua";
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
before(async () => {
  repo = await makeRepo();
});
after(() => {
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
      "web1 ssh://deploy@10.0.0.11",
      "web2 ssh://deploy@10.0.0.12",
      "web3 ssh://deploy@10.0.0.13:2222",
    ],
    hostKeys: [`web1 ssh-ed25519 ${KEY}`, `web2 ssh-ed25519 ${KEY}`, `web3 ssh-ed25519 ${KEY}`],
    sshPrivateKey: PRIVATE_KEY,
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
        `${LOCAL_CMD} local-app-root`,
        `${IMAGE} local-image`,
        `${LOCAL_CMD} local-fetch`,
        `${CONTAINER} local-container`,
        `${LOCAL_CMD} local-release`,
      ].sort(),
    );
    const host = run.get("touchdeploy:index:HostDeployment", "local");
    for (const child of ["local-app-root", "local-fetch", "local-release"]) {
      assert.equal(run.get(LOCAL_CMD, child).parentUrn, host.urn);
    }
  });

  it("the container: image id, read-only mount of the app root, port, restart, healthcheck, labels, explicit network and logs", () => {
    const image = inputs(run.get(IMAGE, "local-image"));
    const imageName = String(image.name);
    assert.match(imageName, /^touchdeploy\/hello-wsgi-runtime:[0-9a-f]{16}$/);
    const container = containerInputs(run, "local");
    assert.deepEqual(container, {
      name: "hello-wsgi-local",
      image: `sha256:${createHash("sha256").update(imageName).digest("hex")}`,
      envs: [
        "TOUCHDEPLOY_APP_SUBDIR=examples/hello-wsgi",
        `TOUCHDEPLOY_FINGERPRINT=${String(run.outputs.dependencyFingerprint)}`,
        "TOUCHDEPLOY_RELOAD_FILE=.reload",
      ],
      volumes: [
        { hostPath: "/var/tmp/touchdeploy/hello-wsgi", containerPath: "/srv/app", readOnly: true },
      ],
      ports: [{ internal: 8000, external: 8000, ip: "127.0.0.1", protocol: "tcp" }],
      restart: "unless-stopped",
      healthcheck: {
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
      },
      labels: [
        { label: "touchdeploy.app", value: "hello-wsgi" },
        { label: "touchdeploy.host", value: "local" },
        { label: "touchdeploy.root", value: "/var/tmp/touchdeploy/hello-wsgi" },
      ],
      networkMode: "bridge",
      logDriver: "json-file",
      logOpts: { "max-file": "3", "max-size": "10m" },
      mustRun: true,
      wait: false,
      destroyGraceSeconds: 30,
    });
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

  it("the commands: app root once, then fetch and release keyed on the commit, the script on stdin", () => {
    const script = fs.readFileSync(
      path.join(__dirname, "..", "..", "host", "touchdeploy.sh"),
      "utf8",
    );
    const appRoot = inputs(run.get(LOCAL_CMD, "local-app-root"));
    assert.equal(
      appRoot.create,
      "bash -s -- init --root /var/tmp/touchdeploy/hello-wsgi --reload-file .reload",
    );
    assert.equal(appRoot.stdin, script);
    assert.equal(appRoot.triggers, undefined);

    const fetch = inputs(run.get(LOCAL_CMD, "local-fetch"));
    assert.equal(
      fetch.create,
      `bash -s -- prepare --root /var/tmp/touchdeploy/hello-wsgi --repo ${repo.dir} --commit ${repo.c1}`,
    );
    assert.deepEqual(fetch.triggers, [repo.c1]);
    assert.equal(fetch.stdin, script);

    const release = inputs(run.get(LOCAL_CMD, "local-release"));
    assert.equal(
      release.create,
      `bash -s -- activate --root /var/tmp/touchdeploy/hello-wsgi --commit ${repo.c1} --subdir examples/hello-wsgi` +
        " --reload-file .reload --health-url http\\://127.0.0.1\\:8000/healthz --health-timeout 60 --keep 5" +
        ` --dependency-files 'requirements.txt Aptfile' --container-fingerprint ${String(run.outputs.dependencyFingerprint)}`,
    );
    assert.deepEqual(release.triggers, [repo.c1, "local-container-id"]);
    for (const name of ["local-app-root", "local-fetch", "local-release"]) {
      const cmd = inputs(run.get(LOCAL_CMD, name));
      assert.equal(cmd.delete, undefined, `${name}: no destructive delete command`);
      assert.equal(cmd.addPreviousOutputInEnv, false);
    }
  });

  it("orders app root -> fetch -> container -> release", () => {
    assert.ok(dependsOn(run.get(LOCAL_CMD, "local-fetch"), LOCAL_CMD, "local-app-root"));
    const container = run.get(CONTAINER, "local-container");
    assert.ok(dependsOn(container, LOCAL_CMD, "local-app-root"));
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
      inputs(second.get(LOCAL_CMD, "local-app-root")),
      inputs(first.get(LOCAL_CMD, "local-app-root")),
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
      name: `ghcr.io/acme/rt:${String(run.outputs.dependencyFingerprint)}`,
      keepLocally: true,
    });
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
  it("the docker provider talks to the host over ssh, verifying the same host key", () => {
    assert.deepEqual(inputs(run.get("pulumi:providers:docker", "web3-docker")), {
      host: "ssh://deploy@10.0.0.13:2222",
      sshOpts: JSON.stringify([
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        `KnownHostsCommand=/bin/echo [10.0.0.13]:2222 ssh-ed25519 ${KEY}`,
      ]),
    });
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

describe("GitHub source", () => {
  const HEAD = "feedfacefeedfacefeedfacefeedfacefeedface";
  const files: Record<string, string> = { "requirements.txt": "flask==3.0\n" };
  const invoke = (token: string, args: Record<string, unknown>) => {
    if (token === "github:index/getBranch:getBranch") {
      return {
        repository: args.repository,
        branch: args.branch,
        sha: HEAD,
        ref: `refs/heads/${String(args.branch)}`,
      };
    }
    if (token === "github:index/getRepositoryFile:getRepositoryFile") {
      const content = files[String(args.file)];
      return content === undefined ? {} : { content, sha: "blob", file: args.file };
    }
    throw new Error(`unexpected invoke ${token}`);
  };
  it("GIVEN no pin THEN getBranch gives the commit and the files are read at that exact SHA", async () => {
    const run = await runProgram({
      config: { github: "acme/shop", hosts: ["local local"], "github:token": "ghp_test" },
      secretKeys: ["github:token"],
      invoke,
    });
    assert.equal(run.outputs.commit, HEAD);
    assert.deepEqual(
      run.invokes.map((i) => [i.token, plain<Record<string, unknown>>(i.inputs)]),
      [
        ["github:index/getBranch:getBranch", { repository: "shop", branch: "main" }],
        [
          "github:index/getRepositoryFile:getRepositoryFile",
          { repository: "shop", file: "requirements.txt", branch: HEAD },
        ],
        [
          "github:index/getRepositoryFile:getRepositoryFile",
          { repository: "shop", file: "Aptfile", branch: HEAD },
        ],
      ],
    );
    const provider = run.get("pulumi:providers:github", "github");
    assert.ok(isSecret(provider.inputs.token), "the token is a secret input");
    assert.equal(plain(provider.inputs.token), "ghp_test");
    assert.equal(
      inputs(run.get(LOCAL_CMD, "local-fetch")).create,
      `bash -s -- prepare --root /srv/touchdeploy/app --repo https\\://github.com/acme/shop.git --commit ${HEAD}`,
    );
  });
  it("GIVEN a pin THEN getBranch is not asked and the pin is deployed", async () => {
    const pin = "0123456789abcdef0123456789abcdef01234567";
    const run = await runProgram({ config: { github: "acme/shop", commit: pin }, invoke });
    assert.equal(run.outputs.commit, pin);
    assert.ok(!run.invokes.some((i) => i.token === "github:index/getBranch:getBranch"));
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
      assert.equal(run.ofType(LOCAL_CMD).length, 3);
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
    assert.ok(!JSON.stringify(loaded.config).includes("secret-material"));
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
      case "github:index/getRepositoryFile:getRepositoryFile":
        return {};
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
    hosts: ["web1 ssh://deploy@10.0.0.11", "web2 ssh://deploy@10.0.0.12"],
    hostKeys: [`web1 ssh-ed25519 ${KEY}`, `web2 ssh-ed25519 ${KEY}`],
    sshPrivateKey: PRIVATE_KEY,
    ...extra,
  });

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
      "bash -s -- prepare --root /srv/touchdeploy/shop --repo git\\@github.com\\:acme/shop.git" +
        ` --commit ${HEAD} --ssh-key /srv/touchdeploy/shop/.ssh/deploy_key --known-hosts /srv/touchdeploy/shop/.ssh/known_hosts`,
    );
    assert.ok(dependsOn(fetch, REMOTE_CMD, "web1-fetch-key"));
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
