/**
 * The deploys part: a touchdeploy code deploy vs the same commit shipped as an image
 * (lib/imageDeploy.ts: the old way on touchdeploy's runtime image, the old way on a plain uWSGI
 * image, and blue/green behind a proxy as Kamal does), idle and under load, with hello-wsgi;
 * then under load with the slow app (2 s import), where the code deploy's contract matters
 * (the shipped one and the recommended "generations"). In run i every kind deploys the same
 * commit; the order of the kinds is reversed every other run, so that within each pair each
 * one goes first half of the time.
 */
import * as path from "node:path";
import { sleep } from "../../test/harness/process";
import type { TestRepo } from "../../test/harness/git";
import { slowApp } from "../lib/apps";
import { onCleanup } from "../lib/cleanup";
import {
  codeDeploy,
  createCodeHosts,
  reloadPhases,
  type CodeDeployResult,
  type CodeHost,
  type ReloadPhases,
} from "../lib/codeHost";
import {
  codeSteps,
  describeWindow,
  explainSlow,
  hostsCleanup,
  imageSteps,
  loadStats,
  measurement,
  newCommit,
  nextChange,
  noteStalled,
  settle,
  type Context,
} from "../lib/context";
import { design, FS_RELOAD_WAKE, PREVIOUS, SHIPPED } from "../lib/designs";
import {
  IMAGE_PATH_TEXT,
  IMAGE_PATHS,
  ImageHost,
  prepareImagePaths,
  type ImageDeployResult,
  type ImagePath,
} from "../lib/imageDeploy";
import type { LoadWindow } from "../lib/load";
import { log, secs, step } from "../lib/log";
import { startRegistry } from "../lib/registry";

/** One kind of deploy in a run: a code deploy to a host, or an image path. */
interface Kind {
  name: string;
  variant: string;
  deploy: (sha: string) => Promise<{ totalMs: number }>;
  baseUrl: () => string;
  code: CodeDeployResult[];
  phases: ReloadPhases[];
  image: ImageDeployResult[];
  windows: LoadWindow[];
  host?: CodeHost;
}

function codeKind(name: string, variant: string, host: CodeHost, repo: TestRepo): Kind {
  const k: Kind = {
    name,
    variant,
    host,
    code: [],
    phases: [],
    image: [],
    windows: [],
    baseUrl: () => host.container.baseUrl,
    deploy: async (sha) => {
      const d = await codeDeploy(host, repo, sha);
      k.code.push(d);
      return d;
    },
  };
  return k;
}

function imageKind(path: ImagePath, host: ImageHost): Kind {
  const k: Kind = {
    name: path,
    variant: path,
    code: [],
    phases: [],
    image: [],
    windows: [],
    baseUrl: () => host.baseUrl,
    deploy: async (sha) => {
      const d = await host.deploy(sha);
      k.image.push(d);
      return d;
    },
  };
  return k;
}

const HELLO = "hello-wsgi";

/** Run i's order: as given for even i, reversed for odd i. */
const orderOf = <T>(kinds: T[], i: number): T[] => (i % 2 ? [...kinds].reverse() : kinds);

export async function runDeploys(ctx: Context): Promise<number> {
  const { opts, repo, scratch, measurements } = ctx;
  for (const p of IMAGE_PATHS) ctx.variants[p] = IMAGE_PATH_TEXT[p];
  ctx.variants[FS_RELOAD_WAKE] = design(FS_RELOAD_WAKE).description;
  await step("images the image paths need (the proxy)", () =>
    prepareImagePaths(IMAGE_PATHS, scratch),
  );
  const registry = await step("starting docker-registry on 127.0.0.1", () =>
    startRegistry(path.join(scratch, "registry")),
  );
  const stopRegistry = onCleanup("registry", () => registry.stop());
  log(`registry: ${registry.address}`);
  const runtimeImage = await ctx.imageOf(SHIPPED);

  const hosts: CodeHost[] = [];
  const removeHosts = hostsCleanup("deploys: code hosts", hosts);
  const [codeHost] = await step("code host: app root + runtime container", async () =>
    createCodeHosts({ count: 1, label: "code", dir: scratch, repo, image: runtimeImage }),
  );
  hosts.push(codeHost);
  const [prevHost] = await step("code host with the previous contract", async () =>
    createCodeHosts({
      count: 1,
      label: "prev",
      dir: scratch,
      repo,
      image: await ctx.imageOf(PREVIOUS),
    }),
  );
  hosts.push(prevHost);
  const imageHosts = IMAGE_PATHS.map(
    (p) =>
      new ImageHost({
        path: p,
        registry: registry.address,
        repo,
        runtimeImage,
        dir: scratch,
        name: `img-${p}`,
      }),
  );
  const cleanupImageHosts = onCleanup("image hosts", async () => {
    for (const h of imageHosts) await h.cleanup();
  });
  const head = await repo.head();
  await step("first release on the code hosts", async () => {
    await codeDeploy(codeHost, repo, head);
    await codeDeploy(prevHost, repo, head);
  });
  await settle();
  await noteStalled(ctx, "deploys", [codeHost, prevHost]);
  for (const [i, h] of imageHosts.entries()) {
    await step(`first image and container: ${IMAGE_PATHS[i]}`, () => h.deploy(head));
  }
  const uwsgiVersion = /Starting uWSGI (\S+)/.exec(
    (await codeHost.container.logLines(0)).map((l) => l.text).join("\n"),
  )?.[1];
  if (uwsgiVersion) ctx.machine.uwsgi = `uWSGI ${uwsgiVersion}`;

  // ------------------------------------------------------------------ idle
  const idle = [
    codeKind("code deploy", SHIPPED, codeHost, repo),
    ...IMAGE_PATHS.map((p, i) => imageKind(p, imageHosts[i])),
  ];
  for (let i = -opts.warmup; i < opts.runs; i++) {
    const sha = await newCommit(repo);
    const line: string[] = [];
    for (const k of orderOf(idle, i < 0 ? 0 : i)) {
      const d = await k.deploy(sha);
      await settle();
      if (k.host) {
        const c = k.code[k.code.length - 1];
        k.phases.push(await reloadPhases(k.host, c));
        await explainSlow(k.host, c, ctx.notes);
      }
      line.push(`${k.name} ${secs(d.totalMs)}`);
    }
    if (i < 0) {
      // The warm-up is not counted.
      for (const k of idle) {
        k.code.length = 0;
        k.image.length = 0;
        k.phases.length = 0;
      }
    }
    log(
      `${i < 0 ? "warm-up (not counted)" : `idle run ${i + 1}/${opts.runs}`} ${sha.slice(0, 12)}: ${line.join(", ")}`,
    );
  }
  const [code, ...images] = idle;
  measurements.push(
    measurement({
      kind: "code-deploy",
      label: "Code deploy (touchdeploy, shipped contract)",
      variant: SHIPPED,
      n: 1,
      unit: "s",
      valuesMs: code.code.map((c) => c.totalMs),
      steps: codeSteps(code.code, code.phases),
      reloadsPerDeploy: code.phases.map((p) => p.reloads),
    }),
  );
  for (const k of images) {
    measurements.push(
      measurement({
        kind: "container-deploy",
        label: `Image deploy: ${k.name}`,
        variant: k.variant,
        n: 1,
        unit: "s",
        valuesMs: k.image.map((c) => c.totalMs),
        steps: imageSteps(k.image),
      }),
      measurement({
        kind: "ratio-container-over-code",
        label: `Ratio ${k.name} / code deploy (pair by pair)`,
        variant: k.variant,
        n: 1,
        unit: "x",
        ratios: code.code.map((c, i) => k.image[i].totalMs / c.totalMs),
      }),
    );
  }

  // ------------------------------------------------------------------ under load (hello-wsgi)
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
  const loaded = [
    codeKind("code deploy", SHIPPED, codeHost, repo),
    codeKind("previous contract", PREVIOUS, prevHost, repo),
    ...IMAGE_PATHS.map((p, i) => imageKind(p, imageHosts[i])),
  ];
  await underLoad(ctx, HELLO, loaded, opts.runs, () => newCommit(repo));
  await cleanupImageHosts();
  await removeHosts();
  if (opts.smoke) {
    // The slow app's image comparison repeats the same code paths with another app.
    await stopRegistry();
    return baseline.machineBusy;
  }

  // ------------------------------------------------------------------ under load (slow app)
  const app = slowApp(Math.max(...opts.importSeconds, 0));
  const slowRepo = await step(`deploys, ${app.id}: repository`, () =>
    app.createRepo(path.join(scratch, `repo-deploys-${app.id}`)),
  );
  const slowHosts: CodeHost[] = [];
  const removeSlowHosts = hostsCleanup("deploys: slow-app code hosts", slowHosts);
  for (const id of [SHIPPED, FS_RELOAD_WAKE]) {
    const [h] = await step(`deploys, ${app.id}: ${id} host`, async () =>
      createCodeHosts({
        count: 1,
        label: `slow-${id}`,
        dir: scratch,
        repo: slowRepo,
        image: await ctx.imageOf(id),
        env: design(id).env,
      }),
    );
    slowHosts.push(h);
  }
  const slowImageHosts = IMAGE_PATHS.map(
    (p) =>
      new ImageHost({
        path: p,
        registry: registry.address,
        repo: slowRepo,
        runtimeImage,
        dir: scratch,
        name: `slow-${p}`,
      }),
  );
  const cleanupSlowImageHosts = onCleanup("slow-app image hosts", async () => {
    for (const h of slowImageHosts) await h.cleanup();
  });
  const slowHead = await slowRepo.head();
  for (const h of slowHosts) await codeDeploy(h, slowRepo, slowHead);
  for (const h of slowImageHosts) await h.deploy(slowHead);
  await settle();
  const slowKinds = [
    codeKind("code deploy", SHIPPED, slowHosts[0], slowRepo),
    codeKind(`code deploy, ${FS_RELOAD_WAKE}`, FS_RELOAD_WAKE, slowHosts[1], slowRepo),
    ...IMAGE_PATHS.map((p, i) => imageKind(p, slowImageHosts[i])),
  ];
  await underLoad(ctx, app.id, slowKinds, opts.shortRuns, () => app.change(slowRepo, nextChange()));
  await cleanupSlowImageHosts();
  await removeSlowHosts();
  await stopRegistry();
  return baseline.machineBusy;
}

/** Each kind deploys run i's commit in its own load window; order reversed every other run. */
async function underLoad(
  ctx: Context,
  app: string,
  kinds: Kind[],
  runs: number,
  commit: () => Promise<string>,
): Promise<void> {
  for (let i = 0; i < runs; i++) {
    const sha = await commit();
    const line: string[] = [];
    for (const k of orderOf(kinds, i)) {
      let total = 0;
      const w = await ctx.window(`${k.baseUrl()}/`, async () => {
        total = (await k.deploy(sha)).totalMs;
      });
      await settle();
      if (k.host) {
        const c = k.code[k.code.length - 1];
        await explainSlow(k.host, c, ctx.notes);
        k.phases.push(await reloadPhases(k.host, c, Date.now(), design(k.variant).reloadLine));
      }
      k.windows.push(w);
      line.push(`${k.name} ${secs(total)}: ${describeWindow(w)}`);
    }
    log(`under load, ${app}, ${i + 1}/${runs}: ${line.join("; ")}`);
  }
  const code = kinds[0];
  for (const k of kinds) {
    const isCode = k.code.length > 0;
    ctx.measurements.push(
      measurement({
        kind: isCode ? "code-deploy-under-load" : "container-deploy-under-load",
        label: `${isCode ? "Code deploy" : "Image deploy"} under load (${ctx.opts.connections} clients), ${k.name}, ${app}`,
        variant: k.variant,
        ...(app === HELLO ? {} : { app }),
        n: 1,
        unit: "s",
        valuesMs: isCode ? k.code.map((c) => c.totalMs) : k.image.map((c) => c.totalMs),
        load: loadStats(k.windows),
        ...(isCode
          ? { reloadsPerDeploy: k.phases.map((p) => p.reloads) }
          : { steps: imageSteps(k.image) }),
      }),
    );
    if (k !== code) {
      const totals = isCode ? k.code.map((c) => c.totalMs) : k.image.map((c) => c.totalMs);
      ctx.measurements.push(
        measurement({
          kind: isCode
            ? `ratio-${k.variant}-over-shipped-under-load`
            : "ratio-container-over-code-under-load",
          label: `Ratio ${k.name} / code deploy under load, ${app} (pair by pair)`,
          variant: k.variant,
          ...(app === HELLO ? {} : { app }),
          n: 1,
          unit: "x",
          ratios: code.code.map((c, i) => totals[i] / c.totalMs),
        }),
      );
    }
  }
}
