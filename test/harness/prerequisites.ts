/**
 * Whether an end-to-end test can run here, and what to do when it can't.
 *
 * The e2e tests need real parts (dockerd, sshd, git, debootstrap, ...). A part counts as present
 * only when it works: the Docker daemon answers (or can be started), each tool runs, sshd
 * accepts a configuration. On a developer machine a missing or broken part skips the test and
 * names what is wrong; in CI (`TOUCHDEPLOY_E2E=required`, or 1/true/yes) it fails instead, so a
 * green CI always means the tests ran. The Automation API test has its own switch,
 * `TOUCHDEPLOY_PULUMI`, since CI machines cannot install the pulumi CLI.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** A part an e2e test needs. Tools are looked up on PATH and in the sbin directories. */
export type Prerequisite =
  | "docker"
  | "debootstrap"
  | "git"
  | "bash"
  | "curl"
  | "flock"
  | "sshd"
  | "shellcheck"
  | "root"
  | "pulumi";

interface Check {
  /** Why it is missing or does not work, or undefined when it works. */
  missing(): string | undefined;
}

const SBIN_DIRS = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/** The absolute path of an executable on PATH (or in an sbin directory), or undefined. */
export function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(path.delimiter), ...SBIN_DIRS];
  for (const dir of dirs) {
    if (dir === "") continue;
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The first line of what a failed process said, for a reason. */
function firstLine(r: ReturnType<typeof spawnSync>): string {
  const text = `${String(r.stderr ?? "")}\n${String(r.stdout ?? "")}`.trim();
  if (r.error) return r.error.message;
  if (r.signal) return `killed by ${r.signal}`;
  return text.split("\n")[0] || `exit ${String(r.status)}`;
}

/** Runs `file args` (bounded); undefined when it exits 0, else why not. */
function runs(file: string, args: readonly string[], timeoutMs = 15_000): string | undefined {
  const r = spawnSync(file, args, { encoding: "utf8", timeout: timeoutMs });
  return r.status === 0 ? undefined : firstLine(r);
}

/** A tool that must be installed and answer `versionArgs` with exit 0. */
function tool(name: string, debianPackage: string, versionArgs = ["--version"]): Check {
  return {
    missing() {
      const file = findExecutable(name);
      if (!file) return `${name} (apt-get install ${debianPackage})`;
      const why = runs(file, versionArgs);
      return why && `${name} is installed but \`${name} ${versionArgs.join(" ")}\` fails: ${why}`;
    },
  };
}

function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/** GET /_ping on the daemon DOCKER_HOST (or the default socket) names, in a child process. */
function dockerAnswers(): string | undefined {
  const script = `
    const http = require("node:http");
    const host = process.env.DOCKER_HOST || "unix:///var/run/docker.sock";
    const target = host.startsWith("unix://")
      ? { socketPath: host.slice("unix://".length) }
      : { host: new URL(host.replace(/^tcp:/, "http:")).hostname,
          port: new URL(host.replace(/^tcp:/, "http:")).port };
    http.get({ ...target, path: "/_ping", timeout: 5000 }, (res) => {
      process.exit(res.statusCode === 200 ? 0 : 2);
    }).on("error", (e) => { console.error(e.message); process.exit(1); })
      .on("timeout", () => { console.error("no answer within 5 s"); process.exit(1); });`;
  return runs(process.execPath, ["-e", script], 10_000);
}

const CHECKS: Record<Prerequisite, Check> = {
  // A daemon that answers, or one the tests can start (as they would: ensureDocker()).
  docker: {
    missing() {
      const why = dockerAnswers();
      if (!why) return undefined;
      if (process.env.DOCKER_HOST) {
        return `a Docker engine at DOCKER_HOST=${process.env.DOCKER_HOST} (${why})`;
      }
      if (!findExecutable("dockerd")) return "dockerd (apt-get install docker.io)";
      if (!isRoot()) {
        return "a running Docker daemon (dockerd is installed but only root can start it)";
      }
      const start = `require(${JSON.stringify(path.join(__dirname, "docker.ts"))})
        .ensureDocker().then((d) => d.info())
        .then(() => process.exit(0), (e) => { console.error(e.message); process.exit(1); });`;
      const failed = runs(process.execPath, ["--import", "tsx", "-e", start], 90_000);
      return failed && `a Docker daemon: dockerd is installed but did not start: ${failed}`;
    },
  },
  debootstrap: tool("debootstrap", "debootstrap"),
  git: tool("git", "git"),
  bash: tool("bash", "bash"),
  curl: tool("curl", "curl"),
  flock: tool("flock", "util-linux"),
  // sshd must load a configuration with a fresh host key (`sshd -t`), as the tests' sshd does.
  sshd: {
    missing() {
      for (const [name, pkg] of [
        ["sshd", "openssh-server"],
        ["ssh", "openssh-client"],
        ["ssh-keygen", "openssh-client"],
        ["useradd", "passwd"],
      ]) {
        if (!findExecutable(name)) return `${name} (apt-get install ${pkg})`;
      }
      if (!isRoot()) return "root (to create the deploy user and start sshd)";
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tdtest-sshd-check-"));
      try {
        const key = path.join(dir, "host_ed25519");
        const keygen = runs("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
        if (keygen) return `ssh-keygen fails: ${keygen}`;
        const config = path.join(dir, "sshd_config");
        fs.writeFileSync(config, `HostKey ${key}\nListenAddress 127.0.0.1\nUsePAM no\n`);
        // sshd refuses to run without its privilege separation directory (the tests make it).
        fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
        const test = runs(findExecutable("sshd")!, ["-t", "-f", config]);
        return test && `sshd is installed but \`sshd -t\` fails: ${test}`;
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  },
  shellcheck: tool("shellcheck", "shellcheck"),
  root: { missing: () => (isRoot() ? undefined : "root privileges") },
  pulumi: {
    missing() {
      const file = findExecutable("pulumi");
      if (!file) {
        return "the pulumi CLI (a downloaded binary: https://www.pulumi.com/docs/install/)";
      }
      const why = runs(file, ["version"], 30_000);
      return why && `pulumi is installed but \`pulumi version\` fails: ${why}`;
    },
  },
};

const cache = new Map<Prerequisite, string | undefined>();

/** What is missing or broken among `needs`, as readable items (checked once per process). */
export function missingPrerequisites(needs: readonly Prerequisite[]): string[] {
  return needs
    .map((n) => {
      if (!cache.has(n)) cache.set(n, CHECKS[n].missing());
      return cache.get(n);
    })
    .filter((m): m is string => m !== undefined);
}

/** True when `variable` holds one of the usual true values: required, 1, true, yes (any case). */
export function isRequired(variable: string): boolean {
  return /^(required|1|true|yes)$/i.test((process.env[variable] ?? "").trim());
}

/** True when CI asked for the e2e tests to run for sure (`TOUCHDEPLOY_E2E=required`). */
export function e2eRequired(): boolean {
  return isRequired("TOUCHDEPLOY_E2E");
}

/**
 * Test options for `describe`/`test`: `{}` when everything needed works, `{ skip: reason }`
 * otherwise, and a thrown Error naming what is missing when `variable` (default
 * TOUCHDEPLOY_E2E) says the test is required.
 *
 * ```ts
 * describe("deploys", e2eGate(["docker", "debootstrap", "git"]), () => { ... });
 * ```
 */
export function e2eGate(
  needs: readonly Prerequisite[],
  variable = "TOUCHDEPLOY_E2E",
): { skip?: string } {
  const missing = missingPrerequisites(needs);
  if (missing.length === 0) return {};
  const reason = `missing: ${missing.join(", ")}`;
  if (isRequired(variable)) {
    throw new Error(
      `${variable}=${process.env[variable]} but this end-to-end test cannot run: ${reason}`,
    );
  }
  return { skip: reason };
}
