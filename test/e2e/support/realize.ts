/**
 * Realizes what the Pulumi program declares (as recorded by test/support/pulumiProgram.ts) on
 * the real engine, the way the providers would: a RemoteImage build becomes `docker build` with
 * the declared context and args, a Container becomes a Docker Engine API create with exactly the
 * declared inputs, a local Command runs its `create` under `/bin/sh -c` with its `stdin`, a
 * remote Command runs it over SSH with the declared connection. A second `apply` with a new
 * declaration behaves like `pulumi up`: resources whose inputs did not change are left alone.
 *
 * The container translation refuses any declared input it does not know, so the realization
 * can never silently drop part of what the program declares.
 */
import type Docker from "dockerode";
import * as fs from "node:fs";
import * as path from "node:path";
import {
  CONTAINER,
  IMAGE,
  LOCAL_CMD,
  mockImageId,
  plain,
  PROJECT_DIR,
  ProgramRun,
  Registration,
  REMOTE_CMD,
} from "../../support/pulumiProgram";
import { ensureDocker, followProgress } from "./docker";
import { run, RunResult } from "./process";

/** "10s", "1m30s", "500ms" → nanoseconds (Docker's unit for healthcheck durations). */
export function durationNs(value: string): number {
  const units: Record<string, number> = { h: 3600e9, m: 60e9, s: 1e9, ms: 1e6 };
  let total = 0;
  let rest = value;
  for (;;) {
    const m = /^(\d+)(ms|h|m|s)/.exec(rest);
    if (!m) break;
    total += Number(m[1]) * units[m[2]];
    rest = rest.slice(m[0].length);
  }
  if (rest !== "" || value === "") throw new Error(`unsupported duration ${JSON.stringify(value)}`);
  return total;
}

interface DeclaredContainer {
  name: string;
  image: string;
  envs?: string[];
  volumes?: { hostPath: string; containerPath: string; readOnly?: boolean }[];
  ports?: { internal: number; external: number; ip: string; protocol: string }[];
  restart?: string;
  healthcheck?: {
    tests: string[];
    interval?: string;
    timeout?: string;
    startPeriod?: string;
    retries?: number;
  };
  labels?: { label: string; value: string }[];
  networkMode?: string;
  logDriver?: string;
  logOpts?: Record<string, string>;
  /** Provider behaviour, not container settings. */
  mustRun?: boolean;
  wait?: boolean;
  destroyGraceSeconds?: number;
}

const KNOWN_CONTAINER_INPUTS = new Set([
  "name",
  "image",
  "envs",
  "volumes",
  "ports",
  "restart",
  "healthcheck",
  "labels",
  "networkMode",
  "logDriver",
  "logOpts",
  "mustRun",
  "wait",
  "destroyGraceSeconds",
]);

/**
 * The Engine API create options for a declared docker.Container, with its image reference
 * replaced by the id of the image that was really built. Throws on undeclared-by-us inputs.
 */
export function containerCreateOptions(
  declared: Record<string, unknown>,
  imageId: string,
): Docker.ContainerCreateOptions {
  const unknown = Object.keys(declared).filter((k) => !KNOWN_CONTAINER_INPUTS.has(k));
  if (unknown.length > 0) {
    throw new Error(`the realizer does not know the container inputs: ${unknown.join(", ")}`);
  }
  const c = declared as unknown as DeclaredContainer;
  const hc = c.healthcheck;
  return {
    name: c.name,
    Image: imageId,
    Env: c.envs ?? [],
    Labels: Object.fromEntries((c.labels ?? []).map((l) => [l.label, l.value])),
    ExposedPorts: Object.fromEntries(
      (c.ports ?? []).map((p) => [`${p.internal}/${p.protocol}`, {}]),
    ),
    Healthcheck: hc
      ? {
          Test: hc.tests,
          Interval: hc.interval ? durationNs(hc.interval) : undefined,
          Timeout: hc.timeout ? durationNs(hc.timeout) : undefined,
          StartPeriod: hc.startPeriod ? durationNs(hc.startPeriod) : undefined,
          Retries: hc.retries,
        }
      : undefined,
    HostConfig: {
      Binds: (c.volumes ?? []).map(
        (v) => `${v.hostPath}:${v.containerPath}${v.readOnly ? ":ro" : ""}`,
      ),
      PortBindings: Object.fromEntries(
        (c.ports ?? []).map((p) => [
          `${p.internal}/${p.protocol}`,
          [{ HostIp: p.ip, HostPort: String(p.external) }],
        ]),
      ),
      RestartPolicy: c.restart ? { Name: c.restart } : undefined,
      NetworkMode: c.networkMode,
      LogConfig: c.logDriver ? { Type: c.logDriver, Config: c.logOpts ?? {} } : undefined,
    },
  };
}

/** How to run a declared remote command's `create` over SSH (the sshd helper provides it). */
export type RemoteRunner = (
  connection: { host: string; port: number; user: string; hostKey?: string },
  command: string,
  stdin: string,
) => Promise<RunResult>;

/** A declared command that exited non-zero (like a failed `pulumi up`). */
export class CommandFailedError extends Error {
  constructor(
    readonly resource: string,
    readonly result: RunResult,
  ) {
    super(`${resource} failed (exit ${String(result.code)})\n${result.stdout}\n${result.stderr}`);
  }
}

/** What one `apply` did, in order: `role name` per action. */
export interface ApplyReport {
  actions: string[];
  /** Output of each command run, by resource name. */
  commandOutput: Map<string, RunResult>;
}

/** The real things created so far, carried from one `apply` to the next. */
export interface RealizedState {
  declared: Map<string, Registration>;
  imageIds: Map<string, string>;
  containerIds: Map<string, string>;
}

export function emptyState(): RealizedState {
  return { declared: new Map(), imageIds: new Map(), containerIds: new Map() };
}

function key(r: Registration): string {
  return `${r.type} ${r.name}`;
}

function unchanged(state: RealizedState, r: Registration): boolean {
  const before = state.declared.get(key(r));
  return (
    before !== undefined && JSON.stringify(plain(before.inputs)) === JSON.stringify(plain(r.inputs))
  );
}

/** Order of realization per host, as the declared dependencies require it. */
const ROLE_ORDER = ["setup", "image", "fetch", "container", "release"];

/**
 * Realizes a declaration the way `pulumi up` would: per host, in dependency order, creating
 * what is new, replacing what changed (create-before-delete for commands, delete-before-replace
 * for the container), leaving alone what is unchanged. Throws if a command fails (with its
 * output), like a failed `pulumi up`.
 */
export async function apply(
  declaration: ProgramRun,
  state: RealizedState,
  opts: {
    remote?: RemoteRunner;
    /** Like `pulumi up --target`: only these resources (by name) are realized. */
    targets?: string[];
  } = {},
): Promise<ApplyReport> {
  const docker = await ensureDocker();
  const report: ApplyReport = { actions: [], commandOutput: new Map() };
  const roleOf = (r: Registration) => ROLE_ORDER.find((role) => r.name.endsWith(`-${role}`));
  const resources = declaration.resources
    .filter((r) => [CONTAINER, IMAGE, LOCAL_CMD, REMOTE_CMD].includes(r.type))
    .sort((a, b) => ROLE_ORDER.indexOf(roleOf(a) ?? "") - ROLE_ORDER.indexOf(roleOf(b) ?? ""));
  // The provider outputs the program saw under mocks, to map references to real values.
  const mockImageIdOf = new Map<string, string>();

  for (const r of resources) {
    const inputs = plain<Record<string, unknown>>(r.inputs);
    if (opts.targets && !opts.targets.includes(r.name)) {
      if (r.type === IMAGE) {
        // Not targeted: what exists keeps standing for the references to it.
        mockImageIdOf.set(mockImageId(String(inputs.name)), state.imageIds.get(r.name) ?? "");
      }
      continue;
    }
    const same = unchanged(state, r);
    if (r.type === IMAGE) {
      const ref = String(inputs.name);
      const mockId = mockImageId(ref);
      if (!same || !state.imageIds.has(r.name)) {
        const build = inputs.build as
          { context: string; dockerfile: string; buildArgs: Record<string, string> } | undefined;
        if (build) {
          const contextDir = path.join(PROJECT_DIR, build.context);
          const files = fs
            .readdirSync(contextDir, { recursive: true, encoding: "utf8" })
            .filter((f) => fs.statSync(path.join(contextDir, f)).isFile());
          const stream = await docker.buildImage(
            { context: contextDir, src: files },
            // forcerm: a failed build leaves no intermediate container behind.
            { t: ref, dockerfile: build.dockerfile, buildargs: build.buildArgs, forcerm: true },
          );
          await followProgress(docker, stream);
        }
        state.imageIds.set(r.name, (await docker.getImage(ref).inspect()).Id);
        report.actions.push(`${same ? "create" : "build"} ${r.name}`);
      }
      mockImageIdOf.set(mockId, state.imageIds.get(r.name) ?? "");
    } else if (r.type === CONTAINER) {
      if (!same || !state.containerIds.has(r.name)) {
        const imageId = mockImageIdOf.get(String(inputs.image));
        if (!imageId)
          throw new Error(`container ${r.name}: image ${String(inputs.image)} was not realized`);
        const old = state.containerIds.get(r.name);
        if (old) {
          // deleteBeforeReplace: the name and the host port are fixed.
          await docker.getContainer(old).remove({ force: true });
        }
        const container = await docker.createContainer(containerCreateOptions(inputs, imageId));
        await container.start();
        state.containerIds.set(r.name, container.id);
        report.actions.push(`${old ? "replace" : "create"} ${r.name}`);
      }
    } else {
      // A command runs on create, and again when replaced (triggers) or updated (create/stdin).
      if (same) continue;
      const create = String(inputs.create);
      const stdin = typeof inputs.stdin === "string" ? inputs.stdin : "";
      let result: RunResult;
      if (r.type === LOCAL_CMD) {
        // @pulumi/command's default interpreter for local commands.
        result = await run("/bin/sh", ["-c", create], {
          input: stdin,
          check: false,
          timeoutMs: 300_000,
        });
      } else {
        if (!opts.remote)
          throw new Error(`${r.name} is a remote command and no SSH runner was given`);
        const connection = inputs.connection as {
          host: string;
          port: number;
          user: string;
          hostKey?: string;
        };
        result = await opts.remote(connection, create, stdin);
      }
      report.commandOutput.set(r.name, result);
      report.actions.push(`run ${r.name}`);
      if (result.code !== 0) {
        throw new CommandFailedError(r.name, result);
      }
    }
    state.declared.set(key(r), r);
  }
  return report;
}

/** Removes the containers an apply created. */
export async function destroy(state: RealizedState): Promise<void> {
  const docker = await ensureDocker();
  for (const id of state.containerIds.values()) {
    await docker
      .getContainer(id)
      .remove({ force: true })
      .catch(() => undefined);
  }
}
