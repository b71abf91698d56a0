/**
 * The designs the benchmark compares are complete, committed runtimes (bench/variants/), and
 * the recommended one differs from runtime/ only where its README says.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { REPO_ROOT } from "../../test/harness/images";
import { checkDesignFiles, DESIGNS, GENERATIONS, SHIPPED } from "../lib/designs";

const read = (rel: string): string => fs.readFileSync(path.join(REPO_ROOT, rel), "utf8");

describe("designs", () => {
  it("every design but the shipped one lists a Dockerfile and files that exist", () => {
    for (const [id, d] of Object.entries(DESIGNS)) {
      if (id === SHIPPED) {
        assert.equal(d.files, undefined);
        continue;
      }
      assert.ok(d.files?.Dockerfile, `${id} has no Dockerfile`);
    }
    checkDesignFiles(Object.keys(DESIGNS));
  });

  it("every file a Dockerfile COPYs is in the design's build context", () => {
    for (const [id, d] of Object.entries(DESIGNS)) {
      if (!d.files) continue;
      const copied = [...read(d.files.Dockerfile).matchAll(/^COPY (\S+) /gm)].map((m) => m[1]);
      for (const name of copied)
        assert.ok(d.files[name], `${id}: COPY ${name} is not in its files`);
    }
  });

  it("the recommended design's Dockerfile is runtime/Dockerfile with the manager instead of start-uwsgi", () => {
    const strip = (text: string): string[] =>
      text.split("\n").filter((l) => l.trim() && !l.startsWith("#"));
    const runtime = strip(read("runtime/Dockerfile"));
    const generations = strip(read(DESIGNS[GENERATIONS].files?.Dockerfile ?? ""));
    const removed = runtime.filter((l) => !generations.includes(l));
    const added = generations.filter((l) => !runtime.includes(l));
    assert.deepEqual(removed, [
      "COPY start-uwsgi /usr/local/bin/touchdeploy-start-uwsgi",
      "RUN chmod 0755 /usr/local/bin/touchdeploy-start-uwsgi",
    ]);
    assert.deepEqual(added, [
      "COPY touchdeploy-generations /usr/local/bin/touchdeploy-generations",
      "RUN chmod 0755 /usr/local/bin/touchdeploy-generations",
      "    TOUCHDEPLOY_HEALTH_PATH=/healthz \\",
    ]);
  });
});
