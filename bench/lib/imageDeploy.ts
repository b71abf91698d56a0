/**
 * Shipping the same one-line change as an image, three ways (`ImagePath`):
 *
 * - `replace-runtime` (the seed's old playbook): the commit baked into an image FROM
 *   touchdeploy's runtime image (bench/image/Dockerfile: supervisord, which starts uWSGI about
 *   1 s after the container), the container replaced on the same host port: `docker stop`,
 *   remove, create, start. Connections are refused meanwhile.
 * - `replace-plain`: the same on a plain uWSGI image (bench/image/plain: uWSGI is PID 1).
 * - `bluegreen` (as Kamal does): the plain image; the new container starts beside the old one on
 *   a Docker network, is polled until healthy, then the proxy in front of both (nginx from
 *   Debian, bench/image/proxy) is switched to it and reloaded (SIGHUP, graceful), and once the
 *   proxy serves the new commit the old container is stopped gracefully (uWSGI's master FIFO
 *   `q`: requests in flight finish).
 *
 * Every path builds the image (git archive + docker build), pushes it to the registry on
 * loopback, removes the local copy (untimed) so that the pull is real, and pulls it. The time
 * is from the start of the build to the new commit being served on the URL users use.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { quote } from "shell-quote";
import { waitForRevision } from "../../test/harness/app";
import { ensureDocker, followProgress, imageExists } from "../../test/harness/docker";
import { APP_SUBDIR, type TestRepo } from "../../test/harness/git";
import { BASE_IMAGE, ensureBaseImage, REPO_ROOT } from "../../test/harness/images";
import { removeTree, run } from "../../test/harness/process";
import { containerName, startBenchContainer, type BenchContainer } from "./containers";
import * as crypto from "node:crypto";

export const IMAGE_PATHS = ["replace-runtime", "replace-plain", "bluegreen"] as const;
export type ImagePath = (typeof IMAGE_PATHS)[number];

/** What each image path is, in words (written into the results). */
export const IMAGE_PATH_TEXT: Record<ImagePath, string> = {
  "replace-runtime":
    "image deploy, the old way: the commit baked into touchdeploy's runtime image (supervisord), " +
    "container stopped then started on the same port",
  "replace-plain":
    "image deploy, stop then start on the same port, on a plain uWSGI image (uWSGI is PID 1)",
  bluegreen:
    "image deploy, blue/green as Kamal does: new container (plain uWSGI image) beside the old " +
    "one, health-checked, then an nginx proxy switched to it (reload), then the old one " +
    "stopped gracefully",
};

const DIR = path.join(REPO_ROOT, "bench", "image");
const IMAGE_NAME = "tdbench/app";

export interface ImageDeploySteps {
  /** git archive of the commit + docker build. */
  buildMs: number;
  pushMs: number;
  pullMs: number;
  /** Replace paths: docker stop + remove the old container, create + start the new one. */
  replaceMs?: number;
  /** The stop + remove part of replaceMs (SIGTERM: uWSGI with die-on-term stops at once). */
  stopMs?: number;
  /** New container started -> it answers the new commit (directly, before any proxy). */
  healthyMs: number;
  /** Blue/green: proxy reloaded -> the proxy serves the new commit. */
  switchMs?: number;
  /** Blue/green: the old container's graceful stop, after the new commit is served (untimed). */
  retireMs?: number;
}

export interface ImageDeployResult {
  sha: string;
  path: ImagePath;
  totalMs: number;
  startedAt: number;
  endedAt: number;
  steps: ImageDeploySteps;
}

const docker = (...args: string[]): Promise<unknown> =>
  run("docker", args, { timeoutMs: 300_000, env: { ...process.env, DOCKER_CLI_HINTS: "false" } });

async function imageId(ref: string): Promise<string> {
  const d = await ensureDocker();
  return (await d.getImage(ref).inspect()).Id;
}

/**
 * Builds `files` of bench/image/<dir> on the debootstrapped base, once per content (tagged
 * `<name>:<hash>`, kept between runs, labelled touchdeploy.bench); returns the tag.
 */
async function ensureBenchImage(
  name: string,
  dir: string,
  files: Record<string, string>,
  buildargs: Record<string, string>,
  scratch: string,
): Promise<string> {
  const baseId = await ensureBaseImage();
  const d = await ensureDocker();
  const hash = crypto.createHash("sha256").update(baseId).update(JSON.stringify(buildargs));
  for (const [to, from] of Object.entries(files)) {
    hash.update(to).update(fs.readFileSync(path.join(DIR, dir, from)));
  }
  const tag = `${name}:${hash.digest("hex").slice(0, 12)}`;
  if (await imageExists(d, tag)) return tag;
  const ctx = path.join(scratch, `${name.replace(/[^a-z]+/g, "-")}-image`);
  fs.mkdirSync(ctx, { recursive: true });
  for (const [to, from] of Object.entries(files)) {
    fs.copyFileSync(path.join(DIR, dir, from), path.join(ctx, to));
  }
  try {
    const stream = await d.buildImage(
      { context: ctx, src: Object.keys(files) },
      {
        t: tag,
        buildargs: { BASE_IMAGE, ...buildargs },
        labels: { "touchdeploy.bench": "true" },
        forcerm: true,
      },
    );
    await followProgress(d, stream);
  } finally {
    removeTree(ctx);
  }
  return tag;
}

/** The nginx proxy of the blue/green path (bench/image/proxy). */
const ensureProxyImage = (scratch: string): Promise<string> =>
  ensureBenchImage(
    "tdbench-proxy",
    "proxy",
    { Dockerfile: "Dockerfile", "nginx.conf": "nginx.conf" },
    {},
    scratch,
  );

/** The plain uWSGI image without an app (bench/image/plain/Dockerfile.base). */
const ensurePlainBase = (scratch: string): Promise<string> =>
  ensureBenchImage(
    "tdbench-plain-base",
    "plain",
    { Dockerfile: "Dockerfile.base", "uwsgi.ini": "uwsgi.ini" },
    { APP_SUBDIR },
    scratch,
  );

export class ImageHost {
  private container: BenchContainer | undefined;
  private proxy: BenchContainer | undefined;
  private network: string | undefined;
  private upstreamDir: string | undefined;
  /** The image id of the deployed commit (a pulled image also keeps a digest reference, so
   * removing it by tag would leave it behind as `<none>`). */
  private currentId: string | undefined;
  private hostPort = 0;
  private deploys = 0;

  constructor(
    private readonly opts: {
      path: ImagePath;
      registry: string;
      repo: TestRepo;
      /** The runtime image (replace-runtime builds FROM it). */
      runtimeImage: string;
      dir: string;
      name: string;
    },
  ) {}

  /** The URL users use: the container's published port, or the proxy's. */
  get baseUrl(): string {
    const c = this.opts.path === "bluegreen" ? this.proxy : this.container;
    if (!c) throw new Error("no container yet: deploy first");
    return c.baseUrl;
  }

  /** The image reference of a commit in the local registry. */
  ref(sha: string): string {
    const flavour = this.opts.path === "replace-runtime" ? "runtime" : "plain";
    return `${this.opts.registry}/${IMAGE_NAME}-${flavour}:${sha.slice(0, 12)}`;
  }

  async deploy(sha: string): Promise<ImageDeployResult> {
    const ref = this.ref(sha);
    const ctx = path.join(this.opts.dir, `ctx-${this.opts.name}-${sha.slice(0, 12)}`);
    const t0 = Date.now();
    // build: the commit's tree (as CI would check it out) + REVISION, then docker build.
    fs.mkdirSync(path.join(ctx, "app"), { recursive: true });
    await run("/bin/sh", [
      "-c",
      `git -C ${quote([this.opts.repo.work])} archive --format=tar ${quote([sha])} | tar -x -C ${quote([path.join(ctx, "app")])}`,
    ]);
    fs.writeFileSync(path.join(ctx, "app", "REVISION"), sha);
    if (this.opts.path === "replace-runtime") {
      fs.writeFileSync(path.join(ctx, "reload"), "");
      fs.copyFileSync(path.join(DIR, "Dockerfile"), path.join(ctx, "Dockerfile"));
      await docker(
        "build",
        "-q",
        "--build-arg",
        `RUNTIME_IMAGE=${this.opts.runtimeImage}`,
        "-t",
        ref,
        ctx,
      );
    } else {
      fs.copyFileSync(path.join(DIR, "plain", "Dockerfile"), path.join(ctx, "Dockerfile"));
      const base = await ensurePlainBase(this.opts.dir);
      await docker("build", "-q", "--build-arg", `PLAIN_BASE=${base}`, "-t", ref, ctx);
    }
    const t1 = Date.now();
    await docker("push", "-q", ref);
    const t2 = Date.now();
    // Not timed: make this machine a host that has never seen the image (the base layers stay,
    // as on a real host that ran the previous version).
    await docker("rmi", ref);
    const t3 = Date.now();
    await docker("pull", "-q", ref);
    const t4 = Date.now();
    removeTree(ctx);
    const untimed = t3 - t2;
    const steps =
      this.opts.path === "bluegreen"
        ? await this.blueGreen(ref, sha)
        : await this.replace(ref, sha);
    const t6 = Date.now() - (steps.retireMs ?? 0);
    const previous = this.currentId;
    this.currentId = await imageId(ref);
    if (previous && previous !== this.currentId) {
      await docker("rmi", "-f", previous).catch(() => undefined);
    }
    this.deploys++;
    return {
      sha,
      path: this.opts.path,
      totalMs: t6 - t0 - untimed,
      startedAt: t0,
      endedAt: t6,
      steps: { buildMs: t1 - t0, pushMs: t2 - t1, pullMs: t4 - t3, ...steps },
    };
  }

  /** Stop the old container, then start the new one on the same host port. */
  private async replace(
    ref: string,
    sha: string,
  ): Promise<Omit<ImageDeploySteps, "buildMs" | "pushMs" | "pullMs">> {
    const t4 = Date.now();
    if (this.container) await this.container.stopAndRemove();
    const stopped = Date.now();
    this.container = await startBenchContainer({
      name: this.opts.name,
      image: ref,
      env: [],
      hostPort: this.hostPort,
    });
    this.hostPort = this.container.hostPort;
    const t5 = Date.now();
    await waitForRevision(this.container.healthUrl, sha, 60_000);
    return { replaceMs: t5 - t4, stopMs: stopped - t4, healthyMs: Date.now() - t5 };
  }

  /** New container beside the old one, health, proxy switch, old one stopped gracefully. */
  private async blueGreen(
    ref: string,
    sha: string,
  ): Promise<Omit<ImageDeploySteps, "buildMs" | "pushMs" | "pullMs">> {
    const d = await ensureDocker();
    if (!this.network) {
      this.network = containerName(`${this.opts.name}-net`);
      await d.createNetwork({ Name: this.network, Labels: { "touchdeploy.bench": "true" } });
    }
    const old = this.container;
    const t4 = Date.now();
    const next = await startBenchContainer({
      name: `${this.opts.name}-${this.deploys % 2 ? "green" : "blue"}`,
      image: ref,
      env: [],
      unpublished: true,
      network: { name: this.network },
    });
    const t5 = Date.now();
    await waitForRevision(next.healthUrl, sha, 60_000);
    const t6 = Date.now();
    this.container = next;
    const oldWorkers = await this.proxyWorkers();
    await this.pointProxyAt(next);
    const t7 = Date.now();
    if (!this.proxy) throw new Error("the proxy did not start");
    await waitForRevision(this.proxy.healthUrl, sha, 60_000);
    const t8 = Date.now();
    // After the new commit is served: the proxy's old worker finishes the requests it still
    // proxies to the old container (nginx: "worker process is shutting down"), then the old
    // container finishes its own and exits (Kamal's drain, then stop).
    await this.proxyDrained(oldWorkers, 30_000);
    if (old) {
      await old.exec(["sh", "-c", "printf q > /tmp/uwsgi.fifo"]);
      if (!(await old.waitExit(35_000))) await old.remove();
      await old.remove().catch(() => undefined);
    }
    return { healthyMs: t6 - t5, replaceMs: t5 - t4, switchMs: t8 - t7, retireMs: Date.now() - t8 };
  }

  /** The pids of the proxy's nginx worker processes now. */
  private async proxyWorkers(): Promise<string[]> {
    if (!this.proxy) return [];
    const d = await ensureDocker();
    const top = (await d.getContainer(this.proxy.id).top({ ps_args: "-o pid,args" })) as {
      Processes?: string[][];
    };
    return (top.Processes ?? [])
      .filter((p) => p.join(" ").includes("worker process"))
      .map((p) => p[0]);
  }

  /**
   * Waits until none of `workers` (the proxy's workers before the reload) is left: until then
   * an old worker may still accept a connection and send it to the old upstream (nginx tells
   * the old workers to quit only once the new ones run). False after `timeoutMs`.
   */
  private async proxyDrained(workers: string[], timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const now = await this.proxyWorkers();
      if (!workers.some((w) => now.includes(w))) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  }

  /** Writes the proxy's upstream and reloads it (starts the proxy the first time). */
  private async pointProxyAt(c: BenchContainer): Promise<void> {
    if (!this.upstreamDir) {
      this.upstreamDir = path.join(this.opts.dir, `${this.opts.name}-upstream`);
      fs.mkdirSync(this.upstreamDir, { recursive: true });
    }
    const file = path.join(this.upstreamDir, "app.conf");
    fs.writeFileSync(`${file}.tmp`, `server ${c.address}:8000;\n`);
    fs.renameSync(`${file}.tmp`, file);
    if (!this.proxy) {
      if (!this.network) throw new Error("no network");
      this.proxy = await startBenchContainer({
        name: `${this.opts.name}-proxy`,
        image: await ensureProxyImage(this.opts.dir),
        env: [],
        binds: [`${this.upstreamDir}:/etc/nginx/upstream:ro`],
        network: { name: this.network },
      });
      return;
    }
    const d = await ensureDocker();
    await d.getContainer(this.proxy.id).kill({ signal: "SIGHUP" });
  }

  /** Removes the containers, the network and the last image (the registry is in scratch). */
  async cleanup(): Promise<void> {
    await this.container?.remove().catch(() => undefined);
    await this.proxy?.remove().catch(() => undefined);
    this.container = this.proxy = undefined;
    if (this.network) {
      const d = await ensureDocker();
      await d
        .getNetwork(this.network)
        .remove()
        .catch(() => undefined);
      this.network = undefined;
    }
    if (this.currentId) await docker("rmi", "-f", this.currentId).catch(() => undefined);
    this.currentId = undefined;
  }
}

/** Builds what the image paths need before anything is timed (proxy, plain base). */
export async function prepareImagePaths(
  paths: readonly ImagePath[],
  scratch: string,
): Promise<void> {
  if (paths.includes("bluegreen")) await ensureProxyImage(scratch);
  if (paths.some((p) => p !== "replace-runtime")) await ensurePlainBase(scratch);
}
