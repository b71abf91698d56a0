/**
 * The long-lived container of one host, as docker.Container arguments. Pure: plain values in,
 * plain values out (Outputs pass through untouched), so it is tested without mocks.
 *
 * Rules from the Docker provider at the version @pulumi/docker 5.2.0 wraps
 * (kreuzwerker/terraform-provider-docker v4.5.0, pinned as the `upstream` submodule that
 * pulumi-docker's provider/go.mod replaces `terraform-provider-docker` with):
 * - almost every input forces replacement (internal/provider/resource_docker_container.go);
 * - the state's `log_opts` is the daemon's merged map whenever the program declares any
 *   (resource_docker_container_funcs.go `containerLogOptsForState`): a daemon.json log option
 *   would then replace the container on every `up`. So no `logOpts`: the `local` log driver
 *   rotates on its own;
 * - `healthcheck` is not ForceNew and `resourceDockerContainerUpdate` only updates restart and
 *   resource limits: a changed healthcheck would show `~update` and never reach the container.
 *   So a hash of the healthcheck is a label (labels are ForceNew): changing it replaces the
 *   container and the new healthcheck applies.
 * - the hardening ({@link containerHardening}) is declared in the form Read takes back, so a
 *   code-only `up` finds nothing to change; its rules are cited there.
 */
import type * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "crypto";
import type { ContainerLimits, ReleaseConfig } from "./config";
import {
  CONTAINER_APP_ROOT,
  CONTAINER_PORT,
  CONTAINER_STATE_ROOT,
  ENV,
  STATE_DIR,
} from "./contract";

/**
 * The only writable places of the container besides the state directories: `/tmp`, where
 * supervisord (pid file, socket, child logs), the generations manager and touchdeploy_tool.py
 * (`TOUCHDEPLOY_RUN_DIR` /tmp/touchdeploy: status, sockets, FIFOs, processes.conf) and every
 * program (HOME=/tmp) write. Found by running the image with a read-only root: nothing else is
 * written (test/e2e/hardening.test.ts keeps it so). noexec: nothing runs from it. Its pages count
 * against the memory limit.
 */
export const CONTAINER_TMPFS: Readonly<Record<string, string>> = {
  "/tmp": "rw,noexec,nosuid,nodev,size=64m",
};

/**
 * RLIMIT_NPROC of the container's processes: the provider at v4.5.0 has no `pids_limit` (no such
 * field in resource_docker_container.go's schema), so the container's process count is bounded
 * with the `nproc` ulimit instead. The kernel counts it per uid (every process of the
 * container's uid on the host, threads included), which is the deploy user's.
 */
export const CONTAINER_NPROC = 1024;

/**
 * The container's hardening, as docker.Container arguments: a read-only root filesystem with a
 * tmpfs for /tmp, no capabilities, no-new-privileges, a process limit, and the memory and CPU
 * limits of the config. What the Docker provider (terraform-provider-docker v4.5.0,
 * internal/provider/resource_docker_container.go schema; resource_docker_container_funcs.go
 * `resourceDockerContainerRead`, `resourceDockerContainerUpdate`) does with each:
 * - `read_only`, `capabilities`, `security_opts`, `ulimit`, `cpus`: ForceNew. Read takes back
 *   HostConfig.ReadonlyRootfs, CapAdd/CapDrop as the daemon stored them ("ALL" stays "ALL"),
 *   SecurityOpt as given ("no-new-privileges"), Ulimits (only when declared), and `cpus` in its
 *   own spelling (components/containerLimits.ts): each declared here as read back.
 * - `memory`, `memory_swap`: updated in place, Read takes them back in MB (swap as is when <= 0).
 *   Both are declared, swap equal to memory: left out, the daemon makes swap twice the memory
 *   and Read would put that in the state, a diff on every `up`. "off" is 0 for both (Read: 0).
 * - `tmpfs`: neither ForceNew nor applied by Update; Read takes the map back as given.
 * A change of tmpfs or of a memory limit would be an update that does not (fully) reach the
 * running container (Update's ContainerUpdate leaves a 0 unchanged, so "off" would never apply),
 * so a hash of the whole hardening is a label ({@link HARDENING_LABEL}, ForceNew): any change of
 * it replaces the container.
 */
export function containerHardening(limits: ContainerLimits) {
  return {
    readOnly: true,
    tmpfs: { ...CONTAINER_TMPFS },
    capabilities: { drops: ["ALL"] },
    securityOpts: ["no-new-privileges"],
    ulimits: [{ name: "nproc", soft: CONTAINER_NPROC, hard: CONTAINER_NPROC }],
    memory: limits.memoryMb ?? 0,
    memorySwap: limits.memoryMb ?? 0,
    ...(limits.cpus === undefined ? {} : { cpus: limits.cpus }),
  };
}

/** The label whose value changes, and so replaces the container, when its hardening does. */
export const HARDENING_LABEL = "touchdeploy.hardening";

export interface ContainerSpec {
  appName: string;
  hostName: string;
  host: { root: string; port: number; bindAddress: string };
  release: Pick<ReleaseConfig, "appDir" | "reloadFile" | "health" | "stateDirs" | "limits">;
  /** The image id (not its name: the state holds the id, pulumi-docker#325). */
  image: pulumi.Input<string>;
  /** The dependency fingerprint the image is built for, or `unmanaged`. */
  fingerprint: pulumi.Input<string>;
  /** `UID:GID` the container runs as (what the host's `setup` makes the app's files readable by). */
  user: pulumi.Input<string>;
}

/**
 * The container's environment: the runtime image's contract variables, sorted. The health path
 * is the release config's: the runtime checks a new generation there before it retires the old
 * one, so it must be the path the host script's health check polls (a change replaces the
 * container, as envs are ForceNew).
 */
export function containerEnvs(
  release: Pick<ReleaseConfig, "appDir" | "reloadFile" | "health">,
  fingerprint: string,
): string[] {
  return [
    `${ENV.appSubdir}=${release.appDir}`,
    `${ENV.fingerprint}=${fingerprint}`,
    `${ENV.healthPath}=${release.health.path}`,
    `${ENV.reloadFile}=${release.reloadFile}`,
  ].sort();
}

/** The container's healthcheck: the health path answering at all (any revision). */
export function containerHealthcheck(healthPath: string) {
  return {
    tests: [
      "CMD",
      "python3",
      "-c",
      "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)",
      `http://127.0.0.1:${CONTAINER_PORT}${healthPath}`,
    ],
    interval: "10s",
    timeout: "5s",
    startPeriod: "30s",
    retries: 3,
  };
}

/** 16 hex digits of sha256 over the JSON of a value. */
export function shortHash(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 16);
}

/** The label whose value changes, and so replaces the container, when its healthcheck does. */
export const HEALTHCHECK_LABEL = "touchdeploy.healthcheck";

/**
 * The container's mounts: the whole app root read-only (the code; never a release directory),
 * and each state directory `<root>/state/<name>` read-write at `/srv/state/<name>`.
 */
export function containerVolumes(root: string, stateDirs: readonly string[]) {
  const base = root.replace(/(.)\/+$/, "$1");
  return [
    { hostPath: root, containerPath: CONTAINER_APP_ROOT, readOnly: true },
    ...stateDirs.map((dir) => ({
      hostPath: `${base}/${STATE_DIR}/${dir}`,
      containerPath: `${CONTAINER_STATE_ROOT}/${dir}`,
      readOnly: false,
    })),
  ];
}

export function containerArgs(spec: ContainerSpec): docker.ContainerArgs {
  const { host, release } = spec;
  const healthcheck = containerHealthcheck(release.health.path);
  const hardening = containerHardening(release.limits);
  const envs =
    typeof spec.fingerprint === "string"
      ? containerEnvs(release, spec.fingerprint)
      : pulumi.output(spec.fingerprint).apply((fp) => containerEnvs(release, fp));
  return {
    name: `${spec.appName}-${spec.hostName}`,
    image: spec.image,
    user: spec.user,
    envs,
    volumes: containerVolumes(host.root, release.stateDirs),
    ports: [
      { internal: CONTAINER_PORT, external: host.port, ip: host.bindAddress, protocol: "tcp" },
    ],
    restart: "unless-stopped",
    healthcheck,
    ...hardening,
    labels: [
      { label: "touchdeploy.app", value: spec.appName },
      { label: HARDENING_LABEL, value: shortHash(hardening) },
      { label: HEALTHCHECK_LABEL, value: shortHash(healthcheck) },
      { label: "touchdeploy.host", value: spec.hostName },
      { label: "touchdeploy.root", value: host.root },
    ],
    // Set explicitly: left to the daemon it shows up as a perpetual diff (pulumi-docker#1272).
    networkMode: "bridge",
    logDriver: "local",
    mustRun: true,
    // Do not wait for "healthy": the first release comes after the container.
    wait: false,
    destroyGraceSeconds: 30,
  };
}
