// Layer 3: the real Pulumi engine, through the Automation API (LocalWorkspace, local file
// backend). Where the `pulumi` CLI exists, it brings a dev-shaped stack up, commits a code-only
// change, checks that the preview replaces only the release commands, deploys it and checks the
// container was not touched. Where the CLI does not exist (it is a downloaded binary, which this
// project's CI machines cannot fetch), the test reports itself skipped with the reason.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { ensureDocker, imageExists } from "../e2e/support/docker";
import { getServed, waitForRevision } from "../e2e/support/app";
import { APP_SUBDIR, TestRepo } from "../e2e/support/git";
import { BASE_IMAGE } from "../e2e/support/images";
import { findExecutable, missingPrerequisites } from "../e2e/support/prerequisites";
import { makeScratchDir, removeTree } from "../e2e/support/process";
import { PROJECT_DIR } from "../support/pulumiProgram";

/** Why this test cannot run here, or undefined. Never "required": CI machines have no CLI. */
function whyNot(): string | undefined {
  if (!findExecutable("pulumi")) {
    return "the pulumi CLI is not installed (a downloaded binary; install it from https://www.pulumi.com/docs/install/ to run this test)";
  }
  const missing = missingPrerequisites(["docker", "git", "bash", "curl", "flock"]);
  return missing.length > 0 ? `missing: ${missing.join(", ")}` : undefined;
}

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

const skip = whyNot();

describe("Automation API: a dev-shaped stack on the real engine", { skip }, () => {
  let scratch: string;
  let repo: TestRepo;
  let stack: Stack;
  const port = 18000 + (process.pid % 1000);
  const url = `http://127.0.0.1:${port}/`;

  before(async () => {
    scratch = makeScratchDir("automation");
    const workDir = path.join(scratch, "program");
    fs.mkdirSync(workDir);
    for (const file of PROGRAM_FILES) {
      fs.cpSync(path.join(PROJECT_DIR, file), path.join(workDir, file), { recursive: true });
    }
    fs.symlinkSync(path.join(PROJECT_DIR, "node_modules"), path.join(workDir, "node_modules"));
    repo = await TestRepo.create(path.join(scratch, "repo"));

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
    removeTree(scratch);
  });

  it("deploys a second commit by replacing only the release commands; the container stays", async () => {
    const first = await repo.head();
    const up1 = await stack.up({ onOutput: (line) => process.stdout.write(line) });
    assert.equal(up1.summary.result, "succeeded");
    await waitForRevision(url + "healthz", first);
    const hosts = up1.outputs.hosts.value as Record<string, { container: string }>;
    const docker = await ensureDocker();
    const containerId = (await docker.getContainer(hosts.local.container).inspect()).Id;

    const second = await repo.commitGreeting("Hello from the Automation API");
    const ops = new Map<string, string>();
    const preview = await stack.preview({
      onEvent: (event) => {
        const pre = event.resourcePreEvent?.metadata;
        if (pre) ops.set(`${pre.type} ${pre.urn.split("::").pop()}`, pre.op);
      },
    });
    const changed = [...ops].filter(([, op]) => op !== "same").map(([r, op]) => `${op} ${r}`);
    assert.deepEqual(changed.sort(), [
      "replace command:local:Command local-fetch",
      "replace command:local:Command local-release",
    ]);
    assert.equal(preview.changeSummary.replace, 2);

    const up2 = await stack.up({ onOutput: (line) => process.stdout.write(line) });
    assert.equal(up2.summary.result, "succeeded");
    const served = await getServed(url);
    assert.equal(served.revision, second);
    assert.match(served.body, /Hello from the Automation API/);
    assert.equal((await docker.getContainer(hosts.local.container).inspect()).Id, containerId);
  });
});
