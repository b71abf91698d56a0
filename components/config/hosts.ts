/** The hosts section: each host with the stack-wide defaults applied, and its SSH host key. */
import { rootProblem } from "../contract";
import { HostTarget, parseHostEntry, parseHostKey } from "../hostSpec";
import { SectionInput, show } from "./section";

/** A validated host. */
export interface HostConfig {
  name: string;
  target: HostTarget;
  /** `TYPE BASE64` of the host's SSH key; set for every ssh host. */
  hostKey?: string;
  root: string;
  port: number;
  bindAddress: string;
}

export function parseHosts(
  { values: v, failed, problem, warn }: SectionInput,
  appName: string,
): HostConfig[] {
  const defaultRoot = (v.root || `/srv/touchdeploy/${appName}`).replace(/(.)\/+$/, "$1");
  const whyRoot = rootProblem(defaultRoot);
  if (whyRoot) problem("root", `${show(defaultRoot)} ${whyRoot}`);

  // The deprecated list of host keys, keyed by host name.
  const listedKeys = new Map<string, string>();
  if (v.hostKeys.length > 0) {
    warn(
      "touchdeploy:hostKeys is deprecated and will be removed in the next release: " +
        "move each key into its host as touchdeploy:hosts[i].hostKey",
    );
  }
  v.hostKeys.forEach((entry, i) => {
    const parsed = parseHostKey(entry);
    if (!parsed.ok) {
      parsed.problems.forEach((p) => problem(`hostKeys[${i}]`, p.message));
    } else if (listedKeys.has(parsed.value.hostName)) {
      problem(`hostKeys[${i}]`, `a second key for host ${show(parsed.value.hostName)}`);
    } else {
      listedKeys.set(parsed.value.hostName, parsed.value.publicKey);
    }
  });

  if (v.hosts.length === 0 && !failed.has("hosts")) problem("hosts", "must list at least one host");
  const hosts: HostConfig[] = [];
  const names = new Set<string>();
  const placements = new Map<string, string>();
  v.hosts.forEach((entry, i) => {
    const parsed = parseHostEntry(entry);
    if (!parsed.ok) {
      parsed.problems.forEach((p) =>
        problem(p.field ? `hosts[${i}].${p.field}` : `hosts[${i}]`, p.message),
      );
      return;
    }
    const spec = parsed.value;
    if (names.has(spec.name)) {
      problem(`hosts[${i}]`, `host name ${show(spec.name)} is used twice`);
      return;
    }
    names.add(spec.name);
    const host: HostConfig = {
      name: spec.name,
      target: spec.target,
      root: spec.root ?? defaultRoot,
      port: spec.port ?? v.port,
      bindAddress: spec.bindAddress ?? v.bindAddress,
    };
    if (spec.target.kind === "ssh") {
      const listed = listedKeys.get(spec.name);
      if (spec.hostKey && listed) {
        problem(`hosts[${i}].hostKey`, `also given in touchdeploy:hostKeys: keep only this one`);
      }
      host.hostKey = spec.hostKey ?? listed;
      if (!host.hostKey) {
        problem(
          typeof entry === "string" ? `hosts[${i}]` : `hosts[${i}].hostKey`,
          `ssh host ${show(spec.name)} has no host key ` +
            `(set touchdeploy:hosts[${i}].hostKey to "ssh-ed25519 AAAA..." from \`ssh-keyscan -t ed25519 ${spec.target.address}\`)`,
        );
      }
    }
    // Two hosts on one machine must not share an app root or a port.
    const machine = spec.target.kind === "local" ? "local" : spec.target.address;
    for (const [what, value] of [
      ["root", host.root],
      ["port", String(host.port)],
    ]) {
      const other = placements.get(`${machine} ${what} ${value}`);
      if (other) {
        problem(
          `hosts[${i}]`,
          `host ${show(spec.name)} uses the same ${what} ${show(value)} as ${show(other)} on the same machine`,
        );
      }
      placements.set(`${machine} ${what} ${value}`, spec.name);
    }
    hosts.push(host);
  });
  for (const name of listedKeys.keys()) {
    if (!names.has(name)) {
      problem("hostKeys", `key for ${show(name)}, which is not in touchdeploy:hosts`);
    }
  }
  const sshHosts = hosts.filter((h) => h.target.kind === "ssh");
  if (sshHosts.length > 0 && !v.sshPrivateKey) {
    problem(
      "sshPrivateKey",
      `required for ssh hosts (${sshHosts.map((h) => h.name).join(", ")}): ` +
        "pulumi config set --secret touchdeploy:sshPrivateKey < ~/.ssh/deploy_key",
    );
  }
  return hosts;
}
