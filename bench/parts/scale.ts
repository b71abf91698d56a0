/**
 * The scale part: N hosts on this machine (one app root and one runtime container each), the
 * same new commit to all, in parallel and rolling in batches; at the largest N also the
 * previous contract in parallel (its own N hosts). Total time per N and where the CPU went.
 */
import { getServed } from "../../test/harness/app";
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
  hostsCleanup,
  measurement,
  medianCpu,
  newCommit,
  noteStalled,
  profilePerDeploy,
  settle,
  type Context,
} from "../lib/context";
import { design, PREVIOUS, SHIPPED } from "../lib/designs";
import { log, secs, step } from "../lib/log";
import { perfAvailable, profileFile, startProfile, type Profile } from "../lib/profile";

/**
 * N hosts, parallel and rolling, with the shipped contract. At the largest N also, interleaved
 * in each run: parallel with the previous contract (its own N hosts) and parallel with the host
 * script that forks no `date` (the same hosts).
 */
export async function runScale(ctx: Context): Promise<void> {
  const { opts, repo, scratch, measurements } = ctx;
  const nMax = Math.max(...opts.ns);
  const profile = opts.profile && perfAvailable();
  if (opts.profile && !profile) log("--profile: perf is missing (or not root): no profile");
  for (const n of opts.ns) {
    const atMax = n === nMax;
    const hosts = await step(`scale: ${n} app root(s) + container(s)`, async () =>
      createCodeHosts({
        count: n,
        label: `s${n}-`,
        dir: scratch,
        repo,
        image: await ctx.imageOf(SHIPPED),
      }),
    );
    const removeHosts = hostsCleanup(`${n} scale hosts`, hosts);
    const prevHosts = atMax
      ? await step(`scale: ${n} more with the previous contract`, async () =>
          createCodeHosts({
            count: n,
            label: `s${n}p-`,
            dir: scratch,
            repo,
            image: await ctx.imageOf(PREVIOUS),
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
          codeDeploy(h, repo, sha, { scriptText: s.script });
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
          s.phases.push(
            await reloadPhases(s.hosts[k], d, Date.now(), design(s.variant).reloadLine),
          );
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
