/**
 * The usual e2e setting in one call: a test repository with the example app, an app root
 * initialised by the host script, and a runtime container serving that root.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { CONTAINER_PORT, startAppContainer, UWSGI_RELOAD_LOG_LINE, type AppContainer } from "./app";
import { demuxLogs, ensureDocker } from "./docker";
import { APP_SUBDIR, TestRepo } from "./git";
import { describeRun, runHostScript } from "./hostScript";
import { ensureRuntimeImage, REPO_ROOT } from "./images";
import { makeScratchDir, removeTree, waitFor, type RunOptions, type RunResult } from "./process";

export interface Fixture {
  /** Scratch directory holding everything below (removed by cleanup). */
  dir: string;
  /** The app root (--root), bind-mounted into the container. */
  root: string;
  repo: TestRepo;
  /** Undefined when the fixture was made without a container. */
  app: AppContainer | undefined;
  /** The running container (throws when there is none). */
  container(): AppContainer;
  /** `deploy` arguments for `sha` from the test origin, with --subdir and --health-url. */
  deployArgs(sha: string, ...extra: string[]): string[];
  /** Runs `deploy` (see deployArgs) and returns the result (never throws on failure). */
  deploy(
    sha: string,
    extra?: string[],
    opts?: Omit<RunOptions, "input" | "check">,
  ): Promise<RunResult>;
  /** `[subcommand, --root root, ...args]` for any other subcommand. */
  args(subcommand: string, ...extra: string[]): string[];
  cleanup(): Promise<void>;
}

export interface FixtureOptions {
  /** Start a container (default true). */
  container?: boolean;
  /** TOUCHDEPLOY_FINGERPRINT of the container. */
  fingerprint?: string;
}

export async function setupFixture(label: string, opts: FixtureOptions = {}): Promise<Fixture> {
  const dir = makeScratchDir(label);
  const root = path.join(dir, "root");
  let app: AppContainer | undefined;
  try {
    const repo = await TestRepo.create(path.join(dir, "repo"));
    const init = await runHostScript(["setup", "--root", root]);
    if (init.code !== 0) throw new Error(`init failed: ${describeRun(init)}`);
    if (opts.container ?? true) {
      const image = await ensureRuntimeImage();
      app = await startAppContainer({
        image: image.tag,
        root,
        subdir: APP_SUBDIR,
        name: label,
        fingerprint: opts.fingerprint,
      });
    }
    const container = app;
    const deployArgs = (sha: string, ...extra: string[]): string[] => [
      "deploy",
      "--root",
      root,
      "--repo",
      repo.origin,
      "--commit",
      sha,
      "--subdir",
      APP_SUBDIR,
      // As the Pulumi program does: the container is known (the release command, processes
      // and the runtime's own report of a new generation go through docker exec).
      ...(container ? ["--health-url", container.healthUrl] : []),
      ...(container && !extra.includes("--container") ? ["--container", container.name] : []),
      ...extra,
    ];
    return {
      dir,
      root,
      repo,
      app,
      container: () => {
        if (!container) throw new Error("this fixture has no container");
        return container;
      },
      deployArgs,
      deploy: (sha, extra = [], runOpts = {}) => runHostScript(deployArgs(sha, ...extra), runOpts),
      args: (subcommand, ...extra) => [subcommand, "--root", root, ...extra],
      cleanup: async () => {
        await container?.remove().catch(() => undefined);
        removeTree(dir);
      },
    };
  } catch (err) {
    await app?.remove().catch(() => undefined);
    removeTree(dir);
    throw err;
  }
}

/** The first 12 hex digits of a SHA, as the script prints them. */
export const short = (sha: string): string => sha.slice(0, 12);

/** Waits until the container has performed `n` graceful reloads (its log line), or throws. */
export async function waitForReloads(
  app: Pick<AppContainer, "countReloads">,
  n: number,
  timeoutMs = 15_000,
): Promise<void> {
  let seen = 0;
  await waitFor(
    `the runtime to log its reload ${n} times`,
    async () => {
      seen = await app.countReloads();
      return seen >= n ? true : undefined;
    },
    { timeoutMs, intervalMs: 50, describeLast: () => `${seen} reloads` },
  );
}

/** The label app.ts gives its containers, so that a stale one is swept the same way. */
const OWNER_LABEL = "touchdeploy.e2e.pid";

/**
 * A runtime container with the classic reload contract: the previous contract's files
 * (bench/variants/fs-reload-wake: start-uwsgi, its supervisord.conf and its uwsgi.ini, which
 * re-execs the uWSGI master on a reload) bind-mounted over the generations manager's, with
 * `touch-reload` (uWSGI's once-a-second check of the trigger's mtime, in whole seconds) instead
 * of `fs-reload`.
 */
export async function startClassicContainer(opts: {
  image: string;
  root: string;
  dir: string;
  name: string;
}): Promise<{
  baseUrl: string;
  healthUrl: string;
  countReloads(): Promise<number>;
  remove(): Promise<void>;
}> {
  const frozen = path.join(REPO_ROOT, "bench", "variants", "fs-reload-wake");
  const contract = fs
    .readFileSync(path.join(frozen, "uwsgi.ini"), "utf8")
    .replace(/^fs-reload = /m, "touch-reload = ");
  if (!/^touch-reload = /m.test(contract))
    throw new Error(`${frozen}/uwsgi.ini has no fs-reload line`);
  const file = path.join(opts.dir, "classic-uwsgi.ini");
  fs.writeFileSync(file, contract, { mode: 0o644 });
  const docker = await ensureDocker();
  const container = await docker.createContainer({
    name: `tdtest-${opts.name}-${process.pid}`,
    Image: opts.image,
    Env: [`TOUCHDEPLOY_APP_SUBDIR=${APP_SUBDIR}`],
    Labels: { [OWNER_LABEL]: String(process.pid) },
    ExposedPorts: { [`${CONTAINER_PORT}/tcp`]: {} },
    HostConfig: {
      Binds: [
        `${opts.root}:/srv/app:ro`,
        `${file}:/etc/touchdeploy/uwsgi.ini:ro`,
        `${frozen}/supervisord.conf:/etc/touchdeploy/supervisord.conf:ro`,
        `${frozen}/start-uwsgi:/usr/local/bin/touchdeploy-start-uwsgi:ro`,
      ],
      PortBindings: { [`${CONTAINER_PORT}/tcp`]: [{ HostIp: "127.0.0.1", HostPort: "" }] },
    },
  });
  await container.start();
  const port = (await container.inspect()).NetworkSettings.Ports[`${CONTAINER_PORT}/tcp`]?.[0]
    ?.HostPort;
  const baseUrl = `http://127.0.0.1:${port}`;
  return {
    baseUrl,
    healthUrl: `${baseUrl}/healthz`,
    countReloads: async () =>
      demuxLogs(await container.logs({ stdout: true, stderr: true, follow: false })).split(
        UWSGI_RELOAD_LOG_LINE,
      ).length - 1,
    remove: () => container.remove({ force: true }).then(() => undefined),
  };
}
