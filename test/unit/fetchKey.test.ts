// The fetch key's install and removal, run by a real shell in a scratch app root (issue 9's
// surviving mutants: the 0700 directory, the empty-key guard, the removal).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, it } from "node:test";
import { installFetchKeyCommand, removeFetchKeyCommand } from "../../components/hostScript";

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n-----END OPENSSH PRIVATE KEY-----\n";
const KNOWN = [
  "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
];

/** Runs a command as pulumi-command's local Command does: `/bin/sh -c CREATE` with stdin. */
const sh = (command: string, stdin: string) =>
  spawnSync("/bin/sh", ["-c", command], { input: stdin, encoding: "utf8" });

describe("the fetch key command", () => {
  let root: string;
  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "td-key-"));
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it("GIVEN the key on stdin THEN deploy_key 0600 and known_hosts in a 0700 .ssh the container's user cannot enter", () => {
    const r = sh(installFetchKeyCommand(root, KNOWN), KEY);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `touchdeploy: fetch key installed in ${root}/.ssh\n`);
    assert.equal(fs.statSync(`${root}/.ssh`).mode & 0o777, 0o700);
    assert.equal(fs.statSync(`${root}/.ssh/deploy_key`).mode & 0o777, 0o600);
    assert.equal(fs.readFileSync(`${root}/.ssh/deploy_key`, "utf8"), KEY);
    assert.equal(fs.readFileSync(`${root}/.ssh/known_hosts`, "utf8"), `${KNOWN[0]}\n`);
  });

  it("GIVEN an existing .ssh with looser modes THEN it is made 0700 again", () => {
    fs.mkdirSync(`${root}/.ssh`, { mode: 0o755 });
    fs.chmodSync(`${root}/.ssh`, 0o755);
    assert.equal(sh(installFetchKeyCommand(root, KNOWN), KEY).status, 0);
    assert.equal(fs.statSync(`${root}/.ssh`).mode & 0o777, 0o700);
  });

  it("GIVEN an empty stdin THEN it fails and installs no empty key (the previous key stays)", () => {
    assert.equal(sh(installFetchKeyCommand(root, KNOWN), KEY).status, 0);
    const r = sh(installFetchKeyCommand(root, KNOWN), "");
    assert.notEqual(r.status, 0);
    assert.equal(fs.readFileSync(`${root}/.ssh/deploy_key`, "utf8"), KEY);
  });

  it("GIVEN `pulumi destroy` THEN the delete removes the key and known_hosts, and succeeds again when they are gone", () => {
    assert.equal(sh(installFetchKeyCommand(root, KNOWN), KEY).status, 0);
    const r = sh(removeFetchKeyCommand(root), "");
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(fs.readdirSync(`${root}/.ssh`), []);
    assert.equal(sh(removeFetchKeyCommand(root), "").status, 0, "idempotent");
  });

  // Who can read the key on a host (README "Security"): the container runs as the deploy user's
  // uid, 10001 for a root deploy user (test/unit/containerUser.test.ts). Real uids need root.
  const asRoot = process.getuid?.() === 0 ? {} : { skip: "needs root to run as other uids" };
  /** Runs `sh -c command` as uid:gid (no supplementary groups), as the container's user would. */
  const shAs = (uid: number, command: string, stdin = "") =>
    spawnSync(
      "setpriv",
      ["--reuid", String(uid), "--regid", String(uid), "--clear-groups", "/bin/sh", "-c", command],
      { input: stdin, encoding: "utf8" },
    );

  it(
    "GIVEN a root deploy user THEN the container's user (10001) cannot read the key, though it reads the root's other files",
    asRoot,
    () => {
      fs.chmodSync(root, 0o755);
      fs.writeFileSync(`${root}/public`, "anyone\n", { mode: 0o644 });
      assert.equal(sh(installFetchKeyCommand(root, KNOWN), KEY).status, 0);
      assert.equal(shAs(10001, `cat ${root}/public`).stdout, "anyone\n", "the root is traversable");
      const r = shAs(10001, `cat ${root}/.ssh/deploy_key`);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /Permission denied/);
    },
  );

  it(
    "GIVEN a non-root deploy user THEN the container's user is that uid and CAN read the key (a known limit: keep the key outside the root)",
    asRoot,
    () => {
      const deployUid = 1501;
      fs.chmodSync(root, 0o755);
      fs.chownSync(root, deployUid, deployUid);
      const install = shAs(deployUid, installFetchKeyCommand(root, KNOWN), KEY);
      assert.equal(install.status, 0, install.stderr);
      assert.equal(fs.statSync(`${root}/.ssh/deploy_key`).uid, deployUid);
      assert.equal(shAs(deployUid, `cat ${root}/.ssh/deploy_key`).stdout, KEY);
      assert.notEqual(shAs(10001, `cat ${root}/.ssh/deploy_key`).status, 0, "other uids cannot");
    },
  );
});
