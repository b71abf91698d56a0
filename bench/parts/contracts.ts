/**
 * The contracts part: deploy contracts (lib/designs.ts) side by side with apps that take time
 * to boot (lib/apps.ts), under load. One host (app root + container) per design and app; in
 * each run the same new commit is deployed to every design's host in turn (the order rotates
 * from run to run), each deploy inside its own load window: from 1 s before the deploy until
 * the old code has not answered for 1 s (whatever the contract takes), then a window of the
 * same length on the same host without a deploy. The host script is host/touchdeploy.sh as it
 * is for every design. Then, once per design (full runs), a commit whose app cannot be
 * imported: the script must roll back (exit 6); what did users see meanwhile?
 */
import * as path from "node:path";
import { APP_SUBDIR } from "../../test/harness/git";
import { describeRun, runHostScript } from "../../test/harness/hostScript";
import { sleep } from "../../test/harness/process";
import { djangoApp, slowApp, type BenchApp } from "../lib/apps";
import { codeDeploy, createCodeHosts, type CodeDeployResult, type CodeHost } from "../lib/codeHost";
import { containerCpuSeconds } from "../lib/cpu";
import {
  codeSteps,
  describeWindow,
  hostsCleanup,
  LOAD_MARGIN_MS,
  loadStats,
  measurement,
  nextChange,
  noteStalled,
  pick,
  settle,
  type Context,
} from "../lib/context";
import { onCleanup } from "../lib/cleanup";
import { design, DESIGNS, FS_RELOAD_WAKE, SHIPPED } from "../lib/designs";
import { startLoad, type LoadWindow } from "../lib/load";
import { withLock } from "../lib/lock";
import { log, secs, step } from "../lib/log";
import { round, type Summary } from "../lib/stats";
import { timeline, viewDeploy, type DeployView } from "../lib/timeline";

/** Longest a deploy window may last (the old code still answering after this is noted). */
const MAX_WINDOW_MS = 120_000;

/** Where a generations deploy's time goes, from the manager's log lines (ms). */
interface GenerationPhases {
  /** The trigger's touch -> "starting generation". */
  startMs?: number;
  /** "starting generation" -> "is serving" (uWSGI start, the app's import, the health check). */
  bootMs?: number;
  /** "is serving" -> the host script exited (its health poll saw the commit). */
  seenMs?: number;
}

async function generationPhases(host: CodeHost, d: CodeDeployResult): Promise<GenerationPhases> {
  const lines = await host.container.logLines(d.startedAt - 20);
  const start = lines.find((l) => l.text.includes("touchdeploy-generations: starting generation"));
  const ready = lines.find(
    (l) => l.atMs >= (start?.atMs ?? Infinity) && / is serving \(/.test(l.text),
  );
  const sub = (a?: number, b?: number): number | undefined =>
    a !== undefined && b !== undefined ? a - b : undefined;
  return {
    startMs: sub(start?.atMs, d.touchedAt),
    bootMs: sub(ready?.atMs, start?.atMs),
    seenMs: sub(d.endedAt, ready?.atMs),
  };
}

interface Series {
  design: string;
  host: CodeHost;
  deploys: CodeDeployResult[];
  windows: LoadWindow[];
  baselines: LoadWindow[];
  views: DeployView[];
  runtimeCpu: number[];
  reloads: number[];
  generations: GenerationPhases[];
}

/** Counts the lines containing `text` the container logged in [fromMs, toMs). */
async function countLines(host: CodeHost, text: string, fromMs: number, toMs: number) {
  const lines = await host.container.logLines(fromMs);
  return lines.filter((l) => l.atMs < toMs && l.text.includes(text)).length;
}

export function contractApps(ctx: Context): BenchApp[] {
  const apps = ctx.opts.importSeconds.map((s) => slowApp(s));
  // Only runtimes whose Dockerfile installs NAME/SUITE Aptfile entries can build its image.
  const django = djangoApp({ full: [SHIPPED, FS_RELOAD_WAKE], smoke: [SHIPPED] });
  if (django) apps.push(django);
  else {
    ctx.notes.push(
      "contracts: the Django example (examples/django-app) is not measured: it does not exist " +
        "on this branch",
    );
  }
  return apps;
}

export async function runContracts(ctx: Context): Promise<void> {
  for (const id of ctx.opts.designs) ctx.variants[id] = design(id).description;
  const apps = contractApps(ctx);
  // The broken-commit rollbacks run with the app that boots slowest.
  const slowest = apps.reduce((a, b) => ((b.importSeconds ?? 0) > (a.importSeconds ?? 0) ? b : a));
  for (const app of apps)
    await withLock(`contracts, ${app.id}`, () => runApp(ctx, app, app === slowest));
}

/** All designs with one app: hosts, runs, measurements, then (slowest app) the rollbacks. */
async function runApp(ctx: Context, app: BenchApp, rollbacks: boolean): Promise<void> {
  const { opts, scratch } = ctx;
  const only = app.designs && (opts.smoke ? app.designs.smoke : app.designs.full);
  const designs = only ? opts.designs.filter((d) => only.includes(d)) : opts.designs;
  if (designs.length === 0) {
    ctx.notes.push(`contracts, ${app.id}: none of the designs compared can run it; skipped`);
    return;
  }
  {
    const repo = await step(`contracts, ${app.id}: repository`, () =>
      app.createRepo(path.join(scratch, `repo-${app.id}`)),
    );
    const series: Series[] = [];
    const hosts: CodeHost[] = [];
    const removeHosts = hostsCleanup(`contract hosts (${app.id})`, hosts);
    for (const id of designs) {
      const d = DESIGNS[id];
      const [host] = await step(`contracts, ${app.id}: host for ${id}`, async () =>
        createCodeHosts({
          count: 1,
          label: `k-${app.id.replace(/[^a-z0-9]+/g, "")}-${id.replace(/[^a-z0-9]+/g, "")}`,
          dir: scratch,
          repo,
          image: await ctx.imageOf(id, app.aptPackages),
          env: [...(d.env ?? []), ...(app.env ?? [])],
          sysctls: d.sysctls,
        }),
      );
      hosts.push(host);
      series.push({
        design: id,
        host,
        deploys: [],
        windows: [],
        baselines: [],
        views: [],
        runtimeCpu: [],
        reloads: [],
        generations: [],
      });
    }
    const first = await repo.head();
    for (const s of series) {
      if (app.prepare) {
        const fetched = await runHostScript([
          "fetch",
          "--root",
          s.host.root,
          "--repo",
          repo.origin,
          "--commit",
          first,
        ]);
        if (fetched.code !== 0) throw new Error(`fetch for ${app.id}: ${describeRun(fetched)}`);
        await app.prepare(s.host.container, `/srv/app/releases/${first}/${APP_SUBDIR}`);
      }
      await codeDeploy(s.host, repo, first);
    }
    await settle();
    await noteStalled(
      ctx,
      `contracts (${app.id})`,
      series.map((s) => s.host),
    );
    for (let i = 0; i < opts.warmup; i++) {
      const sha = await app.change(repo, nextChange());
      for (const s of series) await codeDeploy(s.host, repo, sha);
      await settle();
      log(`contracts, ${app.id}: warm-up deploy to every design (not counted)`);
    }

    for (let i = 0; i < opts.shortRuns; i++) {
      const sha = await app.change(repo, nextChange());
      // Rotate the order, so that no design always follows the same one.
      const order = series.map((_, k) => series[(k + i) % series.length]);
      const line: string[] = [];
      for (const s of order) {
        const r = await deployInWindow(ctx, s, repo, sha);
        line.push(r);
      }
      log(`contracts, ${app.id}, run ${i + 1}/${opts.shortRuns}: ${line.join("; ")}`);
    }

    for (const s of series) {
      const v = s.views;
      measurements(ctx, app, s, v);
    }

    if (opts.rollbackTimeout > 0 && rollbacks) await runRollbacks(ctx, app, series, repo);
    await removeHosts();
  }
}

/** One deploy in its load window, then a window of the same length without a deploy. */
async function deployInWindow(
  ctx: Context,
  s: Series,
  repo: Parameters<typeof codeDeploy>[1],
  sha: string,
): Promise<string> {
  const url = `${s.host.container.baseUrl}/`;
  const load = await startLoad({ ...ctx.loadOptions, url, durationMs: MAX_WINDOW_MS });
  const kill = onCleanup("load generator", () => load.kill());
  const cpu0 = containerCpuSeconds(s.host.container.id) ?? NaN;
  await sleep(LOAD_MARGIN_MS);
  const d = await codeDeploy(s.host, repo, sha, { measureCpu: true });
  const w = await load.settle(sha, LOAD_MARGIN_MS);
  const cpu1 = containerCpuSeconds(s.host.container.id) ?? NaN;
  await kill();
  await settle();
  // The same length of load, no deploy.
  const base = await startLoad({ ...ctx.loadOptions, url, durationMs: MAX_WINDOW_MS });
  const killBase = onCleanup("load generator", () => base.kill());
  const b0 = containerCpuSeconds(s.host.container.id) ?? NaN;
  await sleep(w.durationMs);
  const b = await base.stop();
  const b1 = containerCpuSeconds(s.host.container.id) ?? NaN;
  await killBase();
  const reloads = await countLines(
    s.host,
    design(s.design).reloadLine,
    d.startedAt - 20,
    Date.now(),
  );
  await settle();
  const view = viewDeploy(w, d.startedAt, sha);
  s.deploys.push(d);
  s.windows.push(w);
  s.baselines.push(b);
  s.views.push(view);
  // Beyond serving: the baseline's CPU per request times the requests of the deploy window
  // (a contract that pauses serves fewer requests in its window: the clients are paced).
  s.runtimeCpu.push(cpu1 - cpu0 - ((b1 - b0) * w.requests) / Math.max(1, b.requests));
  s.reloads.push(reloads);
  if (design(s.design).reloadLine.startsWith("touchdeploy-generations")) {
    s.generations.push(await generationPhases(s.host, d));
  }
  if (view.lastOldMs !== undefined && w.durationMs >= MAX_WINDOW_MS) {
    ctx.notes.push(
      `contracts, ${s.design}: the old code still answered ${secs(view.lastOldMs)} after a ` +
        "deploy started, when the load window ended",
    );
  }
  return (
    `${s.design} ${secs(d.totalMs)} (all new ${view.lastOldMs === undefined ? "at once" : secs(view.lastOldMs)}, ` +
    `${reloads} reload) ${describeWindow(w)}`
  );
}

function measurements(ctx: Context, app: BenchApp, s: Series, v: DeployView[]): void {
  const baseline = loadStats(s.baselines);
  ctx.measurements.push(
    measurement({
      kind: "contract-deploy",
      label: `${s.design}, ${app.id}, under load (${ctx.opts.connections} clients)`,
      variant: s.design,
      n: 1,
      unit: "s",
      valuesMs: s.deploys.map((d) => d.totalMs),
      load: loadStats(s.windows),
      reloadsPerDeploy: s.reloads,
      steps: {
        ...codeSteps(s.deploys, []),
        ...generationSteps(s.generations),
      },
      contract: {
        app: app.id,
        ...(app.importSeconds !== undefined ? { importSeconds: app.importSeconds } : {}),
        firstNew: pick(
          v.map((x) => x.firstNewMs),
          1 / 1000,
        ),
        lastOld: pick(
          v.map((x) => x.lastOldMs ?? 0),
          1 / 1000,
        ),
        oldAfterNew: v.reduce((a, x) => a + x.oldAfterNew, 0),
        baseline,
        runtimeCpuPerDeploy: pick(s.runtimeCpu.map((x) => round(x, 3))),
        scriptCpuPerDeploy: pick(s.deploys.map((d) => d.scriptCpuSeconds)),
        exitCodes: s.deploys.map((d) => d.code),
        timeline: timeline(s.windows.map((w, k) => ({ w, deployStartMs: s.deploys[k].startedAt }))),
      },
    }),
  );
}

function generationSteps(g: GenerationPhases[]): Record<string, Summary> {
  if (!g.length) return {};
  const entries: [string, Summary | undefined][] = [
    [
      "manager: touch → new instance started",
      pick(
        g.map((x) => x.startMs),
        1 / 1000,
      ),
    ],
    [
      "manager: started → healthy (uWSGI start, import, health)",
      pick(
        g.map((x) => x.bootMs),
        1 / 1000,
      ),
    ],
    [
      "host: healthy → its health check saw it, script exited",
      pick(
        g.map((x) => x.seenMs),
        1 / 1000,
      ),
    ],
  ];
  return Object.fromEntries(entries.filter((e): e is [string, Summary] => e[1] !== undefined));
}

/**
 * A commit whose app cannot be imported, deployed to every design under load with a short
 * health timeout: the host script must switch back and exit 6. Then a working commit again.
 */
async function runRollbacks(
  ctx: Context,
  app: BenchApp,
  series: Series[],
  repo: Parameters<typeof codeDeploy>[1],
): Promise<void> {
  const good = await repo.head();
  const broken = await app.breakIt(repo);
  for (const s of series) {
    const url = `${s.host.container.baseUrl}/`;
    const load = await startLoad({ ...ctx.loadOptions, url, durationMs: MAX_WINDOW_MS });
    const kill = onCleanup("load generator", () => load.kill());
    await sleep(LOAD_MARGIN_MS);
    const d = await codeDeploy(s.host, repo, broken, {
      healthTimeout: ctx.opts.rollbackTimeout,
      allowFailure: true,
    });
    const w = await load.settle(good, LOAD_MARGIN_MS);
    await kill();
    const reloads = await countLines(
      s.host,
      design(s.design).reloadLine,
      d.startedAt - 20,
      Date.now(),
    );
    await settle();
    log(
      `contracts, rollback of a broken commit, ${s.design}: exit ${d.code} after ${secs(d.totalMs)}, ` +
        `${reloads} reloads; ${describeWindow(w)}`,
    );
    const errors = w.samples.filter(([, , o]) => o < 0).length;
    if (d.code !== 6) {
      ctx.notes.push(
        `contracts, ${s.design}: the broken commit's deploy exited ${d.code}, not 6 (rolled ` +
          `back): ${d.result.stdout.trim().split("\n").slice(-2).join(" / ")}`,
      );
    }
    ctx.measurements.push(
      measurement({
        kind: "contract-rollback",
        label: `${s.design}, ${app.id}: broken commit rolled back (health timeout ${ctx.opts.rollbackTimeout} s)`,
        variant: s.design,
        n: 1,
        unit: "s",
        valuesMs: [d.totalMs],
        load: loadStats([w]),
        reloadsPerDeploy: [reloads],
        contract: {
          app: app.id,
          ...(app.importSeconds !== undefined ? { importSeconds: app.importSeconds } : {}),
          oldAfterNew: 0,
          exitCodes: [d.code],
          timeline: timeline([{ w, deployStartMs: d.startedAt }]),
        },
      }),
    );
    if (errors > 0) log(`  ${errors} failed requests during the broken deploy of ${s.design}`);
  }
  const fixed = await app.fixIt(repo, nextChange());
  for (const s of series) {
    const d = await codeDeploy(s.host, repo, fixed, { allowFailure: true });
    if (d.code !== 0) {
      ctx.notes.push(
        `contracts, ${s.design}: after the broken commit, a working commit did not deploy ` +
          `either (exit ${d.code}): ${d.result.stdout.trim().split("\n").slice(-2).join(" / ")}`,
      );
    }
  }
  await settle();
}
