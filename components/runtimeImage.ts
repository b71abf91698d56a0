/**
 * What the runtime image is built from, and how it is named. Pure apart from reading the files
 * of `runtime/`.
 */
import { createHash } from "crypto";
import * as fs from "fs";
import * as git from "isomorphic-git";
import * as path from "path";
import { DependencyFile, dependencyText } from "./fingerprint";

/** Build arguments of `runtime/Dockerfile` that carry the app's dependencies. */
export interface RuntimeBuildArgs {
  BASE_IMAGE: string;
  /** Debian packages, space-separated, from the app's `Aptfile`. */
  APT_PACKAGES: string;
  /** The app's `requirements.txt`, verbatim. */
  REQUIREMENTS: string;
}

/**
 * A Debian package name (Debian Policy 5.6.1: lowercase letters, digits, `+`, `-`, `.`, at
 * least two characters, starting with a letter or digit), optionally `/SUITE` to take it from
 * that suite (`python3-django/bookworm-backports`: apt-get's own `PKG/RELEASE` syntax; the
 * runtime image adds the suite to its sources first). A suite is one lowercase name: no `/`,
 * no `..`, nothing a shell would read.
 */
const DEBIAN_PACKAGE_PATTERN = /^[a-z0-9][a-z0-9+.-]+(\/[a-z0-9][a-z0-9-]*)?$/;

/**
 * Debian package names from an `Aptfile` (one or more per line, `#` comments), each `NAME` or
 * `NAME/SUITE`. Throws on anything else: the list reaches `apt-get install` in a shell.
 */
export function aptPackages(aptfile: string): string[] {
  const names = aptfile
    .split("\n")
    .map((line) => line.replace(/#.*/, "").trim())
    .filter((line) => line !== "")
    .flatMap((line) => line.split(/\s+/));
  const bad = names.filter((n) => !DEBIAN_PACKAGE_PATTERN.test(n));
  if (bad.length > 0) {
    throw new Error(
      `Aptfile: ${JSON.stringify(bad[0])} is not a Debian package name (NAME or NAME/SUITE)`,
    );
  }
  return names;
}

/** The build arguments for a commit's dependency files (files not configured count as absent). */
export function runtimeBuildArgs(
  baseImage: string,
  files: readonly DependencyFile[],
): RuntimeBuildArgs {
  const byPath = new Map(files.map((f) => [f.path, f.content]));
  return {
    BASE_IMAGE: baseImage,
    APT_PACKAGES: aptPackages(dependencyText(byPath.get("Aptfile"))).join(" "),
    REQUIREMENTS: dependencyText(byPath.get("requirements.txt")),
  };
}

/**
 * The hash of a build context as git tracks it: for each tracked file under `dir` (sorted by
 * path), the line `PATH` and the line `sha256(bytes)`, with CRLF line ends read as LF in text
 * files (no NUL byte). So the tag does not change with what a checkout happens to hold besides
 * (an untracked `.DS_Store`, editor files) or how it spells line ends (`core.autocrlf`), and two
 * colleagues' `pulumi up` of the same commit agree; an edit to a tracked file does change it.
 * Outside a git work tree every file counts except dot-files.
 */
export async function runtimeContextHash(dir: string): Promise<string> {
  const absolute = path.resolve(dir);
  let files: string[];
  try {
    const root = await git.findRoot({ fs, filepath: absolute });
    const prefix = path.relative(root, absolute).split(path.sep).join("/");
    files = (await git.listFiles({ fs, dir: root }))
      .filter((f) => prefix === "" || f.startsWith(`${prefix}/`))
      .map((f) => (prefix === "" ? f : f.slice(prefix.length + 1)))
      .filter((f) => fs.existsSync(path.join(absolute, f)));
  } catch {
    files = walk(absolute, "");
  }
  const lines = files.sort().map((rel) => {
    let bytes = fs.readFileSync(path.join(absolute, rel));
    if (!bytes.includes(0)) {
      bytes = Buffer.from(bytes.toString("latin1").replace(/\r\n/g, "\n"), "latin1");
    }
    return `${rel}\n${createHash("sha256").update(bytes).digest("hex")}\n`;
  });
  return createHash("sha256").update(lines.join("")).digest("hex");
}

function walk(dir: string, rel: string): string[] {
  return fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((entry) => {
    if (entry.name.startsWith(".")) return [];
    const child = rel ? `${rel}/${entry.name}` : entry.name;
    return entry.isDirectory() ? walk(dir, child) : entry.isFile() ? [child] : [];
  });
}

/**
 * The tag of a built runtime image: one per (runtime/ contents, base image, dependencies), so a
 * new tag, and only a new tag, means a new image and a container deploy.
 */
export function runtimeImageName(
  appName: string,
  runtimeHash: string,
  args: RuntimeBuildArgs,
): string {
  const digest = createHash("sha256")
    .update(JSON.stringify([runtimeHash, args.BASE_IMAGE, args.APT_PACKAGES, args.REQUIREMENTS]))
    .digest("hex");
  return `touchdeploy/${appName}-runtime:${digest.slice(0, 16)}`;
}
