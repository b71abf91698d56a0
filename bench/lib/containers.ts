/**
 * The benchmark's containers: named `tdbench-<name>-<pid>`, labelled with the benchmark's pid,
 * published on 127.0.0.1 only. Like the e2e tests' containers (test/harness/app.ts), but
 * with the benchmark's own name prefix, an optional fixed host port (a container deploy must
 * come back on the same port) and logs with timestamps (to see where a reload spends its time).
 */
import type Docker from "dockerode";
import { CONTAINER_PORT, sweepStaleContainers } from "../../test/harness/app";
import { demuxLogs, ensureDocker } from "../../test/harness/docker";
import { defaultHardeningHostConfig } from "../../test/harness/hardening";

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
  /** Namespaced sysctls (e.g. net.ipv4.tcp_migrate_req). */
  sysctls?: Record<string, string>;
  /** Publish no port (the container is reached over a Docker network). */
  unpublished?: boolean;
  /** The container's user, `UID:GID` (default: the image's). */
  user?: string;
  /**
   * Hardened as the program declares a host's container (components/containerArgs.ts, the
   * config's default limits): read-only root, /tmp tmpfs, no capabilities, no-new-privileges.
   */
  hardened?: boolean;
  /** A user-defined Docker network to join instead of the default bridge, with aliases. */
  network?: { name: string; aliases?: string[] };
}

export interface BenchContainer {
  id: string;
  name: string;
  /** 127.0.0.1 for a published port, else the container's address on its network. */
  address: string;
  /** The published port (or the container's own port when unpublished). */
  hostPort: number;
  /** http://<address>:<port> */
  baseUrl: string;
  /** baseUrl + /healthz */
  healthUrl: string;
  /** Log lines since `sinceMs` (epoch ms) with the time Docker received each one. */
  logLines(sinceMs: number): Promise<{ atMs: number; text: string }[]>;
  /** `docker stop` (SIGTERM: uWSGI with die-on-term stops, killing requests in flight), remove. */
  stopAndRemove(): Promise<void>;
  /** `docker exec` of a command; resolves with its exit code. */
  exec(cmd: string[]): Promise<number>;
  /** Waits until the container is no longer running (false after `timeoutMs`). */
  waitExit(timeoutMs: number): Promise<boolean>;
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
    ...(opts.user ? { User: opts.user } : {}),
    Labels: { [BENCH_LABEL]: String(process.pid) },
    ExposedPorts: { [`${CONTAINER_PORT}/tcp`]: {} },
    HostConfig: {
      ...(opts.hardened ? defaultHardeningHostConfig() : {}),
      Binds: opts.binds ?? [],
      ...(opts.unpublished
        ? {}
        : {
            PortBindings: {
              [`${CONTAINER_PORT}/tcp`]: [
                { HostIp: "127.0.0.1", HostPort: opts.hostPort ? String(opts.hostPort) : "" },
              ],
            },
          }),
      ...(opts.sysctls ? { Sysctls: opts.sysctls } : {}),
      ...(opts.network ? { NetworkMode: opts.network.name } : {}),
    },
    ...(opts.network
      ? {
          NetworkingConfig: {
            EndpointsConfig: { [opts.network.name]: { Aliases: opts.network.aliases ?? [] } },
          },
        }
      : {}),
  });
  try {
    await container.start();
    const info = await container.inspect();
    if (opts.unpublished) {
      const ip = info.NetworkSettings.Networks[opts.network?.name ?? "bridge"]?.IPAddress;
      if (!ip) throw new Error(`container ${name} has no IP address`);
      return wrap(container, info.Id, name, CONTAINER_PORT, ip);
    }
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
  address = "127.0.0.1",
): BenchContainer {
  const baseUrl = `http://${address}:${hostPort}`;
  return {
    id,
    name,
    address,
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
    exec: async (cmd) => {
      const e = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
      const stream = await e.start({});
      await new Promise<void>((resolve) => {
        stream.on("end", () => resolve());
        stream.on("close", () => resolve());
        stream.resume();
      });
      return (await e.inspect()).ExitCode ?? -1;
    },
    waitExit: async (timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const info = await container.inspect().catch(() => undefined);
        if (!info?.State.Running) return true;
        await new Promise((r) => setTimeout(r, 50));
      }
      return false;
    },
    remove: () => container.remove({ force: true }).then(() => undefined),
  };
}
