/**
 * The host script over SSH as an unprivileged deploy user, exactly as `@pulumi/command`'s
 * remote.Command runs it: one SSH exec of `bash -s -- <shell-quoted args>`, the script text on
 * stdin, the server's host key verified. The deploy user (uid 1500) writes the releases; the
 * container's user (uid 10001) serves them.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { hostScriptCommand as programCommand } from "../../components/hostScript";
import { getServed, startAppContainer, waitForRevision, type AppContainer } from "../harness/app";
import { short } from "../harness/fixture";
import { APP_SUBDIR, TestRepo } from "../harness/git";
import { describeRun, EXIT, hostScriptCommand, hostScriptText } from "../harness/hostScript";
import { ensureRuntimeImage } from "../harness/images";
import { e2eGate } from "../harness/prerequisites";
import { makeScratchDir, removeTree, run, type RunResult } from "../harness/process";
import {
  ensureSshd,
  installForDeployUser,
  sshRun,
  stopSshd,
  type SshServer,
} from "../harness/sshd";

describe(
  "host script over SSH as a non-root deploy user",
  e2eGate(["docker", "debootstrap", "git", "curl", "flock", "sshd"]),
  () => {
    let dir: string;
    let root: string;
    let repo: TestRepo;
    let server: SshServer;
    let app: AppContainer;
    let deployKey: string;
    let knownHosts: string;

    /** Runs the script on the SSH server the way remote.Command does. */
    const remote = (args: string[]): Promise<RunResult> =>
      sshRun(server, hostScriptCommand(args), hostScriptText());

    before(async () => {
      server = await ensureSshd();
      dir = makeScratchDir("ssh");
      repo = await TestRepo.create(path.join(dir, "repo"));
      // git refuses to serve a repository owned by another user than the one fetching.
      repo.chownOrigin(server.uid, server.gid);
      // The app root belongs to the deploy user, as an operator would set it up.
      root = path.join(dir, "root");
      fs.mkdirSync(root, { mode: 0o755 });
      fs.chownSync(root, server.uid, server.gid);
      // For git over SSH with --ssh-key: a deploy key and the server's host key, as a GitHub
      // deploy key and github.com's known host would be installed.
      deployKey = installForDeployUser(server, "tdtest_deploy_key", server.privateKey);
      knownHosts = installForDeployUser(
        server,
        "tdtest_known_hosts",
        fs.readFileSync(server.knownHostsPath, "utf8"),
        0o644,
      );
      const init = await remote(["setup", "--root", root]);
      assert.equal(init.code, EXIT.ok, describeRun(init));
      app = await startAppContainer({
        image: (await ensureRuntimeImage()).tag,
        root,
        subdir: APP_SUBDIR,
        name: "ssh",
      });
    });
    after(async () => {
      await app?.remove().catch(() => undefined);
      if (dir) removeTree(dir);
      stopSshd();
    });

    it("deploys over SSH, fetching over SSH with a deploy key; the container (uid 10001) serves it", async () => {
      const sha = await repo.head();
      const r = await remote([
        "deploy",
        "--root",
        root,
        "--repo",
        `ssh://${server.user}@${server.host}:${server.port}${repo.origin}`,
        "--commit",
        sha,
        "--subdir",
        APP_SUBDIR,
        "--health-url",
        app.healthUrl,
        "--ssh-key",
        deployKey,
        "--known-hosts",
        knownHosts,
      ]);
      assert.equal(r.code, EXIT.ok, describeRun(r));
      assert.match(r.stdout, new RegExp(`touchdeploy: deployed ${short(sha)} in`));
      const served = await waitForRevision(`${app.baseUrl}/`, sha, 5000);
      assert.equal(served.body, `Hello from touchdeploy (revision ${short(sha)})\n`);

      // Written by the deploy user, world-readable, read-only.
      const release = path.join(root, "releases", sha);
      const stat = fs.statSync(path.join(release, APP_SUBDIR, "app.py"));
      assert.equal(stat.uid, server.uid);
      assert.equal(stat.mode & 0o777, 0o444);
      assert.equal(fs.readFileSync(path.join(release, "REVISION"), "utf8"), sha);
      assert.equal(fs.lstatSync(path.join(root, "current")).uid, server.uid);

      // Served by processes running as uid 10001.
      const uids = await app.processUids();
      assert.ok(uids.length >= 3, `expected supervisord and uWSGI processes: ${uids.join(" ")}`);
      assert.deepEqual(new Set(uids), new Set([10001]));
    });

    it("a second, code-only deploy over SSH, with the program's own command line, reloads the same container", async () => {
      const before = await app.identity();
      const sha = await repo.commitGreeting("Hello over SSH");
      // The command string exactly as the Pulumi program builds it (components/hostScript.ts).
      const command = programCommand("deploy", {
        root,
        repo: repo.origin,
        commit: sha,
        subdir: APP_SUBDIR,
        "health-url": app.healthUrl,
      });
      // What a shell makes of it, checked by a shell, not by the builder: run it with a script
      // on stdin that prints the words bash received.
      assert.ok(command.startsWith("bash -s -- "), command);
      const words = await run("/bin/sh", ["-c", command], { input: 'printf "%s\\0" "$@"' });
      assert.deepEqual(words.stdout.split("\0").slice(0, -1), [
        "deploy",
        "--root",
        root,
        "--repo",
        repo.origin,
        "--commit",
        sha,
        "--subdir",
        APP_SUBDIR,
        "--health-url",
        app.healthUrl,
      ]);
      const r = await sshRun(server, command, hostScriptText());
      assert.equal(r.code, EXIT.ok, describeRun(r));
      const served = await getServed(`${app.baseUrl}/`);
      assert.equal(served.revision, sha);
      assert.equal(served.body, `Hello over SSH (revision ${short(sha)})\n`);
      assert.deepEqual(await app.identity(), before);
      const status = await remote(["status", "--root", root]);
      assert.equal(status.stdout, `${sha}\n`);
    });

    it("hostile arguments travel over SSH as plain data and are refused", async () => {
      // In /tmp, where the deploy user could create it if anything ran it.
      const marker = path.join(os.tmpdir(), `tdtest-pwned-ssh-${process.pid}`);
      const r = await remote([
        "deploy",
        "--root",
        root,
        "--repo",
        `$(touch ${marker})`,
        "--commit",
        "x",
      ]);
      assert.equal(r.code, EXIT.badInput, describeRun(r));
      assert.match(r.stderr, /--repo /);
      assert.equal(fs.existsSync(marker), false);
    });
  },
);
