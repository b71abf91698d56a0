/**
 * `touchdeploy.sh destroy --root DIR` (what `pulumi destroy` runs, COORD.md): it removes what
 * touchdeploy made under the root and keeps shared/ and state/ with what they hold, removes the
 * root only when it is then empty, takes the lock, and can run any number of times.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import {
  describeRun,
  errorLine,
  EXIT,
  fakeDocker,
  hostGate,
  runScript,
  setupFixture,
  startPaused,
  type Fixture,
} from "./support/harness";

/**
 * A `docker` whose `ps` lists no container: destroy asks Docker whether a container still uses
 * the root, and these tests must not depend on whether this machine runs a Docker daemon.
 */
const NO_CONTAINERS = (() => {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), "tdtest-nodocker-"));
  fs.writeFileSync(path.join(bin, "docker"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  return { extraEnv: { PATH: `${bin}:${process.env.PATH ?? ""}` } };
})();

/** A root after two deploys with a custom trigger, a fetch key and a journal's leftovers. */
async function deployedRoot(label: string): Promise<Fixture> {
  const fx = await setupFixture(label, { standin: false });
  const setup = await runScript(fx.args("setup", "--reload-file", ".trigger-custom"));
  assert.equal(setup.code, EXIT.ok, describeRun(setup));
  for (const sha of [await fx.repo.head(), await fx.repo.commit("second")]) {
    const r = await fx.deploy(sha, ["--reload-file", ".trigger-custom"]);
    assert.equal(r.code, EXIT.ok, describeRun(r));
  }
  // What the program's fetch-key command installs.
  fs.mkdirSync(path.join(fx.root, ".ssh"), { mode: 0o700 });
  fs.writeFileSync(path.join(fx.root, ".ssh", "deploy_key"), "key\n", { mode: 0o600 });
  fs.writeFileSync(path.join(fx.root, ".ssh", "known_hosts"), "host key\n");
  // What an older version left.
  fs.writeFileSync(path.join(fx.root, ".lock"), "");
  return fx;
}

// Each test has its own root: they run side by side.
describe("destroy", { ...hostGate(), concurrency: 4 }, () => {
  it("removes what touchdeploy made and keeps shared/ and state/ with their files", async () => {
    const fx = await deployedRoot("destroy-keep");
    try {
      fs.writeFileSync(path.join(fx.root, "shared", "settings.py"), "DEBUG = False\n");
      fs.mkdirSync(path.join(fx.root, "state", "db"), { recursive: true });
      fs.writeFileSync(path.join(fx.root, "state", "db", "app.sqlite3"), "data");
      const r = await runScript(["destroy", "--root", fx.root], NO_CONTAINERS);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.equal(r.stderr, "");
      assert.deepEqual(fs.readdirSync(fx.root).sort(), ["shared", "state"]);
      assert.equal(
        fs.readFileSync(path.join(fx.root, "shared", "settings.py"), "utf8"),
        "DEBUG = False\n",
      );
      assert.equal(
        fs.readFileSync(path.join(fx.root, "state", "db", "app.sqlite3"), "utf8"),
        "data",
      );
      assert.match(
        r.stdout,
        /^touchdeploy: destroy +removing what touchdeploy made under .* \.\.\. removed .*; kept shared\/ state\/ in /m,
      );
      // Run again: nothing left to remove, the same files kept.
      const again = await runScript(["destroy", "--root", fx.root], NO_CONTAINERS);
      assert.equal(again.code, EXIT.ok, describeRun(again));
      assert.deepEqual(fs.readdirSync(fx.root).sort(), ["shared", "state"]);
    } finally {
      await fx.cleanup();
    }
  });

  it("removes the root when nothing is left in it, and a root that does not exist is fine (exit 0)", async () => {
    const fx = await deployedRoot("destroy-all");
    try {
      const r = await runScript(
        ["destroy", "--root", fx.root, "--reload-file", ".trigger-custom"],
        NO_CONTAINERS,
      );
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.equal(fs.existsSync(fx.root), false);
      assert.match(r.stdout, /and the root \(it was empty then\) in /);
      const again = await runScript(["destroy", "--root", fx.root], NO_CONTAINERS);
      assert.equal(again.code, EXIT.ok, describeRun(again));
      assert.equal(
        again.stdout,
        `touchdeploy: destroy  ${fx.root} does not exist: nothing to remove\n`,
      );
    } finally {
      await fx.cleanup();
    }
  });

  it("finds the trigger setup recorded, and leaves an operator's other files (and so the root) alone", async () => {
    const fx = await deployedRoot("destroy-other");
    try {
      fs.writeFileSync(path.join(fx.root, "NOTES.txt"), "mine\n");
      // No --reload-file: the trigger's name comes from what setup recorded.
      const r = await runScript(["destroy", "--root", fx.root], NO_CONTAINERS);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.deepEqual(fs.readdirSync(fx.root), ["NOTES.txt"]);
    } finally {
      await fx.cleanup();
    }
  });

  it("GIVEN a container still labelled with the root (a host renamed with the same root) THEN removes nothing, exit 0, naming it; once it is gone, cleans as usual", async () => {
    const fx = await deployedRoot("destroy-in-use");
    const docker = fakeDocker(fx.dir, fx.root, { name: "shop-web2" });
    try {
      const before = fs.readdirSync(fx.root).sort();
      const r = await runScript(["destroy", "--root", fx.root], { extraEnv: docker.env });
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.equal(r.stderr, "");
      assert.match(
        r.stdout,
        new RegExp(
          `^touchdeploy: destroy +removing what touchdeploy made under ${fx.root} \\.\\.\\. removed nothing: container\\(s\\) shop-web2 still use ${fx.root} \\(label touchdeploy\\.root\\); a host renamed with the same root keeps its files\\. Once no container uses the root, run destroy again to clean it in `,
          "m",
        ),
      );
      assert.deepEqual(fs.readdirSync(fx.root).sort(), before);
      assert.ok(before.includes("current") && before.includes("releases"), before.join(" "));
      // Another root's container is not this root's user; a removed one uses nothing.
      docker.set({ root: `${fx.root}-other` });
      const other = await runScript(["destroy", "--root", fx.root], { extraEnv: docker.env });
      assert.equal(other.code, EXIT.ok, describeRun(other));
      assert.equal(fs.existsSync(fx.root), false);
      assert.match(other.stdout, /and the root \(it was empty then\) in /);
    } finally {
      docker.stop();
      await fx.cleanup();
    }
  });

  it("GIVEN Docker that does not answer THEN removes as usual and says the check was not made", async () => {
    const fx = await deployedRoot("destroy-no-daemon");
    const docker = fakeDocker(fx.dir, fx.root);
    try {
      docker.set({ daemon: "down" });
      const r = await runScript(
        ["destroy", "--root", fx.root, "--reload-file", ".trigger-custom"],
        {
          extraEnv: docker.env,
        },
      );
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.equal(fs.existsSync(fx.root), false);
      assert.match(
        r.stdout,
        /and the root \(it was empty then\) \(Docker did not answer \(Cannot connect to the Docker daemon at unix:\/\/\/var\/run\/docker\.sock\. Is the docker daemon running\?\): not checked whether a container still uses the root\) in /,
      );
    } finally {
      docker.stop();
      await fx.cleanup();
    }
  });

  it("takes the lock: while a deploy runs, it waits and gives up after --lock-timeout (exit 8)", async () => {
    const fx = await deployedRoot("destroy-lock");
    try {
      const running = startPaused(
        fx.dir,
        "check",
        fx.deployArgs(await fx.repo.head(), "--reload-file", ".trigger-custom"),
      );
      await running.paused;
      const before = fs.readdirSync(fx.root).sort();
      const r = await runScript(
        ["destroy", "--root", fx.root, "--lock-timeout", "1"],
        NO_CONTAINERS,
      );
      assert.equal(r.code, EXIT.lockTimeout, describeRun(r));
      assert.match(
        errorLine(r),
        /^touchdeploy: error: timed out after 1s waiting for the lock on /,
      );
      assert.deepEqual(fs.readdirSync(fx.root).sort(), before);
      running.resume();
      assert.equal((await running.run.result).code, EXIT.ok);
    } finally {
      await fx.cleanup();
    }
  });
});
