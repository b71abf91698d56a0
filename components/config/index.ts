/**
 * The stack configuration: {@link CONFIG_KEYS} (schema.ts) checks each key, one parser per
 * section (source, hosts, image, release) checks the rules between keys, and {@link parseConfig}
 * reports every problem at once. {@link loadConfig} reads the running stack and the secrets.
 */
import * as pulumi from "@pulumi/pulumi";
import { parseHosts, HostConfig } from "./hosts";
import { ImageConfig, parseImage } from "./image";
import { parseRelease, parseRollout, ReleaseConfig, RolloutConfig } from "./release";
import {
  checkKeys,
  CONFIG_KEYS,
  ConfigKey,
  ConfigProblem,
  envValueText,
  KeySpec,
  NAMESPACE,
  RawConfig,
  SECRET_KEYS,
} from "./schema";
import { SectionInput } from "./section";
import { parseSource, SourceConfig } from "./source";

export * from "./schema";
export type { HostConfig } from "./hosts";
export type { ImageConfig } from "./image";
export type { ContainerLimits, ReleaseConfig, RolloutConfig } from "./release";
export type { DeployKeyConfig, SourceConfig } from "./source";

/** The validated configuration of a stack, in the groups the components take whole. */
export interface TouchdeployConfig {
  appName: string;
  source: SourceConfig;
  hosts: HostConfig[];
  image: ImageConfig;
  release: ReleaseConfig;
  rollout: RolloutConfig;
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

/** Facts about the environment the raw config is interpreted in. */
export interface ConfigContext {
  /** Directory of Pulumi.yaml; relative repoPath values are resolved against it. */
  projectDir: string;
  /** Receives deprecation warnings (default: none). */
  warn?: (message: string) => void;
  /**
   * Whether the stack holds a secret key encrypted (default: yes). The CLI tells the program
   * which keys hold an encrypted value (`PULUMI_CONFIG_SECRET_KEYS`).
   */
  encrypted?: (key: ConfigKey) => boolean;
}

/**
 * Validates raw stack config and applies defaults. Throws one {@link ConfigError} listing every
 * problem with its key path and bad value; returns the grouped config otherwise.
 */
export function parseConfig(raw: RawConfig, context: ConfigContext): TouchdeployConfig {
  const { values, problems, failed } = checkKeys(raw);
  const input: SectionInput = {
    values,
    failed,
    problem: (path, message) => problems.push({ path: `${NAMESPACE}:${path}`, message }),
    warn: context.warn ?? (() => undefined),
    encrypted: context.encrypted ?? (() => true),
  };
  const source = parseSource(input, context);
  const hosts = parseHosts(input, values.appName);
  const image = parseImage(input);
  const release = parseRelease(input);
  const rollout = parseRollout(input);
  if (problems.length > 0) {
    throw new ConfigError(problems);
  }
  return { appName: values.appName, source, hosts, image, release, rollout };
}

/** The validated config plus the secrets, which never leave Pulumi's secret Outputs. */
export interface LoadedConfig {
  config: TouchdeployConfig;
  /** `touchdeploy:sshPrivateKey`, when there are ssh hosts (ends with a newline). */
  sshPrivateKey?: pulumi.Output<string>;
  /** `github:token`; undefined lets the GitHub provider fall back to GITHUB_TOKEN. */
  githubToken: pulumi.Output<string | undefined>;
  /** `touchdeploy:deployPrivateKey`, for deployKey "provided" (ends with a newline). */
  deployPrivateKey?: pulumi.Output<string>;
  /**
   * `touchdeploy:secretEnv`'s values by name (a secret), when it has any; the names are
   * `config.release.secretEnvNames`.
   */
  secretEnv?: pulumi.Output<Record<string, string>>;
}

/**
 * A private key as OpenSSH wants it: LF line ends and one final newline. `pulumi config set
 * --secret KEY < file` strips the trailing newline (pulumi/pulumi v3.248.0
 * pkg/cmd/pulumi/config/config.go reads stdin through `cmdutil.RemoveTrailingNewline`) and
 * OpenSSH then refuses the key ("error in libcrypto").
 */
export function normalizePrivateKey(key: string): string {
  return key.replace(/\r\n/g, "\n").replace(/\s+$/, "") + "\n";
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
      const spec = (CONFIG_KEYS as Record<string, KeySpec | undefined>)[key];
      // A secret's value stays out of the raw config (and so out of any error message), unless
      // its schema checks the value's shape (and never shows it).
      raw[key] =
        (SECRET_KEYS as string[]).includes(key) && !spec?.checksSecretValue ? value !== "" : value;
    }
  }
  const config = parseConfig(raw, {
    projectDir,
    warn: (m) => void pulumi.log.warn(m),
    encrypted: (key) => isConfigSecret(`${NAMESPACE}:${key}`),
  });
  const ours = new pulumi.Config(NAMESPACE);
  const sshPrivateKey = config.hosts.some((h) => h.target.kind === "ssh")
    ? ours.requireSecret("sshPrivateKey").apply(normalizePrivateKey)
    : undefined;
  const githubToken = pulumi.secret(
    pulumi.output(new pulumi.Config("github").getSecret("token")).apply((t) => t || undefined),
  );
  const deployPrivateKey =
    config.source.deployKey.kind === "provided"
      ? ours.requireSecret("deployPrivateKey").apply(normalizePrivateKey)
      : undefined;
  // Read only once parseConfig has checked it is a JSON object of valid values: getSecretObject
  // of a value that is not JSON throws a ConfigTypeError that shows the value (pulumi v3.248.0
  // sdk/nodejs/config.ts `getObjectImpl`).
  const secretEnv =
    config.release.secretEnvNames.length > 0
      ? pulumi.secret(
          pulumi
            .output(ours.requireSecretObject<Record<string, unknown>>("secretEnv"))
            .apply(secretEnvTexts),
        )
      : undefined;
  return { config, sshPrivateKey, githubToken, deployPrivateKey, secretEnv };
}

/** The secret environment's values as text (the conversion the schema checked), by name. */
function secretEnvTexts(values: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of Object.keys(values).sort()) {
    const value = envValueText(values[name]);
    if ("problem" in value) {
      // Unreachable after parseConfig; the value itself is never shown.
      throw new pulumi.RunError(`touchdeploy:secretEnv.${name}: ${value.problem}`);
    }
    out[name] = value.text;
  }
  return out;
}

/**
 * Whether the CLI gave the program this key as a secret (it lists every key holding an
 * encrypted value, an object's included, in PULUMI_CONFIG_SECRET_KEYS). @pulumi/pulumi 3.248.0
 * exports `runtime.isConfigSecret` (sdk/nodejs/runtime/config.ts) but marks it @internal, so its
 * declaration is not in the package's types; without it, the key counts as encrypted.
 */
function isConfigSecret(fullKey: string): boolean {
  const runtime = pulumi.runtime as unknown as { isConfigSecret?: (k: string) => boolean };
  return runtime.isConfigSecret ? runtime.isConfigSecret(fullKey) : true;
}
