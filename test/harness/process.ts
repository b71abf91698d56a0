/**
 * Running processes and making scratch directories for the e2e tests. Every run is bounded by
 * a timeout, and every scratch directory is made to be removed.
 */
import { spawn, type SpawnOptions } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

/** What a finished process left behind. */
export interface RunResult {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  durationMs: number;
}

export interface RunOptions {
  /** Written to stdin, then stdin is closed. Without it stdin is empty. */
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Killed with SIGKILL after this long (default 120 s); the result then has signal set. */
  timeoutMs?: number;
  /** Throw unless the exit code is 0 (default true for `run`). */
  check?: boolean;
  /** Called with each chunk of stdout as it arrives (to watch progress). */
  onStdout?: (chunk: string) => void;
  /** Start the process in its own process group (so the whole group can be killed). */
  detached?: boolean;
}

/** A running process plus the promise of its result. */
export interface Started {
  pid: number;
  result: Promise<RunResult>;
  kill(signal?: NodeJS.Signals): void;
}

/** Starts `command args` without a shell; stdout/stderr are collected as UTF-8. */
export function start(command: string, args: readonly string[], opts: RunOptions = {}): Started {
  const t0 = Date.now();
  const spawnOpts: SpawnOptions = {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ["pipe", "pipe", "pipe"],
    detached: opts.detached ?? false,
  };
  const child = spawn(command, args, spawnOpts);
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8");
  child.stderr?.setEncoding("utf8");
  child.stdout?.on("data", (chunk: string) => {
    stdout += chunk;
    opts.onStdout?.(chunk);
  });
  child.stderr?.on("data", (chunk: string) => {
    stderr += chunk;
  });
  // A process that exits before reading all its stdin makes the write fail with EPIPE: fine.
  child.stdin?.on("error", () => undefined);
  child.stdin?.end(opts.input ?? "");
  const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
  const result = new Promise<RunResult>((resolve, reject) => {
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${err.message}`));
    });
    let exitedAt = 0;
    const done = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, durationMs: (exitedAt || Date.now()) - t0 });
    };
    child.on("close", done);
    // An orphaned grandchild (e.g. git after its parent was SIGKILLed) can hold the pipes open
    // for long: after the process itself exits, wait at most a moment for the rest of its output.
    child.on("exit", (code, signal) => {
      exitedAt = Date.now();
      setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        done(code, signal);
      }, 1000).unref();
    });
  });
  if (child.pid === undefined) {
    // spawn failed; the error event rejects `result`.
    return { pid: -1, result, kill: () => undefined };
  }
  return { pid: child.pid, result, kill: (signal = "SIGTERM") => child.kill(signal) };
}

/** Runs `command args` to completion; throws with its output unless it exits 0 (see `check`). */
export async function run(
  command: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const result = await start(command, args, opts).result;
  if ((opts.check ?? true) && result.code !== 0) {
    throw new Error(
      `${command} ${args.join(" ")} exited ${result.code ?? result.signal}\n` +
        `stdout: ${result.stdout.trim()}\nstderr: ${result.stderr.trim()}`,
    );
  }
  return result;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` every `intervalMs` until it returns a value other than undefined, or throws
 * after `timeoutMs` with `what` and the last value seen.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  opts: { timeoutMs: number; intervalMs?: number; describeLast?: () => string },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) {
      const last = opts.describeLast ? ` (last: ${opts.describeLast()})` : "";
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}${last}`);
    }
    await sleep(opts.intervalMs ?? 100);
  }
}

/**
 * A fresh directory for one test file, mode 0755 (the container's uid 10001 and the SSH deploy
 * user must be able to traverse it), under the system temp dir (whose parents anyone can
 * traverse, unlike a CI checkout under /root). Named `tdtest-<label>-XXXXXX`.
 */
export function makeScratchDir(label: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tdtest-${label}-`));
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** Removes a tree even where releases were made read-only (as a non-root user too). */
export function removeTree(dir: string): void {
  if (!fs.existsSync(dir)) return;
  const makeWritable = (p: string): void => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return;
    }
    if (st.isSymbolicLink()) return;
    if (st.isDirectory()) {
      try {
        fs.chmodSync(p, st.mode | 0o700);
      } catch {
        // not ours; rmSync reports it if it matters
      }
      for (const entry of fs.readdirSync(p)) makeWritable(path.join(p, entry));
    }
  };
  makeWritable(dir);
  fs.rmSync(dir, { recursive: true, force: true });
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const address = s.address();
      s.close(() =>
        typeof address === "object" && address
          ? resolve(address.port)
          : reject(new Error("no free port on 127.0.0.1")),
      );
    });
  });
}

/** True while a process with this pid exists (signal 0 probes without signalling). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
