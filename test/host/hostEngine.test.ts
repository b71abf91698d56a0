/**
 * host/touchdeploy.sh without Docker: the phases' vocabulary (setup → fetch → release, the old
 * names as aliases), its tables (one per subcommand, from which --help is printed), a code
 * deploy against the stand-in server, rollback, status and TOUCHDEPLOY_TRACE.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  APP,
  describeRun,
  errorLine,
  EXIT,
  makeScratchDir,
  hostGate,
  removeTree,
  runScript,
  setupFixture,
  short,
  type Fixture,
} from "./support/harness";

const SHA = "0123456789abcdef0123456789abcdef01234567";

/** stdout with what differs between two runs (durations, paths, mtimes) made equal. */
function normalized(stdout: string, root: string): string {
  return stdout
    .replaceAll(root, "ROOT")
    .replace(/\d+\.\d+s/g, "N.NNs")
    .replace(/mtime \d+/g, "mtime T");
}

describe("host engine: vocabulary and tables", hostGate(), () => {
  let dir: string;
  before(() => {
    dir = makeScratchDir("host-vocabulary");
  });
  after(() => removeTree(dir));

  it("setup, fetch and release do what init, prepare and activate do, line for line", async () => {
    const fx = await setupFixture("aliases", { standin: false });
    try {
      const sha = await fx.repo.head();
      const runs: Record<"new" | "old", string[]> = { new: [], old: [] };
      const names = { new: ["setup", "fetch", "release"], old: ["init", "prepare", "activate"] };
      for (const kind of ["new", "old"] as const) {
        const root = path.join(dir, kind);
        const [setup, fetch, release] = names[kind];
        for (const args of [
          [setup, "--root", root],
          [fetch, "--root", root, "--repo", fx.repo.origin, "--commit", sha],
          [release, "--root", root, "--commit", sha, "--subdir", APP],
          [fetch, "--root", root, "--repo", fx.repo.origin, "--commit", sha],
          [release, "--root", root, "--commit", sha, "--subdir", APP],
        ]) {
          const r = await runScript(args);
          assert.equal(r.code, EXIT.ok, describeRun(r));
          runs[kind].push(normalized(r.stdout, root) + r.stderr);
        }
        assert.equal(fs.readlinkSync(path.join(root, "current")), `releases/${sha}`);
      }
      assert.deepEqual(runs.old, runs.new);
      assert.match(runs.new[0], /^touchdeploy: setup    ROOT ready/);
      assert.match(runs.new[3], new RegExp(`^touchdeploy: fetch    ${short(sha)} already fetched`));
      assert.match(runs.new[4], new RegExp(`^touchdeploy: already live: ${short(sha)}`));
    } finally {
      await fx.cleanup();
    }
  });

  it("check accepts every subcommand, by its new and old name, and creates nothing", async () => {
    const root = path.join(dir, "checked");
    const cases: [string, string[]][] = [
      ["setup", ["--reload-file", ".reload"]],
      ["init", []],
      ["fetch", ["--repo", "/srv/repo.git", "--commit", SHA, "--ssh-key", "/nope"]],
      ["prepare", ["--repo", "https://example.com/x.git", "--commit", SHA]],
      ["release", ["--commit", SHA, "--subdir", APP, "--keep", "2"]],
      ["activate", ["--commit", SHA]],
      ["deploy", ["--repo", "/srv/r", "--commit", SHA, "--health-url", "http://127.0.0.1:8000/"]],
      ["rollback", ["--to", SHA]],
      ["status", []],
      ["destroy", ["--lock-timeout", "5"]],
    ];
    for (const [sub, extra] of cases) {
      const r = await runScript(["check", sub, "--root", root, ...extra]);
      assert.equal(r.code, EXIT.ok, `${sub}: ${describeRun(r)}`);
      assert.equal(r.stdout, `touchdeploy: check    ${sub}: every option is valid\n`);
      assert.equal(r.stderr, "");
    }
    assert.equal(fs.existsSync(root), false);
    const bad = await runScript(["check", "frobnicate", "--root", root]);
    assert.equal(bad.code, EXIT.badInput);
    assert.equal(
      errorLine(bad),
      "touchdeploy: error: check: unknown subcommand frobnicate (setup, fetch, release, deploy, rollback, status, destroy)",
    );
  });

  it("--help lists for each subcommand exactly the options it accepts (one table for both)", async () => {
    const help = await runScript(["--help"]);
    assert.equal(help.code, EXIT.ok);
    // "  release  --root DIR --commit SHA [--subdir PATH] ..." and its continuation lines.
    const usage = help.stdout.split("\nOptions")[0];
    const blocks = usage.split(/\n(?= {2}[a-z]+ +--)/).slice(1);
    const names = blocks.map((b) => b.trim().split(/\s+/)[0]);
    assert.deepEqual(names, [
      "setup",
      "fetch",
      "release",
      "deploy",
      "rollback",
      "status",
      "destroy",
    ]);
    const aliases: Record<string, string> = {
      setup: "init",
      fetch: "prepare",
      release: "activate",
    };
    for (const block of blocks) {
      const name = block.trim().split(/\s+/)[0];
      const listed = [...block.matchAll(/--([a-z-]+) (?:[A-Z"]|stdin)/g)].map((m) => m[1]);
      // The options parse_args accepts, as its error for an unknown option lists them.
      const r = await runScript(["check", name, "--root", "/x", "--no-such-option", "1"]);
      assert.equal(r.code, EXIT.badInput);
      const accepted = /\(accepted: (.*)\)$/.exec(errorLine(r))?.[1].split(" ") ?? [];
      assert.deepEqual(
        listed,
        accepted.map((a) => a.slice(2)),
        `${name}: --help and the parser disagree`,
      );
      if (aliases[name]) assert.match(block, new RegExp(`\\[${aliases[name]}\\]`));
    }
    for (const code of Object.values(EXIT)) {
      assert.match(help.stdout, new RegExp(`^ {2}${code} +[a-zA-Z]`, "m"), `exit ${code} missing`);
    }
    assert.match(help.stdout, /TOUCHDEPLOY_TRACE=1/);
  });
});

describe("host engine: deploy, rollback, status", hostGate(), () => {
  let fx: Fixture;
  let a: string;
  before(async () => {
    fx = await setupFixture("engine");
    a = await fx.repo.head();
    const r = await fx.deploy(a);
    assert.equal(r.code, EXIT.ok, describeRun(r));
  });
  after(async () => {
    await fx?.cleanup();
  });

  it("a code deploy: fetch, extract, switch, exactly one reload, healthy; previous is what was live", async () => {
    const server = fx.server();
    const b = await fx.repo.commit("B");
    const loads = server.loads();
    const r = await fx.deploy(b);
    assert.equal(r.code, EXIT.ok, describeRun(r));
    const steps = r.stdout.split("\n").map((l) => /^touchdeploy: (\S+)/.exec(l)?.[1]);
    assert.deepEqual(steps.filter(Boolean), [
      "fetch",
      "extract",
      "switch",
      "reload",
      "health",
      "prune",
      "deployed",
    ]);
    assert.match(
      r.stdout,
      new RegExp(`touchdeploy: switch   current -> releases/${short(b)} \\(was ${short(a)}\\)`),
    );
    assert.equal(r.stderr, "");
    assert.equal(server.loads(), loads + 1, "exactly one reload");
    assert.deepEqual(await server.get(), { status: 200, revision: b });
    const state = fx.state();
    assert.equal(state.current, b);
    assert.equal(state.previous, a);
    assert.deepEqual(state.leftovers, []);
    assert.equal(fs.readFileSync(path.join(fx.root, "releases", b, "REVISION"), "utf8"), b);
    const status = await runScript(fx.args("status"));
    assert.equal(status.code, EXIT.ok);
    assert.equal(status.stdout, `${b}\n`);
    assert.equal(status.stderr, "");
  });

  it("rollback goes to previous, then forward again; --to picks one; a no-op is refused loudly", async () => {
    const server = fx.server();
    const { current: b, previous } = fx.state();
    assert.equal(previous, a);
    const back = await runScript(fx.args("rollback", ...fx.releaseArgs()));
    assert.equal(back.code, EXIT.ok, describeRun(back));
    assert.match(back.stdout, new RegExp(`touchdeploy: rolled back to ${short(a)} in`));
    assert.deepEqual(await server.get(), { status: 200, revision: a });
    assert.deepEqual([fx.state().current, fx.state().previous], [a, b]);
    const forward = await runScript(fx.args("rollback", ...fx.releaseArgs()));
    assert.equal(forward.code, EXIT.ok, describeRun(forward));
    assert.deepEqual([fx.state().current, fx.state().previous], [b, a]);

    const to = await runScript(fx.args("rollback", "--to", a, ...fx.releaseArgs()));
    assert.equal(to.code, EXIT.ok, describeRun(to));
    assert.deepEqual(await server.get(), { status: 200, revision: a });

    // previous == current (made by hand): nothing to roll back to, said so, exit 3.
    fs.rmSync(path.join(fx.root, "previous"));
    fs.symlinkSync(`releases/${a}`, path.join(fx.root, "previous"));
    const noop = await runScript(fx.args("rollback", ...fx.releaseArgs()));
    assert.equal(noop.code, EXIT.nothingLive, describeRun(noop));
    assert.equal(
      errorLine(noop),
      `touchdeploy: error: nothing to roll back to: previous is the live release ${short(a)}; name one with --to SHA`,
    );
    const unknown = await runScript(fx.args("rollback", "--to", SHA));
    assert.equal(unknown.code, EXIT.missing, describeRun(unknown));
  });

  it("TOUCHDEPLOY_TRACE=1 traces the commands on stderr", async () => {
    const r = await runScript(fx.args("status"), { extraEnv: { TOUCHDEPLOY_TRACE: "1" } });
    assert.equal(r.code, EXIT.ok, describeRun(r));
    const c = await fx.repo.commit("traced");
    const d = await fx.deploy(c, [], { extraEnv: { TOUCHDEPLOY_TRACE: "1" } });
    assert.equal(d.code, EXIT.ok, describeRun(d));
    assert.match(d.stderr, /^\+ touchdeploy:\d+: step_fetch$/m);
    assert.match(d.stderr, /^\+ touchdeploy:\d+: touch -d @\d+ -- .*\/\.reload$/m);
  });
});
