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
import { DEFAULT_RELOAD_FILE, RULES } from "../contract";
import { IPV4_PATTERN } from "../hostSpec";

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
 *   `type`, and `mergeConfig` validates only typed keys).
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
    declare: "integer",
    description: "Seconds the release waits for the new commit to be healthy before rolling back.",
  },
  keepReleases: {
    schema: integer(1, 1000),
    default: 5,
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
} satisfies Record<string, KeySpec>;

export type ConfigKey = keyof typeof CONFIG_KEYS;

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

function pathText(key: string, path: readonly PropertyKey[]): string {
  return `${NAMESPACE}:${key}${path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("")}`;
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
