/**
 * host/touchdeploy.sh against a real uWSGI container: code-only deploys, force-pushed history,
 * "already live", rollback, pruning, and the classic touch-reload contract. Every check reads
 * what is served over HTTP (status, X-Revision, body) and that the container is the same one;
 * reloads are counted by uWSGI's own log line, waited for as an event.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { getServed, waitForRevision } from "../harness/app";
import {
  describeRun,
  EXIT,
  runHostScript,
  snapshotRoot,
  startHostScript,
} from "../harness/hostScript";
import {
  setupFixture,
  short,
  startClassicContainer,
  waitForReloads,
  type Fixture,
} from "../harness/fixture";
import { ensureRuntimeImage } from "../harness/images";
import { e2eGate } from "../harness/prerequisites";
import { waitFor } from "../harness/process";
import { startPaused } from "../host/support/harness";

describe(
  "host script: code-only deploys",
  e2eGate(["docker", "debootstrap", "git", "curl", "flock"]),
  () => {
    let fx: Fixture;
    before(async () => {
      fx = await setupFixture("deploy");
    });
    after(async () => {
      await fx?.cleanup();
    });

    it("first deploy, then a code-only deploy: new code served by the same container after one reload", async (t) => {
      const app = fx.container();
      const s1 = await fx.repo.head();
      const first = await fx.deploy(s1);
      assert.equal(first.code, EXIT.ok, describeRun(first));
      assert.match(first.stdout, new RegExp(`touchdeploy: deployed ${short(s1)} in \\d+\\.\\d+s`));
      const served1 = await waitForRevision(`${app.baseUrl}/`, s1);
      assert.equal(served1.body, `Hello from touchdeploy (revision ${short(s1)})\n`);
      const before1 = await app.identity();
      assert.equal(before1.id, app.id);

      const s2 = await fx.repo.commitGreeting("Hello again from touchdeploy");
      const reloadsBefore = await app.countReloads();
      const t0 = Date.now();
      const running = startHostScript(fx.deployArgs(s2));
      // The time a user waits: from the deploy's start until a request gets the new code.
      const servedNew = await waitFor(
        "the new greeting",
        async () => {
          const s = await getServed(`${app.baseUrl}/`, 1000);
          return s.status === 200 && s.body.startsWith("Hello again") ? s : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 50 },
      );
      const servedAfterMs = Date.now() - t0;
      const second = await running.result;
      assert.equal(second.code, EXIT.ok, describeRun(second));
      assert.equal(servedNew.revision, s2);
      assert.equal(servedNew.body, `Hello again from touchdeploy (revision ${short(s2)})\n`);
      for (const step of ["fetch", "extract", "switch", "reload", "health", "prune"]) {
        assert.match(second.stdout, new RegExp(`^touchdeploy: ${step} `, "m"), `no ${step} step`);
      }
      const reported = /touchdeploy: deployed \w+ in (\d+\.\d+)s/.exec(second.stdout)?.[1];
      const healthy = /healthy (\d+\.\d+)s after the reload/.exec(second.stdout)?.[1];

      const after2 = await app.identity();
      assert.deepEqual(after2, before1, "the container was replaced or restarted");
      // One touch, so one reload: its log line is there (uWSGI logs it before it serves the new
      // code), and no second touch could cause another.
      await waitForReloads(app, reloadsBefore + 1);
      assert.equal(second.stdout.match(/^touchdeploy: reload /gm)?.length, 1);
      assert.equal(
        await app.countReloads(),
        reloadsBefore + 1,
        "expected exactly one uWSGI reload",
      );
      t.diagnostic(
        `deploy start -> new code served: ${servedAfterMs} ms (script: deployed in ${reported}s, ` +
          `healthy ${healthy}s after the touch); container ${app.id.slice(0, 12)} unchanged`,
      );
    });

    it("redeploying the live commit is a no-op: 'already live', no touch, no reload", async () => {
      const app = fx.container();
      const live = await fx.repo.head();
      const before = snapshotRoot(fx.root);
      const reloadsBefore = await app.countReloads();
      const r = await fx.deploy(live);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.match(r.stdout, new RegExp(`already live: ${short(live)}`));
      assert.doesNotMatch(r.stdout, /touchdeploy: reload /);
      // The trigger was not touched, so nothing could reload.
      assert.deepEqual(snapshotRoot(fx.root), before, "the root changed (trigger touched?)");
      assert.equal(await app.countReloads(), reloadsBefore);
      assert.equal((await getServed(`${app.baseUrl}/`)).revision, live);
    });

    it("deploys a commit of force-pushed (rewritten) history", async () => {
      const app = fx.container();
      const replaced = await fx.repo.head();
      const rewritten = await fx.repo.rewriteHistory("Hello from rewritten history");
      const onOrigin = await fx.repo
        .git(fx.repo.origin, "branch", "--contains", replaced)
        .catch(() => "");
      assert.equal(onOrigin, "", "the replaced commit should no longer be on any branch");
      const r = await fx.deploy(rewritten);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      const served = await getServed(`${app.baseUrl}/`);
      assert.equal(served.revision, rewritten);
      assert.match(served.body, /^Hello from rewritten history/);
      assert.equal((await app.identity()).id, app.id);
    });

    it("falls back to fetching branches and tags when the server refuses a fetch by SHA, across a force-push", async () => {
      const app = fx.container();
      // Protocol v0 servers only hand out advertised tips: deploying a commit below the tip makes
      // the fetch by SHA fail ("not our ref"), the case GitHub-like servers can present.
      // Through the user's own ~/.gitconfig: the script drops any GIT_* the caller exports.
      const home = path.join(fx.dir, "home-protocol-v0");
      fs.mkdirSync(home, { recursive: true });
      fs.writeFileSync(path.join(home, ".gitconfig"), "[protocol]\n\tversion = 0\n");
      const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: home };

      const belowTip = await fx.repo.commitGreeting("Hello from below the tip");
      await fx.repo.commitGreeting("Hello from the tip");
      const r1 = await fx.deploy(belowTip, [], { env });
      assert.equal(r1.code, EXIT.ok, describeRun(r1));
      assert.match(r1.stdout, /by SHA failed, trying all branches and tags \.\.\. done/);
      assert.equal((await getServed(`${app.baseUrl}/`)).revision, belowTip);

      // History rewritten: the cached branch ref must be force-updated by the fallback.
      const rewritten = await fx.repo.rewriteHistory(
        "Hello from rewritten history, below the tip",
        2,
      );
      await fx.repo.commitGreeting("Hello from the new tip");
      const r2 = await fx.deploy(rewritten, [], { env });
      assert.equal(r2.code, EXIT.ok, describeRun(r2));
      assert.match(r2.stdout, /by SHA failed, trying all branches and tags \.\.\. done/);
      const served = await getServed(`${app.baseUrl}/`);
      assert.equal(served.revision, rewritten);
      assert.match(served.body, /^Hello from rewritten history, below the tip/);
    });

    it("rolls back to the previous release, then to a given one (--to)", async () => {
      const app = fx.container();
      const a = await fx.repo.commitGreeting("Hello A");
      const b = await fx.repo.commitGreeting("Hello B");
      for (const sha of [a, b]) {
        const r = await fx.deploy(sha);
        assert.equal(r.code, EXIT.ok, describeRun(r));
      }
      const rollbackArgs = ["--subdir", "examples/hello-wsgi", "--health-url", app.healthUrl];
      const back = await runHostScript(fx.args("rollback", ...rollbackArgs));
      assert.equal(back.code, EXIT.ok, describeRun(back));
      assert.match(back.stdout, new RegExp(`rolled back to ${short(a)}`));
      assert.equal((await getServed(`${app.baseUrl}/`)).revision, a);
      assert.equal(snapshotRoot(fx.root).previous, `releases/${b}`);
      const status = await runHostScript(fx.args("status"));
      assert.equal(status.code, EXIT.ok, describeRun(status));
      assert.equal(status.stdout, `${a}\n`);

      // A second rollback goes forward again (previous is the release we left).
      const forward = await runHostScript(fx.args("rollback", ...rollbackArgs));
      assert.equal(forward.code, EXIT.ok, describeRun(forward));
      assert.equal((await getServed(`${app.baseUrl}/`)).revision, b);

      const to = await runHostScript(fx.args("rollback", "--to", a, ...rollbackArgs));
      assert.equal(to.code, EXIT.ok, describeRun(to));
      const served = await getServed(`${app.baseUrl}/`);
      assert.equal(served.revision, a);
      assert.equal(served.body, `Hello A (revision ${short(a)})\n`);
      assert.equal((await app.identity()).id, app.id);
    });

    it("--keep N keeps exactly the N newest releases, and never the live or previous one", async () => {
      const k1 = await fx.repo.commitGreeting("Hello K1");
      const k2 = await fx.repo.commitGreeting("Hello K2");
      for (const sha of [k1, k2]) {
        const r = await fx.deploy(sha, ["--keep", "3"]);
        assert.equal(r.code, EXIT.ok, describeRun(r));
      }
      const kept = snapshotRoot(fx.root).releases;
      assert.equal(kept.length, 3, `kept: ${kept.join(" ")}`);
      assert.ok(kept.includes(k2) && kept.includes(k1), "live and previous must be kept");
      const third = kept.find((n) => n !== k1 && n !== k2) ?? "";

      // Make an old release live again: it becomes the newest; k2 becomes previous...
      const to = await runHostScript(
        fx.args("rollback", "--to", third, "--health-url", fx.container().healthUrl),
      );
      assert.equal(to.code, EXIT.ok, describeRun(to));
      // ...then deploy k3 keeping 1: k3 (newest, live) stays, and so does `third` (previous now).
      const k3 = await fx.repo.commitGreeting("Hello K3");
      const r3 = await fx.deploy(k3, ["--keep", "1"]);
      assert.equal(r3.code, EXIT.ok, describeRun(r3));
      const snap = snapshotRoot(fx.root);
      assert.deepEqual(snap.releases, [k3, third].sort());
      assert.equal(snap.current, `releases/${k3}`);
      assert.equal(snap.previous, `releases/${third}`);
      assert.equal((await getServed(`${fx.container().baseUrl}/`)).revision, k3);
    });
  },
);

describe(
  "host script: the classic touch-reload contract (whole seconds)",
  e2eGate(["docker", "debootstrap", "git", "curl", "flock"]),
  () => {
    let fx: Fixture;
    before(async () => {
      fx = await setupFixture("classic", { container: false });
    });
    after(async () => {
      await fx?.cleanup();
    });

    it("a deploy in the same second as the trigger's last mtime still reloads (mtime + 1)", async () => {
      const app = await startClassicContainer({
        image: (await ensureRuntimeImage()).tag,
        root: fx.root,
        dir: fx.dir,
        name: "classic",
      });
      try {
        const first = await fx.repo.head();
        const r1 = await runHostScript([...fx.deployArgs(first), "--health-url", app.healthUrl]);
        assert.equal(r1.code, EXIT.ok, describeRun(r1));
        // The trigger's mtime a second or two ahead (as a deploy in the same second leaves it):
        // touch-reload sees the change once and keeps that second as its mark.
        const trigger = path.join(fx.root, ".reload");
        const mark = Math.floor(Date.now() / 1000) + 2;
        fs.utimesSync(trigger, mark, mark);
        await waitForReloads(app, 1);
        const next = await fx.repo.commitGreeting("Hello in the same second");
        const run = startPaused(fx.dir, "reload", [
          ...fx.deployArgs(next),
          "--health-url",
          app.healthUrl,
          "--health-timeout",
          "5",
        ]);
        await run.paused;
        // Touch in that very second: a plain touch (now) would leave the mtime unchanged.
        await waitFor(
          "the clock to reach the trigger's second",
          () => (Date.now() >= mark * 1000 ? true : undefined),
          { timeoutMs: 5000, intervalMs: 5 },
        );
        assert.ok(Date.now() < mark * 1000 + 500, "too late in the second to prove anything");
        run.resume();
        const r2 = await run.run.result;
        assert.equal(r2.code, EXIT.ok, describeRun(r2));
        assert.match(r2.stdout, new RegExp(`touched \\.reload \\(mtime ${mark + 1}\\)`));
        assert.equal((await getServed(`${app.baseUrl}/`)).revision, next);
        assert.equal(await app.countReloads(), 2);
      } finally {
        await app.remove();
      }
    });
  },
);
