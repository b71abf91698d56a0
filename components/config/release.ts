/** The release section: what a release does on each host, and how releases roll across hosts. */
import { relativePathProblem, ReleaseCommandOn, reloadFileProblem, RULES } from "../contract";
import { hostOptionsOf, ProcessSpec, utf8Bytes } from "./schema";
import { SectionInput, show } from "./section";

/** What each host's release does (passed through whole, from the config to the host script). */
export interface ReleaseConfig {
  /** The app's directory in the repository ("" for the root): holds uwsgi.ini. */
  appDir: string;
  /** Name of the reload trigger in each app root. */
  reloadFile: string;
  /** The health check after the reload: 200 with X-Revision equal to the commit, at this path. */
  health: { path: string };
  /**
   * The keys passed to the host script's release unchanged, by option name (`hostOption` in the
   * schema: health-timeout, keep, process-stop-timeout).
   */
  hostOptions: Readonly<Record<string, string | number>>;
  /** Dependency files (relative to appDir), in fingerprint order: the host script's guard. */
  dependencyFiles: string[];
  /**
   * The command run in the new release before the switch, and on which hosts; undefined when
   * there is none.
   */
  releaseCommand?: { command: string; on: ReleaseCommandOn };
  /** The app's plain environment, by name (sorted). Sent in the release payload. */
  env: Record<string, string>;
  /**
   * The names of the app's secret environment variables (sorted). Their values are never part
   * of the config: `loadConfig` reads them as one secret Output.
   */
  secretEnvNames: string[];
  /** State directory names: `<root>/state/<name>`, mounted read-write at `/srv/state/<name>`. */
  stateDirs: string[];
  /** Processes run next to uWSGI, restarted by each release (in config order). */
  processes: ProcessSpec[];
  /** The container's resource limits (`touchdeploy:memory`, `touchdeploy:cpus`). */
  limits: ContainerLimits;
}

/** The container's resource limits; undefined means "off" (no limit). */
export interface ContainerLimits {
  /** Memory (and memory + swap) in megabytes: the provider's unit. */
  memoryMb: number | undefined;
  /** CPUs, spelled as the Docker provider reads them back (components/containerLimits.ts). */
  cpus: string | undefined;
}

/** Rollout order across hosts. */
export type RolloutConfig = { strategy: "parallel" } | { strategy: "rolling"; batchSize: number };

export function parseRelease({ values: v, problem, encrypted }: SectionInput): ReleaseConfig {
  const appDir = v.appDir.replace(/\/+$/, "");
  if (appDir) {
    const why = relativePathProblem(appDir);
    if (why)
      problem("appDir", `${show(appDir)} must be a relative path inside the repository: it ${why}`);
  }
  const whyReload = reloadFileProblem(v.reloadFile);
  if (whyReload) problem("reloadFile", `${show(v.reloadFile)} ${whyReload}`);
  v.dependencyFiles.forEach((file, i) => {
    const why = relativePathProblem(file);
    if (why) {
      problem(
        `dependencyFiles[${i}]`,
        `${show(file)} must be a path relative to touchdeploy:appDir: it ${why}`,
      );
    }
  });
  if (new Set(v.dependencyFiles).size !== v.dependencyFiles.length) {
    problem("dependencyFiles", `lists a file twice: ${show(v.dependencyFiles)}`);
  }
  const secretNames = Object.keys(v.secretEnv);
  for (const name of secretNames) {
    if (name in v.env) {
      problem(
        `secretEnv.${name}`,
        `${name} is also set in touchdeploy:env: keep it in one of them (secretEnv for a secret)`,
      );
    }
  }
  // `pulumi config set --path` without --secret stores the value in plaintext in
  // Pulumi.<stack>.yaml; the CLI marks a key secret when any value in it is encrypted
  // (pulumi v3.248.0 sdk/go/common/resource/config/object.go `Secure`, map.go `SecureKeys`).
  if (secretNames.length > 0 && !encrypted("secretEnv")) {
    problem(
      "secretEnv",
      `holds no encrypted value (${secretNames.join(", ")} in plaintext in the stack file): set each with \`pulumi config set --secret --path 'touchdeploy:secretEnv.NAME' < file\`, or move them to touchdeploy:env`,
    );
  }
  // The host's limits on the whole payload (every process of the app gets the env from
  // execve(2)): `NAME=value` and a NUL per variable.
  const envBytes =
    Object.entries(v.env).reduce(
      (sum, [k, value]) => sum + utf8Bytes(k) + utf8Bytes(value) + 2,
      0,
    ) + Object.entries(v.secretEnv).reduce((sum, [k, bytes]) => sum + utf8Bytes(k) + bytes + 2, 0);
  if (envBytes > RULES.maxEnvTotal) {
    problem(
      "env",
      `with touchdeploy:secretEnv takes ${envBytes} bytes, at most ${RULES.maxEnvTotal} (every process of the app gets them)`,
    );
  }
  const records = Object.keys(v.env).length + secretNames.length + v.processes.length;
  if (records > RULES.maxPayloadRecords) {
    problem(
      "env",
      `with touchdeploy:secretEnv and touchdeploy:processes makes ${records} records, at most ${RULES.maxPayloadRecords}`,
    );
  }
  return {
    appDir,
    reloadFile: v.reloadFile,
    health: { path: v.healthPath },
    hostOptions: hostOptionsOf(v),
    dependencyFiles: v.dependencyFiles,
    releaseCommand: v.releaseCommand
      ? { command: v.releaseCommand, on: v.releaseCommandOn as ReleaseCommandOn }
      : undefined,
    env: v.env,
    secretEnvNames: secretNames,
    stateDirs: v.stateDirs,
    processes: v.processes,
    limits: { memoryMb: v.memory, cpus: v.cpus },
  };
}

export function parseRollout({ values: v }: SectionInput): RolloutConfig {
  return v.rollout === "rolling"
    ? { strategy: "rolling", batchSize: v.batchSize }
    : { strategy: "parallel" };
}
