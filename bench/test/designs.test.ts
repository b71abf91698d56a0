/**
 * The designs the benchmark compares are complete, committed runtimes (bench/variants/): every
 * file their Dockerfiles copy is in their build context, and the frozen previous contract
 * (bench/variants/fs-reload-wake) differs from runtime/ exactly where bench/variants/README.md
 * says, and from the runtime/ it was frozen from not at all.
 */
import * as assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import { REPO_ROOT } from "../../test/harness/images";
import { checkDesignFiles, DESIGNS, FS_RELOAD_WAKE, SHIPPED } from "../lib/designs";

const read = (rel: string): string => fs.readFileSync(path.join(REPO_ROOT, rel), "utf8");

/** Every source of every COPY line (all arguments but the destination), in order. */
function copiedSources(dockerfile: string): string[] {
  return [...dockerfile.matchAll(/^COPY +(.+)$/gm)].flatMap((m) => {
    const args = m[1]
      .trim()
      .split(/\s+/)
      .filter((a) => !a.startsWith("--"));
    return args.slice(0, -1);
  });
}

/** The frozen design's origin: runtime/ at the commit it was frozen from. */
const FROZEN_FROM = "f07cce6";
const FROZEN_DIR = "bench/variants/fs-reload-wake";

/** The README's table of how runtime/ differs from the frozen contract: file -> change. */
function documentedChanges(): Map<string, string> {
  const text = read("bench/variants/README.md");
  const section = /^## runtime\/ and fs-reload-wake\/\n([\s\S]*?)(?=^## |(?![\s\S]))/m.exec(text);
  assert.ok(section, "bench/variants/README.md has no section '## runtime/ and fs-reload-wake/'");
  const rows = new Map<string, string>();
  for (const m of section[1].matchAll(/^\| `([^`]+)` +\| (.+?) +\|$/gm)) rows.set(m[1], m[2]);
  return rows;
}

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

  it("copiedSources reads every source of a COPY line, not just the first", () => {
    assert.deepEqual(
      copiedSources("FROM x\nCOPY a /etc/a\nCOPY --chown=1 b c  d /etc/\nRUN COPY e f\n"),
      ["a", "b", "c", "d"],
    );
  });

  it("every file a Dockerfile COPYs is in the design's build context (runtime/ for the shipped one)", () => {
    const runtimeFiles = fs.readdirSync(path.join(REPO_ROOT, "runtime"));
    for (const [id, d] of Object.entries(DESIGNS)) {
      const dockerfile = read(d.files?.Dockerfile ?? "runtime/Dockerfile");
      const sources = copiedSources(dockerfile);
      assert.ok(sources.length > 0, `${id}: no COPY line found`);
      for (const name of sources) {
        if (d.files) assert.ok(d.files[name], `${id}: COPY ${name} is not in its files`);
        else assert.ok(runtimeFiles.includes(name), `${id}: COPY ${name} is not in runtime/`);
      }
    }
  });

  it("the frozen previous contract is a design built from exactly its own directory", () => {
    const files = DESIGNS[FS_RELOAD_WAKE].files ?? {};
    assert.deepEqual(
      Object.entries(files)
        .map(([name, rel]) => [name, rel])
        .sort(),
      fs
        .readdirSync(path.join(REPO_ROOT, FROZEN_DIR))
        .map((name) => [name, `${FROZEN_DIR}/${name}`])
        .sort(),
    );
  });

  it("runtime/ differs from the frozen contract exactly where bench/variants/README.md says", () => {
    const documented = documentedChanges();
    const runtime = fs.readdirSync(path.join(REPO_ROOT, "runtime"));
    const frozen = fs.readdirSync(path.join(REPO_ROOT, FROZEN_DIR));
    const all = [...new Set([...runtime, ...frozen])].sort();
    assert.deepEqual([...documented.keys()].sort(), all, "one row per file of either");
    for (const name of all) {
      const change = documented.get(name) ?? "";
      const inRuntime = runtime.includes(name);
      const inFrozen = frozen.includes(name);
      if (!inFrozen) {
        assert.match(change, /^new\b/, `${name} is only in runtime/: its row must say "new"`);
      } else if (!inRuntime) {
        assert.match(change, /^removed\b/, `${name} is only in the frozen one: "removed"`);
      } else if (read(`runtime/${name}`) === read(`${FROZEN_DIR}/${name}`)) {
        assert.match(change, /^unchanged\b/, `${name} is identical: "unchanged"`);
      } else {
        assert.match(change, /^changed\b/, `${name} differs: "changed"`);
      }
    }
  });

  it("the frozen contract is runtime/ of the commit it was frozen from, byte for byte", (t) => {
    let names: string[];
    try {
      names = execFileSync("git", ["ls-tree", "--name-only", `${FROZEN_FROM}:runtime`], {
        cwd: REPO_ROOT,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      })
        .split("\n")
        .filter(Boolean);
    } catch {
      t.skip(`commit ${FROZEN_FROM} is not in this clone (shallow?)`);
      return;
    }
    assert.deepEqual(names.sort(), fs.readdirSync(path.join(REPO_ROOT, FROZEN_DIR)).sort());
    for (const name of names) {
      const then = execFileSync("git", ["show", `${FROZEN_FROM}:runtime/${name}`], {
        cwd: REPO_ROOT,
        encoding: "utf8",
      });
      assert.equal(read(`${FROZEN_DIR}/${name}`), then, `${name} changed since it was frozen`);
    }
  });
});
