/**
 * `npm run readme -w bench`: rewrites the generated regions of README.md and bench/README.md
 * from bench/results/latest.json (see lib/readme.ts), and latest.md and latest.svg next to it
 * (the report and the chart are pure functions of the JSON: a change of their rendering needs
 * no new run). `-- --check` only checks the READMEs and latest.md (exit 1 and the names of the
 * files that differ); bench/test/readme.test.ts does the same check.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { REPO_ROOT } from "../test/harness/images";
import { renderChart } from "./lib/chart";
import { committedResults, expectedReadme, README_FILES, RESULTS_FILE } from "./lib/readmeFiles";
import { renderMarkdown } from "./lib/report";

async function main(): Promise<void> {
  const check = process.argv.includes("--check");
  const results = committedResults();
  const stale: string[] = [];
  const md = path.join(path.dirname(RESULTS_FILE), "latest.md");
  const report = renderMarkdown(results, "latest.svg");
  if (report !== fs.readFileSync(md, "utf8")) {
    if (check) stale.push(path.relative(REPO_ROOT, md));
    else fs.writeFileSync(md, report);
  }
  if (!check) {
    fs.writeFileSync(
      path.join(path.dirname(RESULTS_FILE), "latest.svg"),
      await renderChart(results),
    );
  }
  for (const file of README_FILES) {
    const expected = await expectedReadme(file, results);
    if (expected === fs.readFileSync(file, "utf8")) continue;
    if (check) stale.push(path.relative(REPO_ROOT, file));
    else {
      fs.writeFileSync(file, expected);
      console.log(`rewrote the generated regions of ${path.relative(REPO_ROOT, file)}`);
    }
  }
  if (stale.length) {
    console.error(
      `not generated from bench/results/latest.json: ${stale.join(", ")} (run: npm run readme -w bench)`,
    );
    process.exit(1);
  }
}

void main();
