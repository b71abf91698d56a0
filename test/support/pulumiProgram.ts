/**
 * Runs the Pulumi program (index.ts) under `pulumi.runtime.setMocks` and records exactly what it
 * declares: every resource with its type, name, parent, inputs (secrets still marked), explicit
 * dependencies and options, every invoke, and the stack outputs. Used by the unit tests and by
 * the end-to-end test that realizes the declared container and commands on a real engine.
 */
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "crypto";
import * as path from "path";

/** The marker Pulumi's wire format puts on a secret value. */
const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export const PROJECT_DIR = path.resolve(__dirname, "..", "..");

/** Type tokens of the resources the program declares. */
export const LOCAL_CMD = "command:local:Command";
export const REMOTE_CMD = "command:remote:Command";
export const CONTAINER = "docker:index/container:Container";
export const IMAGE = "docker:index/remoteImage:RemoteImage";

/**
 * An alias as the SDK sends it (`Alias` in the engine's protocol): an old URN, or the parts of
 * the old URN that differ (unset parts default to the resource's own, see the engine's
 * `collapseAliasToUrn`).
 */
export interface AliasSpec {
  urn?: string;
  name?: string;
  type?: string;
  /** The old parent's URN (the SDK fills in the resource's parent when the alias names none). */
  parentUrn?: string;
  /** The resource used to have no parent. */
  noParent?: boolean;
  project?: string;
  stack?: string;
}

/**
 * The resource options as the engine receives them in a RegisterResourceRequest: what decides
 * between create, update, replace (and in which order) and delete.
 */
export interface RecordedOptions {
  /** `undefined` when the program did not set it (the engine then asks the provider). */
  deleteBeforeReplace: boolean | undefined;
  /** `undefined` when not set (the engine keeps the old value's default, false). */
  protect: boolean | undefined;
  retainOnDelete: boolean | undefined;
  /** Property paths, e.g. `triggers[*]` (SDKs add their schema's replaceOnChanges here). */
  replaceOnChanges: string[];
  ignoreChanges: string[];
  aliases: AliasSpec[];
  /** URN of the resource whose deletion deletes this one, or "". */
  deletedWith: string;
  replaceWith: string[];
  /** The `replacementTrigger` value (secrets marked), or undefined when not set. */
  replacementTrigger: unknown;
  hideDiffs: string[];
  additionalSecretOutputs: string[];
  customTimeouts: { create: string; update: string; delete: string };
  /** An `import` id, or "". */
  importId: string;
}

/** One resource registration, as the engine would receive it. */
export interface Registration {
  type: string;
  name: string;
  urn: string;
  parentUrn: string;
  custom: boolean;
  /** Inputs with secrets still wrapped (see {@link isSecret}, {@link plain}). */
  inputs: Record<string, unknown>;
  /** URNs of explicit and implicit dependencies. */
  dependencies: string[];
  /** Per input property: the URNs of the resources its value came from. */
  propertyDependencies: Record<string, string[]>;
  /** Same as `options.deleteBeforeReplace === true`. */
  deleteBeforeReplace: boolean;
  /**
   * The `aliases` option, name and type of each old identity as the SDK sends them ("" when
   * unset); `options.aliases` has them in full (with the parent the SDK fills in).
   */
  aliases: { name?: string; type?: string; urn?: string }[];
  /** Every resource option the engine receives. */
  options: RecordedOptions;
  /** Provider reference (`urn::id`) for custom resources ("" for the default provider). */
  provider: string;
  /**
   * What the mocks answered: the id and the output properties. Outputs that are not echoed
   * inputs (ids, image ids, ...) stand in for values a real provider computes; the realizer
   * maps them to the real ones.
   */
  mock: { id: string; outputs: Record<string, unknown> };
  /** Position in registration order (0-based). */
  index: number;
}

export interface Invocation {
  token: string;
  inputs: Record<string, unknown>;
}

export interface ProgramRun {
  resources: Registration[];
  invokes: Invocation[];
  outputs: Record<string, unknown>;
  /** The resource with this type and name; throws with the list of what exists otherwise. */
  get(type: string, name: string): Registration;
  /** Resources of a type, in registration order. */
  ofType(type: string): Registration[];
}

/** True when a recorded value is a secret. */
export function isSecret(value: unknown): boolean {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as Record<string, unknown>)[SECRET_SIG_KEY] === SECRET_SIG
  );
}

/**
 * Where `needle` appears in plaintext (outside any secret) in the declared inputs or the stack
 * outputs, as `resource path` strings; empty when it only ever travels as a secret.
 */
export function plaintextOccurrences(run: ProgramRun, needle: string): string[] {
  const found: string[] = [];
  const walk = (value: unknown, where: string): void => {
    if (isSecret(value)) return;
    if (typeof value === "string") {
      if (value.includes(needle)) found.push(where);
    } else if (value && typeof value === "object") {
      for (const [k, v] of Object.entries(value)) walk(v, `${where}.${k}`);
    }
  };
  for (const r of run.resources) walk(r.inputs, `${r.name} inputs`);
  walk(run.outputs, "stack outputs");
  return found;
}

/** The value with every secret marker removed. */
export function plain<T = unknown>(value: unknown): T {
  if (isSecret(value)) {
    return plain((value as { value: unknown }).value);
  }
  if (Array.isArray(value)) {
    return value.map((v) => plain(v)) as T;
  }
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)])) as T;
  }
  return value as T;
}

/** Stack config as a user would write it in Pulumi.<stack>.yaml (short keys for our namespace). */
export type StackConfig = Record<
  string,
  string | number | boolean | (string | Record<string, unknown>)[] | Record<string, unknown>
>;

export interface RunProgramOptions {
  /** Config keys: `appName` means `touchdeploy:appName`; `github:token` is taken as is. */
  config: StackConfig;
  /** Config keys (as given in `config`) that are secrets. */
  secretKeys?: string[];
  /** Run as `pulumi preview` (isDryRun() is true). */
  preview?: boolean;
  /** Answers invokes (e.g. `github:index/getBranch:getBranch`). Throwing fails the invoke. */
  invoke?: (token: string, inputs: Record<string, unknown>) => Record<string, unknown>;
  /** Outputs of resources the mocks compute, by resource type. */
  computed?: (
    type: string,
    name: string,
    inputs: Record<string, unknown>,
  ) => Record<string, unknown>;
  /** The program; default: a fresh load of index.ts. */
  program?: () => Record<string, unknown>;
}

function fullKey(key: string): string {
  return key.includes(":") ? key : `touchdeploy:${key}`;
}

/** What the mocks' `<host>-user` commands print: the deploy user is root. */
export const MOCK_CONTAINER_USER_LINE = "touchdeploy: user 10001:10001";

/** The image id the mocks report for an image reference (deterministic). */
export function mockImageId(ref: string): string {
  return `sha256:${createHash("sha256").update(ref).digest("hex")}`;
}

/** Computed outputs the real providers would report, deterministic for a given input. */
function defaultComputed(type: string, inputs: Record<string, unknown>) {
  switch (type) {
    case "docker:index/remoteImage:RemoteImage": {
      const ref = String(plain(inputs.name));
      const id = mockImageId(ref);
      return { imageId: id, repoDigest: `${ref.split(":")[0]}@${id}` };
    }
    case "command:local:Command":
    case "command:remote:Command":
      // The `<host>-user` command (hostScript.ts containerUserCommand) as root would answer it
      // (pulumi-command trims the final newline: local/commandOutputs.go `run`).
      return String(plain(inputs.create)).includes("touchdeploy: user")
        ? { stdout: MOCK_CONTAINER_USER_LINE, stderr: "" }
        : { stdout: "", stderr: "" };
    default:
      return {};
  }
}

/**
 * Runs the program under mocks and returns what it declared. Loads index.ts afresh each time, so
 * one test file can run it with several configs (e.g. two commits).
 */
export async function runProgram(options: RunProgramOptions): Promise<ProgramRun> {
  const resources: Registration[] = [];
  const invokes: Invocation[] = [];
  await pulumi.runtime.setMocks(
    {
      newResource(args: pulumi.runtime.MockResourceArgs) {
        const declared = args.inputs as Record<string, unknown>;
        const state = {
          ...declared,
          ...defaultComputed(args.type, declared),
          ...(options.computed?.(args.type, args.name, declared) ?? {}),
        };
        return { id: `${args.name}-id`, state };
      },
      call(args: pulumi.runtime.MockCallArgs) {
        const inputs = args.inputs as Record<string, unknown>;
        invokes.push({ token: args.token, inputs });
        if (!options.invoke) {
          throw new Error(`unexpected invoke ${args.token}`);
        }
        return options.invoke(args.token, inputs);
      },
    },
    "touchdeploy",
    "test",
    options.preview ?? false,
  );

  // Record what the engine receives: the mocks' own callback does not see dependencies.
  const monitor = pulumi.runtime.getMonitor() as unknown as {
    registerResource(req: RegisterRequest, cb: (err: unknown, res: unknown) => void): void;
  };
  const original = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req, cb) => {
    const type = req.getType();
    const name = req.getName();
    const parent = req.getParent();
    const propertyDependencies: Record<string, string[]> = {};
    req
      .getPropertydependenciesMap()
      .forEach((deps, key) => (propertyDependencies[key] = deps.getUrnsList()));
    const timeouts = req.getCustomtimeouts();
    const trigger = req.getReplacementTrigger();
    const registration: Registration = {
      type,
      name,
      urn: mockUrn(parent, type, name),
      parentUrn: parent,
      custom: req.getCustom(),
      inputs: pulumi.runtime.deserializeProperties(req.getObject()),
      dependencies: req.getDependenciesList(),
      propertyDependencies,
      deleteBeforeReplace: req.getDeletebeforereplace(),
      options: {
        deleteBeforeReplace: req.getDeletebeforereplacedefined()
          ? req.getDeletebeforereplace()
          : undefined,
        protect: req.hasProtect() ? req.getProtect() : undefined,
        retainOnDelete: req.hasRetainondelete() ? req.getRetainondelete() : undefined,
        replaceOnChanges: req.getReplaceonchangesList(),
        ignoreChanges: req.getIgnorechangesList(),
        aliases: [
          ...req.getAliasurnsList().map((urn): AliasSpec => ({ urn })),
          ...req.getAliasesList().map(aliasSpec),
        ],
        deletedWith: req.getDeletedwith(),
        replaceWith: req.getReplaceWithList(),
        replacementTrigger:
          trigger === undefined
            ? undefined
            : (pulumi.runtime.deserializeProperty(trigger.toJavaScript()) as unknown),
        hideDiffs: req.getHidediffsList(),
        additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
        customTimeouts: {
          create: timeouts?.getCreate() ?? "",
          update: timeouts?.getUpdate() ?? "",
          delete: timeouts?.getDelete() ?? "",
        },
        importId: req.getImportid(),
      },
      aliases: req.getAliasesList().map((a) => {
        const spec = a.getSpec();
        return a.getUrn() ? { urn: a.getUrn() } : { name: spec?.getName(), type: spec?.getType() };
      }),
      provider: req.getProvider(),
      mock: { id: "", outputs: {} },
      index: resources.length,
    };
    resources.push(registration);
    original(req, (err, res) => {
      const response = res as RegisterResponse | undefined;
      if (!err && response) {
        registration.mock = {
          id: response.getId(),
          outputs: pulumi.runtime.deserializeProperties(response.getObject()),
        };
      }
      cb(err, res);
    });
  };

  const secretKeys = (options.secretKeys ?? []).map(fullKey);
  const config: Record<string, string> = {};
  for (const [key, value] of Object.entries(options.config)) {
    config[fullKey(key)] = typeof value === "string" ? value : JSON.stringify(value);
  }
  pulumi.runtime.setAllConfig(config, secretKeys);

  const program =
    options.program ??
    (() => {
      const entry = require.resolve(path.join(PROJECT_DIR, "index.ts"));
      delete require.cache[entry];
      return require(entry) as Record<string, unknown>;
    });
  const outputs =
    ((await pulumi.runtime.runInPulumiStack(() => Promise.resolve(program()))) as Record<
      string,
      unknown
    >) ?? {};
  // Wait until every registration (children of components, apply-created ones) is done.
  await (
    require("@pulumi/pulumi/runtime/settings") as { waitForRPCs(): Promise<void> }
  ).waitForRPCs();

  return {
    resources,
    invokes,
    outputs,
    get(type, name) {
      const found = resources.find((r) => r.type === type && r.name === name);
      if (!found) {
        const names = resources.map((r) => `${r.type} ${r.name}`).join("\n  ");
        throw new Error(`no ${type} named ${name}; declared:\n  ${names}`);
      }
      return found;
    },
    ofType(type) {
      return resources.filter((r) => r.type === type);
    },
  };
}

/**
 * The URN the mock monitor gives a resource (`MockMonitor.newUrn`): the parent's own type (the
 * last `$` part of its qualified type) is prefixed, including for the root stack. Dependency
 * lists, parents and provider references all use these.
 */
export function mockUrn(parentUrn: string, type: string, name: string): string {
  const qualifiedType = parentUrn ? `${parentUrn.split("::")[2].split("$").pop()}$${type}` : type;
  return `urn:pulumi:test::touchdeploy::${qualifiedType}::${name}`;
}

function aliasSpec(alias: ProtoAlias): AliasSpec {
  const urn = alias.getUrn();
  if (urn) return { urn };
  const spec = alias.getSpec();
  if (!spec) return {};
  const out: AliasSpec = {};
  if (spec.getName()) out.name = spec.getName();
  if (spec.getType()) out.type = spec.getType();
  if (spec.getStack()) out.stack = spec.getStack();
  if (spec.getProject()) out.project = spec.getProject();
  if (spec.getParenturn()) out.parentUrn = spec.getParenturn();
  if (spec.getNoparent()) out.noParent = true;
  return out;
}

/** The subset of the RegisterResourceRequest protobuf the recorder reads. */
interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getCustom(): boolean;
  getObject(): Parameters<typeof pulumi.runtime.deserializeProperties>[0];
  getDependenciesList(): string[];
  getPropertydependenciesMap(): {
    forEach(cb: (deps: { getUrnsList(): string[] }, key: string) => void): void;
  };
  getDeletebeforereplace(): boolean;
  getDeletebeforereplacedefined(): boolean;
  hasProtect(): boolean;
  getProtect(): boolean;
  hasRetainondelete(): boolean;
  getRetainondelete(): boolean;
  getReplaceonchangesList(): string[];
  getIgnorechangesList(): string[];
  getAliasurnsList(): string[];
  getAliasesList(): ProtoAlias[];
  getDeletedwith(): string;
  getReplaceWithList(): string[];
  getReplacementTrigger(): { toJavaScript(): unknown } | undefined;
  getHidediffsList(): string[];
  getAdditionalsecretoutputsList(): string[];
  getCustomtimeouts():
    { getCreate(): string; getUpdate(): string; getDelete(): string } | undefined;
  getImportid(): string;
  getProvider(): string;
}

interface ProtoAlias {
  getUrn(): string;
  getSpec():
    | {
        getName(): string;
        getType(): string;
        getStack(): string;
        getProject(): string;
        getParenturn(): string;
        getNoparent(): boolean;
      }
    | undefined;
}

/** The subset of the RegisterResourceResponse protobuf the recorder reads. */
interface RegisterResponse {
  getId(): string;
  getObject(): Parameters<typeof pulumi.runtime.deserializeProperties>[0];
}

/** True when `resource` depends on the resource of that type and name. */
export function dependsOn(resource: Registration, type: string, name: string): boolean {
  return resource.dependencies.some((urn) => urn.endsWith(`${type}::${name}`));
}
