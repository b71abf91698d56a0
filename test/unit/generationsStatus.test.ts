// The runtime's report of its generations (runtime/touchdeploy_generations.py), as the host
// script reads it through `touchdeploy-generations status`: which start counts, and what a
// failed start's reason says (and never says). Runs the runtime's own Python (python3 only).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";

const MANAGER = path.join(__dirname, "..", "..", "runtime", "touchdeploy_generations.py");
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "tdtest-generations-"));

/** `touchdeploy-generations status ...` with this run dir: its one line of output. */
function status(runDir: string, ...args: string[]): string {
  const r = spawnSync("python3", ["-I", MANAGER, "status", ...args], {
    encoding: "utf8",
    env: { PATH: process.env.PATH, TOUCHDEPLOY_RUN_DIR: runDir },
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

/** failure_detail(tail, secrets) of the runtime module. */
function detail(tail: string, secrets: string[]): string {
  const code = [
    "import json, sys",
    `sys.path.insert(0, ${JSON.stringify(path.dirname(MANAGER))})`,
    "import touchdeploy_generations as g",
    "tail, secrets = json.load(sys.stdin)",
    "print(g.failure_detail(tail.encode(), secrets))",
  ].join("\n");
  const r = spawnSync("python3", ["-I", "-B", "-c", code], {
    encoding: "utf8",
    input: JSON.stringify([tail, secrets]),
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.replace(/\n$/, "");
}

describe("the runtime's generations status", () => {
  after(() => fs.rmSync(scratch, { recursive: true, force: true }));

  it("GIVEN starts of several revisions and configs THEN status names the newest start of exactly that revision and config, at or after the touch", () => {
    const runDir = path.join(scratch, "run");
    fs.mkdirSync(runDir);
    const a = "a".repeat(40);
    const b = "b".repeat(40);
    fs.writeFileSync(
      path.join(runDir, "generations.json"),
      JSON.stringify([
        { generation: 1, revision: a, config: "", trigger: 100, state: "retired" },
        { generation: 2, revision: b, config: "", trigger: 200, state: "failed", reason: "old" },
        { generation: 3, revision: b, config: "v2", trigger: 300, state: "ready" },
        { generation: 4, revision: b, config: "", trigger: 400, state: "failed", reason: "why" },
      ]),
    );
    assert.equal(status(runDir, b), "failed generation 4: why");
    assert.equal(status(runDir, b, "--touched", "400"), "failed generation 4: why");
    assert.equal(status(runDir, b, "--touched", "401"), "none", "a start before the touch");
    assert.equal(status(runDir, b, "--config", "v2", "--touched", "300"), "ready generation 3");
    assert.equal(status(runDir, b, "--config", "v3"), "none");
    assert.equal(status(runDir, a, "--touched", "100"), "retired generation 1");
    assert.equal(status(path.join(scratch, "nothing-here"), a), "none", "no status file yet");
  });

  it("GIVEN a generation's output THEN the reason is its last exception line, secret values masked, printable, at most 300 characters", () => {
    const tail = [
      "Traceback (most recent call last):",
      '  File "/srv/app/releases/x/app.py", line 1, in <module>',
      "KeyError: 'first'",
      "During handling of the above exception, another exception occurred:",
      "django.core.exceptions.ImproperlyConfigured: bad key s3cr3t-value\x07 here",
      "unable to load app 0 (mountpoint='') (callable not found or import error)",
      "*** no app loaded. GAME OVER ***",
    ].join("\n");
    assert.equal(
      detail(tail, ["s3cr3t-value", "abc"]),
      "django.core.exceptions.ImproperlyConfigured: bad key ***? here",
    );
    assert.equal(detail("no exception here\n*** no app loaded. GAME OVER ***\n", []), "");
    assert.equal(detail(`ValueError: ${"x".repeat(400)}\n`, []).length, 300);
  });
});
