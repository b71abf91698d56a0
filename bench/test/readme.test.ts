/**
 * The READMEs' benchmark figures are generated from the committed results: this fails when a
 * region was edited by hand or the results changed without `npm run readme -w bench`.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { regionsIn, renderRegions } from "../lib/readme";
import { committedResults, expectedReadme, README_FILES, RESULTS_FILE } from "../lib/readmeFiles";
import { renderMarkdown } from "../lib/report";
import type { BenchResults } from "../lib/results";

describe("generated README regions", () => {
  it("README.md has the top region and bench/README.md the results region", () => {
    assert.deepEqual(regionsIn(fs.readFileSync(README_FILES[0], "utf8")), ["top"]);
    assert.deepEqual(regionsIn(fs.readFileSync(README_FILES[1], "utf8")), ["results"]);
  });

  for (const file of README_FILES) {
    it(`${file.replace(/.*\/(bench\/)?/, "$1")} equals what bench/results/latest.json gives`, async () => {
      assert.equal(fs.readFileSync(file, "utf8"), await expectedReadme(file, committedResults()));
    });
  }

  it("results/latest.md equals what bench/results/latest.json gives", () => {
    const md = path.join(path.dirname(RESULTS_FILE), "latest.md");
    assert.equal(fs.readFileSync(md, "utf8"), renderMarkdown(committedResults(), "latest.svg"));
  });

  it("rewrites only what is between the markers", () => {
    const r = committedResults();
    const text =
      "before\n<!-- bench:top:begin -->\nhand-written 9.99 s\n<!-- bench:top:end -->\nafter\n";
    const out = renderRegions(text, r);
    assert.ok(out.startsWith("before\n<!-- bench:top:begin -->\n"));
    assert.ok(out.endsWith("<!-- bench:top:end -->\nafter\n"));
    assert.ok(!out.includes("hand-written"));
    assert.ok(out.includes(`**Measured ${r.date.slice(0, 10)}**`));
  });

  it("names an unknown region", () => {
    const r = {} as BenchResults;
    assert.throws(
      () => renderRegions("<!-- bench:nope:begin -->\nx\n<!-- bench:nope:end -->\n", r),
      /unknown README region "nope"/,
    );
  });
});
