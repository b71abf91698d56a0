/**
 * Fault injection: a deploy (and a rollback, and the switch back after a failed health check)
 * is stopped at every step boundary (TOUCHDEPLOY_TEST_PAUSE_AT, see `boundary` in the script:
 * deterministic, no sleeps) and sent SIGTERM, SIGINT, SIGHUP or SIGKILL there. Every run has
 * the whole of issue 11: a release command, a new env (--payload) and a process, in the fake
 * docker's container (support/fakedocker.py). After each, the live release and env — what
 * `current` and `config` point to, what the stand-in server serves (X-Revision and
 * X-Touchdeploy-Config) and what the process runs on — are a pair that passed its health
 * check: at once for the signals a script can catch, after the next runs for SIGKILL (any run
 * switches back from the journal; the next release with --container restarts the processes a
 * killed run left on the new release). Nothing of the run is left behind.
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
  EXIT,
  errorLine,
  fakeDocker,
  hostGate,
  rootState,
  runScript,
  setupFixture,
  short,
  Standin,
  startPaused,
  type FakeDocker,
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
  ["command", "before"],
  ["switch", "before"],
  ["switch:links", "switched"],
  ["switch:config", "switched"],
  ["reload", "switched"],
  ["health", "switched"],
  ["restart", "switched"],
  ["restart:done", "switched"],
  ["prune", "committed"],
  ["end", "committed"],
];

const NEW_BOUNDARIES = new Set(["command", "switch:config", "restart", "restart:done"]);

/** The env (and process) each release goes with: one version per commit. */
const payloadOf = (label: string): Buffer =>
  encodePayload([
    { env: "STAGE", value: label },
    { secret: "TOKEN", value: `secret of ${label}` },
    { process: "worker", command: "exec sleep 600" },
  ]);

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
  /** The config versions of older and live in the template. */
  let olderConfig: string;
  let liveConfig: string;
  let caseNo = 0;
  const results: string[] = [];

  before(async () => {
    fx = await setupFixture("faults", { healthTimeout: 2, docker: true });
    older = await fx.repo.head();
    live = await fx.repo.commit("live");
    for (const [sha, label] of [
      [older, "older"],
      [live, "live"],
    ]) {
      const r = await fx.deploy(sha, ["--payload", "stdin"], { payload: payloadOf(label) });
      assert.equal(r.code, EXIT.ok, describeRun(r));
    }
    ({ config: liveConfig, previousConfig: olderConfig } = rootState(fx.root) as {
      config: string;
      previousConfig: string;
    });
    broken = await fx.repo.commitBroken();
    next = await fx.repo.commit("next");
    // The template root: stop its server and process, so that each case's are the only ones.
    fx.container().stop();
    await fx.server().stop();
  });
  after(async () => {
    // Shown in the TAP output: how many cases ran, and which.
    console.log(`# fault injection: ${results.length} cases passed: ${results.join(", ")}`);
    await fx?.cleanup();
  });

  interface Case {
    root: string;
    server: Standin;
    dir: string;
    docker: FakeDocker;
  }

  /**
   * A copy of the template root (current = live, previous = older, with their envs), a
   * stand-in serving it and a fake container running its process (as a started container does).
   */
  async function freshCase(): Promise<Case> {
    const dir = path.join(fx.dir, `case-${++caseNo}`);
    const root = path.join(dir, "root");
    spawnSync("mkdir", ["-p", dir]);
    const cp = spawnSync("cp", ["-a", fx.root, root]);
    assert.equal(cp.status, 0, String(cp.stderr));
    const server = await Standin.start({ dir, root, subdir: APP });
    // The case's caller stops the server; until the case is returned, a failure must (a
    // stand-in left running keeps the test process, and `npm run test:host`, from ending).
    let docker: ReturnType<typeof fakeDocker> | undefined;
    try {
      await server.waitServing(live);
      docker = fakeDocker(dir, root, { startsecs: 0.2 });
      const sync = spawnSync(
        "docker",
        ["exec", docker.name, "touchdeploy-processes", "sync", "--stop-timeout", "1"],
        { env: { ...process.env, ...docker.env }, encoding: "utf8" },
      );
      assert.equal(sync.status, 0, sync.stdout + sync.stderr);
      return { root, server, dir, docker };
    } catch (err) {
      docker?.stop();
      await server.stop();
      throw err;
    }
  }

  function args(sub: string, c: Case, ...extra: string[]): string[] {
    const base = [
      sub,
      "--root",
      c.root,
      "--subdir",
      APP,
      "--health-url",
      c.server.healthUrl,
      "--container",
      c.docker.name,
    ];
    return sub === "deploy" ? [...base, "--repo", fx.repo.origin, ...extra] : [...base, ...extra];
  }

  /** The deploy of `sha` with its env, a release command and the process. */
  function deployArgs(c: Case, sha: string, healthTimeout: string): string[] {
    return args(
      "deploy",
      c,
      "--commit",
      sha,
      "--health-timeout",
      healthTimeout,
      "--payload",
      "stdin",
      "--release-command",
      "echo migrating",
      "--process-stop-timeout",
      "1",
    );
  }

  /**
   * After a run ended by a signal: the state the next runs leave (for SIGKILL: `status`, a
   * `setup` that finds the journal, then, when the killed run may have left the process on
   * its release, a release of the live commit and env with --container), with `expected`
   * current and its env (`expectedConfig`, undefined: a new version, not the previous one)
   * served and run by the process.
   */
  async function settle(
    c: Case,
    sig: Sig,
    expected: string,
    expectedConfig: string | undefined,
    expectedPrevious: string | null,
    label: string,
  ): Promise<void> {
    if (sig === "SIGKILL") {
      const status = await runScript(["status", "--root", c.root]);
      assert.equal(status.code, EXIT.ok, describeRun(status));
      assert.equal(
        status.stdout,
        `${expected}\n`,
        "status names the release that passed its check",
      );
      const recovered = await runScript(["setup", "--root", c.root]);
      assert.equal(recovered.code, EXIT.ok, describeRun(recovered));
      if (fs.existsSync(path.join(c.root, ".switch.processes"))) {
        const again = await runScript(
          [...args("release", c, "--commit", expected, "--payload", "stdin")],
          { payload: payloadOf(label), extraEnv: c.docker.env },
        );
        assert.equal(again.code, EXIT.ok, describeRun(again));
        assert.match(again.stdout, /the processes may not run .* \(an interrupted run\)/);
      }
    }
    const state = rootState(c.root);
    const config = expectedConfig ?? state.config;
    assert.ok(config);
    if (expectedConfig === undefined) {
      assert.ok(![liveConfig, olderConfig].includes(config), "a new env version");
    }
    assert.deepEqual(
      {
        current: state.current,
        config: state.config,
        previous: state.previous,
        leftovers: state.leftovers,
      },
      { current: expected, config, previous: expectedPrevious, leftovers: [] },
    );
    await c.server.waitServing(expected);
    assert.deepEqual(await c.server.answer(), { status: 200, revision: expected, config });
    const proc = c.docker.running().worker;
    assert.deepEqual(
      { revision: proc?.revision, config: proc?.config },
      { revision: expected, config },
      "the process runs the live release and env",
    );
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

  /** What the error line adds when the process was restarted on the release switched from. */
  const restarted = (point: string): string =>
    point === "restart:done" ? ", its processes restarted" : "";

  async function cleanupCase(c: Case): Promise<void> {
    c.docker.stop();
    await c.server.stop();
  }

  for (const [point, phase] of DEPLOY_BOUNDARIES) {
    // The boundaries of issue 11's steps with SIGTERM and SIGKILL (INT and HUP take the same path).
    const signals = NEW_BOUNDARIES.has(point) ? (["SIGTERM", "SIGKILL"] as const) : SIGNALS;
    for (const sig of signals) {
      it(`deploy, ${sig} at ${point}: the live release and env passed their health check`, async () => {
        const c = await freshCase();
        try {
          const loads = c.server.loads();
          const run = startPaused(c.dir, point, deployArgs(c, next, "5"), {
            payload: payloadOf("next"),
            extraEnv: c.docker.env,
          });
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
            await settle(c, sig, live, liveConfig, older, "live");
            // Nothing was touched: the server never reloaded.
            assert.equal(c.server.loads(), loads);
          } else if (phase === "switched") {
            checkExit(
              r,
              sig,
              EXIT.rolledBack,
              `touchdeploy: error: could not deploy ${short(next)}: interrupted by ${sig} during the ${step} step; switched back: commit ${short(live)} is serving again${restarted(point)}; deploy again when ready`,
            );
            await settle(c, sig, live, liveConfig, older, "live");
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
            await settle(c, sig, next, undefined, live, "next");
          }
          results.push(`deploy/${point}/${sig}`);
        } finally {
          await cleanupCase(c);
        }
      });
    }
  }

  // The switch back after a failed health check, interrupted in its turn.
  for (const point of ["undo:start", "undo:links", "undo:reload"]) {
    for (const sig of ["SIGTERM", "SIGKILL"] as const) {
      it(`switching back from a failed release, ${sig} at ${point}: the old release and env are live`, async () => {
        const c = await freshCase();
        try {
          const run = startPaused(c.dir, point, deployArgs(c, broken, "1"), {
            payload: payloadOf("broken"),
            extraEnv: c.docker.env,
          });
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
          await settle(c, sig, live, liveConfig, older, "live");
          results.push(`undo/${point}/${sig}`);
        } finally {
          await cleanupCase(c);
        }
      });
    }
  }

  for (const point of [
    "switch:links",
    "switch:config",
    "reload",
    "health",
    "restart",
    "restart:done",
  ]) {
    for (const sig of ["SIGTERM", "SIGKILL"] as const) {
      it(`rollback, ${sig} at ${point}: the live release and env passed their health check`, async () => {
        const c = await freshCase();
        try {
          const run = startPaused(
            c.dir,
            point,
            args("rollback", c, "--process-stop-timeout", "1"),
            {
              extraEnv: c.docker.env,
            },
          );
          await run.paused;
          run.signal(sig);
          const r = await run.run.result;
          run.resume();
          checkExit(
            r,
            sig,
            EXIT.rolledBack,
            `touchdeploy: error: could not roll back to ${short(older)}: interrupted by ${sig} during the ${stepOf(point)} step; switched back: commit ${short(live)} is serving again${restarted(point)}; deploy again when ready`,
          );
          await settle(c, sig, live, liveConfig, older, "live");
          results.push(`rollback/${point}/${sig}`);
        } finally {
          await cleanupCase(c);
        }
      });
    }
  }
});
