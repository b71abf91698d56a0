/**
 * Whether an end-to-end test can run here, and what to do when it can't.
 *
 * The e2e tests need real parts (dockerd, sshd, git, debootstrap, ...). On a developer machine
 * a missing part skips the test and names what is missing; in CI
 * (`TOUCHDEPLOY_E2E=required`) it fails instead, so a green CI always means the tests ran.
 */
import * as fs from "node:fs";
import * as path from "node:path";

/** A part an e2e test needs. Tools are checked on PATH and in the sbin directories. */
export type Prerequisite =
  "docker" | "debootstrap" | "git" | "bash" | "curl" | "flock" | "sshd" | "shellcheck" | "root";

interface Check {
  /** Returns why it is missing, or undefined when present. */
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

function tool(name: string, debianPackage: string): Check {
  return {
    missing: () =>
      findExecutable(name) ? undefined : `${name} (apt-get install ${debianPackage})`,
  };
}

function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

const DOCKER_SOCKET = "/var/run/docker.sock";

const CHECKS: Record<Prerequisite, Check> = {
  // A running daemon we can reach, or one we can start (root + dockerd installed).
  docker: {
    missing() {
      let reachable = false;
      try {
        fs.accessSync(DOCKER_SOCKET, fs.constants.R_OK | fs.constants.W_OK);
        reachable = true;
      } catch {
        // not running, or not ours
      }
      if (reachable || process.env.DOCKER_HOST) return undefined;
      if (!findExecutable("dockerd")) return "dockerd (apt-get install docker.io)";
      if (!isRoot())
        return "a running Docker daemon (dockerd is installed but only root can start it)";
      return undefined;
    },
  },
  debootstrap: tool("debootstrap", "debootstrap"),
  git: tool("git", "git"),
  bash: tool("bash", "bash"),
  curl: tool("curl", "curl"),
  flock: tool("flock", "util-linux"),
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
      return isRoot() ? undefined : "root (to create the deploy user and start sshd)";
    },
  },
  shellcheck: tool("shellcheck", "shellcheck"),
  root: { missing: () => (isRoot() ? undefined : "root privileges") },
};

/** True when CI asked for the e2e tests to run for sure (`TOUCHDEPLOY_E2E=required`). */
export function e2eRequired(): boolean {
  return process.env.TOUCHDEPLOY_E2E === "required";
}

/** What is missing among `needs`, as readable items ("dockerd (apt-get install docker.io)"). */
export function missingPrerequisites(needs: readonly Prerequisite[]): string[] {
  return needs.map((n) => CHECKS[n].missing()).filter((m): m is string => m !== undefined);
}

/**
 * Test options for `describe`/`test`: `{}` when everything needed is here, `{ skip: reason }`
 * when something is missing, and a thrown Error naming it when `TOUCHDEPLOY_E2E=required`.
 *
 * ```ts
 * describe("deploys", e2eGate(["docker", "debootstrap", "git"]), () => { ... });
 * ```
 */
export function e2eGate(needs: readonly Prerequisite[]): { skip?: string } {
  const missing = missingPrerequisites(needs);
  if (missing.length === 0) return {};
  const reason = `missing: ${missing.join(", ")}`;
  if (e2eRequired()) {
    throw new Error(`TOUCHDEPLOY_E2E=required but this end-to-end test cannot run: ${reason}`);
  }
  return { skip: reason };
}
