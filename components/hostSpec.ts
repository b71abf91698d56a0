/**
 * Hosts as the stack config gives them, in either form (pure: no Pulumi, no I/O):
 *
 *     touchdeploy:hosts:
 *       - name: web1                         # structured (`pulumi config set --path`)
 *         ssh: deploy@10.0.0.11:22
 *         hostKey: ssh-ed25519 AAAAC3Nz...
 *         port: 8000
 *         root: /srv/touchdeploy/shop
 *         bind: 0.0.0.0
 *       - web2 ssh://deploy@10.0.0.12 port=8000   # the one-line shorthand
 *       - local local
 *
 * Both become a {@link HostEntry}; problems carry the field they are about, so an error names
 * `touchdeploy:hosts[1].hostKey`.
 */
import { rootProblem } from "./contract";

/** Where a host's commands run and its Docker daemon lives (an IPv6 address without brackets). */
export type HostTarget =
  { kind: "local" } | { kind: "ssh"; user: string; address: string; port: number };

/** One host entry after parsing, before the stack-wide defaults are applied. */
export interface HostEntry {
  name: string;
  target: HostTarget;
  /** `TYPE BASE64` of an ssh host's key, if given in the entry. */
  hostKey?: string;
  /** The published port on the host, if given. */
  port?: number;
  /** The app root on the host, if given. */
  root?: string;
  /** The address the port is published on, if given. */
  bindAddress?: string;
}

/** A problem with one field of an entry (`field` undefined: the entry as a whole). */
export interface EntryProblem {
  field?: string;
  message: string;
}

/** A parse result: the value, or every problem found. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; problems: EntryProblem[] };

/** Host names become container names, resource names and `pulumi preview` rows. */
export const HOST_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

const SSH_TARGET_PATTERN =
  /^(?:ssh:\/\/)?([a-z_][a-z0-9_.-]{0,31})@([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(\d+))?$/;
/** A dotted IPv4 address, each part 0-255. */
export const IPV4_PATTERN = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/**
 * Host key types the SSH connections can verify. RSA is left out on purpose: pulumi-command
 * offers exactly the host key's own type as the only host key algorithm (`ssh-rsa`, i.e. SHA-1,
 * for an RSA key: provider/pkg/provider/remote/connection.go `SSHConfig`, `hostKeyAlgorithms =
 * []string{publicKey.Type()}` at v1.2.1), which OpenSSH 8.8 and later servers refuse.
 */
export const HOST_KEY_TYPES = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
] as const;

/** Key types a git server's known_hosts line may have (verified by OpenSSH, which does rsa-sha2). */
const KNOWN_HOSTS_KEY_TYPES = new Set<string>([...HOST_KEY_TYPES, "ssh-rsa"]);

const show = (v: unknown) => JSON.stringify(v);

/** Parses a TCP port written as a number or a decimal string. */
export function parsePort(value: unknown): number | undefined {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
}

/** Problems with `TYPE BASE64` as a host's key (for the SSH connections). */
export function hostKeyProblems(hostKey: string): string[] {
  const [keyType = "", key = "", ...rest] = hostKey.trim().split(/\s+/);
  if (keyType === "ssh-rsa") {
    return [
      "RSA host keys cannot be verified by the SSH connections (pulumi-command offers only ssh-rsa/SHA-1, " +
        "which OpenSSH 8.8+ refuses): use the host's ed25519 or ecdsa key (ssh-keyscan -t ed25519 HOST)",
    ];
  }
  return publicKeyProblems(keyType, key, HOST_KEY_TYPES, rest.length);
}

function publicKeyProblems(
  keyType: string,
  key: string,
  types: Iterable<string>,
  extraWords = 0,
): string[] {
  const problems: string[] = [];
  const allowed = new Set(types);
  if (!allowed.has(keyType)) {
    problems.push(`key type ${show(keyType)} is not one of ${[...allowed].join(", ")}`);
  }
  if (!/^[A-Za-z0-9+/]{16,}={0,3}$/.test(key)) {
    problems.push(`the key is not base64 (got ${show(key.slice(0, 24))})`);
  }
  if (extraWords > 1) {
    problems.push("expected `KEYTYPE BASE64` (at most a comment after it)");
  }
  return problems;
}

function parseTarget(target: string): HostTarget | undefined {
  if (target === "local") return { kind: "local" };
  const m = SSH_TARGET_PATTERN.exec(target);
  const port = m ? parsePort(m[3] ?? "22") : undefined;
  // An IPv6 address is written in brackets and kept without them, as the SSH connections and
  // known_hosts take it (hostDeployment.ts puts them back in URLs).
  return m && port !== undefined
    ? { kind: "ssh", user: m[1], address: m[2].replace(/^\[(.*)\]$/, "$1"), port }
    : undefined;
}

/**
 * Parses one `touchdeploy:hosts` entry: the one-line shorthand
 * `NAME TARGET [port=N] [root=/abs] [bind=IPv4]` or a structured object
 * `{name, ssh?, hostKey?, port?, root?, bind?}` (no `ssh`: the local machine).
 */
export function parseHostEntry(entry: unknown): Parsed<HostEntry> {
  if (typeof entry === "string") return parseShorthand(entry);
  if (typeof entry === "object" && entry !== null && !Array.isArray(entry)) {
    return parseStructured(entry as Record<string, unknown>);
  }
  return {
    ok: false,
    problems: [
      {
        message: `must be an object {name, ssh, hostKey, port, root, bind} or a string, got ${show(entry)}`,
      },
    ],
  };
}

const STRUCTURED_FIELDS = ["name", "ssh", "hostKey", "port", "root", "bind"];

function parseStructured(entry: Record<string, unknown>): Parsed<HostEntry> {
  const problems: EntryProblem[] = [];
  const problem = (field: string, message: string) => problems.push({ field, message });
  for (const field of Object.keys(entry)) {
    if (!STRUCTURED_FIELDS.includes(field)) {
      problem(field, `unknown field (known: ${STRUCTURED_FIELDS.join(", ")})`);
    }
  }
  const name = entry.name;
  if (typeof name !== "string" || !HOST_NAME_PATTERN.test(name)) {
    problem(
      "name",
      `${show(name)} must be 1-32 lowercase letters, digits or '-' (not at the ends)`,
    );
  }
  let target: HostTarget = { kind: "local" };
  if (entry.ssh !== undefined) {
    const parsed = typeof entry.ssh === "string" ? parseTarget(entry.ssh) : undefined;
    if (!parsed || parsed.kind !== "ssh") {
      problem("ssh", `${show(entry.ssh)} must be "USER@ADDRESS[:PORT]"`);
    } else {
      target = parsed;
    }
  }
  const host: HostEntry = { name: typeof name === "string" ? name : "", target };
  if (entry.hostKey !== undefined) {
    if (typeof entry.hostKey !== "string") {
      problem("hostKey", `must be a string "KEYTYPE BASE64", got ${show(entry.hostKey)}`);
    } else {
      hostKeyProblems(entry.hostKey).forEach((m) => problem("hostKey", m));
      const [keyType = "", key = ""] = entry.hostKey.trim().split(/\s+/);
      host.hostKey = `${keyType} ${key}`;
    }
    if (entry.ssh === undefined) problem("hostKey", "is only used with `ssh`");
  }
  if (entry.port !== undefined) {
    host.port = parsePort(entry.port);
    if (host.port === undefined) problem("port", `${show(entry.port)} is not a TCP port (1-65535)`);
  }
  if (entry.root !== undefined) {
    const why = typeof entry.root === "string" ? rootProblem(entry.root) : "must be a string";
    if (why) problem("root", `${show(entry.root)} ${why}`);
    host.root = typeof entry.root === "string" ? entry.root.replace(/(.)\/+$/, "$1") : undefined;
  }
  if (entry.bind !== undefined) {
    if (typeof entry.bind !== "string" || !IPV4_PATTERN.test(entry.bind)) {
      problem("bind", `${show(entry.bind)} must be an IPv4 address such as 0.0.0.0`);
    } else {
      host.bindAddress = entry.bind;
    }
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value: host };
}

function parseShorthand(line: string): Parsed<HostEntry> {
  const [name = "", target = "", ...options] = line.trim().split(/\s+/);
  const messages: string[] = [];
  if (!HOST_NAME_PATTERN.test(name)) {
    messages.push(
      `host name ${show(name)} must be 1-32 lowercase letters, digits or '-' (not at the ends)`,
    );
  }
  const parsedTarget =
    target.startsWith("ssh://") || target === "local" ? parseTarget(target) : undefined;
  if (!parsedTarget) {
    messages.push(`target ${show(target)} must be "local" or "ssh://USER@ADDRESS[:PORT]"`);
  }
  const host: HostEntry = { name, target: parsedTarget ?? { kind: "local" } };
  const seen = new Set<string>();
  for (const option of options) {
    const eq = option.indexOf("=");
    const key = eq > 0 ? option.slice(0, eq) : option;
    const value = eq > 0 ? option.slice(eq + 1) : "";
    if (seen.has(key)) {
      messages.push(`option ${show(key)} is given twice`);
      continue;
    }
    seen.add(key);
    switch (key) {
      case "port":
        host.port = parsePort(value);
        if (host.port === undefined) {
          messages.push(`port=${show(value)} is not a TCP port (1-65535)`);
        }
        break;
      case "root": {
        const why = rootProblem(value);
        if (why) messages.push(`root=${show(value)} ${why}`);
        host.root = value.replace(/(.)\/+$/, "$1");
        break;
      }
      case "bind":
        if (!IPV4_PATTERN.test(value)) {
          messages.push(`bind=${show(value)} must be an IPv4 address such as 0.0.0.0`);
        }
        host.bindAddress = value;
        break;
      default:
        messages.push(
          `unknown option ${show(option)} (known: port=N, root=/absolute/path, bind=IPv4)`,
        );
    }
  }
  return messages.length > 0
    ? { ok: false, problems: messages.map((m) => ({ message: `${show(line)}: ${m}` })) }
    : { ok: true, value: host };
}

/** A host key of the deprecated `touchdeploy:hostKeys` list. */
export interface HostKey {
  hostName: string;
  /** `TYPE BASE64`, e.g. `ssh-ed25519 AAAAC3Nz...`. */
  publicKey: string;
}

/** Parses one deprecated `touchdeploy:hostKeys` entry: `HOSTNAME KEYTYPE BASE64 [comment]`. */
export function parseHostKey(entry: string): Parsed<HostKey> {
  const [hostName = "", keyType = "", key = ""] = entry.trim().split(/\s+/);
  const messages: string[] = [];
  if (!HOST_NAME_PATTERN.test(hostName)) {
    messages.push(`${show(hostName)} is not a host name from touchdeploy:hosts`);
  }
  messages.push(...hostKeyProblems(`${keyType} ${key}`));
  return messages.length > 0
    ? { ok: false, problems: messages.map((m) => ({ message: `${show(entry)}: ${m}` })) }
    : { ok: true, value: { hostName, publicKey: `${keyType} ${key}` } };
}

/**
 * Checks one known_hosts line (`HOSTS KEYTYPE BASE64`, HOSTS a comma-separated list of names,
 * addresses or `[host]:port`) and returns it normalized to those three fields.
 */
export function parseKnownHostsLine(line: string): Parsed<string> {
  const [hosts = "", keyType = "", key = ""] = line.trim().split(/\s+/);
  const messages = publicKeyProblems(keyType, key, KNOWN_HOSTS_KEY_TYPES);
  if (!/^[A-Za-z0-9.\-[\]:,*]+$/.test(hosts)) {
    messages.unshift(`${show(hosts)} is not a known_hosts host pattern`);
  }
  return messages.length > 0
    ? { ok: false, problems: messages.map((m) => ({ message: `${show(line)}: ${m}` })) }
    : { ok: true, value: `${hosts} ${keyType} ${key}` };
}
