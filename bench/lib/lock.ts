/**
 * `--lock FILE`: on a machine shared with other Docker users (the parallel tracks' e2e tests),
 * the benchmark holds a machine-wide flock(1) lock on FILE for each part (each app, in the
 * contracts part) and releases it in between, instead of for the whole run: nothing of the
 * benchmark runs while another holder has the lock, and others can run between its parts.
 * The lock is held by a `flock FILE -c ...` child that prints a line once it has the lock and
 * exits (releasing it) when its stdin closes; it dies with the benchmark.
 */
import { spawn } from "node:child_process";
import { onCleanup } from "./cleanup";
import { log, secs } from "./log";

let lockFile: string | undefined;

export function useLock(file: string | undefined): void {
  lockFile = file;
}

/** Runs `fn` holding the lock (when --lock was given); logs how long it waited. */
export async function withLock<T>(what: string, fn: () => Promise<T>): Promise<T> {
  if (!lockFile) return fn();
  const t0 = Date.now();
  const child = spawn("flock", [lockFile, "-c", "echo locked; exec cat >/dev/null"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const release = onCleanup(`lock ${lockFile}`, () => {
    child.stdin.end();
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (c: Buffer) => {
      if (c.toString().includes("locked")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`flock ${lockFile} exited (${code})`)));
  });
  const waited = Date.now() - t0;
  if (waited > 1000) log(`${what}: waited ${secs(waited)} for ${lockFile}`);
  try {
    return await fn();
  } finally {
    await release();
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null) resolve();
      else child.once("exit", () => resolve());
    });
  }
}
