/**
 * The experiments part: one host per contract variant (the shipped contract, the previous one
 * and each of 624ea2c's two changes alone, all committed under bench/variants/), the same code
 * deploy to each in turn (round-robin), with uWSGI's reload phases and the CPU each deploy
 * cost; the host script variant (health poll) runs against the shipped host.
 */
import { hostScriptText } from "../../test/harness/hostScript";
import { onCleanup } from "../lib/cleanup";
import {
  codeDeploy,
  createCodeHosts,
  reloadPhases,
  type CodeDeployResult,
  type CodeHost,
  type ReloadPhases,
} from "../lib/codeHost";
import { cpuBetween, cpuSample, type CpuBreakdown } from "../lib/cpu";
import {
  codeSteps,
  cpuPerDeploy,
  explainSlow,
  measurement,
  newCommit,
  noteStalled,
  settle,
  type Context,
} from "../lib/context";
import { UWSGI_RELOAD_LOG_LINE } from "../../test/harness/app";
import { design, FS_NO_WAKE, FS_RELOAD_WAKE, PREVIOUS, SHIPPED, TOUCH_WAKE } from "../lib/designs";
import { log, secs } from "../lib/log";
import { scriptWithPoll, shippedPoll } from "../lib/scriptVariants";

/** Host script variants, run against the shipped contract. */
export const POLL = "shipped + health poll 0.05 s";

/**
 * One host per contract variant, the same code deploy to each in turn (round-robin), with
 * uWSGI's reload phases and the CPU each deploy cost; the script variants use the shipped host.
 */
export async function runExperiments(ctx: Context): Promise<void> {
  const { opts, repo, scratch, measurements } = ctx;
  for (const id of [PREVIOUS, TOUCH_WAKE, FS_NO_WAKE, FS_RELOAD_WAKE, SHIPPED]) {
    ctx.variants[id] = design(id).description;
  }
  ctx.variants[POLL] =
    `the shipped contract; the host script's health check polls every 0.05 s, not ${shippedPoll()} s`;
  const hosts = new Map<string, CodeHost>();
  const removeHosts = onCleanup("experiment hosts", async () => {
    for (const h of hosts.values()) await h.container.remove().catch(() => undefined);
  });
  for (const variant of [PREVIOUS, TOUCH_WAKE, FS_NO_WAKE, FS_RELOAD_WAKE, SHIPPED]) {
    const [h] = await createCodeHosts({
      count: 1,
      label: `exp-${variant.replace(/[^a-z]+/g, "")}`,
      dir: scratch,
      repo,
      image: await ctx.imageOf(variant),
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
    { variant: FS_RELOAD_WAKE, host: hostOf(FS_RELOAD_WAKE), script: stock },
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
      const d = await codeDeploy(s.host, repo, sha, { scriptText: s.script });
      const cpu = cpuBetween(c0, cpuSample([s.host.container.id]));
      await settle();
      await explainSlow(s.host, d, ctx.notes);
      const p = await reloadPhases(
        s.host,
        d,
        Date.now(),
        design(s.variant === POLL ? SHIPPED : s.variant).reloadLine,
      );
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
    // uWSGI's own "trigger noticed" lines exist only for the contracts that reload in place.
    const inPlace =
      design(s.variant === POLL ? SHIPPED : s.variant).reloadLine === UWSGI_RELOAD_LOG_LINE;
    const odd = inPlace ? s.phases.filter((p) => p.detections !== p.reloads) : [];
    if (odd.length) {
      ctx.notes.push(
        `${s.variant}: uWSGI logged the trigger as noticed ${odd.map((p) => p.detections).join(", ")} ` +
          `time(s) in ${odd.length} deploy(s) with ${odd.map((p) => p.reloads).join(", ")} reload(s)`,
      );
    }
  }
  const previous = series[0];
  const shipped = series.find((s) => s.variant === SHIPPED) ?? series[0];
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
