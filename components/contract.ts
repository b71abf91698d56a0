/**
 * The contract between the Pulumi program, the host script (`host/touchdeploy.sh`) and the
 * runtime image (`runtime/`): every constant more than one of them relies on, in one place.
 * test/unit/contract.test.ts checks that the script and the image hold exactly these values, and
 * test/unit/hostRules.test.ts that whatever the program accepts under these rules, the script's
 * own validation (`touchdeploy.sh check ...`) accepts too.
 */

/** Where the app root is mounted in the container (the image's `TOUCHDEPLOY_ROOT`). */
export const CONTAINER_APP_ROOT = "/srv/app";
/**
 * Where the state directories are mounted in the container, read-write: `<root>/state/<name>` on
 * the host is `/srv/state/<name>` in the container (COORD.md, issue 11).
 */
export const CONTAINER_STATE_ROOT = "/srv/state";
/** The directory of the state directories in an app root (kept by `destroy`). */
export const STATE_DIR = "state";
/** The port uWSGI listens on in the container (the image's `TOUCHDEPLOY_PORT`). */
export const CONTAINER_PORT = 8000;
/** The container's user and group id (runtime/Dockerfile): release files must be readable by it. */
export const CONTAINER_UID = 10001;

/** Environment variables of the runtime image that the program sets or relies on. */
export const ENV = {
  root: "TOUCHDEPLOY_ROOT",
  appSubdir: "TOUCHDEPLOY_APP_SUBDIR",
  reloadFile: "TOUCHDEPLOY_RELOAD_FILE",
  port: "TOUCHDEPLOY_PORT",
  fingerprint: "TOUCHDEPLOY_FINGERPRINT",
  /**
   * The path the runtime's generations manager checks on a new generation before it retires the
   * old one (runtime/touchdeploy_generations.py): the release config's health path, the one the
   * host script's health check polls.
   */
  healthPath: "TOUCHDEPLOY_HEALTH_PATH",
} as const;

/**
 * The runtime's own variables, which the program neither sets nor reads: the env loader's, the
 * process tool's and the generations manager's (runtime/touchdeploy_env.py, touchdeploy_tool.py,
 * touchdeploy_generations.py, uwsgi.ini, Dockerfile). The app's
 * env may set none of them (no `TOUCHDEPLOY_*` name at all: {@link RULES}.reservedEnvPrefixes).
 */
export const RUNTIME_INTERNAL_ENV = [
  "TOUCHDEPLOY_CONFIG_DIR",
  "TOUCHDEPLOY_CONFIG_VERSION",
  "TOUCHDEPLOY_ENV_SAVED",
  "TOUCHDEPLOY_GENERATION",
  "TOUCHDEPLOY_MASTER_FIFO",
  "TOUCHDEPLOY_PRIVATE_SOCKET",
  "TOUCHDEPLOY_PROCESS",
  "TOUCHDEPLOY_PROCESS_STARTSECS",
  "TOUCHDEPLOY_RELEASE",
  "TOUCHDEPLOY_RUN_DIR",
  "TOUCHDEPLOY_START_TIMEOUT",
  "TOUCHDEPLOY_SUPERVISOR_SOCKET",
] as const;

/** Response headers uWSGI adds (runtime/uwsgi.ini) and the host script's health check reads. */
export const HEADERS = {
  revision: "X-Revision",
  fingerprint: "X-Touchdeploy-Fingerprint",
  /** The live config version (env, secrets, processes): proves the new env is loaded. */
  config: "X-Touchdeploy-Config",
} as const;

/** The fingerprint of an image that is not built for a commit's dependencies. */
export const UNMANAGED_FINGERPRINT = "unmanaged";

/** The default name of the reload trigger in the app root. */
export const DEFAULT_RELOAD_FILE = ".reload";

/**
 * Names touchdeploy itself uses in an app root (globs: `*` matches any suffix): the reload
 * trigger may be none of them. The host script's RESERVED list.
 */
export const RESERVED_ROOT_NAMES = [
  "releases",
  "current",
  "previous",
  "repo.git",
  "shared",
  "state",
  ".ssh",
  ".history",
  ".lock*",
  ".switch*",
  ".current.*",
  ".previous.*",
  ".tmp-*",
  // The app's config versions (env, secrets, processes), switched with the release (issue 11).
  "configs",
  "config",
  "previous-config",
  ".config.*",
  ".previous-config.*",
] as const;

/** True when `name` is one of {@link RESERVED_ROOT_NAMES} (a `*` matching any suffix). */
export function isReservedRootName(name: string): boolean {
  return RESERVED_ROOT_NAMES.some((reserved) =>
    reserved.endsWith("*") ? name.startsWith(reserved.slice(0, -1)) : name === reserved,
  );
}

/** The host script's exit codes (host/touchdeploy.sh header; README "When a deploy fails"). */
export const EXIT = {
  ok: 0,
  unexpected: 1,
  usage: 2,
  nothingLive: 3,
  missing: 4,
  dependencies: 5,
  rolledBack: 6,
  urgent: 7,
  lockTimeout: 8,
  /** The release command failed: nothing was switched, the old release (and env) serves. */
  releaseCommand: 9,
} as const;

/** Where the release command runs: once per rollout on its first host, or on every host. */
export const RELEASE_COMMAND_ON = ["first-host", "every-host"] as const;
export type ReleaseCommandOn = (typeof RELEASE_COMMAND_ON)[number];

/** Seconds between TERM and KILL when the app's processes restart (`--process-stop-timeout`). */
export const DEFAULT_PROCESS_STOP_TIMEOUT = 10;

/**
 * The release payload (`release --payload stdin`, COORD.md issue 11): after the script text,
 * NUL-terminated fields in records of three: `env KEY VALUE`, `secret KEY VALUE`,
 * `process NAME COMMAND`.
 */
export const PAYLOAD_RECORDS = { env: "env", secret: "secret", process: "process" } as const;

/**
 * The host script's subcommand for each phase. The phases are named setup → fetch → release
 * everywhere: resource names, subcommands, step lines and the README. The script still accepts
 * the old names init/prepare/activate as aliases for one release.
 */
export const SUBCOMMANDS = {
  setup: "setup",
  fetch: "fetch",
  release: "release",
  deploy: "deploy",
  rollback: "rollback",
  destroy: "destroy",
} as const;

export type Phase = keyof typeof SUBCOMMANDS;

/**
 * Character rules the host script applies to its options (`validate_*` in host/touchdeploy.sh),
 * as the program applies them at preview.
 */
export const RULES = {
  /** A commit: exactly 40 lowercase hex digits. */
  sha: /^[0-9a-f]{40}$/,
  /** `--subdir` and each `--dependency-files` entry: plain path characters, relative. */
  relativePathChars: /^[A-Za-z0-9._/@+-]+$/,
  /** `--reload-file`: a plain name (the program allows fewer characters than the script). */
  fileNameChars: /^[A-Za-z0-9._-]{1,100}$/,
  /** `--repo` as a URL: characters that need no quoting anywhere. */
  repoChars: /^[\]A-Za-z0-9._~:/?#@!%+,=[-]+$/,
  /** `--repo` as a local path: the same and spaces (a checkout under "My Projects"). */
  localRepoChars: /^[\]A-Za-z0-9._~:/?#@!%+,=[ -]+$/,
  /** `--repo` as scp-like `user@host:path`. */
  repoScp: /^[A-Za-z0-9_][A-Za-z0-9._-]*@[A-Za-z0-9_][A-Za-z0-9._-]*:.+$/,
  /** `--repo` schemes (`ext::` and other transports that run commands never pass). */
  repoSchemes: /^(\/|file:\/\/.|ssh:\/\/.|https:\/\/.|http:\/\/.|git:\/\/.)/,
  /** Control characters: refused in every option. */
  control: /[\x00-\x1f\x7f]/,
  /** `--health-timeout`, `--keep`, `--lock-timeout`: 1..999999. */
  maxPositiveInt: 999_999,
  /** `--container-fingerprint`. */
  fingerprint: /^[A-Za-z0-9][A-Za-z0-9._:+-]{0,127}$/,
  /** A payload `env`/`secret` KEY: an environment variable name of at most 255 characters... */
  envName: /^[A-Za-z_][A-Za-z0-9_]{0,254}$/,
  /**
   * ...not starting with one of these: the runtime's own variables, and those uWSGI reads as
   * its options (`UWSGI_PROCESSES=8` would override the app's uwsgi.ini).
   */
  reservedEnvPrefixes: ["TOUCHDEPLOY_", "UWSGI_"] as readonly string[],
  /**
   * Bytes of one argument or environment variable (`NAME=value`) execve(2) passes
   * (MAX_ARG_STRLEN, 32 pages, less the NUL): `--release-command`, a process's command, a
   * variable.
   */
  maxArg: 131_071,
  /**
   * Bytes of `releaseCommand`: it is one word of the release's command line, which reaches the
   * shell as one argument (`/bin/sh -c LINE` locally, the SSH exec request remotely), so the
   * whole line, the command quoted (at most twice as long), must stay under {@link maxArg}.
   */
  maxReleaseCommand: 32_768,
  /** Bytes all env and secret variables may take together (`NAME=value` and a NUL each, +1). */
  maxEnvTotal: 1_048_576,
  /** Records in a payload. */
  maxPayloadRecords: 1000,
  /** A payload `process` NAME... */
  processName: /^[a-z][a-z0-9-]{0,30}$/,
  /** ...none of these (the container's own programs). */
  reservedProcessNames: ["uwsgi"] as readonly string[],
  /** A `--state-dirs` name (`<root>/state/<name>`). */
  stateDirName: /^[a-z][a-z0-9_-]{0,30}$/,
} as const;

/** The first reason `root` is refused as an app root (`validate_root`), or undefined. */
export function rootProblem(root: string): string | undefined {
  if (RULES.control.test(root)) return "must not contain control characters";
  if (!root.startsWith("/")) return 'must be an absolute path (starting with "/")';
  const parts = root.split("/");
  if (parts.some((p) => p === "." || p === "..")) return 'must not contain "." or ".." components';
  if (root.replace(/\/+$/, "") === "") return 'must not be "/"';
  return undefined;
}

/** The first reason a relative path (app dir, dependency file) is refused, or undefined. */
export function relativePathProblem(value: string): string | undefined {
  if (!RULES.relativePathChars.test(value))
    return "may only contain letters, digits and . _ / @ + -";
  if (value.startsWith("/")) return "must be relative";
  if (value.startsWith("-")) return 'must not start with "-"';
  if (value.split("/").some((p) => p === ".." || p === "")) {
    return 'must not contain ".." or empty components';
  }
  return undefined;
}

/** The first reason a reload trigger name is refused, or undefined. */
export function reloadFileProblem(name: string): string | undefined {
  if (!RULES.fileNameChars.test(name) || name === "." || name === "..") {
    return "must be a plain file name in the app root (letters, digits, . _ -; no /)";
  }
  if (name.startsWith("-")) return 'must not start with "-"';
  if (isReservedRootName(name)) {
    return `is one of touchdeploy's own names in the app root (${RESERVED_ROOT_NAMES.join(", ")})`;
  }
  return undefined;
}

/**
 * The first reason `repo` is refused as what hosts fetch from (`validate_repo`), or undefined.
 * A local absolute path may contain spaces (item 10 of issue 8: a checkout under "My Projects");
 * URLs may not (percent-encode them).
 */
export function repoProblem(repo: string): string | undefined {
  if (RULES.control.test(repo)) return "must not contain control characters";
  if (repo.startsWith("-")) return 'must not start with "-"';
  const local = repo.startsWith("/");
  if (!(local ? RULES.localRepoChars : RULES.repoChars).test(repo)) {
    return local
      ? "contains a character not allowed in a repository path (letters, digits, spaces and ._~:/?#@!%+,=[]- only)"
      : "contains a character not allowed in a repository URL (percent-encode it)";
  }
  if (/:\/\/-|@-/.test(repo)) return 'a host must not start with "-"';
  if (!RULES.repoSchemes.test(repo) && !RULES.repoScp.test(repo)) {
    return "must be an absolute path, a file://, ssh://, https://, http:// or git:// URL, or user@host:path";
  }
  return undefined;
}
