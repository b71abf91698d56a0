// Declared-to-real: the container and commands the Pulumi program declares for the dev stack
// (captured through mocks) are realized exactly on the real Docker engine, then the program is
// run again for a second commit and the difference is applied as `pulumi up` would. The
// container's inputs are unchanged, so the same container keeps running; only the fetch and
// release commands run; the new commit is served after exactly one uWSGI reload. Then a commit
// that needs a new Debian package: pushed as code only (`--target` the commands) the host guard
// refuses it and the old commit keeps serving; as a full `pulumi up` it is a container deploy.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
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
import { getServed, RELOAD_LOG_LINE, waitForRevision } from "./support/app";
import { demuxLogs, ensureDocker } from "./support/docker";
import { APP_SUBDIR, TestRepo } from "./support/git";
import { BASE_IMAGE, ensureBaseImage } from "./support/images";
import { e2eGate } from "./support/prerequisites";
import { freePort, makeScratchDir, removeTree } from "./support/process";
import { apply, CommandFailedError, destroy, emptyState, RealizedState } from "./support/realize";

/** Pulumi.dev.yaml's touchdeploy:* values, as the stack would give them to the program. */
function devStackConfig(): StackConfig {
  const file = parse(fs.readFileSync(path.join(PROJECT_DIR, "Pulumi.dev.yaml"), "utf8")) as {
    config: Record<string, string | number | string[]>;
  };
  return Object.fromEntries(
    Object.entries(file.config).map(([k, v]) => [k.replace(/^touchdeploy:/, ""), v]),
  );
}

describe(
  "declared-to-real: the dev stack, realized on the real engine",
  e2eGate(["docker", "debootstrap", "git", "bash", "curl", "flock", "root"]),
  () => {
    let scratch: string;
    let repo: TestRepo;
    let config: StackConfig;
    let url: string;
    const state: RealizedState = emptyState();
    let first: ProgramRun;
    let second: ProgramRun;

    before(async () => {
      await ensureBaseImage();
      scratch = makeScratchDir("declared");
      repo = await TestRepo.create(path.join(scratch, "repo"));
      const port = await freePort();
      const dev = devStackConfig();
      // The dev stack as committed, pointed at a test repository, a scratch root and a free
      // port, built on the locally imported base image (there is no registry here).
      assert.deepEqual(dev.hosts, ["local local port=8000 bind=127.0.0.1"]);
      config = {
        ...dev,
        appName: "tdtest-declared",
        repoPath: repo.work,
        root: path.join(scratch, "root"),
        hosts: [`local local port=${port} bind=127.0.0.1`],
        baseImage: BASE_IMAGE,
      };
      assert.equal(config.appDir, APP_SUBDIR);
      url = `http://127.0.0.1:${port}`;
    });

    after(async () => {
      await destroy(state);
      if (scratch) removeTree(scratch);
    });

    it("first deploy: app root, image, fetch, container, release; the branch head is served", async () => {
      const head = await repo.head();
      first = await runProgram({ config });
      assert.equal(first.outputs.commit, head);
      const report = await apply(first, state);
      assert.deepEqual(report.actions, [
        "run local-setup",
        "build local-image",
        "run local-fetch",
        "create local-container",
        "run local-release",
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
    });

    it("second commit: same container inputs, same container; only fetch and release run; one reload", async () => {
      const docker = await ensureDocker();
      const containerId = state.containerIds.get("local-container");
      assert.ok(containerId);
      const reloadsBefore = demuxLogs(
        await docker.getContainer(containerId).logs({ stdout: true, stderr: true, follow: false }),
      ).split(RELOAD_LOG_LINE).length;

      const next = await repo.commitGreeting("Hello from the second commit");
      second = await runProgram({ config });
      assert.equal(second.outputs.commit, next);
      assert.deepEqual(
        plain(second.get(CONTAINER, "local-container").inputs),
        plain(first.get(CONTAINER, "local-container").inputs),
        "the container's declared inputs do not depend on the commit",
      );

      const started = Date.now();
      const report = await apply(second, state);
      const seconds = (Date.now() - started) / 1000;
      assert.deepEqual(report.actions, ["run local-fetch", "run local-release"]);
      assert.equal(state.containerIds.get("local-container"), containerId);
      const info = await docker.getContainer(containerId).inspect();
      assert.equal(info.State.Running, true);
      assert.equal(info.RestartCount, 0);

      const served = await waitForRevision(`${url}/`, next, 5_000);
      assert.match(served.body, /^Hello from the second commit/);
      const reloadsAfter = demuxLogs(
        await docker.getContainer(containerId).logs({ stdout: true, stderr: true, follow: false }),
      ).split(RELOAD_LOG_LINE).length;
      assert.equal(reloadsAfter - reloadsBefore, 1, "exactly one graceful reload");
      console.log(`code deploy through the declared commands: ${seconds.toFixed(2)} s`);
    });

    it("a dependency change pushed as code only (--target the commands) is refused; the old commit keeps serving", async () => {
      const live = await repo.head();
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
      await assert.rejects(
        apply(targeted, state, { targets: ["local-fetch", "local-release"] }),
        (err: unknown) => {
          assert.ok(err instanceof CommandFailedError, String(err));
          assert.equal(err.resource, "local-release");
          assert.equal(err.result.code, 5);
          assert.match(
            err.result.stderr,
            /this commit changes dependencies: run a container deploy/,
          );
          return true;
        },
      );
      const served = await getServed(`${url}/`);
      assert.equal(served.status, 200);
      assert.equal(served.revision, live, "nothing switched");
    });

    it("the same commit through a full `pulumi up` is a container deploy: new image with the package, new container", async () => {
      const docker = await ensureDocker();
      const head = await repo.head();
      const oldContainerId = state.containerIds.get("local-container");
      const third = await runProgram({ config });
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
      // Safe order: the release is fetched, then the container replaced, then activated.
      assert.deepEqual(report.actions, [
        "build local-image",
        "replace local-container",
        "run local-release",
      ]);
      const newContainerId = state.containerIds.get("local-container");
      assert.notEqual(newContainerId, oldContainerId);
      const served = await getServed(`${url}/`);
      assert.equal(served.status, 200);
      assert.equal(served.revision, head);
      assert.equal(served.fingerprint, third.outputs.dependencyFingerprint);
      assert.match(served.body, /^Hello with PyYAML/);
      const info = await docker.getContainer(newContainerId ?? "").inspect();
      assert.ok(
        info.Config.Env.includes(
          `TOUCHDEPLOY_FINGERPRINT=${String(third.outputs.dependencyFingerprint)}`,
        ),
      );
      console.log(
        `container deploy (image build with apt + replace + activate): ${seconds.toFixed(1)} s`,
      );
    });
  },
);
