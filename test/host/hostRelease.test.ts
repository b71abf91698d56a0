/**
 * The release command and the processes (issue 11) against the stand-in server and the fake
 * docker (support/fakedocker.py, which runs the runtime image's own tool on this host):
 *
 * - the release command runs once, before the switch, in the new release's app directory, in
 *   the container, its output streamed under its step line; a failure or a deadline is exit 9
 *   with nothing switched; SIGTERM while it runs stops it in the container and exits 143;
 * - the processes restart after the web is healthy, on the new release and env (SIGTERM, then
 *   SIGKILL after --process-stop-timeout); one that does not stay up switches web, env and
 *   processes back (exit 6); one removed from the payload stops.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  APP,
  describeRun,
  encodePayload,
  errorLine,
  EXIT,
  hostGate,
  setupFixture,
  short,
  startScript,
  waitFor,
  type Fixture,
  type PayloadRecord,
} from "./support/harness";

const isAlive = (pid: number): boolean => {
  try {
    // A zombie (the test machine's init may not reap) counts as gone.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
};

describe("the release command", hostGate(), () => {
  let fx: Fixture;
  let live: string;
  before(async () => {
    fx = await setupFixture("command", { docker: true });
    live = await fx.repo.head();
    const r = await fx.deploy(live, ["--payload", "stdin"], {
      payload: encodePayload([{ env: "STAGE", value: "old" }]),
    });
    assert.equal(r.code, EXIT.ok, describeRun(r));
  });
  after(async () => {
    await fx?.cleanup();
  });

  it("runs once before the switch, in the new release with the new env, its output under its step line", async () => {
    const sha = await fx.repo.commit("with a release command");
    const seen = path.join(fx.dir, "seen-by-command");
    const command = [
      `echo "migrating in $(pwd -P)"`,
      `printf '%s %s %s\\n' "$STAGE" "$(readlink "$TOUCHDEPLOY_ROOT/current")" "$(cat ../../REVISION)" > ${seen}`,
      "echo done migrating",
    ].join("; ");
    const loads = fx.server().loads();
    const r = await fx.deploy(sha, ["--payload", "stdin", "--release-command", command], {
      payload: encodePayload([{ env: "STAGE", value: "new" }]),
    });
    assert.equal(r.code, EXIT.ok, describeRun(r));
    // Run with the new env, in the new release, while current was still the old one.
    assert.equal(fs.readFileSync(seen, "utf8"), `new releases/${live} ${sha}\n`);
    const config = fx.state().config!;
    const appDir = path.join(fx.root, "releases", sha, APP);
    const lines = r.stdout.split("\n");
    const at = lines.findIndex((l) => l.startsWith("touchdeploy: command "));
    assert.deepEqual(lines.slice(at, at + 4), [
      `touchdeploy: command  ${command} (in ${fx.container().name}, releases/${short(sha)}/${APP}, env ${config} (1 env, 0 secret, 0 process))`,
      `    migrating in ${appDir}`,
      "    done migrating",
      lines[at + 3].replace(/\d+\.\d+s$/, "") + lines[at + 3].match(/\d+\.\d+s$/)![0],
    ]);
    assert.match(lines[at + 3], /^touchdeploy: command  done in \d+\.\d+s$/);
    assert.match(lines[at + 4], /^touchdeploy: switch /, "the switch comes after it");
    // Exactly what ran in the container, once.
    const execs = fx
      .container()
      .events()
      .filter((e) => e.event === "exec" && e.argv?.[0] === "touchdeploy-run");
    assert.deepEqual(
      execs.map((e) => [e.workdir, e.argv]),
      [
        [
          `/srv/app/releases/${sha}/${APP}`,
          [
            "touchdeploy-run",
            "--config",
            `/srv/app/configs/${config}`,
            "--pidfile",
            "/tmp/touchdeploy/command.pid",
            "--",
            "/bin/sh",
            "-c",
            command,
          ],
        ],
      ],
    );
    await fx.server().waitForLoads(loads + 1);
    assert.equal(fx.server().loads(), loads + 1);
    live = sha;
  });

  it("a failing release command: exit 9, nothing switched, the old release and env serve", async () => {
    const before = fx.state();
    const loads = fx.server().loads();
    const sha = await fx.repo.commit("whose migration fails");
    const r = await fx.deploy(
      sha,
      [
        "--payload",
        "stdin",
        "--release-command",
        "echo 'applying 0002'; echo 'no such table' >&2; exit 3",
      ],
      { payload: encodePayload([{ env: "STAGE", value: "never live" }]) },
    );
    assert.equal(r.code, EXIT.releaseCommand, describeRun(r));
    assert.equal(
      errorLine(r),
      `touchdeploy: error: the release command failed (exit status 3) in container ${fx.container().name}: nothing was switched, releases/${short(live)} and its env still serve; fix the command or the commit (its output is above) and deploy again`,
    );
    assert.match(
      r.stdout,
      /\n {4}applying 0002\n {4}no such table\ntouchdeploy: command  failed \(exit status 3\) in /,
    );
    assert.doesNotMatch(r.stdout, /touchdeploy: switch/);
    const after = fx.state();
    // Nothing switched, and the env version made for it is gone.
    assert.deepEqual({ ...after, releases: after.releases.filter((x) => x !== sha) }, before);
    assert.equal(fx.server().loads(), loads);
    assert.deepEqual(await fx.server().answer(), {
      status: 200,
      revision: live,
      config: before.config!,
    });
  });

  it("a release command past its deadline is stopped in the container: exit 9", async () => {
    const sha = await fx.repo.commit("whose migration hangs");
    const pidFile = path.join(fx.dir, "hung.pid");
    const r = await fx.deploy(sha, [
      "--release-command",
      `echo $$ > ${pidFile}; sleep 30`,
      // 3 s: starting the command through the fake docker and the runtime's tool (two Python
      // starts) can take over 1 s while the suite runs three files at once.
      "--release-command-timeout",
      "3",
    ]);
    assert.equal(r.code, EXIT.releaseCommand, describeRun(r));
    assert.match(
      errorLine(r),
      /the release command failed \(timed out after 3s \(--release-command-timeout\)\) in container /,
    );
    const pid = Number(fs.readFileSync(pidFile, "utf8"));
    assert.equal(isAlive(pid), false, "the command still runs in the container");
    assert.equal(fx.state().current, live);
    assert.ok(r.durationMs < 15_000, `took ${r.durationMs} ms`);
  });

  it("SIGTERM while the release command runs stops it in the container and exits 143 before the switch", async () => {
    const sha = await fx.repo.commit("interrupted migration");
    const pidFile = path.join(fx.dir, "migrating.pid");
    const loads = fx.server().loads();
    const run = startScript(
      fx.deployArgs(sha, "--release-command", `echo $$ > ${pidFile}; exec sleep 60`),
      { extraEnv: fx.container().env },
    );
    const pid = await waitFor(
      "the release command to run",
      () => (fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").trim()) || undefined,
      { timeoutMs: 20_000, intervalMs: 10 },
    );
    process.kill(run.pid, "SIGTERM");
    const r = await run.result;
    assert.equal(r.code, EXIT.terminated, describeRun(r));
    assert.equal(
      errorLine(r),
      "touchdeploy: error: interrupted by SIGTERM during the command step: nothing live changed; run it again",
    );
    assert.equal(isAlive(Number(pid)), false, "the command still runs in the container");
    assert.equal(fx.state().current, live);
    assert.deepEqual(fx.state().leftovers, []);
    assert.equal(fx.server().loads(), loads);
  });

  it("--release-command needs --container; a container that is not running is named", async () => {
    const sha = await fx.repo.commit("no container");
    const args = fx
      .deployArgs(sha, "--release-command", "true")
      .filter((a, i, all) => a !== "--container" && all[i - 1] !== "--container");
    const r = await fx.run(args);
    assert.equal(r.code, EXIT.badInput);
    assert.equal(
      errorLine(r),
      "touchdeploy: error: --release-command needs --container NAME (it runs in the app's container)",
    );
    fx.container().set({ running: false });
    try {
      const stopped = await fx.deploy(sha, ["--release-command", "true"]);
      assert.equal(stopped.code, EXIT.unexpected, describeRun(stopped));
      assert.equal(
        errorLine(stopped),
        `touchdeploy: error: container ${fx.container().name} is not running: start it (docker start ${fx.container().name}) or run pulumi up; nothing was switched`,
      );
    } finally {
      fx.container().set({ running: true });
    }
    const unknown = await fx.deploy(sha, ["--container", "nope"]);
    assert.equal(unknown.code, EXIT.unexpected);
    assert.equal(
      errorLine(unknown),
      "touchdeploy: error: cannot inspect container nope: Error: No such container: nope (is --container right? docker ps lists the containers); nothing was switched",
    );
    assert.equal(fx.state().current, live);
  });
});

describe("the processes", hostGate(), () => {
  let fx: Fixture;
  let live: string;
  const worker = (extra: PayloadRecord[] = [], label = "one"): Buffer =>
    encodePayload([
      { env: "LABEL", value: label },
      { process: "worker", command: 'echo "worker $LABEL in $(pwd -P)"; exec sleep 600' },
      ...extra,
    ]);
  before(async () => {
    fx = await setupFixture("processes", { docker: true });
    live = await fx.repo.head();
    const r = await fx.deploy(live, ["--payload", "stdin"], { payload: worker() });
    assert.equal(r.code, EXIT.ok, describeRun(r));
  });
  after(async () => {
    await fx?.cleanup();
  });

  it("start after the web is healthy, on the new release and env; every deploy restarts them", async () => {
    const first = fx.container().running();
    assert.deepEqual(Object.keys(first), ["worker"]);
    assert.deepEqual([first.worker.revision, first.worker.config], [live, fx.state().config]);
    const sha = await fx.repo.commit("worker on the next release");
    const r = await fx.deploy(sha, ["--payload", "stdin"], { payload: worker([], "two") });
    assert.equal(r.code, EXIT.ok, describeRun(r));
    const now = fx.container().running();
    assert.deepEqual([now.worker.revision, now.worker.config], [sha, fx.state().config]);
    assert.equal(isAlive(first.worker.pid), false, "the old worker still runs");
    assert.ok(isAlive(now.worker.pid));
    // After the health check, before the release stands.
    const lines = r.stdout.split("\n").map((l) => l.replace(/\d+\.\d+s/g, "N.NNs"));
    const health = lines.findIndex((l) => / health +waiting for /.test(l));
    const restart = lines.findIndex((l) => l.startsWith("touchdeploy: restart "));
    assert.ok(health >= 0 && restart > health, r.stdout);
    assert.deepEqual(lines.slice(restart, restart + 4), [
      `touchdeploy: restart  processes worker (on releases/${short(sha)}, env ${fx.state().config} (1 env, 0 secret, 1 process)): SIGTERM, up to 10s, SIGKILL; then each must stay up`,
      "    worker: stopped by SIGTERM",
      `    worker: running (pid ${now.worker.pid}), up for N.NNs`,
      "touchdeploy: restart  done in N.NNs",
    ]);
    await waitFor(
      "the worker's output",
      () => (fx.container().processLog("worker").includes("worker two") ? true : undefined),
      { timeoutMs: 5000, intervalMs: 20 },
    );
    assert.match(
      fx.container().processLog("worker"),
      new RegExp(`worker two in ${fx.root}/releases/${sha}/${APP}\\n`),
    );
    live = sha;
  });

  it("a process that does not stay up switches web, env and processes back (exit 6)", async () => {
    const before = fx.state();
    const old = fx.container().running();
    const sha = await fx.repo.commit("a crashing worker");
    const r = await fx.deploy(sha, ["--payload", "stdin"], {
      payload: encodePayload([
        { env: "LABEL", value: "three" },
        { process: "worker", command: "echo crashing; exit 4" },
      ]),
    });
    assert.equal(r.code, EXIT.rolledBack, describeRun(r));
    assert.equal(
      errorLine(r),
      `touchdeploy: error: could not deploy ${short(sha)}: process worker did not stay up for 0.5s (exit status 4); switched back: commit ${short(live)} is serving again, its processes restarted; fix what failed and deploy again`,
    );
    const after = fx.state();
    assert.deepEqual(
      [after.current, after.config, after.previous, after.previousConfig, after.leftovers],
      [before.current, before.config, before.previous, before.previousConfig, []],
    );
    const now = fx.container().running();
    assert.deepEqual([now.worker.revision, now.worker.config], [live, before.config]);
    assert.notEqual(now.worker.pid, old.worker.pid);
    assert.ok(isAlive(now.worker.pid));
    assert.deepEqual(await fx.server().answer(), {
      status: 200,
      revision: live,
      config: before.config!,
    });
    assert.equal(fs.existsSync(path.join(fx.root, ".switch.processes")), false);
  });

  it("one that ignores SIGTERM is killed after --process-stop-timeout; one removed from the payload stops", async () => {
    const sha = await fx.repo.commit("a stubborn worker");
    const stubborn = encodePayload([
      { process: "stubborn", command: "trap '' TERM; sleep 600 & wait; sleep 600" },
      { process: "worker", command: "exec sleep 600" },
    ]);
    const r1 = await fx.deploy(sha, ["--payload", "stdin"], { payload: stubborn });
    assert.equal(r1.code, EXIT.ok, describeRun(r1));
    const before = fx.container().running();
    assert.deepEqual(Object.keys(before).sort(), ["stubborn", "worker"]);
    const next = await fx.repo.commit("without the stubborn one");
    const t0 = Date.now();
    const r2 = await fx.deploy(next, ["--payload", "stdin", "--process-stop-timeout", "1"], {
      payload: encodePayload([{ process: "worker", command: "exec sleep 600" }]),
    });
    assert.equal(r2.code, EXIT.ok, describeRun(r2));
    assert.ok(Date.now() - t0 >= 1000);
    assert.match(r2.stdout, /\n {4}stubborn: killed \(SIGKILL\) after 1s\n/);
    assert.deepEqual(Object.keys(fx.container().running()), ["worker"]);
    assert.equal(isAlive(before.stubborn.pid), false);
    live = next;
  });

  it("a live config with processes needs --container (exit 2): they could not restart", async () => {
    const sha = await fx.repo.commit("hand run without the container");
    const args = fx
      .deployArgs(sha)
      .filter((a, i, all) => a !== "--container" && all[i - 1] !== "--container");
    const r = await fx.run(args);
    assert.equal(r.code, EXIT.badInput, describeRun(r));
    assert.equal(
      errorLine(r),
      "touchdeploy: error: the app has processes (worker): give --container NAME, they restart with each release; nothing was switched",
    );
    assert.equal(fx.state().current, live);
  });
});
