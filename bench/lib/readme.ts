/**
 * The figures in bench/README.md and in the top-level README's benchmark section come from the
 * committed results (bench/results/latest.json), never typed by hand: each README has regions
 * between `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->` that `npm run readme -w
 * bench` (bench/readme.ts) rewrites, and `bench/test/readme.test.ts` fails when they differ
 * from what the results give.
 */
import { contractsSection, imagesSection } from "./report";
import type { BenchResults, Measurement } from "./results";

const f = (x: number | null | undefined, digits = 2): string =>
  x === null || x === undefined || Number.isNaN(x) ? "–" : x.toFixed(digits);

const row = (cells: (string | number)[]): string => `| ${cells.join(" | ")} |`;
const table = (header: string[], rows: (string | number)[][]): string =>
  [row(header), row(header.map(() => "---")), ...rows.map(row)].join("\n");

/** "Measured <date> on <machine> (<load>)": the line every region starts with. */
export function measuredLine(r: BenchResults): string {
  return (
    `**Measured ${r.date.slice(0, 10)}** (\`npm run bench\`${r.mode === "smoke" ? " --smoke" : ""}, ` +
    `${Math.round(r.durationSeconds / 60)} min) on ${String(r.machine.description)}, ` +
    `${String(r.machine.docker)}, ${String(r.machine.uwsgi ?? "uWSGI")}; load average ` +
    `${String(r.machine.loadAverageBefore ?? "?")} before and ${String(r.machine.loadAverageAfter ?? "?")} ` +
    "after the run (other work on this shared machine included)."
  );
}

const find = (r: BenchResults, pred: (m: Measurement) => boolean): Measurement | undefined =>
  r.measurements.find(pred);

/** The top-level README's benchmark figures: one table, the chart, the targets. */
export function topRegion(r: BenchResults): string {
  const out: string[] = [measuredLine(r), ""];
  out.push(
    "![request latency around a deploy, time to new code served, failed requests](bench/results/latest.svg)",
  );
  out.push("");
  const contracts = r.measurements.filter((m) => m.kind === "contract-deploy");
  const slowest = Math.max(...contracts.map((m) => m.contract?.importSeconds ?? -1));
  const rows: (string | number)[][] = [];
  for (const m of contracts.filter((x) => x.contract?.importSeconds === slowest)) {
    const b = m.contract?.baseline;
    rows.push([
      `code deploy, ${m.variant}`,
      `${f(m.median)} s`,
      `${m.load?.latencyMs.max ?? "–"} ms (idle p99 ${b?.latencyMs.p99 ?? "–"} ms)`,
      `${m.failed ?? "–"} of ${m.requests ?? "–"}`,
    ]);
  }
  const app = contracts.find((m) => m.contract?.importSeconds === slowest)?.contract?.app;
  for (const m of r.measurements.filter(
    (x) => x.kind === "container-deploy-under-load" && x.app === app,
  )) {
    rows.push([
      `image deploy, ${m.variant}`,
      `${f(m.median)} s`,
      `${m.load?.latencyMs.max ?? "–"} ms`,
      `${m.failed ?? "–"} of ${m.requests ?? "–"}`,
    ]);
  }
  if (rows.length) {
    out.push(
      `An app whose import takes ${slowest} s, 16 clients, one host (medians; max latency over ` +
        "all deploy windows):",
    );
    out.push("");
    out.push(
      table(["Deploy", "Start → new code served", "Max request latency", "Failed requests"], rows),
    );
    out.push("");
  }
  const hello = find(r, (m) => m.kind === "code-deploy");
  if (hello) {
    const ratios = r.measurements.filter((m) => m.kind === "ratio-container-over-code");
    out.push(
      `With hello-wsgi (no boot time), idle: code deploy ${f(hello.median)} s; ` +
        ratios
          .map(
            (m) =>
              `${m.variant} image deploy ${f(find(r, (x) => x.kind === "container-deploy" && x.variant === m.variant)?.median)} s (${f(m.median, 1)}×)`,
          )
          .join(", ") +
        ".",
    );
    out.push("");
  }
  const met = r.targets.filter((t) => t.met).length;
  out.push(
    `Targets: ${met} of ${r.targets.length} met (details: [bench/README.md](bench/README.md), ` +
      "[results](bench/results/latest.md), [JSON](bench/results/latest.json)).",
  );
  return out.join("\n");
}

/** bench/README.md's results: targets, contracts, image paths (as latest.md has them). */
export function benchRegion(r: BenchResults): string {
  const out: string[] = [measuredLine(r), ""];
  out.push(
    "![request latency around a deploy, time to new code served, failed requests](results/latest.svg)",
  );
  out.push("");
  out.push(
    table(
      ["Target", "Goal", "Measured", "Met"],
      r.targets.map((t) => [t.name, t.target, t.measured, t.met ? "yes" : "**no**"]),
    ),
  );
  out.push("");
  // The sections' own headings are one level down in this README.
  const demote = (lines: string[]): string[] => lines.map((l) => (l.startsWith("#") ? `#${l}` : l));
  out.push(...demote(contractsSection(r)));
  out.push(...demote(imagesSection(r)));
  return out.join("\n").trimEnd();
}

export const REGIONS: Record<string, (r: BenchResults) => string> = {
  top: topRegion,
  results: benchRegion,
};

/**
 * `text` with every region it has rewritten from `r`; throws when a region's markers are
 * broken (a begin without an end).
 */
export function renderRegions(text: string, r: BenchResults): string {
  return text.replace(
    /(<!-- bench:([a-z]+):begin -->\n)([\s\S]*?)(<!-- bench:\2:end -->)/g,
    (_all, begin: string, name: string, _old: string, end: string) => {
      const render = REGIONS[name];
      if (!render) throw new Error(`unknown README region "${name}"`);
      return `${begin}${render(r)}\n${end}`;
    },
  );
}

/** Names of the regions in `text` (to check that a README has the ones it should). */
export function regionsIn(text: string): string[] {
  return [...text.matchAll(/<!-- bench:([a-z]+):begin -->/g)].map((m) => m[1]);
}
