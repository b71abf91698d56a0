/**
 * host/touchdeploy.sh as text: shellcheck-clean, parseable, safe to stream on stdin, and its
 * exit codes — one table in the script (EXIT_CODES) — the same in host/README.md, in the
 * README's "When a deploy fails" table and in --help.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { EXIT, HOST_SCRIPT_PATH, hostScriptText, runHostScript } from "../harness/hostScript";
import { REPO_ROOT } from "../harness/images";
import { e2eGate } from "../harness/prerequisites";
import { run } from "../harness/process";

/** The codes of a Markdown table's rows "| 3    | text | ..." within `section`. */
function tableCodes(file: string, section: string): number[] {
  const text = fs.readFileSync(path.join(REPO_ROOT, file), "utf8");
  const start = text.indexOf(section);
  assert.ok(start >= 0, `${file} has no section ${section}`);
  const rest = text.slice(start);
  const end = rest.indexOf("\n## ", 1);
  const body = end < 0 ? rest : rest.slice(0, end);
  return [...body.matchAll(/^\| (\d+) +\|/gm)].map((m) => Number(m[1])).sort((a, b) => a - b);
}

const codes = Object.values(EXIT).sort((a, b) => a - b);

describe("host script: static checks", e2eGate(["bash"]), () => {
  it("shellcheck reports nothing", e2eGate(["shellcheck"]), async () => {
    const r = await run("shellcheck", ["--severity=style", HOST_SCRIPT_PATH], { check: false });
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });

  it('parses with bash -n, and `main "$@"` is its last line (nothing runs before bash -s has read it all)', async () => {
    await run("bash", ["-n", HOST_SCRIPT_PATH]);
    const lines = hostScriptText().trimEnd().split("\n");
    assert.equal(lines[lines.length - 1], 'main "$@"');
    // Top-level statements other than definitions would run while stdin is still being read;
    // main's first act gives every command /dev/null instead (fd 8 keeps stdin for --payload).
    assert.match(hostScriptText(), /^main\(\) \{\n(?:.*\n)*? {4}exec 8<&0 <\/dev\/null\n/m);
  });

  it("has one table of exit codes, and host/README.md, README.md and --help give the same codes", async () => {
    const table = [...hostScriptText().matchAll(/^ {4}'(\d+) +\| .+'$/gm)].map((m) => Number(m[1]));
    assert.deepEqual(table, codes);
    assert.deepEqual(tableCodes("host/README.md", "## Exit codes"), codes);
    // The README lists the failures: every code but 0.
    assert.deepEqual(
      tableCodes("README.md", "## When a deploy fails"),
      codes.filter((c) => c !== 0),
    );
    const help = await runHostScript(["--help"]);
    assert.equal(help.code, EXIT.ok);
    for (const code of codes) {
      assert.match(help.stdout, new RegExp(`^ {2}${code} +[a-zA-Z]`, "m"), `--help lacks ${code}`);
    }
  });
});
