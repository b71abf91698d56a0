/**
 * How the providers touchdeploy uses decide between "no change", "update" and "replace", and
 * what their state holds after a create: small models of their Diff and Read, read from their
 * source at the versions package-lock.json pins. Pure functions, no Docker and no processes:
 * the engine model (engineModel.ts) calls them, the realizer (test/harness/realize.ts) adds
 * the real create/update/delete.
 *
 * Sources (cited per rule below):
 * - pulumi-command 1.2.1 (`git show v1.2.1:provider/...` in pulumi/pulumi-command), served by
 *   pulumi-go-provider v1.3.0 (its provider/go.mod).
 * - pulumi-docker 5.x bridges kreuzwerker/terraform-provider-docker: v5.1.0 and the newest
 *   pulumi-docker commit available here (237b7899, after v5.1.0) pin its submodule `upstream` at
 *   v4.5.0 (5074970c). resource_docker_container.go and resource_docker_container_funcs.go are
 *   byte-identical from v4.5.0 to terraform-provider-docker 83c00e0b (the newest available), so
 *   whatever 5.2.0 pins in that range has these rules. The bridge is
 *   pulumi-terraform-bridge v3.133.0 (pulumi-docker v5.1.0's provider/go.mod).
 */
import { dockerCpusText } from "../../components/containerLimits";
import { plain } from "./pulumiProgram";

/** A value the engine does not know yet (an output of a resource being replaced). */
export class Unknown {
  toJSON(): string {
    return "<unknown>";
  }
}
export const UNKNOWN = new Unknown();

export type DiffKind =
  "add" | "delete" | "update" | "add-replace" | "delete-replace" | "update-replace";

/** What a provider's Diff answers (plugin.DiffResult). */
export interface DiffResult {
  /** Property paths (`triggers[1]`, `healthcheck[0].interval`) and how each changes. */
  detailed: Record<string, DiffKind>;
  /** Top-level keys that changed. */
  changedKeys: string[];
  /** Top-level keys whose change forces a replacement. */
  replaceKeys: string[];
  /** The provider asks for delete-before-replace (none of ours ever does). */
  deleteBeforeReplace: boolean;
}

/** The state the engine keeps of a custom resource, as far as the diffs need it. */
export interface ModelState {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
}

/** A provider's diff rule for one resource type. */
export type DiffRule = (
  old: ModelState,
  news: Record<string, unknown>,
  ignoreChanges: readonly string[],
) => DiffResult;

// ---------------------------------------------------------------------------------------------
// Property paths and structural diffs (the engine's resource.PropertyPath and ObjectDiff)

/** One segment of a property path: a key, an index, or `*`. */
export type PathSegment = string | number;

/** Parses `a.b[0]["c.d"][*]` like the engine's `resource.ParsePropertyPath`. */
export function parsePath(path: string): PathSegment[] {
  const out: PathSegment[] = [];
  let i = 0;
  let key = "";
  const flush = (): void => {
    if (key !== "") out.push(key);
    key = "";
  };
  while (i < path.length) {
    const c = path[i];
    if (c === ".") {
      flush();
      i++;
    } else if (c === "[") {
      flush();
      const end = path.indexOf("]", i);
      if (end < 0) throw new Error(`bad property path ${JSON.stringify(path)}`);
      const inner = path.slice(i + 1, end);
      if (inner === "*") out.push("*");
      else if (/^\d+$/.test(inner)) out.push(Number(inner));
      else if (/^".*"$/.test(inner)) out.push(JSON.parse(inner) as string);
      else throw new Error(`bad property path ${JSON.stringify(path)}`);
      i = end + 1;
    } else {
      key += c;
      i++;
    }
  }
  flush();
  return out;
}

function formatPath(segments: readonly PathSegment[]): string {
  return segments
    .map((s, i) => {
      if (typeof s === "number") return `[${s}]`;
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(s)) return `[${JSON.stringify(s)}]`;
      return i === 0 ? s : `.${s}`;
    })
    .join("");
}

/**
 * `pattern` contains `path` (pulumi v3.248.0 sdk/go/common/resource/properties_path.go
 * `PropertyPath.Contains`): the path is at least as long and matches segment by segment, `*`
 * matching any key or index. `triggers[*]` contains `triggers[1]` but not `triggers`.
 */
export function pathContains(pattern: readonly PathSegment[], path: readonly PathSegment[]) {
  if (path.length < pattern.length) return false;
  return pattern.every((p, i) => p === "*" || p === path[i]);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Unknown);
}

/**
 * The detailed diff of two property maps (plugin.NewDetailedDiffFromObjectDiff): objects and
 * arrays are compared element by element, anything else (and an unknown) as a whole value.
 */
export function detailedDiff(
  olds: Record<string, unknown>,
  news: Record<string, unknown>,
): Record<string, DiffKind> {
  const out: Record<string, DiffKind> = {};
  const walk = (a: unknown, b: unknown, at: PathSegment[]): void => {
    if (b instanceof Unknown) {
      out[formatPath(at)] = "update";
    } else if (Array.isArray(a) && Array.isArray(b)) {
      for (let i = 0; i < Math.max(a.length, b.length); i++) {
        if (i >= a.length) out[formatPath([...at, i])] = "add";
        else if (i >= b.length) out[formatPath([...at, i])] = "delete";
        else walk(a[i], b[i], [...at, i]);
      }
    } else if (isObject(a) && isObject(b)) {
      for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
        if (!(k in b) || b[k] === undefined) {
          if (a[k] !== undefined) out[formatPath([...at, k])] = "delete";
        } else if (!(k in a) || a[k] === undefined) out[formatPath([...at, k])] = "add";
        else walk(a[k], b[k], [...at, k]);
      }
    } else if (JSON.stringify(a) !== JSON.stringify(b)) {
      out[formatPath(at)] = "update";
    }
  };
  walk(plain(olds), withUnknowns(news), []);
  return out;
}

/** `plain` that keeps UNKNOWN markers where they are. */
function withUnknowns(value: unknown): unknown {
  if (value instanceof Unknown) return value;
  if (Array.isArray(value)) return value.map(withUnknowns);
  if (isObject(value)) {
    const p = plain<Record<string, unknown>>(
      Object.fromEntries(Object.entries(value).filter(([, v]) => !(v instanceof Unknown))),
    );
    for (const [k, v] of Object.entries(value)) {
      p[k] = v instanceof Unknown ? v : withUnknowns(p[k]);
    }
    return p;
  }
  return plain(value);
}

/** The top-level key of a path string. */
function topKey(path: string): string {
  return String(parsePath(path)[0]);
}

export function asReplace(kind: DiffKind): DiffKind {
  return kind.endsWith("-replace") ? kind : (`${kind}-replace` as DiffKind);
}

function result(detailed: Record<string, DiffKind>): DiffResult {
  const paths = Object.keys(detailed);
  return {
    detailed,
    changedKeys: [...new Set(paths.map(topKey))].sort(),
    replaceKeys: [
      ...new Set(paths.filter((p) => detailed[p].endsWith("-replace")).map(topKey)),
    ].sort(),
    deleteBeforeReplace: false,
  };
}

/**
 * `ignoreChanges`: each ignored path takes its old value (pulumi v3.248.0
 * pkg/resource/deploy/step_generator.go `processIgnoreChanges`; pulumi-go-provider v1.3.0
 * infer/resource.go `diff` does the same with the state before diffing).
 */
export function applyIgnoreChanges(
  news: Record<string, unknown>,
  olds: Record<string, unknown>,
  ignoreChanges: readonly string[],
): Record<string, unknown> {
  if (ignoreChanges.length === 0) return news;
  const out = structuredCloneWithUnknowns(news) as Record<string, unknown>;
  for (const p of ignoreChanges) {
    const segs = parsePath(p);
    let from: unknown = olds;
    let to: unknown = out;
    for (let i = 0; i < segs.length - 1; i++) {
      from = (from as Record<string | number, unknown> | undefined)?.[segs[i]];
      to = (to as Record<string | number, unknown> | undefined)?.[segs[i]];
    }
    const last = segs[segs.length - 1];
    if (to && typeof to === "object" && from && typeof from === "object") {
      const old = (from as Record<string | number, unknown>)[last];
      if (old === undefined) delete (to as Record<string | number, unknown>)[last];
      else (to as Record<string | number, unknown>)[last] = old;
    }
  }
  return out;
}

function structuredCloneWithUnknowns(value: unknown): unknown {
  if (value instanceof Unknown) return value;
  if (Array.isArray(value)) return value.map(structuredCloneWithUnknowns);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, structuredCloneWithUnknowns(v)]),
    );
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// pulumi-command 1.2.1: command:local:Command and command:remote:Command

/**
 * Inputs whose change the provider itself turns into a replacement: the schema's
 * `replaceOnChanges` fields (provider/pkg/provider/common/inputs.go `ResourceInputs`: only
 * `Triggers` carries `provider:"replaceOnChanges"`). pulumi-go-provider v1.3.0 infer/resource.go
 * `(*derivedResourceController).Diff` applies it per detailed-diff key — so to a change of the
 * whole `triggers` key (added, removed, or unknown), not to `triggers[1]`. The element changes
 * are replaced by the engine instead: the generated SDK adds the resource option
 * `replaceOnChanges: ["triggers[*]"]` (node_modules/@pulumi/command/local/command.js, the
 * recorder captures it) and the engine applies it (`applyReplaceOnChanges`).
 */
const COMMAND_SCHEMA_REPLACE_ON_CHANGES = new Set(["triggers"]);

/**
 * A command's diff (pulumi-go-provider v1.3.0 infer/resource.go `diff`): the old *inputs* (the
 * engine sends them, `SupportsOldInputs`) against the new ones, ignoring `__`-prefixed keys;
 * every change is an update (the Command implements `CustomUpdate`, commandController.go)
 * except a change of a schema replaceOnChanges key.
 */
export const commandDiff: DiffRule = (old, news, ignoreChanges) => {
  const strip = (m: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(m).filter(([k]) => !k.startsWith("__") && k !== "version"));
  const detailed = detailedDiff(
    strip(old.inputs),
    strip(applyIgnoreChanges(news, old.inputs, ignoreChanges)),
  );
  for (const p of Object.keys(detailed)) {
    if (COMMAND_SCHEMA_REPLACE_ON_CHANGES.has(p)) detailed[p] = asReplace(detailed[p]);
  }
  return result(detailed);
};

// ---------------------------------------------------------------------------------------------
// pulumi-docker (terraform-provider-docker v4.5.0): docker:index/container:Container

/** How one container input behaves, from the `docker_container` schema. */
interface FieldRule {
  /** ForceNew: a change replaces the container. */
  forceNew: boolean;
  /** Optional+Computed: leaving it out keeps whatever the state holds (no diff). */
  computed?: boolean;
  /** The schema default (what "not set" means). */
  default?: unknown;
  /** How to compare: sets ignore order, defaults fill nested fields. */
  normalize?: (value: unknown) => unknown;
}

/** JSON with object keys sorted: `{hard, name, soft}` and `{name, soft, hard}` are one value. */
const stableJson = (v: unknown): string =>
  JSON.stringify(v, (_k, value: unknown) =>
    value && typeof value === "object" && !Array.isArray(value)
      ? Object.fromEntries(
          Object.keys(value)
            .sort()
            .map((k) => [k, (value as Record<string, unknown>)[k]]),
        )
      : value,
  );

/** A TypeSet: element order does not matter, nor the order of an element's fields. */
const bySortedJson = (v: unknown) =>
  Array.isArray(v) ? (v as unknown[]).map(stableJson).sort() : v;

/**
 * The `docker_container` fields touchdeploy declares (internal/provider/
 * resource_docker_container.go `resourceDockerContainer` schema at v4.5.0, Pulumi names).
 * ForceNew: name, image, user, env, volumes, ports, labels, network_mode, log_driver, log_opts.
 * Updatable (no ForceNew): restart, healthcheck, must_run, wait, destroy_grace_seconds — and
 * the provider's Update applies only restart/max_retry_count/resources and a must_run
 * false->true start (resource_docker_container_funcs.go `resourceDockerContainerUpdate`): a
 * changed healthcheck is an "update" that leaves the running container as it was.
 */
export const CONTAINER_FIELDS: Record<string, FieldRule> = {
  name: { forceNew: true },
  image: { forceNew: true },
  // ForceNew, and "" (not set) suppresses the diff (the schema's DiffSuppressFunc: "treat \"\"
  // as a no-op, which is Docker's default value"); Read stores Config.User.
  user: { forceNew: true, computed: true },
  envs: { forceNew: true, computed: true, normalize: bySortedJson },
  volumes: {
    forceNew: true,
    normalize: (v) =>
      bySortedJson(
        Array.isArray(v) ? v.map((e: Record<string, unknown>) => ({ readOnly: false, ...e })) : v,
      ),
  },
  ports: {
    forceNew: true,
    normalize: (v) =>
      Array.isArray(v)
        ? v.map((e: Record<string, unknown>) => ({ ip: "0.0.0.0", protocol: "tcp", ...e }))
        : v,
  },
  labels: { forceNew: true, computed: true, normalize: bySortedJson },
  networkMode: { forceNew: true, default: "bridge" },
  logDriver: { forceNew: true, computed: true },
  logOpts: { forceNew: true },
  restart: { forceNew: false, default: "no" },
  healthcheck: {
    forceNew: false,
    computed: true,
    normalize: (v) =>
      v && typeof v === "object" && !(v instanceof Unknown)
        ? {
            interval: "0s",
            timeout: "0s",
            startPeriod: "0s",
            startInterval: "0s",
            retries: 0,
            ...(v as Record<string, unknown>),
          }
        : v,
  },
  mustRun: { forceNew: false, default: true },
  wait: { forceNew: false, default: false },
  destroyGraceSeconds: { forceNew: false },
  // The hardening (issue 14), same schema. ForceNew: read_only, capabilities (and its add/drop),
  // security_opts (also Computed), ulimit, cpus. Not ForceNew: memory, memory_swap (Update's
  // ContainerUpdate applies them) and tmpfs (Update ignores it). pids_limit: no such field.
  readOnly: { forceNew: true, default: false },
  capabilities: {
    forceNew: true,
    normalize: (v) =>
      v && typeof v === "object" && !(v instanceof Unknown)
        ? {
            // Sets of strings: order does not matter, an empty set is no set.
            adds: [...(((v as Record<string, unknown>).adds as string[]) ?? [])].sort(),
            drops: [...(((v as Record<string, unknown>).drops as string[]) ?? [])].sort(),
          }
        : v,
  },
  securityOpts: { forceNew: true, computed: true, normalize: bySortedJson },
  ulimits: { forceNew: true, normalize: bySortedJson },
  cpus: { forceNew: true },
  memory: { forceNew: false, default: 0 },
  memorySwap: { forceNew: false, default: 0 },
  tmpfs: { forceNew: false, default: {} },
};

/**
 * A container's diff, as the bridge computes it (pulumi-terraform-bridge v3.133.0
 * pkg/tfbridge/provider.go `(*Provider).Diff`): the prior *state* (`olds`: the outputs, i.e.
 * what Read put there after the create, see {@link containerOutputs}) against the new inputs,
 * field by field per the schema above.
 */
export const containerDiff: DiffRule = (old, news, ignoreChanges) => {
  const inputs = applyIgnoreChanges(news, old.outputs, ignoreChanges);
  const unknownKeys = Object.keys(inputs).filter((k) => !(k in CONTAINER_FIELDS));
  if (unknownKeys.length > 0) {
    throw new Error(`the container model does not know the inputs: ${unknownKeys.join(", ")}`);
  }
  const detailed: Record<string, DiffKind> = {};
  for (const [key, rule] of Object.entries(CONTAINER_FIELDS)) {
    const next = inputs[key];
    if (next === undefined && rule.computed) continue;
    const norm = (v: unknown) => {
      const value = v === undefined ? rule.default : v;
      return rule.normalize ? rule.normalize(value) : value;
    };
    const a = norm(plain(old.outputs[key]));
    const b = next instanceof Unknown ? next : norm(withUnknowns(next));
    const sub = detailedDiff({ [key]: a }, { [key]: b });
    for (const [p, kind] of Object.entries(sub)) {
      detailed[p] = rule.forceNew ? asReplace(kind) : kind;
    }
  }
  return result(detailed);
};

/** The part of `docker inspect` (Engine API ContainerInspect) the provider's Read uses. */
export interface ContainerInspect {
  Id: string;
  Name: string;
  Image: string;
  State: { Running: boolean };
  Config: {
    Image: string;
    /** `user` as created (`UID:GID` here). */
    User?: string;
    Healthcheck?: {
      Test?: string[];
      Interval?: number;
      Timeout?: number;
      StartPeriod?: number;
      StartInterval?: number;
      Retries?: number;
    };
  };
  HostConfig: {
    RestartPolicy: { Name: string };
    LogConfig: { Type: string; Config: Record<string, string> };
    NetworkMode: string;
    ReadonlyRootfs?: boolean;
    Tmpfs?: Record<string, string> | null;
    CapAdd?: string[] | null;
    CapDrop?: string[] | null;
    SecurityOpt?: string[] | null;
    Ulimits?: { Name: string; Soft: number; Hard: number }[] | null;
    /** Bytes. */
    Memory?: number;
    /** Bytes, or -1 (unlimited swap) / 0. */
    MemorySwap?: number;
    NanoCpus?: number;
  };
  NetworkSettings: { Ports: Record<string, { HostIp: string; HostPort: string }[] | null> };
}

/** Go's time.Duration.String() for a whole number of nanoseconds (e.g. 90e9 -> "1m30s"). */
export function goDuration(ns: number): string {
  if (ns === 0) return "0s";
  if (ns < 1e9) {
    if (ns % 1e6 === 0) return `${ns / 1e6}ms`;
    if (ns % 1e3 === 0) return `${ns / 1e3}µs`;
    return `${ns}ns`;
  }
  const h = Math.floor(ns / 3600e9);
  const m = Math.floor((ns % 3600e9) / 60e9);
  const s = (ns % 60e9) / 1e9;
  const sec = `${Number.isInteger(s) ? s : s.toFixed(9).replace(/0+$/, "")}s`;
  if (h > 0) return `${h}h${m}m${sec}`;
  if (m > 0) return `${m}m${sec}`;
  return sec;
}

/**
 * The container's state after a create (the provider's Create ends with Read:
 * resource_docker_container_funcs.go `resourceDockerContainerRead`): the declared inputs,
 * overwritten by what Read takes from the engine — name (without the leading "/"), image (the
 * id when the declared one starts with `sha256:`), restart, healthcheck (durations printed the
 * Go way), log_driver, log_opts *as the daemon merged them* (only when declared), network_mode,
 * ports (only when declared and the container runs or must_run), must_run=false for a stopped
 * container. env and labels are not read back (the source says why).
 */
export function containerOutputs(
  declared: Record<string, unknown>,
  inspect: ContainerInspect,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...declared };
  out.name = inspect.Name.replace(/^\/+/, "");
  const image = declared.image;
  out.image =
    typeof image === "string" && image.startsWith("sha256:") ? inspect.Image : inspect.Config.Image;
  // resource_docker_container_funcs.go resourceDockerContainerRead: d.Set("user", Config.User).
  out.user = inspect.Config.User ?? "";
  out.restart = inspect.HostConfig.RestartPolicy.Name;
  const hc = inspect.Config.Healthcheck;
  if (hc) {
    out.healthcheck = {
      tests: hc.Test ?? [],
      interval: goDuration(hc.Interval ?? 0),
      timeout: goDuration(hc.Timeout ?? 0),
      startPeriod: goDuration(hc.StartPeriod ?? 0),
      startInterval: goDuration(hc.StartInterval ?? 0),
      retries: hc.Retries ?? 0,
    };
  }
  out.logDriver = inspect.HostConfig.LogConfig.Type;
  if (declared.logOpts !== undefined) out.logOpts = inspect.HostConfig.LogConfig.Config ?? {};
  out.networkMode = inspect.HostConfig.NetworkMode;
  const mustRun = declared.mustRun !== false;
  if (declared.ports !== undefined && (inspect.State.Running || mustRun)) {
    const ports: Record<string, unknown>[] = [];
    for (const key of Object.keys(inspect.NetworkSettings.Ports ?? {}).sort(byPortAndProtocol)) {
      const [internal, protocol] = key.split("/");
      for (const b of inspect.NetworkSettings.Ports[key] ?? []) {
        ports.push({
          internal: Number(internal),
          external: Number(b.HostPort),
          ip: b.HostIp,
          protocol,
        });
      }
    }
    out.ports = ports;
  }
  if (!inspect.State.Running && mustRun) out.mustRun = false;
  // The hardening (resourceDockerContainerRead at v4.5.0): read_only from ReadonlyRootfs;
  // security_opts and tmpfs as the daemon stored them; capabilities only when CapAdd or CapDrop
  // is not empty, as stored; ulimit only when declared; memory in MB (Memory/1024/1024);
  // memory_swap in MB when > 0, else as is; cpus only when NanoCPUs > 0, in
  // nanoInt64ToDecimalString's spelling (components/containerLimits.ts).
  const hc2 = inspect.HostConfig;
  out.readOnly = hc2.ReadonlyRootfs ?? false;
  out.securityOpts = hc2.SecurityOpt ?? [];
  out.tmpfs = hc2.Tmpfs ?? {};
  if ((hc2.CapAdd ?? []).length > 0 || (hc2.CapDrop ?? []).length > 0) {
    out.capabilities = { adds: hc2.CapAdd ?? [], drops: hc2.CapDrop ?? [] };
  }
  if (declared.ulimits !== undefined) {
    out.ulimits = (hc2.Ulimits ?? []).map((u) => ({ name: u.Name, soft: u.Soft, hard: u.Hard }));
  }
  const mib = 1024 * 1024;
  out.memory = Math.trunc((hc2.Memory ?? 0) / mib);
  const swap = hc2.MemorySwap ?? 0;
  out.memorySwap = swap > 0 ? Math.trunc(swap / mib) : swap;
  if ((hc2.NanoCpus ?? 0) > 0) out.cpus = dockerCpusText(BigInt(hc2.NanoCpus ?? 0));
  return out;
}

/** resource_docker_container_structures.go `byPortAndProtocol`: by port number, then protocol. */
function byPortAndProtocol(a: string, b: string): number {
  const [pa, qa] = a.split("/");
  const [pb, qb] = b.split("/");
  return Number(pa) - Number(pb) || qa.localeCompare(qb);
}

// ---------------------------------------------------------------------------------------------
// pulumi-docker (terraform-provider-docker v4.5.0): docker:index/remoteImage:RemoteImage

/**
 * `docker_image` (internal/provider/resource_docker_image.go `resourceDockerImage` at v4.5.0):
 * name, pull_triggers, triggers, platform and every field of `buildSchema` are ForceNew;
 * keep_locally and force_remove are updatable (Update only re-reads the image).
 */
const IMAGE_FIELDS: Record<string, FieldRule> = {
  name: { forceNew: true },
  build: { forceNew: true },
  triggers: { forceNew: true },
  pullTriggers: { forceNew: true },
  platform: { forceNew: true },
  keepLocally: { forceNew: false },
  forceRemove: { forceNew: false },
};

/** A RemoteImage's diff: state against new inputs (the bridge's Diff), per the table above. */
export const imageDiff: DiffRule = (old, news, ignoreChanges) => {
  const inputs = applyIgnoreChanges(news, old.outputs, ignoreChanges);
  const unknownKeys = Object.keys(inputs).filter((k) => !(k in IMAGE_FIELDS));
  if (unknownKeys.length > 0) {
    throw new Error(`the image model does not know the inputs: ${unknownKeys.join(", ")}`);
  }
  const detailed: Record<string, DiffKind> = {};
  for (const [key, rule] of Object.entries(IMAGE_FIELDS)) {
    const sub = detailedDiff(
      { [key]: plain(old.outputs[key]) },
      { [key]: inputs[key] instanceof Unknown ? inputs[key] : withUnknowns(inputs[key]) },
    );
    for (const [p, kind] of Object.entries(sub)) {
      detailed[p] = rule.forceNew ? asReplace(kind) : kind;
    }
  }
  return result(detailed);
};

/**
 * Providers' own resources (`pulumi:providers:*`): their config diff (DiffConfig) is not
 * modelled; the model refuses a changed provider config instead of guessing.
 */
export const providerConfigDiff: DiffRule = (old, news) => {
  const detailed = detailedDiff(old.inputs, news);
  if (Object.keys(detailed).length > 0) {
    throw new Error(
      `provider ${old.name}: its configuration changed (${Object.keys(detailed).join(", ")}); ` +
        "the engine model does not decide provider replacements",
    );
  }
  return result(detailed);
};

/** The diff rule for a resource type, or undefined when the model has none. */
export function diffRuleFor(type: string): DiffRule | undefined {
  if (type === "command:local:Command" || type === "command:remote:Command") return commandDiff;
  if (type === "docker:index/container:Container") return containerDiff;
  if (type === "docker:index/remoteImage:RemoteImage") return imageDiff;
  if (type.startsWith("pulumi:providers:")) return providerConfigDiff;
  return undefined;
}
