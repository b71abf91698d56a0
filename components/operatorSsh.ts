/**
 * The Docker provider's SSH connection to a host. The provider runs the operator's `ssh` binary
 * (kreuzwerker/terraform-provider-docker v4.5.0 internal/provider/config.go →
 * docker/cli connhelper.GetConnectionHelperWithSSHOpts with the provider's `sshOpts`), which on
 * its own would log in with the operator's ssh-agent and known_hosts. So it gets the stack's
 * own key and host key, as files on the operator's machine: OpenSSH reads keys and known hosts
 * only from files (`KnownHostsCommand` would avoid one, but needs OpenSSH 8.5+).
 *
 * The files live under a fixed path per project, stack and host (~/.touchdeploy/ssh/...), not in
 * a temporary directory: the provider's configuration (these paths) is stored in the state, and
 * `pulumi destroy` and `pulumi refresh` configure the provider from the state without running
 * the program, so the files must still be there. On a machine that never ran `pulumi up` for the
 * stack, run them with `--run-program` (pulumi/pulumi v3.248.0 pkg/cmd/pulumi/operations/
 * destroy.go and refresh.go, flag "run-program"), which writes the files first.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/** Where a host's key and known_hosts files live on the operator's machine. */
export function operatorSshDir(project: string, stack: string, host: string): string {
  return path.join(os.homedir(), ".touchdeploy", "ssh", `${project}.${stack}.${host}`);
}

export interface OperatorSshFiles {
  dir: string;
  key: string;
  knownHosts: string;
}

export function operatorSshFiles(dir: string): OperatorSshFiles {
  return { dir, key: path.join(dir, "id"), knownHosts: path.join(dir, "known_hosts") };
}

/** A known_hosts line for a host key: `ADDRESS TYPE BASE64`, `[ADDRESS]:PORT` unless port 22. */
export function knownHostsLine(address: string, port: number, hostKey: string): string {
  const host = port === 22 ? address : `[${address}]:${port}`;
  return `${host} ${hostKey.trim()}\n`;
}

/** Writes the key (0600) and known_hosts in a 0700 directory, each replaced atomically. */
export function writeOperatorSshFiles(
  files: OperatorSshFiles,
  privateKey: string,
  knownHosts: string,
): void {
  fs.mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(files.dir, 0o700);
  for (const [file, content] of [
    [files.key, privateKey],
    [files.knownHosts, knownHosts],
  ]) {
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, content, { mode: 0o600 });
    fs.renameSync(tmp, file);
  }
}

/** The `ssh` options of the Docker provider for an ssh host: this key, this host key, no agent. */
export function dockerSshOpts(files: OperatorSshFiles): string[] {
  return [
    "-o",
    "BatchMode=yes",
    "-o",
    "IdentitiesOnly=yes",
    "-i",
    files.key,
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    `UserKnownHostsFile=${files.knownHosts}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
  ];
}

/**
 * The docker provider reads DOCKER_CONTEXT when its `context` is not set, and a context
 * overrides `host` (kreuzwerker/terraform-provider-docker v4.5.0 internal/provider/provider.go:
 * `"context"` has `DefaultFunc: schema.EnvDefaultFunc("DOCKER_CONTEXT", "")`, and `configure`
 * uses the context's host instead of `host`): an exported DOCKER_CONTEXT would silently send
 * every host's containers to that context's daemon. Refused before anything is declared.
 */
export function dockerContextProblem(env: NodeJS.ProcessEnv): string | undefined {
  const context = env.DOCKER_CONTEXT;
  return context
    ? `DOCKER_CONTEXT is set (${JSON.stringify(context)}): the Docker provider would send every host's ` +
        "containers to that context's daemon instead of the host's. Unset it (`unset DOCKER_CONTEXT`) " +
        "and run again."
    : undefined;
}
