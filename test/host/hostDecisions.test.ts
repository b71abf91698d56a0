/**
 * Issue 10's questionable cases, as decided (host/README.md, "Decisions"), one test each
 * ("questionable N: ..."). Each failed on the script before the decision was implemented.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  APP,
  describeRun,
  errorLine,
  EXIT,
  hostGate,
  runScript,
  setupFixture,
  short,
  startPaused,
  SCRIPT_PATH,
  type Fixture,
} from "./support/harness";

/** Makes a tree the script made read-only removable again, and removes it. */
function removeRelease(root: string, sha: string): void {
  spawnSync("chmod", ["-R", "u+w", path.join(root, "releases", sha)]);
  fs.rmSync(path.join(root, "releases", sha), { recursive: true });
}

describe("issue 10 questionable cases, decided", hostGate(), () => {
  let fx: Fixture;
  let a: string;
  before(async () => {
    fx = await setupFixture("decisions");
    a = await fx.repo.head();
    const r = await fx.deploy(a);
    assert.equal(r.code, EXIT.ok, describeRun(r));
  });
  after(async () => {
    await fx?.cleanup();
  });

  it("questionable 1: a uwsgi.ini symlink out of the release is refused (exit 2); one within it is fine", async () => {
    const ini = path.join(fx.repo.repo.work, APP, "uwsgi.ini");
    const text = fs.readFileSync(ini);
    fs.rmSync(ini);
    fs.symlinkSync("/etc/hostname", ini);
    const out = await fx.repo.repo.commit("uwsgi.ini points out of the release");
    const r = await fx.deploy(out);
    assert.equal(r.code, EXIT.badInput, describeRun(r));
    assert.equal(
      errorLine(r),
      `touchdeploy: error: commit ${short(out)} has no ${APP}/uwsgi.ini inside the release (it points to /etc/hostname): check --subdir (the app's directory in the repository); nothing was switched`,
    );
    assert.equal(fx.state().current, a);

    fs.rmSync(ini);
    fs.writeFileSync(path.join(fx.repo.repo.work, "examples", "shared-uwsgi.ini"), text);
    fs.symlinkSync("../shared-uwsgi.ini", ini);
    const within = await fx.repo.repo.commit("uwsgi.ini points within the release");
    const ok = await fx.deploy(within);
    assert.equal(ok.code, EXIT.ok, describeRun(ok));
    fs.rmSync(ini);
    fs.writeFileSync(ini, text);
    a = await fx.repo.repo.commit("uwsgi.ini back");
    assert.equal((await fx.deploy(a)).code, EXIT.ok);
  });

  it("questionable 2: a REVISION directory in the commit is replaced by touchdeploy's REVISION file", async () => {
    fs.mkdirSync(path.join(fx.repo.repo.work, "REVISION"));
    fs.writeFileSync(path.join(fx.repo.repo.work, "REVISION", "x"), "not a revision\n");
    const sha = await fx.repo.repo.commit("a REVISION directory");
    const r = await fx.deploy(sha);
    assert.equal(r.code, EXIT.ok, describeRun(r));
    assert.equal(fs.readFileSync(path.join(fx.root, "releases", sha, "REVISION"), "utf8"), sha);
    assert.deepEqual(await fx.server().get(), { status: 200, revision: sha });
    fs.rmSync(path.join(fx.repo.repo.work, "REVISION"), { recursive: true });
    a = await fx.repo.repo.commit("no REVISION directory");
    assert.equal((await fx.deploy(a)).code, EXIT.ok);
  });

  it("questionable 3: a failed deploy over a dangling current switches back to a valid previous (exit 6)", async () => {
    const p = await fx.repo.commit("q3 previous");
    const q = await fx.repo.commit("q3 current, then deleted");
    for (const sha of [p, q]) assert.equal((await fx.deploy(sha)).code, EXIT.ok);
    removeRelease(fx.root, q);
    const broken = await fx.repo.commitBroken();
    const r = await fx.deploy(broken, ["--health-timeout", "1"]);
    assert.equal(r.code, EXIT.rolledBack, describeRun(r));
    assert.match(
      r.stderr,
      new RegExp(
        `^touchdeploy: warning: current points to a missing or incomplete release \\(releases/${q}\\): if this fails, switching back goes to previous \\(${short(p)}\\)$`,
        "m",
      ),
    );
    assert.match(errorLine(r), new RegExp(`switched back: commit ${short(p)} is serving again`));
    assert.equal(fx.state().current, p);
    assert.deepEqual(await fx.server().get(), { status: 200, revision: p });
    a = p;
  });

  it("questionable 3: a rollback to previous over a dangling current that fails is not switched back onto itself", async () => {
    const local = await setupFixture("decisions-dangling", { healthTimeout: 1 });
    try {
      const broken = await local.repo.commitBroken();
      const fetched = await runScript(
        local.args("fetch", "--repo", local.repo.origin, "--commit", broken),
      );
      assert.equal(fetched.code, EXIT.ok, describeRun(fetched));
      // Made by hand: previous is the broken release, current points to one that is gone.
      fs.symlinkSync(`releases/${broken}`, path.join(local.root, "previous"));
      fs.symlinkSync(`releases/${"d".repeat(40)}`, path.join(local.root, "current"));
      const r = await runScript(local.args("rollback", ...local.releaseArgs()));
      assert.equal(r.code, EXIT.urgent, describeRun(r));
      assert.match(
        errorLine(r),
        new RegExp(`^touchdeploy: error: URGENT: could not roll back to ${short(broken)}: `),
      );
      assert.equal(fs.readlinkSync(path.join(local.root, "current")), `releases/${"d".repeat(40)}`);
      assert.deepEqual(local.state().leftovers, []);
    } finally {
      await local.cleanup();
    }
  });

  it("questionable 4: rollback or release on a mistyped root changes nothing and creates nothing", async () => {
    const typo = path.join(fx.dir, "no-such-root");
    const rollback = await runScript(["rollback", "--root", typo]);
    assert.equal(rollback.code, EXIT.nothingLive, describeRun(rollback));
    assert.equal(
      errorLine(rollback),
      `touchdeploy: error: nothing is live under ${typo} (no such directory; is --root right?): nothing to roll back`,
    );
    const release = await runScript(["release", "--root", typo, "--commit", a]);
    assert.equal(release.code, EXIT.missing, describeRun(release));
    const status = await runScript(["status", "--root", typo]);
    assert.equal(status.code, EXIT.nothingLive, describeRun(status));
    assert.equal(fs.existsSync(typo), false);
  });

  it("questionable 5: a reload trigger that is a symlink out of the root is refused, never followed", async () => {
    const root = path.join(fx.dir, "symlinked-trigger");
    assert.equal((await runScript(["setup", "--root", root])).code, EXIT.ok);
    const outside = path.join(fx.dir, "outside-file");
    fs.writeFileSync(outside, "not touchdeploy's\n");
    fs.utimesSync(outside, 1_000_000, 1_000_000);
    fs.rmSync(path.join(root, ".reload"));
    fs.symlinkSync(outside, path.join(root, ".reload"));
    const r = await runScript([
      "deploy",
      "--root",
      root,
      "--repo",
      fx.repo.origin,
      "--commit",
      a,
      "--subdir",
      APP,
    ]);
    assert.equal(r.code, EXIT.unexpected, describeRun(r));
    assert.equal(
      errorLine(r),
      `touchdeploy: error: the reload trigger ${root}/.reload is not a plain file (a symlink or a directory): remove it; touchdeploy creates it`,
    );
    assert.equal(fs.statSync(outside).mtimeMs, 1_000_000_000);
    assert.equal(fs.existsSync(path.join(root, "current")), false);
  });

  it("questionable 6: a release fetched for another run is not pruned by a deploy with --keep 1", async () => {
    const pending = await fx.repo.commit("q6 fetched, released later");
    const fetched = await runScript(
      fx.args("fetch", "--repo", fx.repo.origin, "--commit", pending),
    );
    assert.equal(fetched.code, EXIT.ok, describeRun(fetched));
    const other = await fx.repo.commit("q6 deployed meanwhile");
    const r = await fx.deploy(other, ["--keep", "1"]);
    assert.equal(r.code, EXIT.ok, describeRun(r));
    assert.ok(fx.state().releases.includes(pending), "the fetched release was pruned");
    const released = await runScript(fx.args("release", "--commit", pending, ...fx.releaseArgs()));
    assert.equal(released.code, EXIT.ok, describeRun(released));
    assert.deepEqual(await fx.server().get(), { status: 200, revision: pending });
    a = pending;
  });

  it("questionable 7: prune goes by deploy order: a failed release goes before good ones", async () => {
    const local = await setupFixture("decisions-prune");
    try {
      const good: string[] = [];
      for (const n of [1, 2, 3]) {
        const sha = await local.repo.commit(`q7 good ${n}`);
        assert.equal((await local.deploy(sha, ["--keep", "10"])).code, EXIT.ok);
        good.push(sha);
      }
      const broken = await local.repo.commitBroken();
      const failed = await local.deploy(broken, ["--keep", "10", "--health-timeout", "1"]);
      assert.equal(failed.code, EXIT.rolledBack, describeRun(failed));
      const last = await local.repo.commit("q7 good 4");
      const r = await local.deploy(last, ["--keep", "3"]);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.deepEqual(local.state().releases, [good[1], good[2], last].sort());
    } finally {
      await local.cleanup();
    }
  });

  it("questionable 8: an https health URL whose TLS fails is refused before the switch (exit 2)", async () => {
    const b = await fx.repo.commit("q8");
    const https = fx.server().healthUrl.replace("http://", "https://");
    const args = fx.deployArgs(b);
    args[args.indexOf("--health-url") + 1] = https;
    const r = await runScript(args);
    assert.equal(r.code, EXIT.badInput, describeRun(r));
    assert.match(
      errorLine(r),
      new RegExp(
        `^touchdeploy: error: --health-url ${https}: TLS failed \\(.+\\): the health check talks to the container's port, use http://127\\.0\\.0\\.1:PORT/\\.\\.\\.; nothing was switched$`,
      ),
    );
    assert.doesNotMatch(r.stdout, /touchdeploy: switch /);
    assert.equal(fx.state().current, a);
  });

  it("questionable 9: a cache the deploy user cannot write is named as such (exit 1), not as a network problem", async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip("needs root to run the script as another user");
      return;
    }
    const root = path.join(fx.dir, "foreign-cache");
    assert.equal((await runScript(["setup", "--root", root])).code, EXIT.ok);
    // Everything the deploy user's, but repo.git (as after a deploy run once as root).
    for (const entry of fs.readdirSync(root)) {
      if (entry !== "repo.git") spawnSync("chown", ["-R", "4321:4321", path.join(root, entry)]);
    }
    fs.chownSync(root, 4321, 4321);
    const r = spawnSync(
      "setpriv",
      [
        "--reuid=4321",
        "--regid=4321",
        "--clear-groups",
        "bash",
        "-s",
        "--",
        "prepare",
        "--root",
        root,
        "--repo",
        fx.repo.origin,
        "--commit",
        a,
      ],
      { input: fs.readFileSync(SCRIPT_PATH, "utf8"), encoding: "utf8", cwd: "/" },
    );
    assert.equal(r.status, EXIT.unexpected, r.stdout + r.stderr);
    assert.equal(
      r.stderr,
      `touchdeploy: error: the cache ${root}/repo.git is not writable by uid 4321: chown it to the deploy user, or remove ${root}/repo.git (it is only a cache)\n`,
    );
  });

  it("questionable 10: after a kill between switch and touch, status names the release that passed its check", async () => {
    const b = await fx.repo.commit("q10");
    const run = startPaused(fx.dir, "reload", fx.deployArgs(b));
    await run.paused;
    run.signal("SIGKILL");
    await run.run.result;
    run.resume();
    assert.equal(fx.state().current, b, "killed after the switch");
    const status = await runScript(fx.args("status"));
    assert.equal(status.code, EXIT.ok, describeRun(status));
    assert.equal(status.stdout, `${a}\n`);
    assert.equal(
      status.stderr,
      `touchdeploy: warning: a run was killed after switching current to releases/${b} and before it passed its health check: the next setup, fetch, release, deploy or rollback switches back to ${a}\n`,
    );
    // The server never loaded it, and the next run switches back.
    assert.deepEqual(await fx.server().get(), { status: 200, revision: a });
    const next = await runScript(fx.args("setup"));
    assert.equal(next.code, EXIT.ok, describeRun(next));
    assert.equal(fx.state().current, a);
    assert.deepEqual(fx.state().leftovers, []);
  });
});
