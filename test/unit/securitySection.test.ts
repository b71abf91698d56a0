// The README's "Security" section backs every claim with a test (`file` › "test name") or marks
// it as an assumption. This keeps it honest: every cited test name still exists, as a whole
// string literal, in the file named, so renaming or deleting a test the section relies on fails
// the build; and every bullet and table row of the section cites a test or says "assumption".
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

const ROOT = path.resolve(__dirname, "..", "..");
const README = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");

/** The text of the `## Security` section, up to the next `## ` heading. */
export function securitySection(readme: string): string {
  const start = /^## Security\n/m.exec(readme)?.index;
  if (start === undefined) throw new Error('README.md has no "## Security" section');
  const next = readme.indexOf("\n## ", start);
  return readme.slice(start, next < 0 ? undefined : next + 1);
}

export interface Citation {
  file: string;
  name: string;
}

/** Every `test/...test.ts` › "name" in the text; names may wrap across lines. */
export function citations(text: string): Citation[] {
  const flat = text.replace(/\s+/g, " ");
  return [...flat.matchAll(/`(test\/[\w./-]+\.test\.ts)` › "([^"]+)"/g)].map((m) => ({
    file: m[1],
    name: m[2],
  }));
}

/** Whether `name` is a whole string literal ("…", '…' or `…`) in the source. */
export function hasLiteral(source: string, name: string): boolean {
  return ['"', "'", "`"].some((q) => source.includes(`${q}${name}${q}`));
}

/** Bullets (with their wrapped lines) and table body rows: the section's claims. */
export function claims(section: string): string[] {
  const out: string[] = [];
  let bullet: string | undefined;
  const flush = () => {
    if (bullet !== undefined) out.push(bullet);
    bullet = undefined;
  };
  for (const line of section.split("\n")) {
    if (/^\s*- /.test(line)) {
      flush();
      bullet = line.trim();
    } else if (bullet !== undefined && /^\s+\S/.test(line)) {
      bullet += ` ${line.trim()}`;
    } else {
      flush();
      if (/^\|/.test(line) && !/^\| *Asset/.test(line) && !/^\|[ -|]+\|$/.test(line)) {
        out.push(line);
      }
    }
  }
  flush();
  return out;
}

const backed = (claim: string) => /` › "/.test(claim) || /assumption/.test(claim);

describe("the README's Security section", () => {
  const section = securitySection(README);

  it("comes before Tests", () => {
    assert.ok(README.indexOf("\n## Security\n") < README.indexOf("\n## Tests\n"));
  });

  it("every cited test exists, by that exact name, in the file named", () => {
    const cited = citations(section);
    assert.ok(cited.length >= 30, `only ${cited.length} citations found: is the format intact?`);
    const missing = cited
      .filter(({ file, name }) => {
        const full = path.join(ROOT, file);
        return !fs.existsSync(full) || !hasLiteral(fs.readFileSync(full, "utf8"), name);
      })
      .map(({ file, name }) => `${file} › "${name}"`);
    assert.deepEqual(missing, []);
  });

  it("every bullet and table row cites a test or says it is an assumption", () => {
    const found = claims(section);
    assert.ok(found.length >= 20, `only ${found.length} claims found`);
    assert.deepEqual(
      found.filter((c) => !backed(c)),
      [],
    );
  });

  // The checks above can fail: fed a renamed test or an unbacked claim, they say so.
  it("GIVEN a citation of a test that does not exist, or a bare claim THEN they are reported", () => {
    const fake = [
      "## Security",
      "",
      '- a claim: `test/unit/securitySection.test.ts` › "comes before Tests"',
      '- a renamed one: `test/unit/securitySection.test.ts` › "comes before',
      '  the Tests\"',
      "- a bare claim with no backing",
      "- a claim (assumption)",
      "",
      "## Next",
    ].join("\n");
    const section = securitySection(fake);
    const source = fs.readFileSync(__filename, "utf8");
    assert.deepEqual(
      citations(section).map((c) => hasLiteral(source, c.name)),
      [true, false],
    );
    assert.deepEqual(
      claims(section).filter((c) => !backed(c)),
      ["- a bare claim with no backing"],
    );
  });
});
