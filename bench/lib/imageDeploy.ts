/**
 * The "old way" of shipping the same one-line change: bake the commit into an image (bench/image/
 * Dockerfile, FROM the runtime image), build, push to the local registry, pull it (after removing
 * the local copy, so the pull is real), replace the container on the same host port (graceful
 * `docker stop`, remove, create, start) and wait until the new commit is served.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { quote } from "shell-quote";
import { waitForRevision } from "../../test/e2e/support/app";
import type { TestRepo } from "../../test/e2e/support/git";
import { REPO_ROOT } from "../../test/e2e/support/images";
import { removeTree, run } from "../../test/e2e/support/process";
import { startBenchContainer, type BenchContainer } from "./containers";

const DOCKERFILE = path.join(REPO_ROOT, "bench", "image", "Dockerfile");
const IMAGE_NAME = "tdbench/app";

export interface ImageDeploySteps {
  /** git archive of the commit + docker build. */
  buildMs: number;
  pushMs: number;
  pullMs: number;
  /** docker stop + remove the old container, create + start the new one. */
  replaceMs: number;
  /** The stop + remove part of replaceMs (graceful: SIGTERM, supervisord stops uWSGI). */
  stopMs: number;
  /** New container started -> the new commit answers 200 on /healthz. */
  healthyMs: number;
}

export interface ImageDeployResult {
  sha: string;
  totalMs: number;
  startedAt: number;
  endedAt: number;
  steps: ImageDeploySteps;
}

const docker = (...args: string[]): Promise<unknown> =>
  run("docker", args, { timeoutMs: 300_000, env: { ...process.env, DOCKER_CLI_HINTS: "false" } });

export class ImageHost {
  private container: BenchContainer | undefined;
  private currentRef: string | undefined;
  private hostPort = 0;

  constructor(
    private readonly opts: {
      registry: string;
      repo: TestRepo;
      runtimeImage: string;
      dir: string;
      name: string;
    },
  ) {}

  get baseUrl(): string {
    if (!this.container) throw new Error("no container yet: deploy first");
    return this.container.baseUrl;
  }

  /** The image reference of a commit in the local registry. */
  ref(sha: string): string {
    return `${this.opts.registry}/${IMAGE_NAME}:${sha.slice(0, 12)}`;
  }

  async deploy(sha: string): Promise<ImageDeployResult> {
    const ref = this.ref(sha);
    const ctx = path.join(this.opts.dir, `ctx-${sha.slice(0, 12)}`);
    const t0 = Date.now();
    // build: the commit's tree (as CI would check it out) + REVISION, then docker build.
    fs.mkdirSync(path.join(ctx, "app"), { recursive: true });
    await run("/bin/sh", [
      "-c",
      `git -C ${quote([this.opts.repo.work])} archive --format=tar ${quote([sha])} | tar -x -C ${quote([path.join(ctx, "app")])}`,
    ]);
    fs.writeFileSync(path.join(ctx, "app", "REVISION"), sha);
    fs.writeFileSync(path.join(ctx, "reload"), "");
    fs.copyFileSync(DOCKERFILE, path.join(ctx, "Dockerfile"));
    await docker(
      "build",
      "-q",
      "--build-arg",
      `RUNTIME_IMAGE=${this.opts.runtimeImage}`,
      "-t",
      ref,
      ctx,
    );
    const t1 = Date.now();
    await docker("push", "-q", ref);
    const t2 = Date.now();
    // Not timed: make this machine a host that has never seen the image (the runtime image's
    // layers stay, as on a real host that ran the previous version).
    await docker("rmi", ref);
    const t3 = Date.now();
    await docker("pull", "-q", ref);
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
    const t6 = Date.now();
    removeTree(ctx);
    const previous = this.currentRef;
    this.currentRef = ref;
    if (previous && previous !== ref) await docker("rmi", previous).catch(() => undefined);
    const steps: ImageDeploySteps = {
      buildMs: t1 - t0,
      pushMs: t2 - t1,
      pullMs: t4 - t3,
      replaceMs: t5 - t4,
      stopMs: stopped - t4,
      healthyMs: t6 - t5,
    };
    const totalMs = t6 - t0 - (t3 - t2);
    return { sha, totalMs, startedAt: t0, endedAt: t6, steps };
  }

  /** Removes the container and the last image (the registry's storage is in the scratch dir). */
  async cleanup(): Promise<void> {
    await this.container?.remove().catch(() => undefined);
    this.container = undefined;
    if (this.currentRef) await docker("rmi", "-f", this.currentRef).catch(() => undefined);
    this.currentRef = undefined;
  }
}
