// Declared-to-real: what the Pulumi program declares for the dev stack (recorded through mocks)
// is realized on the real Docker engine, uWSGI and git by the engine model
// (test/support/engineModel.ts): the order of steps comes only from the declared dependencies,
// replace vs update vs keep from the providers' rules, and which container runs is read from
// Docker itself. A second commit is a code deploy: fetch and release are replaced, the container
// is the same Docker container and serves the new commit after one reload. A dependency change
// pushed as code only (`--target` the commands) is refused by the host guard; a container deploy
// whose fetch fails leaves the old container serving; the full container deploy replaces the
// container delete-first and releases onto the new one; `pulumi destroy` removes it all.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import type Docker from "dockerode";
import { parse } from "yaml";
import {
  CONTAINER,
  IMAGE,
  plain,
  PROJECT_DIR,
  ProgramRun,
  runProgram,
  StackConfig,
} from "../support/pulumiProgram";
import { getServed, RELOAD_LOG_LINE, waitForRevision } from "../harness/app";
import { demuxLogs, ensureDocker } from "../harness/docker";
import { APP_SUBDIR, TestRepo } from "../harness/git";
import { BASE_IMAGE, ensureBaseImage } from "../harness/images";
import { e2eGate } from "../harness/prerequisites";
import { freePort, makeScratchDir, removeTree, waitFor } from "../harness/process";
import {
  actionsOf,
  apply,
  CommandFailedError,
  DeploymentError,
  destroy,
  emptyState,
  RealizedState,
} from "../harness/realize";

/** Pulumi.dev.yaml's touchdeploy:* values, as the stack would give them to the program. */
function devStackConfig(): StackConfig {
  const file = parse(fs.readFileSync(path.join(PROJECT_DIR, "Pulumi.dev.yaml"), "utf8")) as {
    config: Record<string, string | number | string[]>;
  };
  return Object.fromEntries(
    Object.entries(file.config).map(([k, v]) => [k.replace(/^touchdeploy:/, ""), v]),
  );
}

/** Which container Docker runs under a name: its id and creation time, or undefined. */
async function dockerIdentity(
  docker: Docker,
  name: string,
): Promise<{ id: string; created: string; restarts: number; running: boolean } | undefined> {
  try {
    const info = await docker.getContainer(name).inspect();
    return {
      id: info.Id,
      created: info.Created,
      restarts: info.RestartCount,
      running: info.State.Running,
    };
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return undefined;
    throw err;
  }
}

/** The deployment error `promise` rejects with (fails the test if it resolves). */
async function failure(promise: Promise<unknown>): Promise<DeploymentError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof DeploymentError, String(err));
    return err;
  }
  return assert.fail("the deployment succeeded");
}

describe(
  "declared-to-real: the dev stack, realized on the real engine",
  e2eGate(["docker", "debootstrap", "git", "bash", "curl", "flock", "root"]),
  () => {
    let scratch: string;
    let repo: TestRepo;
    let config: StackConfig;
    let url: string;
    /** The app root on the host (touchdeploy:root). */
    let root: string;
    let docker: Docker;
    /** The container's name as the program declares it. */
    let containerName: string;
    const state: RealizedState = emptyState();
    let second: ProgramRun;
    let third: ProgramRun;

    before(async () => {
      await ensureBaseImage();
      docker = await ensureDocker();
      scratch = makeScratchDir("declared");
      repo = await TestRepo.create(path.join(scratch, "repo"));
      const port = await freePort();
      root = path.join(scratch, "root");
      const dev = devStackConfig();
      // The dev stack as committed, pointed at a test repository, a scratch root and a free
      // port, built on the locally imported base image (there is no registry here).
      assert.deepEqual(dev.hosts, ["local local port=8000 bind=127.0.0.1"]);
      config = {
        ...dev,
        appName: "tdtest-declared",
        repoPath: repo.work,
        root,
        hosts: [`local local port=${port} bind=127.0.0.1`],
        baseImage: BASE_IMAGE,
      };
      assert.equal(config.appDir, APP_SUBDIR);
      url = `http://127.0.0.1:${port}`;
    });

    after(async () => {
      if (state.snapshot.resources.length > 0) {
        await destroy(state).catch((err: unknown) => console.error(`destroy: ${String(err)}`));
      }
      // Whatever a failed destroy left: the declared name is ours.
      if (containerName) {
        await docker
          .getContainer(containerName)
          .remove({ force: true })
          .catch(() => undefined);
      }
      if (scratch) removeTree(scratch);
    });

    it("first deploy: every resource created after what it depends on; the branch head is served", async () => {
      const head = await repo.head();
      const first = await runProgram({ config });
      assert.equal(first.outputs.commit, head);
      containerName = plain<{ name: string }>(first.get(CONTAINER, "local-container").inputs).name;
      const report = await apply(first, state);
      assert.deepEqual(report.actions, [
        "create local-setup",
        "create local-fetch",
        "create local-user",
        "create local-image",
        "create local-container",
        "create local-release",
      ]);
      const served = await getServed(`${url}/`);
      assert.equal(served.status, 200);
      assert.equal(served.revision, head);
      assert.match(
        served.body,
        new RegExp(`^Hello from touchdeploy \\(revision ${head.slice(0, 12)}\\)`),
      );
      // The release command's own report: what an operator watching `pulumi up` sees.
      const out = report.commandOutput.get("local-release")?.stdout ?? "";
      assert.match(out, new RegExp(`deployed ${head.slice(0, 12)}`));
      // The container runs as the user local-user reported (root deploys here: 10001:10001),
      // the one the host's setup prints too.
      const user = plain<{ user: string }>(first.get(CONTAINER, "local-container").inputs).user;
      assert.equal(user, "10001:10001");
      assert.equal((await docker.getContainer(containerName).inspect()).Config.User, user);
      assert.match(
        report.commandOutput.get("local-setup")?.stdout ?? "",
        new RegExp(`^touchdeploy: user ${user}$`, "m"),
      );
    });

    it("second commit: fetch and release replaced, the same Docker container serves it after one reload", async (t) => {
      const before = await dockerIdentity(docker, containerName);
      assert.ok(before?.running, `${containerName} is not running`);
      const reloads = async () =>
        demuxLogs(
          await docker.getContainer(containerName).logs({ stdout: true, stderr: true }),
        ).split(RELOAD_LOG_LINE).length - 1;
      const reloadsBefore = await reloads();

      const next = await repo.commitGreeting("Hello from the second commit");
      second = await runProgram({ config });
      assert.equal(second.outputs.commit, next);

      const started = Date.now();
      const report = await apply(second, state);
      const seconds = (Date.now() - started) / 1000;
      // Create-before-delete replacements; the old copies are deleted last, release first.
      assert.deepEqual(report.actions, [
        "same local-setup",
        "create-replacement local-fetch",
        "replace local-fetch",
        "same local-user",
        "same local-image",
        "same local-container",
        "create-replacement local-release",
        "replace local-release",
        "delete-replaced local-release",
        "delete-replaced local-fetch",
      ]);
      // Docker's own record: the same container (id and creation time), never restarted.
      assert.deepEqual(await dockerIdentity(docker, containerName), before);
      assert.equal(before.restarts, 0);

      const served = await waitForRevision(`${url}/`, next, 5_000);
      assert.match(served.body, /^Hello from the second commit/);
      // The runtime logs the reload once the new generation answered it: wait for the line.
      await waitFor(
        "the runtime's reload line",
        async () => ((await reloads()) > reloadsBefore ? true : undefined),
        { timeoutMs: 15_000, intervalMs: 50 },
      );
      assert.equal((await reloads()) - reloadsBefore, 1, "exactly one graceful reload");
      t.diagnostic(`code deploy through the declared steps: ${seconds.toFixed(2)} s`);
    });

    it("a dependency change pushed as code only (--target the commands) is refused; the old commit keeps serving", async () => {
      const live = await repo.head();
      const before = await dockerIdentity(docker, containerName);
      // The app now imports PyYAML, which only the Debian package in its Aptfile provides.
      repo.writeAppFile("Aptfile", "python3-yaml\n");
      repo.writeAppFile(
        "app.py",
        repo
          .readAppFile("app.py")
          .replace(
            /^GREETING = .*$/m,
            'import yaml\nGREETING = yaml.safe_load("Hello with PyYAML")',
          ),
      );
      const needsYaml = await repo.commit("Use PyYAML");
      // `pulumi up --target` of the commands: the container is not updated, so the engine gives
      // the release the container's old outputs (its old fingerprint).
      const oldContainer = plain<{ envs: string[] }>(
        second.get(CONTAINER, "local-container").inputs,
      );
      const targeted = await runProgram({
        config,
        computed: (type) => (type === CONTAINER ? { envs: oldContainer.envs } : {}),
      });
      assert.equal(targeted.outputs.commit, needsYaml);
      const error = await failure(
        apply(targeted, state, { targets: ["local-fetch", "local-release"] }),
      );
      assert.deepEqual(
        { op: error.failed.op, name: error.failed.name },
        { op: "create-replacement", name: "local-release" },
      );
      assert.deepEqual(actionsOf(error.steps), [
        "same local-setup",
        "create-replacement local-fetch",
        "replace local-fetch",
        "same local-user",
        "same local-image",
        "same local-container",
      ]);
      const cause = error.cause;
      assert.ok(cause instanceof CommandFailedError, String(cause));
      assert.equal(cause.result.code, 5);
      assert.match(cause.result.stderr, /this commit changes dependencies: run a container deploy/);
      const served = await getServed(`${url}/`);
      assert.equal(served.status, 200);
      assert.equal(served.revision, live, "nothing switched");
      assert.deepEqual(await dockerIdentity(docker, containerName), before);
    });

    it("a container deploy whose fetch fails leaves the old container serving the old commit", async () => {
      const live = (await getServed(`${url}/`)).revision;
      const before = await dockerIdentity(docker, containerName);
      // A commit no host has fetched yet, on top of the PyYAML one (same dependencies), while
      // the hosts' git server is down: they fetch from a repository that is not there.
      repo.writeAppFile("NOTES.txt", "PyYAML comes from the Aptfile.\n");
      const unfetched = await repo.commit("Say where PyYAML comes from");
      const down = await runProgram({
        config: { ...config, repoUrl: path.join(scratch, "no-such-repo.git") },
      });
      assert.equal(down.outputs.commit, unfetched);
      const error = await failure(apply(down, state));
      assert.deepEqual(
        { op: error.failed.op, name: error.failed.name },
        { op: "create-replacement", name: "local-fetch" },
      );
      const cause = error.cause;
      assert.ok(cause instanceof CommandFailedError, String(cause));
      assert.equal(cause.result.code, 4, cause.message);
      // The new image does not depend on the fetch: it may be (and here is) built. The
      // container and the release wait for the fetch, so they are never touched.
      assert.deepEqual(actionsOf(error.steps), [
        "same local-setup",
        "same local-user",
        "create-replacement local-image",
        "replace local-image",
      ]);
      assert.deepEqual(await dockerIdentity(docker, containerName), before);
      const served = await getServed(`${url}/`);
      assert.equal(served.status, 200);
      assert.equal(served.revision, live);
    });

    it("the full `pulumi up` of that commit: the container replaced delete-first, then released onto", async (t) => {
      const head = await repo.head();
      const before = await dockerIdentity(docker, containerName);
      third = await runProgram({ config });
      const oldImage = plain<{ name: string }>(second.get(IMAGE, "local-image").inputs);
      const newImage = plain<{ name: string; build: { buildArgs: Record<string, string> } }>(
        third.get(IMAGE, "local-image").inputs,
      );
      assert.notEqual(newImage.name, oldImage.name);
      assert.equal(newImage.build.buildArgs.APT_PACKAGES, "python3-yaml");
      assert.notEqual(third.outputs.dependencyFingerprint, second.outputs.dependencyFingerprint);

      const started = Date.now();
      const report = await apply(third, state);
      const seconds = (Date.now() - started) / 1000;
      assert.deepEqual(report.actions, [
        "same local-setup",
        "create-replacement local-fetch",
        "replace local-fetch",
        "same local-user",
        // Built by the deploy whose fetch failed.
        "same local-image",
        // deleteBeforeReplace (fixed name and port): the release, whose triggers hold the
        // container's id, goes first, then the container; the new one is created, then the
        // release runs again on it.
        "delete-replaced local-release",
        "delete-replaced local-container",
        "replace local-container",
        "create-replacement local-container",
        "replace local-release",
        "create-replacement local-release",
        // Replaced create-before-delete and left pending by the two failed deploys (the second
        // commit's fetch, the first runtime image), and the PyYAML commit's fetch replaced just
        // now: deleted last (keepLocally: the image itself stays).
        "delete-replaced local-image",
        "delete-replaced local-fetch",
        "delete-replaced local-fetch",
      ]);
      const after = await dockerIdentity(docker, containerName);
      assert.ok(after?.running);
      assert.notEqual(after.id, before?.id);
      assert.equal(await dockerIdentity(docker, before?.id ?? ""), undefined, "old one removed");
      const served = await getServed(`${url}/`);
      assert.equal(served.status, 200);
      assert.equal(served.revision, head);
      assert.equal(served.fingerprint, third.outputs.dependencyFingerprint);
      assert.match(served.body, /^Hello with PyYAML/);
      const info = await docker.getContainer(containerName).inspect();
      assert.ok(
        info.Config.Env.includes(
          `TOUCHDEPLOY_FINGERPRINT=${String(third.outputs.dependencyFingerprint)}`,
        ),
      );
      t.diagnostic(`container deploy (replace + release): ${seconds.toFixed(1)} s`);
    });

    it("`pulumi destroy`: everything deleted in reverse dependency order; the container and what touchdeploy made under the root are gone", async () => {
      const image = plain<{ name: string }>(third.get(IMAGE, "local-image").inputs).name;
      const report = await destroy(state);
      assert.deepEqual(report.actions, [
        "delete local-release",
        "delete local-container",
        "delete local-image",
        "delete local-user",
        "delete local-fetch",
        "delete local-setup",
      ]);
      assert.deepEqual(state.snapshot.resources, []);
      assert.equal(await dockerIdentity(docker, containerName), undefined);
      // The setup's delete ran `touchdeploy.sh destroy` with the stdin stored at create: only
      // the operator's shared/ and the app's state/ may be left.
      const left = fs.existsSync(root) ? fs.readdirSync(root) : [];
      assert.deepEqual(
        left.filter((name) => name !== "shared" && name !== "state"),
        [],
      );
      // keepLocally: the provider leaves the image (it is the build cache of the next run).
      await docker.getImage(image).inspect();
    });
  },
);
