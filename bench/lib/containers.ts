/**
 * The benchmark's containers: named `tdbench-<name>-<pid>`, labelled with the benchmark's pid,
 * published on 127.0.0.1 only. Like the e2e tests' containers (test/e2e/support/app.ts), but
 * with the benchmark's own name prefix, an optional fixed host port (a container deploy must
 * come back on the same port) and logs with timestamps (to see where a reload spends its time).
 */
import type Docker from "dockerode";
import { CONTAINER_PORT, sweepStaleContainers } from "../../test/e2e/support/app";
import { demuxLogs, ensureDocker } from "../../test/e2e/support/docker";

export const BENCH_LABEL = "touchdeploy.bench.pid";

export interface BenchContainerOptions {
  /** Name suffix: the container is `tdbench-<name>-<pid>`. */
  name: string;
  image: string;
  env: string[];
  /** Bind mounts, `host:container[:ro]`. */
  binds?: string[];
  /** Host port on 127.0.0.1; 0 or undefined lets Docker pick a free one. */
  hostPort?: number;
}

export interface BenchContainer {
  id: string;
  name: string;
  hostPort: number;
  /** http://127.0.0.1:<port> */
  baseUrl: string;
  /** baseUrl + /healthz */
  healthUrl: string;
  /** Log lines since `sinceMs` (epoch ms) with the time Docker received each one. */
  logLines(sinceMs: number): Promise<{ atMs: number; text: string }[]>;
  /** `docker stop` (SIGTERM, graceful: uWSGI has die-on-term) then remove. */
  stopAndRemove(): Promise<void>;
  /** Removes it at once (SIGKILL), for cleanup. */
  remove(): Promise<void>;
}

export function containerName(name: string): string {
  return `tdbench-${name}-${process.pid}`;
}

/** Removes `tdbench-` containers left by benchmark processes that no longer exist. */
export function sweepStaleBenchContainers(): Promise<number> {
  return sweepStaleContainers(BENCH_LABEL);
}

/** Docker's RFC 3339 timestamp with nanoseconds, as epoch milliseconds. */
export function parseDockerTimestamp(ts: string): number {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(ts);
  if (!m) return NaN;
  const frac = (m[2] ?? "").padEnd(3, "0").slice(0, 3);
  return Date.parse(`${m[1]}.${frac}Z`) + Number(`0.${(m[2] ?? "0").slice(3) || "0"}`);
}

export async function startBenchContainer(opts: BenchContainerOptions): Promise<BenchContainer> {
  const docker = await ensureDocker();
  const name = containerName(opts.name);
  const container = await docker.createContainer({
    name,
    Image: opts.image,
    Env: opts.env,
    Labels: { [BENCH_LABEL]: String(process.pid) },
    ExposedPorts: { [`${CONTAINER_PORT}/tcp`]: {} },
    HostConfig: {
      Binds: opts.binds ?? [],
      PortBindings: {
        [`${CONTAINER_PORT}/tcp`]: [
          { HostIp: "127.0.0.1", HostPort: opts.hostPort ? String(opts.hostPort) : "" },
        ],
      },
    },
  });
  try {
    await container.start();
    const info = await container.inspect();
    const hostPort = Number(info.NetworkSettings.Ports[`${CONTAINER_PORT}/tcp`]?.[0]?.HostPort);
    if (!hostPort) throw new Error(`container ${name} has no published port`);
    return wrap(container, info.Id, name, hostPort);
  } catch (err) {
    await container.remove({ force: true }).catch(() => undefined);
    throw err;
  }
}

function wrap(
  container: Docker.Container,
  id: string,
  name: string,
  hostPort: number,
): BenchContainer {
  const baseUrl = `http://127.0.0.1:${hostPort}`;
  return {
    id,
    name,
    hostPort,
    baseUrl,
    healthUrl: `${baseUrl}/healthz`,
    logLines: async (sinceMs) => {
      const raw = await container.logs({
        stdout: true,
        stderr: true,
        follow: false,
        timestamps: true,
        since: Math.floor(sinceMs / 1000) - 1,
      });
      return demuxLogs(raw)
        .split("\n")
        .filter((l) => l.length > 0)
        .map((l) => {
          const sp = l.indexOf(" ");
          return { atMs: parseDockerTimestamp(l.slice(0, sp)), text: l.slice(sp + 1) };
        })
        .filter((l) => l.atMs >= sinceMs);
    },
    stopAndRemove: async () => {
      await container.stop({ t: 10 }).catch(() => undefined);
      await container.remove({ force: true });
    },
    remove: () => container.remove({ force: true }).then(() => undefined),
  };
}
