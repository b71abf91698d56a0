/** latest.md: the results as tables a person reads. */
import type { BenchResults, Measurement } from "./results";

const f = (x: number | null | undefined, digits = 2): string =>
  x === null || x === undefined || Number.isNaN(x) ? "–" : x.toFixed(digits);

const row = (cells: (string | number)[]): string => `| ${cells.join(" | ")} |`;

function table(header: string[], rows: (string | number)[][]): string {
  return [row(header), row(header.map(() => "---")), ...rows.map(row)].join("\n");
}

function value(m: Measurement): string[] {
  const d = m.unit === "x" ? 2 : 2;
  const u = m.unit === "x" ? "×" : " s";
  return [`${f(m.median, d)}${u}`, `${f(m.min, d)}${u}`, `${f(m.max, d)}${u}`];
}

const pct = (x: number | undefined): string =>
  x === undefined || Number.isNaN(x) ? "–" : `${Math.round(x * 100)}%`;

/** "1 (all 80)" when every deploy reloaded once, else the counts. */
function reloadsText(m: Measurement): string {
  const r = m.reloadsPerDeploy ?? [];
  if (!r.length) return "–";
  return r.every((x) => x === 1) ? `1 (all ${r.length})` : `**${r.join(" ")}**`;
}

const SHIPPED = "shipped";
const PREVIOUS = "previous";

export function renderMarkdown(r: BenchResults, chartFile: string): string {
  const by = (kind: string, variant = SHIPPED): Measurement[] =>
    r.measurements.filter((m) => m.kind === kind && m.variant === variant);
  const one = (kind: string, variant = SHIPPED, n?: number): Measurement | undefined =>
    by(kind, variant).find((m) => n === undefined || m.n === n);
  const out: string[] = [];
  out.push(`# touchdeploy benchmark (${r.mode})`);
  out.push("");
  out.push(
    `Measured ${r.date.slice(0, 10)} on ${r.machine.description} (\`npm run bench${r.mode === "smoke" ? " -- --smoke" : ""}\`, ${Math.round(r.durationSeconds / 60)} min). ` +
      "Times are from the start of a deploy to the new commit being served (HTTP 200 with " +
      "`X-Revision` = the commit); median, min and max over the runs. **shipped** = the deploy " +
      "contract in `runtime/` and `host/` as they are; **previous** = the contract before " +
      "fs-reload + wake (touch-reload, no wake module).",
  );
  out.push("");
  out.push(`![time to new code served and failed requests](${chartFile})`);
  out.push("");
  out.push("## Summary");
  out.push("");
  const main = [
    ...by("code-deploy"),
    ...by("container-deploy"),
    ...by("ratio-container-over-code"),
    ...by("code-deploy-under-load"),
    ...by("container-deploy-under-load"),
    ...by("ratio-container-over-code-under-load"),
    ...by("load-baseline"),
    ...by("scale-parallel"),
    ...by("scale-rolling"),
  ];
  out.push(
    table(
      ["Measurement", "N", "Runs", "Median", "Min", "Max", "Requests", "Failed"],
      main.map((m) => [m.label, m.n, m.runs, ...value(m), m.requests ?? "–", m.failed ?? "–"]),
    ),
  );
  out.push("");

  // ---------------------------------------------------------------- before / after
  const ba: (string | number)[][] = [];
  const range = (m: Measurement | undefined): string =>
    m ? `${f(m.median)} s (${f(m.min)}–${f(m.max)})` : "–";
  const ratio = (m: Measurement | undefined): string =>
    m ? `${f(m.median, 1)}× (${f(m.min, 1)}–${f(m.max, 1)})` : "–";
  const idlePrev = one("reload-experiment", PREVIOUS);
  const idleShip = one("reload-experiment", SHIPPED);
  if (idlePrev || idleShip) {
    ba.push([
      "1 host, idle (reload experiments, interleaved)",
      range(idlePrev),
      range(idleShip),
      ratio(one("ratio-previous-over-shipped", PREVIOUS)),
    ]);
  }
  const loadPrev = one("code-deploy-under-load", PREVIOUS);
  const loadShip = one("code-deploy-under-load", SHIPPED);
  if (loadPrev || loadShip) {
    ba.push([
      `1 host, under load (${String((r.settings.load as { connections?: number } | undefined)?.connections ?? "")} clients)`,
      range(loadPrev),
      range(loadShip),
      ratio(one("ratio-previous-over-shipped-under-load", PREVIOUS)),
    ]);
    const l = (m: Measurement | undefined, k: "p99" | "max"): string =>
      m?.load ? `${m.load.latencyMs[k]} ms` : "–";
    ba.push([
      "  request latency p99 during the deploys",
      l(loadPrev, "p99"),
      l(loadShip, "p99"),
      "",
    ]);
    ba.push(["  request latency max", l(loadPrev, "max"), l(loadShip, "max"), ""]);
    ba.push([
      "  failed requests",
      loadPrev ? `${loadPrev.failed} of ${loadPrev.requests}` : "–",
      loadShip ? `${loadShip.failed} of ${loadShip.requests}` : "–",
      "",
    ]);
  }
  const parPrev = by("scale-parallel", PREVIOUS)[0];
  if (parPrev) {
    const parShip = one("scale-parallel", SHIPPED, parPrev.n);
    ba.push([
      `${parPrev.n} hosts in parallel (one machine)`,
      range(parPrev),
      range(parShip),
      ratio(one("ratio-previous-over-shipped-parallel", PREVIOUS, parPrev.n)),
    ]);
    ba.push([
      "  CPU busy, CPU-s per deploy",
      `${pct(parPrev.cpu?.busy)}, ${f(parPrev.cpuPerDeploy?.total)}`,
      parShip ? `${pct(parShip.cpu?.busy)}, ${f(parShip.cpuPerDeploy?.total)}` : "–",
      "",
    ]);
  }
  if (ba.length) {
    out.push("## Before / after: the previous contract vs the shipped one");
    out.push("");
    out.push(
      "The same commits, deployed in turn to a host with each contract (previous: " +
        "`touch-reload`, no wake module; shipped: `fs-reload` + wake). Ratio = previous / " +
        "shipped, pair by pair: median (min–max).",
    );
    out.push("");
    out.push(table(["", "Previous contract", "Shipped contract", "Previous / shipped"], ba));
    out.push("");
  }

  out.push("## Targets");
  out.push("");
  out.push(
    table(
      ["Target", "Goal", "Measured", "Met"],
      r.targets.map((t) => [t.name, t.target, t.measured, t.met ? "yes" : "**no**"]),
    ),
  );
  out.push("");
  out.push("## Under load");
  out.push("");
  const loads = r.measurements.filter((m) => m.load);
  const s = r.settings.load as { connections: number; ratePerSecond: number } | undefined;
  if (s) {
    out.push(
      `${s.connections} concurrent clients on 127.0.0.1, ${s.ratePerSecond > 0 ? `${s.ratePerSecond} requests/s in total` : "unpaced"}, ` +
        "one request per connection; each window starts 1 s before the deploy and ends 1 s " +
        "after it. Failed = non-2xx + connection errors + timeouts. Latency is pooled over all " +
        "runs' requests.",
    );
    out.push("");
  }
  out.push(
    table(
      [
        "Window",
        "Runs",
        "Window s (median)",
        "Requests",
        "2xx",
        "Non-2xx",
        "Errors",
        "Timeouts",
        "p50 ms",
        "p99 ms",
        "max ms",
        "Wrong body",
        "CPU busy",
        "Load gen cores",
      ],
      loads.map((m) => {
        const l = m.load;
        if (!l) return [];
        return [
          m.label,
          m.runs,
          f(l.windowSeconds.median, 1),
          l.requests,
          l.ok,
          l.non2xx,
          l.errors,
          l.timeouts,
          l.latencyMs.p50,
          l.latencyMs.p99,
          l.latencyMs.max,
          l.bodyMismatches,
          pct(l.machineBusy),
          f(l.loadGeneratorCores, 2),
        ];
      }),
    ),
  );
  out.push("");
  out.push("## Where the time goes");
  out.push("");
  for (const m of [one("code-deploy"), one("container-deploy")]) {
    if (!m?.steps) continue;
    out.push(`${m.label} (seconds, median [min–max]):`);
    out.push("");
    out.push(
      table(
        ["Step", "Median", "Min", "Max"],
        Object.entries(m.steps).map(([k, v]) => [k, f(v.median), f(v.min), f(v.max)]),
      ),
    );
    out.push("");
  }
  const exps = r.measurements.filter((m) => m.kind === "reload-experiment");
  if (exps.length) {
    out.push("## Reload experiments");
    out.push("");
    out.push(
      "One host per contract variant (the shipped contract is the runtime image itself; the " +
        "others are images built FROM it with another `/etc/touchdeploy/uwsgi.ini`, derived " +
        "from `runtime/uwsgi.ini` by text edits) and host script variants run against the " +
        "shipped host; the same code deploy to each in turn, round-robin. Phases come from " +
        "uWSGI's log timestamps (Docker's) and the trigger's ctime; CPU = the machine's CPU " +
        "seconds from the start to the end of the deploy, of which the runtime container's " +
        "(cgroup) and the rest (mostly the host script and its children).",
    );
    out.push("");
    const phase = (m: Measurement, k: string): string =>
      m.steps?.[k] ? f(m.steps[k].median) : "–";
    out.push(
      table(
        [
          "Variant",
          "Runs",
          "Median",
          "Min",
          "Max",
          "touch→noticed",
          "noticed→workers reaped",
          "re-exec→workers up",
          "reloads per deploy",
          "CPU-s per deploy",
          "of which container",
          "of which rest",
        ],
        exps.map((m) => [
          m.variant,
          m.runs,
          ...value(m),
          phase(m, "uwsgi: touch -> noticed"),
          phase(m, "uwsgi: noticed -> workers reaped"),
          phase(m, "uwsgi: re-exec -> workers up"),
          reloadsText(m),
          f(m.cpuPerDeploy?.total, 3),
          f(m.cpuPerDeploy?.containers, 3),
          f(m.cpuPerDeploy?.rest, 3),
        ]),
      ),
    );
    out.push("");
    out.push(
      table(
        ["Variant", "What it is"],
        exps.map((m) => [m.variant, r.variants[m.variant] ?? ""]),
      ),
    );
    out.push("");
  }
  const scale = r.measurements.filter((m) => m.kind.startsWith("scale-"));
  if (scale.length) {
    out.push("## Scale");
    out.push("");
    out.push(
      "N hosts on this machine (one app root and one container each), the same new commit to " +
        "all: parallel = every host script at once; rolling = batches of " +
        `${String((r.settings.scale as { batchSize?: number } | undefined)?.batchSize ?? 4)}, ` +
        "the next batch after the previous one is healthy. Total time per N; CPU = the whole " +
        "machine's during a run (median): busy share of both cores, and CPU seconds per deploy " +
        "split into the runtime containers (cgroups: uWSGI's re-exec, app import, workers), " +
        "Docker's processes (dockerd, containerd, shims, docker-proxy), this benchmark's Node " +
        "process and the rest (mostly the host scripts and their children).",
    );
    out.push("");
    out.push(
      table(
        [
          "Variant",
          "Rollout",
          "N",
          "Runs",
          "Median",
          "Min",
          "Max",
          "vs N=1 (median)",
          "CPU busy",
          "CPU-s per deploy",
          "containers",
          "Docker",
          "bench",
          "rest (scripts)",
          "reloads per deploy",
        ],
        scale.map((m) => {
          const base = r.measurements.find(
            (b) => b.kind === "scale-parallel" && b.variant === m.variant && b.n === 1,
          );
          const c = m.cpuPerDeploy;
          return [
            m.variant,
            m.kind === "scale-parallel" ? "parallel" : `rolling (batch ${m.batchSize ?? ""})`,
            m.n,
            m.runs,
            ...value(m),
            base ? `${f(m.median / base.median)}×` : "–",
            pct(m.cpu?.busy),
            f(c?.total, 3),
            f(c?.containers, 3),
            f(c?.docker, 3),
            f(c?.bench, 3),
            f(c?.rest, 3),
            reloadsText(m),
          ];
        }),
      ),
    );
    out.push("");
    const nMax = Math.max(...scale.map((m) => m.n));
    const big = one("scale-parallel", SHIPPED, nMax);
    if (big?.steps) {
      out.push(
        `Each host's deploy within the ${nMax}-host parallel runs, shipped contract (seconds, ` +
          "median [min–max] over all hosts and runs):",
      );
      out.push("");
      out.push(
        table(
          ["Step", "Median", "Min", "Max"],
          Object.entries(big.steps).map(([k, v]) => [k, f(v.median), f(v.min), f(v.max)]),
        ),
      );
      out.push("");
    }
    const profiled = scale.filter((m) => m.profilePerDeploy);
    if (profiled.length) {
      const groups = Object.keys(profiled[0].profilePerDeploy ?? {});
      out.push(
        "`--profile`: CPU seconds per deploy by process (perf record -a, cpu-clock), median " +
          "over runs; a forked child counts as its parent until it execs.",
      );
      out.push("");
      out.push(
        table(
          ["Process group", ...profiled.map((m) => `${m.variant}, ${m.n} hosts`)],
          groups.map((g) => [g, ...profiled.map((m) => f(m.profilePerDeploy?.[g], 3))]),
        ),
      );
      out.push("");
    }
  }
  out.push("## Machine and settings");
  out.push("");
  out.push(
    table(
      ["", ""],
      [
        ...Object.entries(r.machine).map(([k, v]) => [k, String(v)]),
        ...Object.entries(r.settings).map(([k, v]) => [k, `\`${JSON.stringify(v)}\``]),
      ],
    ),
  );
  out.push("");
  if (r.notes.length) {
    out.push("## Notes");
    out.push("");
    for (const n of r.notes) out.push(`- ${n}`);
    out.push("");
  }
  return out.join("\n");
}
