/**
 * The chart, as an SVG: on top, request latency over time around a deploy for each deploy
 * contract with the slowest app (the pause users feel), pooled over runs; below, time to new
 * code served (median, min–max) and failed requests under load, for the code deploy contracts
 * and the image paths. Vega-Lite compiles a declarative spec and Vega renders it to SVG in Node
 * without a canvas or a browser (text is measured by an estimate, fine for labels), so the
 * chart is reproducible by `npm run bench` alone.
 */
// vega-lite's package.json only has "exports" for its types, which this project's
// moduleResolution ("node") does not read: name the declaration file itself.
import type * as VegaLite from "vega-lite/build/index";
import type { TopLevelSpec } from "vega-lite/build/index";
import type { BenchResults, Measurement } from "./results";

/** Latency over time: one point per 100 ms bucket and design (the highest latency in it). */
function timelineRows(r: BenchResults): {
  rows: Record<string, unknown>[];
  app: string;
  designs: string[];
} {
  const contracts = r.measurements.filter((m) => m.kind === "contract-deploy");
  const slowest = Math.max(...contracts.map((m) => m.contract?.importSeconds ?? -1));
  const picked = contracts.filter((m) => (m.contract?.importSeconds ?? -1) === slowest);
  const rows = picked.flatMap((m) => {
    const t = m.contract?.timeline;
    if (!t) return [];
    return [
      ...t.t.flatMap((ms, i) => [
        { design: m.variant, series: "highest", t: ms / 1000, ms: Math.max(1, t.max[i]) },
        { design: m.variant, series: "median", t: ms / 1000, ms: Math.max(1, t.p50[i]) },
      ]),
      // The host script saw the new commit (median over runs).
      { design: m.variant, series: "served", t: m.median },
    ];
  });
  return { rows, app: picked[0]?.contract?.app ?? "", designs: picked.map((m) => m.variant) };
}

const label = (m: Measurement): string => {
  if (m.kind.startsWith("container")) return `image: ${m.variant}`;
  if (m.kind === "contract-deploy") return `code: ${m.variant}`;
  return `code: ${m.variant}`;
};

export async function renderChart(r: BenchResults): Promise<string> {
  // Both are ES modules (vega-canvas uses top-level await): import() them, never require().
  const vega = await import("vega");
  const vegaLite: string = "vega-lite";
  const vl = (await import(vegaLite)) as typeof VegaLite;
  const { rows: timeline, app, designs } = timelineRows(r);
  // Bars: under load with the slow app in the deploys part when there is one, else hello-wsgi.
  const loaded = r.measurements.filter(
    (m) => m.kind === "code-deploy-under-load" || m.kind === "container-deploy-under-load",
  );
  const barApp = loaded.some((m) => m.app) ? loaded.find((m) => m.app)?.app : undefined;
  const bars = loaded
    .filter((m) => m.app === barApp)
    .map((m) => ({
      row: label(m),
      kind: m.kind.startsWith("container") ? "image deploy" : "code deploy",
      median: m.median,
      min: m.min,
      max: m.max,
      label: `${m.median.toFixed(2)} s`,
      failed: m.failed ?? 0,
      failedLabel: `${m.failed ?? 0} of ${m.requests ?? 0}`,
    }));
  const connections = String(
    (r.settings.load as { connections?: number } | undefined)?.connections ?? "",
  );
  const color = {
    field: "kind",
    type: "nominal",
    scale: { domain: ["code deploy", "image deploy"], range: ["#2a9d8f", "#e76f51"] },
    legend: null,
  } as const;
  const barPanels: TopLevelSpec[] = bars.length
    ? [
        {
          hconcat: [
            {
              title: `Start → new code served under load (s), ${barApp ?? "hello-wsgi"}`,
              data: { values: bars },
              width: 330,
              height: { step: 24 },
              encoding: {
                y: {
                  field: "row",
                  type: "nominal",
                  sort: null,
                  title: null,
                  axis: { labelLimit: 260 },
                },
              },
              layer: [
                {
                  mark: { type: "bar", height: 16 },
                  encoding: {
                    x: { field: "median", type: "quantitative", title: "seconds" },
                    color,
                  },
                },
                {
                  mark: { type: "rule", strokeWidth: 2, color: "#333" },
                  encoding: { x: { field: "min", type: "quantitative" }, x2: { field: "max" } },
                },
                {
                  mark: { type: "text", align: "left", dx: 4, dy: -8, fontSize: 10 },
                  encoding: { x: { field: "max", type: "quantitative" }, text: { field: "label" } },
                },
              ],
            },
            {
              title: `Failed requests (${connections} clients, all runs)`,
              data: { values: bars },
              width: 200,
              height: { step: 24 },
              encoding: {
                y: { field: "row", type: "nominal", sort: null, title: null, axis: null },
              },
              layer: [
                {
                  mark: { type: "bar", height: 16 },
                  encoding: {
                    x: { field: "failed", type: "quantitative", title: "failed" },
                    color,
                  },
                },
                {
                  mark: { type: "text", align: "left", dx: 4, fontSize: 10 },
                  encoding: {
                    x: { field: "failed", type: "quantitative" },
                    text: { field: "failedLabel" },
                  },
                },
              ],
            },
          ],
        },
      ]
    : [];
  const timelinePanels: TopLevelSpec[] = timeline.length
    ? [
        {
          title: {
            text: `Request latency around a code deploy (${app}, ${connections} clients): highest per 100 ms of send time, all runs`,
            subtitle:
              "time 0 = the host script starts; dashed = it saw the new commit (median); log scale; a straight line over a gap: no request was sent then (every client was waiting)",
          },
          data: { values: timeline },
          facet: {
            row: {
              field: "design",
              type: "nominal",
              sort: designs,
              title: null,
              header: { labelAngle: 0, labelAlign: "left", labelLimit: 260 },
            },
          },
          spec: {
            width: 520,
            height: 50,
            layer: [
              {
                transform: [{ filter: "datum.series !== 'served'" }],
                mark: { type: "line", strokeWidth: 1.2 },
                encoding: {
                  x: {
                    field: "t",
                    type: "quantitative",
                    title: "seconds since the deploy started",
                  },
                  y: {
                    field: "ms",
                    type: "quantitative",
                    scale: { type: "log", domain: [1, 10000] },
                    title: "ms",
                    axis: { values: [1, 10, 100, 1000, 10000], grid: true },
                  },
                  color: {
                    field: "series",
                    type: "nominal",
                    scale: { domain: ["highest", "median"], range: ["#e76f51", "#264653"] },
                    legend: { title: "latency", orient: "top" },
                  },
                },
              },
              {
                transform: [{ filter: "datum.series === 'served'" }],
                mark: { type: "rule", color: "#2a9d8f", strokeWidth: 2, strokeDash: [4, 2] },
                encoding: { x: { field: "t", type: "quantitative" } },
              },
            ],
          },
          resolve: { scale: { x: "shared" } },
        },
      ]
    : [];
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: "touchdeploy: deploy contracts and image deploys",
      subtitle: `${r.date.slice(0, 10)}, ${String(r.machine.description)}${r.mode === "smoke" ? " (smoke run)" : ""}`,
    },
    config: { font: "sans-serif", view: { stroke: null } },
    vconcat: [...timelinePanels, ...barPanels],
    resolve: { scale: { color: "independent" }, legend: { color: "independent" } },
  } as TopLevelSpec;
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}
