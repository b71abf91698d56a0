/**
 * Parsing of the `touchdeploy:hosts` and `touchdeploy:hostKeys` entries. Pure: no Pulumi, no I/O.
 *
 * Pulumi project config can only declare strings, integers, booleans and arrays of those, so a
 * host is one string, read like a line of a hosts file:
 *
 *     web1 ssh://deploy@10.0.0.11:22 port=8000 root=/srv/touchdeploy/shop bind=0.0.0.0
 *     local local port=8000
 *
 * and a host key is a line of `known_hosts` keyed by host name: `web1 ssh-ed25519 AAAAC3Nz...`.
 */

/** Where a host's commands run and its Docker daemon lives. */
export type HostTarget =
  { kind: "local" } | { kind: "ssh"; user: string; address: string; port: number };

/** A host entry after parsing, before defaults are applied. */
export interface HostSpec {
  name: string;
  target: HostTarget;
  /** `port=`: the published port on the host, if given. */
  port?: number;
  /** `root=`: the app root on the host, if given. */
  root?: string;
  /** `bind=`: the address the port is published on, if given. */
  bindAddress?: string;
}

/** A parse result: the value, or every problem found in the entry. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; problems: string[] };

/** Host names become container names, resource names and `pulumi preview` rows. */
export const HOST_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

const SSH_TARGET_PATTERN =
  /^ssh:\/\/([a-z_][a-z0-9_.-]{0,31})@([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(\d+))?$/;
const IPV4_PATTERN = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
const HOST_KEY_TYPES = new Set([
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
]);

/** Parses a TCP port written as a number or a decimal string. */
export function parsePort(value: unknown): number | undefined {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
}

/** True for an absolute POSIX path without control characters or `..` components. */
export function isAbsoluteHostPath(value: string): boolean {
  return (
    value.startsWith("/") &&
    !/[\x00-\x1f\x7f]/.test(value) &&
    !value.split("/").some((part) => part === "..")
  );
}

/** Parses one `touchdeploy:hosts` entry. */
export function parseHostSpec(entry: string): Parsed<HostSpec> {
  const [name = "", target = "", ...options] = entry.trim().split(/\s+/);
  const problems: string[] = [];
  if (!HOST_NAME_PATTERN.test(name)) {
    problems.push(
      `host name ${JSON.stringify(name)} must be 1-32 lowercase letters, digits or '-' (not at the ends)`,
    );
  }

  let parsedTarget: HostTarget | undefined;
  if (target === "local") {
    parsedTarget = { kind: "local" };
  } else {
    const m = SSH_TARGET_PATTERN.exec(target);
    const sshPort = m ? parsePort(m[3] ?? "22") : undefined;
    if (m && sshPort !== undefined) {
      parsedTarget = { kind: "ssh", user: m[1], address: m[2], port: sshPort };
    } else {
      problems.push(
        `target ${JSON.stringify(target)} must be "local" or "ssh://USER@ADDRESS[:PORT]"`,
      );
    }
  }

  const spec: HostSpec = { name, target: parsedTarget ?? { kind: "local" } };
  const seen = new Set<string>();
  for (const option of options) {
    const eq = option.indexOf("=");
    const key = eq > 0 ? option.slice(0, eq) : option;
    const value = eq > 0 ? option.slice(eq + 1) : "";
    if (seen.has(key)) {
      problems.push(`option ${JSON.stringify(key)} is given twice`);
      continue;
    }
    seen.add(key);
    switch (key) {
      case "port": {
        const port = parsePort(value);
        if (port === undefined) {
          problems.push(`port=${JSON.stringify(value)} is not a TCP port (1-65535)`);
        }
        spec.port = port;
        break;
      }
      case "root":
        if (!isAbsoluteHostPath(value)) {
          problems.push(
            `root=${JSON.stringify(value)} must be an absolute path on the host (starting with "/", no "..")`,
          );
        }
        spec.root = value;
        break;
      case "bind":
        if (!IPV4_PATTERN.test(value)) {
          problems.push(`bind=${JSON.stringify(value)} must be an IPv4 address such as 0.0.0.0`);
        }
        spec.bindAddress = value;
        break;
      default:
        problems.push(
          `unknown option ${JSON.stringify(option)} (known: port=N, root=/absolute/path, bind=IPv4)`,
        );
    }
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value: spec };
}

/** A host key in the format `@pulumi/command` expects for `connection.hostKey`. */
export interface HostKey {
  hostName: string;
  /** `TYPE BASE64`, e.g. `ssh-ed25519 AAAAC3Nz...`. */
  publicKey: string;
}

/** Problems with an SSH public key given as `KEYTYPE BASE64`. */
function publicKeyProblems(keyType: string, key: string): string[] {
  const problems: string[] = [];
  if (!HOST_KEY_TYPES.has(keyType)) {
    problems.push(
      `key type ${JSON.stringify(keyType)} is not an SSH host key type (e.g. ssh-ed25519)`,
    );
  }
  if (!/^[A-Za-z0-9+/]{16,}={0,3}$/.test(key)) {
    problems.push(`the key is not base64 (got ${JSON.stringify(key.slice(0, 24))})`);
  }
  return problems;
}

/** Parses one `touchdeploy:hostKeys` entry: `HOSTNAME KEYTYPE BASE64 [comment]`. */
export function parseHostKey(entry: string): Parsed<HostKey> {
  const [hostName = "", keyType = "", key = ""] = entry.trim().split(/\s+/);
  const problems: string[] = [];
  if (!HOST_NAME_PATTERN.test(hostName)) {
    problems.push(`${JSON.stringify(hostName)} is not a host name from touchdeploy:hosts`);
  }
  problems.push(...publicKeyProblems(keyType, key));
  return problems.length > 0
    ? { ok: false, problems }
    : { ok: true, value: { hostName, publicKey: `${keyType} ${key}` } };
}

/**
 * Checks one known_hosts line (`HOSTS KEYTYPE BASE64`, HOSTS a comma-separated list of names,
 * addresses or `[host]:port`) and returns it normalized to those three fields.
 */
export function parseKnownHostsLine(line: string): Parsed<string> {
  const [hosts = "", keyType = "", key = ""] = line.trim().split(/\s+/);
  const problems = publicKeyProblems(keyType, key);
  if (!/^[A-Za-z0-9.\-[\]:,*]+$/.test(hosts)) {
    problems.unshift(`${JSON.stringify(hosts)} is not a known_hosts host pattern`);
  }
  return problems.length > 0
    ? { ok: false, problems }
    : { ok: true, value: `${hosts} ${keyType} ${key}` };
}
