/**
 * The container hardening the program declares (components/containerArgs.ts
 * `containerHardening`), as Engine API HostConfig: one translation for the realizer
 * (realize.ts), the e2e tests' containers (app.ts) and the benchmark's (bench/lib/containers.ts),
 * so every test container runs exactly as hardened as a deployed one, with the config's default
 * limits. The translation is the provider's Create (terraform-provider-docker v4.5.0
 * resource_docker_container_funcs.go `resourceDockerContainerCreate`): memory and swap in MB
 * times 1 MiB (swap as is when <= 0), each only when non-zero (`d.GetOk`); cpus through
 * ParseCPUs (times 1e9); capabilities, security_opts, tmpfs and ulimits as given.
 */
import type Docker from "dockerode";
import { checkKeys } from "../../components/config/schema";
import { containerHardening } from "../../components/containerArgs";
import { cpusNano } from "../../components/containerLimits";

/** The declared hardening inputs (a subset of a docker.Container's arguments). */
export interface DeclaredHardening {
  readOnly?: boolean;
  tmpfs?: Record<string, string>;
  capabilities?: { adds?: string[]; drops?: string[] };
  securityOpts?: string[];
  ulimits?: { name: string; soft: number; hard: number }[];
  memory?: number;
  memorySwap?: number;
  cpus?: string;
}

export const HARDENING_INPUTS = [
  "readOnly",
  "tmpfs",
  "capabilities",
  "securityOpts",
  "ulimits",
  "memory",
  "memorySwap",
  "cpus",
] as const;

const MIB = 1024 * 1024;

/** The HostConfig fields of declared hardening inputs. */
export function hardeningHostConfig(h: DeclaredHardening): Docker.HostConfig {
  const out: Docker.HostConfig = {};
  if (h.readOnly) out.ReadonlyRootfs = true;
  if (h.tmpfs && Object.keys(h.tmpfs).length > 0) out.Tmpfs = { ...h.tmpfs };
  if (h.capabilities) {
    out.CapAdd = h.capabilities.adds ?? [];
    out.CapDrop = h.capabilities.drops ?? [];
  }
  if (h.securityOpts && h.securityOpts.length > 0) out.SecurityOpt = [...h.securityOpts];
  if (h.ulimits && h.ulimits.length > 0) {
    out.Ulimits = h.ulimits.map((u) => ({ Name: u.name, Soft: u.soft, Hard: u.hard }));
  }
  if (h.memory) out.Memory = h.memory * MIB;
  if (h.memorySwap) out.MemorySwap = h.memorySwap > 0 ? h.memorySwap * MIB : h.memorySwap;
  if (h.cpus) {
    const nano = cpusNano(h.cpus);
    if (nano === undefined) throw new Error(`cpus ${JSON.stringify(h.cpus)} does not parse`);
    out.NanoCpus = Number(nano);
  }
  return out;
}

/** The config's default limits (`touchdeploy:memory`, `touchdeploy:cpus` unset). */
export function defaultLimits() {
  const { values } = checkKeys({});
  return { memoryMb: values.memory, cpus: values.cpus };
}

/** The HostConfig of a container hardened as the program declares it by default. */
export function defaultHardeningHostConfig(): Docker.HostConfig {
  return hardeningHostConfig(containerHardening(defaultLimits()));
}
