/**
 * `npm run bench`: code deploys vs image deploys on the real Docker engine, side by side; the
 * deploy contracts (the shipped one, the previous one and the other designs under
 * bench/variants/) side by side with apps that take time to boot. See bench/README.md for what
 * is measured and how. The parts live in bench/parts/ (one per `--only` name).
 *
 *   npm run bench                 full run (~50 min), writes bench/results/latest.{json,md,svg}
 *   npm run bench -- --smoke      one run of everything, small (CI), writes bench/.tmp/
 *   npm run bench -- --help       all options
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ensureDocker } from "../test/harness/docker";
import { TestRepo } from "../test/harness/git";
import { ensureRuntimeImage, REPO_ROOT } from "../test/harness/images";
import { makeScratchDir, removeTree, sleep } from "../test/harness/process";
import { renderChart } from "./lib/chart";
import { onCleanup, runCleanups } from "./lib/cleanup";
import { sweepStaleBenchContainers } from "./lib/containers";
import {
  defaultOutDir,
  LOAD_MARGIN_MS,
  PARTS,
  REQUEST_TIMEOUT_MS,
  SETTLE_MS,
  type Context,
  type Options,
  type Part,
  useSmokeTiming,
} from "./lib/context";
import {
  CHAIN,
  checkDesignFiles,
  DESIGNS,
  ensureDesignImage,
  FS_NO_WAKE,
  FS_RELOAD_WAKE,
  GENERATIONS,
  GENERATIONS_MIGRATE,
  GENERATIONS_REUSEPORT,
  GENERATIONS_ZERG,
  PREVIOUS,
  SHIPPED,
  TOUCH_WAKE,
  WORKERS,
} from "./lib/designs";
import { startLoad, type LoadWindow } from "./lib/load";
import { useLock, withLock } from "./lib/lock";
import { log, step } from "./lib/log";
import { renderMarkdown } from "./lib/report";
import type { BenchResults, Measurement } from "./lib/results";
import { scriptWithPoll } from "./lib/scriptVariants";
import { computeTargets } from "./lib/targets";
import { runContracts } from "./parts/contracts";
import { runDeploys } from "./parts/deploys";
import { runExperiments } from "./parts/experiments";
import { runScale } from "./parts/scale";

/** Every design the contracts part compares by default. */
const ALL_DESIGNS = [
  SHIPPED,
  FS_RELOAD_WAKE,
  PREVIOUS,
  CHAIN,
  WORKERS,
  GENERATIONS,
  GENERATIONS_ZERG,
  GENERATIONS_REUSEPORT,
  GENERATIONS_MIGRATE,
];
const SMOKE_DESIGNS = [SHIPPED, FS_RELOAD_WAKE, CHAIN];

const USAGE = `usage: npm run bench -- [--smoke] [--runs N] [--short-runs N] [--ns 1,4,16]
                         [--connections C] [--rate R] [--out DIR] [--only LIST] [--profile]
                         [--import 0,0.5,2] [--designs LIST] [--rollback-timeout S]
                         [--lock FILE]
  --smoke         one run of everything, small: N = 1,2, import 0.5 s, 3 designs, no
                  warm-up, no rollbacks; results to bench/.tmp/results-smoke
  --runs N        timed code/image deploy pairs, idle and under load (default 7)
  --short-runs N  timed runs per reload experiment, scale point, contract (default 5)
  --ns LIST       host counts for the scale measurement (default 1,4,16)
  --connections C concurrent load clients (default 16)
  --rate R        requests per second over all clients, 0 = as fast as they can (default 400)
  --out DIR       where latest.json, latest.md and latest.svg go (default bench/results)
  --only LIST     run only some parts: ${PARTS.join(", ")} (default: all)
  --profile       perf record -a during the parallel deploys to the most hosts: CPU seconds
                  per deploy by process (needs perf, root)
  --import LIST   import times (s) of the slow app in the contracts part (default 0,0.5,2);
                  the deploys part uses the largest
  --designs LIST  contracts compared (default: ${ALL_DESIGNS.join(", ")})
  --rollback-timeout S  health timeout of the broken-commit deploys in the contracts part
                  (default 10; 0 skips them)
  --lock FILE     hold flock FILE for each part (each app of the contracts part), not for
                  the whole run: on a machine shared with other Docker users`;

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
    outDir: defaultOutDir(smoke),
    only: new Set(PARTS),
    profile: false,
    importSeconds: smoke ? [0.5] : [0, 0.5, 2],
    designs: smoke ? SMOKE_DESIGNS : ALL_DESIGNS,
    rollbackTimeout: smoke ? 0 : 10,
    lock: undefined,
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
    else if (a === "--rollback-timeout") opts.rollbackTimeout = int(0);
    else if (a === "--out") opts.outDir = path.resolve(next());
    else if (a === "--lock") opts.lock = path.resolve(next());
    else if (a === "--profile") opts.profile = true;
    else if (a === "--only") {
      const parts = next().split(",");
      const bad = parts.filter((p) => !(PARTS as readonly string[]).includes(p));
      if (bad.length) throw new Error(`--only: unknown part(s) ${bad.join(", ")}\n${USAGE}`);
      opts.only = new Set(parts as Part[]);
    } else if (a === "--ns") {
      opts.ns = next()
        .split(",")
        .map((s) => Number(s));
      if (!opts.ns.every((n) => Number.isInteger(n) && n >= 1)) throw new Error(`--ns: ${USAGE}`);
    } else if (a === "--import") {
      opts.importSeconds = next()
        .split(",")
        .map((s) => Number(s));
      if (!opts.importSeconds.every((s) => Number.isFinite(s) && s >= 0 && s <= 30)) {
        throw new Error(`--import: seconds from 0 to 30\n${USAGE}`);
      }
    } else if (a === "--designs") {
      opts.designs = next().split(",");
      const bad = opts.designs.filter((d) => !DESIGNS[d]);
      if (bad.length) throw new Error(`--designs: unknown ${bad.join(", ")}\n${USAGE}`);
    } else if (a === "--help" || a === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  return opts;
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

/** /proc/loadavg's three load averages: how busy the machine was (other work included). */
function loadAverage(): number[] {
  return fs.readFileSync("/proc/loadavg", "utf8").trim().split(/\s+/).slice(0, 3).map(Number);
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.smoke) useSmokeTiming();
  useLock(opts.lock);
  const started = new Date();
  const t0 = Date.now();
  const loadBefore = loadAverage();
  const notes: string[] = [];
  const measurements: Measurement[] = [];
  log(
    `touchdeploy benchmark (${opts.smoke ? "smoke" : "full"}): parts ${[...opts.only].join(", ")}; ` +
      `${opts.runs} runs per deploy kind, ${opts.shortRuns} per experiment, scale point and ` +
      `contract; N = ${opts.ns.join(", ")}; import ${opts.importSeconds.join(", ")} s; ` +
      `load average before ${loadBefore.join(" ")}`,
  );
  // Fails here, before anything starts, when a variant's file or the script's line is missing.
  checkDesignFiles([...opts.designs, FS_RELOAD_WAKE, PREVIOUS, TOUCH_WAKE, FS_NO_WAKE]);
  scriptWithPoll("0.05");

  const machine = await step("checking the Docker engine", describeMachine);
  log(`machine: ${machine.description}; ${machine.docker}`);
  const swept = await sweepStaleBenchContainers();
  if (swept) log(`removed ${swept} container(s) left by an earlier benchmark`);
  const runtime = await withLock("runtime image", () =>
    step("runtime image (built from runtime/ when it changed)", () => ensureRuntimeImage()),
  );
  log(`runtime image: ${runtime.tag}`);

  const scratch = makeScratchDir("bench");
  onCleanup("scratch directory", () => removeTree(scratch));
  const repo = await TestRepo.create(path.join(scratch, "repo"));

  // Design images are built on first use and kept (labelled touchdeploy.bench, tagged by the
  // hash of their files): a rerun does not build them again.
  const images = new Map<string, Promise<string>>();
  const imageOf = (id: string, aptPackages = ""): Promise<string> => {
    const key = `${id}\0${aptPackages}`;
    let image = images.get(key);
    if (!image) {
      image = step(
        `image of the ${id} contract${aptPackages ? ` with ${aptPackages}` : ""}`,
        async () =>
          aptPackages && id === SHIPPED
            ? (await ensureRuntimeImage({ aptPackages })).tag
            : ensureDesignImage(id, runtime.tag, scratch, aptPackages),
      );
      images.set(key, image);
    }
    return image;
  };

  const loadOptions = {
    connections: opts.connections,
    ratePerSecond: opts.rate,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
  };
  const window = async (url: string, during: () => Promise<unknown>): Promise<LoadWindow> => {
    const load = await startLoad({ ...loadOptions, url, durationMs: 180_000 });
    const kill = onCleanup("load generator", () => load.kill());
    await sleep(LOAD_MARGIN_MS);
    await during();
    await sleep(LOAD_MARGIN_MS);
    const result = await load.stop();
    await kill();
    return result;
  };
  const variants: Record<string, string> = {};
  const ctx: Context = {
    opts,
    scratch,
    repo,
    machine,
    imageOf,
    measurements,
    notes,
    variants,
    window,
    loadOptions,
  };

  let baselineBusy: number | undefined;
  const part = async (name: Part, fn: () => Promise<void>): Promise<void> => {
    if (!opts.only.has(name)) return;
    const before = loadAverage();
    await withLock(name, fn);
    notes.push(
      `Load average (1, 5, 15 min) around the ${name} part: ${before.join(" ")} → ${loadAverage().join(" ")}.`,
    );
  };
  await part("deploys", async () => {
    baselineBusy = await runDeploys(ctx);
  });
  // The contracts part takes the lock for each app itself (it runs longest).
  if (opts.only.has("contracts")) {
    const before = loadAverage();
    await runContracts(ctx);
    notes.push(
      `Load average around the contracts part: ${before.join(" ")} → ${loadAverage().join(" ")}.`,
    );
  }
  await part("experiments", () => runExperiments(ctx));
  await part("scale", () => runScale(ctx));

  const loadAfter = loadAverage();
  const targets = computeTargets(measurements, opts);
  for (const m of measurements) {
    if (m.kind !== "contract-rollback" && m.reloadsPerDeploy?.some((r) => r !== 1)) {
      notes.push(`${m.label}: reloads per deploy were ${m.reloadsPerDeploy.join(", ")}`);
    }
  }
  notes.push(
    `Load: ${opts.connections} clients in a separate Node process, ${opts.rate > 0 ? `${opts.rate} requests/s in total` : "unpaced"}, ` +
      `one request per connection, ${REQUEST_TIMEOUT_MS / 1000} s timeout` +
      (baselineBusy === undefined
        ? "."
        : `; the baseline window (load alone) kept the machine ${Math.round(baselineBusy * 100)}% busy.`),
  );
  notes.push(
    `Machine load average (1, 5, 15 min; other work on this shared machine included): ` +
      `${loadBefore.join(" ")} before the run, ${loadAfter.join(" ")} after.`,
  );

  const results: BenchResults = {
    schema: 3,
    date: started.toISOString(),
    mode: opts.smoke ? "smoke" : "full",
    durationSeconds: Math.round((Date.now() - t0) / 1000),
    machine: {
      ...machine,
      loadAverageBefore: loadBefore.join(" "),
      loadAverageAfter: loadAfter.join(" "),
    },
    settings: {
      runs: opts.runs,
      shortRuns: opts.shortRuns,
      warmup: opts.warmup,
      settleSeconds: `${SETTLE_MS / 1000} + random 0..1`,
      runtimeImage: runtime.tag,
      app: "examples/hello-wsgi (processes = 2), one-line change of app.py per deploy",
      contractsApps: opts.importSeconds.map((s) => `slow-${s}s`),
      designs: opts.designs,
      rollbackTimeout: opts.rollbackTimeout,
      codeDeploy:
        "host/touchdeploy.sh deploy (bash -s on stdin) with the program's release options",
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
    variants,
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
