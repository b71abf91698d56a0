/**
 * host/touchdeploy.sh as text: shellcheck-clean, parseable, safe to stream on stdin, and its
 * exit codes documented the same way in the script and in host/README.md.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { EXIT, HOST_SCRIPT_PATH, hostScriptText, runHostScript } from "./support/hostScript";
import { REPO_ROOT } from "./support/images";
import { e2eGate } from "./support/prerequisites";
import { run } from "./support/process";

/** "#   3  text" (script header) or "| 3    | text |" (README table) → { 3: "text" }. */
function exitCodes(text: string, pattern: RegExp): Map<number, string> {
  const codes = new Map<number, string>();
  for (const m of text.matchAll(pattern)) codes.set(Number(m[1]), m[2].trim());
  return codes;
}

describe("host script: static checks", e2eGate(["bash"]), () => {
  it("shellcheck reports nothing", e2eGate(["shellcheck"]), async () => {
    const r = await run("shellcheck", ["--severity=style", HOST_SCRIPT_PATH], { check: false });
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it('parses with bash -n, and `main "$@"` is its last line (nothing runs before bash -s has read it all)', async () => {
    await run("bash", ["-n", HOST_SCRIPT_PATH]);
    const lines = hostScriptText().trimEnd().split("\n");
    assert.equal(lines[lines.length - 1], 'main "$@"');
    // Top-level statements other than definitions would run while stdin is still being read.
    assert.match(hostScriptText(), /^main\(\) \{\n(?:.*\n)*? {4}exec <\/dev\/null\n/m);
  });

  it("documents the same exit codes in the script header, host/README.md and --help", async () => {
    const header = exitCodes(hostScriptText(), /^# {3}(\d) {2}(.+)$/gm);
    const readme = exitCodes(
      fs.readFileSync(path.join(REPO_ROOT, "host", "README.md"), "utf8"),
      /^\| (\d) +\| (.+?) *\|$/gm,
    );
    assert.deepEqual([...header.keys()].sort(), Object.values(EXIT).sort());
    assert.deepEqual([...readme.keys()].sort(), Object.values(EXIT).sort());
    const help = await runHostScript(["--help"]);
    assert.equal(help.code, EXIT.ok);
    for (const code of Object.values(EXIT)) {
      assert.match(help.stdout, new RegExp(`\\b${code} [a-z]`), `--help lacks exit code ${code}`);
    }
  });
});
