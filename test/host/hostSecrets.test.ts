/**
 * Credentials never on a command line nor in output (issue 10, defect 7): an https repository
 * that needs a password is fetched with --credentials-file or with credentials in the URL, while
 * every process's command line is watched; the user's own credential helper cannot store them;
 * a trace does not show them; a health URL's basic auth is not printed.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { startSlowGitServer, type SlowGitServer } from "../harness/slowGitServer";
import {
  allCommandLines,
  describeRun,
  errorLine,
  EXIT,
  hostGate,
  runScript,
  setupFixture,
  short,
  startScript,
  type Fixture,
  type RunResult,
} from "./support/harness";

const SECRET = "s3cr3t-PASSw0rd";

describe("credentials", hostGate(), () => {
  let fx: Fixture;
  let server: SlowGitServer;
  let home: string;
  before(async () => {
    fx = await setupFixture("secrets");
    // A private repository: every request needs Basic deployer:SECRET. Each answer waits 150 ms,
    // so the fetch runs long enough to be watched.
    server = await startSlowGitServer(fx.repo.origin, 150, { auth: `deployer:${SECRET}` });
    // A user whose git stores every credential it sees.
    home = path.join(fx.dir, "home");
    fs.mkdirSync(home);
    fs.writeFileSync(path.join(home, ".gitconfig"), "[credential]\n\thelper = store\n");
  });
  after(async () => {
    await server?.close();
    await fx?.cleanup();
  });

  /** Runs a deploy while collecting every process's command line every 10 ms. */
  async function watched(args: string[]): Promise<{ r: RunResult; argv: string[] }> {
    const seen = new Set<string>();
    const run = startScript(args, { extraEnv: { HOME: home, XDG_CONFIG_HOME: home } });
    let done = false;
    const result = run.result.then((r) => {
      done = true;
      return r;
    });
    while (!done) {
      for (const line of allCommandLines()) seen.add(line);
      await new Promise((res) => setTimeout(res, 10));
    }
    return { r: await result, argv: [...seen] };
  }

  it("--credentials-file: the fetch authenticates, and no command line or output shows the password", async () => {
    const sha = await fx.repo.commit("private, by file");
    const file = path.join(fx.dir, "credentials");
    fs.writeFileSync(file, `deployer:${SECRET}\n`, { mode: 0o600 });
    const args = fx.deployArgs(sha, "--credentials-file", file);
    args[args.indexOf("--repo") + 1] = server.url;
    const { r, argv } = await watched(args);
    assert.equal(r.code, EXIT.ok, describeRun(r));
    assert.ok(
      argv.some((l) => l.includes("git") && l.includes("fetch")),
      "the fetch was seen running",
    );
    assert.deepEqual(
      argv.filter((l) => l.includes(SECRET)),
      [],
    );
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(SECRET));
    assert.ok(
      server
        .authorizations()
        .includes(`Basic ${Buffer.from(`deployer:${SECRET}`).toString("base64")}`),
    );
    assert.equal(
      fs.existsSync(path.join(home, ".git-credentials")),
      false,
      "stored by the user's helper",
    );
    assert.deepEqual(await fx.server().get(), { status: 200, revision: sha });
  });

  it("credentials in the URL: git, its helpers and the output never see them (only the caller's own argv)", async () => {
    const sha = await fx.repo.commit("private, by URL");
    const url = server.url.replace("http://", `http://deployer:${SECRET}@`);
    const args = fx.deployArgs(sha);
    args[args.indexOf("--repo") + 1] = url;
    const { r, argv } = await watched(args);
    assert.equal(r.code, EXIT.ok, describeRun(r));
    // The script's own command line carries what its caller gave it; nothing it starts does.
    const leaks = argv.filter((l) => l.includes(SECRET) && !/^bash -s -- deploy /.test(l));
    assert.deepEqual(leaks, []);
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(SECRET));
    assert.match(
      r.stderr,
      /touchdeploy: warning: --repo carries credentials: other users of this host can read them in the process list while this runs; use --credentials-file/,
    );
    assert.match(
      r.stdout,
      new RegExp(`fetch +${short(sha)} from http://\\*\\*\\*@127\\.0\\.0\\.1:`),
    );
    assert.equal(fs.existsSync(path.join(home, ".git-credentials")), false);
  });

  it("without credentials the fetch fails (exit 4) and nothing prompts", async () => {
    const sha = await fx.repo.commit("private, no credentials");
    const args = fx.deployArgs(sha);
    args[args.indexOf("--repo") + 1] = server.url;
    const r = await runScript(args, { extraEnv: { HOME: home } });
    assert.equal(r.code, EXIT.missing, describeRun(r));
    assert.match(
      errorLine(r),
      new RegExp(`^touchdeploy: error: fetch of ${short(sha)} from ${server.url} failed: `),
    );
  });

  it("a credentials file others can read is refused (exit 2); one holding nothing too", async () => {
    const open = path.join(fx.dir, "open-credentials");
    fs.writeFileSync(open, `deployer:${SECRET}\n`, { mode: 0o644 });
    fs.chmodSync(open, 0o644);
    const r = await runScript(
      fx.args(
        "fetch",
        "--repo",
        server.url,
        "--commit",
        "a".repeat(40),
        "--credentials-file",
        open,
      ),
    );
    assert.equal(r.code, EXIT.badInput);
    assert.equal(
      errorLine(r),
      `touchdeploy: error: --credentials-file ${open}: is readable by others (mode 644): chmod 600 it`,
    );
    const empty = path.join(fx.dir, "empty-credentials");
    fs.writeFileSync(empty, "\n", { mode: 0o600 });
    const e = await runScript(
      fx.args(
        "fetch",
        "--repo",
        server.url,
        "--commit",
        "a".repeat(40),
        "--credentials-file",
        empty,
      ),
    );
    assert.equal(e.code, EXIT.badInput);
    assert.match(errorLine(e), /must hold USER:PASSWORD or a token on its first line$/);
    const good = path.join(fx.dir, "good-credentials");
    fs.writeFileSync(good, `deployer:${SECRET}\n`, { mode: 0o600 });
    const ssh = await runScript(
      fx.args(
        "fetch",
        "--repo",
        "git@example.com:a/b.git",
        "--commit",
        "a".repeat(40),
        "--credentials-file",
        good,
      ),
    );
    assert.equal(
      errorLine(ssh),
      "touchdeploy: error: --credentials-file is only used with an https:// or http:// --repo",
    );
  });

  it("a trace (TOUCHDEPLOY_TRACE=1) shows neither the URL's nor the file's credentials", async () => {
    const sha = await fx.repo.commit("private, traced");
    const url = server.url.replace("http://", `http://deployer:${SECRET}@`);
    const args = fx.deployArgs(sha);
    args[args.indexOf("--repo") + 1] = url;
    const r = await runScript(args, { extraEnv: { TOUCHDEPLOY_TRACE: "1", HOME: home } });
    assert.equal(r.code, EXIT.ok, describeRun(r));
    assert.match(r.stderr, /^\+ touchdeploy:\d+: /m);
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(SECRET));
  });

  it("a health URL's basic auth is used, never printed", async () => {
    const sha = await fx.repo.commit("health with auth");
    const args = fx.deployArgs(sha);
    const health = fx.server().healthUrl.replace("http://", `http://probe:${SECRET}@`);
    args[args.indexOf("--health-url") + 1] = health;
    const r = await runScript(args);
    assert.equal(r.code, EXIT.ok, describeRun(r));
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(SECRET));
    assert.match(r.stdout, /health +waiting for \w+ on http:\/\/\*\*\*@127\.0\.0\.1:\d+\/healthz/);
  });
});
