/**
 * The usual e2e setting in one call: a test repository with the example app, an app root
 * initialised by the host script, and a runtime container serving that root.
 */
import * as path from "node:path";
import { startAppContainer, type AppContainer } from "./app";
import { APP_SUBDIR, TestRepo } from "./git";
import { describeRun, runHostScript } from "./hostScript";
import { ensureRuntimeImage } from "./images";
import { makeScratchDir, removeTree, type RunOptions, type RunResult } from "./process";

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
    const init = await runHostScript(["init", "--root", root]);
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
      ...(container ? ["--health-url", container.healthUrl] : []),
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
