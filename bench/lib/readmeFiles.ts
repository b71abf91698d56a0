/**
 * Reads and writes the READMEs with generated regions (lib/readme.ts), formatted by the
 * project's prettier config exactly as `npm run format` would, so that `format:check` and the
 * regions agree.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { REPO_ROOT } from "../../test/harness/images";
import { renderRegions } from "./readme";
import type { BenchResults } from "./results";

/** The READMEs with regions, and the results they are generated from. */
export const README_FILES = [
  path.join(REPO_ROOT, "README.md"),
  path.join(REPO_ROOT, "bench", "README.md"),
];
export const RESULTS_FILE = path.join(REPO_ROOT, "bench", "results", "latest.json");

export function committedResults(): BenchResults {
  return JSON.parse(fs.readFileSync(RESULTS_FILE, "utf8")) as BenchResults;
}

/** What `file` should contain: its regions rendered from `r`, formatted by prettier. */
export async function expectedReadme(file: string, r: BenchResults): Promise<string> {
  const prettier = await import("prettier");
  const text = fs.readFileSync(file, "utf8");
  const config = (await prettier.resolveConfig(file)) ?? {};
  return prettier.format(renderRegions(text, r), { ...config, filepath: file });
}
