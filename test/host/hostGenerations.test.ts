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
});
