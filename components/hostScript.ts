/**
 * The host-side release engine (`host/touchdeploy.sh`) as the commands send it: the script goes
 * on stdin, the arguments are shell-quoted on the command line. Pure apart from reading the
 * script once.
 */
import * as fs from "fs";
import * as path from "path";
import { quote } from "shell-quote";
import type { ReleaseConfig } from "./config";
import { CONTAINER_UID, PAYLOAD_RECORDS, Phase, RULES, SUBCOMMANDS } from "./contract";

/** Path of the host script in this repository. */
export const HOST_SCRIPT_PATH = path.join(__dirname, "..", "host", "touchdeploy.sh");

/** The script text every command sends on stdin. */
export function readHostScript(file: string = HOST_SCRIPT_PATH): string {
  return fs.readFileSync(file, "utf8");
}

/** The script's subcommands (see {@link SUBCOMMANDS} for the phase each one is). */
export type HostScriptSubcommand = (typeof SUBCOMMANDS)[Phase] | "status" | "check";

/** Options of one invocation, `--name value`; undefined and empty values are left out. */
export type HostScriptOptions = Record<string, string | number | undefined>;

/**
 * The command line that runs a script read from stdin with these arguments: `bash -s -- WORDS`.
 * Every word is quoted with shell-quote, so no value is ever interpreted by the shell.
 */
export function bashStdinCommand(words: readonly string[]): string {
  return `bash -s -- ${quote([...words])}`;
}

/** The host script's command line: `bash -s -- SUBCOMMAND --name value...`. */
export function hostScriptCommand(
  subcommand: HostScriptSubcommand,
  options: HostScriptOptions,
): string {
  const words: string[] = [subcommand];
  for (const [name, value] of Object.entries(options)) {
    if (value !== undefined && value !== "") {
      words.push(`--${name}`, String(value));
    }
  }
  return bashStdinCommand(words);
}

/**
 * The command line of one phase (setup, fetch, release, destroy, ...). It reaches the host's
 * shell as one argument (pulumi-command 1.2.1 runs `/bin/sh -c LINE` locally,
 * local/commandOutputs.go `run`; remotely the SSH exec request, which sshd hands to the user's
 * shell as `-c LINE`), so it must fit one argument of execve(2).
 */
export function phaseCommand(phase: Phase, options: HostScriptOptions): string {
  const line = hostScriptCommand(SUBCOMMANDS[phase], options);
  const bytes = Buffer.byteLength(line, "utf8");
  if (bytes > RULES.maxArg) {
    throw new Error(
      `the ${phase} command line is ${bytes} bytes, at most ${RULES.maxArg} (one argument of execve(2))`,
    );
  }
  return line;
}

/** `setup`: creates the app root's layout (idempotent), the state directories included. */
export function setupOptions(
  root: string,
  release: Pick<ReleaseConfig, "reloadFile" | "stateDirs">,
): HostScriptOptions {
  return {
    root,
    "reload-file": release.reloadFile,
    "state-dirs": release.stateDirs.length > 0 ? release.stateDirs.join(" ") : undefined,
  };
}

/** `destroy`: removes what touchdeploy made under the root, keeps shared/ and state/ (COORD.md). */
export function destroyOptions(root: string) {
  return { root };
}

/** `fetch`: fetches the commit into releases/<sha>, with the fetch key when there is one. */
export function fetchOptions(
  root: string,
  source: { repoUrl: string; commit: string },
  withFetchKey: boolean,
): HostScriptOptions {
  const keys = fetchKeyPaths(root);
  return {
    root,
    repo: source.repoUrl,
    commit: source.commit,
    "ssh-key": withFetchKey ? keys.key : undefined,
    "known-hosts": withFetchKey ? keys.knownHosts : undefined,
  };
}

/** The health URL as seen from the host itself (the host script polls it there). */
export function hostHealthUrl(bindAddress: string, port: number, healthPath: string): string {
  const address = bindAddress === "0.0.0.0" ? "127.0.0.1" : bindAddress;
  return `http://${address}:${port}${healthPath}`;
}

/** What the release of one host runs besides the switch, on that host's container. */
export interface ReleaseRun {
  /** The app's container on the host: where the release command and the processes run. */
  container: string;
  /** Whether this host runs `releaseCommand` (all hosts, or the rollout's first). */
  runsReleaseCommand: boolean;
}

/**
 * `release`: runs the release command (when this host runs it), switches current to the
 * commit, reloads once, waits for health, restarts the processes. The dependency guard gets the
 * container's fingerprint, unless the image is unmanaged (nothing to guard). The env, secrets
 * and processes always follow on stdin (`--payload stdin`, see {@link releaseStdin}): an empty
 * payload means none, so removing the last one from the config removes it from the host too.
 */
export function releaseOptions(
  host: { root: string; port: number; bindAddress: string },
  release: ReleaseConfig,
  commit: string,
  containerFingerprint: string | undefined,
  run: ReleaseRun,
): HostScriptOptions {
  return {
    root: host.root,
    commit,
    subdir: release.appDir,
    "reload-file": release.reloadFile,
    "health-url": hostHealthUrl(host.bindAddress, host.port, release.health.path),
    ...release.hostOptions,
    "dependency-files":
      containerFingerprint === undefined ? undefined : release.dependencyFiles.join(" "),
    "container-fingerprint": containerFingerprint,
    container: run.container,
    "release-command": run.runsReleaseCommand ? release.releaseCommand?.command : undefined,
    payload: "stdin",
  };
}

/** One payload record: three fields. */
export type PayloadRecord = readonly [keyof typeof PAYLOAD_RECORDS, string, string];

/**
 * The payload's records: the env sorted by name, then the secrets sorted by name, then the
 * processes in config order (COORD.md, issue 11).
 */
export function payloadRecords(
  release: Pick<ReleaseConfig, "env" | "processes">,
  secretEnv: Readonly<Record<string, string>>,
): PayloadRecord[] {
  const byName = (values: Readonly<Record<string, string>>) => Object.keys(values).sort();
  return [
    ...byName(release.env).map((k): PayloadRecord => ["env", k, release.env[k]]),
    ...byName(secretEnv).map((k): PayloadRecord => ["secret", k, secretEnv[k]]),
    ...release.processes.map((p): PayloadRecord => ["process", p.name, p.command]),
  ];
}

/** The payload's bytes (as a string): every field followed by one NUL. */
export function encodePayload(records: readonly PayloadRecord[]): string {
  return records
    .map(([kind, ...fields]) =>
      [PAYLOAD_RECORDS[kind], ...fields]
        .map((field) => {
          if (field.includes("\0")) {
            // The config refuses NULs; a value built in code must not break the framing.
            throw new Error(`payload ${kind} record: a field contains a NUL character`);
          }
          return `${field}\0`;
        })
        .join(""),
    )
    .join("");
}

/** The last line of the host script: bash -s has read up to it, and no further, when main runs. */
export const SCRIPT_LAST_LINE = 'main "$@"';

/**
 * The release command's stdin: the script, then the payload. bash -s reads the script line by
 * line and runs `main "$@"` after reading exactly that line; main reads the rest (the payload)
 * itself. So the script must end with that line and its newline: otherwise bash would read the
 * payload as more script.
 */
export function releaseStdin(script: string, payload: string): string {
  if (!script.endsWith(`\n${SCRIPT_LAST_LINE}\n`)) {
    throw new Error(
      `the host script must end with the line ${SCRIPT_LAST_LINE} and a newline: the payload follows it on stdin`,
    );
  }
  return script + payload;
}

/**
 * The command that reports the container's user, as `setup` reports it (a line `touchdeploy:
 * user UID:GID`) and by setup's rule (host/touchdeploy.sh `container_user_default`): the deploy
 * user's uid:gid, so that the container can read what the deploy user writes (env, secrets,
 * state dirs), or 10001:10001 when the deploy user is root. A command of its own, not setup's
 * output: setup's stdin is the script, so every new version of the script makes setup an update,
 * and pulumi-go-provider v1.3.0 marks every output of an updated resource unknown in preview
 * (infer/resource.go `markComputed`: an output depends on every input by default,
 * `ensureDefaultComputed`). The container's user would then be unknown in every preview after
 * an upgrade, and the container (user is ForceNew) shown as replaced. This command's inputs
 * never change, so its output stays known.
 */
export function containerUserCommand(): string {
  return [
    "set -eu",
    "u=$(id -u)",
    "g=$(id -g)",
    `if [ "$u" = 0 ]; then u=${CONTAINER_UID} g=${CONTAINER_UID}; fi`,
    `printf 'touchdeploy: user %s:%s\\n' "$u" "$g"`,
  ].join("; ");
}

/** The UID:GID of the last `touchdeploy: user UID:GID` line of a command's output, if any. */
export function parseContainerUser(stdout: string): string | undefined {
  const lines = [...stdout.matchAll(/^touchdeploy: user (\d+:\d+)$/gm)];
  return lines.length > 0 ? lines[lines.length - 1][1] : undefined;
}

/** Where the fetch key and the git server's host keys live under an app root (mode 0700). */
export function fetchKeyPaths(root: string): { dir: string; key: string; knownHosts: string } {
  const dir = `${root}/.ssh`;
  return { dir, key: `${dir}/deploy_key`, knownHosts: `${dir}/known_hosts` };
}

/**
 * The command that installs the fetch key: the private key arrives on stdin (never in argv or
 * a log) and is written 0600 (in a 0700 directory the container's user cannot enter); the
 * known_hosts lines are public and written as given. Both are replaced atomically.
 */
export function installFetchKeyCommand(root: string, knownHosts: readonly string[]): string {
  const { dir, key, knownHosts: knownHostsFile } = fetchKeyPaths(root);
  return [
    "set -eu",
    "umask 077",
    `mkdir -p ${quote([dir])}`,
    `chmod 700 ${quote([dir])}`,
    `cat > ${quote([`${key}.new`])}`,
    `test -s ${quote([`${key}.new`])}`,
    `mv -f ${quote([`${key}.new`, key])}`,
    `printf '%s\\n' ${quote([...knownHosts])} > ${quote([`${knownHostsFile}.new`])}`,
    `mv -f ${quote([`${knownHostsFile}.new`, knownHostsFile])}`,
    `echo ${quote([`touchdeploy: fetch key installed in ${dir}`])}`,
  ].join("; ");
}

/** The fetch key command's `delete`: the key and known_hosts files go, for sure. */
export function removeFetchKeyCommand(root: string): string {
  const { dir, key, knownHosts } = fetchKeyPaths(root);
  return [
    "set -eu",
    `rm -f -- ${quote([key, `${key}.new`, knownHosts, `${knownHosts}.new`])}`,
    `echo ${quote([`touchdeploy: fetch key removed from ${dir}`])}`,
  ].join("; ");
}
