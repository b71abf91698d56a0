/**
 * host/touchdeploy.sh when things go wrong: a broken commit is rolled back automatically, a
 * missing commit or bad input changes nothing, and hostile strings are never executed.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { getServed, waitForRevision } from "../harness/app";
import { setupFixture, short, type Fixture } from "../harness/fixture";
import { APP_SUBDIR } from "../harness/git";
import { describeRun, errorLines, EXIT, runHostScript, snapshotRoot } from "../harness/hostScript";
import { e2eGate } from "../harness/prerequisites";
import { makeScratchDir, removeTree } from "../harness/process";

describe(
  "host script: failures",
  e2eGate(["docker", "debootstrap", "git", "curl", "flock"]),
  () => {
    let fx: Fixture;
    let good: string;
    /** The broken commit of the first test; its release stays prepared. */
    let brokenSha = "";
    before(async () => {
      fx = await setupFixture("failures");
      good = await fx.repo.head();
      const r = await fx.deploy(good);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      await waitForRevision(`${fx.container().baseUrl}/`, good);
    });
    after(async () => {
      await fx?.cleanup();
    });

    it("a broken commit (ImportError) never serves; the runtime reports why and the script switches back at once: exit 6 with one clear line (issue 12)", async (t) => {
      const app = fx.container();
      const broken = await fx.repo.commitBroken();
      brokenSha = broken;
      const before = snapshotRoot(fx.root);
      const reloadsBefore = await app.countReloads();
      // Users keep being served by the old generation while the new one fails to import.
      const answers: { status: number; revision?: string }[] = [];
      let polling = true;
      const poller = (async () => {
        while (polling) answers.push(await getServed(`${app.baseUrl}/`, 2000));
      })();
      // A 60 s health timeout: only the runtime's report can end the wait in seconds.
      const r = await fx.deploy(broken, ["--container", app.name, "--health-timeout", "60"]);
      polling = false;
      await poller;
      assert.equal(r.code, EXIT.rolledBack, describeRun(r));
      const errors = errorLines(r.stderr);
      assert.equal(errors.length, 1, describeRun(r));
      assert.equal(r.stderr.trim().split("\n").length, 1, "stderr should be that one line");
      assert.match(
        errors[0],
        new RegExp(
          `^touchdeploy: error: could not deploy ${short(broken)}: it failed its health check ` +
            `\\(the runtime could not start ${short(broken)}: generation \\d+: it exited with ` +
            `status \\d+ before it answered: ModuleNotFoundError: No module named ` +
            `'touchdeploy_no_such_module'\\); switched back: commit ${short(good)} is serving ` +
            `again; fix the commit \\(see the container's log\\) and deploy again$`,
        ),
      );
      assert.ok(
        r.durationMs < 15_000,
        `took ${r.durationMs} ms: the health timeout was waited out`,
      );
      assert.ok(answers.length > 0);
      assert.deepEqual(
        answers.filter((a) => a.status !== 200 || a.revision !== good),
        [],
        "a request was not answered 200 by the old release",
      );
      assert.match(
        await app.logs(),
        new RegExp(
          `touchdeploy-generations: generation \\d+ \\(${short(broken)}, pid \\d+\\) FAILED: it exited`,
        ),
      );
      // No reload: the broken generation never took over, and the switch back started nothing.
      assert.equal(await app.countReloads(), reloadsBefore);

      const served = await getServed(`${app.baseUrl}/`);
      assert.equal(served.status, 200);
      assert.equal(served.revision, good);
      assert.equal(served.body, `Hello from touchdeploy (revision ${short(good)})\n`);
      const afterSnap = snapshotRoot(fx.root);
      assert.equal(afterSnap.current, before.current);
      assert.equal(afterSnap.previous, before.previous);
      assert.ok(afterSnap.releases.includes(broken), "the broken release stays prepared");
      assert.equal((await app.identity()).id, app.id);
      t.diagnostic(`broken deploy detected and rolled back in ${r.durationMs} ms`);

      // And the next good commit deploys normally.
      const fixed = await fx.repo.commitFixed("Hello after the fix");
      const r2 = await fx.deploy(fixed);
      assert.equal(r2.code, EXIT.ok, describeRun(r2));
      assert.equal((await getServed(`${app.baseUrl}/`)).revision, fixed);
      good = fixed;
    });

    it("rollback --to a release that fails its health check switches forward again (exit 6)", async () => {
      const app = fx.container();
      const live = (await getServed(`${app.baseUrl}/`)).revision ?? "";
      const broken = brokenSha;
      assert.ok(
        snapshotRoot(fx.root).releases.includes(broken),
        "the broken release is still prepared",
      );
      const r = await runHostScript(
        fx.args("rollback", "--to", broken, "--health-url", app.healthUrl, "--container", app.name),
      );
      assert.equal(r.code, EXIT.rolledBack, describeRun(r));
      assert.match(
        errorLines(r.stderr)[0],
        new RegExp(
          `could not roll back to ${short(broken)}: it failed its health check \\(the runtime could not start ${short(broken)}: .*ModuleNotFoundError.*commit ${short(live)} is serving again`,
        ),
      );
      assert.equal((await getServed(`${app.baseUrl}/`)).revision, live);
      assert.equal(snapshotRoot(fx.root).current, `releases/${live}`);
    });

    it("a container that never reloads (it watches another trigger): exit 6 after --health-timeout, with a hint", async () => {
      const app = fx.container();
      const unseen = await fx.repo.commitGreeting("Hello nobody will see");
      const r = await fx.deploy(unseen, [
        "--reload-file",
        "wrong.trigger",
        "--health-timeout",
        "3",
      ]);
      assert.equal(r.code, EXIT.rolledBack, describeRun(r));
      const [line] = errorLines(r.stderr);
      assert.match(
        line,
        /not served with HTTP 200 within 3s \(last seen: HTTP 200, revision \w+\)/,
      );
      assert.match(
        line,
        /the server never reloaded: does its container mount .* and watch wrong\.trigger/,
      );
      assert.equal((await getServed(`${app.baseUrl}/`)).revision, good);
      assert.equal(snapshotRoot(fx.root).current, `releases/${good}`);
    });

    it("a commit that is not in the repository: exit 4, nothing changed", async () => {
      const before = snapshotRoot(fx.root);
      const missing = "0123456789abcdef0123456789abcdef01234567";
      const r = await fx.deploy(missing);
      assert.equal(r.code, EXIT.missing, describeRun(r));
      assert.match(
        errorLines(r.stderr)[0] ?? "",
        new RegExp(`commit ${missing} not found in .*push it first`),
      );
      assert.deepEqual(snapshotRoot(fx.root), before);
      assert.equal((await getServed(`${fx.container().baseUrl}/`)).revision, good);
    });

    it("an unreachable repository: exit 4, credentials in the URL are never printed", async () => {
      const before = snapshotRoot(fx.root);
      const nowhere = await runHostScript([
        "fetch",
        "--root",
        fx.root,
        "--repo",
        path.join(fx.dir, "no-such-repo.git"),
        "--commit",
        "0123456789abcdef0123456789abcdef01234567",
      ]);
      assert.equal(nowhere.code, EXIT.missing, describeRun(nowhere));
      assert.match(
        nowhere.stderr,
        /no-such-repo\.git failed: .*does not appear to be a git repository/,
      );
      const secret = await runHostScript([
        "fetch",
        "--root",
        fx.root,
        "--repo",
        "https://deployer:s3cr3t-t0ken@127.0.0.1:1/app.git",
        "--commit",
        "0123456789abcdef0123456789abcdef01234567",
      ]);
      assert.equal(secret.code, EXIT.missing, describeRun(secret));
      assert.match(
        secret.stderr,
        /fetch of 0123456789ab from https:\/\/\*\*\*@127\.0\.0\.1:1\/app\.git failed/,
      );
      assert.doesNotMatch(secret.stdout + secret.stderr, /s3cr3t/);
      assert.deepEqual(snapshotRoot(fx.root), before);
    });

    it("malformed SHAs are refused with exit 2 before anything changes", async () => {
      const before = snapshotRoot(fx.root);
      for (const bad of [
        "abc",
        good.toUpperCase(),
        `${good}0`,
        good.slice(1),
        "",
        "HEAD",
        "main",
      ]) {
        const r = await fx.deploy(bad);
        assert.equal(r.code, EXIT.badInput, `${JSON.stringify(bad)}: ${describeRun(r)}`);
        assert.match(r.stderr, /touchdeploy: error: --commit .*: must be a full commit SHA/);
      }
      assert.deepEqual(snapshotRoot(fx.root), before);
    });

    it("release refuses a release that is not fetched (exit 4) or lacks <subdir>/uwsgi.ini (exit 2)", async () => {
      const before = snapshotRoot(fx.root);
      const unprepared = await runHostScript(fx.args("release", "--commit", "f".repeat(40)));
      assert.equal(unprepared.code, EXIT.missing, describeRun(unprepared));
      assert.match(unprepared.stderr, /run fetch first/);
      const wrongSubdir = await runHostScript(
        fx.args("release", "--commit", good, "--subdir", "examples/nope"),
      );
      assert.equal(wrongSubdir.code, EXIT.badInput, describeRun(wrongSubdir));
      assert.match(wrongSubdir.stderr, /has no examples\/nope\/uwsgi\.ini: check --subdir/);
      assert.deepEqual(snapshotRoot(fx.root), before);
    });

    it("status and rollback with nothing live exit 3; rollback --to an unknown release exits 4", async () => {
      const empty = makeScratchDir("empty");
      try {
        const root = path.join(empty, "root");
        const status = await runHostScript(["status", "--root", root]);
        assert.equal(status.code, EXIT.nothingLive, describeRun(status));
        assert.equal(status.stdout, "");
        assert.match(status.stderr, /nothing is live/);
        const rollback = await runHostScript(["rollback", "--root", root]);
        assert.equal(rollback.code, EXIT.nothingLive, describeRun(rollback));
      } finally {
        removeTree(empty);
      }
      const to = await runHostScript(fx.args("rollback", "--to", "e".repeat(40)));
      assert.equal(to.code, EXIT.missing, describeRun(to));
    });

    it("hostile strings in every argument are refused with exit 2 and never executed", async () => {
      const marker = path.join(os.tmpdir(), `tdtest-pwned-${process.pid}`);
      fs.rmSync(marker, { force: true });
      const hostile = [
        `$(touch ${marker})`,
        `;touch ${marker}`,
        `x\ntouch ${marker}`,
        `\`touch ${marker}\``,
        `|touch ${marker}`,
        `&& touch ${marker} &&`,
        `-oProxyCommand=touch ${marker}`,
        `--upload-pack=touch ${marker}`,
      ];
      const keyFile = path.join(fx.dir, "not-a-real-key");
      fs.writeFileSync(keyFile, "placeholder\n");
      const valid: Record<string, string> = {
        root: fx.root,
        repo: fx.repo.origin,
        commit: good,
        subdir: APP_SUBDIR,
        "reload-file": ".reload",
        "health-url": fx.container().healthUrl,
        "health-timeout": "5",
        keep: "5",
        "dependency-files": "requirements.txt Aptfile",
        "container-fingerprint": "unmanaged",
        "lock-timeout": "5",
      };
      const invocations: { what: string; args: string[] }[] = [];
      const withOptions = (sub: string, options: Record<string, string>): string[] => [
        sub,
        ...Object.entries(options).flatMap(([k, v]) => [`--${k}`, v]),
      ];
      for (const value of hostile) {
        for (const option of Object.keys(valid)) {
          invocations.push({
            what: `--${option}`,
            args: withOptions("deploy", { ...valid, [option]: value }),
          });
        }
        invocations.push({
          what: "--ssh-key",
          args: withOptions("deploy", { ...valid, "ssh-key": value }),
        });
        invocations.push({
          what: "--known-hosts",
          args: withOptions("deploy", { ...valid, "ssh-key": keyFile, "known-hosts": value }),
        });
        invocations.push({
          what: "--to",
          args: withOptions("rollback", { root: fx.root, to: value }),
        });
        invocations.push({
          what: "option name",
          args: ["deploy", `--${value}`, "x", ...withOptions("deploy", valid).slice(1)],
        });
        invocations.push({ what: "subcommand", args: [value, "--root", fx.root] });
        invocations.push({ what: "positional", args: ["status", "--root", fx.root, value] });
      }
      const before = snapshotRoot(fx.root);
      const beforeEntries = fs.readdirSync(fx.root).sort();
      for (const { what, args } of invocations) {
        const r = await runHostScript(args, { timeoutMs: 20_000 });
        assert.equal(r.code, EXIT.badInput, `${what} = ${JSON.stringify(args)}\n${describeRun(r)}`);
        assert.equal(errorLines(r.stderr).length, 1, describeRun(r));
        if (what.startsWith("--")) {
          assert.match(r.stderr, new RegExp(`error: --${what.slice(2)} `), describeRun(r));
        }
        assert.equal(
          r.stdout,
          "",
          `${what}: nothing may start before validation\n${describeRun(r)}`,
        );
      }
      assert.equal(fs.existsSync(marker), false, "a hostile string was executed");
      assert.deepEqual(snapshotRoot(fx.root), before);
      assert.deepEqual(fs.readdirSync(fx.root).sort(), beforeEntries);
      assert.equal((await getServed(`${fx.container().baseUrl}/`)).revision, good);
    });

    it("exit 7 (URGENT) when nothing healthy serves: first deploy failing, or the switch back failing too", async () => {
      // A first deploy has nothing to switch back to.
      const lonely = makeScratchDir("lonely");
      try {
        const r = await runHostScript([
          "deploy",
          "--root",
          path.join(lonely, "root"),
          "--repo",
          fx.repo.origin,
          "--commit",
          good,
          "--subdir",
          APP_SUBDIR,
          "--health-url",
          "http://127.0.0.1:1/healthz",
          "--health-timeout",
          "2",
        ]);
        assert.equal(r.code, EXIT.urgent, describeRun(r));
        assert.match(
          errorLines(r.stderr)[0],
          /URGENT: could not deploy \w+: it failed its health check .* no other release to switch back to/,
        );
      } finally {
        removeTree(lonely);
      }

      // The container is frozen (paused): neither the new commit nor the switch back becomes
      // healthy. Pausing keeps its id and published port, unlike a stop and start.
      const app = fx.container();
      const next = await fx.repo.commitGreeting("Hello to a stopped container");
      await app.container.pause();
      try {
        // Without --container: a paused container refuses docker exec, so with it the script
        // would stop before the switch (it asks the container its user first).
        const args = fx.deployArgs(next, "--health-timeout", "2");
        args.splice(args.indexOf("--container"), 2);
        const r = await runHostScript(args);
        assert.equal(r.code, EXIT.urgent, describeRun(r));
        assert.match(
          errorLines(r.stderr)[0],
          new RegExp(
            `URGENT: could not deploy ${short(next)} .* AND switching back to ${short(good)} did not become healthy`,
          ),
        );
        assert.equal(
          snapshotRoot(fx.root).current,
          `releases/${good}`,
          "switched back all the same",
        );
      } finally {
        await app.container.unpause();
      }
      await waitForRevision(`${app.baseUrl}/`, good);
    });

    it("values that merely look hostile but are valid are used literally, never evaluated", async () => {
      const marker = path.join(os.tmpdir(), `tdtest-pwned-literal-${process.pid}`);
      const weird = path.join(fx.dir, `root $(touch ${marker}) ;x`);
      const r = await runHostScript(["setup", "--root", weird, "--reload-file", "$(touch x);`y`"]);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.ok(
        fs.statSync(path.join(weird, "$(touch x);`y`")).isFile(),
        "trigger created literally",
      );
      assert.ok(fs.statSync(path.join(weird, "releases")).isDirectory());
      assert.equal(fs.existsSync(marker), false);
    });
  },
);
