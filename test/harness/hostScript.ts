/**
 * Runs host/touchdeploy.sh the way the Pulumi program does: `bash -s -- <args>` with the
 * script text on stdin, every argument shell-quoted with shell-quote's `quote`, the command
 * string run by `/bin/sh -c` (what `@pulumi/command`'s local.Command does) or by sshd (what
 * remote.Command does, see sshd.ts).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { bashStdinCommand } from "../../components/hostScript";
import { REPO_ROOT } from "./images";
import { start, type RunOptions, type RunResult, type Started } from "./process";

export const HOST_SCRIPT_PATH = path.join(REPO_ROOT, "host", "touchdeploy.sh");

/** The script's exit codes (its EXIT_CODES table, host/README.md, README.md). */
export const EXIT = {
  ok: 0,
  unexpected: 1,
  badInput: 2,
  nothingLive: 3,
  missing: 4,
  dependencies: 5,
  rolledBack: 6,
  urgent: 7,
  lockTimeout: 8,
  /** The release command failed or timed out: nothing was switched. */
  releaseCommand: 9,
  /** Interrupted by SIGHUP, SIGINT or SIGTERM before the switch: nothing live changed. */
  hangup: 129,
  interrupt: 130,
  terminated: 143,
} as const;

/** The script text, as the program sends it on stdin. */
export function hostScriptText(): string {
  return fs.readFileSync(HOST_SCRIPT_PATH, "utf8");
}

/**
 * The command string the program runs, for any argument list (hostile ones included):
 * `bash -s -- 'arg' 'arg' ...`, quoted exactly as components/hostScript.ts quotes.
 */
export const hostScriptCommand = bashStdinCommand;

/** Options of a local run: the script's stdin is its text, then `payload` (--payload stdin). */
export type HostScriptRunOptions = Omit<RunOptions, "input"> & { payload?: Buffer };

/** Starts the script locally through `/bin/sh -c` with the script (and payload) on stdin. */
export function startHostScript(args: readonly string[], opts: HostScriptRunOptions = {}): Started {
  const { payload, ...rest } = opts;
  const script = Buffer.from(hostScriptText(), "utf8");
  return start("/bin/sh", ["-c", hostScriptCommand(args)], {
    timeoutMs: 180_000,
    ...rest,
    input: payload ? Buffer.concat([script, payload]) : script,
  });
}

/** Runs the script locally to completion (never throws on a non-zero exit: check `code`). */
export function runHostScript(
  args: readonly string[],
  opts: Omit<HostScriptRunOptions, "check"> = {},
): Promise<RunResult> {
  return startHostScript(args, opts).result;
}

/** The release state of an app root, to compare before and after a command. */
export interface RootSnapshot {
  /** Names under releases/ (including hidden temporary ones), sorted. */
  releases: string[];
  /** Targets of the current and previous symlinks (null when absent). */
  current: string | null;
  previous: string | null;
  /** mtime of the reload trigger in ms (null when absent). */
  triggerMtimeMs: number | null;
}

export function snapshotRoot(root: string, reloadFile = ".reload"): RootSnapshot {
  const readLink = (name: string): string | null => {
    try {
      return fs.readlinkSync(path.join(root, name));
    } catch {
      return null;
    }
  };
  let releases: string[] = [];
  try {
    releases = fs.readdirSync(path.join(root, "releases")).sort();
  } catch {
    // no releases/ yet
  }
  let triggerMtimeMs: number | null = null;
  try {
    triggerMtimeMs = fs.statSync(path.join(root, reloadFile)).mtimeMs;
  } catch {
    // no trigger yet
  }
  return { releases, current: readLink("current"), previous: readLink("previous"), triggerMtimeMs };
}

/** Lines of the script's stderr that are errors (`touchdeploy: error: ...`). */
export function errorLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l.startsWith("touchdeploy: error:"));
}

/** A readable account of a run, for assertion messages. */
export function describeRun(r: RunResult): string {
  return `exit ${r.code ?? r.signal} after ${r.durationMs} ms\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
}

/** One record of the `--payload stdin` format: an env variable, a secret or a process. */
export type PayloadRecord =
  | { env: string; value: string | Buffer }
  | { secret: string; value: string | Buffer }
  | { process: string; command: string };

/**
 * The bytes `--payload stdin` reads after the script: NUL-terminated fields, three per record
 * (`env` KEY VALUE | `secret` KEY VALUE | `process` NAME COMMAND), in the given order.
 */
export function encodePayload(records: readonly PayloadRecord[]): Buffer {
  const field = (v: string | Buffer): Buffer =>
    Buffer.concat([Buffer.isBuffer(v) ? v : Buffer.from(v, "utf8"), Buffer.from([0])]);
  return Buffer.concat(
    records.flatMap((r) =>
      "env" in r
        ? [field("env"), field(r.env), field(r.value)]
        : "secret" in r
          ? [field("secret"), field(r.secret), field(r.value)]
          : [field("process"), field(r.process), field(r.command)],
    ),
  );
}
