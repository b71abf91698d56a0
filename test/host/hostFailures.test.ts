/**
 * Issue 10's defects, one test each (named "defect N: ..."), against the stand-in server: after
 * any failure the live release is one that passed its health check, every external command has
 * a deadline, signals are honoured at once, and a full disk or a damaged cache does not wedge a
 * root. Each of these failed on the script before the fix (TOUCHDEPLOY_SCRIPT, see harness.ts).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { start } from "../harness/process";
import { startSlowGitServer } from "../harness/slowGitServer";
import {
  APP,
  describeRun,
  errorLine,
  EXIT,
  fakeTools,
  hostGate,
  runScript,
  setupFixture,
  short,
  startPaused,
  startScript,
  waitFor,
  SCRIPT_PATH,
  type Fixture,
} from "./support/harness";

/** Waits until `text` shows in the run's stdout so far (an event), then returns. */
async function untilStdout(
  run: { stdout: () => string },
  text: RegExp,
  timeoutMs = 10_000,
): Promise<void> {
  await waitFor(`${text} in the output`, () => (text.test(run.stdout()) ? true : undefined), {
    timeoutMs,
    intervalMs: 10,
    describeLast: () => run.stdout(),
  });
}

/** startScript with its stdout readable while it runs. */
function startWatched(args: string[], extraEnv: NodeJS.ProcessEnv = {}) {
  let stdout = "";
  const run = startScript(args, { extraEnv, onStdout: (c) => (stdout += c) });
  return { run, stdout: () => stdout };
}

describe("issue 10 defects", hostGate(), () => {
  let fx: Fixture;
  let a: string;
  before(async () => {
    fx = await setupFixture("defects");
    a = await fx.repo.head();
    const r = await fx.deploy(a);
    assert.equal(r.code, EXIT.ok, describeRun(r));
  });
  after(async () => {
    await fx?.cleanup();
  });

  /** The release live now, as the root and the server both say. */
  async function live(): Promise<string> {
    const { current } = fx.state();
    assert.ok(current, "nothing is current");
    await fx.server().waitServing(current);
    return current;
  }

  it("defect 1: a failure after the switch (the trigger cannot be touched) switches back: exit 6", async () => {
    const before = await live();
    const previous = fx.state().previous;
    const b = await fx.repo.commit("defect 1");
    // The old script touched releases/<sha> after the switch, the new one only the trigger.
    const env = fakeTools(fx.dir, { touch: "*/.reload|*/releases/*" });
    const r = await fx.deploy(b, [], { extraEnv: env });
    assert.equal(r.code, EXIT.rolledBack, describeRun(r));
    assert.equal(
      errorLine(r),
      `touchdeploy: error: could not deploy ${short(b)}: cannot touch the reload trigger ${fx.root}/.reload as uid 0 (root) (gone, not a plain file, or not ours); switched back: commit ${short(before)} is serving again; fix what failed and deploy again`,
    );
    const state = fx.state();
    assert.deepEqual([state.current, state.previous, state.leftovers], [before, previous, []]);
    assert.deepEqual(await fx.server().get(), { status: 200, revision: before });
  });

  it("defect 2: a commit whose objects a failed fetch left half-written is fetched again, not wedged", async () => {
    const repoGit = path.join(fx.root, "repo.git");
    const git = (...args: string[]) =>
      spawnSync("git", ["-C", repoGit, ...args], { encoding: "utf8" });
    // The commit object alone (a fetch that ran out of disk after writing it): the old script
    // took it for "in the cache", and every deploy then failed "not a tree object".
    const c = await fx.repo.commit("defect 2, commit without its tree");
    const object = spawnSync("git", ["-C", fx.repo.origin, "cat-file", "commit", c]).stdout;
    const written = spawnSync(
      "git",
      ["-C", repoGit, "hash-object", "-t", "commit", "-w", "--stdin"],
      {
        input: object,
        encoding: "utf8",
      },
    );
    assert.equal(written.stdout.trim(), c);
    const r1 = await fx.deploy(c);
    assert.equal(r1.code, EXIT.ok, describeRun(r1));
    assert.deepEqual(await fx.server().get(), { status: 200, revision: c });

    // Fetched before, then one of its objects lost: the ref makes git think it has it all.
    const d = await fx.repo.commit("defect 2, a blob lost");
    const fetched = await runScript(fx.args("fetch", "--repo", fx.repo.origin, "--commit", d));
    assert.equal(fetched.code, EXIT.ok, describeRun(fetched));
    const blob = git("rev-parse", `${d}:${APP}/app.py`).stdout.trim();
    const loose = path.join(repoGit, "objects", blob.slice(0, 2), blob.slice(2));
    assert.ok(fs.existsSync(loose), "the fetch stored the blob loose");
    fs.rmSync(loose, { force: true });
    spawnSync("chmod", ["-R", "u+w", path.join(fx.root, "releases", d)]);
    fs.rmSync(path.join(fx.root, "releases", d), { recursive: true });
    const r2 = await fx.deploy(d);
    assert.equal(r2.code, EXIT.ok, describeRun(r2));
    assert.match(
      r2.stdout,
      new RegExp(`touchdeploy: clean +${short(d)} is incomplete in repo.git: starting a new cache`),
    );
    assert.deepEqual(await fx.server().get(), { status: 200, revision: d });
  });

  it("defect 3: a stalled remote ends at --fetch-timeout (exit 4), and SIGTERM mid-fetch is honoured at once", async () => {
    const before = await live();
    const e = await fx.repo.commit("defect 3");
    const slow = await startSlowGitServer(fx.repo.origin, 60_000);
    try {
      const args = fx.deployArgs(e);
      args[args.indexOf("--repo") + 1] = slow.url;
      const timedOut = await runScript([...args, "--fetch-timeout", "2"]);
      assert.equal(timedOut.code, EXIT.missing, describeRun(timedOut));
      assert.equal(
        errorLine(timedOut),
        `touchdeploy: error: fetch of ${short(e)} from ${slow.url} failed: timed out after 2s (--fetch-timeout) (check the URL and the network)`,
      );
      // A generous bound, well under the server's 60 s stall: 2 s plus timeout's kill grace.
      assert.ok(timedOut.durationMs < 15_000, `took ${timedOut.durationMs} ms`);

      const requests = slow.requests();
      const watched = startWatched(args);
      await waitFor(
        "the fetch to reach the stalled server",
        () => slow.requests() > requests || undefined,
        {
          timeoutMs: 10_000,
          intervalMs: 10,
        },
      );
      const t0 = Date.now();
      process.kill(watched.run.pid, "SIGTERM");
      const r = await watched.run.result;
      const took = Date.now() - t0;
      assert.equal(r.code, 143, describeRun(r));
      assert.equal(
        errorLine(r),
        "touchdeploy: error: interrupted by SIGTERM during the fetch step: nothing live changed; run it again",
      );
      assert.ok(took < 3000, `SIGTERM took ${took} ms to end the run`);
      assert.deepEqual(fx.state().leftovers, []);
      assert.equal(fx.state().current, before);
    } finally {
      await slow.close();
    }
  });

  it("defect 3: a run waiting for the lock honours SIGTERM at once", async () => {
    const held = await startLockHolder(fx.root);
    try {
      const watched = startWatched(fx.deployArgs(a, "--lock-timeout", "60"));
      await untilStdout(watched, /is locked by another deploy/);
      const t0 = Date.now();
      process.kill(watched.run.pid, "SIGTERM");
      const r = await watched.run.result;
      assert.equal(r.code, 143, describeRun(r));
      assert.equal(
        errorLine(r),
        "touchdeploy: error: interrupted by SIGTERM during the lock step: nothing live changed; run it again",
      );
      assert.ok(Date.now() - t0 < 3000, `SIGTERM took ${Date.now() - t0} ms`);
    } finally {
      await held.release();
    }
  });

  it("defect 4: on a full disk a rollback still works, and a fetch that fails leaves nothing behind", async (t) => {
    const asRoot = process.getuid?.() === 0;
    const unshare = asRoot
      ? ["-m", "--propagation", "private"]
      : ["-r", "-m", "--propagation", "private"];
    if (spawnSync("unshare", [...unshare, "true"]).status !== 0) {
      t.skip("cannot make a private mount namespace here (unshare) for a small tmpfs");
      return;
    }
    const b = await fx.repo.commit("defect 4, B");
    // Bigger than the whole (3 MB) file system: its fetch runs out of space.
    const big = await fx.repo.commitBytes("big.bin", randomBytes(4_000_000), "a big file");
    const root = path.join(fx.dir, "diskfull", "root");
    fs.mkdirSync(root, { recursive: true });
    const r = spawnSync(
      "unshare",
      [
        ...unshare,
        "bash",
        path.join(__dirname, "support", "diskfull.sh"),
        SCRIPT_PATH,
        root,
        fx.repo.origin,
        a,
        b,
        big,
        APP,
      ],
      { encoding: "utf8", timeout: 120_000 },
    );
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const got = Object.fromEntries(
      r.stdout
        .split("\n")
        .filter((l) => l.includes("="))
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    assert.equal(got.ROLLBACK_EXIT, "0", r.stdout);
    assert.equal(got.CURRENT, `releases/${a}`);
    assert.equal(got.PREVIOUS, `releases/${b}`);
    assert.equal(got.FETCH_EXIT, String(EXIT.missing), r.stdout);
    assert.match(
      got.FETCH_ERR,
      /^touchdeploy: error: fetch of \w+ from .* failed: .*No space left/,
    );
    assert.equal(got.DEBRIS, "", "temporary packs or objects left behind");
    // What the failed fetch wrote is gone again (a page or two of refs and logs aside).
    assert.ok(
      Number(got.FREE_AFTER) >= Number(got.FREE_BEFORE) - 16384,
      `free before ${got.FREE_BEFORE}, after ${got.FREE_AFTER}`,
    );
  });

  it("defect 5: a release prune cannot remove is a warning; the deploy stands (exit 0)", async () => {
    const f1 = await fx.repo.commit("defect 5, one");
    const f2 = await fx.repo.commit("defect 5, two");
    for (const sha of [f1, f2]) assert.equal((await fx.deploy(sha)).code, EXIT.ok);
    // After f3 with --keep 1, f1 is neither current, previous, nor the newest live one: pruned.
    const stuck = f1;
    const f3 = await fx.repo.commit("defect 5, three");
    const env = fakeTools(fx.dir, { rm: `*/releases/${stuck}` });
    const r = await fx.deploy(f3, ["--keep", "1"], { extraEnv: env });
    assert.equal(r.code, EXIT.ok, describeRun(r));
    assert.match(
      r.stderr,
      new RegExp(
        `^touchdeploy: warning: prune: could not remove releases/${short(stuck)} \\(rm: cannot do it to '.*': Permission denied\\): remove it by hand$`,
        "m",
      ),
    );
    assert.equal(fx.state().current, f3);
    assert.ok(fx.state().releases.includes(stuck));
    assert.deepEqual(await fx.server().get(), { status: 200, revision: f3 });
  });

  it("defect 6: a server answering in 0.6 s is running: reloaded at once, not after --health-timeout", async () => {
    const server = fx.server();
    await live();
    const g = await fx.repo.commit("defect 6, slow endpoint");
    await server.control({ delay_ms: 600 });
    try {
      const loads = server.loads();
      const r = await fx.deploy(g, ["--health-timeout", "30"]);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.doesNotMatch(r.stdout, /touchdeploy: start /, "taken for a server that is starting");
      assert.match(r.stdout, /touchdeploy: reload +touched \.reload/);
      assert.equal(server.loads(), loads + 1);
      // Generous: the old script waited the whole 30 s before it touched.
      assert.ok(r.durationMs < 15_000, `took ${r.durationMs} ms`);
    } finally {
      await server.control({ delay_ms: 0 });
    }
  });

  it("defect 6: the dependency guard fails closed: a slow server's fingerprint is read, a silent one refuses", async () => {
    const server = fx.server();
    const before = await live();
    const h = await fx.repo.commit("defect 6, guarded");
    const wrong = "0".repeat(64);
    await server.control({ delay_ms: 2500, fingerprint: wrong });
    try {
      const r = await fx.deploy(h, [
        "--dependency-files",
        "requirements.txt",
        "--health-timeout",
        "10",
      ]);
      assert.equal(r.code, EXIT.dependencies, describeRun(r));
      assert.match(
        errorLine(r),
        new RegExp(
          `^touchdeploy: error: commit ${short(h)} has dependency fingerprint [0-9a-f]{64} but the container runs ${wrong} \\(from the X-Touchdeploy-Fingerprint of ${server.healthUrl}\\)`,
        ),
      );
      await server.control({ delay_ms: 0, up: false });
      const silent = await fx.deploy(h, ["--dependency-files", "requirements.txt"]);
      assert.equal(silent.code, EXIT.dependencies, describeRun(silent));
      assert.match(
        errorLine(silent),
        new RegExp(
          `^touchdeploy: error: cannot check the dependencies of ${short(h)}: the container's fingerprint is unknown \\(no --container-fingerprint, and ${server.healthUrl}: it did not answer .*\\): pass --container-fingerprint`,
        ),
      );
    } finally {
      await server.control({ delay_ms: 0, fingerprint: "", up: true });
    }
    assert.equal(fx.state().current, before);
    await server.waitServing(before);
  });

  for (const sig of ["SIGTERM", "SIGHUP"] as const) {
    it(`defect 8: ${sig} during the health wait switches back: exit 6, one error line`, async () => {
      const before = await live();
      const previous = fx.state().previous;
      const broken = await fx.repo.commitBroken();
      const watched = startWatched(fx.deployArgs(broken, "--health-timeout", "20"));
      await untilStdout(watched, /touchdeploy: health /);
      process.kill(watched.run.pid, sig);
      const r = await watched.run.result;
      assert.equal(r.code, EXIT.rolledBack, describeRun(r));
      assert.equal(
        errorLine(r),
        `touchdeploy: error: could not deploy ${short(broken)}: interrupted by ${sig} during the health step; switched back: commit ${short(before)} is serving again; deploy again when ready`,
      );
      assert.equal(r.stderr.split("\n").filter(Boolean).length, 1, r.stderr);
      const state = fx.state();
      assert.deepEqual([state.current, state.previous, state.leftovers], [before, previous, []]);
      assert.deepEqual(await fx.server().get(), { status: 200, revision: before });
    });
  }

  it("defect 9: removing the lock file while a deploy holds the lock does not let a second one in", async () => {
    const i = await fx.repo.commit("defect 9");
    const slow = await startSlowGitServer(fx.repo.origin, 60_000);
    const args = fx.deployArgs(i);
    args[args.indexOf("--repo") + 1] = slow.url;
    const first = startWatched(args);
    try {
      await waitFor("the first deploy to fetch", () => slow.requests() > 0 || undefined, {
        timeoutMs: 10_000,
        intervalMs: 10,
      });
      fs.rmSync(path.join(fx.root, ".lock"), { force: true });
      const second = await runScript(fx.deployArgs(a, "--lock-timeout", "1"));
      assert.equal(second.code, EXIT.lockTimeout, describeRun(second));
      assert.match(errorLine(second), /timed out after 1s waiting for the lock on /);
    } finally {
      process.kill(first.run.pid, "SIGTERM");
      await first.run.result;
      await slow.close();
    }
  });

  it("defect 10: a deploy killed between the two renames is switched back by the next run; rollback then is that", async () => {
    const before = await live();
    const previous = fx.state().previous;
    const j = await fx.repo.commit("defect 10");
    const paused = startPaused(fx.dir, "switch:links", fx.deployArgs(j));
    await paused.paused;
    paused.signal("SIGKILL");
    await paused.run.result;
    // Killed with previous renamed and current not yet: the journal says how to go back.
    assert.equal(fx.state().previous, before);
    const status = await runScript(fx.args("status"));
    assert.equal(status.code, EXIT.ok, describeRun(status));
    assert.equal(status.stdout, `${before}\n`);
    const r = await runScript(fx.args("rollback", ...fx.releaseArgs()));
    assert.equal(r.code, EXIT.ok, describeRun(r));
    assert.match(
      r.stdout,
      new RegExp(
        `touchdeploy: recover +a run that was killed left releases/${short(j)} unverified: current -> releases/${short(before)}`,
      ),
    );
    assert.match(
      r.stdout,
      new RegExp(
        `touchdeploy: rollback the interrupted deploy of ${short(j)} was switched back: ${short(before)} is current again`,
      ),
    );
    const state = fx.state();
    assert.deepEqual([state.current, state.previous, state.leftovers], [before, previous, []]);
    await fx.server().waitServing(before);
  });

  it("defect 11: refs of commits whose release is gone are pruned, with the fallback's branch refs", async () => {
    const k = await fx.repo.commit("defect 11, fetched only");
    const fetched = await runScript(fx.args("fetch", "--repo", fx.repo.origin, "--commit", k));
    assert.equal(fetched.code, EXIT.ok, describeRun(fetched));
    spawnSync("chmod", ["-R", "u+w", path.join(fx.root, "releases", k)]);
    fs.rmSync(path.join(fx.root, "releases", k), { recursive: true });
    const l = await fx.repo.commit("defect 11, deployed");
    const r = await fx.deploy(l);
    assert.equal(r.code, EXIT.ok, describeRun(r));
    const refs = spawnSync(
      "git",
      ["-C", path.join(fx.root, "repo.git"), "for-each-ref", "--format=%(refname)"],
      { encoding: "utf8" },
    ).stdout;
    // Every ref is a release's (a cache made afresh may have fewer), and no branch refs stay.
    const releases = fx.state().releases;
    const names = refs.trim().split("\n");
    assert.ok(names.includes(`refs/touchdeploy/commits/${l}`), refs);
    assert.deepEqual(
      names.filter((ref) => !releases.some((sha) => ref === `refs/touchdeploy/commits/${sha}`)),
      [],
    );
  });

  it("defect 11: an exported GIT_DIR, GIT_OBJECT_DIRECTORY or TAR_OPTIONS changes nothing", async () => {
    const m = await fx.repo.commit("defect 11, hostile environment");
    const r = await fx.deploy(m, [], {
      extraEnv: {
        GIT_DIR: path.join(fx.dir, "elsewhere.git"),
        GIT_OBJECT_DIRECTORY: path.join(fx.dir, "elsewhere-objects"),
        TAR_OPTIONS: "--exclude=*.py",
      },
    });
    assert.equal(r.code, EXIT.ok, describeRun(r));
    assert.ok(fs.existsSync(path.join(fx.root, "releases", m, APP, "app.py")), "app.py extracted");
    assert.equal(fs.existsSync(path.join(fx.dir, "elsewhere.git")), false);
  });

  it("defect 11: prune never follows a symlink named like a release out of the root", async () => {
    const outside = path.join(fx.dir, "outside");
    fs.mkdirSync(outside, { recursive: true });
    fs.writeFileSync(path.join(outside, "file"), "not touchdeploy's\n", { mode: 0o444 });
    fs.chmodSync(outside, 0o555);
    const fake = "f".repeat(40);
    fs.symlinkSync(outside, path.join(fx.root, "releases", fake));
    const n = await fx.repo.commit("defect 11, symlink");
    const r = await fx.deploy(n, ["--keep", "1"]);
    assert.equal(r.code, EXIT.ok, describeRun(r));
    assert.match(
      r.stderr,
      new RegExp(
        `touchdeploy: warning: prune: releases/${fake} is a symlink, not a release: left alone`,
      ),
    );
    assert.equal(fs.statSync(outside).mode & 0o777, 0o555);
    assert.equal(fs.statSync(path.join(outside, "file")).mode & 0o777, 0o444);
    fs.rmSync(path.join(fx.root, "releases", fake));
  });

  it("defect 11: an empty --dependency-files means no dependency check (not a bogus exit 5)", async () => {
    const o = await fx.repo.commit("defect 11, empty list");
    const r = await fx.deploy(o, ["--dependency-files", ""]);
    assert.equal(r.code, EXIT.ok, describeRun(r));
    assert.doesNotMatch(r.stdout, /touchdeploy: deps /);
    assert.equal(r.stderr, "");
  });

  it("defect 11: an extraction that fails is one error line, exit 4", async () => {
    const before = await live();
    const p = await fx.repo.commit("defect 11, tar fails");
    const env = fakeTools(fx.dir, { tar: "*/releases/.tmp-*" });
    const r = await fx.deploy(p, [], { extraEnv: env });
    assert.equal(r.code, EXIT.missing, describeRun(r));
    assert.match(
      errorLine(r),
      new RegExp(
        `^touchdeploy: error: could not extract ${short(p)} into ${fx.root}/releases: tar: cannot do it to '.*': Permission denied \\(disk full\\?\\)$`,
      ),
    );
    assert.equal(r.stderr.split("\n").filter(Boolean).length, 1, r.stderr);
    assert.deepEqual(fx.state().leftovers, []);
    assert.equal(fx.state().current, before);
  });

  it("defect 11: 'not writable' is one line for a uid without a name", (t) => {
    if (process.getuid?.() !== 0) {
      t.skip("needs root to run the script as a uid without a name");
      return;
    }
    const root = path.join(fx.dir, "owned-by-root");
    fs.mkdirSync(root, { mode: 0o755 });
    const r = spawnSync(
      "setpriv",
      [
        "--reuid=4321",
        "--regid=4321",
        "--clear-groups",
        "bash",
        "-s",
        "--",
        "init",
        "--root",
        root,
      ],
      { input: fs.readFileSync(SCRIPT_PATH, "utf8"), encoding: "utf8", cwd: "/" },
    );
    assert.equal(r.status, EXIT.unexpected, r.stderr);
    assert.equal(
      r.stderr,
      `touchdeploy: error: --root ${root} is not writable by uid 4321: create it for the deploy user\n`,
    );
  });
});

/** Holds a root's lock the way both the old (.lock) and the new (the directory) scripts take it. */
async function startLockHolder(root: string): Promise<{ release(): Promise<void> }> {
  // Its own process group: flock's children hold the lock too and must die with it.
  const child = start("flock", [root, "flock", path.join(root, ".lock"), "sleep", "60"], {
    detached: true,
    timeoutMs: 90_000,
  });
  await waitFor(
    "the test's flock to hold the lock",
    () =>
      spawnSync("flock", ["-n", path.join(root, ".lock"), "true"]).status !== 0 ? true : undefined,
    { timeoutMs: 5000, intervalMs: 10 },
  );
  return {
    release: async () => {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // gone
      }
      await child.result;
    },
  };
}
