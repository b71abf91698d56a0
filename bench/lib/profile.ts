/**
 * `--profile`: samples every CPU with `perf record -a` (the cpu-clock software event, so it
 * works in a VM) while code deploys run, and sums the samples by process name into the groups
 * below, as CPU seconds. It answers "what keeps the cores busy when 16 hosts deploy at once"
 * better than the cgroup split of lib/cpu.ts: it separates the host script's bash from git,
 * date, curl and the other tools it runs (a forked child counts under its parent's name until
 * it execs). Needs `perf` (Debian: linux-perf) and root.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { findExecutable } from "../../test/harness/prerequisites";
import { run, start, type Started } from "../../test/harness/process";

/** Samples per second and CPU. */
const FREQUENCY = 997;

/** Process name -> group, first match wins; anything else is "other processes". */
const GROUPS: [string, RegExp][] = [
  ["idle", /^swapper/],
  ["host script: bash (incl. forked subshells)", /^(bash|sh)$/],
  ["host script: git", /^git/],
  ["host script: date", /^date$/],
  ["host script: curl", /^curl$/],
  [
    "host script: other tools",
    /^(readlink|sed|rm|mv|touch|stat|sha256sum|mkdir|ln|tr|tar|tail|ls|head|flock|chmod|cat|id)$/,
  ],
  ["containers: uWSGI (master re-exec, app import, workers)", /^uwsgi/],
  ["containers: supervisord", /^supervisord$/],
  ["Docker: dockerd, containerd, shims, docker-proxy", /^(dockerd|containerd|docker-proxy|runc)/],
  ["benchmark (node)", /^node$/],
  ["kernel threads", /^(kworker|ksoftirqd|rcu_|kdamond|kcompactd|migration|khugepaged|jbd2)/],
];

export const PROFILE_GROUPS = [...GROUPS.map(([g]) => g), "other processes"];

export interface Profile {
  /** Wall-clock seconds sampled (all cores: "idle" included, the groups sum to ~seconds × cores). */
  seconds: number;
  /** CPU seconds per group. */
  cpuSeconds: Record<string, number>;
}

export function perfAvailable(): boolean {
  return findExecutable("perf") !== undefined && process.getuid?.() === 0;
}

export interface RunningProfile {
  stop(): Promise<Profile>;
  kill(): void;
}

/** Starts sampling all CPUs into `file`; `stop()` ends it and sums the samples by group. */
export async function startProfile(file: string): Promise<RunningProfile> {
  const perf: Started = start(
    "perf",
    ["record", "-q", "-e", "cpu-clock", "-F", String(FREQUENCY), "-a", "-o", file],
    { timeoutMs: 600_000 },
  );
  // perf needs a moment to open its events on every CPU before it records anything.
  await new Promise((r) => setTimeout(r, 300));
  const t0 = Date.now();
  return {
    stop: async () => {
      const seconds = (Date.now() - t0) / 1000 + 0.3;
      perf.kill("SIGINT");
      const r = await perf.result;
      if (!fs.existsSync(file)) throw new Error(`perf record wrote nothing: ${r.stderr.trim()}`);
      const report = await run(
        "perf",
        ["report", "-i", file, "--sort", "comm", "--stdio", "--percent-limit", "0"],
        { timeoutMs: 120_000 },
      );
      fs.rmSync(file, { force: true });
      fs.rmSync(`${file}.old`, { force: true });
      const cpuSeconds: Record<string, number> = Object.fromEntries(
        PROFILE_GROUPS.map((g) => [g, 0]),
      );
      // cpu-clock counts nanoseconds: the event count is the CPU time sampled (idle included).
      const total = Number(/^# Event count \(approx\.\): (\d+)$/m.exec(report.stdout)?.[1]) / 1e9;
      if (!Number.isFinite(total)) throw new Error("perf report: no event count");
      for (const line of report.stdout.split("\n")) {
        const m = /^\s+([\d.]+)%\s+(.+?)\s*$/.exec(line);
        if (!m) continue;
        const group = GROUPS.find(([, re]) => re.test(m[2]))?.[0] ?? "other processes";
        cpuSeconds[group] += (Number(m[1]) / 100) * total;
      }
      return { seconds, cpuSeconds };
    },
    kill: () => perf.kill("SIGKILL"),
  };
}

export const profileFile = (dir: string, label: string): string =>
  path.join(dir, `perf-${label.replace(/[^a-z0-9]+/gi, "-")}.data`);
