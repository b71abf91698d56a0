/**
 * The images the e2e tests run: a Debian base built with debootstrap (there is no registry to
 * pull from here), and touchdeploy's runtime image (runtime/) built on it. Both are cached by
 * name: the base is built once per machine (~40 s), the runtime whenever runtime/ changes.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawn } from "node:child_process";
import type Docker from "dockerode";
import { ensureDocker, followProgress, imageExists } from "./docker";
import { findExecutable } from "./prerequisites";
import { removeTree, run, sleep } from "./process";

/** The repository's root directory. */
export const REPO_ROOT = path.resolve(__dirname, "..", "..");

/** The debootstrapped base image every runtime image of the tests is built on. */
export const BASE_IMAGE = "touchdeploy-base:bookworm";

/** Debian packages the base gets: exactly what runtime/Dockerfile would install otherwise. */
export const BASE_PACKAGES = ["python3", "uwsgi-core", "uwsgi-plugin-python3", "supervisor"];

const SCRATCH = "/var/tmp";
const BUILD_LOCK = path.join(SCRATCH, "touchdeploy-e2e-base-image.lock");
const BASE_BUILD_TIMEOUT_MS = 15 * 60_000;

/**
 * Makes sure `touchdeploy-base:bookworm` exists: debootstrap (minbase + BASE_PACKAGES) into a
 * scratch directory under /var/tmp, `docker import` it, remove the directory. Skipped when the
 * image exists. Concurrent callers (several test processes) build it once: a lock directory
 * holds the builder's pid. Set TOUCHDEPLOY_DEBIAN_MIRROR to use another Debian mirror than
 * debootstrap's default. Returns the image id.
 */
export async function ensureBaseImage(): Promise<string> {
  const docker = await ensureDocker();
  if (await imageExists(docker, BASE_IMAGE))
    return (await docker.getImage(BASE_IMAGE).inspect()).Id;
  await withBuildLock(async () => {
    if (await imageExists(docker, BASE_IMAGE)) return;
    await buildBaseImage(docker);
  });
  return (await docker.getImage(BASE_IMAGE).inspect()).Id;
}

async function buildBaseImage(docker: Docker): Promise<void> {
  const debootstrap = findExecutable("debootstrap");
  if (!debootstrap) throw new Error("debootstrap is missing: apt-get install debootstrap");
  const dir = fs.mkdtempSync(path.join(SCRATCH, "tdtest-debootstrap-"));
  try {
    const args = [
      "--variant=minbase",
      `--include=${BASE_PACKAGES.join(",")}`,
      "bookworm",
      dir,
      ...(process.env.TOUCHDEPLOY_DEBIAN_MIRROR ? [process.env.TOUCHDEPLOY_DEBIAN_MIRROR] : []),
    ];
    const result = await run(debootstrap, args, { timeoutMs: BASE_BUILD_TIMEOUT_MS, check: false });
    if (result.code !== 0) {
      const log = path.join(dir, "debootstrap", "debootstrap.log");
      const tail = fs.existsSync(log) ? fs.readFileSync(log, "utf8").split("\n").slice(-20) : [];
      throw new Error(
        `debootstrap ${args.join(" ")} failed (${result.code ?? result.signal}):\n` +
          `${result.stderr.slice(-2000)}\n${tail.join("\n")}`,
      );
    }
    // `tar -C dir -c . | docker import - touchdeploy-base:bookworm`, the import through the API.
    const tar = spawn("tar", ["-C", dir, "-c", "."], { stdio: ["ignore", "pipe", "pipe"] });
    let tarErr = "";
    tar.stderr.on("data", (c: Buffer) => (tarErr += c.toString()));
    const [repo, tag] = BASE_IMAGE.split(":");
    const stream = await docker.importImage(tar.stdout, { repo, tag });
    await followProgress(docker, stream);
    const tarCode = await new Promise<number | null>((r) => {
      if (tar.exitCode !== null) r(tar.exitCode);
      else tar.on("close", r);
    });
    if (tarCode !== 0) throw new Error(`tar of the debootstrapped tree failed: ${tarErr}`);
  } finally {
    removeTree(dir);
  }
}

/** Runs `fn` holding a machine-wide lock (a directory with the holder's pid); bounded wait. */
async function withBuildLock(fn: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + BASE_BUILD_TIMEOUT_MS;
  for (;;) {
    try {
      fs.mkdirSync(BUILD_LOCK);
      fs.writeFileSync(path.join(BUILD_LOCK, "pid"), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      if (!lockHolderAlive()) {
        removeTree(BUILD_LOCK);
        continue;
      }
      if (Date.now() >= deadline) throw new Error(`timed out waiting for ${BUILD_LOCK}`);
      await sleep(1000);
    }
  }
  try {
    await fn();
  } finally {
    removeTree(BUILD_LOCK);
  }
}

function lockHolderAlive(): boolean {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(path.join(BUILD_LOCK, "pid"), "utf8"));
  } catch {
    // Just created, pid not written yet: give it a moment unless it is old.
    try {
      return Date.now() - fs.statSync(BUILD_LOCK).mtimeMs < 10_000;
    } catch {
      return false;
    }
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Build arguments of runtime/Dockerfile for an app's dependencies. */
export interface RuntimeImageOptions {
  /** Debian packages to install (APT_PACKAGES), space-separated. */
  aptPackages?: string;
  /** requirements.txt content to pip install (REQUIREMENTS); needs PyPI, unreachable here. */
  requirements?: string;
}

export interface RuntimeImage {
  /** `touchdeploy-runtime:e2e-<hash>`: the hash covers runtime/, the base image and the args. */
  tag: string;
  id: string;
}

/**
 * Builds runtime/ on the base image (building that first if needed), tagged by a hash of
 * runtime/'s files, the base image id and the build args; skipped when that tag exists.
 */
export async function ensureRuntimeImage(opts: RuntimeImageOptions = {}): Promise<RuntimeImage> {
  const baseId = await ensureBaseImage();
  const docker = await ensureDocker();
  const contextDir = path.join(REPO_ROOT, "runtime");
  const files = listFiles(contextDir);
  const buildargs: Record<string, string> = {
    BASE_IMAGE,
    APT_PACKAGES: opts.aptPackages ?? "",
    REQUIREMENTS: opts.requirements ?? "",
  };
  const hash = crypto.createHash("sha256");
  for (const f of files) {
    hash
      .update(`${f}\0`)
      .update(fs.readFileSync(path.join(contextDir, f)))
      .update("\0");
  }
  hash.update(baseId).update(JSON.stringify(buildargs));
  const tag = `touchdeploy-runtime:e2e-${hash.digest("hex").slice(0, 16)}`;
  if (!(await imageExists(docker, tag))) {
    const stream = await docker.buildImage(
      { context: contextDir, src: files },
      { t: tag, buildargs, labels: { "touchdeploy.e2e": "true" }, forcerm: true },
    );
    await followProgress(docker, stream);
  }
  return { tag, id: (await docker.getImage(tag).inspect()).Id };
}

function listFiles(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...listFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}

/**
 * The Debian packages an app's Aptfile names, as touchdeploy passes them to the runtime image
 * (APT_PACKAGES): `#` comments and blank lines dropped, entries separated by whitespace, each
 * `NAME` or `NAME/SUITE` (runtime/Dockerfile adds SUITE to apt's sources).
 */
export function aptPackagesOf(appDir: string): string {
  const text = fs.readFileSync(path.join(appDir, "Aptfile"), "utf8");
  const entries = text
    .split("\n")
    .map((line) => line.replace(/#.*/, "").trim())
    .filter((line) => line !== "")
    .flatMap((line) => line.split(/\s+/));
  for (const e of entries) {
    if (!/^[a-z0-9][a-z0-9+.-]+(\/[a-z0-9][a-z0-9-]*)?$/.test(e)) {
      throw new Error(`${appDir}/Aptfile: ${JSON.stringify(e)} is not NAME or NAME/SUITE`);
    }
  }
  return entries.join(" ");
}
