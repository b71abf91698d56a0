/**
 * Fault injection: a deploy (and a rollback, and the switch back after a failed health check)
 * is stopped at every step boundary (TOUCHDEPLOY_TEST_PAUSE_AT, see `boundary` in the script:
 * deterministic, no sleeps) and sent SIGTERM, SIGINT, SIGHUP or SIGKILL there. After each, the
 * live release — what `current` points to and what the stand-in server serves — is one that
 * passed its health check: at once for the signals a script can catch, after the next run
 * (which finds the journal) for SIGKILL. Nothing of the run is left behind.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  APP,
  describeRun,
  EXIT,
  errorLine,
  hostGate,
  rootState,
  runScript,
  setupFixture,
  short,
  Standin,
  startPaused,
  type Fixture,
  type RunResult,
} from "./support/harness";

const CATCHABLE = { SIGTERM: 143, SIGINT: 130, SIGHUP: 129 } as const;
type Sig = keyof typeof CATCHABLE | "SIGKILL";
const SIGNALS: Sig[] = ["SIGTERM", "SIGINT", "SIGHUP", "SIGKILL"];

/**
 * The deploy's boundaries, in order, and what is live after a signal there: `before` (nothing
 * live changed: the old release), `switched` (switched back: the old release), `committed`
 * (the new release passed its health check: it stays).
 */
const DEPLOY_BOUNDARIES: [string, "before" | "switched" | "committed"][] = [
  ["lock", "before"],
  ["recover", "before"],
  ["layout", "before"],
  ["fetch", "before"],
  ["extract", "before"],
  ["check", "before"],
  ["switch", "before"],
  ["switch:links", "switched"],
  ["reload", "switched"],
  ["health", "switched"],
  ["prune", "committed"],
  ["end", "committed"],
];

/** The step the script names in its message for a boundary. */
const stepOf = (point: string): string => point.split(":")[0];

// Cases run side by side (each has its own root and server): the suite stays fast.
describe("fault injection at every step boundary", { ...hostGate(), concurrency: 4 }, () => {
  let fx: Fixture;
  /** Live (and passed its health check) in the template: current. */
  let live: string;
  /** previous in the template. */
  let older: string;
  /** Pushed, not fetched: what each case deploys. */
  let next: string;
  /** A commit whose app answers 500: its deploy is switched back. */
  let broken: string;
  let caseNo = 0;
  const results: string[] = [];

  before(async () => {
    fx = await setupFixture("faults", { healthTimeout: 2 });
    older = await fx.repo.head();
    live = await fx.repo.commit("live");
    for (const sha of [older, live]) {
      const r = await fx.deploy(sha);
      assert.equal(r.code, EXIT.ok, describeRun(r));
    }
    broken = await fx.repo.commitBroken();
    next = await fx.repo.commit("next");
    // The template root: stop its server, so that each case's own stand-in is the only one.
    await fx.server().stop();
  });
  after(async () => {
    // Shown in the TAP output: how many cases ran, and which.
    console.log(`# fault injection: ${results.length} cases passed: ${results.join(", ")}`);
    await fx?.cleanup();
  });

  /** A copy of the template root (current = live, previous = older) and a stand-in serving it. */
  async function freshCase(): Promise<{ root: string; server: Standin; dir: string }> {
    const dir = path.join(fx.dir, `case-${++caseNo}`);
    const root = path.join(dir, "root");
    spawnSync("mkdir", ["-p", dir]);
    const cp = spawnSync("cp", ["-a", fx.root, root]);
    assert.equal(cp.status, 0, String(cp.stderr));
    const server = await Standin.start({ dir, root, subdir: APP });
    await server.waitServing(live);
    return { root, server, dir };
  }

  function args(sub: string, root: string, server: Standin, ...extra: string[]): string[] {
    const base = [sub, "--root", root, "--subdir", APP, "--health-url", server.healthUrl];
    return sub === "deploy" ? [...base, "--repo", fx.repo.origin, ...extra] : [...base, ...extra];
  }

  /**
   * After a run ended by a signal: the state the next run leaves (for SIGKILL, after `status`
   * and a `setup` that finds the journal), with `expected` current and served.
   */
  async function settle(
    root: string,
    server: Standin,
    sig: Sig,
    expected: string,
    expectedPrevious: string | null,
  ): Promise<void> {
    if (sig === "SIGKILL") {
      const status = await runScript(["status", "--root", root]);
      assert.equal(status.code, EXIT.ok, describeRun(status));
      assert.equal(
        status.stdout,
        `${expected}\n`,
        "status names the release that passed its check",
      );
      const recovered = await runScript(["setup", "--root", root]);
      assert.equal(recovered.code, EXIT.ok, describeRun(recovered));
    }
    const state = rootState(root);
    assert.deepEqual(
      { current: state.current, previous: state.previous, leftovers: state.leftovers },
      { current: expected, previous: expectedPrevious, leftovers: [] },
    );
    await server.waitServing(expected);
    const answer = await server.get();
    assert.deepEqual(answer, { status: 200, revision: expected });
  }

  function checkExit(r: RunResult, sig: Sig, code: number, line: string | undefined): void {
    if (sig === "SIGKILL") {
      assert.equal(r.signal, "SIGKILL", describeRun(r));
      return;
    }
    assert.equal(r.code, code, describeRun(r));
    if (line === undefined) {
      assert.equal(
        r.stderr.split("\n").filter((l) => l.startsWith("touchdeploy: error:")).length,
        0,
      );
    } else {
      assert.equal(errorLine(r), line);
    }
  }

  for (const [point, phase] of DEPLOY_BOUNDARIES) {
    for (const sig of SIGNALS) {
      it(`deploy, ${sig} at ${point}: the live release passed its health check`, async () => {
        const { root, server, dir } = await freshCase();
        try {
          const loads = server.loads();
          const run = startPaused(
            dir,
            point,
            args("deploy", root, server, "--commit", next, "--health-timeout", "5"),
          );
          await run.paused;
          run.signal(sig);
          const r = await run.run.result;
          run.resume();
          const step = stepOf(point);
          if (phase === "before") {
            checkExit(
              r,
              sig,
              sig === "SIGKILL" ? 0 : CATCHABLE[sig],
              `touchdeploy: error: interrupted by ${sig} during the ${step} step: nothing live changed; run it again`,
            );
            await settle(root, server, sig, live, older);
            // Nothing was touched: the server never reloaded.
            assert.equal(server.loads(), loads);
          } else if (phase === "switched") {
            checkExit(
              r,
              sig,
              EXIT.rolledBack,
              `touchdeploy: error: could not deploy ${short(next)}: interrupted by ${sig} during the ${step} step; switched back: commit ${short(live)} is serving again; deploy again when ready`,
            );
            await settle(root, server, sig, live, older);
          } else {
            checkExit(r, sig, EXIT.ok, undefined);
            if (sig !== "SIGKILL") {
              assert.match(
                r.stderr,
                new RegExp(
                  `touchdeploy: warning: interrupted by ${sig} during the ${step} step, after ${short(next)} passed its health check: it stays live`,
                ),
              );
            }
            await settle(root, server, sig, next, live);
          }
          results.push(`deploy/${point}/${sig}`);
        } finally {
          await server.stop();
        }
      });
    }
  }

  // The switch back after a failed health check, interrupted in its turn.
  for (const point of ["undo:start", "undo:links", "undo:reload"]) {
    for (const sig of ["SIGTERM", "SIGKILL"] as const) {
      it(`switching back from a failed release, ${sig} at ${point}: the old release is live`, async () => {
        const { root, server, dir } = await freshCase();
        try {
          const run = startPaused(
            dir,
            point,
            args("deploy", root, server, "--commit", broken, "--health-timeout", "1"),
          );
          await run.paused;
          run.signal(sig);
          // A signal while switching back does not end the run: let it go on.
          run.resume();
          const r = await run.run.result;
          // A signal while switching back only shortens the wait: it ends as a failed check does.
          checkExit(
            r,
            sig,
            EXIT.rolledBack,
            `touchdeploy: error: could not deploy ${short(broken)}: it failed its health check (not served with HTTP 200 within 1s (last seen: HTTP 500, revision ${short(broken)})); switched back: commit ${short(live)} is serving again; fix the commit (see the container's log) and deploy again`,
          );
          await settle(root, server, sig, live, older);
          results.push(`undo/${point}/${sig}`);
        } finally {
          await server.stop();
        }
      });
    }
  }

  for (const [point, phase] of [
    ["switch:links", "switched"],
    ["reload", "switched"],
    ["health", "switched"],
  ] as const) {
    for (const sig of ["SIGTERM", "SIGKILL"] as const) {
      it(`rollback, ${sig} at ${point}: the live release passed its health check`, async () => {
        const { root, server, dir } = await freshCase();
        try {
          const run = startPaused(dir, point, args("rollback", root, server));
          await run.paused;
          run.signal(sig);
          const r = await run.run.result;
          run.resume();
          assert.equal(phase, "switched");
          checkExit(
            r,
            sig,
            EXIT.rolledBack,
            `touchdeploy: error: could not roll back to ${short(older)}: interrupted by ${sig} during the ${stepOf(point)} step; switched back: commit ${short(live)} is serving again; deploy again when ready`,
          );
          await settle(root, server, sig, live, older);
          results.push(`rollback/${point}/${sig}`);
        } finally {
          await server.stop();
        }
      });
    }
  }
});
