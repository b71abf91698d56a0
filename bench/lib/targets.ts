/**
 * The targets the benchmark reports (it never asserts them): met or not, with what was
 * measured. Issue 12's targets are judged per design on the slowest app of the contracts part
 * (2 s import in a full run); the recommended design is listed first.
 */
import type { Options } from "./context";
import { FS_RELOAD_WAKE, SHIPPED } from "./designs";
import type { Measurement, Target } from "./results";

/**
 * The contract the benchmark recommended, now shipped (runtime/: generations), and the one it
 * replaced (bench/variants/fs-reload-wake), judged side by side.
 */
export const RECOMMENDED = SHIPPED;
export const REPLACED = FS_RELOAD_WAKE;

/** Issue 12's targets for one design's contract-deploy measurement. */
export function contractTargets(m: Measurement): Target[] {
  const c = m.contract;
  if (!c?.baseline) return [];
  const imp = c.importSeconds ?? NaN;
  const who = `${m.variant}, ${c.app}`;
  const idleP99 = c.baseline.latencyMs.p99;
  const max = m.load?.latencyMs.max ?? NaN;
  const cpu = c.runtimeCpuPerDeploy?.median ?? NaN;
  return [
    {
      name: `${who}: max request latency during a deploy`,
      target: `≤ idle p99 + 100 ms (${idleP99} + 100 ms)`,
      measured: `${max} ms (p99 ${m.load?.latencyMs.p99 ?? "?"} ms)`,
      met: max <= idleP99 + 100,
    },
    {
      name: `${who}: failed requests during deploys`,
      target: "0",
      measured: `${m.failed} of ${m.requests}`,
      met: m.failed === 0,
    },
    {
      name: `${who}: start → new code served (host script, median)`,
      target: `≤ import + 0.5 s (${(imp + 0.5).toFixed(1)} s)`,
      measured:
        `${m.median.toFixed(2)} s (max ${m.max.toFixed(2)} s; old code last answered ` +
        `${c.lastOld ? `${c.lastOld.median.toFixed(2)} s` : "–"} after the start, median)`,
      met: m.median <= imp + 0.5,
    },
    {
      name: `${who}: CPU-s per deploy beyond the app's own import (runtime container)`,
      target: "≤ 0.1",
      measured:
        `${cpu.toFixed(3)} (the app's import sleeps: ~0 CPU; the host script adds ` +
        `${c.scriptCpuPerDeploy ? c.scriptCpuPerDeploy.median.toFixed(3) : "?"} CPU-s per deploy)`,
      met: cpu <= 0.1,
    },
  ];
}

export function computeTargets(measurements: Measurement[], opts: Options): Target[] {
  const find = (kind: string, variant = SHIPPED, n = 1): Measurement | undefined =>
    measurements.find((m) => m.kind === kind && m.variant === variant && m.n === n && !m.app);
  const targets: Target[] = [];
  // Issue 12: the shipped design first, then the one it replaced, on the slowest app.
  const contracts = measurements.filter((m) => m.kind === "contract-deploy");
  const slowest = Math.max(...contracts.map((m) => m.contract?.importSeconds ?? -1));
  for (const variant of [RECOMMENDED, REPLACED]) {
    const m = contracts.find((x) => x.variant === variant && x.contract?.importSeconds === slowest);
    if (m) targets.push(...contractTargets(m));
  }
  const codeM = find("code-deploy");
  if (codeM) {
    targets.push({
      name: "Code deploy (hello-wsgi), start → new code served",
      target: "median ≤ 2.5 s",
      measured: `${codeM.median.toFixed(2)} s`,
      met: codeM.median <= 2.5,
    });
  }
  const loaded = find("code-deploy-under-load");
  if (loaded) {
    targets.push({
      name: "Failed requests during code deploys under load (hello-wsgi)",
      target: "0",
      measured: `${loaded.failed} of ${loaded.requests}`,
      met: loaded.failed === 0,
    });
  }
  const reloads = measurements
    .filter((m) => m.kind !== "contract-rollback")
    .flatMap((m) => m.reloadsPerDeploy ?? []);
  if (reloads.length) {
    const wrong = reloads.filter((r) => r !== 1);
    targets.push({
      name: "Reloads (or generations) per code deploy, every design",
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
  return targets;
}
