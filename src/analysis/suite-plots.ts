// The findings suite's figures as vega-lite specs (pure functions of the arms' runs), rendered by
// ./plots.ts: the step plots of ./plots.ts with one colour per arm, a behaviour plot (self-check
// rate and response length over steps), a heatmap of cross-family gains and pass@k curves.
import { BENCH, COL, procColumn } from "./columns.js";
import { runMetrics } from "./compare.js";
import {
  columnSeries,
  meanPasskRows,
  transferTable,
  type ArmData,
  type FindingDef,
  type SuiteData,
} from "./findings.js";
import {
  CONFIG,
  SCHEMA,
  formatSpec,
  passkSpec,
  stepPanelsSpec,
  trainingSpec,
  type PlotRun,
  type Spec,
} from "./plots.js";

/** The runs of every arm as plot runs, coloured by arm. */
export function armPlotRuns(arms: readonly ArmData[]): PlotRun[] {
  return arms.flatMap((a) =>
    a.runs.map((r) => ({
      experiment: a.label,
      label: `${a.label}/seed-${r.seed}`,
      table: r.table,
      saturationStep: (runMetrics(r.table, r.threshold, r.window).saturation_step as number | null) ?? null,
    })),
  );
}

/** Self-check rate and response length, held-out and in training, over steps. */
export function behaviourStepsSpec(runs: readonly PlotRun[], title: string): Spec {
  const mean = (suffix: string) => (t: PlotRun["table"]) => columnSeries(t, { suffix, benchmarks: "all" });
  const spec = stepPanelsSpec(
    title,
    [
      "Thin lines: single seeds; thick lines: mean over an arm's seeds; dashed rules: each seed's saturation step.",
      'Held-out: sampled completions, mean over benchmarks; self-check = contains "recheck"; length in tokens.',
    ],
    runs,
    [
      { title: "self-check rate (held-out)", values: mean(BENCH.recheckRate) },
      { title: "check-procedure share (training rollouts)", values: (t) => columnSeriesOf(t, procColumn("check")) },
      { title: "response length (held-out)", values: mean(BENCH.length) },
      { title: "response length (training rollouts)", values: (t) => columnSeriesOf(t, COL.responseLength) },
    ],
    "value",
    2,
    false,
  );
  // the shares and the lengths live on different scales
  (spec.resolve as { scale: Record<string, string> }).scale.y = "independent";
  return spec;
}

const columnSeriesOf = (t: PlotRun["table"], column: string) => columnSeries(t, { column });

/** Mean gain (final − step 0) per training example (rows) and benchmark (columns), as a heatmap. */
export function transferSpec(f: FindingDef, data: SuiteData): Spec {
  const t = transferTable(f, data);
  const values = t.rows.flatMap((r) =>
    r.cells.map((c, j) => ({
      trained: r.label,
      benchmark: t.columns[j],
      gain: c.mean,
      text:
        c.mean === null
          ? "–"
          : `${c.mean >= 0 ? "+" : ""}${c.mean.toFixed(2)}${c.halfWidth === null ? "" : ` ± ${c.halfWidth.toFixed(2)}`}`,
    })),
  );
  const max = Math.max(0.05, ...values.map((v) => Math.abs(v.gain ?? 0)));
  return {
    $schema: SCHEMA,
    title: {
      text: f.title,
      subtitle: [
        "Gain in greedy held-out accuracy, final − step 0, mean ± 95 % CI over seeds.",
        "Rows: the family of the single training example; columns: the benchmark.",
      ],
    },
    data: { values },
    width: 130 * t.columns.length,
    height: 50 * t.rows.length,
    encoding: {
      x: {
        field: "benchmark",
        type: "nominal",
        title: "benchmark",
        sort: t.columns,
        axis: { labelAngle: 0, grid: false },
      },
      y: {
        field: "trained",
        type: "nominal",
        title: "trained on",
        sort: t.rows.map((r) => r.label),
        axis: { grid: false },
      },
    },
    layer: [
      {
        mark: { type: "rect" },
        encoding: {
          color: {
            field: "gain",
            type: "quantitative",
            title: "gain",
            scale: { scheme: "redblue", domain: [-max, max] },
          },
        },
      },
      {
        mark: { type: "text", fontSize: 12 },
        encoding: {
          text: { field: "text", type: "nominal" },
          color: { condition: { test: `abs(datum.gain) > ${max / 2}`, value: "white" }, value: "black" },
        },
      },
    ],
    config: CONFIG,
  };
}

/** The step plots colour by "experiment"; in the suite the colours are arms. */
function armLegends(spec: unknown): void {
  if (Array.isArray(spec)) spec.forEach(armLegends);
  else if (spec && typeof spec === "object") {
    const o = spec as Record<string, any>;
    if (o.color && o.color.field === "experiment" && o.color.title === "experiment") o.color.title = "arm";
    Object.values(o).forEach(armLegends);
  }
}

/** The figure of a finding (its `plot` kind). */
export function findingSpec(f: FindingDef, data: SuiteData): Spec {
  const spec = findingSpecOf(f, data);
  armLegends(spec);
  return spec;
}

function findingSpecOf(f: FindingDef, data: SuiteData): Spec {
  const runs = armPlotRuns(data.arms);
  const titled = (spec: Spec): Spec => {
    const t = spec.title as { text: string; subtitle?: string[] } | undefined;
    return { ...spec, title: { ...(t ?? {}), text: `${f.title}: ${t?.text ?? ""}`.replace(/: $/, "") } };
  };
  switch (f.plot) {
    case "training":
      return titled(trainingSpec(runs));
    case "format":
      return titled(formatSpec(runs));
    case "behaviour":
      return behaviourStepsSpec(runs, `${f.title}: self-checks and length over GRPO steps`);
    case "transfer":
      return transferSpec(f, data);
    case "passk":
      return titled(passkSpec(meanPasskRows(f, data)));
  }
}
