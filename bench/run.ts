/**
 * `npm run bench`: code deploys vs container deploys on the real Docker engine, with the
 * example app, side by side. See bench/README.md for what is measured and how.
 *
 *   npm run bench                 full run (~10 min), writes bench/results/latest.{json,md,svg}
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
  type CodeDeployResult,
  type CodeHost,
  type ReloadPhases,
} from "./lib/codeHost";
import { sweepStaleBenchContainers } from "./lib/containers";
import { ImageHost, type ImageDeployResult } from "./lib/imageDeploy";
import { cpuTimes, startLoad, type LoadWindow } from "./lib/load";
import { log, secs, step } from "./lib/log";
import { startRegistry } from "./lib/registry";
import { renderMarkdown } from "./lib/report";
import type { BenchResults, LoadStats, Measurement, Target } from "./lib/results";
import { median, quantile, round, sum, summarize, type Summary } from "./lib/stats";
import {
  ensureContractImage,
  fsReloadContract,
  scriptWithPoll,
  stockContract,
  wakeContract,
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
  /** Which parts to run: deploys (1-3), experiments, scale (4). */
  only: Set<string>;
}

const USAGE = `usage: npm run bench -- [--smoke] [--runs N] [--short-runs N] [--ns 1,4,16]
                         [--connections C] [--rate R] [--out DIR]
  --smoke         one run of everything, N = 1,2, no warm-up; results to bench/.tmp/results-smoke
  --runs N        timed code/container deploy pairs, idle and under load (default 7)
  --short-runs N  timed runs per reload experiment and per scale point (default 5)
  --ns LIST       host counts for the scale measurement (default 1,4,16)
  --connections C concurrent load clients (default 16)
  --rate R        requests per second over all clients, 0 = as fast as they can (default 400)
  --out DIR       where latest.json, latest.md and latest.svg go (default bench/results)
  --only LIST     run only some parts: deploys (code vs container, idle and under load),
                  experiments (reload variants), scale (default: all three)`;

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

/** The contract variant the benchmark proposes (measured under load and at scale too). */
const PROPOSED = "fs-reload + wake";

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

function measurement(
  m: Omit<Measurement, "runs" | "median" | "min" | "max" | "samples" | "requests" | "failed"> & {
    valuesMs?: number[];
    ratios?: number[];
    load?: LoadStats;
  },
): Measurement {
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

/** The machine's CPU since `c0` (from cpuTimes): busy share of all cores and CPU seconds. */
function cpuSince(c0: { busy: number; total: number }): { busy: number; seconds: number } {
  const c1 = cpuTimes();
  const busy = c1.busy - c0.busy;
  return { busy: busy / Math.max(1, c1.total - c0.total), seconds: busy / 100 };
}

function medianCpu(xs: { busy: number; seconds: number }[]): { busy: number; seconds: number } {
  return {
    busy: round(median(xs.map((x) => x.busy))),
    seconds: round(median(xs.map((x) => x.seconds)), 2),
  };
}

/** A code deploy slower than this gets its script output and container log into the notes. */
const SLOW_MS = 10_000;

async function explainSlow(host: CodeHost, d: CodeDeployResult, notes: string[]): Promise<void> {
  if (d.totalMs < SLOW_MS) return;
  const lines = await host.container.logLines(d.startedAt - 1000);
  const tail = lines
    .filter((l) => l.atMs <= d.endedAt + 1000)
    .slice(-40)
    .map((l) => `${new Date(l.atMs).toISOString().slice(11, 23)} ${l.text}`);
  const text =
    `${host.label}: the deploy of ${d.sha.slice(0, 12)} took ${secs(d.totalMs)}. Script output: ` +
    `${d.result.stdout.trim().split("\n").join(" | ")}. Container log: ${tail.join(" | ")}`;
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
  const stockScript = hostScriptText();

  // Load windows: the load generator runs from 1 s before `during` until 1 s after it.
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
  const describeWindow = (w: LoadWindow): string =>
    `${w.requests} requests, ${w.non2xx} non-2xx, ${w.errors} errors, ${w.timeouts} timeouts, ` +
    `p99 ${quantile(
      [...w.latenciesMs].sort((a, b) => a - b),
      0.99,
    )} ms, CPU ${Math.round(w.machineBusy * 100)}%`;

  let baselineBusy: number | undefined;
  if (opts.only.has("deploys")) {
    // ---------------------------------------------------------------- 1 + 2: pairs, idle
    const registry = await step("starting docker-registry on 127.0.0.1", () =>
      startRegistry(path.join(scratch, "registry")),
    );
    const stopRegistry = onCleanup("registry", () => registry.stop());
    log(`registry: ${registry.address}`);

    const [codeHost] = await step("code host: app root + runtime container", () =>
      createCodeHosts({ count: 1, label: "code", dir: scratch, repo, image: runtime.tag }),
    );
    onCleanup("code host", () => codeHost.container.remove());
    const imageHost = new ImageHost({
      registry: registry.address,
      repo,
      runtimeImage: runtime.tag,
      dir: scratch,
      name: "image",
    });
    const cleanupImageHost = onCleanup("image host", () => imageHost.cleanup());
    const head = await repo.head();
    await step("first release on the code host", () => codeDeploy(codeHost, repo, head));
    await step("first image and container on the image host", () => imageHost.deploy(head));
    const uwsgiVersion = /Starting uWSGI (\S+)/.exec(
      (await codeHost.container.logLines(0)).map((l) => l.text).join("\n"),
    )?.[1];
    if (uwsgiVersion) machine.uwsgi = `uWSGI ${uwsgiVersion}`;

    for (let i = 0; i < opts.warmup; i++) {
      const sha = await newCommit(repo);
      const c = await codeDeploy(codeHost, repo, sha);
      await settle();
      const im = await imageHost.deploy(sha);
      log(
        `warm-up: code deploy ${secs(c.totalMs)}, container deploy ${secs(im.totalMs)} (not counted)`,
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
        variant: "stock",
        n: 1,
        unit: "s",
        valuesMs: code.map((c) => c.totalMs),
        steps: codeSteps(code, codePhases),
        reloadsPerDeploy: codePhases.map((p) => p.reloads),
      }),
      measurement({
        kind: "container-deploy",
        label: "Container deploy (build, push, pull, replace)",
        variant: "stock",
        n: 1,
        unit: "s",
        valuesMs: image.map((c) => c.totalMs),
        steps: imageSteps(image),
      }),
      measurement({
        kind: "ratio-container-over-code",
        label: "Ratio container / code (pair by pair)",
        variant: "stock",
        n: 1,
        unit: "x",
        ratios: code.map((c, i) => image[i].totalMs / c.totalMs),
      }),
    );

    // ---------------------------------------------------------------- 3: under load
    const baseline = await step("load baseline (no deploy)", () =>
      window(`${codeHost.container.baseUrl}/`, () => sleep(2000)),
    );
    log(`baseline: ${describeWindow(baseline)}`);
    measurements.push(
      measurement({
        kind: "load-baseline",
        label: "Load alone, no deploy (window length)",
        variant: "stock",
        n: 1,
        unit: "s",
        valuesMs: [baseline.durationMs],
        load: loadStats([baseline]),
      }),
    );

    const codeLoaded: CodeDeployResult[] = [];
    const codeWindows: LoadWindow[] = [];
    const imageLoaded: ImageDeployResult[] = [];
    const imageWindows: LoadWindow[] = [];
    for (let i = 0; i < opts.runs; i++) {
      const sha = await newCommit(repo);
      let c: CodeDeployResult | undefined;
      const cw = await window(`${codeHost.container.baseUrl}/`, async () => {
        c = await codeDeploy(codeHost, repo, sha);
      });
      await settle();
      let im: ImageDeployResult | undefined;
      const iw = await window(`${imageHost.baseUrl}/`, async () => {
        im = await imageHost.deploy(sha);
      });
      await settle();
      if (!c || !im) throw new Error("a deploy under load did not report");
      codeLoaded.push(c);
      codeWindows.push(cw);
      imageLoaded.push(im);
      imageWindows.push(iw);
      log(
        `under load ${i + 1}/${opts.runs}: code deploy ${secs(c.totalMs)}: ${describeWindow(cw)}; ` +
          `container deploy ${secs(im.totalMs)}: ${describeWindow(iw)}`,
      );
    }
    const codeLoad = loadStats(codeWindows);
    const imageLoad = loadStats(imageWindows);
    measurements.push(
      measurement({
        kind: "code-deploy-under-load",
        label: `Code deploy under load (${opts.connections} clients)`,
        variant: "stock",
        n: 1,
        unit: "s",
        valuesMs: codeLoaded.map((c) => c.totalMs),
        load: codeLoad,
      }),
      measurement({
        kind: "container-deploy-under-load",
        label: `Container deploy under load (${opts.connections} clients)`,
        variant: "stock",
        n: 1,
        unit: "s",
        valuesMs: imageLoaded.map((c) => c.totalMs),
        load: imageLoad,
      }),
      measurement({
        kind: "ratio-container-over-code-under-load",
        label: "Ratio container / code under load (pair by pair)",
        variant: "stock",
        n: 1,
        unit: "x",
        ratios: codeLoaded.map((c, i) => imageLoaded[i].totalMs / c.totalMs),
      }),
    );
    await cleanupImageHost();
    await stopRegistry();
    baselineBusy = baseline.machineBusy;
  }

  // ---------------------------------------------------------------- contract variants
  const docker = await ensureDocker();
  const variantImages = new Map<string, string>();
  for (const [variant, tag, contract] of [
    ["fs-reload", "fs-reload", fsReloadContract()],
    ["wake", "wake", wakeContract(stockContract())],
    [PROPOSED, "fs-reload-wake", wakeContract(fsReloadContract())],
  ] as const) {
    const image = await step(`runtime variant image: ${variant}`, () =>
      ensureContractImage(runtime.tag, tag, contract, scratch),
    );
    variantImages.set(variant, image);
    onCleanup(`${variant} image`, () =>
      docker
        .getImage(image)
        .remove()
        .then(() => undefined)
        .catch(() => undefined),
    );
  }
  const imageOf = (variant: string): string => variantImages.get(variant) ?? runtime.tag;
  // ---------------------------------------------------------------- reload experiments
  if (opts.only.has("experiments")) {
    const pollScript = scriptWithPoll("0.05");
    const expHosts = new Map<string, CodeHost>();
    const removeExpHosts = onCleanup("experiment hosts", async () => {
      for (const h of expHosts.values()) await h.container.remove().catch(() => undefined);
    });
    for (const variant of ["stock", "fs-reload", "wake", PROPOSED]) {
      const [h] = await createCodeHosts({
        count: 1,
        label: `exp-${variant.replace(/[^a-z]+/g, "")}`,
        dir: scratch,
        repo,
        image: imageOf(variant),
      });
      expHosts.set(variant, h);
    }
    const hostOf = (variant: string): CodeHost => {
      const h = expHosts.get(variant);
      if (!h) throw new Error(`no experiment host for ${variant}`);
      return h;
    };
    const series = [
      { variant: "stock", host: hostOf("stock"), script: stockScript },
      { variant: "health poll 0.05 s", host: hostOf("stock"), script: pollScript },
      { variant: "fs-reload", host: hostOf("fs-reload"), script: stockScript },
      { variant: "wake", host: hostOf("wake"), script: stockScript },
      { variant: PROPOSED, host: hostOf(PROPOSED), script: stockScript },
    ].map((s) => ({ ...s, deploys: [] as CodeDeployResult[], phases: [] as ReloadPhases[] }));
    const current = await repo.head();
    for (const h of expHosts.values()) await codeDeploy(h, repo, current);
    log(`reload experiments: ${series.length} variants, interleaved round-robin`);
    for (let i = -opts.warmup; i < opts.shortRuns; i++) {
      const line: string[] = [];
      for (const s of series) {
        const sha = await newCommit(repo);
        const d = await codeDeploy(s.host, repo, sha, s.script);
        await settle();
        await explainSlow(s.host, d, notes);
        const p = await reloadPhases(s.host, d);
        if (i >= 0) {
          s.deploys.push(d);
          s.phases.push(p);
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
        }),
      );
    }

    // The proposed contract under the same load as the stock one.
    const proposedHost = hostOf(PROPOSED);
    const proposedLoaded: CodeDeployResult[] = [];
    const proposedWindows: LoadWindow[] = [];
    const proposedPhases: ReloadPhases[] = [];
    for (let i = 0; i < opts.runs; i++) {
      const sha = await newCommit(repo);
      let c: CodeDeployResult | undefined;
      const w = await window(`${proposedHost.container.baseUrl}/`, async () => {
        c = await codeDeploy(proposedHost, repo, sha);
      });
      await settle();
      if (!c) throw new Error("a deploy under load did not report");
      proposedPhases.push(await reloadPhases(proposedHost, c));
      proposedLoaded.push(c);
      proposedWindows.push(w);
      log(
        `under load (${PROPOSED}) ${i + 1}/${opts.runs}: code deploy ${secs(c.totalMs)}: ${describeWindow(w)}`,
      );
    }
    measurements.push(
      measurement({
        kind: "code-deploy-under-load",
        label: `Code deploy under load (${opts.connections} clients), ${PROPOSED}`,
        variant: PROPOSED,
        n: 1,
        unit: "s",
        valuesMs: proposedLoaded.map((c) => c.totalMs),
        load: loadStats(proposedWindows),
        reloadsPerDeploy: proposedPhases.map((p) => p.reloads),
      }),
    );
    await removeExpHosts();
  }

  // ---------------------------------------------------------------- 4: scale
  if (opts.only.has("scale")) {
    for (const variant of [
      { name: "stock", image: runtime.tag },
      { name: PROPOSED, image: imageOf(PROPOSED) },
    ]) {
      for (const n of opts.ns) {
        const hosts = await step(`scale (${variant.name}): ${n} app root(s) + container(s)`, () =>
          createCodeHosts({
            count: n,
            label: `s${n}-${variant.name === "stock" ? "stock" : "proposed"}-`,
            dir: scratch,
            repo,
            image: variant.image,
          }),
        );
        const removeHosts = onCleanup(`${n} scale hosts`, async () => {
          for (const h of hosts) await h.container.remove().catch(() => undefined);
          for (const h of hosts) removeTree(path.dirname(h.root));
        });
        const first = await repo.head();
        await Promise.all(hosts.map((h) => codeDeploy(h, repo, first)));
        const parallel: number[] = [];
        const rolling: number[] = [];
        const parallelCpu: { busy: number; seconds: number }[] = [];
        const rollingCpu: { busy: number; seconds: number }[] = [];
        for (let i = 0; i < opts.shortRuns; i++) {
          let sha = await newCommit(repo);
          let t = Date.now();
          let c0 = cpuTimes();
          const done = await Promise.all(hosts.map((h) => codeDeploy(h, repo, sha)));
          parallel.push(Date.now() - t);
          parallelCpu.push(cpuSince(c0));
          await settle();
          sha = await newCommit(repo);
          t = Date.now();
          c0 = cpuTimes();
          for (let b = 0; b < hosts.length; b += opts.batchSize) {
            done.push(
              ...(await Promise.all(
                hosts.slice(b, b + opts.batchSize).map((h) => codeDeploy(h, repo, sha)),
              )),
            );
          }
          rolling.push(Date.now() - t);
          rollingCpu.push(cpuSince(c0));
          for (const [k, d] of done.entries()) await explainSlow(hosts[k % n], d, notes);
          await settle();
          for (const h of hosts) {
            const served = await getServed(h.container.healthUrl);
            if (served.revision !== sha) throw new Error(`${h.label} serves ${served.revision}`);
          }
          log(
            `scale (${variant.name}) N=${n} run ${i + 1}/${opts.shortRuns}: parallel ` +
              `${secs(parallel[i])} (CPU ${Math.round(parallelCpu[i].busy * 100)}% busy), rolling ` +
              `(batch ${opts.batchSize}) ${secs(rolling[i])} (CPU ${Math.round(rollingCpu[i].busy * 100)}% busy)`,
          );
        }
        measurements.push(
          measurement({
            kind: "scale-parallel",
            label: `${n} host${n > 1 ? "s" : ""}, parallel${variant.name === "stock" ? "" : ` (${variant.name})`}`,
            variant: variant.name,
            n,
            unit: "s",
            valuesMs: parallel,
            cpu: medianCpu(parallelCpu),
          }),
          measurement({
            kind: "scale-rolling",
            label: `${n} host${n > 1 ? "s" : ""}, rolling batch ${opts.batchSize}${variant.name === "stock" ? "" : ` (${variant.name})`}`,
            variant: variant.name,
            n,
            batchSize: opts.batchSize,
            unit: "s",
            valuesMs: rolling,
            cpu: medianCpu(rollingCpu),
          }),
        );
        await removeHosts();
      }
    }
  }

  // ---------------------------------------------------------------- results
  const find = (kind: string, variant = "stock", n = 1): Measurement | undefined =>
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
  const proposedM = find("reload-experiment", PROPOSED);
  if (proposedM) {
    targets.push({
      name: `Code deploy, start → new code served (${PROPOSED})`,
      target: "median ≤ 2.5 s",
      measured: `${proposedM.median.toFixed(2)} s`,
      met: proposedM.median <= 2.5,
    });
  }
  for (const variant of ["stock", PROPOSED]) {
    const m = find("code-deploy-under-load", variant);
    if (!m) continue;
    targets.push({
      name: `Failed requests during code deploys under load${variant === "stock" ? "" : ` (${variant})`}`,
      target: "0",
      measured: `${m.failed} of ${m.requests}`,
      met: m.failed === 0,
    });
  }
  const nMax = Math.max(...opts.ns);
  for (const variant of ["stock", PROPOSED]) {
    const one = find("scale-parallel", variant, 1);
    const many = find("scale-parallel", variant, nMax);
    if (one && many && nMax > 1) {
      targets.push({
        name: `${nMax} hosts in parallel vs 1 host${variant === "stock" ? "" : ` (${variant})`}`,
        target: "≤ 1.5×",
        measured: `${(many.median / one.median).toFixed(2)}× (${many.median.toFixed(2)} s / ${one.median.toFixed(2)} s)`,
        met: many.median / one.median <= 1.5,
      });
    }
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
    schema: 1,
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
    },
    proposedVariant: PROPOSED,
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
