/**
 * When the trigger is touched (issue 9's host script tests): the whole-second mtime bump for a
 * classic touch-reload watcher, uWSGI's startup race (never a touch while workers spawn),
 * "already live" not trusted for a server that does not serve the commit, and prune by deploy
 * order. Deterministic: the stand-in's phases and the script's step boundaries are driven by
 * the test, never by sleeps.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import {
  describeRun,
  EXIT,
  hostGate,
  runScript,
  setupFixture,
  short,
  startPaused,
  startScript,
  waitFor,
} from "./support/harness";

// Each test has its own root and server: they run side by side.
describe("when the trigger is touched", { ...hostGate(), concurrency: 3 }, () => {
  it("a whole-second watcher (touch-reload) sees a deploy in the same second as the last touch", async () => {
    const fx = await setupFixture("touch-reload", { mode: "touch" });
    try {
      const server = fx.server();
      const first = await fx.repo.head();
      assert.equal((await fx.deploy(first)).code, EXIT.ok);
      // The trigger's mtime a second or two ahead, as a deploy in the same second leaves it:
      // the watcher reloads once for it and keeps that second as its mark.
      const mark = Math.floor(Date.now() / 1000) + 2;
      const loads = server.loads();
      fs.utimesSync(path.join(fx.root, ".reload"), mark, mark);
      await server.waitForLoads(loads + 1);
      const next = await fx.repo.commit("same second");
      const run = startPaused(fx.dir, "reload", fx.deployArgs(next));
      await run.paused;
      await waitFor("the clock to reach the mark", () => Date.now() >= mark * 1000 || undefined, {
        timeoutMs: 5000,
        intervalMs: 2,
      });
      // Now a plain touch (now) would leave the mtime in the mark's second: never seen.
      assert.ok(Date.now() < mark * 1000 + 500, "too late in the second to prove anything");
      run.resume();
      const r = await run.run.result;
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.match(r.stdout, new RegExp(`touched \\.reload \\(mtime ${mark + 1}\\)`));
      assert.equal(server.loads(), loads + 2);
      assert.deepEqual(await server.get(), { status: 200, revision: next });
    } finally {
      await fx.cleanup();
    }
  });

  it("a server that comes up on the old release after the switch is touched only once its workers settled", async () => {
    const fx = await setupFixture("race-old");
    try {
      const server = fx.server();
      const live = await fx.repo.head();
      assert.equal((await fx.deploy(live)).code, EXIT.ok);
      // A new container: not listening when the release looks (its first probe), starting on
      // the live release just before the switch. A touch within 400 ms of its workers' spawn
      // is a VIOLATION (and stalls, as uWSGI's does).
      await server.control({ up: false, guard_ms: 400 });
      const next = await fx.repo.commit("after a container deploy");
      const run = startPaused(fx.dir, "switch", fx.deployArgs(next));
      await run.paused;
      const starts = server.eventsOf("start").length;
      await server.control({ up: true });
      await waitFor(
        "the server to start",
        () => server.eventsOf("start").length > starts || undefined,
        {
          timeoutMs: 5000,
          intervalMs: 5,
        },
      );
      run.resume();
      const r = await run.run.result;
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.match(
        r.stdout,
        /touchdeploy: start +the server is not answering yet: waiting for it to start/,
      );
      assert.match(r.stdout, new RegExp(`\\.\\.\\. up on ${short(live)} in \\d`));
      assert.deepEqual(server.eventsOf("VIOLATION"), []);
      assert.equal(server.eventsOf("reload").length, 1, "exactly one reload");
      assert.deepEqual(await server.get(), { status: 200, revision: next });
    } finally {
      await fx.cleanup();
    }
  });

  it("a server that comes up on the new release is not touched at all", async () => {
    const fx = await setupFixture("race-new");
    try {
      const server = fx.server();
      const live = await fx.repo.head();
      assert.equal((await fx.deploy(live)).code, EXIT.ok);
      await server.control({ up: false, guard_ms: 400 });
      const next = await fx.repo.commit("first deploy into a new container");
      const run = startPaused(fx.dir, "reload", fx.deployArgs(next));
      await run.paused;
      await server.control({ up: true });
      await server.waitServing(next);
      run.resume();
      const r = await run.run.result;
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.match(r.stdout, new RegExp(`it started on releases/${short(next)}, no reload needed`));
      assert.doesNotMatch(r.stdout, /touchdeploy: reload /);
      assert.deepEqual(server.eventsOf("reload"), []);
      assert.deepEqual(server.eventsOf("VIOLATION"), []);
    } finally {
      await fx.cleanup();
    }
  });

  it("a server just started that answers slowly is touched only once its workers settled", async () => {
    const fx = await setupFixture("race-slow");
    try {
      const server = fx.server();
      const live = await fx.repo.head();
      assert.equal((await fx.deploy(live)).code, EXIT.ok);
      // Restarted right before the release's first probe, answering in 0.6 s: running, but
      // not prompt. The guard covers 1 s after its workers spawned: a touch right after the
      // first (slow) answer would fall into it.
      await server.control({ up: false, guard_ms: 1000, delay_ms: 600 });
      const next = await fx.repo.commit("slow and fresh");
      const run = startPaused(fx.dir, "check", fx.deployArgs(next, "--health-timeout", "10"));
      await run.paused;
      const starts = server.eventsOf("start").length;
      await server.control({ up: true });
      await waitFor(
        "the server to start",
        () => server.eventsOf("start").length > starts || undefined,
        {
          timeoutMs: 5000,
          intervalMs: 5,
        },
      );
      run.resume();
      const r = await run.run.result;
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.doesNotMatch(r.stdout, /touchdeploy: start /, "it was answering: running");
      assert.deepEqual(server.eventsOf("VIOLATION"), []);
      assert.equal(server.eventsOf("reload").length, 1);
    } finally {
      await fx.cleanup();
    }
  });

  it("'already live' is not trusted when a recreated container does not serve the commit yet", async () => {
    const fx = await setupFixture("already-live");
    try {
      const server = fx.server();
      const live = await fx.repo.head();
      assert.equal((await fx.deploy(live)).code, EXIT.ok);
      await server.control({ up: false });
      let stdout = "";
      const run = startScript(fx.deployArgs(live, "--health-timeout", "20"), {
        onStdout: (c) => (stdout += c),
      });
      await waitFor(
        "the script to wait for the server",
        () => /touchdeploy: start /.test(stdout) || undefined,
        {
          timeoutMs: 10_000,
          intervalMs: 10,
        },
      );
      assert.doesNotMatch(stdout, /already live/);
      await server.control({ up: true });
      const r = await run.result;
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.match(
        r.stdout,
        new RegExp(
          `check +current is ${short(live)} already, but ${server.healthUrl} does not serve it`,
        ),
      );
      assert.match(r.stdout, new RegExp(`it started on releases/${short(live)}, no reload needed`));
      assert.deepEqual(await server.get(), { status: 200, revision: live });
    } finally {
      await fx.cleanup();
    }
  });

  it("prune goes by deploy order, not by file times or names", async () => {
    const fx = await setupFixture("prune-order");
    try {
      const g: string[] = [];
      for (const n of [1, 2, 3, 4]) {
        const sha = await fx.repo.commit(`g${n}`);
        assert.equal((await fx.deploy(sha, ["--keep", "10"])).code, EXIT.ok);
        g.push(sha);
      }
      // g1's directory looks newest (someone copied or touched it); g2 was live most recently
      // before g5.
      const future = Date.now() / 1000 + 86_400;
      fs.utimesSync(path.join(fx.root, "releases", g[0]), future, future);
      const back = await runScript(fx.args("rollback", "--to", g[1], ...fx.releaseArgs()));
      assert.equal(back.code, EXIT.ok, describeRun(back));
      const g5 = await fx.repo.commit("g5");
      const r = await fx.deploy(g5, ["--keep", "2"]);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.deepEqual(fx.state().releases, [g[1], g5].sort());
      assert.match(r.stdout, /touchdeploy: prune +keeping the newest 2 releases \.\.\. removed 3 /);
    } finally {
      await fx.cleanup();
    }
  });
});
