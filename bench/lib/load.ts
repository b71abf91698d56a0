/** Starts the load generator process (loadWorker.ts: test/harness/load.ts) and stops it on demand. */
import { spawn } from "node:child_process";
import * as path from "node:path";
import { REPO_ROOT } from "../../test/harness/images";
import { cpuTimes } from "./cpu";
import type { WorkerLoadOptions, WorkerLoadResult } from "../loadWorker";

export interface RunningLoad {
  /** Ends the load, waits for in-flight requests, returns what happened. */
  stop(): Promise<LoadWindow>;
  /**
   * Ends the load once every 2xx answer for `marginMs` has been `revision` (and no sooner than
   * `marginMs` from now); returns what happened.
   */
  settle(revision: string, marginMs: number): Promise<LoadWindow>;
  /** Kills it without a result (cleanup). */
  kill(): void;
}

export interface LoadWindow extends WorkerLoadResult {
  /** Share of the machine's CPU time that was busy during the window (0..1, all cores). */
  machineBusy: number;
}

export async function startLoad(opts: WorkerLoadOptions): Promise<RunningLoad> {
  const worker = path.join(REPO_ROOT, "bench", "loadWorker.ts");
  const child = spawn(process.execPath, ["--import", "tsx", worker, JSON.stringify(opts)], {
    cwd: REPO_ROOT,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (c: string) => (stderr += c));
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  await new Promise<void>((resolve, reject) => {
    const onData = (c: string): void => {
      stdout += c;
      if (stdout.includes("ready\n")) {
        child.stdout.off("data", onData);
        resolve();
      }
    };
    child.stdout.on("data", onData);
    void exited.then((code) =>
      reject(new Error(`the load generator exited (${code}) before it started:\n${stderr}`)),
    );
  });
  const cpu0 = cpuTimes();
  child.stdout.on("data", (c: string) => (stdout += c));
  // `stop` also closes stdin (the worker stops on its end too); `settle` must leave it open.
  const finish = async (command: string): Promise<LoadWindow> => {
    if (command.startsWith("stop")) child.stdin.end(command);
    else child.stdin.write(command);
    const code = await exited;
    const cpu1 = cpuTimes();
    const line = stdout.split("\n").find((l) => l.startsWith("{"));
    if (code !== 0 || !line) {
      throw new Error(`the load generator failed (exit ${code}):\n${stderr.slice(-2000)}`);
    }
    const result = JSON.parse(line) as WorkerLoadResult;
    const machineBusy = (cpu1.busy - cpu0.busy) / Math.max(1, cpu1.total - cpu0.total);
    return { ...result, machineBusy };
  };
  return {
    stop: () => finish("stop\n"),
    settle: (revision, marginMs) => finish(`settle ${revision} ${marginMs}\n`),
    kill: () => {
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
}
