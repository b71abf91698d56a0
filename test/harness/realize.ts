/**
 * Realizes what the Pulumi program declares (as recorded by test/support/pulumiProgram.ts) on
 * real things — the Docker engine, a shell, SSH — the way `pulumi up` and `pulumi destroy`
 * would: the engine model (test/support/engineModel.ts) decides the steps and their order from
 * the declared dependencies and options and from the providers' diff rules
 * (test/support/providerModels.ts); this file performs each step as the provider would:
 *
 * - a RemoteImage build is `docker build` of the declared context with the declared args;
 * - a Container is an Engine API create with exactly the declared inputs, then start, and its
 *   state is what the provider's Read takes back from `docker inspect`; deleting it is a stop
 *   with `destroyGraceSeconds`, then a forced remove;
 * - a local Command runs `create`/`update`/`delete` under its interpreter with its stdin and
 *   environment; a remote Command runs it over SSH with the declared connection.
 *
 * Nothing here decides whether or when something runs. The container translation refuses any
 * declared input it does not know, so the realization can never silently drop part of what the
 * program declares.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import type Docker from "dockerode";
import {
  actionsOf,
  DeploymentError,
  destroy as destroyModel,
  emptySnapshot,
  ProviderOps,
  ProviderRegistry,
  ResourceState,
  Snapshot,
  Step,
  up,
} from "../support/engineModel";
import {
  CONTAINER,
  IMAGE,
  LOCAL_CMD,
  PROJECT_DIR,
  ProgramRun,
  REMOTE_CMD,
} from "../support/pulumiProgram";
import { ContainerInspect, containerOutputs } from "../support/providerModels";
import { ensureDocker, followProgress } from "./docker";
import { DeclaredHardening, HARDENING_INPUTS, hardeningHostConfig } from "./hardening";
import { run, RunResult } from "./process";

export { actionsOf, DeploymentError };
export type { Step };

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

interface DeclaredContainer extends DeclaredHardening {
  name: string;
  image: string;
  user?: string;
  envs?: string[];
  volumes?: { hostPath: string; containerPath: string; readOnly?: boolean }[];
  ports?: { internal: number; external: number; ip?: string; protocol?: string }[];
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
  "user",
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
  ...HARDENING_INPUTS,
]);

/**
 * The Engine API create options for a declared docker.Container (its image input already the
 * real image id). Throws on inputs this translation does not know. Defaults are the
 * `docker_container` schema's (ports: ip 0.0.0.0, tcp; network_mode bridge).
 */
export function containerCreateOptions(
  declared: Record<string, unknown>,
): Docker.ContainerCreateOptions {
  const unknown = Object.keys(declared).filter((k) => !KNOWN_CONTAINER_INPUTS.has(k));
  if (unknown.length > 0) {
    throw new Error(`the realizer does not know the container inputs: ${unknown.join(", ")}`);
  }
  const c = declared as unknown as DeclaredContainer;
  const hc = c.healthcheck;
  const ports = (c.ports ?? []).map((p) => ({
    ...p,
    ip: p.ip ?? "0.0.0.0",
    protocol: p.protocol ?? "tcp",
  }));
  return {
    name: c.name,
    Image: c.image,
    User: c.user,
    Env: c.envs ?? [],
    Labels: Object.fromEntries((c.labels ?? []).map((l) => [l.label, l.value])),
    ExposedPorts: Object.fromEntries(ports.map((p) => [`${p.internal}/${p.protocol}`, {}])),
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
        ports.map((p) => [
          `${p.internal}/${p.protocol}`,
          [{ HostIp: p.ip, HostPort: String(p.external) }],
        ]),
      ),
      RestartPolicy: { Name: c.restart ?? "no" },
      NetworkMode: c.networkMode ?? "bridge",
      LogConfig: c.logDriver ? { Type: c.logDriver, Config: c.logOpts ?? {} } : undefined,
      ...hardeningHostConfig(c),
    },
  };
}

/** How to run a declared remote command over SSH (the sshd helper provides it). */
export type RemoteRunner = (
  connection: { host: string; port: number; user: string; hostKey?: string },
  command: string,
  stdin: string,
) => Promise<RunResult>;

/** A declared command that exited non-zero (like a failed `pulumi up`). */
export class CommandFailedError extends Error {
  constructor(
    readonly resource: string,
    readonly phase: "create" | "update" | "delete",
    readonly result: RunResult,
  ) {
    super(
      `${resource} ${phase} failed (exit ${String(result.code)})\n${result.stdout}\n${result.stderr}`,
    );
  }
}

/** What one deployment did. */
export interface ApplyReport {
  /** Every step, in the order it ran (components and providers included). */
  steps: Step[];
  /** `op name` of the steps on custom resources other than providers, in order. */
  actions: string[];
  /** Output of each command run, by resource name (the last run when it ran twice). */
  commandOutput: Map<string, RunResult>;
}

/** The engine's state, carried from one `apply` to the next. */
export interface RealizedState {
  snapshot: Snapshot;
}

export function emptyState(): RealizedState {
  return { snapshot: emptySnapshot() };
}

/** The live state of the resource with this name, or undefined. */
export function stateOf(state: RealizedState, name: string): ResourceState | undefined {
  return state.snapshot.resources.find((r) => r.name === name && !r.delete);
}

interface CommandInputs {
  create?: string;
  update?: string;
  delete?: string;
  stdin?: string;
  environment?: Record<string, string>;
  interpreter?: string[];
  dir?: string;
  addPreviousOutputInEnv?: boolean;
  connection?: { host: string; port: number; user: string; hostKey?: string };
}

/**
 * pulumi-command 1.2.1: local commands run `interpreter` (default `/bin/sh -c`) in `dir` (the
 * provider's working directory, which is the project's, by default) with `environment` added,
 * PULUMI_COMMAND_STDOUT/STDERR from the previous run unless addPreviousOutputInEnv is false,
 * and `stdin` (local/commandOutputs.go `run`). Create runs `create`; Update runs `update`, else
 * `create` (local/commandController.go `Update`); Delete runs the *stored* `delete` with the
 * stored inputs — stdin included (`Delete` → run(props.Delete, props.BaseInputs)). Remote
 * commands do the same over SSH (remote/commandController.go, remote/commandOutputs.go).
 */
function commandOps(remote: RemoteRunner | undefined, output: Map<string, RunResult>): ProviderOps {
  const exec = async (
    name: string,
    type: string,
    phase: "create" | "update" | "delete",
    command: string,
    inputs: CommandInputs,
    previous: Record<string, unknown>,
  ): Promise<RunResult> => {
    let result: RunResult;
    if (type === LOCAL_CMD) {
      const env: NodeJS.ProcessEnv = { ...process.env, ...(inputs.environment ?? {}) };
      if (inputs.addPreviousOutputInEnv !== false) {
        const { stdout, stderr } = previous as { stdout?: string; stderr?: string };
        if (stdout) env.PULUMI_COMMAND_STDOUT = stdout;
        if (stderr) env.PULUMI_COMMAND_STDERR = stderr;
      }
      const [program, ...args] = inputs.interpreter?.length
        ? inputs.interpreter
        : ["/bin/sh", "-c"];
      result = await run(program, [...args, command], {
        input: inputs.stdin ?? "",
        env,
        cwd: inputs.dir ?? PROJECT_DIR,
        check: false,
        timeoutMs: 300_000,
      });
    } else {
      if (!remote) throw new Error(`${name} is a remote command and no SSH runner was given`);
      if (inputs.environment && Object.keys(inputs.environment).length > 0) {
        throw new Error(`${name}: the SSH runner does not pass \`environment\``);
      }
      if (!inputs.connection) throw new Error(`${name} has no connection`);
      result = await remote(inputs.connection, command, inputs.stdin ?? "");
    }
    output.set(name, result);
    if (result.code !== 0) throw new CommandFailedError(name, phase, result);
    return result;
  };
  const outputsOf = (inputs: Record<string, unknown>, r?: RunResult) => ({
    ...inputs,
    stdout: (r?.stdout ?? "").replace(/\n$/, ""),
    stderr: (r?.stderr ?? "").replace(/\n$/, ""),
  });
  return {
    async create({ name, type, inputs }) {
      const c = inputs as CommandInputs;
      const r = c.create ? await exec(name, type, "create", c.create, c, {}) : undefined;
      return { id: `${name}${randomBytes(4).toString("hex")}`, outputs: outputsOf(inputs, r) };
    },
    async update(old, inputs) {
      const c = inputs as CommandInputs;
      const command = c.update ?? c.create;
      if (!command) return { outputs: { ...old.outputs, ...inputs } };
      const r = await exec(old.name, old.type, "update", command, c, old.outputs);
      return { outputs: outputsOf(inputs, r) };
    },
    async delete(old) {
      const c = old.inputs as CommandInputs;
      if (c.delete) await exec(old.name, old.type, "delete", c.delete, c, old.outputs);
    },
  };
}

function isNotFound(err: unknown): boolean {
  return (err as { statusCode?: number }).statusCode === 404;
}

/**
 * terraform-provider-docker v4.5.0 `docker_container` (resource_docker_container_funcs.go):
 * Create creates and starts the container (`start` defaults to true), waits for "healthy" only
 * with `wait`, then Read fills the state ({@link containerOutputs}). Update applies restart
 * policy changes (`ContainerUpdate`) and a must_run false->true start, nothing else. Delete stops
 * with `destroy_grace_seconds` (0 when unset), then removes it forced, with its anonymous
 * volumes (`remove_volumes` defaults to true).
 */
function containerOps(docker: Docker): ProviderOps {
  return {
    async create({ inputs }) {
      const container = await docker.createContainer(containerCreateOptions(inputs));
      await container.start();
      if (inputs.wait === true) {
        throw new Error("the realizer does not model `wait: true` (waiting for healthy)");
      }
      const inspect = (await container.inspect()) as unknown as ContainerInspect;
      return { id: inspect.Id, outputs: containerOutputs(inputs, inspect) };
    },
    async update(old, inputs, diff) {
      const container = docker.getContainer(old.id);
      if (diff.changedKeys.includes("restart")) {
        const restart = (inputs as { restart?: string }).restart ?? "no";
        await container.update({ RestartPolicy: { Name: restart } });
      }
      if (
        diff.changedKeys.includes("mustRun") &&
        old.outputs.mustRun === false &&
        inputs.mustRun !== false
      ) {
        await container.start();
      }
      return { outputs: { ...old.outputs, ...inputs } };
    },
    async delete(old) {
      const container = docker.getContainer(old.id);
      const grace = Number(old.inputs.destroyGraceSeconds ?? 0);
      try {
        await container.stop({ t: grace });
      } catch (err) {
        // 304: already stopped; 404: already gone (the provider ignores "No such container").
        const code = (err as { statusCode?: number }).statusCode;
        if (code !== 304 && code !== 404) throw err;
      }
      try {
        await container.remove({ force: true, v: true });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
  };
}

/**
 * terraform-provider-docker v4.5.0 `docker_image` (resource_docker_image_funcs.go): Create
 * builds when `build` is set, then finds the image by name (pulling it when it is not local —
 * there is no registry here, so a missing image fails); the state's image_id is the image's id,
 * the resource id is id+name. Delete removes the image unless `keep_locally`.
 */
function imageOps(docker: Docker): ProviderOps {
  const read = async (inputs: Record<string, unknown>) => {
    const name = String(inputs.name);
    let info: Docker.ImageInspectInfo;
    try {
      info = await docker.getImage(name).inspect();
    } catch (err) {
      if (isNotFound(err)) {
        throw new Error(
          `image ${name} is not on this daemon and there is no registry to pull it from`,
        );
      }
      throw err;
    }
    return {
      id: `${info.Id}${name}`,
      outputs: { ...inputs, imageId: info.Id, repoDigest: info.RepoDigests?.[0] ?? "" },
    };
  };
  return {
    async create({ inputs }) {
      const build = inputs.build as
        { context: string; dockerfile?: string; buildArgs?: Record<string, string> } | undefined;
      if (build) {
        const contextDir = path.resolve(PROJECT_DIR, build.context);
        const files = fs
          .readdirSync(contextDir, { recursive: true, encoding: "utf8" })
          .filter((f) => fs.statSync(path.join(contextDir, f)).isFile());
        const stream = await docker.buildImage(
          { context: contextDir, src: files },
          {
            t: String(inputs.name),
            dockerfile: build.dockerfile ?? "Dockerfile",
            buildargs: build.buildArgs ?? {},
            // forcerm: a failed build leaves no intermediate container behind.
            forcerm: true,
          },
        );
        await followProgress(docker, stream);
      }
      return read(inputs);
    },
    async update(_old, inputs) {
      return { outputs: (await read(inputs)).outputs };
    },
    async delete(old) {
      if (old.inputs.keepLocally === true) return;
      try {
        await docker
          .getImage(String(old.inputs.name))
          .remove({ force: old.inputs.forceRemove === true });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },
  };
}

async function providers(
  remote: RemoteRunner | undefined,
  output: Map<string, RunResult>,
): Promise<ProviderRegistry> {
  const docker = await ensureDocker();
  const command = commandOps(remote, output);
  const container = containerOps(docker);
  const image = imageOps(docker);
  return (type) => {
    switch (type) {
      case LOCAL_CMD:
      case REMOTE_CMD:
        return command;
      case CONTAINER:
        return container;
      case IMAGE:
        return image;
      default:
        return undefined;
    }
  };
}

/**
 * `pulumi up` of a recorded declaration over `state` (updated in place). Throws a
 * DeploymentError (its `cause` a CommandFailedError when a command failed) like a failed
 * `pulumi up`; what ran before stays in the state.
 */
export async function apply(
  declaration: ProgramRun,
  state: RealizedState,
  opts: {
    remote?: RemoteRunner;
    /** Like `pulumi up --target`: only these resources (by name) are operated on. */
    targets?: string[];
  } = {},
): Promise<ApplyReport> {
  const commandOutput = new Map<string, RunResult>();
  const steps = await up(declaration.resources, state.snapshot, {
    providers: await providers(opts.remote, commandOutput),
    targets: opts.targets,
  });
  return { steps, actions: actionsOf(steps), commandOutput };
}

/** `pulumi destroy`: deletes everything in `state`, in reverse dependency order. */
export async function destroy(
  state: RealizedState,
  opts: { remote?: RemoteRunner } = {},
): Promise<ApplyReport> {
  const commandOutput = new Map<string, RunResult>();
  const steps = await destroyModel(state.snapshot, {
    providers: await providers(opts.remote, commandOutput),
  });
  return { steps, actions: actionsOf(steps), commandOutput };
}
