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

export function renderMarkdown(r: BenchResults, chartFile: string): string {
  const by = (kind: string, variant = "stock"): Measurement[] =>
    r.measurements.filter((m) => m.kind === kind && m.variant === variant);
  const one = (kind: string, variant = "stock"): Measurement | undefined => by(kind, variant)[0];
  const out: string[] = [];
  out.push(`# touchdeploy benchmark (${r.mode})`);
  out.push("");
  out.push(
    `Measured ${r.date.slice(0, 10)} on ${r.machine.description} (\`npm run bench${r.mode === "smoke" ? " -- --smoke" : ""}\`, ${Math.round(r.durationSeconds / 60)} min). ` +
      "Times are from the start of a deploy to the new commit being served (HTTP 200 with " +
      "`X-Revision` = the commit); median, min and max over the runs.",
  );
  out.push("");
  out.push(`![time to new code served and failed requests](${chartFile})`);
  out.push("");
  out.push("## Summary");
  out.push("");
  const proposed = r.proposedVariant;
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
    ...by("reload-experiment", proposed),
    ...by("code-deploy-under-load", proposed),
    ...by("scale-parallel", proposed),
    ...by("scale-rolling", proposed),
  ];
  out.push(
    table(
      ["Measurement", "N", "Runs", "Median", "Min", "Max", "Requests", "Failed"],
      main.map((m) => [m.label, m.n, m.runs, ...value(m), m.requests ?? "–", m.failed ?? "–"]),
    ),
  );
  out.push("");
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
          `${Math.round(l.machineBusy * 100)}%`,
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
  out.push("## Reload experiments");
  out.push("");
  out.push(
    "One host, the same code deploy with variants of the deploy contract (an image built FROM " +
      "the runtime image with another `/etc/touchdeploy/uwsgi.ini`) and of the host script's " +
      "health poll; runs interleaved round-robin. Phases come from uWSGI's log timestamps.",
  );
  out.push("");
  const exps = r.measurements.filter((m) => m.kind === "reload-experiment");
  const phase = (m: Measurement, k: string): string => (m.steps?.[k] ? f(m.steps[k].median) : "–");
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
      ],
      exps.map((m) => [
        m.variant,
        m.runs,
        ...value(m),
        phase(m, "uwsgi: touch -> noticed"),
        phase(m, "uwsgi: noticed -> workers reaped"),
        phase(m, "uwsgi: re-exec -> workers up"),
        (m.reloadsPerDeploy ?? []).join(" "),
      ]),
    ),
  );
  out.push("");
  const scaleVariants = [
    ...new Set(r.measurements.filter((m) => m.kind.startsWith("scale-")).map((m) => m.variant)),
  ];
  if (scaleVariants.length) {
    out.push("## Scale");
    out.push("");
    out.push(
      "N hosts on this machine (one app root and one container each), the same new commit to " +
        "all: parallel = every host script at once; rolling = batches of " +
        `${String((r.settings.scale as { batchSize?: number } | undefined)?.batchSize ?? 4)}, ` +
        "the next batch after the previous one is healthy. Total time per N; CPU = the whole " +
        "machine's during a run (median): busy share of both cores and CPU seconds used.",
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
          "CPU s",
        ],
        r.measurements
          .filter((m) => m.kind.startsWith("scale-"))
          .map((m) => {
            const base = r.measurements.find(
              (b) => b.kind === "scale-parallel" && b.variant === m.variant && b.n === 1,
            );
            return [
              m.variant,
              m.kind === "scale-parallel" ? "parallel" : `rolling (batch ${m.batchSize ?? ""})`,
              m.n,
              m.runs,
              ...value(m),
              base ? `${f(m.median / base.median)}×` : "–",
              m.cpu ? `${Math.round(m.cpu.busy * 100)}%` : "–",
              m.cpu ? f(m.cpu.seconds) : "–",
            ];
          }),
      ),
    );
    out.push("");
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
