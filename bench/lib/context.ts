/**
 * What the parts of the benchmark (bench/parts/) share: the options, the scratch directory,
 * the measurements they add to, and the helpers that turn runs into Measurements.
 */
import * as path from "node:path";
import type { TestRepo } from "../../test/harness/git";
import { REPO_ROOT } from "../../test/harness/images";
import { answeredLatencies } from "../../test/harness/load";
import { removeTree, sleep } from "../../test/harness/process";
import { onCleanup } from "./cleanup";
import { reloadStalled, type CodeDeployResult, type CodeHost, type ReloadPhases } from "./codeHost";
import type { CpuBreakdown } from "./cpu";
import { describeSlowDeploy } from "./explain";
import type { ImageDeployResult } from "./imageDeploy";
import type { LoadWindow } from "./load";
import { log } from "./log";
import type { Profile } from "./profile";
import type { LoadStats, Measurement } from "./results";
import { median, quantile, round, sum, summarize, type Summary } from "./stats";

export const PARTS = ["deploys", "contracts", "experiments", "scale"] as const;
export type Part = (typeof PARTS)[number];

export interface Options {
  smoke: boolean;
  /** Timed runs of the code/container pairs and of the under-load windows. */
  runs: number;
  /** Timed runs of each reload experiment, scale point and contract. */
  shortRuns: number;
  warmup: number;
  ns: number[];
  batchSize: number;
  connections: number;
  /** Requests per second over all clients; 0 = unpaced. */
  rate: number;
  outDir: string;
  /** Which parts to run. */
  only: Set<Part>;
  /** Sample all CPUs with perf during the parallel deploys to the most hosts. */
  profile: boolean;
  /** Import times (s) of the slow app the contracts are measured with. */
  importSeconds: number[];
  /** The contracts compared in the contracts part (lib/designs.ts ids). */
  designs: string[];
  /** Health timeout (s) of the broken deploys in the contracts part; 0 skips them. */
  rollbackTimeout: number;
  /** A flock(1) file to hold for each part instead of the whole run (lib/lock.ts). */
  lock: string | undefined;
}

export const defaultOutDir = (smoke: boolean): string =>
  path.join(REPO_ROOT, smoke ? "bench/.tmp/results-smoke" : "bench/results");

export interface Context {
  opts: Options;
  scratch: string;
  /** The hello-wsgi repository the deploys, experiments and scale parts deploy. */
  repo: TestRepo;
  machine: Record<string, string | number>;
  /** Image tag of a design (lib/designs.ts), built on first use. */
  /** A design's image (with an app's Debian packages: APT_PACKAGES), built once. */
  imageOf: (design: string, aptPackages?: string) => Promise<string>;
  measurements: Measurement[];
  notes: string[];
  /** Every variant the results mention, in words (BenchResults.variants). */
  variants: Record<string, string>;
  /** Runs `during` inside a load window on `url` (load from 1 s before until 1 s after). */
  window: (url: string, during: () => Promise<unknown>) => Promise<LoadWindow>;
  /** The load window's options (connections, rate, timeouts). */
  loadOptions: { connections: number; ratePerSecond: number; requestTimeoutMs: number };
}

/**
 * Pause between deploys: lets the machine settle and a second (wrong) reload show in the log.
 * Jittered, so that deploys do not lock onto one phase of uWSGI's 1 s master cycle.
 */
export let SETTLE_MS = 1200;
let SETTLE_JITTER_MS = 1000;
export const settle = (): Promise<void> => sleep(SETTLE_MS + Math.random() * SETTLE_JITTER_MS);
/** Load before and after each deploy in a load window. */
export let LOAD_MARGIN_MS = 1000;
export const REQUEST_TIMEOUT_MS = 10_000;

/** A smoke run only checks that everything runs: shorter pauses and margins. */
export function useSmokeTiming(): void {
  SETTLE_MS = 200;
  SETTLE_JITTER_MS = 100;
  LOAD_MARGIN_MS = 500;
}

let commits = 0;
/** A one-line code change (app.py's GREETING), committed and pushed: returns its SHA. */
export function newCommit(repo: TestRepo): Promise<string> {
  commits++;
  return repo.commitGreeting(`Hello from touchdeploy, change ${commits}`);
}
/** A number for the next one-line change of any repository. */
export const nextChange = (): number => ++commits;

const ms2s = 1 / 1000;

export type MeasurementInput = Omit<
  Measurement,
  "runs" | "median" | "min" | "max" | "samples" | "requests" | "failed"
> & {
  valuesMs?: number[];
  ratios?: number[];
  load?: LoadStats;
};

export function measurement(m: MeasurementInput): Measurement {
  const { valuesMs, ratios, load, ...rest } = m;
  const values = ratios ?? (valuesMs ?? []).map((v) => v * ms2s);
  const s = summarize(values);
  return {
    ...rest,
    runs: s.runs,
    median: s.median,
    min: s.min,
    max: s.max,
    samples: values.map((v) => round(v)),
    requests: load ? load.requests : null,
    failed: load ? load.non2xx + load.errors + load.timeouts : null,
    ...(load ? { load } : {}),
  };
}

/** Summary of the defined, finite values (undefined when there are none). */
export function pick(values: (number | undefined)[], scale = 1): Summary | undefined {
  const v = values.filter((x): x is number => x !== undefined && Number.isFinite(x));
  return v.length ? summarize(v, scale) : undefined;
}

/** Per-step summaries (seconds) of code deploys and their reloads. */
export function codeSteps(
  deploys: CodeDeployResult[],
  phases: ReloadPhases[],
): Record<string, Summary> {
  const entries: [string, Summary | undefined][] = [
    [
      "total: start → new code served",
      pick(
        deploys.map((d) => d.totalMs),
        ms2s,
      ),
    ],
    ["script: fetch", pick(deploys.map((d) => d.steps.fetch))],
    ["script: extract", pick(deploys.map((d) => d.steps.extract))],
    ["script: switch", pick(deploys.map((d) => d.steps.switch))],
    [
      "script: start → touch",
      pick(
        deploys.map((d) => (d.touchedAt === undefined ? undefined : d.touchedAt - d.startedAt)),
        ms2s,
      ),
    ],
    ["script: touch → healthy", pick(deploys.map((d) => d.steps.healthyAfterReload))],
    [
      "uwsgi: touch -> noticed",
      pick(
        phases.map((p) => p.detectMs),
        ms2s,
      ),
    ],
    [
      "uwsgi: noticed -> workers reaped",
      pick(
        phases.map((p) => p.reapMs),
        ms2s,
      ),
    ],
    [
      "uwsgi: re-exec -> workers up",
      pick(
        phases.map((p) => p.restartMs),
        ms2s,
      ),
    ],
    [
      "health check: workers up -> seen",
      pick(
        phases.map((p) => p.healthSeenMs),
        ms2s,
      ),
    ],
  ];
  return Object.fromEntries(entries.filter((e): e is [string, Summary] => e[1] !== undefined));
}

export function imageSteps(deploys: ImageDeployResult[]): Record<string, Summary> {
  const entries: [string, Summary | undefined][] = [
    [
      "total: start → new code served",
      pick(
        deploys.map((d) => d.totalMs),
        ms2s,
      ),
    ],
    [
      "build (git archive + docker build)",
      pick(
        deploys.map((d) => d.steps.buildMs),
        ms2s,
      ),
    ],
    [
      "push",
      pick(
        deploys.map((d) => d.steps.pushMs),
        ms2s,
      ),
    ],
    [
      "pull",
      pick(
        deploys.map((d) => d.steps.pullMs),
        ms2s,
      ),
    ],
    [
      "replace (stop, remove, create, start)",
      pick(
        deploys.map((d) => d.steps.replaceMs),
        ms2s,
      ),
    ],
    [
      "  of which docker stop + remove",
      pick(
        deploys.map((d) => d.steps.stopMs),
        ms2s,
      ),
    ],
    [
      "new container started → healthy",
      pick(
        deploys.map((d) => d.steps.healthyMs),
        ms2s,
      ),
    ],
    [
      "proxy switched → new code served",
      pick(
        deploys.map((d) => d.steps.switchMs),
        ms2s,
      ),
    ],
    [
      "old container retired (after new code served)",
      pick(
        deploys.map((d) => d.steps.retireMs),
        ms2s,
      ),
    ],
  ];
  return Object.fromEntries(entries.filter((e): e is [string, Summary] => e[1] !== undefined));
}

export function loadStats(windows: LoadWindow[]): LoadStats {
  const failedSamples = [
    ...new Set(windows.flatMap((w) => w.errorSamples.map((e) => e.slice(0, 120)))),
  ].slice(0, 5);
  const latencies = windows.flatMap((w) => answeredLatencies(w.samples)).sort((a, b) => a - b);
  const seconds = sum(windows.map((w) => w.durationMs)) / 1000;
  return {
    requests: sum(windows.map((w) => w.requests)),
    ok: sum(windows.map((w) => w.ok)),
    non2xx: sum(windows.map((w) => w.non2xx)),
    errors: sum(windows.map((w) => w.errors)),
    timeouts: sum(windows.map((w) => w.timeouts)),
    latencyMs: {
      p50: quantile(latencies, 0.5),
      p99: quantile(latencies, 0.99),
      max: latencies.length ? latencies[latencies.length - 1] : NaN,
    },
    bodyMismatches: sum(windows.map((w) => w.bodyMismatches)),
    ...(failedSamples.length ? { errorSamples: failedSamples } : {}),
    windowSeconds: summarize(
      windows.map((w) => w.durationMs),
      ms2s,
    ),
    machineBusy: round(median(windows.map((w) => w.machineBusy))),
    loadGeneratorCores: round(sum(windows.map((w) => w.cpuSeconds)) / Math.max(seconds, 1e-9)),
  };
}

/** Medians over runs: the machine's busy share and CPU seconds per run. */
export function medianCpu(xs: CpuBreakdown[]): { busy: number; seconds: number } {
  return {
    busy: round(median(xs.map((x) => x.busy))),
    seconds: round(median(xs.map((x) => x.cpuSeconds)), 2),
  };
}

/** Medians over runs of each run's CPU split, divided by the deploys in a run. */
export function cpuPerDeploy(
  xs: CpuBreakdown[],
  deploysPerRun: number,
): Measurement["cpuPerDeploy"] {
  const per = (f: (x: CpuBreakdown) => number): number =>
    round(median(xs.map((x) => f(x) / deploysPerRun)), 3);
  return {
    total: per((x) => x.cpuSeconds),
    containers: per((x) => x.containers),
    docker: per((x) => x.docker),
    bench: per((x) => x.bench),
    rest: per((x) => x.rest),
  };
}

export function profilePerDeploy(xs: Profile[], deploysPerRun: number): Record<string, number> {
  if (!xs.length) return {};
  const groups = Object.keys(xs[0].cpuSeconds);
  return Object.fromEntries(
    groups.map((g) => [g, round(median(xs.map((x) => (x.cpuSeconds[g] ?? 0) / deploysPerRun)))]),
  );
}

/** A code deploy slower than this gets its script output and container log into the notes. */
const SLOW_MS = 10_000;

export async function explainSlow(
  host: CodeHost,
  d: CodeDeployResult,
  notes: string[],
): Promise<void> {
  if (d.totalMs < SLOW_MS) return;
  const text = await describeSlowDeploy(host, d);
  log(`SLOW: ${text}`);
  notes.push(text);
}

export const describeWindow = (w: LoadWindow): string => {
  const latencies = answeredLatencies(w.samples).sort((a, b) => a - b);
  return (
    `${w.requests} requests, ${w.non2xx} non-2xx, ${w.errors} errors, ${w.timeouts} timeouts, ` +
    `p99 ${quantile(latencies, 0.99)} ms, max ${latencies[latencies.length - 1] ?? 0} ms, ` +
    `CPU ${Math.round(w.machineBusy * 100)}%`
  );
};

/** Removes hosts (containers and app roots) now or at cleanup. */
export function hostsCleanup(name: string, hosts: CodeHost[]): () => Promise<void> {
  return onCleanup(name, async () => {
    for (const h of hosts) await h.container.remove().catch(() => undefined);
    for (const h of hosts) removeTree(path.dirname(h.root));
  });
}

/**
 * After the first deploy to freshly started hosts: notes the hosts whose master is stuck in a
 * reload (see reloadStalled): their next deploy waits for worker-reload-mercy.
 */
export async function noteStalled(ctx: Context, what: string, hosts: CodeHost[]): Promise<void> {
  const stalled: string[] = [];
  for (const h of hosts) if (await reloadStalled(h)) stalled.push(h.label);
  if (!stalled.length) return;
  const text =
    `${what}: after the first deploy to ${hosts.length} freshly started host(s), the uWSGI ` +
    `master of ${stalled.length} (${stalled.join(", ")}) was stuck in a graceful reload: the ` +
    "first deploy's touch reached it while its workers were still starting, they never acted " +
    "on it, and the master waits for worker-reload-mercy (30 s), ignoring touches meanwhile; " +
    "the next deploy to them waits for that (bench/FINDINGS.md, 'The 30 s outlier')";
  log(`STALLED: ${text}`);
  ctx.notes.push(text);
}
