/**
 * One deploy per app root at a time: concurrent deploys run one after the other, a lock held
 * too long ends in exit 8, and a deploy killed with SIGKILL in the middle of a fetch neither
 * blocks the next deploy nor leaves debris behind.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { getServed, waitForRevision } from "../harness/app";
import { setupFixture, short, type Fixture } from "../harness/fixture";
import {
  describeRun,
  EXIT,
  hostScriptText,
  runHostScript,
  snapshotRoot,
  startHostScript,
} from "../harness/hostScript";
import { e2eGate } from "../harness/prerequisites";
import { start, waitFor } from "../harness/process";
import { startSlowGitServer } from "../harness/slowGitServer";

const WAITED =
  /touchdeploy: lock +\S+ is locked by another deploy \(pid sha started-at: (\d+) ([0-9a-f]{40}) \S+\)/;

describe("host script: locking", e2eGate(["docker", "debootstrap", "git", "curl", "flock"]), () => {
  let fx: Fixture;
  before(async () => {
    fx = await setupFixture("locking");
    const first = await fx.deploy(await fx.repo.head());
    assert.equal(first.code, EXIT.ok, describeRun(first));
  });
  after(async () => {
    await fx?.cleanup();
  });

  it("two deploys started together on the same root run one after the other; the end state is consistent", async () => {
    const app = fx.container();
    const a = await fx.repo.commitGreeting("Hello from deploy A");
    const b = await fx.repo.commitGreeting("Hello from deploy B");
    const [ra, rb] = await Promise.all([
      startHostScript(fx.deployArgs(a)).result,
      startHostScript(fx.deployArgs(b)).result,
    ]);
    assert.equal(ra.code, EXIT.ok, describeRun(ra));
    assert.equal(rb.code, EXIT.ok, describeRun(rb));
    const waitedA = WAITED.exec(ra.stdout);
    const waitedB = WAITED.exec(rb.stdout);
    assert.ok(!!waitedA !== !!waitedB, `exactly one must have waited:\n${ra.stdout}\n${rb.stdout}`);
    // The one that waited ran last, so its commit is live; it named the holder's commit.
    const [last, first] = waitedA ? [a, b] : [b, a];
    assert.equal((waitedA ?? waitedB)?.[2], first);
    assert.equal(snapshotRoot(fx.root).current, `releases/${last}`);
    assert.equal(snapshotRoot(fx.root).previous, `releases/${first}`);
    const served = await getServed(`${app.baseUrl}/`);
    assert.equal(served.revision, last);
    const status = await runHostScript(fx.args("status"));
    assert.equal(status.stdout, `${last}\n`);
  });

  it("waiting longer than --lock-timeout for the lock exits 8 and names the holder", async () => {
    const before = snapshotRoot(fx.root);
    // The script locks the root directory itself. In its own process group: `sleep` (flock's
    // child) holds the lock too and must die with it.
    const holder = start("flock", [fx.root, "sleep", "30"], {
      timeoutMs: 40_000,
      detached: true,
    });
    try {
      // flock has the lock once a non-blocking attempt fails.
      await waitFor(
        "the test's flock to hold the lock",
        async () => {
          const probe = await start("flock", ["-n", fx.root, "true"]).result;
          return probe.code !== 0 ? true : undefined;
        },
        { timeoutMs: 5000 },
      );
      const r = await runHostScript(fx.deployArgs(await fx.repo.head(), "--lock-timeout", "1"));
      assert.equal(r.code, EXIT.lockTimeout, describeRun(r));
      assert.match(r.stderr, /timed out after 1s waiting for the lock on .*, held by /);
      // Generous on purpose (a loaded machine): it waits 1 s, not the holder's 30 s.
      assert.ok(r.durationMs < 10_000, `took ${r.durationMs} ms`);
      assert.deepEqual(snapshotRoot(fx.root), before);
    } finally {
      process.kill(-holder.pid, "SIGKILL");
      await holder.result;
    }
  });

  it("a deploy killed (SIGKILL) mid-fetch blocks nothing: the next deploy succeeds and cleans up", async (t) => {
    const app = fx.container();
    const stalled = await fx.repo.commitGreeting("Hello from the deploy that gets killed");
    // A server that takes a minute to answer: the fetch hangs as long as we want.
    const slow = await startSlowGitServer(fx.repo.origin, 60_000);
    // bash itself (not through sh -c) so that we kill exactly the script, in its own process
    // group: git, its child, is left running as an orphan, the harder case for the lock.
    const args = fx.deployArgs(stalled);
    args[args.indexOf("--repo") + 1] = slow.url;
    const killed = start("bash", ["-s", "--", ...args], {
      input: hostScriptText(),
      detached: true,
      timeoutMs: 120_000,
    });
    try {
      await waitFor(
        "the deploy to be fetching from the stalled server",
        () => (slow.requests() > 0 ? true : undefined),
        { timeoutMs: 15_000 },
      );
      process.kill(killed.pid, "SIGKILL");
      const dead = await killed.result;
      assert.equal(dead.signal, "SIGKILL");
      assert.match(
        dead.stdout,
        new RegExp(`touchdeploy: fetch +${short(stalled)} from ${slow.url} \\.\\.\\. $`),
      );

      // Debris a deploy killed during extraction leaves (read-only, like a real one).
      const debris = path.join(fx.root, "releases", `.tmp-${stalled}-999999`);
      fs.mkdirSync(path.join(debris, "sub"), { recursive: true });
      fs.writeFileSync(path.join(debris, "sub", "file"), "half-written");
      fs.chmodSync(path.join(debris, "sub"), 0o555);

      const next = await fx.repo.commitGreeting("Hello after the killed deploy");
      const r = await fx.deploy(next, ["--lock-timeout", "5"]);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.doesNotMatch(r.stdout, /is locked by another deploy/);
      assert.match(
        r.stdout,
        /touchdeploy: clean +removed releases\/\.tmp-[0-9a-f]{40}-999999 left by an interrupted deploy/,
      );
      assert.deepEqual(
        snapshotRoot(fx.root).releases.filter((n) => n.startsWith(".")),
        [],
        "temporary directories left behind",
      );
      await waitForRevision(`${app.baseUrl}/`, next, 5000);
      assert.equal((await app.identity()).id, app.id);
      t.diagnostic(`next deploy after the SIGKILL took ${r.durationMs} ms`);
    } finally {
      await slow.close();
      try {
        process.kill(-killed.pid, "SIGKILL");
      } catch {
        // the group is gone already
      }
    }
  });
});
