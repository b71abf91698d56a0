// The e2e gate: which values make a test required, and that a prerequisite counts only when it
// works. Each case runs the gate in a child process with its own environment (the gate caches
// its checks per process). No Docker, no root needed.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";

const MODULE = path.join(__dirname, "..", "harness", "prerequisites.ts");

/** Runs `expression` (with `gate` = the prerequisites module) in a child; its JSON result. */
function inChild(expression: string, env: NodeJS.ProcessEnv): { value?: unknown; error?: string } {
  const script = `
    const gate = require(${JSON.stringify(MODULE)});
    try { console.log(JSON.stringify({ value: ${expression} })); }
    catch (e) { console.log(JSON.stringify({ error: e.message })); }`;
  const r = spawnSync(process.execPath, ["--import", "tsx", "-e", script], {
    encoding: "utf8",
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split("\n").pop() ?? "") as { value?: unknown; error?: string };
}

describe("e2e gate", () => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "tdtest-gate-"));
  after(() => fs.rmSync(scratch, { recursive: true, force: true }));

  it("TOUCHDEPLOY_E2E accepts the usual true values, in any case", () => {
    const values = ["required", "REQUIRED", "1", "true", "True", "yes", " yes ", ""];
    const others = ["0", "false", "no", "required!", "optional"];
    const expression = `${JSON.stringify([...values, ...others])}.map((v) => {
      process.env.TOUCHDEPLOY_E2E = v;
      return gate.isRequired("TOUCHDEPLOY_E2E");
    })`;
    assert.deepEqual(inChild(expression, {}), {
      value: [...values.map((v) => v !== ""), ...others.map(() => false)],
    });
  });

  it("a tool that is installed but does not run counts as missing", () => {
    const bin = path.join(scratch, "bin");
    fs.mkdirSync(bin);
    fs.writeFileSync(
      path.join(bin, "curl"),
      "#!/bin/sh\necho 'curl: broken library' >&2\nexit 3\n",
      {
        mode: 0o755,
      },
    );
    assert.deepEqual(
      inChild(`gate.missingPrerequisites(["curl"])`, { PATH: `${bin}:${process.env.PATH}` }),
      { value: ["curl is installed but `curl --version` fails: curl: broken library"] },
    );
  });

  it("a Docker daemon that does not answer counts as missing, naming where it was asked", () => {
    const socket = path.join(scratch, "no-docker.sock");
    assert.deepEqual(
      inChild(`gate.missingPrerequisites(["docker"])`, { DOCKER_HOST: `unix://${socket}` }),
      { value: [`a Docker engine at DOCKER_HOST=unix://${socket} (connect ENOENT ${socket})`] },
    );
  });

  it("missing prerequisites skip the test, or fail it when the variable requires it", () => {
    const env = { DOCKER_HOST: `unix://${path.join(scratch, "none.sock")}` };
    const reason = `missing: a Docker engine at DOCKER_HOST=${env.DOCKER_HOST} (connect ENOENT ${path.join(scratch, "none.sock")})`;
    assert.deepEqual(inChild(`gate.e2eGate(["docker"])`, env), { value: { skip: reason } });
    assert.deepEqual(inChild(`gate.e2eGate(["docker"])`, { ...env, TOUCHDEPLOY_E2E: "yes" }), {
      error: `TOUCHDEPLOY_E2E=yes but this end-to-end test cannot run: ${reason}`,
    });
    // The Automation API test's own switch.
    assert.deepEqual(
      inChild(`gate.e2eGate(["docker"], "TOUCHDEPLOY_PULUMI")`, { ...env, TOUCHDEPLOY_E2E: "1" }),
      { value: { skip: reason } },
    );
    assert.deepEqual(
      inChild(`gate.e2eGate(["docker"], "TOUCHDEPLOY_PULUMI")`, {
        ...env,
        TOUCHDEPLOY_PULUMI: "required",
      }),
      { error: `TOUCHDEPLOY_PULUMI=required but this end-to-end test cannot run: ${reason}` },
    );
  });
});
