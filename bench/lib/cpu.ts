/**
 * Where the machine's CPU goes while code deploys run: the whole machine (/proc/stat), the
 * runtime containers (their cgroups: uWSGI master re-exec + app import, workers, supervisord),
 * Docker's own processes (dockerd, containerd, the shims, docker-proxy: every health probe
 * and request to a published port passes through a docker-proxy) and this benchmark process.
 * What remains is mostly the host scripts and their children (bash, git, curl, date, tar, ...)
 * plus the kernel's work outside those processes and anything else running on the machine.
 */
import * as fs from "node:fs";

/** Jiffies (1/100 s) of all CPUs together, from /proc/stat. */
export function cpuTimes(): { busy: number; total: number; steal: number } {
  const line = fs.readFileSync("/proc/stat", "utf8").split("\n")[0];
  // user nice system idle iowait irq softirq steal (guest, guest_nice are inside user/nice)
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total, steal: v[7] ?? 0 };
}

const CGROUP_FILES = [
  // cgroup v1 (cgroupfs driver), nanoseconds
  (id: string) => ({ file: `/sys/fs/cgroup/cpuacct/docker/${id}/cpuacct.usage`, ns: 1 }),
  (id: string) => ({ file: `/sys/fs/cgroup/cpu,cpuacct/docker/${id}/cpuacct.usage`, ns: 1 }),
  // cgroup v2, usage_usec in cpu.stat
  (id: string) => ({ file: `/sys/fs/cgroup/system.slice/docker-${id}.scope/cpu.stat`, ns: 1000 }),
  (id: string) => ({ file: `/sys/fs/cgroup/docker/${id}/cpu.stat`, ns: 1000 }),
];

/** CPU seconds a container has used so far (undefined when its cgroup is not found). */
export function containerCpuSeconds(id: string): number | undefined {
  for (const candidate of CGROUP_FILES) {
    const { file, ns } = candidate(id);
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch {
      continue;
    }
    const value = ns === 1 ? Number(text.trim()) : Number(/^usage_usec (\d+)$/m.exec(text)?.[1]);
    if (Number.isFinite(value)) return (value * ns) / 1e9;
  }
  return undefined;
}

const DOCKER_COMMS = new Set(["dockerd", "containerd", "containerd-shim", "docker-proxy"]);
const TICKS = 100;

/** CPU seconds used so far by Docker's own processes that are running now. */
export function dockerCpuSeconds(): number {
  let ticks = 0;
  for (const pid of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue;
    }
    const open = stat.indexOf("(");
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(open + 1, close);
    if (!DOCKER_COMMS.has(comm) && !comm.startsWith("containerd-shim")) continue;
    const fields = stat
      .slice(close + 2)
      .split(" ")
      .map(Number);
    // fields[0] is field 3 (state): utime and stime are fields 14 and 15.
    ticks += (fields[11] ?? 0) + (fields[12] ?? 0);
  }
  return ticks / TICKS;
}

export interface CpuSample {
  machine: { busy: number; total: number; steal: number };
  containers: number;
  docker: number;
  bench: number;
  at: number;
}

export interface CpuBreakdown {
  /** Wall-clock seconds of the interval. */
  seconds: number;
  /** Busy share of all cores (0..1). */
  busy: number;
  /** CPU seconds used by the whole machine. */
  cpuSeconds: number;
  /** ... of which by the runtime containers (uWSGI, supervisord). */
  containers: number;
  /** ... by dockerd, containerd, the shims and docker-proxy. */
  docker: number;
  /** ... by this benchmark's own Node process. */
  bench: number;
  /** ... the rest: mostly the host scripts and their children (bash, git, curl, date, ...). */
  rest: number;
  /** CPU seconds stolen by the hypervisor (counted as busy above). */
  steal: number;
}

/** A snapshot to compare with a later one (`containerIds`: the runtime containers to count). */
export function cpuSample(containerIds: readonly string[]): CpuSample {
  const u = process.cpuUsage();
  return {
    machine: cpuTimes(),
    containers: containerIds.reduce((a, id) => a + (containerCpuSeconds(id) ?? NaN), 0),
    docker: dockerCpuSeconds(),
    bench: (u.user + u.system) / 1e6,
    at: Date.now(),
  };
}

export function cpuBetween(a: CpuSample, b: CpuSample): CpuBreakdown {
  const busyJ = b.machine.busy - a.machine.busy;
  const cpuSeconds = busyJ / TICKS;
  const containers = b.containers - a.containers;
  const docker = b.docker - a.docker;
  const bench = b.bench - a.bench;
  return {
    seconds: (b.at - a.at) / 1000,
    busy: busyJ / Math.max(1, b.machine.total - a.machine.total),
    cpuSeconds,
    containers,
    docker,
    bench,
    rest: cpuSeconds - containers - docker - bench,
    steal: (b.machine.steal - a.machine.steal) / TICKS,
  };
}
