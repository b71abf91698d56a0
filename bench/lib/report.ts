/** latest.md: the results as tables a person reads. */
import type { BenchResults, Measurement } from "./results";
import type { Summary } from "./stats";

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

const sum = (s: Summary | undefined, unit = " s", digits = 2): string =>
  s ? `${f(s.median, digits)}${unit} (${f(s.min, digits)}–${f(s.max, digits)})` : "–";

const lat = (m: Measurement): string =>
  m.load ? `${m.load.latencyMs.p50} / ${m.load.latencyMs.p99} / **${m.load.latencyMs.max}**` : "–";

const failedText = (m: Measurement): string =>
  m.requests === null ? "–" : `${m.failed === 0 ? "0" : `**${m.failed}**`} of ${m.requests}`;

/** The contracts part: one table per app (designs side by side). */
export function contractsSection(r: BenchResults): string[] {
  const ms = r.measurements.filter((m) => m.kind === "contract-deploy");
  if (!ms.length) return [];
  const out: string[] = [];
  out.push("## Deploy contracts with apps that take time to boot");
  out.push("");
  out.push(
    "One host per design and app, under load; the same new commit to each design in turn " +
      "(order rotated every run). The host script is `host/touchdeploy.sh` as it is for every " +
      "design. *New code served* = the host script's time (its health check saw the commit); " +
      "*old code last answered* = when the load last got an answer from the old code. " +
      "Latency p50 / p99 / max (ms) pooled over each design's deploy windows (1 s before the " +
      "deploy until the old code has not answered for 1 s), and over windows of the same " +
      "length on the same host without a deploy. *Old after new* = answers of the old code to " +
      "requests sent after the new code had answered someone (a client could go back to the " +
      "old code). Runtime CPU = the container's CPU in the deploy window minus its CPU per " +
      "request in the window without a deploy times the deploy window's requests (what the " +
      "contract itself costs; noisy to a few 0.01 s on a busy machine). Script CPU = the host " +
      "script and its children (the shell's `times`).",
  );
  out.push("");
  const apps = [...new Set(ms.map((m) => m.contract?.app ?? ""))];
  for (const app of apps) {
    const rows = ms.filter((m) => m.contract?.app === app);
    const imp = rows[0]?.contract?.importSeconds;
    out.push(`### ${app}${imp !== undefined ? ` (import ${imp} s)` : ""}`);
    out.push("");
    out.push(
      table(
        [
          "Design",
          "Runs",
          "New code served",
          "Old code last answered",
          "Deploy windows p50 / p99 / max ms",
          "Without deploy p50 / p99 / max ms",
          "Failed",
          "Old after new",
          "Reloads",
          "Runtime CPU-s",
          "Script CPU-s",
        ],
        rows.map((m) => {
          const c = m.contract;
          const b = c?.baseline;
          return [
            m.variant,
            m.runs,
            `${f(m.median)} s (${f(m.min)}–${f(m.max)})`,
            sum(c?.lastOld),
            lat(m),
            b ? `${b.latencyMs.p50} / ${b.latencyMs.p99} / ${b.latencyMs.max}` : "–",
            failedText(m),
            c?.oldAfterNew ?? "–",
            reloadsText(m),
            f(c?.runtimeCpuPerDeploy?.median, 3),
            f(c?.scriptCpuPerDeploy?.median, 3),
          ];
        }),
      ),
    );
    out.push("");
  }
  const mixed = ms.reduce((a, m) => a + (m.load?.bodyMismatches ?? 0), 0);
  out.push(
    `Answers whose body came from other code than their \`X-Revision\` says (one answer mixing ` +
      `two releases), all designs and apps: ${mixed}.`,
  );
  out.push("");
  for (const m of ms.filter(
    (x) => x.variant === "generations" && x.steps?.["manager: touch → new instance started"],
  )) {
    out.push(
      `Where a deploy's time goes, ${m.variant}, ${m.contract?.app ?? ""} (seconds, median [min–max]):`,
    );
    out.push("");
    out.push(
      table(
        ["Step", "Median", "Min", "Max"],
        Object.entries(m.steps ?? {}).map(([k, v]) => [k, f(v.median), f(v.min), f(v.max)]),
      ),
    );
    out.push("");
  }
  const rb = r.measurements.filter((m) => m.kind === "contract-rollback");
  if (rb.length) {
    out.push("### A commit that cannot be imported: roll back");
    out.push("");
    out.push(
      `Each design, under load, gets a commit whose app raises ImportError (app ${rb[0].contract?.app ?? ""}, ` +
        `health timeout ${JSON.stringify(r.settings.rollbackTimeout ?? "")} s): the host script must switch ` +
        "back and exit 6. What users saw from the deploy's start until the old code answered " +
        "alone again:",
    );
    out.push("");
    out.push(
      table(
        ["Design", "Exit", "Script time", "Failed requests", "p50 / p99 / max ms", "Reloads"],
        rb.map((m) => [
          m.variant,
          (m.contract?.exitCodes ?? []).join(", "),
          `${f(m.median)} s`,
          failedText(m),
          lat(m),
          (m.reloadsPerDeploy ?? []).join(", "),
        ]),
      ),
    );
    out.push("");
  }
  return out;
}

/** Code deploys vs image deploys (the deploys part). */
export function imagesSection(r: BenchResults): string[] {
  const idle = r.measurements.filter(
    (m) => m.kind === "code-deploy" || m.kind === "container-deploy",
  );
  const loaded = r.measurements.filter(
    (m) => m.kind === "code-deploy-under-load" || m.kind === "container-deploy-under-load",
  );
  if (!idle.length && !loaded.length) return [];
  const out: string[] = [];
  out.push("## Code deploys vs image deploys");
  out.push("");
  out.push(
    "The same commit shipped as a touchdeploy code deploy and as an image (built, pushed to " +
      "a registry on 127.0.0.1, removed, pulled): **replace-runtime** = stop the container, " +
      "start the new one on the same port, on touchdeploy's runtime image (supervisord); " +
      "**replace-plain** = the same on a plain uWSGI image; **bluegreen** = the new container " +
      "beside the old one, health-checked, then an nginx proxy switched to it and the old one " +
      "stopped gracefully (as Kamal does). In every run each kind deploys the same commit; the " +
      "order is reversed every other run. Ratio = image / code deploy, pair by pair.",
  );
  out.push("");
  if (idle.length) {
    out.push("Idle (hello-wsgi):");
    out.push("");
    out.push(
      table(
        ["Deploy", "Runs", "Median", "Min", "Max", "Ratio to the code deploy"],
        idle.map((m) => {
          const ratio = r.measurements.find(
            (x) => x.kind === "ratio-container-over-code" && x.variant === m.variant,
          );
          return [
            m.kind === "code-deploy" ? "code deploy (shipped)" : m.variant,
            m.runs,
            ...value(m),
            ratio ? `${f(ratio.median, 1)}× (${f(ratio.min, 1)}–${f(ratio.max, 1)})` : "",
          ];
        }),
      ),
    );
    out.push("");
  }
  const apps = [...new Set(loaded.map((m) => m.app ?? "hello-wsgi"))];
  for (const app of apps) {
    const rows = loaded.filter((m) => (m.app ?? "hello-wsgi") === app);
    out.push(`Under load, ${app}:`);
    out.push("");
    out.push(
      table(
        ["Deploy", "Runs", "New code served", "Failed", "p50 / p99 / max ms"],
        rows.map((m) => [
          m.kind === "code-deploy-under-load" ? `code deploy (${m.variant})` : m.variant,
          m.runs,
          `${f(m.median)} s (${f(m.min)}–${f(m.max)})`,
          failedText(m),
          lat(m),
        ]),
      ),
    );
    out.push("");
  }
  for (const m of r.measurements.filter((x) => x.kind === "container-deploy" && x.steps)) {
    out.push(`Where an image deploy's time goes, ${m.variant} (seconds, median [min–max]):`);
    out.push("");
    out.push(
      table(
        ["Step", "Median", "Min", "Max"],
        Object.entries(m.steps ?? {}).map(([k, v]) => [k, f(v.median), f(v.min), f(v.max)]),
      ),
    );
    out.push("");
  }
  return out;
}

export function renderMarkdown(r: BenchResults, chartFile: string): string {
  const out: string[] = [];
  out.push(`# touchdeploy benchmark (${r.mode})`);
  out.push("");
  out.push(
    `Measured ${r.date.slice(0, 10)} on ${r.machine.description} (\`npm run bench${r.mode === "smoke" ? " -- --smoke" : ""}\`, ${Math.round(r.durationSeconds / 60)} min; ` +
      `load average ${String(r.machine.loadAverageBefore ?? "?")} before, ${String(r.machine.loadAverageAfter ?? "?")} after). ` +
      "Times are from the start of a deploy to the new commit being served (HTTP 200 with " +
      "`X-Revision` = the commit); median, min and max over the runs. **shipped** = the deploy " +
      "contract in `runtime/` and `host/` as they are; the other designs are committed under " +
      "`bench/variants/` (see the last table).",
  );
  out.push("");
  out.push(
    `![request latency around a deploy, time to new code served, failed requests](${chartFile})`,
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
  out.push(...contractsSection(r));
  out.push(...imagesSection(r));
  const by = (kind: string, variant = SHIPPED): Measurement[] =>
    r.measurements.filter((m) => m.kind === kind && m.variant === variant);
  const one = (kind: string, variant = SHIPPED, n?: number): Measurement | undefined =>
    by(kind, variant).find((m) => n === undefined || (m.n === n && !m.app));
  const code = one("code-deploy");
  if (code?.steps) {
    out.push("## Where a code deploy's time goes");
    out.push("");
    out.push(`${code.label} (seconds, median [min–max]):`);
    out.push("");
    out.push(
      table(
        ["Step", "Median", "Min", "Max"],
        Object.entries(code.steps).map(([k, v]) => [k, f(v.median), f(v.min), f(v.max)]),
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
        "others are complete runtimes committed under `bench/variants/`) and host script " +
        "variants run against the shipped host; the same code deploy to each in turn, " +
        "round-robin, with hello-wsgi. Phases come from " +
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
  const used = Object.entries(r.variants);
  if (used.length) {
    out.push("## The designs and variants");
    out.push("");
    out.push(
      table(
        ["Variant", "What it is"],
        used.map(([k, v]) => [k, v]),
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
