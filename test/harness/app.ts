/**
 * Runtime containers serving an app root, and what they serve over HTTP. Every container is
 * named `tdtest-...`, labelled with the pid of the test process that made it, published on
 * 127.0.0.1 only (on a port Docker picks), and removed by `remove()` or, if the test process
 * died, by the next `sweepStaleContainers()`.
 */
import * as fs from "node:fs";
import * as http from "node:http";
import type Docker from "dockerode";
import { demuxLogs, ensureDocker } from "./docker";
import { defaultHardeningHostConfig } from "./hardening";
import { isAlive, waitFor } from "./process";

/** The port uWSGI listens on inside the container (TOUCHDEPLOY_PORT). */
export const CONTAINER_PORT = 8000;

/**
 * The generations manager (runtime/touchdeploy_generations.py) logs this once per reload it
 * performs: a new generation answered healthy and the previous one is being retired. A touch
 * that starts nothing (the live generation already runs that release and config) and a
 * generation that fails to start log no such line.
 */
export const RELOAD_LOG_LINE = "touchdeploy-generations: reloaded: generation";

/**
 * uWSGI's master logs this once per graceful reload it performs (it re-execs itself): the
 * reload of the previous contract (bench/variants/fs-reload-wake, startClassicContainer).
 */
export const UWSGI_RELOAD_LOG_LINE = "binary reloading uWSGI";

const OWNER_LABEL = "touchdeploy.e2e.pid";

export interface AppContainerOptions {
  /** Image to run (a runtime image tag or id). */
  image: string;
  /** The app root on the host, bind-mounted read-only at /srv/app. */
  root: string;
  /** TOUCHDEPLOY_APP_SUBDIR, e.g. `examples/hello-wsgi`. */
  subdir: string;
  /** Name suffix: the container is `tdtest-<name>-<pid>`. */
  name: string;
  /** TOUCHDEPLOY_RELOAD_FILE (default `.reload`). */
  reloadFile?: string;
  /** TOUCHDEPLOY_FINGERPRINT (default: the image's, `unmanaged`). */
  fingerprint?: string;
  /** The container's user, `UID:GID` (default: the image's, 10001); what `setup` reports. */
  user?: string;
  /** More bind mounts, `host:container[:ro]` (state directories). */
  binds?: string[];
  /** More environment, `KEY=VALUE`. */
  env?: string[];
}

export interface AppContainer {
  /** The container's full id; a code deploy must leave it unchanged. */
  id: string;
  name: string;
  /** http://127.0.0.1:<published port> */
  baseUrl: string;
  /** baseUrl + /healthz: the --health-url for the host script. */
  healthUrl: string;
  container: Docker.Container;
  /** The container's log so far (stdout and stderr). */
  logs(): Promise<string>;
  /** How many reloads (new generation serving, old one retired) the runtime performed so far. */
  countReloads(): Promise<number>;
  /** The uid of every process running in the container (uWSGI, supervisord, ...). */
  processUids(): Promise<number[]>;
  /**
   * Connections a process in the container closed with their request unread, so the kernel
   * reset them (TcpExt TCPAbortOnClose of the container's network namespace, read from
   * /proc/<pid>/net/netstat of its first process). A client sees each as a failed request
   * that the server, not the client, dropped.
   */
  serverResets(): Promise<number>;
  /** Id and start time as Docker reports them now (to prove it is the same container). */
  identity(): Promise<{ id: string; startedAt: string; restartCount: number; running: boolean }>;
  remove(): Promise<void>;
}

/**
 * Removes containers labelled `label` (default: the e2e tests' owner label) whose owning process
 * (the pid in the label) no longer exists; returns how many.
 */
export async function sweepStaleContainers(label: string = OWNER_LABEL): Promise<number> {
  const docker = await ensureDocker();
  const containers = await docker.listContainers({ all: true, filters: { label: [label] } });
  let removed = 0;
  for (const info of containers) {
    const pid = Number(info.Labels[label]);
    if (pid === process.pid || isAlive(pid)) continue;
    await docker
      .getContainer(info.Id)
      .remove({ force: true })
      .catch(() => undefined);
    removed++;
  }
  return removed;
}

/**
 * Creates and starts a runtime container for an app root, hardened as the program declares it
 * with the config's default limits (read-only root, /tmp tmpfs, no capabilities,
 * no-new-privileges, nproc, memory, cpus); see AppContainerOptions.
 */
export async function startAppContainer(opts: AppContainerOptions): Promise<AppContainer> {
  const docker = await ensureDocker();
  await sweepStaleContainers();
  const name = `tdtest-${opts.name}-${process.pid}`;
  const env = [
    `TOUCHDEPLOY_APP_SUBDIR=${opts.subdir}`,
    ...(opts.reloadFile ? [`TOUCHDEPLOY_RELOAD_FILE=${opts.reloadFile}`] : []),
    ...(opts.fingerprint ? [`TOUCHDEPLOY_FINGERPRINT=${opts.fingerprint}`] : []),
    ...(opts.env ?? []),
  ];
  const container = await docker.createContainer({
    name,
    Image: opts.image,
    Env: env,
    ...(opts.user ? { User: opts.user } : {}),
    Labels: { [OWNER_LABEL]: String(process.pid) },
    ExposedPorts: { [`${CONTAINER_PORT}/tcp`]: {} },
    HostConfig: {
      // Hardened as the program declares every container (components/containerArgs.ts).
      ...defaultHardeningHostConfig(),
      Binds: [`${opts.root}:/srv/app:ro`, ...(opts.binds ?? [])],
      // HostPort "" lets Docker pick a free port; we read it back below.
      PortBindings: { [`${CONTAINER_PORT}/tcp`]: [{ HostIp: "127.0.0.1", HostPort: "" }] },
    },
  });
  await container.start();
  const info = await container.inspect();
  const hostPort = info.NetworkSettings.Ports[`${CONTAINER_PORT}/tcp`]?.[0]?.HostPort;
  if (!hostPort) {
    await container.remove({ force: true });
    throw new Error(`container ${name} has no published port`);
  }
  const baseUrl = `http://127.0.0.1:${hostPort}`;
  const logs = async (): Promise<string> =>
    demuxLogs(await container.logs({ stdout: true, stderr: true, follow: false }));
  return {
    id: info.Id,
    name,
    baseUrl,
    healthUrl: `${baseUrl}/healthz`,
    container,
    logs,
    countReloads: async () => (await logs()).split(RELOAD_LOG_LINE).length - 1,
    processUids: async () => {
      const top = (await container.top({ ps_args: "-o pid,uid" })) as {
        Titles: string[];
        Processes: string[][];
      };
      const column = top.Titles.indexOf("UID");
      return top.Processes.map((p) => Number(p[column]));
    },
    serverResets: async () => {
      const pid = (await container.inspect()).State.Pid;
      return tcpExtCounter(fs.readFileSync(`/proc/${pid}/net/netstat`, "utf8"), "TCPAbortOnClose");
    },
    identity: async () => {
      const now = await container.inspect();
      return {
        id: now.Id,
        startedAt: now.State.StartedAt,
        restartCount: now.RestartCount,
        running: now.State.Running,
      };
    },
    remove: () => container.remove({ force: true }).then(() => undefined),
  };
}

/**
 * A TcpExt counter from the text of /proc/net/netstat (a header line of names, then a line of
 * values, per group).
 */
export function tcpExtCounter(netstat: string, name: string): number {
  const lines = netstat.split("\n");
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = lines[i].split(/\s+/);
    const values = lines[i + 1].split(/\s+/);
    if (names[0] !== "TcpExt:") continue;
    const at = names.indexOf(name);
    if (at > 0) return Number(values[at]);
  }
  throw new Error(`no TcpExt ${name} in /proc/net/netstat`);
}

/** One HTTP answer as a deploy sees it. status 0 = no answer (error says why). */
export interface Served {
  status: number;
  /** X-Revision: the commit uWSGI serves (current/REVISION when it last (re)loaded). */
  revision: string | undefined;
  /** X-Touchdeploy-Fingerprint: the dependency fingerprint the container was made for. */
  fingerprint: string | undefined;
  body: string;
  error?: string;
}

/** GET `url` on a new connection (uWSGI's http-socket closes each one anyway), bounded. */
export function getServed(url: string, timeoutMs = 3000): Promise<Served> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          revision: header(res.headers["x-revision"]),
          fingerprint: header(res.headers["x-touchdeploy-fingerprint"]),
          body,
        }),
      );
      res.on("error", (err) =>
        resolve({
          status: 0,
          revision: undefined,
          fingerprint: undefined,
          body,
          error: err.message,
        }),
      );
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on("error", (err) =>
      resolve({
        status: 0,
        revision: undefined,
        fingerprint: undefined,
        body: "",
        error: err.message,
      }),
    );
  });
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Polls `url` until it answers 200 with X-Revision `revision`; returns that answer. */
export async function waitForRevision(
  url: string,
  revision: string,
  timeoutMs = 30_000,
): Promise<Served> {
  let last: Served | undefined;
  return waitFor(
    `${url} to serve ${revision.slice(0, 12)}`,
    async () => {
      last = await getServed(url);
      return last.status === 200 && last.revision === revision ? last : undefined;
    },
    {
      timeoutMs,
      describeLast: () =>
        last ? `HTTP ${last.status} revision ${last.revision} ${last.error ?? ""}` : "nothing",
    },
  );
}
