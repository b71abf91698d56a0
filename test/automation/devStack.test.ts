// Layer 3: the real Pulumi engine, through the Automation API (LocalWorkspace, local file
// backend). Where the `pulumi` CLI exists, it brings a dev-shaped stack up, commits a code-only
// change and checks the exact step events the engine emits for the preview and the update (the
// release commands replaced create-before-delete, the container untouched), then a dependency
// change (the container replaced delete-before-replace, the release re-created on it).
//
// Where the CLI does not exist (it is a downloaded binary, which this project's CI machines
// cannot fetch) the test is skipped and says so, with the reason, in the test output;
// `TOUCHDEPLOY_PULUMI=required` (or 1/true/yes) makes that a failure instead.
//
// What the engine emits (pulumi/pulumi v3.248.0):
// - one ResourcePreEvent per step, before it runs, and for custom resources one ResOutputsEvent
//   after it, both with `metadata.op` = the step's op (pkg/engine/update.go
//   `updateActions.OnResourceStepPre`/`OnResourceStepPost`; the same for previews,
//   `previewActions`; step_executor.go `executeStep` calls them for every step);
// - a create-before-delete replacement is the steps `create-replacement`, then `replace`, and —
//   after every registration, in reverse dependency order — `delete-replaced` for the old copy
//   (pkg/resource/deploy/step_generator.go `continueStepsFromDiff`: "the delete step is
//   generated later on", `GenerateDeletes`, `ScheduleDeletes`; step.go `OpCreateReplacement`,
//   `OpReplace`, `OpDeleteReplaced`, `DeleteStep.Op`);
// - with deleteBeforeReplace it is `delete-replaced` first — preceded by the delete-replaced of
//   each dependent the replacement takes along (`calculateDependentReplacements`) — then
//   `replace`, then `create-replacement`; a dependent deleted that way is re-created with
//   `replace`, `create-replacement` when it registers (`ContinueStepsFromDiff`, "recreating");
// - the change summary counts only logical steps: `replace` and `same`, not
//   create-replacement or delete-replaced (`Logical()` in step.go; update.go counts `record`).
// So "the last event per resource" is `delete-replaced` for a code deploy: the assertions below
// keep every event, in order.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { EngineEvent, LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { ensureDocker, imageExists } from "../harness/docker";
import { getServed, waitForRevision } from "../harness/app";
import { APP_SUBDIR, TestRepo } from "../harness/git";
import { BASE_IMAGE } from "../harness/images";
import { e2eGate } from "../harness/prerequisites";
import { freePort, makeScratchDir, removeTree } from "../harness/process";
import { PROJECT_DIR, runProgram } from "../support/pulumiProgram";

/** The files of the program, copied so the test's stack file stays out of the repository. */
const PROGRAM_FILES = [
  "index.ts",
  "components",
  "host",
  "runtime",
  "Pulumi.yaml",
  "package.json",
  "tsconfig.json",
];

/** The resource types whose steps the assertions look at (not components or providers). */
const WATCHED = new Set([
  "command:local:Command",
  "docker:index/container:Container",
  "docker:index/remoteImage:RemoteImage",
]);

/** One step event: `pre` (ResourcePreEvent) or `outputs` (ResOutputsEvent), op, resource. */
interface StepEvent {
  kind: "pre" | "outputs";
  op: string;
  name: string;
}

/** Collects the step events of the watched resources, in the order the engine sent them. */
function recorder(): { events: StepEvent[]; onEvent: (e: EngineEvent) => void } {
  const events: StepEvent[] = [];
  return {
    events,
    onEvent(e) {
      for (const [kind, payload] of [
        ["pre", e.resourcePreEvent],
        ["outputs", e.resOutputsEvent],
      ] as const) {
        const md = payload?.metadata;
        if (md && WATCHED.has(md.type)) {
          events.push({ kind, op: md.op, name: md.urn.split("::").pop() ?? md.urn });
        }
      }
    },
  };
}

/** The steps of a code-only deploy: the fetch and release replaced, nothing else touched. */
const CODE_DEPLOY_STEPS = {
  "local-setup": ["same"],
  "local-user": ["same"],
  "local-fetch": ["create-replacement", "replace", "delete-replaced"],
  "local-image": ["same"],
  "local-container": ["same"],
  "local-release": ["create-replacement", "replace", "delete-replaced"],
};

/** The steps of a dependency change: the container replaced delete-before-replace. */
const DEPENDENCY_DEPLOY_STEPS = {
  "local-setup": ["same"],
  "local-user": ["same"],
  "local-fetch": ["create-replacement", "replace", "delete-replaced"],
  "local-image": ["create-replacement", "replace", "delete-replaced"],
  "local-container": ["delete-replaced", "replace", "create-replacement"],
  "local-release": ["delete-replaced", "replace", "create-replacement"],
};

// Runs everywhere (no CLI needed): the expectations above name exactly the resources of the
// watched types that the program declares for this stack, so a resource added to the program
// (as local-user was, by issue 11) cannot be missing from them while the CLI test is skipped.
describe("Automation API test: its expected steps name every watched resource the program declares", () => {
  it("GIVEN the stack's config under mocks THEN the watched resources are exactly the expected ones", async () => {
    const run = await runProgram({
      config: {
        appName: "td-automation",
        repoUrl: "https://example.test/hello.git",
        commit: "0123456789abcdef0123456789abcdef01234567",
        appDir: APP_SUBDIR,
        hosts: ["local local port=8000 bind=127.0.0.1"],
        root: "/var/tmp/td-automation",
      },
    });
    const declared = run.resources
      .filter((r) => WATCHED.has(r.type))
      .map((r) => r.name)
      .sort();
    assert.deepEqual(Object.keys(CODE_DEPLOY_STEPS).sort(), declared);
    assert.deepEqual(Object.keys(DEPENDENCY_DEPLOY_STEPS).sort(), declared);
  });
});

/** Per resource, the ops of its ResourcePreEvents in order (the steps it went through). */
function stepsByResource(events: readonly StepEvent[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const e of events) if (e.kind === "pre") (out[e.name] ??= []).push(e.op);
  return out;
}

/** Position of the `pre` event of `op` on `name` (fails when there is none). */
function at(events: readonly StepEvent[], name: string, op: string): number {
  const i = events.findIndex((e) => e.kind === "pre" && e.name === name && e.op === op);
  assert.ok(i >= 0, `no ${op} step on ${name}`);
  return i;
}

const gate = e2eGate(
  ["pulumi", "docker", "debootstrap", "git", "bash", "curl", "flock"],
  "TOUCHDEPLOY_PULUMI",
);
if (gate.skip) {
  // Said once, plainly, in the run's output (the TAP line says it too).
  console.warn(
    `SKIPPED the Automation API test: ${gate.skip}. ` +
      "Set TOUCHDEPLOY_PULUMI=required to make a missing prerequisite a failure.",
  );
}

describe("Automation API: a dev-shaped stack on the real engine", gate, () => {
  let scratch: string;
  let repo: TestRepo;
  let stack: Stack;
  let url: string;

  before(async () => {
    scratch = makeScratchDir("automation");
    const workDir = path.join(scratch, "program");
    fs.mkdirSync(workDir);
    for (const file of PROGRAM_FILES) {
      fs.cpSync(path.join(PROJECT_DIR, file), path.join(workDir, file), { recursive: true });
    }
    fs.symlinkSync(path.join(PROJECT_DIR, "node_modules"), path.join(workDir, "node_modules"));
    repo = await TestRepo.create(path.join(scratch, "repo"));
    const port = await freePort();
    url = `http://127.0.0.1:${port}/`;

    const docker = await ensureDocker();
    const config: Record<string, string> = {
      "touchdeploy:appName": "td-automation",
      "touchdeploy:repoPath": repo.work,
      "touchdeploy:appDir": APP_SUBDIR,
      // Path syntax: a list item, as `pulumi config set --path` writes it (hosts is an array).
      "touchdeploy:hosts[0]": `local local port=${port} bind=127.0.0.1`,
      "touchdeploy:root": path.join(scratch, "root"),
      "touchdeploy:healthTimeout": "60",
    };
    // Without a registry (as on CI machines) build on the locally imported base image.
    if (await imageExists(docker, BASE_IMAGE)) {
      config["touchdeploy:baseImage"] = BASE_IMAGE;
    }
    fs.mkdirSync(path.join(scratch, "state"));
    stack = await LocalWorkspace.createOrSelectStack(
      { stackName: "automation", workDir },
      {
        envVars: {
          PULUMI_BACKEND_URL: `file://${path.join(scratch, "state")}`,
          PULUMI_CONFIG_PASSPHRASE: "",
        },
      },
    );
    // With `path`, "60" is stored as the integer the project declares, not a string.
    await stack.setAllConfig(
      Object.fromEntries(Object.entries(config).map(([k, value]) => [k, { value }])),
      true,
    );
  });

  after(async () => {
    if (stack) {
      await stack.destroy({ onOutput: () => undefined }).catch(() => undefined);
      await stack.workspace.removeStack("automation").catch(() => undefined);
    }
    if (scratch) removeTree(scratch);
  });

  it("a code deploy: the preview and the update replace fetch and release create-before-delete; the container stays", async () => {
    const first = await repo.head();
    const up1 = await stack.up({ onOutput: (line) => process.stdout.write(line) });
    assert.equal(up1.summary.result, "succeeded");
    await waitForRevision(url + "healthz", first);
    const hosts = up1.outputs.hosts.value as Record<string, { container: string }>;
    const docker = await ensureDocker();
    const identity = async () => {
      const info = await docker.getContainer(hosts.local.container).inspect();
      return { id: info.Id, created: info.Created };
    };
    const containerBefore = await identity();

    const second = await repo.commitGreeting("Hello from the Automation API");
    const expected = CODE_DEPLOY_STEPS;

    const previewed = recorder();
    const preview = await stack.preview({ onEvent: previewed.onEvent });
    assert.deepEqual(stepsByResource(previewed.events), expected);
    // Deletions come after every creation, the release's (the dependent) before the fetch's.
    const p = previewed.events;
    assert.ok(at(p, "local-release", "replace") < at(p, "local-fetch", "delete-replaced"));
    assert.ok(at(p, "local-release", "delete-replaced") < at(p, "local-fetch", "delete-replaced"));
    assert.deepEqual(Object.keys(preview.changeSummary).sort(), ["replace", "same"]);
    assert.equal(preview.changeSummary.replace, 2);

    const updated = recorder();
    const up2 = await stack.up({
      onOutput: (line) => process.stdout.write(line),
      onEvent: updated.onEvent,
    });
    assert.equal(up2.summary.result, "succeeded");
    assert.deepEqual(stepsByResource(updated.events), expected);
    // Each step of a custom resource: its pre event, then its outputs event with the same op.
    assert.deepEqual(
      updated.events.filter((e) => e.name === "local-release").map((e) => `${e.kind} ${e.op}`),
      [
        "pre create-replacement",
        "outputs create-replacement",
        "pre replace",
        "outputs replace",
        "pre delete-replaced",
        "outputs delete-replaced",
      ],
    );
    assert.equal(up2.summary.resourceChanges?.replace, 2);
    const served = await getServed(url);
    assert.equal(served.revision, second);
    assert.match(served.body, /Hello from the Automation API/);
    assert.deepEqual(await identity(), containerBefore);
  });

  it("a dependency change: the container replaced delete-before-replace, the release deleted first and re-created on it", async () => {
    const docker = await ensureDocker();
    const head = await repo.commitAptPackage("python3-yaml");
    const updated = recorder();
    const up = await stack.up({
      onOutput: (line) => process.stdout.write(line),
      onEvent: updated.onEvent,
    });
    assert.equal(up.summary.result, "succeeded");
    assert.deepEqual(stepsByResource(updated.events), DEPENDENCY_DEPLOY_STEPS);
    const e = updated.events;
    assert.ok(at(e, "local-fetch", "replace") < at(e, "local-container", "delete-replaced"));
    assert.ok(
      at(e, "local-release", "delete-replaced") < at(e, "local-container", "delete-replaced"),
    );
    assert.ok(at(e, "local-container", "create-replacement") < at(e, "local-release", "replace"));
    const hosts = up.outputs.hosts.value as Record<string, { container: string }>;
    const info = await docker.getContainer(hosts.local.container).inspect();
    assert.equal(info.State.Running, true);
    const served = await waitForRevision(url, head);
    assert.equal(served.status, 200);
  });
});
