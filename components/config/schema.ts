/**
 * The one description of the stack configuration: for every `touchdeploy:*` key its zod schema
 * (which gives the TypeScript type and checks the value on its own), its default, its
 * description, and how `Pulumi.yaml` declares it. `scripts/gen-pulumi-yaml.ts` writes
 * `Pulumi.yaml` and the README's configuration table from this table (a unit test keeps both
 * equal to what it renders); `parseConfig` validates with it. Rules between keys (a source must
 * be given, an ssh host needs a key, ...) live in the section parsers next to this file.
 *
 * Why zod: one definition gives the type (`z.output`), the check with every problem and its
 * path at once (`safeParse` collects all issues), and plain data the generators can read.
 */
import { z } from "zod";
import {
  DEFAULT_PROCESS_STOP_TIMEOUT,
  DEFAULT_RELOAD_FILE,
  RELEASE_COMMAND_ON,
  RULES,
} from "../contract";
import { IPV4_PATTERN } from "../hostSpec";
import { cpusNano, dockerCpusText } from "../containerLimits";

/** The Pulumi config namespace of this project. */
export const NAMESPACE = "touchdeploy";

/**
 * How `Pulumi.yaml` declares a key. The CLI's rules (pulumi/pulumi v3.248.0,
 * sdk/go/common/workspace/project.go `Project.Validate`, config.go `mergeConfig` and
 * `validateStackConfigValue`):
 * - a declared default is copied into every stack's config as a plain value before validation;
 * - a key declared `secret: true` must hold an encrypted value in every stack, so a secret with a
 *   default fails every stack; a declared key without default is required in every stack. So
 *   secrets are left undeclared ("undeclared") and read with `requireSecret`;
 * - a typed key's stack value must have that type: `hosts`, a list of objects or shorthand
 *   strings, is declared without a type ("untyped"; project.json allows a declaration without
 *   `type`, and `mergeConfig` validates only typed keys). So are `env` (an object: v3.248.0
 *   knows `type: object`, but an untyped declaration is what every CLI that loads `hosts`
 *   accepts) and `processes` (strings or objects).
 */
export type Declaration = "string" | "integer" | "array" | "untyped" | "undeclared";

export interface KeySpec<S extends z.ZodType = z.ZodType> {
  /** Checks and converts the raw value (after the default is applied). */
  schema: S;
  /** What it means, one or two sentences (Pulumi.yaml and the README). */
  description: string;
  /** The raw value used when the stack does not set the key. */
  default?: unknown;
  /** The default as the README shows it, when it is derived from other keys. */
  shownDefault?: string;
  declare: Declaration;
  /** A secret: read only as a secret Output; the schema sees whether it is set. */
  secret?: boolean;
  /**
   * For a secret: the schema sees the value itself, to check its shape (`secretEnv`: names and
   * value types). Its messages never show a value, and its output holds no secret (the names).
   */
  checksSecretValue?: boolean;
  /**
   * The host script option (`release --NAME VALUE`) this key's value is passed to unchanged.
   * The one place such a key is wired: the release section collects these into
   * `ReleaseConfig.hostOptions` and the release command line passes them all; the script's own
   * OPTIONS table validates the value again (hostRules.test.ts runs every accepted value
   * through `touchdeploy.sh check`).
   */
  hostOption?: string;
}

const show = (v: unknown) => JSON.stringify(v);

/** A string, trimmed; `check` returns the problem with a value, if any. */
function text(check?: (v: string) => string | undefined) {
  const base = z
    .string({ error: (iss) => `must be a string, got ${show(iss.input)}` })
    .transform((v) => v.trim());
  if (!check) return base;
  return base.superRefine((v, ctx) => {
    const message = check(v);
    if (message !== undefined) ctx.addIssue({ code: "custom", message, input: v });
  });
}

/** An integer in [min, max]; stack YAML gives numbers as strings. */
function integer(min: number, max: number) {
  const message = (input: unknown) =>
    `must be an integer from ${min} to ${max}, got ${show(input)}`;
  return z.unknown().transform((raw, ctx) => {
    const n = typeof raw === "string" && /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
    if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
      ctx.addIssue({ code: "custom", message: message(raw), input: raw });
      return z.NEVER;
    }
    return n;
  });
}

/** A JSON list (stack config gives lists as JSON text) of items checked by `item`. */
function list<T extends z.ZodType>(item: T, what = "a list of strings") {
  return z
    .unknown()
    .transform((raw, ctx) => {
      let value = raw;
      if (typeof raw === "string") {
        try {
          value = JSON.parse(raw) as unknown;
        } catch {
          // reported below
        }
      }
      if (!Array.isArray(value)) {
        ctx.addIssue({ code: "custom", message: `must be ${what}, got ${show(raw)}`, input: raw });
        return z.NEVER;
      }
      return value as unknown[];
    })
    .pipe(z.array(item));
}

const stringItem = z.string({ error: (iss) => `must be a string, got ${show(iss.input)}` });

/** Whether a secret is set (loadConfig passes `true`/`false`, never the value). */
const secretPresence = z.boolean();

/** A JSON value's kind, for messages that must not show the value itself. */
function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/**
 * The text of one environment value as the app sees it, or why it has none. Stack YAML may hold
 * booleans and integers: `pulumi config set --path 'touchdeploy:env.X' true` stores `true` and
 * `4` as a boolean and an integer (pulumi/pulumi v3.248.0 sdk/go/common/resource/config/
 * object.go `coerce`, applied to every `--path` value unless `--type string`). Those are
 * converted to their usual text ("true", "false", "4"), which is what the user typed. Other
 * numbers are refused: JSON gives the program `1.10` as 1.1 and 12345678901234567890 rounded, so
 * their text would not be what was typed. Objects, lists and null are refused; so is a NUL
 * character (the payload's separator, and no environment value can hold one).
 */
export function envValueText(value: unknown): { text: string } | { problem: string } {
  if (typeof value === "string") {
    return value.includes("\0") ? { problem: "contains a NUL character" } : { text: value };
  }
  if (typeof value === "boolean") return { text: String(value) };
  if (typeof value === "number" && Number.isSafeInteger(value)) return { text: String(value) };
  if (typeof value === "number") {
    return {
      problem:
        "is a number whose text the program cannot know exactly: quote it in the stack file, or set it with `pulumi config set --type string --path ...`",
    };
  }
  return { problem: `must be a string, got ${kindOf(value)}` };
}

/** The first reason an environment variable name is refused (the payload's KEY rule), or undefined. */
export function envNameProblem(name: string): string | undefined {
  if (!RULES.envName.test(name)) {
    return "is not an environment variable name (letters, digits and _, not starting with a digit, at most 255)";
  }
  const prefix = RULES.reservedEnvPrefixes.find((p) => name.startsWith(p));
  if (prefix === "UWSGI_") {
    return "starts with UWSGI_: uWSGI reads those as its own options (set them in the app's uwsgi.ini)";
  }
  if (prefix) return `starts with ${prefix}: those names are touchdeploy's own`;
  return undefined;
}

/** Bytes of a string as UTF-8 (what the host counts, at most). */
export const utf8Bytes = (text: string) => Buffer.byteLength(text, "utf8");

/** The first reason one `NAME=value` is too long for execve(2), or undefined. */
export function envSizeProblem(name: string, value: string): string | undefined {
  const bytes = utf8Bytes(name) + 1 + utf8Bytes(value);
  return bytes > RULES.maxArg
    ? `makes NAME=value ${bytes} bytes: the kernel passes at most ${RULES.maxArg} per variable`
    : undefined;
}

/** JSON text parsed (stack config gives objects and lists as JSON text); anything else as is. */
function parsedJson(raw: unknown): unknown {
  if (typeof raw !== "string") return raw;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

/** A JSON object, given as an object or as JSON text; undefined for anything else. */
function jsonObject(raw: unknown): Record<string, unknown> | undefined {
  const value = parsedJson(raw);
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** A secret environment as parsing sees it: each name and its value's size in bytes. */
export type SecretSizes = Record<string, number>;

/**
 * The app's environment, `{NAME: value}`: names checked by {@link envNameProblem}, values by
 * {@link envValueText} and {@link envSizeProblem}; the output is sorted by name. A `secret`
 * environment's messages show names but never values, and its output is only the names and
 * sizes (the values stay in the secret Output `loadConfig` reads).
 */
function environment<Secret extends boolean>(secret: Secret) {
  return z
    .unknown()
    .transform((raw, ctx): Secret extends true ? SecretSizes : Record<string, string> => {
      const object = jsonObject(raw);
      if (!object) {
        const got = secret ? kindOf(parsedJson(raw)) : show(raw);
        ctx.addIssue({
          code: "custom",
          message: `must be an object of NAME: value (set with \`pulumi config set${secret ? " --secret" : ""} --path 'touchdeploy:${secret ? "secretEnv" : "env"}.NAME' ${secret ? "< file" : "VALUE"}\`), got ${got}`,
        });
        return z.NEVER;
      }
      const out: Record<string, string> = {};
      for (const name of Object.keys(object).sort()) {
        const why = envNameProblem(name);
        if (why) ctx.addIssue({ code: "custom", path: [name], message: `${show(name)} ${why}` });
        const value = envValueText(object[name]);
        const shown = secret ? "the value (not shown: it is a secret)" : show(object[name]);
        if ("problem" in value) {
          ctx.addIssue({ code: "custom", path: [name], message: `${shown} ${value.problem}` });
        } else if (!why) {
          const tooLong = envSizeProblem(name, value.text);
          if (tooLong) {
            ctx.addIssue({
              code: "custom",
              path: [name],
              message: `${secret ? "the value (not shown: it is a secret)" : "the value"} ${tooLong}`,
            });
          } else {
            out[name] = value.text;
          }
        }
      }
      return (
        secret ? Object.fromEntries(Object.entries(out).map(([k, v]) => [k, utf8Bytes(v)])) : out
      ) as Secret extends true ? SecretSizes : Record<string, string>;
    });
}

/** A process the container runs next to uWSGI: `{name, command}`, as given or from `NAME COMMAND`. */
export interface ProcessSpec {
  name: string;
  command: string;
}

/** One `processes` entry: `NAME COMMAND`, or `{name, command}`. */
const processEntry = z.unknown().transform((raw, ctx): ProcessSpec => {
  const problem = (message: string, field?: "name" | "command") => {
    ctx.addIssue({ code: "custom", message, path: field ? [field] : [] });
    return z.NEVER;
  };
  let spec: ProcessSpec;
  if (typeof raw === "string") {
    const m = /^\s*(\S+)\s+(\S[\s\S]*?)\s*$/.exec(raw);
    if (!m)
      return problem(`${show(raw)} must be "NAME COMMAND", e.g. "worker python3 manage.py worker"`);
    spec = { name: m[1], command: m[2] };
  } else if (typeof raw === "object" && raw !== null && !Array.isArray(raw)) {
    const { name, command, ...rest } = raw as Record<string, unknown>;
    const extra = Object.keys(rest);
    if (extra.length > 0)
      return problem(`unknown field ${show(extra[0])} (a process is {name, command})`);
    if (typeof name !== "string") return problem(`must be a string, got ${show(name)}`, "name");
    if (typeof command !== "string")
      return problem(`must be a string, got ${show(command)}`, "command");
    spec = { name: name.trim(), command: command.trim() };
  } else {
    return problem(`must be "NAME COMMAND" or {name, command}, got ${show(raw)}`);
  }
  const field = typeof raw === "string" ? undefined : "name";
  if (!RULES.processName.test(spec.name)) {
    return problem(
      `process name ${show(spec.name)} must be 1-31 lowercase letters, digits or '-', starting with a letter`,
      field,
    );
  }
  if (RULES.reservedProcessNames.includes(spec.name)) {
    return problem(`process name ${show(spec.name)} is the container's own (uWSGI)`, field);
  }
  const commandField = typeof raw === "string" ? undefined : "command";
  if (spec.command === "") return problem("the command is empty", commandField);
  if (RULES.control.test(spec.command)) {
    return problem(`the command ${show(spec.command)} contains control characters`, commandField);
  }
  if (utf8Bytes(spec.command) > RULES.maxArg) {
    return problem(
      `the command is ${utf8Bytes(spec.command)} bytes, at most ${RULES.maxArg} (one argument of execve(2)): put a script in the repository and run that`,
      commandField,
    );
  }
  return spec;
});

/** A list of distinct values: the second occurrence of a value is reported at its index. */
function distinct<T>(what: (item: T) => string, noun: string) {
  return (items: T[], ctx: z.RefinementCtx) => {
    const seen = new Set<string>();
    items.forEach((item, i) => {
      const key = what(item);
      if (seen.has(key)) {
        ctx.addIssue({
          code: "custom",
          path: [i],
          message: `${noun} ${show(key)} is listed twice`,
        });
      }
      seen.add(key);
    });
  };
}

const appNamePattern = /^[a-z0-9]([a-z0-9_.-]{0,40}[a-z0-9])?$/;
const branchPattern =
  /^(?!-)(?!\/)(?!.*\.\.)(?!.*\/\/)(?!.*\.lock$)(?!.*\/$)[A-Za-z0-9._/-]{1,200}$/;

/**
 * github.com's SSH host keys as GitHub publishes them (api.github.com/meta; fingerprints
 * SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU and
 * SHA256:p2QAMXNIC1TJYWeIOttrVc98/R1BUFWu3/LiyKgUfQM, checked with ssh-keygen -lf).
 */
export const GITHUB_KNOWN_HOSTS = [
  "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
  "github.com ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=",
];

/** Docker's smallest memory limit (6 MB: the daemon refuses less). */
export const MIN_MEMORY_MB = 6;

/** `touchdeploy:memory` in megabytes: "512m", "2g", "off" (undefined), or "invalid". */
export function memoryMb(value: string): number | undefined | "invalid" {
  if (value === "off") return undefined;
  const m = /^([1-9][0-9]{0,6})([mg])$/i.exec(value);
  if (!m) return "invalid";
  const mb = Number(m[1]) * (m[2].toLowerCase() === "g" ? 1024 : 1);
  return mb < MIN_MEMORY_MB || mb > 1_048_576 ? "invalid" : mb;
}

/**
 * Why a `touchdeploy:cpus` value is refused, or undefined. The provider reads `cpus` back in its
 * own spelling (see components/containerLimits.ts), and `cpus` forces replacement: a value is
 * declared in that spelling, so it must denote the same amount.
 */
export function cpusProblem(value: string): string | undefined {
  if (value === "off") return undefined;
  const nano = cpusNano(value);
  if (nano === undefined || nano <= 0n || nano > 1024n * 1_000_000_000n) {
    return 'must be a number of CPUs from 0.01 to 1024 like "0.5" or "2", or "off"';
  }
  const read = dockerCpusText(nano);
  if (cpusNano(read) !== nano) {
    return `cannot be declared so that the Docker provider reads it back the same (it would read "${read}", which replaces the container on every deploy): use a value with fewer decimals`;
  }
  return undefined;
}

/** Default dependency files, relative to the app directory: what the runtime image installs. */
export const DEFAULT_DEPENDENCY_FILES = ["requirements.txt", "Aptfile"];

/** Every key the program reads, in `Pulumi.yaml` and README order. */
export const CONFIG_KEYS = {
  appName: {
    schema: text((v) =>
      appNamePattern.test(v)
        ? undefined
        : `${show(v)} must be 1-42 lowercase letters, digits, '.', '_' or '-' (it names containers)`,
    ),
    default: "app",
    declare: "string",
    description:
      "Name of the app: container names are <appName>-<host>, the default root is /srv/touchdeploy/<appName>.",
  },
  github: {
    schema: text(),
    default: "",
    declare: "string",
    description:
      "GitHub repository OWNER/NAME to deploy. The branch head is read with github.getBranch unless touchdeploy:commit pins a SHA.",
  },
  repoPath: {
    schema: text((v) =>
      RULES.control.test(v) ? `${show(v)} contains control characters` : undefined,
    ),
    default: "",
    declare: "string",
    description:
      "Local git repository to deploy (dev), absolute or relative to the project directory. Its branch head is read locally.",
  },
  repoUrl: {
    schema: text(),
    default: "",
    shownDefault: "derived",
    declare: "string",
    description:
      "URL the hosts fetch from. Default: https://github.com/OWNER/NAME.git (git@github.com:OWNER/NAME.git with a deploy key) or the absolute repoPath. Never put credentials in it.",
  },
  branch: {
    schema: text((v) =>
      branchPattern.test(v) ? undefined : `${show(v)} is not a valid branch name`,
    ),
    default: "main",
    declare: "string",
    description: "Branch whose head is deployed when touchdeploy:commit is empty.",
  },
  commit: {
    schema: text((v) =>
      v === "" || RULES.sha.test(v)
        ? undefined
        : `${show(v)} is not a full commit SHA (40 lowercase hex characters)`,
    ),
    default: "",
    declare: "string",
    description:
      "Full 40-hex commit SHA to deploy. When set it wins over the branch head (pin, redeploy or roll back).",
  },
  appDir: {
    schema: text(),
    default: "",
    declare: "string",
    description:
      "Directory of the app inside the repository (holds uwsgi.ini and the dependency files). Empty for the repository root.",
  },
  hosts: {
    schema: list(z.unknown(), "a list of hosts"),
    default: [{ name: "local" }],
    shownDefault: "one local host",
    declare: "untyped",
    description:
      'Hosts, in rollout order. Each is {name, ssh: "USER@ADDRESS[:PORT]", hostKey: "KEYTYPE BASE64", port, root, bind} (no ssh: this machine), or the one-line shorthand "NAME TARGET [port=N] [root=/abs/path] [bind=IPv4]" with TARGET "local" or "ssh://USER@ADDRESS[:PORT]". Set with `pulumi config set --path \'touchdeploy:hosts[0].name\' web1`.',
  },
  hostKeys: {
    schema: list(stringItem),
    default: [],
    declare: "array",
    description:
      'Deprecated (use hosts[i].hostKey; accepted for one release): SSH host keys "NAME KEYTYPE BASE64", one per ssh host.',
  },
  sshPrivateKey: {
    schema: secretPresence,
    declare: "undeclared",
    secret: true,
    description:
      "Secret. Private key (OpenSSH/PEM) the commands and the Docker connection use to log in to ssh hosts: `pulumi config set --secret touchdeploy:sshPrivateKey < key`.",
  },
  root: {
    schema: text(),
    default: "",
    shownDefault: "/srv/touchdeploy/<appName>",
    declare: "string",
    description:
      "Default app root on each host (absolute). Empty means /srv/touchdeploy/<appName>. Per host: root.",
  },
  port: {
    schema: integer(1, 65535),
    default: 8000,
    declare: "integer",
    description: "Default published port on each host. Per host: port.",
  },
  bindAddress: {
    schema: text((v) =>
      IPV4_PATTERN.test(v) ? undefined : `${show(v)} must be an IPv4 address such as 0.0.0.0`,
    ),
    default: "0.0.0.0",
    declare: "string",
    description: "Default address the port is published on. Per host: bind.",
  },
  image: {
    schema: text(),
    default: "",
    declare: "string",
    description:
      "Runtime image to pull instead of building runtime/. May contain {fingerprint} to select the image built for the commit's dependencies.",
  },
  baseImage: {
    schema: text(),
    default: "debian:bookworm-slim",
    declare: "string",
    description: "Base image runtime/ is built on (when touchdeploy:image is empty).",
  },
  rollout: {
    schema: text((v) =>
      v === "parallel" || v === "rolling"
        ? undefined
        : `unknown strategy ${show(v)} (use "parallel" or "rolling")`,
    ),
    default: "parallel",
    declare: "string",
    description:
      'How releases roll across hosts: "parallel", or "rolling" (batches of batchSize; a batch starts when the previous one is healthy).',
  },
  batchSize: {
    schema: integer(1, 1000),
    default: 1,
    declare: "integer",
    description: "Hosts per batch for the rolling rollout.",
  },
  healthPath: {
    schema: text((v) =>
      /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$/.test(v)
        ? undefined
        : `${show(v)} must be a URL path starting with "/"`,
    ),
    default: "/healthz",
    declare: "string",
    description:
      "Path the release checks after the reload: it must answer 200 with X-Revision equal to the commit. A change replaces the container (its healthcheck probes it too).",
  },
  healthTimeout: {
    schema: integer(1, 3600),
    default: 60,
    hostOption: "health-timeout",
    declare: "integer",
    description: "Seconds the release waits for the new commit to be healthy before rolling back.",
  },
  keepReleases: {
    schema: integer(1, 1000),
    default: 5,
    hostOption: "keep",
    declare: "integer",
    description:
      "Release directories kept per host (the live and the previous one are always kept).",
  },
  reloadFile: {
    schema: text(),
    default: DEFAULT_RELOAD_FILE,
    declare: "string",
    description: "Name of the uWSGI reload trigger file in the app root (outside releases/).",
  },
  dependencyFiles: {
    schema: list(stringItem),
    default: DEFAULT_DEPENDENCY_FILES,
    declare: "array",
    description:
      "Files (relative to appDir) whose contents make the dependency fingerprint. A change means a container deploy.",
  },
  deployKey: {
    schema: text((v) =>
      ["none", "generate", "provided"].includes(v)
        ? undefined
        : `unknown mode ${show(v)} (use "none", "generate" or "provided")`,
    ),
    default: "none",
    declare: "string",
    description:
      'How hosts authenticate to a private GitHub repository: "none" (public, https), "generate" (a read-only deploy key generated and registered as code) or "provided" (touchdeploy:deployPrivateKey, registered as code).',
  },
  deployPrivateKey: {
    schema: secretPresence,
    declare: "undeclared",
    secret: true,
    description:
      'Secret. The deploy key\'s private half for deployKey "provided" (OpenSSH or PEM): `pulumi config set --secret touchdeploy:deployPrivateKey < deploy_key`.',
  },
  gitKnownHosts: {
    schema: list(stringItem),
    default: GITHUB_KNOWN_HOSTS,
    shownDefault: "github.com's keys",
    declare: "array",
    description:
      "known_hosts lines the hosts verify the git server with when fetching over SSH (default: github.com's published keys; set yours for GitHub Enterprise).",
  },
  releaseCommand: {
    schema: text((v) =>
      RULES.control.test(v)
        ? `${show(v)} contains control characters (one line: join commands with &&)`
        : utf8Bytes(v) > RULES.maxReleaseCommand
          ? `is ${utf8Bytes(v)} bytes, at most ${RULES.maxReleaseCommand} (the release's command line reaches the shell as one argument): put a script in the repository and run that`
          : undefined,
    ),
    default: "",
    declare: "string",
    description:
      "Shell command run in each release before the switch, in the container (its image, env, secrets and state dirs) as the container's user, in the new release's app directory, e.g. `python3 manage.py migrate --noinput`. If it fails, nothing is switched and the old release keeps serving (exit 9).",
  },
  releaseCommandOn: {
    schema: text((v) =>
      (RELEASE_COMMAND_ON as readonly string[]).includes(v)
        ? undefined
        : `unknown value ${show(v)} (use ${RELEASE_COMMAND_ON.map((o) => show(o)).join(" or ")})`,
    ),
    default: "first-host",
    declare: "string",
    description:
      'Where releaseCommand runs. "first-host": in the release of the first host of the rollout only, and every other host\'s release waits for that one (so with rollout "parallel" the first host goes first, then the rest together). "every-host": each host runs it before its own switch.',
  },
  releaseCommandTimeout: {
    schema: integer(1, 86400),
    default: 600,
    declare: "integer",
    hostOption: "release-command-timeout",
    description:
      "Seconds releaseCommand may run (a long migration needs more); past them it is stopped in the container and nothing is switched.",
  },
  env: {
    schema: environment(false),
    default: {},
    declare: "untyped",
    description:
      "The app's environment, {NAME: value} (plain text; names not starting with TOUCHDEPLOY_): `pulumi config set --path 'touchdeploy:env.DJANGO_DEBUG' false`. Sent to the hosts with each release; a change is one graceful reload, not a container deploy.",
  },
  secretEnv: {
    schema: environment(true),
    default: {},
    declare: "undeclared",
    secret: true,
    checksSecretValue: true,
    description:
      "Secret. The app's secret environment, {NAME: value}, each value encrypted: `pulumi config set --secret --path 'touchdeploy:secretEnv.DJANGO_SECRET_KEY' < file`. Sent to the hosts only on the release command's stdin; a change is one graceful reload, not a container deploy.",
  },
  stateDirs: {
    schema: list(
      stringItem.superRefine((v, ctx) => {
        if (!RULES.stateDirName.test(v)) {
          ctx.addIssue({
            code: "custom",
            message: `${show(v)} must be 1-31 lowercase letters, digits, '_' or '-', starting with a letter`,
          });
        }
      }),
    ).superRefine(distinct((d: string) => d, "state dir")),
    default: [],
    declare: "array",
    description:
      "Persistent writable directories, e.g. [data, static, media]: <root>/state/<name> on each host, mounted read-write at /srv/state/<name>. They survive every deploy, container replacement and `pulumi destroy`. A change replaces the container (a container deploy).",
  },
  processes: {
    schema: list(processEntry, "a list of processes").superRefine(
      distinct((p: ProcessSpec) => p.name, "process name"),
    ),
    default: [],
    declare: "untyped",
    description:
      'Long-running processes next to uWSGI in the container, from the live release: "NAME COMMAND" or {name, command}, e.g. "worker python3 manage.py worker". Each release restarts them on the new code once web is healthy; one that does not stay up fails the release and the previous release comes back.',
  },
  processStopTimeout: {
    schema: integer(1, 3600),
    default: DEFAULT_PROCESS_STOP_TIMEOUT,
    hostOption: "process-stop-timeout",
    declare: "integer",
    description:
      "Seconds a process gets to stop after TERM before it is killed, when processes restart.",
  },
  memory: {
    schema: text((v) =>
      memoryMb(v) === "invalid"
        ? `${show(v)} must be a size in whole megabytes like "512m" or "2g" (at least ${MIN_MEMORY_MB}m, at most 1048576m), or "off"`
        : undefined,
    ).transform((v) => {
      const mb = memoryMb(v);
      return mb === "invalid" ? undefined : mb;
    }),
    default: "1g",
    declare: "string",
    description:
      'Memory limit of each host\'s container, e.g. "512m" or "2g" (no swap beyond it: the kernel kills the app\'s process that goes over); "off" for none. A change replaces the container (a container deploy).',
  },
  cpus: {
    schema: z
      .unknown()
      .transform((v) => (typeof v === "number" ? String(v) : v))
      .pipe(
        text((v) => {
          const why = cpusProblem(v);
          return why === undefined ? undefined : `${show(v)} ${why}`;
        }),
      )
      .transform((v) => {
        const nano = v === "off" ? undefined : cpusNano(v);
        return nano === undefined ? undefined : dockerCpusText(nano);
      }),
    default: "1",
    declare: "string",
    description:
      'CPUs each host\'s container may use, e.g. "0.5", "1" or "2" (at most the host\'s CPUs: Docker refuses more); "off" for no limit. A change replaces the container (a container deploy).',
  },
} satisfies Record<string, KeySpec>;

export type ConfigKey = keyof typeof CONFIG_KEYS;

/**
 * The values of the keys passed to the host script unchanged (`hostOption`), by option name, in
 * the schema's order.
 */
export function hostOptionsOf(values: ConfigValues): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [key, spec] of Object.entries(CONFIG_KEYS) as [ConfigKey, KeySpec][]) {
    if (spec.hostOption !== undefined) out[spec.hostOption] = values[key] as string | number;
  }
  return out;
}

/** The values of every key after its own check: what the section parsers read. */
export type ConfigValues = {
  [K in ConfigKey]: z.output<(typeof CONFIG_KEYS)[K]["schema"]>;
};

/** Keys whose values are secrets: parsing only learns whether they are set. */
export const SECRET_KEYS = (Object.keys(CONFIG_KEYS) as ConfigKey[]).filter(
  (k) => (CONFIG_KEYS[k] as KeySpec).secret === true,
);

/** One problem with the stack configuration. */
export interface ConfigProblem {
  /** The config key with its path inside the value: `touchdeploy:hosts[1].hostKey`. */
  path: string;
  message: string;
}

/** Raw values as found in the stack (strings, numbers, booleans, JSON text), by short name. */
export type RawConfig = Record<string, unknown>;

/**
 * `touchdeploy:KEY` and a path inside its value as `pulumi config set --path` spells it:
 * `hosts[1].hostKey`, `env.DJANGO_DEBUG`, and `env["A B"]` for a name that is not an identifier.
 */
export function pathText(key: string, path: readonly PropertyKey[]): string {
  const segment = (p: PropertyKey) =>
    typeof p === "number"
      ? `[${p}]`
      : /^[A-Za-z_][A-Za-z0-9_]*$/.test(String(p))
        ? `.${String(p)}`
        : `[${JSON.stringify(String(p))}]`;
  return `${NAMESPACE}:${key}${path.map(segment).join("")}`;
}

/**
 * Checks every key on its own (unknown keys too) and applies the defaults. A key that fails its
 * check reads as its default, so the section parsers can go on and report what else is wrong.
 */
export function checkKeys(raw: RawConfig): {
  values: ConfigValues;
  problems: ConfigProblem[];
  failed: Set<ConfigKey>;
} {
  const problems: ConfigProblem[] = [];
  const values: Record<string, unknown> = {};
  const failed = new Set<ConfigKey>();
  const known = Object.keys(CONFIG_KEYS);
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) {
      problems.push({
        path: `${NAMESPACE}:${key}`,
        message: `unknown key (known keys: ${known.join(", ")})`,
      });
    }
  }
  for (const [key, spec] of Object.entries(CONFIG_KEYS) as [ConfigKey, KeySpec][]) {
    const fallback = spec.default ?? false;
    const result = spec.schema.safeParse(raw[key] ?? fallback);
    if (result.success) {
      values[key] = result.data;
    } else {
      failed.add(key);
      values[key] = spec.schema.parse(fallback);
      for (const issue of result.error.issues) {
        problems.push({ path: pathText(key, issue.path), message: issue.message });
      }
    }
  }
  return { values: values as ConfigValues, problems, failed };
}
