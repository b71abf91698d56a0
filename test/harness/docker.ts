/**
 * A Docker engine for the e2e tests: the one already running, or one we start (as root).
 * CI starts from a clean machine where docker.io is installed but dockerd is not running.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Docker from "dockerode";
import { findExecutable } from "./prerequisites";
import { sleep } from "./process";

/** How long a freshly started dockerd may take to answer (it is usually ready in 2-5 s). */
const DOCKERD_START_TIMEOUT_MS = 60_000;

/** Where the dockerd we start writes its log (read it when the engine does not come up). */
export const DOCKERD_LOG = path.join(os.tmpdir(), "touchdeploy-e2e-dockerd.log");

let client: Promise<Docker> | undefined;

async function answers(docker: Docker): Promise<boolean> {
  try {
    await docker.ping();
    return true;
  } catch {
    return false;
  }
}

/**
 * A dockerode client for a running engine. Starts `dockerd` in the background when none
 * answers (it keeps running after the tests, for the next test files), waits until it is ready
 * (bounded), and throws a clear error when docker.io is not installed or we are not root.
 */
export function ensureDocker(): Promise<Docker> {
  client ??= connect();
  return client;
}

async function connect(): Promise<Docker> {
  const docker = new Docker();
  if (await answers(docker)) return docker;
  if (process.env.DOCKER_HOST) {
    throw new Error(`no Docker engine answers at DOCKER_HOST=${process.env.DOCKER_HOST}`);
  }
  const dockerd = findExecutable("dockerd");
  if (!dockerd) {
    throw new Error(
      "no Docker engine is running and dockerd is missing: apt-get install docker.io",
    );
  }
  if (process.getuid?.() !== 0) {
    throw new Error("no Docker engine is running, and only root can start dockerd");
  }
  const log = fs.openSync(DOCKERD_LOG, "a");
  const child = spawn(dockerd, [], { detached: true, stdio: ["ignore", log, log] });
  fs.closeSync(log);
  child.unref();
  const deadline = Date.now() + DOCKERD_START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await answers(docker)) return docker;
    if (child.exitCode !== null) break;
    await sleep(250);
  }
  const tail = fs.existsSync(DOCKERD_LOG)
    ? fs.readFileSync(DOCKERD_LOG, "utf8").split("\n").slice(-15).join("\n")
    : "";
  throw new Error(
    `started dockerd (pid ${child.pid}) but it did not answer within ` +
      `${DOCKERD_START_TIMEOUT_MS / 1000}s; last lines of ${DOCKERD_LOG}:\n${tail}`,
  );
}

/** True when an image (name:tag or id) exists locally. */
export async function imageExists(docker: Docker, name: string): Promise<boolean> {
  try {
    await docker.getImage(name).inspect();
    return true;
  } catch {
    return false;
  }
}

/** Consumes a Docker progress stream (build, import); rejects on the first error it reports. */
export function followProgress(docker: Docker, stream: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = "";
    docker.modem.followProgress(
      stream,
      (err: Error | null) => (err ? reject(err) : resolve(output)),
      (event: { stream?: string; status?: string; error?: string }) => {
        if (event.error) {
          reject(new Error(`${event.error}\n${output.split("\n").slice(-20).join("\n")}`));
        }
        output += event.stream ?? (event.status ? `${event.status}\n` : "");
      },
    );
  });
}

/**
 * Splits the multiplexed log stream of a container created without a TTY into text: each frame
 * is an 8-byte header (stream type, 3 zero bytes, big-endian length) and its payload.
 */
export function demuxLogs(buffer: Buffer): string {
  let offset = 0;
  const parts: Buffer[] = [];
  while (offset + 8 <= buffer.length) {
    const length = buffer.readUInt32BE(offset + 4);
    parts.push(buffer.subarray(offset + 8, offset + 8 + length));
    offset += 8 + length;
  }
  return Buffer.concat(parts).toString("utf8");
}
