// What `pulumi destroy` runs on a host (issue 8 item 15): the setup command's declared `delete`,
// with the host script on stdin (pulumi-command v1.2.1 local/commandController.go `Delete` runs
// props.Delete with the stored BaseInputs, stdin included), through a real shell on a scratch
// app root.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import {
  destroyOptions,
  phaseCommand,
  readHostScript,
  setupOptions,
} from "../../components/hostScript";

describe("`pulumi destroy` on a host: the setup command's delete", () => {
  it("GIVEN a deployed root THEN touchdeploy's files go, shared/ and state/ stay, and a second run succeeds", () => {
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "td-destroy-"));
    const root = path.join(scratch, "root");
    try {
      const run = (command: string) =>
        spawnSync("/bin/sh", ["-c", command], { input: readHostScript(), encoding: "utf8" });
      const setup = run(
        phaseCommand("setup", setupOptions(root, { reloadFile: ".reload", stateDirs: [] })),
      );
      assert.equal(setup.status, 0, setup.stderr);
      fs.writeFileSync(path.join(root, "shared", "settings.py"), "X = 1\n");
      fs.mkdirSync(path.join(root, "state", "media"), { recursive: true });
      const destroy = run(phaseCommand("destroy", destroyOptions(root)));
      assert.equal(destroy.status, 0, destroy.stderr);
      assert.deepEqual(fs.readdirSync(root).sort(), ["shared", "state"]);
      assert.equal(fs.readFileSync(path.join(root, "shared", "settings.py"), "utf8"), "X = 1\n");
      assert.equal(run(phaseCommand("destroy", destroyOptions(root))).status, 0, "idempotent");
      fs.rmSync(root, { recursive: true });
      assert.equal(run(phaseCommand("destroy", destroyOptions(root))).status, 0, "no root: exit 0");
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  });
});
