/**
 * What the script accepts, as the source of truth for the program (issue 8, items 9 and 10;
 * issue 9's host tests): repository paths with spaces, every reserved name refused as
 * --reload-file, a --repo starting with "-", redaction of credentials in what it prints, and
 * the dependency fingerprint of a file that is not UTF-8, checked against python3's hashlib.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { TestRepo } from "../harness/git";
import {
  APP,
  describeRun,
  errorLine,
  EXIT,
  hostGate,
  makeScratchDir,
  removeTree,
  runScript,
  setupFixture,
  short,
  type Fixture,
} from "./support/harness";

const SHA = "0123456789abcdef0123456789abcdef01234567";

/**
 * The dependency fingerprint (host/README.md) computed by python3's hashlib from raw bytes:
 * independent of both the script and components/fingerprint.ts.
 */
function pythonFingerprint(files: [string, Buffer | null][]): string {
  const script = [
    "import hashlib, json, sys",
    "text = b''",
    "for name, data in json.load(sys.stdin):",
    "    digest = 'absent' if data is None else hashlib.sha256(bytes.fromhex(data)).hexdigest()",
    "    text += name.encode() + b'\\n' + digest.encode() + b'\\n'",
    "print(hashlib.sha256(text).hexdigest())",
  ].join("\n");
  const r = spawnSync("python3", ["-c", script], {
    input: JSON.stringify(files.map(([name, data]) => [name, data ? data.toString("hex") : null])),
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

describe("what the script accepts", hostGate(), () => {
  let fx: Fixture;
  before(async () => {
    fx = await setupFixture("inputs");
    const r = await fx.deploy(await fx.repo.head());
    assert.equal(r.code, EXIT.ok, describeRun(r));
  });
  after(async () => {
    await fx?.cleanup();
  });

  it("deploys from a local repository whose path has spaces, as a path and as file:// URLs", async () => {
    const dir = makeScratchDir("host-spaces");
    try {
      const repo = await TestRepo.create(path.join(dir, "My Projects", "shop"));
      const sha = await repo.head();
      for (const url of [
        repo.origin,
        `file://${repo.origin}`,
        `file://${repo.origin.replaceAll(" ", "%20")}`,
      ]) {
        const root = path.join(dir, `root ${url.length}`);
        const r = await runScript([
          "deploy",
          "--root",
          root,
          "--repo",
          url,
          "--commit",
          sha,
          "--subdir",
          APP,
        ]);
        assert.equal(r.code, EXIT.ok, `${url}: ${describeRun(r)}`);
        assert.equal(fs.readlinkSync(path.join(root, "current")), `releases/${sha}`);
      }
      // Spaces only where a path may have them: a URL must percent-encode.
      const check = await runScript([
        "check",
        "fetch",
        "--root",
        "/srv/x",
        "--repo",
        "https://example.com/my repo.git",
        "--commit",
        SHA,
      ]);
      assert.equal(check.code, EXIT.badInput);
      assert.equal(
        errorLine(check),
        "touchdeploy: error: --repo https://example.com/my\\ repo.git: contains a character not allowed in a repository URL (percent-encode it; spaces only in a local path)",
      );
    } finally {
      removeTree(dir);
    }
  });

  it("refuses every reserved name in the root as --reload-file, with one message", async () => {
    const reserved = [
      "releases",
      "current",
      "previous",
      "repo.git",
      "shared",
      "state",
      ".ssh",
      ".history",
      ".lock",
      ".lock.holder",
      ".lock.holder.tmp-1",
      ".lockfile",
      ".switch",
      ".switch.current",
      ".switch.previous",
      ".current.new",
      ".current.restore",
      ".previous.new",
      ".previous.restore",
      ".tmp-x",
    ];
    // Every name through setup's check; the rule is one function, so a few names through the
    // other subcommands that take --reload-file show they use it too.
    const runs: [string, string][] = [
      ...reserved.map((name): [string, string] => ["setup", name]),
      ["release", "state"],
      ["rollback", ".history"],
      ["destroy", "shared"],
    ];
    for (const [sub, name] of runs) {
      const extra = sub === "release" ? ["--commit", SHA] : [];
      const r = await runScript([
        "check",
        sub,
        "--root",
        "/srv/x",
        ...extra,
        "--reload-file",
        name,
      ]);
      assert.equal(r.code, EXIT.badInput, `${sub} ${name}: ${describeRun(r)}`);
      assert.equal(
        r.stderr,
        `touchdeploy: error: --reload-file ${name}: is one of touchdeploy's own names in --root\n`,
      );
    }
    // And for real: nothing is created.
    const root = path.join(fx.dir, "reserved");
    const r = await runScript(["setup", "--root", root, "--reload-file", "state"]);
    assert.equal(r.code, EXIT.badInput);
    assert.equal(fs.existsSync(root), false);
    // Names that merely look alike are fine.
    for (const name of [".reload", "reload", ".state", "current.txt", ".history2"]) {
      const ok = await runScript(["check", "setup", "--root", "/srv/x", "--reload-file", name]);
      assert.equal(ok.code, EXIT.ok, `${name}: ${describeRun(ok)}`);
    }
  });

  it("refuses a --repo that starts with '-' even when every character is allowed", async () => {
    for (const repo of ["-uhello", "-C/tmp", "--upload-pack=x"]) {
      const r = await runScript([
        "check",
        "fetch",
        "--root",
        "/srv/x",
        "--repo",
        repo,
        "--commit",
        SHA,
      ]);
      assert.equal(r.code, EXIT.badInput);
      assert.equal(errorLine(r), `touchdeploy: error: --repo ${repo}: must not start with -`);
    }
  });

  it("prints a token-only or user:password https URL redacted, in errors and progress alike", async () => {
    const cases: [string, string][] = [
      [
        "https://ghp_T0KENvalue123@127.0.0.1:1/acme/shop.git",
        "https://***@127.0.0.1:1/acme/shop.git",
      ],
      [
        "https://deploy:p@ssw0rd@127.0.0.1:1/acme/shop.git",
        "https://***@127.0.0.1:1/acme/shop.git",
      ],
      [
        "https://127.0.0.1:1/acme/shop.git?access_token=T0KENvalue123",
        "https://127.0.0.1:1/acme/shop.git?access_token=***",
      ],
      ["ssh://git:p@ssw0rd@127.0.0.1:1/acme/shop.git", "ssh://git:***@127.0.0.1:1/acme/shop.git"],
    ];
    for (const [url, shown] of cases) {
      const r = await runScript(fx.args("fetch", "--repo", url, "--commit", SHA));
      assert.equal(r.code, EXIT.missing, describeRun(r));
      assert.match(
        r.stdout,
        new RegExp(`touchdeploy: fetch +${short(SHA)} from ${escape(shown)} \\.\\.\\.`),
      );
      assert.match(
        errorLine(r),
        new RegExp(`^touchdeploy: error: fetch of ${short(SHA)} from ${escape(shown)} failed: `),
      );
      assert.doesNotMatch(r.stdout + r.stderr, /T0KENvalue123|ssw0rd/);
    }
    // A value refused by validation is redacted too.
    const bad = await runScript([
      "check",
      "fetch",
      "--root",
      "/srv/x",
      "--repo",
      "https://user:s3cret@host/a b.git",
      "--commit",
      SHA,
    ]);
    assert.equal(bad.code, EXIT.badInput);
    assert.doesNotMatch(bad.stderr, /s3cret/);
    assert.match(errorLine(bad), /^touchdeploy: error: --repo https:\/\/\*\*\*@host\/a\\ b\.git: /);
    const health = await runScript([
      "check",
      "release",
      "--root",
      "/srv/x",
      "--commit",
      SHA,
      "--health-url",
      "http://user:s3cret@host/a b",
    ]);
    assert.doesNotMatch(health.stderr, /s3cret/);
    assert.match(
      errorLine(health),
      /^touchdeploy: error: --health-url http:\/\/\*\*\*@host\/a\\ b: /,
    );
  });

  it("fingerprints a requirements.txt that is not UTF-8 by its bytes, as python3's hashlib does", async () => {
    const latin1 = Buffer.from("caf\xe9-client==1.0  # Latin-1, not UTF-8\n", "latin1");
    assert.equal(latin1.includes(Buffer.from([0xe9])), true);
    const sha = await fx.repo.commitBytes("requirements.txt", latin1, "a Latin-1 requirements.txt");
    const expected = pythonFingerprint([
      ["requirements.txt", latin1],
      ["Aptfile", null],
    ]);
    const r = await fx.deploy(sha, [
      "--dependency-files",
      "requirements.txt Aptfile",
      "--container-fingerprint",
      expected,
    ]);
    assert.equal(r.code, EXIT.ok, describeRun(r));
    assert.match(
      r.stdout,
      new RegExp(
        `touchdeploy: deps +${short(sha)} has the container's dependency fingerprint ${short(expected)}`,
      ),
    );
    // Decoded as UTF-8 first (the program's bug, issue 9), the bytes would hash otherwise.
    const decoded = pythonFingerprint([
      ["requirements.txt", Buffer.from(latin1.toString("utf8"), "utf8")],
      ["Aptfile", null],
    ]);
    assert.notEqual(decoded, expected);
    const wrong = await fx.deploy(sha, [
      "--dependency-files",
      "requirements.txt Aptfile",
      "--container-fingerprint",
      decoded,
    ]);
    assert.equal(wrong.code, EXIT.dependencies, describeRun(wrong));
    assert.match(
      errorLine(wrong),
      new RegExp(`has dependency fingerprint ${expected} but the container runs ${decoded}`),
    );
  });

  it("fingerprints a symlink as its target text and never follows one out of the release", async () => {
    const work = fx.repo.repo.work;
    fs.symlinkSync("/etc", path.join(work, APP, "deps"));
    fs.symlinkSync("requirements.txt", path.join(work, APP, "requirements.link"));
    const sha = await fx.repo.repo.commit("symlinks among the dependency files");
    const requirements = fs.readFileSync(path.join(work, APP, "requirements.txt"));
    const expected = pythonFingerprint([
      ["deps/passwd", null],
      ["requirements.link", Buffer.from("requirements.txt")],
      ["requirements.txt", requirements],
    ]);
    const r = await fx.deploy(sha, [
      "--dependency-files",
      "deps/passwd requirements.link requirements.txt",
      "--container-fingerprint",
      expected,
    ]);
    assert.equal(r.code, EXIT.ok, describeRun(r));
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
