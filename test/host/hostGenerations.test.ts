/**
 * Issue 12: the runtime starts a new uWSGI generation beside the old one on the touch, and a
 * release that cannot start never serves (the old one keeps answering its own revision). The
 * host script asks the runtime (`docker exec <container> touchdeploy-generations status ...`, the
 * REAL runtime command through the fake docker, reading what the stand-in recorded with the
 * runtime's own code) and switches back as soon as the start that its touch caused failed,
 * instead of waiting out --health-timeout.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { describeRun, errorLine, EXIT, hostGate, setupFixture, short } from "./support/harness";

const statusQueries = (events: { event: string; argv?: string[] }[]): string[][] =>
  events
    .filter((e) => e.event === "exec" && e.argv?.[0] === "touchdeploy-generations")
    .map((e) => e.argv ?? []);

describe("a release the runtime cannot start", { ...hostGate(), concurrency: 2 }, () => {
  it("is switched back as soon as the runtime reports the failed start, naming the commit and the reason", async () => {
    const fx = await setupFixture("gen-broken", { mode: "generations", docker: true });
    try {
      const server = fx.server();
      const live = await fx.repo.head();
      assert.equal((await fx.deploy(live)).code, EXIT.ok);
      await server.waitServing(live);
      const broken = await fx.repo.commitBroken();
      // Without the runtime's report this deploy would wait 30 s for a health check that can
      // never pass (the old generation keeps answering its own revision).
      const r = await fx.deploy(broken, ["--health-timeout", "30"]);
      assert.equal(r.code, EXIT.rolledBack, describeRun(r));
      const reason =
        "it exited with status 22 before it answered: ModuleNotFoundError: No module named 'broken_on_purpose'";
      assert.equal(
        errorLine(r),
        `touchdeploy: error: could not deploy ${short(broken)}: it failed its health check (the runtime could not start ${short(broken)}: generation 1: ${reason}); switched back: commit ${short(live)} is serving again; fix the commit (see the container's log) and deploy again`,
      );
      assert.ok(
        r.durationMs < 10_000,
        `took ${r.durationMs} ms: the health timeout was waited out`,
      );
      // The script asked about exactly the start its own touch caused.
      const mtime = /touched \.reload \(mtime (\d+)\)/.exec(r.stdout)?.[1];
      assert.ok(mtime, describeRun(r));
      const asked = statusQueries(fx.container().events());
      assert.ok(asked.length >= 1, "the runtime was never asked");
      assert.deepEqual(asked[0], [
        "touchdeploy-generations",
        "status",
        broken,
        "--config",
        "",
        "--touched",
        mtime,
      ]);
      // Users never saw the broken release: the old generation served throughout, and the
      // switch back's touch started nothing (the live generation already runs that release).
      assert.equal(server.eventsOf("generation-failed").length, 1);
      assert.equal(server.eventsOf("reload").length, 0);
      assert.equal(server.eventsOf("nothing-to-start").length, 1);
      assert.equal(
        server.eventsOf("request").filter((e) => !e.detail.endsWith(` ${live}`)).length,
        0,
        "a request was answered by another revision",
      );
      assert.deepEqual(await server.get(), { status: 200, revision: live });
      assert.equal(fx.state().current, live);
    } finally {
      await fx.cleanup();
    }
  });

  it("an earlier failed start of the same commit does not fail a later deploy: only starts after this run's touch count", async () => {
    const fx = await setupFixture("gen-stale", { mode: "generations", docker: true });
    try {
      const server = fx.server();
      const live = await fx.repo.head();
      assert.equal((await fx.deploy(live)).code, EXIT.ok);
      const next = await fx.repo.commit("next");
      // What an earlier attempt at `next` left in the runtime's status file, before our touch.
      const runDir = path.join(fx.container().state, "run");
      fs.mkdirSync(runDir, { recursive: true });
      const past = Math.floor(Date.now() / 1000) - 100;
      fs.writeFileSync(
        path.join(runDir, "generations.json"),
        JSON.stringify([
          {
            generation: 99,
            revision: next,
            config: "",
            trigger: past,
            state: "failed",
            reason: "stale",
          },
        ]),
      );
      // The new generation takes 1.5 s to start: the script asks while it starts.
      await server.control({ start_ms: 1500 });
      const r = await fx.deploy(next);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.ok(statusQueries(fx.container().events()).length >= 1, "the runtime was never asked");
      assert.equal(server.eventsOf("reload").length, 1, "exactly one new generation took over");
      assert.deepEqual(await server.get(), { status: 200, revision: next });
    } finally {
      await fx.cleanup();
    }
  });

  it("a healthy commit: the health check passes only once the runtime says the new generation alone serves (the old one has stopped)", async () => {
    const fx = await setupFixture("gen-settle", { mode: "generations", docker: true });
    try {
      const server = fx.server();
      const live = await fx.repo.head();
      assert.equal((await fx.deploy(live)).code, EXIT.ok);
      // The old generation takes 1.5 s to stop after the new one answers.
      await server.control({ retire_ms: 1500 });
      const next = await fx.repo.commit("next");
      const r = await fx.deploy(next);
      const ended = BigInt(Date.now()) * 1_000_000n;
      assert.equal(r.code, EXIT.ok, describeRun(r));
      const [alone] = server.eventsOf("generation-alone");
      assert.ok(alone, "the new generation never served alone");
      const [took] = server.eventsOf("reload");
      assert.ok(alone.ns - took.ns >= 1_400_000_000n, "retire_ms was not applied");
      // The script ended after the old generation had stopped, not when the commit first answered.
      assert.ok(alone.ns <= ended, "the script ended while the old generation still stopped");
      assert.match(r.stdout, /healthy (\d+\.\d+)s after the reload/);
      const healthyAfter = Number(/healthy (\d+\.\d+)s after the reload/.exec(r.stdout)?.[1]);
      assert.ok(
        healthyAfter >= 1.4,
        `healthy ${healthyAfter}s after the reload: before the old one stopped`,
      );
    } finally {
      await fx.cleanup();
    }
  });
});
