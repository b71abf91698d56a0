/**
 * The stack configuration: every `touchdeploy:*` key, its type, default and description (the
 * same table `Pulumi.yaml` declares; a unit test keeps the two identical), and one pure function
 * that validates raw values and reports every problem at once.
 */
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import {
  HostTarget,
  isAbsoluteHostPath,
  parseHostKey,
  parseHostSpec,
  parseKnownHostsLine,
} from "./hostSpec";

/** The Pulumi config namespace of this project. */
export const NAMESPACE = "touchdeploy";

type ConfigType = "string" | "integer" | "boolean" | "array";

export interface ConfigKeySchema {
  type: ConfigType;
  description: string;
  default: string | number | boolean | string[];
  secret?: boolean;
}

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

/**
 * Every key the program reads, in `Pulumi.yaml` order. Project config can only declare
 * string/integer/boolean/array, so hosts and host keys are arrays of one-line strings.
 */
export const CONFIG_SCHEMA = {
  appName: {
    type: "string",
    default: "app",
    description:
      "Name of the app: container names are <appName>-<host>, the default root is /srv/touchdeploy/<appName>.",
  },
  github: {
    type: "string",
    default: "",
    description:
      "GitHub repository OWNER/NAME to deploy. The branch head is read with github.getBranch unless touchdeploy:commit pins a SHA.",
  },
  repoPath: {
    type: "string",
    default: "",
    description:
      "Local git repository to deploy (dev), absolute or relative to the project directory. Its branch head is read locally.",
  },
  repoUrl: {
    type: "string",
    default: "",
    description:
      "URL the hosts fetch from. Default: https://github.com/OWNER/NAME.git (git@github.com:OWNER/NAME.git with a deploy key) or the absolute repoPath. Never put credentials in it.",
  },
  branch: {
    type: "string",
    default: "main",
    description: "Branch whose head is deployed when touchdeploy:commit is empty.",
  },
  commit: {
    type: "string",
    default: "",
    description:
      "Full 40-hex commit SHA to deploy. When set it wins over the branch head (pin, redeploy or roll back).",
  },
  appDir: {
    type: "string",
    default: "",
    description:
      "Directory of the app inside the repository (holds uwsgi.ini and the dependency files). Empty for the repository root.",
  },
  hosts: {
    type: "array",
    default: ["local local"],
    description:
      'Hosts, one per entry: "NAME TARGET [port=N] [root=/abs/path] [bind=IPv4]", TARGET being "local" or "ssh://USER@ADDRESS[:PORT]".',
  },
  hostKeys: {
    type: "array",
    default: [],
    description:
      'SSH host keys, one per SSH host: "NAME KEYTYPE BASE64" (e.g. from ssh-keyscan). Required for every ssh:// host.',
  },
  sshPrivateKey: {
    type: "string",
    default: "",
    secret: true,
    description:
      "Private key (OpenSSH/PEM) the release commands use to log in to ssh:// hosts. Set it with `pulumi config set --secret`.",
  },
  root: {
    type: "string",
    default: "",
    description:
      "Default app root on each host (absolute). Empty means /srv/touchdeploy/<appName>. Per host: root=.",
  },
  port: {
    type: "integer",
    default: 8000,
    description: "Default published port on each host. Per host: port=.",
  },
  bindAddress: {
    type: "string",
    default: "0.0.0.0",
    description: "Default address the port is published on. Per host: bind=.",
  },
  image: {
    type: "string",
    default: "",
    description:
      "Runtime image to pull instead of building runtime/. May contain {fingerprint} to select the image built for the commit's dependencies.",
  },
  baseImage: {
    type: "string",
    default: "debian:bookworm-slim",
    description: "Base image runtime/ is built on (when touchdeploy:image is empty).",
  },
  rollout: {
    type: "string",
    default: "parallel",
    description:
      'How releases roll across hosts: "parallel", or "rolling" (batches of batchSize; a batch starts when the previous one is healthy).',
  },
  batchSize: {
    type: "integer",
    default: 1,
    description: "Hosts per batch for the rolling rollout.",
  },
  healthPath: {
    type: "string",
    default: "/healthz",
    description:
      "Path the release checks after the reload: it must answer 200 with X-Revision equal to the commit.",
  },
  healthTimeout: {
    type: "integer",
    default: 60,
    description: "Seconds the release waits for the new commit to be healthy before rolling back.",
  },
  keepReleases: {
    type: "integer",
    default: 5,
    description:
      "Release directories kept per host (the live and the previous one are always kept).",
  },
  reloadFile: {
    type: "string",
    default: ".reload",
    description: "Name of the uWSGI touch-reload trigger file in the app root (outside releases/).",
  },
  dependencyFiles: {
    type: "array",
    default: DEFAULT_DEPENDENCY_FILES,
    description:
      "Files (relative to appDir) whose contents make the dependency fingerprint. A change means a container deploy.",
  },
  deployKey: {
    type: "string",
    default: "none",
    description:
      'How hosts authenticate to a private GitHub repository: "none" (public, https), "generate" (a read-only deploy key generated and registered as code) or "provided" (touchdeploy:deployPrivateKey, registered as code).',
  },
  deployPrivateKey: {
    type: "string",
    default: "",
    secret: true,
    description:
      'The deploy key\'s private half for deployKey "provided" (OpenSSH or PEM). Set it with `pulumi config set --secret`.',
  },
  gitKnownHosts: {
    type: "array",
    default: GITHUB_KNOWN_HOSTS,
    description:
      "known_hosts lines the hosts verify the git server with when fetching over SSH (default: github.com's published keys; set yours for GitHub Enterprise).",
  },
} as const satisfies Record<string, ConfigKeySchema>;

export type ConfigKey = keyof typeof CONFIG_SCHEMA;

/** Keys of other namespaces this project reads (declared in Pulumi.yaml too). */
export const FOREIGN_CONFIG_SCHEMA = {
  "github:token": {
    type: "string",
    default: "",
    secret: true,
    description:
      "GitHub token for reading the branch head and files (and managing the deploy key). Falls back to GITHUB_TOKEN.",
  },
} as const satisfies Record<string, ConfigKeySchema>;

/** A validated host. */
export interface HostConfig {
  name: string;
  target: HostTarget;
  /** `TYPE BASE64` of the host's SSH key; set for every ssh host. */
  hostKey?: string;
  root: string;
  port: number;
  bindAddress: string;
}

/** Where the code comes from. */
export type SourceConfig =
  | { kind: "github"; owner: string; repository: string }
  | { kind: "local"; path: string }
  | { kind: "url" };

export type ImageConfig = { kind: "build"; baseImage: string } | { kind: "pull"; name: string };

export type RolloutConfig = { strategy: "parallel" } | { strategy: "rolling"; batchSize: number };

/** How hosts authenticate when fetching: not at all, or with a GitHub deploy key. */
export type DeployKeyConfig =
  | { kind: "none" }
  | { kind: "generate"; knownHosts: string[] }
  | { kind: "provided"; knownHosts: string[] };

/** The validated configuration of a stack. */
export interface TouchdeployConfig {
  appName: string;
  source: SourceConfig;
  /** The URL hosts fetch from. */
  repoUrl: string;
  branch: string;
  /** The pinned commit, if any. */
  commit?: string;
  appDir: string;
  hosts: HostConfig[];
  image: ImageConfig;
  rollout: RolloutConfig;
  healthPath: string;
  healthTimeoutSeconds: number;
  keepReleases: number;
  reloadFile: string;
  dependencyFiles: string[];
  deployKey: DeployKeyConfig;
}

/** One problem with the stack configuration. */
export interface ConfigProblem {
  /** The config key, with an index for array entries: `touchdeploy:hosts[1]`. */
  path: string;
  message: string;
}

/**
 * All problems with a stack's configuration, reported together. A RunError, so `pulumi preview`
 * prints the message alone, without a stack trace.
 */
export class ConfigError extends pulumi.RunError {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    const n = problems.length;
    super(
      `invalid stack configuration (${n} problem${n === 1 ? "" : "s"}):\n` +
        problems.map((p) => `  - ${p.path}: ${p.message}`).join("\n"),
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Raw values as found in the stack (strings, numbers, booleans, arrays), keyed by short name. */
export type RawConfig = Partial<Record<ConfigKey, unknown>> & Record<string, unknown>;

/** Facts about the environment the raw config is interpreted in. */
export interface ConfigContext {
  /** Directory of Pulumi.yaml; relative repoPath values are resolved against it. */
  projectDir: string;
}

export const SHA_PATTERN = /^[0-9a-f]{40}$/;
const GITHUB_REPO_PATTERN = /^([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))\/([A-Za-z0-9._-]{1,100})$/;
const BRANCH_PATTERN =
  /^(?!-)(?!\/)(?!.*\.\.)(?!.*\/\/)(?!.*\.lock$)(?!.*\/$)[A-Za-z0-9._/-]{1,200}$/;
const RELATIVE_PATH_PATTERN = /^(?![-/])[A-Za-z0-9._/-]+$/;
const FILE_NAME_PATTERN = /^(?!-)(?!\.{1,2}$)[A-Za-z0-9._-]{1,100}$/;
const APP_NAME_PATTERN = /^[a-z0-9]([a-z0-9_.-]{0,40}[a-z0-9])?$/;
const IMAGE_PATTERN = /^(?!-)[A-Za-z0-9._/:@{}-]+$/;
/** Forms of git URL the host script accepts (`ext::` and friends run commands: never). */
const REPO_URL_PATTERN =
  /^(\/|file:\/\/|ssh:\/\/|https?:\/\/|git:\/\/|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:)/;

/** A path relative to the app or repository, without `..`. */
function isCleanRelativePath(value: string): boolean {
  return RELATIVE_PATH_PATTERN.test(value) && !value.split("/").some((p) => p === ".." || p === "");
}

/**
 * Validates raw stack config and applies defaults. Throws one {@link ConfigError} listing every
 * problem with its key and bad value; returns the typed config otherwise.
 */
export function parseConfig(raw: RawConfig, context: ConfigContext): TouchdeployConfig {
  const problems: ConfigProblem[] = [];
  const problem = (key: string, message: string) =>
    problems.push({ path: `${NAMESPACE}:${key}`, message });
  const show = (value: unknown) => JSON.stringify(value);

  for (const key of Object.keys(raw)) {
    if (!(key in CONFIG_SCHEMA)) {
      problem(key, `unknown key (known keys: ${Object.keys(CONFIG_SCHEMA).join(", ")})`);
    }
  }

  function str<K extends ConfigKey>(key: K): string {
    const value = raw[key] ?? CONFIG_SCHEMA[key].default;
    if (typeof value !== "string") {
      problem(key, `must be a string, got ${show(value)}`);
      return String(CONFIG_SCHEMA[key].default);
    }
    return value.trim();
  }
  function int<K extends ConfigKey>(key: K, min: number, max: number): number {
    const value = raw[key] ?? CONFIG_SCHEMA[key].default;
    const n = typeof value === "string" && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
    if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
      problem(key, `must be an integer from ${min} to ${max}, got ${show(value)}`);
      return CONFIG_SCHEMA[key].default as number;
    }
    return n;
  }
  /** A list of strings, or undefined when it is not one (reported). */
  function list<K extends ConfigKey>(key: K): string[] | undefined {
    let value: unknown = raw[key] ?? CONFIG_SCHEMA[key].default;
    if (typeof value === "string") {
      try {
        value = JSON.parse(value) as unknown;
      } catch {
        // reported below
      }
    }
    if (!Array.isArray(value) || !value.every((v): v is string => typeof v === "string")) {
      problem(key, `must be a list of strings, got ${show(value)}`);
      return undefined;
    }
    return value;
  }

  // The app.
  const appName = str("appName");
  if (!APP_NAME_PATTERN.test(appName)) {
    problem(
      "appName",
      `${show(appName)} must be 1-42 lowercase letters, digits, '.', '_' or '-' (it names containers)`,
    );
  }

  // Where the code comes from and which commit.
  const github = str("github");
  const repoPath = str("repoPath");
  let repoUrl = str("repoUrl");
  const branch = str("branch");
  const commit = str("commit");
  const deployKeyMode = str("deployKey");
  const withDeployKey = deployKeyMode === "generate" || deployKeyMode === "provided";
  if (!["none", "generate", "provided"].includes(deployKeyMode)) {
    problem(
      "deployKey",
      `unknown mode ${show(deployKeyMode)} (use "none", "generate" or "provided")`,
    );
  }
  let source: SourceConfig = { kind: "url" };
  if (github && repoPath) {
    problem("repoPath", `set either touchdeploy:github or touchdeploy:repoPath, not both`);
  }
  if (github) {
    const m = GITHUB_REPO_PATTERN.exec(github);
    if (!m) {
      problem("github", `${show(github)} must be OWNER/NAME, e.g. "acme/shop"`);
    } else {
      source = { kind: "github", owner: m[1], repository: m[2] };
      repoUrl ||= withDeployKey
        ? `git@github.com:${m[1]}/${m[2]}.git`
        : `https://github.com/${m[1]}/${m[2]}.git`;
    }
  } else if (repoPath) {
    const absolute = path.resolve(context.projectDir, repoPath);
    if (/[\x00-\x1f\x7f]/.test(repoPath)) {
      problem("repoPath", `${show(repoPath)} contains control characters`);
    }
    source = { kind: "local", path: absolute };
    repoUrl ||= absolute;
  } else if (!repoUrl || !commit) {
    problem(
      "github",
      "no source: set touchdeploy:github (OWNER/NAME) or touchdeploy:repoPath, or both touchdeploy:repoUrl and touchdeploy:commit",
    );
  }
  if (repoUrl) {
    if (!REPO_URL_PATTERN.test(repoUrl) || /[\s\x00-\x1f\x7f]/.test(repoUrl)) {
      problem(
        "repoUrl",
        `${show(repoUrl)} must be an absolute path or a file://, ssh://, https://, http://, git:// or user@host:path URL`,
      );
    } else if (/^https?:\/\/[^/]*@|^[a-z]+:\/\/[^/@]*:[^/@]*@/i.test(repoUrl)) {
      problem(
        "repoUrl",
        "must not contain credentials (they would end up in command lines, logs and state); use a deploy key",
      );
    }
  }
  if (withDeployKey) {
    if (source.kind !== "github") {
      problem(
        "deployKey",
        `${show(deployKeyMode)} needs touchdeploy:github (deploy keys are GitHub's)`,
      );
    } else if (repoUrl && !/^(ssh:\/\/|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:)/.test(repoUrl)) {
      problem("repoUrl", `${show(repoUrl)} is not an SSH URL, so the deploy key would not be used`);
    }
    if (deployKeyMode === "provided" && !raw.deployPrivateKey) {
      problem(
        "deployPrivateKey",
        'required for deployKey "provided": pulumi config set --secret touchdeploy:deployPrivateKey < deploy_key',
      );
    }
  }
  if (!BRANCH_PATTERN.test(branch)) {
    problem("branch", `${show(branch)} is not a valid branch name`);
  }
  if (commit && !SHA_PATTERN.test(commit)) {
    problem("commit", `${show(commit)} is not a full commit SHA (40 lowercase hex characters)`);
  }
  const appDir = str("appDir").replace(/\/+$/, "");
  if (appDir && !isCleanRelativePath(appDir)) {
    problem(
      "appDir",
      `${show(appDir)} must be a relative path inside the repository (letters, digits, ._-/, no "..")`,
    );
  }

  // Hosts.
  const defaultRoot = str("root") || `/srv/touchdeploy/${appName}`;
  if (!isAbsoluteHostPath(defaultRoot)) {
    problem("root", `${show(defaultRoot)} must be an absolute path on the hosts (no "..")`);
  }
  const defaultPort = int("port", 1, 65535);
  const defaultBind = str("bindAddress");
  if (!/^(\d{1,3}\.){3}\d{1,3}$/.test(defaultBind)) {
    problem("bindAddress", `${show(defaultBind)} must be an IPv4 address such as 0.0.0.0`);
  }
  const hostKeys = new Map<string, string>();
  (list("hostKeys") ?? []).forEach((entry, i) => {
    const parsed = parseHostKey(entry);
    if (!parsed.ok) {
      parsed.problems.forEach((m) => problem(`hostKeys[${i}]`, `${show(entry)}: ${m}`));
    } else if (hostKeys.has(parsed.value.hostName)) {
      problem(`hostKeys[${i}]`, `a second key for host ${show(parsed.value.hostName)}`);
    } else {
      hostKeys.set(parsed.value.hostName, parsed.value.publicKey);
    }
  });
  const hostEntries = list("hosts") ?? [];
  if (hostEntries.length === 0 && problems.every((p) => p.path !== `${NAMESPACE}:hosts`)) {
    problem("hosts", "must list at least one host");
  }
  const hosts: HostConfig[] = [];
  const names = new Set<string>();
  const placements = new Map<string, string>();
  hostEntries.forEach((entry, i) => {
    const parsed = parseHostSpec(entry);
    if (!parsed.ok) {
      parsed.problems.forEach((m) => problem(`hosts[${i}]`, `${show(entry)}: ${m}`));
      return;
    }
    const spec = parsed.value;
    if (names.has(spec.name)) {
      problem(`hosts[${i}]`, `host name ${show(spec.name)} is used twice`);
      return;
    }
    names.add(spec.name);
    const host: HostConfig = {
      name: spec.name,
      target: spec.target,
      root: spec.root ?? defaultRoot,
      port: spec.port ?? defaultPort,
      bindAddress: spec.bindAddress ?? defaultBind,
    };
    if (spec.target.kind === "ssh") {
      host.hostKey = hostKeys.get(spec.name);
      if (!host.hostKey) {
        problem(
          `hosts[${i}]`,
          `ssh host ${show(spec.name)} has no entry in touchdeploy:hostKeys ` +
            `(add "${spec.name} ssh-ed25519 AAAA..." from \`ssh-keyscan -t ed25519 ${spec.target.address}\`)`,
        );
      }
    }
    // Two hosts on one machine must not share an app root or a port.
    const machine = spec.target.kind === "local" ? "local" : spec.target.address;
    for (const [what, value] of [
      ["root", host.root],
      ["port", String(host.port)],
    ]) {
      const other = placements.get(`${machine} ${what} ${value}`);
      if (other) {
        problem(
          `hosts[${i}]`,
          `host ${show(spec.name)} uses the same ${what} ${show(value)} as ${show(other)} on the same machine`,
        );
      }
      placements.set(`${machine} ${what} ${value}`, spec.name);
    }
    hosts.push(host);
  });
  for (const name of hostKeys.keys()) {
    if (!names.has(name)) {
      problem("hostKeys", `key for ${show(name)}, which is not in touchdeploy:hosts`);
    }
  }
  const sshHosts = hosts.filter((h) => h.target.kind === "ssh");
  if (sshHosts.length > 0 && !raw.sshPrivateKey) {
    problem(
      "sshPrivateKey",
      `required for ssh hosts (${sshHosts.map((h) => h.name).join(", ")}): ` +
        "pulumi config set --secret touchdeploy:sshPrivateKey < ~/.ssh/deploy_key",
    );
  }

  // The runtime image.
  const imageName = str("image");
  const baseImage = str("baseImage");
  let image: ImageConfig = { kind: "build", baseImage };
  if (imageName) {
    if (!IMAGE_PATTERN.test(imageName)) {
      problem("image", `${show(imageName)} is not an image reference`);
    }
    const unknownPlaceholder = /\{(?!fingerprint\})[^}]*\}/.exec(imageName);
    if (unknownPlaceholder) {
      problem("image", `unknown placeholder ${unknownPlaceholder[0]} (only {fingerprint} exists)`);
    }
    image = { kind: "pull", name: imageName };
  } else if (!IMAGE_PATTERN.test(baseImage) || baseImage.includes("{")) {
    problem("baseImage", `${show(baseImage)} is not an image reference`);
  }

  // The rollout.
  const strategy = str("rollout");
  const batchSize = int("batchSize", 1, 1000);
  let rollout: RolloutConfig = { strategy: "parallel" };
  if (strategy === "rolling") {
    rollout = { strategy: "rolling", batchSize };
  } else if (strategy !== "parallel") {
    problem("rollout", `unknown strategy ${show(strategy)} (use "parallel" or "rolling")`);
  }

  // Release behaviour.
  const healthPath = str("healthPath");
  if (!/^\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$/.test(healthPath)) {
    problem("healthPath", `${show(healthPath)} must be a URL path starting with "/"`);
  }
  const healthTimeoutSeconds = int("healthTimeout", 1, 3600);
  const keepReleases = int("keepReleases", 1, 1000);
  const reloadFile = str("reloadFile");
  if (!FILE_NAME_PATTERN.test(reloadFile)) {
    problem("reloadFile", `${show(reloadFile)} must be a plain file name (no "/")`);
  }
  const dependencyFiles = list("dependencyFiles") ?? [];
  dependencyFiles.forEach((file, i) => {
    if (!isCleanRelativePath(file)) {
      problem(
        `dependencyFiles[${i}]`,
        `${show(file)} must be a path relative to touchdeploy:appDir (letters, digits, ._-/, no "..")`,
      );
    }
  });
  if (new Set(dependencyFiles).size !== dependencyFiles.length) {
    problem("dependencyFiles", `lists a file twice: ${show(dependencyFiles)}`);
  }

  const knownHosts: string[] = [];
  (list("gitKnownHosts") ?? []).forEach((line, i) => {
    const parsed = parseKnownHostsLine(line);
    if (parsed.ok) {
      knownHosts.push(parsed.value);
    } else {
      parsed.problems.forEach((m) => problem(`gitKnownHosts[${i}]`, `${show(line)}: ${m}`));
    }
  });
  if (withDeployKey && knownHosts.length === 0) {
    problem("gitKnownHosts", "must list the git server's host keys: fetching verifies them");
  }
  const deployKey: DeployKeyConfig =
    deployKeyMode === "generate" || deployKeyMode === "provided"
      ? { kind: deployKeyMode, knownHosts }
      : { kind: "none" };

  if (problems.length > 0) {
    throw new ConfigError(problems);
  }
  return {
    appName,
    source,
    repoUrl,
    branch,
    commit: commit || undefined,
    appDir,
    hosts,
    image,
    rollout,
    healthPath,
    healthTimeoutSeconds,
    keepReleases,
    reloadFile,
    dependencyFiles,
    deployKey,
  };
}

/** Keys whose values are secrets: parseConfig only learns whether they are set. */
const SECRET_KEYS = new Set(["sshPrivateKey", "deployPrivateKey"]);

/** The validated config plus the secrets, which never leave Pulumi's secret Outputs. */
export interface LoadedConfig {
  config: TouchdeployConfig;
  /** `touchdeploy:sshPrivateKey`, when there are ssh hosts. */
  sshPrivateKey?: pulumi.Output<string>;
  /** `github:token`; undefined lets the GitHub provider fall back to GITHUB_TOKEN. */
  githubToken: pulumi.Output<string | undefined>;
  /** `touchdeploy:deployPrivateKey`, for deployKey "provided". */
  deployPrivateKey?: pulumi.Output<string>;
}

/**
 * Reads every `touchdeploy:*` key of the running stack, validates it with {@link parseConfig}
 * and reads the secrets as secret Outputs. Throws a {@link ConfigError} listing every problem.
 */
export function loadConfig(projectDir: string = process.cwd()): LoadedConfig {
  const raw: RawConfig = {};
  for (const [fullKey, value] of Object.entries(pulumi.runtime.allConfig())) {
    if (fullKey.startsWith(`${NAMESPACE}:`)) {
      const key = fullKey.slice(NAMESPACE.length + 1);
      // The secret's value stays out of the raw config (and so out of any error message).
      raw[key] = SECRET_KEYS.has(key) ? value !== "" : value;
    }
  }
  const config = parseConfig(raw, { projectDir });
  const ours = new pulumi.Config(NAMESPACE);
  const sshPrivateKey = config.hosts.some((h) => h.target.kind === "ssh")
    ? ours.requireSecret("sshPrivateKey")
    : undefined;
  const githubToken = pulumi.secret(
    pulumi.output(new pulumi.Config("github").getSecret("token")).apply((t) => t || undefined),
  );
  const deployPrivateKey =
    config.deployKey.kind === "provided" ? ours.requireSecret("deployPrivateKey") : undefined;
  return { config, sshPrivateKey, githubToken, deployPrivateKey };
}
