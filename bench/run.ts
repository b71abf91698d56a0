/**
 * `npm run bench`: code deploys vs container deploys on the real Docker engine, with the
 * example app, side by side; the shipped deploy contract vs the previous one. See
 * bench/README.md for what is measured and how.
 *
 *   npm run bench                 full run (~12 min), writes bench/results/latest.{json,md,svg}
 *   npm run bench -- --smoke      one run of everything, N = 1 and 2 (CI), writes bench/.tmp/
 *   npm run bench -- --help       all options
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { getServed } from "../test/e2e/support/app";
import { ensureDocker } from "../test/e2e/support/docker";
import { TestRepo } from "../test/e2e/support/git";
import { hostScriptText } from "../test/e2e/support/hostScript";
import { ensureRuntimeImage, REPO_ROOT } from "../test/e2e/support/images";
import { makeScratchDir, removeTree, sleep } from "../test/e2e/support/process";
import { renderChart } from "./lib/chart";
import { onCleanup, runCleanups } from "./lib/cleanup";
import {
  codeDeploy,
  createCodeHosts,
  reloadPhases,
  reloadStalled,
  type CodeDeployResult,
  type CodeHost,
  type ReloadPhases,
} from "./lib/codeHost";
import { sweepStaleBenchContainers } from "./lib/containers";
import { cpuBetween, cpuSample, type CpuBreakdown } from "./lib/cpu";
import { describeSlowDeploy } from "./lib/explain";
import { ImageHost, type ImageDeployResult } from "./lib/imageDeploy";
import { startLoad, type LoadWindow } from "./lib/load";
import { log, secs, step } from "./lib/log";
import { perfAvailable, profileFile, startProfile, type Profile } from "./lib/profile";
import { startRegistry } from "./lib/registry";
import { renderMarkdown } from "./lib/report";
import type { BenchResults, LoadStats, Measurement, Target } from "./lib/results";
import { median, quantile, round, sum, summarize, type Summary } from "./lib/stats";
import {
  CONTRACTS,
  contractOf,
  ensureContractImage,
  FS_NO_WAKE,
  PREVIOUS,
  scriptWithPoll,
  SHIPPED,
  TOUCH_WAKE,
} from "./lib/variants";

interface Options {
  smoke: boolean;
  /** Timed runs of the code/container pairs and of the under-load windows. */
  runs: number;
  /** Timed runs of each reload experiment and of each scale point. */
  shortRuns: number;
  warmup: number;
  ns: number[];
  batchSize: number;
  connections: number;
  /** Requests per second over all clients; 0 = unpaced. */
  rate: number;
  outDir: string;
  /** Which parts to run: deploys (1-3), experiments (5), scale (4). */
  only: Set<string>;
  /** Sample all CPUs with perf during the parallel deploys to the most hosts. */
  profile: boolean;
}

const USAGE = `usage: npm run bench -- [--smoke] [--runs N] [--short-runs N] [--ns 1,4,16]
                         [--connections C] [--rate R] [--out DIR] [--only LIST] [--profile]
  --smoke         one run of everything, N = 1,2, no warm-up; results to bench/.tmp/results-smoke
  --runs N        timed code/container deploy pairs, idle and under load (default 7)
  --short-runs N  timed runs per reload experiment and per scale point (default 5)
  --ns LIST       host counts for the scale measurement (default 1,4,16)
  --connections C concurrent load clients (default 16)
  --rate R        requests per second over all clients, 0 = as fast as they can (default 400)
  --out DIR       where latest.json, latest.md and latest.svg go (default bench/results)
  --only LIST     run only some parts: deploys (code vs container, idle and under load),
                  experiments (reload variants), scale (default: all three)
  --profile       perf record -a during the parallel deploys to the most hosts: CPU seconds
                  per deploy by process (needs perf, root)`;

const PARTS = ["deploys", "experiments", "scale"];

function parseArgs(argv: string[]): Options {
  const smoke = argv.includes("--smoke");
  const opts: Options = {
    smoke,
    runs: smoke ? 1 : 7,
    shortRuns: smoke ? 1 : 5,
    warmup: smoke ? 0 : 1,
    ns: smoke ? [1, 2] : [1, 4, 16],
    batchSize: 4,
    connections: 16,
    rate: 400,
    outDir: path.join(REPO_ROOT, smoke ? "bench/.tmp/results-smoke" : "bench/results"),
    only: new Set(PARTS),
    profile: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    const int = (min: number): number => {
      const v = Number(next());
      if (!Number.isInteger(v) || v < min) throw new Error(`${a}: an integer >= ${min}\n${USAGE}`);
      return v;
    };
    if (a === "--smoke") continue;
    else if (a === "--runs") opts.runs = int(1);
    else if (a === "--short-runs") opts.shortRuns = int(1);
    else if (a === "--connections") opts.connections = int(1);
    else if (a === "--rate") opts.rate = int(0);
    else if (a === "--out") opts.outDir = path.resolve(next());
    else if (a === "--profile") opts.profile = true;
    else if (a === "--only") {
      opts.only = new Set(next().split(","));
      if (![...opts.only].every((p) => PARTS.includes(p))) throw new Error(`--only: ${USAGE}`);
    } else if (a === "--ns") {
      opts.ns = next()
        .split(",")
        .map((s) => Number(s));
      if (!opts.ns.every((n) => Number.isInteger(n) && n >= 1)) throw new Error(`--ns: ${USAGE}`);
    } else if (a === "--help" || a === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  return opts;
}

/** Host script variants, run against the shipped contract. */
const POLL = "shipped + health poll 0.05 s";

/** Every variant the results mention (Measurement.variant), in words. */
const VARIANTS: Record<string, string> = {
  ...CONTRACTS,
  [POLL]: "the shipped contract; the host script's health check polls every 0.05 s, not 0.2 s",
};

/**
 * Pause between deploys: lets the machine settle and a second (wrong) reload show in the log.
 * Jittered, so that deploys do not lock onto one phase of uWSGI's 1 s master cycle.
 */
const SETTLE_MS = 1200;
const settle = (): Promise<void> => sleep(SETTLE_MS + Math.random() * 1000);
/** Load before and after each deploy in a load window. */
const LOAD_MARGIN_MS = 1000;
const REQUEST_TIMEOUT_MS = 10_000;

let commits = 0;
/** A one-line code change (app.py's GREETING), committed and pushed: returns its SHA. */
function newCommit(repo: TestRepo): Promise<string> {
  commits++;
  return repo.commitGreeting(`Hello from touchdeploy, change ${commits}`);
}

const ms2s = 1 / 1000;

type MeasurementInput = Omit<
  Measurement,
  "runs" | "median" | "min" | "max" | "samples" | "requests" | "failed"
> & {
  valuesMs?: number[];
  ratios?: number[];
  load?: LoadStats;
};

function measurement(m: MeasurementInput): Measurement {
  const values = m.ratios ?? (m.valuesMs ?? []).map((v) => v * ms2s);
  const s = summarize(values);
  return {
    kind: m.kind,
    label: m.label,
    variant: m.variant,
    n: m.n,
    ...(m.batchSize !== undefined ? { batchSize: m.batchSize } : {}),
    unit: m.unit,
    runs: s.runs,
    median: s.median,
    min: s.min,
    max: s.max,
    samples: values.map((v) => round(v)),
    requests: m.load ? m.load.requests : null,
    failed: m.load ? m.load.non2xx + m.load.errors + m.load.timeouts : null,
    ...(m.load ? { load: m.load } : {}),
    ...(m.steps ? { steps: m.steps } : {}),
    ...(m.reloadsPerDeploy ? { reloadsPerDeploy: m.reloadsPerDeploy } : {}),
    ...(m.cpu ? { cpu: m.cpu } : {}),
    ...(m.cpuPerDeploy ? { cpuPerDeploy: m.cpuPerDeploy } : {}),
    ...(m.profilePerDeploy ? { profilePerDeploy: m.profilePerDeploy } : {}),
  };
}

/** Per-step summaries (seconds) of code deploys and their reloads. */
function codeSteps(deploys: CodeDeployResult[], phases: ReloadPhases[]): Record<string, Summary> {
  const pick = (values: (number | undefined)[], scale = 1): Summary | undefined => {
    const v = values.filter((x): x is number => x !== undefined && !Number.isNaN(x));
    return v.length ? summarize(v, scale) : undefined;
  };
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

function imageSteps(deploys: ImageDeployResult[]): Record<string, Summary> {
  const of = (k: keyof ImageDeployResult["steps"]): Summary =>
    summarize(
      deploys.map((d) => d.steps[k]),
      ms2s,
    );
  return {
    "total: start → new code served": summarize(
      deploys.map((d) => d.totalMs),
      ms2s,
    ),
    "build (git archive + docker build)": of("buildMs"),
    push: of("pushMs"),
    pull: of("pullMs"),
    "replace (stop, remove, create, start)": of("replaceMs"),
    "  of which docker stop + remove": of("stopMs"),
    "container started → new code served": of("healthyMs"),
  };
}

function loadStats(windows: LoadWindow[]): LoadStats {
  const latencies = windows.flatMap((w) => w.latenciesMs).sort((a, b) => a - b);
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
    windowSeconds: summarize(
      windows.map((w) => w.durationMs),
      ms2s,
    ),
    machineBusy: round(median(windows.map((w) => w.machineBusy))),
    loadGeneratorCores: round(sum(windows.map((w) => w.cpuSeconds)) / Math.max(seconds, 1e-9)),
  };
}

/** Medians over runs: the machine's busy share and CPU seconds per run. */
function medianCpu(xs: CpuBreakdown[]): { busy: number; seconds: number } {
  return {
    busy: round(median(xs.map((x) => x.busy))),
    seconds: round(median(xs.map((x) => x.cpuSeconds)), 2),
  };
}

/** Medians over runs of each run's CPU split, divided by the deploys in a run. */
function cpuPerDeploy(xs: CpuBreakdown[], deploysPerRun: number): Measurement["cpuPerDeploy"] {
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

function profilePerDeploy(xs: Profile[], deploysPerRun: number): Record<string, number> {
  if (!xs.length) return {};
  const groups = Object.keys(xs[0].cpuSeconds);
  return Object.fromEntries(
    groups.map((g) => [g, round(median(xs.map((x) => (x.cpuSeconds[g] ?? 0) / deploysPerRun)))]),
  );
}

/** A code deploy slower than this gets its script output and container log into the notes. */
const SLOW_MS = 10_000;

async function explainSlow(host: CodeHost, d: CodeDeployResult, notes: string[]): Promise<void> {
  if (d.totalMs < SLOW_MS) return;
  const text = await describeSlowDeploy(host, d);
  log(`SLOW: ${text}`);
  notes.push(text);
}

async function describeMachine(): Promise<Record<string, string | number>> {
  const cpus = os.cpus();
  const osRelease = fs.existsSync("/etc/os-release")
    ? (/^PRETTY_NAME="?([^"\n]*)"?$/m.exec(fs.readFileSync("/etc/os-release", "utf8"))?.[1] ??
      os.type())
    : os.type();
  const docker = await ensureDocker();
  const version = await docker.version();
  const memGiB = Math.round(os.totalmem() / 2 ** 30);
  const model = (cpus[0]?.model ?? "unknown CPU").trim();
  return {
    description: `${cpus.length} cores (${model}), ${memGiB} GiB, ${osRelease}`,
    cores: cpus.length,
    cpu: model,
    memoryGiB: memGiB,
    os: osRelease,
    kernel: os.release(),
    docker: `Docker Engine ${version.Version}`,
    node: process.version,
  };
}

/** What the parts of the benchmark share. */
interface Context {
  opts: Options;
  scratch: string;
  repo: TestRepo;
  machine: Record<string, string | number>;
  /** Image tag of a contract variant (the runtime image for the shipped one). */
  imageOf: (variant: string) => string;
  measurements: Measurement[];
  notes: string[];
  /** Runs `during` inside a load window on `url` (load from 1 s before until 1 s after). */
  window: (url: string, during: () => Promise<unknown>) => Promise<LoadWindow>;
}

const describeWindow = (w: LoadWindow): string =>
  `${w.requests} requests, ${w.non2xx} non-2xx, ${w.errors} errors, ${w.timeouts} timeouts, ` +
  `p99 ${quantile(
    [...w.latenciesMs].sort((a, b) => a - b),
    0.99,
  )} ms, CPU ${Math.round(w.machineBusy * 100)}%`;

/** Removes hosts (containers and app roots) now or at cleanup. */
function hostsCleanup(name: string, hosts: CodeHost[]): () => Promise<void> {
  return onCleanup(name, async () => {
    for (const h of hosts) await h.container.remove().catch(() => undefined);
    for (const h of hosts) removeTree(path.dirname(h.root));
  });
}

/**
 * After the first deploy to freshly started hosts: notes the hosts whose master is stuck in a
 * reload (see reloadStalled): their next deploy waits for worker-reload-mercy.
 */
async function noteStalled(ctx: Context, what: string, hosts: CodeHost[]): Promise<void> {
  const stalled: string[] = [];
  for (const h of hosts) if (await reloadStalled(h)) stalled.push(h.label);
  if (!stalled.length) return;
  const text =
    `${what}: after the first deploy to ${hosts.length} freshly started host(s), the uWSGI ` +
    `master of ${stalled.length} (${stalled.join(", ")}) was stuck in a graceful reload: the ` +
    "first deploy's touch reached it while its workers were still starting, they never acted " +
    "on it, and the master waits for worker-reload-mercy (30 s), ignoring touches meanwhile; " +
    "the next deploy to them waits for that (bench/README.md, 'The 30 s outlier')";
  log(`STALLED: ${text}`);
  ctx.notes.push(text);
}

// ------------------------------------------------------------------ 1-3: deploys, idle and loaded
/** Code vs container deploys, idle and under load; the previous contract under load too. */
async function runDeploys(ctx: Context): Promise<number> {
  const { opts, repo, scratch, measurements } = ctx;
  const registry = await step("starting docker-registry on 127.0.0.1", () =>
    startRegistry(path.join(scratch, "registry")),
  );
  const stopRegistry = onCleanup("registry", () => registry.stop());
  log(`registry: ${registry.address}`);

  const [codeHost] = await step("code host: app root + runtime container", () =>
    createCodeHosts({ count: 1, label: "code", dir: scratch, repo, image: ctx.imageOf(SHIPPED) }),
  );
  const removeCodeHost = hostsCleanup("code host", [codeHost]);
  const [prevHost] = await step("code host with the previous contract", () =>
    createCodeHosts({ count: 1, label: "prev", dir: scratch, repo, image: ctx.imageOf(PREVIOUS) }),
  );
  const removePrevHost = hostsCleanup("previous-contract host", [prevHost]);
  const imageHost = new ImageHost({
    registry: registry.address,
    repo,
    runtimeImage: ctx.imageOf(SHIPPED),
    dir: scratch,
    name: "image",
  });
  const cleanupImageHost = onCleanup("image host", () => imageHost.cleanup());
  const head = await repo.head();
  await step("first release on the code hosts", async () => {
    await codeDeploy(codeHost, repo, head);
    await codeDeploy(prevHost, repo, head);
  });
  await settle();
  await noteStalled(ctx, "deploys", [codeHost, prevHost]);
  await step("first image and container on the image host", () => imageHost.deploy(head));
  const uwsgiVersion = /Starting uWSGI (\S+)/.exec(
    (await codeHost.container.logLines(0)).map((l) => l.text).join("\n"),
  )?.[1];
  if (uwsgiVersion) ctx.machine.uwsgi = `uWSGI ${uwsgiVersion}`;

  for (let i = 0; i < opts.warmup; i++) {
    const sha = await newCommit(repo);
    const c = await codeDeploy(codeHost, repo, sha);
    await settle();
    const p = await codeDeploy(prevHost, repo, sha);
    await settle();
    const im = await imageHost.deploy(sha);
    log(
      `warm-up: code deploy ${secs(c.totalMs)} (previous contract ${secs(p.totalMs)}), ` +
        `container deploy ${secs(im.totalMs)} (not counted)`,
    );
    await settle();
  }

  const code: CodeDeployResult[] = [];
  const codePhases: ReloadPhases[] = [];
  const image: ImageDeployResult[] = [];
  for (let i = 0; i < opts.runs; i++) {
    const sha = await newCommit(repo);
    const c = await codeDeploy(codeHost, repo, sha);
    await settle();
    const p = await reloadPhases(codeHost, c);
    await explainSlow(codeHost, c, ctx.notes);
    const im = await imageHost.deploy(sha);
    await settle();
    code.push(c);
    codePhases.push(p);
    image.push(im);
    const s = im.steps;
    log(
      `run ${i + 1}/${opts.runs} ${sha.slice(0, 12)}: code deploy ${secs(c.totalMs)} ` +
        `(touch→healthy ${c.steps.healthyAfterReload ?? "?"}s, ${p.reloads} reload); ` +
        `container deploy ${secs(im.totalMs)} (build ${secs(s.buildMs)}, push ${secs(s.pushMs)}, ` +
        `pull ${secs(s.pullMs)}, replace ${secs(s.replaceMs)}, healthy ${secs(s.healthyMs)}); ` +
        `ratio ${(im.totalMs / c.totalMs).toFixed(2)}x`,
    );
  }
  measurements.push(
    measurement({
      kind: "code-deploy",
      label: "Code deploy (touchdeploy)",
      variant: SHIPPED,
      n: 1,
      unit: "s",
      valuesMs: code.map((c) => c.totalMs),
      steps: codeSteps(code, codePhases),
      reloadsPerDeploy: codePhases.map((p) => p.reloads),
    }),
    measurement({
      kind: "container-deploy",
      label: "Container deploy (build, push, pull, replace)",
      variant: SHIPPED,
      n: 1,
      unit: "s",
      valuesMs: image.map((c) => c.totalMs),
      steps: imageSteps(image),
    }),
    measurement({
      kind: "ratio-container-over-code",
      label: "Ratio container / code (pair by pair)",
      variant: SHIPPED,
      n: 1,
      unit: "x",
      ratios: code.map((c, i) => image[i].totalMs / c.totalMs),
    }),
  );

  // ---------------------------------------------------------------- 3: under load
  const baseline = await step("load baseline (no deploy)", () =>
    ctx.window(`${codeHost.container.baseUrl}/`, () => sleep(2000)),
  );
  log(`baseline: ${describeWindow(baseline)}`);
  measurements.push(
    measurement({
      kind: "load-baseline",
      label: "Load alone, no deploy (window length)",
      variant: SHIPPED,
      n: 1,
      unit: "s",
      valuesMs: [baseline.durationMs],
      load: loadStats([baseline]),
    }),
  );

  // Run i deploys the same commit three ways, each in its own window: shipped, previous, image.
  const kinds = [
    { name: "code", host: codeHost },
    { name: "previous", host: prevHost },
  ].map((k) => ({
    ...k,
    deploys: [] as CodeDeployResult[],
    windows: [] as LoadWindow[],
    phases: [] as ReloadPhases[],
  }));
  const imageLoaded: ImageDeployResult[] = [];
  const imageWindows: LoadWindow[] = [];
  for (let i = 0; i < opts.runs; i++) {
    const sha = await newCommit(repo);
    const line: string[] = [];
    for (const k of kinds) {
      let c: CodeDeployResult | undefined;
      const w = await ctx.window(`${k.host.container.baseUrl}/`, async () => {
        c = await codeDeploy(k.host, repo, sha);
      });
      await settle();
      if (!c) throw new Error("a deploy under load did not report");
      await explainSlow(k.host, c, ctx.notes);
      k.phases.push(await reloadPhases(k.host, c));
      k.deploys.push(c);
      k.windows.push(w);
      line.push(`${k.name} deploy ${secs(c.totalMs)}: ${describeWindow(w)}`);
    }
    let im: ImageDeployResult | undefined;
    const iw = await ctx.window(`${imageHost.baseUrl}/`, async () => {
      im = await imageHost.deploy(sha);
    });
    await settle();
    if (!im) throw new Error("a deploy under load did not report");
    imageLoaded.push(im);
    imageWindows.push(iw);
    line.push(`container deploy ${secs(im.totalMs)}: ${describeWindow(iw)}`);
    log(`under load ${i + 1}/${opts.runs}: ${line.join("; ")}`);
  }
  const [shipped, previous] = kinds;
  measurements.push(
    measurement({
      kind: "code-deploy-under-load",
      label: `Code deploy under load (${opts.connections} clients)`,
      variant: SHIPPED,
      n: 1,
      unit: "s",
      valuesMs: shipped.deploys.map((c) => c.totalMs),
      load: loadStats(shipped.windows),
      reloadsPerDeploy: shipped.phases.map((p) => p.reloads),
    }),
    measurement({
      kind: "code-deploy-under-load",
      label: `Code deploy under load (${opts.connections} clients), previous contract`,
      variant: PREVIOUS,
      n: 1,
      unit: "s",
      valuesMs: previous.deploys.map((c) => c.totalMs),
      load: loadStats(previous.windows),
      reloadsPerDeploy: previous.phases.map((p) => p.reloads),
    }),
    measurement({
      kind: "container-deploy-under-load",
      label: `Container deploy under load (${opts.connections} clients)`,
      variant: SHIPPED,
      n: 1,
      unit: "s",
      valuesMs: imageLoaded.map((c) => c.totalMs),
      load: loadStats(imageWindows),
    }),
    measurement({
      kind: "ratio-container-over-code-under-load",
      label: "Ratio container / code under load (pair by pair)",
      variant: SHIPPED,
      n: 1,
      unit: "x",
      ratios: shipped.deploys.map((c, i) => imageLoaded[i].totalMs / c.totalMs),
    }),
    measurement({
      kind: "ratio-previous-over-shipped-under-load",
      label: "Ratio previous / shipped contract under load (pair by pair)",
      variant: PREVIOUS,
      n: 1,
      unit: "x",
      ratios: previous.deploys.map((c, i) => c.totalMs / shipped.deploys[i].totalMs),
    }),
  );
  await cleanupImageHost();
  await removePrevHost();
  await removeCodeHost();
  await stopRegistry();
  return baseline.machineBusy;
}

// ------------------------------------------------------------------ 5: reload experiments
/**
 * One host per contract variant, the same code deploy to each in turn (round-robin), with
 * uWSGI's reload phases and the CPU each deploy cost; the script variants use the shipped host.
 */
async function runExperiments(ctx: Context): Promise<void> {
  const { opts, repo, scratch, measurements } = ctx;
  const hosts = new Map<string, CodeHost>();
  const removeHosts = onCleanup("experiment hosts", async () => {
    for (const h of hosts.values()) await h.container.remove().catch(() => undefined);
  });
  for (const variant of [PREVIOUS, TOUCH_WAKE, FS_NO_WAKE, SHIPPED]) {
    const [h] = await createCodeHosts({
      count: 1,
      label: `exp-${variant.replace(/[^a-z]+/g, "")}`,
      dir: scratch,
      repo,
      image: ctx.imageOf(variant),
    });
    hosts.set(variant, h);
  }
  const hostOf = (variant: string): CodeHost => {
    const h = hosts.get(variant);
    if (!h) throw new Error(`no experiment host for ${variant}`);
    return h;
  };
  const stock = hostScriptText();
  const series = [
    { variant: PREVIOUS, host: hostOf(PREVIOUS), script: stock },
    { variant: TOUCH_WAKE, host: hostOf(TOUCH_WAKE), script: stock },
    { variant: FS_NO_WAKE, host: hostOf(FS_NO_WAKE), script: stock },
    { variant: SHIPPED, host: hostOf(SHIPPED), script: stock },
    { variant: POLL, host: hostOf(SHIPPED), script: scriptWithPoll("0.05") },
  ].map((s) => ({
    ...s,
    deploys: [] as CodeDeployResult[],
    phases: [] as ReloadPhases[],
    cpu: [] as CpuBreakdown[],
  }));
  const current = await repo.head();
  for (const h of hosts.values()) await codeDeploy(h, repo, current);
  await settle();
  await noteStalled(ctx, "reload experiments", [...hosts.values()]);
  log(`reload experiments: ${series.length} variants, interleaved round-robin`);
  for (let i = -opts.warmup; i < opts.shortRuns; i++) {
    const line: string[] = [];
    for (const s of series) {
      const sha = await newCommit(repo);
      const c0 = cpuSample([s.host.container.id]);
      const d = await codeDeploy(s.host, repo, sha, s.script);
      const cpu = cpuBetween(c0, cpuSample([s.host.container.id]));
      await settle();
      await explainSlow(s.host, d, ctx.notes);
      const p = await reloadPhases(s.host, d);
      if (i >= 0) {
        s.deploys.push(d);
        s.phases.push(p);
        s.cpu.push(cpu);
      }
      line.push(`${s.variant} ${secs(d.totalMs)} (${p.reloads} reload)`);
    }
    log(`${i < 0 ? "warm-up" : `run ${i + 1}/${opts.shortRuns}`}: ${line.join(", ")}`);
  }
  for (const s of series) {
    measurements.push(
      measurement({
        kind: "reload-experiment",
        label: `Code deploy, ${s.variant}`,
        variant: s.variant,
        n: 1,
        unit: "s",
        valuesMs: s.deploys.map((d) => d.totalMs),
        steps: codeSteps(s.deploys, s.phases),
        reloadsPerDeploy: s.phases.map((p) => p.reloads),
        cpuPerDeploy: cpuPerDeploy(s.cpu, 1),
      }),
    );
    const odd = s.phases.filter((p) => p.detections !== p.reloads);
    if (odd.length) {
      ctx.notes.push(
        `${s.variant}: uWSGI logged the trigger as noticed ${odd.map((p) => p.detections).join(", ")} ` +
          `time(s) in ${odd.length} deploy(s) with ${odd.map((p) => p.reloads).join(", ")} reload(s)`,
      );
    }
  }
  const [previous, , , shipped] = series;
  measurements.push(
    measurement({
      kind: "ratio-previous-over-shipped",
      label: "Ratio previous / shipped contract, idle (pair by pair)",
      variant: PREVIOUS,
      n: 1,
      unit: "x",
      ratios: previous.deploys.map((d, i) => d.totalMs / shipped.deploys[i].totalMs),
    }),
  );
  await removeHosts();
}

// ------------------------------------------------------------------ 4: scale
/**
 * N hosts, parallel and rolling, with the shipped contract. At the largest N also, interleaved
 * in each run: parallel with the previous contract (its own N hosts) and parallel with the host
 * script that forks no `date` (the same hosts).
 */
async function runScale(ctx: Context): Promise<void> {
  const { opts, repo, scratch, measurements } = ctx;
  const nMax = Math.max(...opts.ns);
  const profile = opts.profile && perfAvailable();
  if (opts.profile && !profile) log("--profile: perf is missing (or not root): no profile");
  for (const n of opts.ns) {
    const atMax = n === nMax;
    const hosts = await step(`scale: ${n} app root(s) + container(s)`, () =>
      createCodeHosts({
        count: n,
        label: `s${n}-`,
        dir: scratch,
        repo,
        image: ctx.imageOf(SHIPPED),
      }),
    );
    const removeHosts = hostsCleanup(`${n} scale hosts`, hosts);
    const prevHosts = atMax
      ? await step(`scale: ${n} more with the previous contract`, () =>
          createCodeHosts({
            count: n,
            label: `s${n}p-`,
            dir: scratch,
            repo,
            image: ctx.imageOf(PREVIOUS),
          }),
        )
      : [];
    const removePrevHosts = hostsCleanup(`${n} previous-contract scale hosts`, prevHosts);
    const first = await repo.head();
    await Promise.all([...hosts, ...prevHosts].map((h) => codeDeploy(h, repo, first)));
    await settle();
    await noteStalled(ctx, `scale N=${n}`, [...hosts, ...prevHosts]);

    const series = [
      { variant: SHIPPED, rollout: "parallel", hosts, script: undefined as string | undefined },
      { variant: SHIPPED, rollout: "rolling", hosts, script: undefined },
      ...(atMax
        ? [{ variant: PREVIOUS, rollout: "parallel", hosts: prevHosts, script: undefined }]
        : []),
    ].map((s) => ({
      ...s,
      times: [] as number[],
      cpu: [] as CpuBreakdown[],
      profiles: [] as Profile[],
      deploys: [] as CodeDeployResult[],
      phases: [] as ReloadPhases[],
    }));
    for (let i = 0; i < opts.shortRuns; i++) {
      const line: string[] = [];
      for (const s of series) {
        const sha = await newCommit(repo);
        const ids = s.hosts.map((h) => h.container.id);
        const prof =
          profile && atMax && s.rollout === "parallel"
            ? await startProfile(profileFile(scratch, `${s.variant}-${i}`))
            : undefined;
        const killProf = onCleanup("perf", () => prof?.kill());
        const c0 = cpuSample(ids);
        const t = Date.now();
        const done: CodeDeployResult[] = [];
        const deploy = (h: CodeHost): Promise<CodeDeployResult> =>
          codeDeploy(h, repo, sha, s.script);
        if (s.rollout === "parallel") done.push(...(await Promise.all(s.hosts.map(deploy))));
        else {
          for (let b = 0; b < s.hosts.length; b += opts.batchSize) {
            done.push(...(await Promise.all(s.hosts.slice(b, b + opts.batchSize).map(deploy))));
          }
        }
        const ms = Date.now() - t;
        const cpu = cpuBetween(c0, cpuSample(ids));
        if (prof) s.profiles.push(await prof.stop());
        await killProf();
        await settle();
        for (const [k, d] of done.entries()) {
          await explainSlow(s.hosts[k], d, ctx.notes);
          s.phases.push(await reloadPhases(s.hosts[k], d));
          const served = await getServed(s.hosts[k].container.healthUrl);
          if (served.revision !== sha)
            throw new Error(`${s.hosts[k].label} serves ${served.revision}`);
        }
        s.times.push(ms);
        s.cpu.push(cpu);
        s.deploys.push(...done);
        const slowest = Math.max(...done.map((d) => d.totalMs));
        line.push(
          `${s.variant} ${s.rollout} ${secs(ms)} (slowest host ${secs(slowest)}, CPU ` +
            `${Math.round(cpu.busy * 100)}% busy, ${cpu.cpuSeconds.toFixed(2)} CPU-s)`,
        );
      }
      log(`scale N=${n} run ${i + 1}/${opts.shortRuns}: ${line.join("; ")}`);
    }
    for (const s of series) {
      const variantLabel = s.variant === SHIPPED ? "" : `, ${s.variant}`;
      measurements.push(
        measurement({
          kind: `scale-${s.rollout}`,
          label:
            `${n} host${n > 1 ? "s" : ""}, ${s.rollout === "parallel" ? "parallel" : `rolling batch ${opts.batchSize}`}` +
            variantLabel,
          variant: s.variant,
          n,
          ...(s.rollout === "rolling" ? { batchSize: opts.batchSize } : {}),
          unit: "s",
          valuesMs: s.times,
          cpu: medianCpu(s.cpu),
          cpuPerDeploy: cpuPerDeploy(s.cpu, n),
          ...(s.profiles.length ? { profilePerDeploy: profilePerDeploy(s.profiles, n) } : {}),
          steps: codeSteps(s.deploys, s.phases),
          reloadsPerDeploy: s.phases.map((p) => p.reloads),
        }),
      );
    }
    if (atMax) {
      const shipped = series[0];
      const previous = series[series.length - 1];
      measurements.push(
        measurement({
          kind: "ratio-previous-over-shipped-parallel",
          label: `Ratio previous / shipped contract, ${n} hosts in parallel (pair by pair)`,
          variant: PREVIOUS,
          n,
          unit: "x",
          ratios: previous.times.map((t, i) => t / shipped.times[i]),
        }),
      );
    }
    await removePrevHosts();
    await removeHosts();
  }
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const started = new Date();
  const t0 = Date.now();
  const notes: string[] = [];
  const measurements: Measurement[] = [];
  log(
    `touchdeploy benchmark (${opts.smoke ? "smoke" : "full"}): ${opts.runs} runs per deploy kind, ` +
      `${opts.shortRuns} per experiment and scale point, N = ${opts.ns.join(", ")}`,
  );
  // Fails here, before anything starts, when runtime/uwsgi.ini lost the lines the variants edit.
  contractOf(PREVIOUS);
  scriptWithPoll("0.05");

  const machine = await step("checking the Docker engine", describeMachine);
  log(`machine: ${machine.description}; ${machine.docker}`);
  const swept = await sweepStaleBenchContainers();
  if (swept) log(`removed ${swept} container(s) left by an earlier benchmark`);
  const runtime = await step("runtime image (built from runtime/ when it changed)", () =>
    ensureRuntimeImage(),
  );
  log(`runtime image: ${runtime.tag}`);

  const scratch = makeScratchDir("bench");
  onCleanup("scratch directory", () => removeTree(scratch));
  const repo = await TestRepo.create(path.join(scratch, "repo"));

  // The contract variants' images (the shipped one is the runtime image itself).
  const docker = await ensureDocker();
  const images = new Map<string, string>([[SHIPPED, runtime.tag]]);
  const needed = opts.only.has("experiments") ? [PREVIOUS, TOUCH_WAKE, FS_NO_WAKE] : [PREVIOUS];
  for (const variant of needed) {
    const image = await step(`runtime variant image: ${variant}`, () =>
      ensureContractImage(runtime.tag, variant, scratch),
    );
    images.set(variant, image);
    onCleanup(`${variant} image`, () =>
      docker
        .getImage(image)
        .remove()
        .then(() => undefined)
        .catch(() => undefined),
    );
  }
  const imageOf = (variant: string): string => {
    const image = images.get(variant);
    if (!image) throw new Error(`no image for the contract variant ${variant}`);
    return image;
  };

  const loadOpts = {
    connections: opts.connections,
    ratePerSecond: opts.rate,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
    maxDurationMs: 180_000,
  };
  const window = async (url: string, during: () => Promise<unknown>): Promise<LoadWindow> => {
    const load = await startLoad({ ...loadOpts, url });
    const kill = onCleanup("load generator", () => load.kill());
    await sleep(LOAD_MARGIN_MS);
    await during();
    await sleep(LOAD_MARGIN_MS);
    const result = await load.stop();
    await kill();
    return result;
  };
  const ctx: Context = { opts, scratch, repo, machine, imageOf, measurements, notes, window };

  let baselineBusy: number | undefined;
  if (opts.only.has("deploys")) baselineBusy = await runDeploys(ctx);
  if (opts.only.has("experiments")) await runExperiments(ctx);
  if (opts.only.has("scale")) await runScale(ctx);

  // ---------------------------------------------------------------- results
  const find = (kind: string, variant = SHIPPED, n = 1): Measurement | undefined =>
    measurements.find((m) => m.kind === kind && m.variant === variant && m.n === n);
  const targets: Target[] = [];
  const codeM = find("code-deploy");
  if (codeM) {
    targets.push({
      name: "Code deploy, start → new code served",
      target: "median ≤ 2.5 s",
      measured: `${codeM.median.toFixed(2)} s`,
      met: codeM.median <= 2.5,
    });
  }
  const loaded = find("code-deploy-under-load");
  if (loaded) {
    targets.push({
      name: "Failed requests during code deploys under load",
      target: "0",
      measured: `${loaded.failed} of ${loaded.requests}`,
      met: loaded.failed === 0,
    });
  }
  const reloads = measurements.flatMap((m) => m.reloadsPerDeploy ?? []);
  if (reloads.length) {
    const wrong = reloads.filter((r) => r !== 1);
    targets.push({
      name: "uWSGI graceful reloads per code deploy (every variant)",
      target: "exactly 1",
      measured: wrong.length
        ? `${wrong.length} of ${reloads.length} deploys had ${[...new Set(wrong)].join("/")}`
        : `1 in all ${reloads.length} deploys`,
      met: wrong.length === 0,
    });
  }
  const nMax = Math.max(...opts.ns);
  const one = find("scale-parallel", SHIPPED, 1);
  const many = find("scale-parallel", SHIPPED, nMax);
  if (one && many && nMax > 1) {
    targets.push({
      name: `${nMax} hosts in parallel vs 1 host`,
      target: "≤ 1.5×",
      measured:
        `${(many.median / one.median).toFixed(2)}× (${many.median.toFixed(2)} s / ${one.median.toFixed(2)} s; ` +
        `CPU ${Math.round((many.cpu?.busy ?? NaN) * 100)}% busy, ${many.cpuPerDeploy?.total.toFixed(2)} CPU-s per deploy)`,
      met: many.median / one.median <= 1.5,
    });
  }
  for (const m of measurements) {
    if (m.reloadsPerDeploy?.some((r) => r !== 1)) {
      notes.push(`${m.label}: uWSGI reloads per deploy were ${m.reloadsPerDeploy.join(", ")}`);
    }
  }
  notes.push(
    `Load: ${opts.connections} clients in a separate Node process, ${opts.rate > 0 ? `${opts.rate} requests/s in total` : "unpaced"}, ` +
      `one request per connection, ${REQUEST_TIMEOUT_MS / 1000} s timeout` +
      (baselineBusy === undefined
        ? "."
        : `; the baseline window (load alone) kept the machine ${Math.round(baselineBusy * 100)}% busy.`),
  );

  const results: BenchResults = {
    schema: 2,
    date: started.toISOString(),
    mode: opts.smoke ? "smoke" : "full",
    durationSeconds: Math.round((Date.now() - t0) / 1000),
    machine,
    settings: {
      runs: opts.runs,
      shortRuns: opts.shortRuns,
      warmup: opts.warmup,
      settleSeconds: `${SETTLE_MS / 1000} + random 0..1`,
      runtimeImage: runtime.tag,
      app: "examples/hello-wsgi (processes = 2), one-line change of app.py per deploy",
      codeDeploy:
        "host/touchdeploy.sh deploy (bash -s on stdin) with the program's activate options",
      containerDeploy:
        "git archive + docker build (bench/image/Dockerfile), push, pull, stop + rm + create + start",
      load: {
        connections: opts.connections,
        ratePerSecond: opts.rate,
        requestTimeoutMs: REQUEST_TIMEOUT_MS,
        marginSeconds: LOAD_MARGIN_MS / 1000,
      },
      scale: { ns: opts.ns, batchSize: opts.batchSize },
      only: [...opts.only],
      profile: opts.profile,
    },
    variants: VARIANTS,
    measurements,
    targets,
    notes,
  };
  fs.mkdirSync(opts.outDir, { recursive: true });
  const svg = await renderChart(results);
  fs.writeFileSync(path.join(opts.outDir, "latest.svg"), svg);
  fs.writeFileSync(path.join(opts.outDir, "latest.json"), `${JSON.stringify(results, null, 2)}\n`);
  fs.writeFileSync(path.join(opts.outDir, "latest.md"), renderMarkdown(results, "latest.svg"));
  log(`wrote ${path.relative(REPO_ROOT, opts.outDir)}/latest.{json,md,svg}`);
  for (const t of targets) {
    log(`target ${t.met ? "met" : "NOT met"}: ${t.name}: ${t.measured} (goal ${t.target})`);
  }
}

let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: cleaning up`);
    void runCleanups().finally(() => process.exit(130));
  });
}

main()
  .then(async () => {
    await runCleanups();
    log("done");
  })
  .catch(async (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    await runCleanups();
    process.exit(1);
  });
