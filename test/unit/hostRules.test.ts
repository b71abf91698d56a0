// The host script's own validation, run as `touchdeploy.sh check SUBCOMMAND ...`: it accepts
// exactly what the real subcommand accepts and touches nothing.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { HOST_SCRIPT_PATH } from "../../components/hostScript";

const SHA = "0123456789abcdef0123456789abcdef01234567";

function check(...args: string[]) {
  const r = spawnSync("bash", [HOST_SCRIPT_PATH, "check", ...args], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("touchdeploy.sh check", () => {
  it("accepts valid options and creates nothing", () => {
    const root = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "td-check-")), "root");
    const r = check("activate", "--root", root, "--commit", SHA, "--reload-file", ".reload");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "touchdeploy: check    activate: every option is valid\n");
    assert.equal(fs.existsSync(root), false);
  });

  it("refuses what the subcommand refuses, with the same message and exit 2", () => {
    const r = check("activate", "--root", "/srv/x", "--commit", SHA, "--reload-file", "current");
    assert.equal(r.status, 2);
    assert.equal(
      r.stderr,
      "touchdeploy: error: --reload-file current: is one of touchdeploy's own names in --root\n",
    );
  });

  it("does not require files to exist (they are on the host, not here)", () => {
    const r = check(
      "prepare",
      "--root",
      "/srv/x",
      "--repo",
      "/r",
      "--commit",
      SHA,
      "--ssh-key",
      "/nope",
    );
    assert.equal(r.status, 0, r.stderr);
  });

  it("refuses an unknown subcommand", () => {
    const r = check("frobnicate", "--root", "/srv/x");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /check: unknown subcommand frobnicate/);
  });
});
