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
  deleteBeforeReplace: boolean;
  /** The `aliases` option, as the engine receives it (name/type/parent of each old identity). */
  aliases: { name?: string; type?: string; urn?: string }[];
  /** Provider reference (`urn::id`) for custom resources. */
  provider: string;
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
  string | number | boolean | (string | Record<string, unknown>)[]
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
      return { stdout: "", stderr: "" };
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
    // The URN exactly as the mock monitor builds it (dependency lists refer to these).
    const parent = req.getParent();
    const qualifiedType = parent ? `${parent.split("::")[2].split("$").pop()}$${type}` : type;
    const urn = `urn:pulumi:test::touchdeploy::${qualifiedType}::${name}`;
    resources.push({
      type,
      name,
      urn,
      parentUrn: parent,
      custom: req.getCustom(),
      inputs: pulumi.runtime.deserializeProperties(req.getObject()),
      dependencies: req.getDependenciesList(),
      deleteBeforeReplace: req.getDeletebeforereplace(),
      aliases: req.getAliasesList().map((a) => {
        const spec = a.getSpec();
        return a.getUrn() ? { urn: a.getUrn() } : { name: spec?.getName(), type: spec?.getType() };
      }),
      provider: req.getProvider(),
    });
    original(req, cb);
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

/** The subset of the RegisterResourceRequest protobuf the recorder reads. */
interface RegisterRequest {
  getType(): string;
  getName(): string;
  getParent(): string;
  getCustom(): boolean;
  getObject(): Parameters<typeof pulumi.runtime.deserializeProperties>[0];
  getDependenciesList(): string[];
  getDeletebeforereplace(): boolean;
  getAliasesList(): {
    getUrn(): string;
    getSpec(): { getName(): string; getType(): string } | undefined;
  }[];
  getProvider(): string;
}

/** True when `resource` depends on the resource of that type and name. */
export function dependsOn(resource: Registration, type: string, name: string): boolean {
  return resource.dependencies.some((urn) => urn.endsWith(`${type}::${name}`));
}
