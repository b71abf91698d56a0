/**
 * The deploy contracts ("designs") the benchmark measures side by side. Each one except the
 * shipped contract (runtime/, the generations manager since issue 12) is a complete runtime
 * under bench/variants/ (committed files, never edits of runtime/): the image is built from
 * exactly the files listed here, so a variant can be shipped by copying its files into runtime/,
 * and the previous shipped contract stays measurable (bench/variants/fs-reload-wake). The host script is the same for every design
 * (host/touchdeploy.sh as it is): switch `current`, touch the trigger once, wait until the
 * health URL answers the commit. What differs is what the runtime does on the touch.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { RELOAD_LOG_LINE, UWSGI_RELOAD_LOG_LINE } from "../../test/harness/app";
import { ensureDocker, followProgress, imageExists } from "../../test/harness/docker";
import { BASE_IMAGE, ensureBaseImage, REPO_ROOT } from "../../test/harness/images";
import { removeTree } from "../../test/harness/process";

export interface Design {
  /** Short id, used as Measurement.variant. */
  id: string;
  /** One line: what the runtime does on a touch of the trigger. */
  description: string;
  /**
   * The image: undefined for the shipped contract (the runtime image, built from runtime/);
   * else the build context, file name in the context -> path in this repository (the
   * Dockerfile included). Built FROM the debootstrapped base, like runtime/.
   */
  files?: Record<string, string>;
  /** Extra container environment (e.g. a socket mode of the generations manager). */
  env?: string[];
  /** Container sysctls (namespaced ones only). */
  sysctls?: Record<string, string>;
  /** What the runtime logs once per reload or switch it performs (counted per deploy). */
  reloadLine: string;
}

const V = "bench/variants";
const RUNTIME_WAKE = "runtime/touchdeploy_wake.py";
const FROZEN = `${V}/fs-reload-wake`;

/** The contract touchdeploy ships (runtime/ as it is): the generations manager (issue 12). */
export const SHIPPED = "shipped";
/** The contract shipped before issue 12 (frozen in bench/variants/fs-reload-wake). */
export const FS_RELOAD_WAKE = "fs-reload + wake";
/** The contract before 624ea2c (frozen in bench/variants/previous). */
export const PREVIOUS = "previous";
export const TOUCH_WAKE = "touch-reload + wake";
export const FS_NO_WAKE = "fs-reload, no wake";
export const CHAIN = "chain-reload";
export const WORKERS = "workers-reload";
/**
 * The generations manager as the research built it (bench/variants/generations, before it was
 * merged with issue 11's env and processes into runtime/).
 */
export const GENERATIONS = "generations";
export const GENERATIONS_ZERG = "generations-zerg";
export const GENERATIONS_REUSEPORT = "generations-reuseport";
export const GENERATIONS_MIGRATE = "generations-reuseport-migrate";

/** The frozen previous contract's files, every one its Dockerfile copies. */
const FROZEN_FILES = {
  Dockerfile: `${FROZEN}/Dockerfile`,
  "supervisord.conf": `${FROZEN}/supervisord.conf`,
  "uwsgi.ini": `${FROZEN}/uwsgi.ini`,
  "start-uwsgi": `${FROZEN}/start-uwsgi`,
  start: `${FROZEN}/start`,
  "touchdeploy_wake.py": `${FROZEN}/touchdeploy_wake.py`,
  "touchdeploy_env.py": `${FROZEN}/touchdeploy_env.py`,
  "touchdeploy_tool.py": `${FROZEN}/touchdeploy_tool.py`,
};
const LAZY_FILES = {
  Dockerfile: `${V}/chain-reload/Dockerfile`,
  "supervisord.conf": `${V}/chain-reload/supervisord.conf`,
  "start-uwsgi": `${V}/chain-reload/start-uwsgi`,
  "touchdeploy_wake.py": RUNTIME_WAKE,
  "touchdeploy_lazy.py": `${V}/chain-reload/touchdeploy_lazy.py`,
};
const GENERATION_FILES = {
  Dockerfile: `${V}/generations/Dockerfile`,
  "supervisord.conf": `${V}/generations/supervisord.conf`,
  "uwsgi.ini": `${V}/generations/uwsgi.ini`,
  "touchdeploy-generations": `${V}/generations/touchdeploy-generations`,
  "touchdeploy_wake.py": RUNTIME_WAKE,
};
const GENERATION_LINE = "touchdeploy-generations: starting generation";

export const DESIGNS: Record<string, Design> = {
  [SHIPPED]: {
    id: SHIPPED,
    description:
      "runtime/ as shipped: generations (touchdeploy_generations.py holds the socket and starts " +
      "a new uWSGI instance on the release and env the links point to on the touch; the old one " +
      "serves until the new one answers healthy, then stops gracefully; a failed start is " +
      "reported to the host script)",
    reloadLine: RELOAD_LOG_LINE,
  },
  [FS_RELOAD_WAKE]: {
    id: FS_RELOAD_WAKE,
    description:
      "the contract shipped before issue 12 (frozen in bench/variants/fs-reload-wake): fs-reload " +
      "(inotify) on the trigger re-execs the uWSGI master, the wake module reaps the old workers " +
      "at once; requests wait in the listen queue while the new master imports the app",
    files: FROZEN_FILES,
    reloadLine: UWSGI_RELOAD_LOG_LINE,
  },
  [PREVIOUS]: {
    id: PREVIOUS,
    description:
      "the contract before 624ea2c (frozen in bench/variants/previous): touch-reload (1 s stat " +
      "check), no wake module",
    files: {
      Dockerfile: `${V}/previous/Dockerfile`,
      "supervisord.conf": `${V}/previous/supervisord.conf`,
      "uwsgi.ini": `${V}/previous/uwsgi.ini`,
      "start-uwsgi": `${V}/previous/start-uwsgi`,
    },
    reloadLine: UWSGI_RELOAD_LOG_LINE,
  },
  [TOUCH_WAKE]: {
    id: TOUCH_WAKE,
    description: "fs-reload + wake with touch-reload instead of fs-reload",
    files: { ...FROZEN_FILES, "uwsgi.ini": `${V}/touch-reload-wake/uwsgi.ini` },
    reloadLine: UWSGI_RELOAD_LOG_LINE,
  },
  [FS_NO_WAKE]: {
    id: FS_NO_WAKE,
    description: "fs-reload + wake without the wake module",
    files: { ...FROZEN_FILES, "uwsgi.ini": `${V}/fs-reload-no-wake/uwsgi.ini` },
    reloadLine: UWSGI_RELOAD_LOG_LINE,
  },
  [CHAIN]: {
    id: CHAIN,
    description:
      "uWSGI chain reload: lazy-apps, touch-chain-reload (1 s check); the workers are replaced " +
      "one at a time, the next one when the previous one's replacement accepts",
    files: { ...LAZY_FILES, "uwsgi.ini": `${V}/chain-reload/uwsgi.ini` },
    reloadLine: "chain reloading complete",
  },
  [WORKERS]: {
    id: WORKERS,
    description:
      "uWSGI workers reload: lazy-apps, touch-workers-reload (1 s check); all workers replaced " +
      "at once, the master stays",
    files: { ...LAZY_FILES, "uwsgi.ini": `${V}/workers-reload/uwsgi.ini` },
    reloadLine: "workers reload !!!",
  },
  [GENERATIONS]: {
    id: GENERATIONS,
    description:
      "generations: a manager holds the socket and starts a new uWSGI instance on the new " +
      "release on the touch (inotify); the old one serves until the new one answers healthy, " +
      "then stops gracefully; one accept queue",
    files: GENERATION_FILES,
    reloadLine: GENERATION_LINE,
  },
  [GENERATIONS_ZERG]: {
    id: GENERATIONS_ZERG,
    description:
      "generations with a uWSGI zergpool holding the socket (zerg mode: the socket passed over " +
      "a UNIX socket); otherwise as generations",
    files: {
      ...GENERATION_FILES,
      Dockerfile: `${V}/generations-zerg/Dockerfile`,
      "supervisord.conf": `${V}/generations-zerg/supervisord.conf`,
      "zergpool.ini": `${V}/generations-zerg/zergpool.ini`,
    },
    reloadLine: GENERATION_LINE,
  },
  [GENERATIONS_REUSEPORT]: {
    id: GENERATIONS_REUSEPORT,
    description:
      "generations, each binding the port itself with SO_REUSEPORT: the kernel spreads new " +
      "connections over the generations' own queues",
    files: GENERATION_FILES,
    env: ["TOUCHDEPLOY_SOCKET_MODE=reuseport"],
    reloadLine: GENERATION_LINE,
  },
  [GENERATIONS_MIGRATE]: {
    id: GENERATIONS_MIGRATE,
    description:
      "as generations-reuseport, with net.ipv4.tcp_migrate_req = 1: connections queued on a " +
      "closing socket move to another one of the group",
    files: GENERATION_FILES,
    env: ["TOUCHDEPLOY_SOCKET_MODE=reuseport"],
    sysctls: { "net.ipv4.tcp_migrate_req": "1" },
    reloadLine: GENERATION_LINE,
  },
};

export function design(id: string): Design {
  const d = DESIGNS[id];
  if (!d)
    throw new Error(
      `unknown design ${JSON.stringify(id)} (known: ${Object.keys(DESIGNS).join(", ")})`,
    );
  return d;
}

/** Fails when a file a design lists is missing (before anything starts). */
export function checkDesignFiles(ids: readonly string[]): void {
  for (const id of ids) {
    for (const [name, rel] of Object.entries(design(id).files ?? {})) {
      if (!fs.existsSync(path.join(REPO_ROOT, rel))) {
        throw new Error(`design ${id}: ${name} comes from ${rel}, which does not exist`);
      }
    }
  }
}

/**
 * The image of a design: `runtimeImage` for the shipped contract, else its files built on the
 * debootstrapped base (skipped when an image of exactly these files exists). Returns the tag.
 */
export async function ensureDesignImage(
  id: string,
  runtimeImage: string,
  scratch: string,
  aptPackages = "",
): Promise<string> {
  const files = design(id).files;
  if (!files) {
    if (aptPackages) throw new Error(`design ${id}: build runtime/ with its packages instead`);
    return runtimeImage;
  }
  const baseId = await ensureBaseImage();
  const docker = await ensureDocker();
  const hash = crypto.createHash("sha256").update(baseId).update(`${aptPackages}\0`);
  const names = Object.keys(files).sort();
  for (const name of names) {
    hash
      .update(`${name}\0`)
      .update(fs.readFileSync(path.join(REPO_ROOT, files[name])))
      .update("\0");
  }
  const tag = `tdbench-runtime:${id.replace(/[^a-z0-9]+/g, "-")}-${hash.digest("hex").slice(0, 12)}`;
  if (await imageExists(docker, tag)) return tag;
  const dir = path.join(scratch, `image-${id.replace(/[^a-z0-9]+/g, "-")}`);
  fs.mkdirSync(dir, { recursive: true });
  try {
    for (const name of names) {
      const from = path.join(REPO_ROOT, files[name]);
      fs.copyFileSync(from, path.join(dir, name));
      fs.chmodSync(path.join(dir, name), fs.statSync(from).mode);
    }
    const stream = await docker.buildImage(
      { context: dir, src: names },
      {
        t: tag,
        buildargs: { BASE_IMAGE, APT_PACKAGES: aptPackages },
        labels: { "touchdeploy.bench": "true" },
        forcerm: true,
      },
    );
    await followProgress(docker, stream);
  } finally {
    removeTree(dir);
  }
  return tag;
}
