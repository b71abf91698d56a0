/**
 * touchdeploy-generations (bench/variants/generations/), the manager of the recommended
 * contract, without Docker: a stand-in uWSGI (fake-uwsgi/uwsgi) plays the generations, an app
 * root on disk plays the host's. GIVEN / WHEN / THEN on what the host script relies on: one new
 * generation per touch, the old one retired only after the new one answers healthy, a release
 * that cannot start leaves the old one serving, a switch back to the live release starts nothing.
 */
import * as assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { findExecutable } from "../../test/harness/prerequisites";
import { REPO_ROOT } from "../../test/harness/images";
import { freePort, removeTree, waitFor } from "../../test/harness/process";

const MANAGER = path.join(REPO_ROOT, "bench", "variants", "generations", "touchdeploy-generations");
const FAKE = path.join(__dirname, "fake-uwsgi");
const python = findExecutable("python3");

describe("touchdeploy-generations", { skip: python ? false : "python3 is not installed" }, () => {
  let dir: string;
  let root: string;
  let manager: ChildProcess;
  let output = "";

  /** A release directory with REVISION and an app uwsgi.ini, and `extra` files. */
  function release(sha: string, extra: Record<string, string> = {}): void {
    const rel = path.join(root, "releases", sha);
    fs.mkdirSync(path.join(rel, "app"), { recursive: true });
    fs.writeFileSync(path.join(rel, "REVISION"), `${sha}\n`);
    fs.writeFileSync(path.join(rel, "app", "uwsgi.ini"), "[uwsgi]\n");
    for (const [name, text] of Object.entries(extra)) fs.writeFileSync(path.join(rel, name), text);
  }

  /** What the host script's switch + touch do: `current` renamed over, trigger's times set. */
  function switchAndTouch(sha: string): void {
    fs.symlinkSync(`releases/${sha}`, path.join(root, ".current.tmp"));
    fs.renameSync(path.join(root, ".current.tmp"), path.join(root, "current"));
    const t = new Date(Math.floor(Date.now() / 1000) * 1000 + 1000 * ++touches);
    fs.utimesSync(path.join(root, ".reload"), t, t);
  }
  let touches = 0;

  const lines = (re: RegExp): string[] => output.split("\n").filter((l) => re.test(l));
  const until = (what: string, re: RegExp, count = 1): Promise<string[]> =>
    waitFor(what, () => (lines(re).length >= count ? lines(re) : undefined), {
      timeoutMs: 20_000,
      describeLast: () => output.slice(-1500),
    });

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "tdtest-generations-"));
    root = path.join(dir, "root");
    fs.mkdirSync(root);
    fs.writeFileSync(path.join(root, ".reload"), "");
    release("a".repeat(40));
    switchAndTouch("a".repeat(40));
    manager = spawn(python ?? "python3", [MANAGER], {
      env: {
        ...process.env,
        PATH: `${FAKE}:${process.env.PATH ?? ""}`,
        TOUCHDEPLOY_ROOT: root,
        TOUCHDEPLOY_APP_SUBDIR: "app",
        TOUCHDEPLOY_PORT: String(await freePort()),
        TOUCHDEPLOY_RUN_DIR: path.join(dir, "run"),
        TOUCHDEPLOY_START_TIMEOUT: "10",
        TOUCHDEPLOY_CONTRACT_INI: "/dev/null",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    manager.stdout?.on("data", (c: Buffer) => (output += c.toString()));
    manager.stderr?.on("data", (c: Buffer) => (output += c.toString()));
    await until("the first generation", /generation 1 \(aaaaaaaaaaaa.*is serving/);
  });

  after(async () => {
    manager.kill("SIGTERM");
    await new Promise((r) => manager.once("exit", r));
    removeTree(dir);
  });

  it("GIVEN a live generation WHEN a slow release is switched in and touched THEN exactly one new generation starts, and the old one is retired only after the new one answered", async () => {
    const b = "b".repeat(40);
    release(b, { BOOT_SECONDS: "0.5" });
    switchAndTouch(b);
    await until("b serving", /generation 2 \(bbbbbbbbbbbb.*is serving/);
    await until("a stopped", /fake-uwsgi: a{40} stops gracefully/);
    const order = lines(/is serving|retiring|stops gracefully/).map((l) =>
      l.replace(/ \(.*$/, "").replace(/^touchdeploy-generations: /, ""),
    );
    assert.deepEqual(order.slice(-3), [
      "generation 2",
      "retiring generation 1",
      `fake-uwsgi: ${"a".repeat(40)} stops gracefully`,
    ]);
    assert.equal(lines(/fake-uwsgi: start b{40}/).length, 1);
  });

  it("GIVEN a release that cannot be imported WHEN it is switched in and touched THEN its generation fails and the live one keeps serving", async () => {
    const c = "c".repeat(40);
    release(c, { BROKEN: "" });
    switchAndTouch(c);
    await until("c failed", /generation 3 \(cccccccccccc.*FAILED: it exited with status 22/);
    assert.match(lines(/FAILED/)[0], /generation 2 \(bbbbbbbbbbbb, pid \d+\) keeps serving/);
    assert.equal(lines(/retiring generation 2/).length, 0);
  });

  it("GIVEN the failed deploy WHEN the host switches back to the live release and touches THEN nothing starts", async () => {
    switchAndTouch("b".repeat(40));
    await until(
      "nothing to start",
      /generation 2 \(bbbbbbbbbbbb.*already serves releases\/b{40}: nothing to start/,
    );
    assert.equal(lines(/starting generation/).length, 3);
  });

  it("GIVEN a release whose health answers 500 WHEN it is touched THEN it is stopped after 3 s of bad answers", async () => {
    const d = "d".repeat(40);
    release(d, { STATUS: "500" });
    switchAndTouch(d);
    await until(
      "d failed",
      /generation 4 \(dddddddddddd.*FAILED: it answered HTTP 500 \(X-Revision d{40}\) for 3s/,
    );
    assert.equal(lines(/retiring generation 2/).length, 0);
  });
});
