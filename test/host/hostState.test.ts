/**
 * The state directories and the container's user (issue 11): `setup --state-dirs` makes
 * `<root>/state/<name>` private to the container's user and never touches them again (deploys,
 * destroy), `setup` reports that user, a container running as another uid than a non-root
 * deploy user is refused before anything changes (exit 5), and the new options are validated
 * like every option (`check` included).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  APP,
  describeRun,
  encodePayload,
  errorLine,
  EXIT,
  fakeDocker,
  hostGate,
  makeScratchDir,
  removeTree,
  runScript,
  SCRIPT_PATH,
  setupFixture,
  type Fixture,
} from "./support/harness";

const SHA = "0123456789abcdef0123456789abcdef01234567";
const asRoot = process.getuid?.() === 0;

describe("state directories and the container's user", hostGate(), () => {
  let dir: string;
  before(() => {
    dir = makeScratchDir("host-state");
  });
  after(() => removeTree(dir));

  it("setup --state-dirs makes each 0700 for the container's user, reports that user, and never changes them again", async () => {
    const root = path.join(dir, "root");
    const r = await runScript(["setup", "--root", root, "--state-dirs", "data media"]);
    assert.equal(r.code, EXIT.ok, describeRun(r));
    const user = asRoot ? "10001:10001" : `${process.getuid?.()}:${process.getgid?.()}`;
    assert.equal(
      r.stdout,
      [
        `touchdeploy: state    created state/data (mode 700, owner ${user})`,
        `touchdeploy: state    created state/media (mode 700, owner ${user})`,
        `touchdeploy: setup    ${root} ready (releases/, shared/, repo.git, .reload, state/: data media)`,
        `touchdeploy: user ${user}`,
        "",
      ].join("\n"),
    );
    for (const name of ["data", "media"]) {
      const st = fs.statSync(path.join(root, "state", name));
      assert.deepEqual([st.mode & 0o7777, `${st.uid}:${st.gid}`], [0o700, user], name);
    }
    // The app's data is never touched again: not by setup, nor by destroy.
    fs.writeFileSync(path.join(root, "state", "data", "db.sqlite3"), "rows");
    fs.chmodSync(path.join(root, "state", "media"), 0o750);
    const again = await runScript(["setup", "--root", root, "--state-dirs", "data media"]);
    assert.equal(again.code, EXIT.ok, describeRun(again));
    assert.doesNotMatch(again.stdout, /created/);
    assert.equal(fs.statSync(path.join(root, "state", "media")).mode & 0o777, 0o750);
    const destroyed = await runScript(["destroy", "--root", root]);
    assert.equal(destroyed.code, EXIT.ok, describeRun(destroyed));
    assert.equal(fs.readFileSync(path.join(root, "state", "data", "db.sqlite3"), "utf8"), "rows");
  });

  it("an existing state directory of another user is a warning; a symlink or a file is refused (exit 1)", async (t) => {
    const root = path.join(dir, "foreign");
    fs.mkdirSync(path.join(root, "state", "data"), { recursive: true });
    if (!asRoot) {
      t.skip("needs root to make a directory of another user");
      return;
    }
    fs.chownSync(path.join(root, "state", "data"), 4321, 4321);
    const r = await runScript(["setup", "--root", root, "--state-dirs", "data"]);
    assert.equal(r.code, EXIT.ok, describeRun(r));
    assert.equal(
      r.stderr,
      `touchdeploy: warning: state/data belongs to uid 4321, not the container's user 10001: the app may not be able to write it (chown -R 10001:10001 ${root}/state/data)\n`,
    );
    fs.symlinkSync("/tmp", path.join(root, "state", "uploads"));
    const link = await runScript(["setup", "--root", root, "--state-dirs", "uploads"]);
    assert.equal(link.code, EXIT.unexpected);
    assert.equal(
      errorLine(link),
      `touchdeploy: error: ${root}/state/uploads is not a directory (a symlink or a file): the container mounts it read-write; move it away`,
    );
  });

  it("a non-root deploy user is the container's user: setup says so, and a container running as another uid is refused (exit 5)", async (t) => {
    if (!asRoot) {
      t.skip("needs root to run the script as another user");
      return;
    }
    const root = path.join(dir, "deployer");
    fs.mkdirSync(root);
    fs.chownSync(root, 4321, 4322);
    const asDeployer = (args: string[], env: NodeJS.ProcessEnv = {}, payload?: Buffer) =>
      spawnSync(
        "setpriv",
        ["--reuid=4321", "--regid=4322", "--clear-groups", "bash", "-s", "--", ...args],
        {
          input: Buffer.concat([fs.readFileSync(SCRIPT_PATH), payload ?? Buffer.alloc(0)]),
          encoding: "utf8",
          cwd: "/",
          env: { ...process.env, ...env },
        },
      );
    const setup = asDeployer(["setup", "--root", root, "--state-dirs", "data"]);
    assert.equal(setup.status, EXIT.ok, setup.stderr);
    assert.match(setup.stdout, /^touchdeploy: user 4321:4322$/m);
    const st = fs.statSync(path.join(root, "state", "data"));
    assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [4321, 4322, 0o700]);
    const fx = await setupFixture("deployer-release", { standin: false });
    try {
      // A container made before, running as the image's uid 10001, could not read the env.
      const docker = fakeDocker(fx.dir, root);
      docker.set({ user: "10001:10001" });
      spawnSync("chmod", ["-R", "a+rwX", fx.dir]);
      fx.repo.repo.chownOrigin(4321, 4322);
      const sha = await fx.repo.head();
      const fetched = asDeployer([
        "fetch",
        "--root",
        root,
        "--repo",
        fx.repo.origin,
        "--commit",
        sha,
      ]);
      assert.equal(fetched.status, EXIT.ok, fetched.stderr);
      const args = ["release", "--root", root, "--commit", sha, "--subdir", APP];
      args.push("--container", docker.name);
      const refused = asDeployer(
        [...args, "--payload", "stdin"],
        docker.env,
        encodePayload([{ secret: "KEY", value: "v" }]),
      );
      assert.equal(refused.status, EXIT.dependencies, refused.stderr);
      assert.equal(
        refused.stderr,
        `touchdeploy: error: container ${docker.name} runs as uid 10001, but the app's env, secrets and state directories belong to the deploy user, uid 4321, and only it can read them: run a container deploy (pulumi up runs the container as the user setup reports); nothing was switched\n`,
      );
      assert.equal(fs.existsSync(path.join(root, "current")), false);
      assert.equal(fs.existsSync(path.join(root, "configs")), false);
      // The container the program makes runs as the deploy user: its env is the deploy user's.
      docker.set({ user: "4321:4322" });
      const released = asDeployer(
        [...args, "--payload", "stdin"],
        docker.env,
        encodePayload([{ secret: "KEY", value: "v" }]),
      );
      assert.equal(released.status, EXIT.ok, released.stdout + released.stderr);
      const secrets = fs.statSync(
        path.join(root, fs.readlinkSync(path.join(root, "config")), "secrets"),
      );
      assert.deepEqual([secrets.uid, secrets.gid, secrets.mode & 0o777], [4321, 4322, 0o600]);
    } finally {
      await fx.cleanup();
    }
  });

  it("validates the new options like every option, in check too", async () => {
    const root = path.join(dir, "checked");
    const good: [string, string[]][] = [
      ["setup", ["--state-dirs", "data media_2 up-loads"]],
      ["setup", ["--state-dirs", ""]],
      [
        "release",
        [
          "--commit",
          SHA,
          "--container",
          "shop-web1",
          "--release-command",
          "python3 manage.py migrate\npython3 manage.py collectstatic --noinput",
          "--release-command-timeout",
          "900",
          "--process-stop-timeout",
          "30",
        ],
      ],
      ["rollback", ["--container", "shop_web1.local", "--process-stop-timeout", "1"]],
    ];
    for (const [sub, extra] of good) {
      const r = await runScript(["check", sub, "--root", root, ...extra]);
      assert.equal(r.code, EXIT.ok, `${sub}: ${describeRun(r)}`);
    }
    const bad: [string[], string][] = [
      [
        ["setup", "--state-dirs", "data Media"],
        "--state-dirs Media: must be a name of lowercase letters, digits, _ and - (at most 31, starting with a letter)",
      ],
      [["setup", "--state-dirs", "data data"], "--state-dirs data: is given twice"],
      [
        ["setup", "--state-dirs", "../etc"],
        "--state-dirs ../etc: must be a name of lowercase letters, digits, _ and - (at most 31, starting with a letter)",
      ],
      [
        ["release", "--commit", SHA, "--container", "-rm"],
        "--container -rm: must be a Docker container name (letters, digits, _ . -; at most 128)",
      ],
      [
        ["release", "--commit", SHA, "--release-command", "true"],
        "--release-command needs --container NAME (it runs in the app's container)",
      ],
      [
        ["release", "--commit", SHA, "--process-stop-timeout", "0"],
        "--process-stop-timeout 0: must be a positive integer (at most 999999)",
      ],
      [
        ["release", "--commit", SHA, "--release-command-timeout", "1m"],
        "--release-command-timeout 1m: must be a positive integer (at most 999999)",
      ],
      [
        ["rollback", "--release-command", "true"],
        "unknown option --release-command for 'rollback' (accepted: --root --to --subdir --reload-file --health-url --health-timeout --container --process-stop-timeout --lock-timeout)",
      ],
      [
        ["fetch", "--repo", "/r", "--commit", SHA, "--payload", "stdin"],
        "unknown option --payload for 'fetch' (accepted: --root --repo --commit --ssh-key --known-hosts --credentials-file --fetch-timeout --lock-timeout)",
      ],
    ];
    for (const [args, message] of bad) {
      const [sub, ...rest] = args;
      for (const run of [["check", sub], [sub]]) {
        const r = await runScript([...run, "--root", root, ...rest]);
        assert.equal(r.code, EXIT.badInput, `${args.join(" ")}: ${describeRun(r)}`);
        assert.equal(errorLine(r), `touchdeploy: error: ${message}`);
      }
    }
    assert.equal(fs.existsSync(root), false);
  });
});

describe("the container's user, as the container reports it", hostGate(), () => {
  let fx: Fixture;
  before(async () => {
    fx = await setupFixture("container-user", { docker: true });
  });
  after(async () => {
    await fx?.cleanup();
  });

  it("a root deploy user writes the env for the uid the container runs as", async (t) => {
    if (!asRoot) {
      t.skip("needs root to chown");
      return;
    }
    fx.container().set({ user: "2345:2346" });
    const r = await fx.deploy(await fx.repo.head(), ["--payload", "stdin"], {
      payload: encodePayload([{ secret: "KEY", value: "v" }]),
    });
    assert.equal(r.code, EXIT.ok, describeRun(r));
    const version = fx.state().config!;
    for (const p of ["configs", `configs/${version}`, `configs/${version}/secrets`]) {
      const st = fs.statSync(path.join(fx.root, p));
      assert.deepEqual([st.uid, st.gid], [2345, 2346], p);
    }
  });
});
