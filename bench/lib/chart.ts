/**
 * The chart: time to new code served (median, min–max) and failed requests under load, for
 * code deploys (shipped contract), code deploys with the previous contract and container
 * deploys, as an SVG. Vega-Lite compiles a short declarative spec and Vega renders it
 * to SVG in Node without a canvas or a browser (text is measured by an estimate, fine for
 * labels), so the chart is reproducible by `npm run bench` alone.
 */
// vega-lite's package.json only has "exports" for its types, which this project's
// moduleResolution ("node") does not read: name the declaration file itself.
import type * as VegaLite from "vega-lite/build/index";
import type { TopLevelSpec } from "vega-lite/build/index";
import type { BenchResults } from "./results";

export async function renderChart(r: BenchResults): Promise<string> {
  // Both are ES modules (vega-canvas uses top-level await): import() them, never require().
  const vega = await import("vega");
  const vegaLite: string = "vega-lite";
  const vl = (await import(vegaLite)) as typeof VegaLite;
  const code = "code deploy";
  const previous = "previous contract";
  const container = "container deploy";
  // [kind, variant, deploy kind (colour), condition]
  const kinds: [string, string, string, string][] = [
    ["code-deploy", "shipped", code, "idle"],
    ["code-deploy-under-load", "shipped", code, "under load"],
    ["reload-experiment", "previous", previous, "idle"],
    ["code-deploy-under-load", "previous", previous, "under load"],
    ["container-deploy", "shipped", container, "idle"],
    ["container-deploy-under-load", "shipped", container, "under load"],
  ];
  const times = kinds.flatMap(([kind, variant, deploy, condition]) =>
    r.measurements
      .filter((m) => m.kind === kind && m.variant === variant)
      .map((m) => ({
        row: `${deploy} (${condition})`,
        deploy,
        median: m.median,
        min: m.min,
        max: m.max,
        label: `${m.median.toFixed(2)} s`,
      })),
  );
  const failed = kinds
    .filter(([, , , condition]) => condition === "under load")
    .flatMap(([kind, variant, deploy]) =>
      r.measurements
        .filter((m) => m.kind === kind && m.variant === variant)
        .map((m) => ({
          deploy,
          failed: m.failed ?? 0,
          label: `${m.failed ?? 0} of ${m.requests ?? 0}`,
        })),
    );
  const color = {
    field: "deploy",
    type: "nominal",
    scale: {
      domain: [code, previous, container],
      range: ["#2a9d8f", "#8ab17d", "#e76f51"],
    },
    legend: null,
  } as const;
  const spec: TopLevelSpec = {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: "touchdeploy: code deploy vs container deploy",
      subtitle: [
        `${r.date.slice(0, 10)}, ${String(r.machine.description)}${r.mode === "smoke" ? " (smoke run)" : ""}`,
        `code deploy = the shipped contract (fs-reload + wake); previous = touch-reload, no wake; load: ${String((r.settings.load as { connections?: number } | undefined)?.connections ?? "")} clients on 127.0.0.1`,
      ],
    },
    config: { font: "sans-serif", view: { stroke: null } },
    hconcat: [
      {
        title: "Time to new code served (s): median, min–max",
        data: { values: times },
        width: 340,
        height: 160,
        encoding: {
          y: {
            field: "row",
            type: "nominal",
            sort: null,
            title: null,
            axis: { labelLimit: 320 },
          },
        },
        layer: [
          {
            mark: { type: "bar", height: 22 },
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
            mark: { type: "text", align: "left", dx: 4, dy: -10, fontSize: 11 },
            encoding: { x: { field: "max", type: "quantitative" }, text: { field: "label" } },
          },
        ],
      },
      {
        title: `Failed requests under load (${String((r.settings.load as { connections?: number } | undefined)?.connections ?? "")} clients)`,
        data: { values: failed },
        width: 200,
        height: 120,
        encoding: {
          y: {
            field: "deploy",
            type: "nominal",
            sort: null,
            title: null,
            axis: { labelLimit: 320 },
          },
        },
        layer: [
          {
            mark: { type: "bar", height: 22 },
            encoding: {
              x: { field: "failed", type: "quantitative", title: "failed requests (all runs)" },
              color,
            },
          },
          {
            mark: { type: "text", align: "left", dx: 4, fontSize: 11 },
            encoding: {
              x: { field: "failed", type: "quantitative" },
              text: { field: "label" },
            },
          },
        ],
      },
    ],
  };
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}
