/**
 * The git server's host key is pinned (issue 14, README "Security"): a fetch with --ssh-key and
 * --known-hosts talks only to a server whose key is in that file. A real OpenSSH server on
 * 127.0.0.1 serves the fixture's repository over SSH (root logs in with a key the test makes);
 * the fetch succeeds with the server's own key pinned and fails, before any login, with another
 * key pinned or with none — OpenSSH's client never trusts a new key on first use here and never
 * writes to the pinned file.
 *
 * Needs root (sshd's privilege separation, a login as root) and sshd; skipped otherwise, with
 * the reason.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";
import { findExecutable } from "../harness/prerequisites";
import { freePort, run, waitFor } from "../harness/process";
import {
  describeRun,
  errorLine,
  EXIT,
  hostGate,
  runScript,
  setupFixture,
  short,
  type Fixture,
} from "./support/harness";

const SSHD = "/usr/sbin/sshd";

function gate(): { skip?: string } {
  const host = hostGate();
  if (host.skip) return host;
  if (process.getuid?.() !== 0) return { skip: "needs root (sshd, a login as root)" };
  if (!fs.existsSync(SSHD) || !findExecutable("ssh") || !findExecutable("ssh-keygen")) {
    return { skip: "needs openssh-server and openssh-client (sshd, ssh, ssh-keygen)" };
  }
  return {};
}

const connects = (port: number): Promise<true | undefined> =>
  new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(undefined));
  });

describe("the git server's host key is pinned (--known-hosts)", gate(), () => {
  let fx: Fixture;
  let sshd: ChildProcess | undefined;
  let sshdLog = "";
  let port: number;
  let key: string;
  let sha: string;
  let serverKey: string;
  let otherKey: string;

  const keygen = async (file: string): Promise<string> => {
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "tdtest", "-f", file]);
    return fs.readFileSync(`${file}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
  };

  /** Runs `fetch` of a new commit (none in the cache yet) over SSH with this known_hosts content. */
  const fetchWith = async (knownHosts: string) => {
    sha = await fx.repo.commit(Math.random().toString(36).slice(2));
    const file = path.join(fx.dir, `known_hosts-${Math.random().toString(36).slice(2)}`);
    fs.writeFileSync(file, knownHosts, { mode: 0o644 });
    const args = ["--repo", `ssh://root@127.0.0.1:${port}${fx.repo.origin}`, "--commit", sha];
    const r = await runScript(fx.args("fetch", ...args, "--ssh-key", key, "--known-hosts", file));
    return { r, file };
  };

  before(async () => {
    fx = await setupFixture("known-hosts", { standin: false });
    const dir = path.join(fx.dir, "sshd");
    fs.mkdirSync(dir, { mode: 0o700 });
    serverKey = await keygen(path.join(dir, "host_ed25519"));
    otherKey = await keygen(path.join(dir, "other_host_ed25519"));
    key = path.join(dir, "client_ed25519");
    const clientPublic = await keygen(key);
    fs.writeFileSync(path.join(dir, "authorized_keys"), `${clientPublic}\n`, { mode: 0o600 });
    fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    port = await freePort();
    const config = path.join(dir, "sshd_config");
    fs.writeFileSync(
      config,
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${path.join(dir, "host_ed25519")}`,
        `PidFile ${path.join(dir, "sshd.pid")}`,
        `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
        "StrictModes no",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "PermitRootLogin prohibit-password",
        "AllowUsers root",
        "LogLevel ERROR",
        "",
      ].join("\n"),
    );
    sshd = spawn(SSHD, ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
    sshd.stderr?.on("data", (c: Buffer) => (sshdLog += c.toString()));
    await waitFor("sshd to listen", () => connects(port), {
      timeoutMs: 10_000,
      intervalMs: 50,
      describeLast: () => sshdLog,
    });
  });
  after(async () => {
    sshd?.kill("SIGTERM");
    await fx?.cleanup();
  });

  it("GIVEN the server's own key pinned THEN the fetch over SSH succeeds", async () => {
    const { r } = await fetchWith(`[127.0.0.1]:${port} ${serverKey}\n`);
    assert.equal(r.code, EXIT.ok, `${describeRun(r)}\nsshd: ${sshdLog}`);
    assert.match(r.stdout, new RegExp(`fetch +${short(sha)} `));
  });

  it("GIVEN another key pinned for the server (a man in the middle) THEN the fetch fails before any login (exit 4), the pinned file unchanged", async () => {
    const pinned = `[127.0.0.1]:${port} ${otherKey}\n`;
    const { r, file } = await fetchWith(pinned);
    assert.equal(r.code, EXIT.missing, describeRun(r));
    assert.match(errorLine(r), /^touchdeploy: error: fetch of [0-9a-f]{12} from ssh:/);
    assert.equal(fs.readFileSync(file, "utf8"), pinned);
    assert.ok(!fs.existsSync(path.join(fx.root, "releases", sha)), "nothing was fetched");
  });

  it("GIVEN no key pinned for the server THEN the fetch fails (no trust on first use) and nothing is added to the file", async () => {
    const { r, file } = await fetchWith("");
    assert.equal(r.code, EXIT.missing, describeRun(r));
    assert.equal(fs.readFileSync(file, "utf8"), "");
    assert.ok(!fs.existsSync(path.join(fx.root, "releases", sha)), "nothing was fetched");
  });
});

// Without sshd: which known_hosts files the fetch's ssh is told to trust, read from its own
// argument vector (an `ssh` first on PATH that records it and fails like an unreachable host).
describe("the fetch's ssh trusts only the pinned file", hostGate(), () => {
  it("GIVEN --known-hosts THEN ssh gets it as UserKnownHostsFile and no global file (the host's /etc/ssh/ssh_known_hosts does not count)", async () => {
    const fx = await setupFixture("known-hosts-argv", { standin: false });
    try {
      const bin = path.join(fx.dir, "fake-ssh");
      fs.mkdirSync(bin);
      const argv = path.join(fx.dir, "ssh-argv");
      fs.writeFileSync(
        path.join(bin, "ssh"),
        `#!/bin/sh\nprintf '%s\\n' "$@" > ${JSON.stringify(argv)}\nexit 255\n`,
        { mode: 0o755 },
      );
      const key = path.join(fx.dir, "key");
      fs.writeFileSync(key, "not a real key\n", { mode: 0o600 });
      const pinned = path.join(fx.dir, "known_hosts");
      fs.writeFileSync(pinned, "[127.0.0.1]:2222 ssh-ed25519 AAAA\n");
      const sha = await fx.repo.head();
      const r = await runScript(
        fx.args(
          "fetch",
          "--repo",
          `ssh://git@127.0.0.1:2222${fx.repo.origin}`,
          "--commit",
          sha,
          "--ssh-key",
          key,
          "--known-hosts",
          pinned,
        ),
        { extraEnv: { PATH: `${bin}:${process.env.PATH ?? ""}` } },
      );
      assert.equal(r.code, EXIT.missing, describeRun(r));
      const args = fs.readFileSync(argv, "utf8").split("\n");
      const options = args.flatMap((a, i) => (args[i - 1] === "-o" ? [a] : []));
      assert.deepEqual(
        options.filter((o) => /KnownHostsFile|StrictHostKeyChecking/.test(o)),
        [
          "StrictHostKeyChecking=yes",
          `UserKnownHostsFile=${pinned}`,
          "GlobalKnownHostsFile=/dev/null",
        ],
      );
    } finally {
      await fx.cleanup();
    }
  });
});
