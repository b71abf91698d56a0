/**
 * What the runtime image is built from, and how it is named. Pure apart from reading the files
 * of `runtime/`.
 */
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { DependencyFile } from "./fingerprint";

/** Build arguments of `runtime/Dockerfile` that carry the app's dependencies. */
export interface RuntimeBuildArgs {
  BASE_IMAGE: string;
  /** Debian packages, space-separated, from the app's `Aptfile`. */
  APT_PACKAGES: string;
  /** The app's `requirements.txt`, verbatim. */
  REQUIREMENTS: string;
}

const DEBIAN_PACKAGE_PATTERN = /^[a-z0-9][a-z0-9+.-]+$/;

/**
 * Debian package names from an `Aptfile` (one or more per line, `#` comments). Throws on
 * anything that is not a package name: the list reaches `apt-get install` in a shell.
 */
export function aptPackages(aptfile: string): string[] {
  const names = aptfile
    .split("\n")
    .map((line) => line.replace(/#.*/, "").trim())
    .filter((line) => line !== "")
    .flatMap((line) => line.split(/\s+/));
  const bad = names.filter((n) => !DEBIAN_PACKAGE_PATTERN.test(n));
  if (bad.length > 0) {
    throw new Error(`Aptfile: ${JSON.stringify(bad[0])} is not a Debian package name`);
  }
  return names;
}

function text(content: string | null | undefined): string {
  return content ?? "";
}

/** The build arguments for a commit's dependency files (files not configured count as absent). */
export function runtimeBuildArgs(
  baseImage: string,
  files: readonly DependencyFile[],
): RuntimeBuildArgs {
  const byPath = new Map(files.map((f) => [f.path, f.content]));
  return {
    BASE_IMAGE: baseImage,
    APT_PACKAGES: aptPackages(text(byPath.get("Aptfile"))).join(" "),
    REQUIREMENTS: text(byPath.get("requirements.txt")),
  };
}

/** sha256 of every file under `dir` (names and contents, sorted), to rebuild when it changes. */
export function directoryHash(dir: string): string {
  const hash = createHash("sha256");
  const walk = (rel: string) => {
    for (const entry of fs
      .readdirSync(path.join(dir, rel), { withFileTypes: true })
      .sort((a, b) => a.name.localeCompare(b.name))) {
      const child = path.posix.join(rel, entry.name);
      if (entry.isDirectory()) {
        walk(child);
      } else {
        hash
          .update(`${child}\n`)
          .update(fs.readFileSync(path.join(dir, child)))
          .update("\n");
      }
    }
  };
  walk("");
  return hash.digest("hex");
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
