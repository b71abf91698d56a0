/**
 * A real OpenSSH server on 127.0.0.1 with an unprivileged deploy user, to run the host script
 * exactly as `@pulumi/command`'s remote.Command does: an SSH "exec" of one command string,
 * stdin piped, the server's host key verified (StrictHostKeyChecking=yes against a known_hosts
 * holding the key `connection.hostKey` would carry).
 *
 * Needs root (useradd, sshd). One sshd per test process, started on first use and stopped
 * when the process exits.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { findExecutable } from "./prerequisites";
import { freePort, removeTree, run, sleep, start, type RunResult } from "./process";

/** The deploy user the tests create; its uid differs from the container's 10001 on purpose. */
export const DEPLOY_USER = "tdeploy";
export const DEPLOY_UID = 1500;

export interface SshServer {
  host: string;
  port: number;
  user: string;
  uid: number;
  gid: number;
  /** The deploy user's home directory. */
  home: string;
  /** Client private key (root-only file) that logs in as `user`. */
  privateKeyPath: string;
  /** Its text (OpenSSH format), as a Pulumi secret `connection.privateKey` would hold it. */
  privateKey: string;
  /** The server's host key, `ssh-ed25519 AAAA...`, as `connection.hostKey` would hold it. */
  hostPublicKey: string;
  /** A known_hosts file with that key for `[host]:port`. */
  knownHostsPath: string;
}

let server: Promise<SshServer> | undefined;
let sshdProcess: ChildProcess | undefined;
let scratch: string | undefined;

/** Starts (once per process) sshd and the deploy user; see the module comment. */
export function ensureSshd(): Promise<SshServer> {
  server ??= startSshd();
  return server;
}

async function startSshd(): Promise<SshServer> {
  const sshd = findExecutable("sshd");
  if (!sshd) throw new Error("sshd is missing: apt-get install openssh-server");
  if (process.getuid?.() !== 0) throw new Error("starting sshd and adding a user needs root");

  const { uid, gid, home } = await ensureDeployUser();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tdtest-sshd-"));
  scratch = dir;
  fs.chmodSync(dir, 0o755);
  process.once("exit", stopSshd);

  const hostKey = path.join(dir, "host_ed25519");
  const clientKey = path.join(dir, "client_ed25519");
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "tdtest-host", "-f", hostKey]);
  await run("ssh-keygen", [
    "-q",
    "-t",
    "ed25519",
    "-N",
    "",
    "-C",
    "tdtest-client",
    "-f",
    clientKey,
  ]);
  const authorizedKeys = path.join(dir, "authorized_keys");
  fs.copyFileSync(`${clientKey}.pub`, authorizedKeys);
  fs.chmodSync(authorizedKeys, 0o644);
  // sshd refuses to start without its privilege separation directory.
  fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });

  const hostPublicKey = fs
    .readFileSync(`${hostKey}.pub`, "utf8")
    .trim()
    .split(/\s+/)
    .slice(0, 2)
    .join(" ");
  const privateKey = fs.readFileSync(clientKey, "utf8");

  // A free port can be taken between our probe and sshd's bind: retry a few times.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = path.join(dir, "sshd_config");
    fs.writeFileSync(
      config,
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${hostKey}`,
        `PidFile ${path.join(dir, "sshd.pid")}`,
        `AuthorizedKeysFile ${authorizedKeys}`,
        // The scratch dir lives under the world-writable /tmp, which StrictModes rejects.
        "StrictModes no",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        `AllowUsers ${DEPLOY_USER}`,
        "PermitRootLogin no",
        "X11Forwarding no",
        "PrintMotd no",
        "LogLevel ERROR",
        "",
      ].join("\n"),
    );
    const knownHostsPath = path.join(dir, "known_hosts");
    fs.writeFileSync(knownHostsPath, `[127.0.0.1]:${port} ${hostPublicKey}\n`);
    const child = spawn(sshd, ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    child.stderr?.on("data", (c: Buffer) => (log += c.toString()));
    sshdProcess = child;
    // Never keep the test process alive: it is stopped by stopSshd() or at exit.
    child.unref();
    (child.stderr as net.Socket | null)?.unref();
    const info: SshServer = {
      host: "127.0.0.1",
      port,
      user: DEPLOY_USER,
      uid,
      gid,
      home,
      privateKeyPath: clientKey,
      privateKey,
      hostPublicKey,
      knownHostsPath,
    };
    // Ready when a real login works (bounded).
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && child.exitCode === null) {
      const probe = await sshRun(info, "true", "", { timeoutMs: 5000 });
      if (probe.code === 0) return info;
      await sleep(200);
    }
    child.kill("SIGKILL");
    if (attempt >= 3) throw new Error(`sshd did not come up on 127.0.0.1:${port}:\n${log}`);
  }
}

/** Stops the sshd this process started and removes its keys; ensureSshd starts a new one. */
export function stopSshd(): void {
  sshdProcess?.kill("SIGTERM");
  sshdProcess = undefined;
  if (scratch) removeTree(scratch);
  scratch = undefined;
  server = undefined;
}

/** Creates the deploy user if needed (uid 1500, or whatever useradd picks if taken). */
async function ensureDeployUser(): Promise<{ uid: number; gid: number; home: string }> {
  const existing = await run("id", ["-u", DEPLOY_USER], { check: false });
  if (existing.code !== 0) {
    const uidTaken =
      (await run("getent", ["passwd", String(DEPLOY_UID)], { check: false })).code === 0;
    // Password field "*": no password login, but not "locked" ("!"), which sshd refuses
    // even for key logins when PAM is off.
    await run("useradd", [
      "--create-home",
      "--shell",
      "/bin/bash",
      "--password",
      "*",
      ...(uidTaken ? [] : ["--uid", String(DEPLOY_UID)]),
      DEPLOY_USER,
    ]);
  } else {
    await run("usermod", ["--password", "*", DEPLOY_USER]);
  }
  const uid = Number((await run("id", ["-u", DEPLOY_USER])).stdout.trim());
  const gid = Number((await run("id", ["-g", DEPLOY_USER])).stdout.trim());
  if (uid === 10001)
    throw new Error(`${DEPLOY_USER} has uid 10001, the container's uid: pick another`);
  const home = (await run("getent", ["passwd", DEPLOY_USER])).stdout.trim().split(":")[5];
  return { uid, gid, home };
}

/**
 * Runs `command` on the server as the deploy user, as remote.Command does: one SSH exec request
 * carrying the command string (the login shell runs it), `stdin` piped, host key verified,
 * no TTY, no agent, no user ssh config. Never throws on a non-zero exit.
 */
export function sshRun(
  server: SshServer,
  command: string,
  stdin: string,
  opts: { timeoutMs?: number } = {},
): Promise<RunResult> {
  const args = [
    "-F",
    "/dev/null",
    "-T",
    "-p",
    String(server.port),
    "-i",
    server.privateKeyPath,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    `UserKnownHostsFile=${server.knownHostsPath}`,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "LogLevel=ERROR",
    `${server.user}@${server.host}`,
    "--",
    command,
  ];
  return start("ssh", args, { input: stdin, timeoutMs: opts.timeoutMs ?? 180_000 }).result;
}

/**
 * Installs a file for the deploy user (owned by it, given mode), e.g. a deploy key and a
 * known_hosts for git over SSH. Returns its path under the user's ~/.ssh.
 */
export function installForDeployUser(
  server: SshServer,
  name: string,
  content: string,
  mode = 0o600,
): string {
  const dir = path.join(server.home, ".ssh");
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chownSync(dir, server.uid, server.gid);
  const file = path.join(dir, name);
  fs.writeFileSync(file, content, { mode });
  fs.chmodSync(file, mode);
  fs.chownSync(file, server.uid, server.gid);
  return file;
}
