// Plots of compared runs as vega-lite specs (pure functions of the runs' metrics tables or pass@k
// rows), rendered in Node to SVG with vega (no canvas needed) and to PNG with @resvg/resvg-js.
//   trainingSpec:  training accuracy and held-out greedy accuracy per benchmark over steps
//   formatSpec:    graded-form share and accuracy among graded answers over steps (format vs skill)
//   behaviourSpec: "recheck" word rate per benchmark and solution-procedure shares over steps
//   passkSpec:     pass@k over k (log2 axis) for several checkpoints
// In the step plots thin lines are single seeds, thick lines the mean over an experiment's seeds
// and dashed vertical rules each seed's saturation step. Writing files is the CLI's job; this
// module only returns strings and buffers.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as vega from "vega";
import * as vl from "vega-lite";
import type { TopLevelSpec } from "vega-lite";
import { Resvg, type ResvgRenderOptions } from "@resvg/resvg-js";
import { BENCH, COL, procColumn } from "./columns.js";
import { benchmarksOf, runMetrics, series, type MetricsTable, type RunInfo } from "./compare.js";
import { MEAN_BENCHMARK, type PasskRow } from "./passk-curve.js";

export type Spec = Record<string, unknown>;

export const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";
const FONT = "sans-serif";
export const CONFIG = {
  font: FONT,
  background: "white",
  padding: 12,
  title: { fontSize: 16, subtitleFontSize: 12, subtitleColor: "#444", anchor: "start", offset: 12 },
  axis: { labelFontSize: 11, titleFontSize: 12, grid: true, gridColor: "#e6e6e6" },
  header: { labelFontSize: 12, labelFontWeight: "bold", titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 260, symbolStrokeWidth: 3, symbolOpacity: 1 },
  view: { stroke: "#bbb" },
};
export const PANEL = { width: 250, height: 170 };

/** What the step plots need of a run. */
export interface PlotRun {
  experiment: string;
  label: string;
  saturationStep: number | null;
  table: MetricsTable;
}

export function plotRuns(runs: readonly RunInfo[]): PlotRun[] {
  return runs.map((r) => ({
    experiment: r.experiment,
    label: r.label,
    table: r.table,
    saturationStep: (runMetrics(r.table, r.threshold, r.window).saturation_step as number | null) ?? null,
  }));
}

export interface PanelDef {
  title: string;
  values: (t: MetricsTable) => { step: number; value: number }[];
}

/** Mean over benchmarks of `<b><suffix>` at the steps where every benchmark has a value. */
function benchmarkMean(t: MetricsTable, suffix: string): { step: number; value: number }[] {
  const bs = benchmarksOf(t.columns).filter((b) => t.columns.includes(`${b}${suffix}`));
  if (bs.length === 0) return [];
  const maps = bs.map((b) => new Map(series(t, `${b}${suffix}`).map((p) => [p.step, p.value])));
  return [...maps[0].keys()]
    .filter((s) => maps.every((m) => m.has(s)))
    .map((step) => ({ step, value: maps.reduce((a, m) => a + (m.get(step) as number), 0) / maps.length }));
}

interface StepDatum {
  kind: "seed" | "mean" | "sat";
  experiment: string;
  run: string;
  panel: string;
  step: number;
  value?: number;
}

/** Per-seed points, per-experiment means over seeds (experiments with 2+ runs) and saturation rules. */
export function stepPanelData(runs: readonly PlotRun[], panels: readonly PanelDef[]): StepDatum[] {
  const out: StepDatum[] = [];
  const experiments = [...new Set(runs.map((r) => r.experiment))];
  for (const p of panels) {
    for (const e of experiments) {
      const rs = runs.filter((r) => r.experiment === e);
      const acc = new Map<number, { sum: number; n: number }>();
      for (const r of rs) {
        for (const pt of p.values(r.table)) {
          out.push({ kind: "seed", experiment: e, run: r.label, panel: p.title, step: pt.step, value: pt.value });
          const a = acc.get(pt.step) ?? { sum: 0, n: 0 };
          a.sum += pt.value;
          a.n += 1;
          acc.set(pt.step, a);
        }
        if (r.saturationStep !== null)
          out.push({ kind: "sat", experiment: e, run: r.label, panel: p.title, step: r.saturationStep });
      }
      if (rs.length > 1) {
        for (const [step, a] of [...acc.entries()].sort((x, y) => x[0] - y[0]))
          out.push({ kind: "mean", experiment: e, run: `${e} (mean)`, panel: p.title, step, value: a.sum / a.n });
      }
    }
  }
  return out;
}

export function stepPanelsSpec(
  title: string,
  subtitle: string[],
  runs: readonly PlotRun[],
  panels: readonly PanelDef[],
  yTitle: string,
  columns: number,
  unitInterval = true,
): Spec {
  const data = stepPanelData(runs, panels);
  const yScale = unitInterval ? { domain: [0, 1] } : { zero: true, nice: true };
  const x = {
    field: "step",
    type: "quantitative",
    title: "step (GRPO updates)",
    axis: { tickMinStep: 1, format: "d" },
  };
  const color = { field: "experiment", type: "nominal", title: "experiment" };
  return {
    $schema: SCHEMA,
    title: { text: title, subtitle },
    data: { values: data },
    facet: { field: "panel", type: "nominal", sort: panels.map((p) => p.title), title: null },
    columns: Math.min(columns, panels.length),
    spec: {
      ...PANEL,
      layer: [
        {
          transform: [{ filter: "datum.kind === 'seed'" }],
          mark: {
            type: "line",
            strokeWidth: 1.2,
            opacity: runs.length > new Set(runs.map((r) => r.experiment)).size ? 0.45 : 1,
          },
          encoding: {
            x,
            y: { field: "value", type: "quantitative", title: yTitle, scale: yScale },
            color,
            detail: { field: "run", type: "nominal" },
          },
        },
        {
          transform: [{ filter: "datum.kind === 'mean'" }],
          mark: { type: "line", strokeWidth: 2.8 },
          encoding: { x, y: { field: "value", type: "quantitative" }, color },
        },
        {
          transform: [{ filter: "datum.kind === 'sat'" }],
          mark: { type: "rule", strokeDash: [5, 3], strokeWidth: 1.5, opacity: 0.9 },
          encoding: { x, color, detail: { field: "run", type: "nominal" } },
        },
      ],
    },
    resolve: { scale: { x: "shared", y: "shared" } },
    config: CONFIG,
  };
}

function lineKey(runs: readonly PlotRun[]): string {
  const multi = runs.length > new Set(runs.map((r) => r.experiment)).size;
  return multi
    ? "Thin lines: single seeds; thick lines: mean over an experiment's seeds; dashed vertical rules: each seed's saturation step."
    : "One line per run; dashed vertical rules: saturation step (trailing-window mean training accuracy reaches the threshold).";
}

/** (a) Training accuracy on the single example and held-out greedy accuracy per benchmark. */
export function trainingSpec(runs: readonly PlotRun[]): Spec {
  const benches = runs.length ? benchmarksOf(runs[0].table.columns) : [];
  const panels: PanelDef[] = [
    { title: "training accuracy (the single example)", values: (t) => series(t, COL.trainAccuracy) },
  ];
  panels.push({ title: "held-out greedy: mean over benchmarks", values: (t) => series(t, COL.heldoutGreedy) });
  for (const b of benches) panels.push({ title: `held-out greedy: ${b}`, values: (t) => series(t, `${b}_greedy`) });
  return stepPanelsSpec(
    "Training vs held-out accuracy over GRPO steps",
    [
      lineKey(runs),
      "Training accuracy = mean 0/1 reward of the step's rollouts; held-out = greedy accuracy on each benchmark.",
    ],
    runs,
    panels,
    "accuracy (fraction correct)",
    3,
  );
}

/** (b) Format vs skill: graded-form share and accuracy among graded-form answers. */
export function formatSpec(runs: readonly PlotRun[]): Spec {
  const panels: PanelDef[] = [
    { title: "held-out greedy accuracy", values: (t) => series(t, COL.heldoutGreedy) },
    { title: "graded-form share (held-out greedy)", values: (t) => series(t, COL.heldoutFormat) },
    { title: "accuracy among graded answers (held-out)", values: (t) => series(t, COL.heldoutAccGivenFormat) },
    { title: "graded-form share (training rollouts)", values: (t) => series(t, COL.trainFormatRate) },
  ];
  return stepPanelsSpec(
    "Format vs skill: is the held-out gain just more answers in the graded form?",
    [
      lineKey(runs),
      "Accuracy = graded-form share × accuracy among graded answers; a gain in the first with a flat second is format, not skill.",
    ],
    runs,
    panels.filter((p) => runs.some((r) => p.values(r.table).length > 0)),
    "fraction",
    2,
  );
}

const PROCS = ["careful", "check", "hasty", "nomarker"] as const;

/**
 * Mean over seeds of each procedure share, for training rollouts and held-out (mean over
 * benchmarks), stacked here (lo/hi per procedure in the order careful, check, hasty, nomarker) so
 * that the plot needs no stacking or imputation across different step grids.
 */
export function procedureData(runs: readonly PlotRun[]): {
  panel: string;
  experiment: string;
  source: string;
  procedure: string;
  step: number;
  value: number;
  lo: number;
  hi: number;
}[] {
  const out: {
    panel: string;
    experiment: string;
    source: string;
    procedure: string;
    step: number;
    value: number;
    lo: number;
    hi: number;
  }[] = [];
  const sources: [string, (t: MetricsTable, p: string) => { step: number; value: number }[]][] = [
    ["training rollouts", (t, p) => series(t, procColumn(p))],
    ["held-out, mean over benchmarks", (t, p) => benchmarkMean(t, BENCH.proc(p))],
  ];
  for (const e of [...new Set(runs.map((r) => r.experiment))]) {
    const rs = runs.filter((r) => r.experiment === e);
    for (const [source, get] of sources) {
      // step -> procedure -> {sum, n}
      const acc = new Map<number, Map<string, { sum: number; n: number }>>();
      for (const r of rs) {
        for (const p of PROCS) {
          for (const pt of get(r.table, p)) {
            const m = acc.get(pt.step) ?? new Map<string, { sum: number; n: number }>();
            const a = m.get(p) ?? { sum: 0, n: 0 };
            a.sum += pt.value;
            a.n += 1;
            m.set(p, a);
            acc.set(pt.step, m);
          }
        }
      }
      for (const [step, m] of [...acc.entries()].sort((x, y) => x[0] - y[0])) {
        if (!PROCS.every((p) => m.has(p))) continue;
        let lo = 0;
        for (const p of PROCS) {
          const a = m.get(p) as { sum: number; n: number };
          const value = a.sum / a.n;
          out.push({ panel: `${e}: ${source}`, experiment: e, source, procedure: p, step, value, lo, hi: lo + value });
          lo += value;
        }
      }
    }
  }
  return out;
}

/** (c) Behaviour: "recheck" word rate per benchmark, and procedure shares (stacked, mean over seeds). */
export function behaviourSpec(runs: readonly PlotRun[]): Spec {
  const benches = runs.length
    ? benchmarksOf(runs[0].table.columns).filter((b) => runs[0].table.columns.includes(b + BENCH.recheckRate))
    : [];
  const panels: PanelDef[] = benches.map((b) => ({
    title: `"recheck" rate: ${b}`,
    values: (t: MetricsTable) => series(t, b + BENCH.recheckRate),
  }));
  const recheck = stepPanelsSpec("", [], runs, panels, "share of completions", 4, false);
  delete recheck.$schema;
  delete recheck.config;
  delete recheck.title;
  const procs = procedureData(runs);
  const vconcat: Spec[] = [];
  if (panels.length)
    vconcat.push({
      ...recheck,
      title: { text: 'Behaviour word: share of held-out completions containing "recheck"', fontSize: 13 },
    });
  if (procs.length) {
    vconcat.push({
      title: { text: "Solution procedures: share of completions (mean over seeds, stacked)", fontSize: 13 },
      data: { values: procs },
      facet: { field: "panel", type: "nominal", title: null, sort: [...new Set(procs.map((p) => p.panel))] },
      columns: 2,
      spec: {
        ...PANEL,
        mark: { type: "area", opacity: 0.85, clip: true },
        encoding: {
          x: { field: "step", type: "quantitative", title: "step (GRPO updates)", axis: { format: "d" } },
          y: { field: "lo", type: "quantitative", title: "share of completions", scale: { domain: [0, 1] } },
          y2: { field: "hi" },
          color: {
            field: "procedure",
            type: "nominal",
            title: "procedure",
            sort: [...PROCS],
            scale: { domain: [...PROCS], range: ["#1b9e77", "#7570b3", "#d95f02", "#999999"] },
          },
          tooltip: [{ field: "procedure" }, { field: "step" }, { field: "value", format: ".3f" }],
        },
      },
    });
  }
  return {
    $schema: SCHEMA,
    title: {
      text: "Behaviour over GRPO steps",
      subtitle: [
        panels.length ? lineKey(runs) : "",
        "Rates are measured on sampled completions when the run sampled (eval.n > 0), else on greedy ones; nomarker = ended without the graded form.",
      ].filter((s) => s),
    },
    vconcat,
    spacing: 30,
    resolve: { scale: { color: "independent" }, legend: { color: "independent" } },
    config: CONFIG,
  };
}

/** (d) pass@k against k on a log2 axis, one line per checkpoint, one panel per benchmark. */
export function passkSpec(rows: readonly PasskRow[]): Spec {
  const benches = [...new Set(rows.map((r) => r.benchmark))].sort((a, b) =>
    a === MEAN_BENCHMARK ? -1 : b === MEAN_BENCHMARK ? 1 : a.localeCompare(b),
  );
  const ks = [...new Set(rows.map((r) => r.k))].sort((a, b) => a - b);
  const labels = [...new Set(rows.map((r) => r.label))];
  const data = rows.map((r) => ({
    label: r.label,
    benchmark: r.benchmark === MEAN_BENCHMARK ? "mean over benchmarks" : r.benchmark,
    k: r.k,
    pass: r.passAtK,
  }));
  const order = benches.map((b) => (b === MEAN_BENCHMARK ? "mean over benchmarks" : b));
  const x = {
    field: "k",
    type: "quantitative",
    title: "k (samples per problem, log₂ scale)",
    scale: { type: "log", base: 2, domain: [ks[0] ?? 1, ks[ks.length - 1] ?? 2] },
    axis: { values: ks, format: "d", grid: true, labelOverlap: false, labelFlush: false },
  };
  const y = { field: "pass", type: "quantitative", title: "pass@k (fraction solved)", scale: { domain: [0, 1] } };
  const color = {
    field: "label",
    type: "nominal",
    title: "checkpoint",
    sort: labels,
    legend: { symbolStrokeWidth: 0, symbolSize: 90, symbolOpacity: 1 },
  };
  return {
    $schema: SCHEMA,
    title: {
      text: "pass@k over k: base vs trained checkpoints",
      subtitle: [
        "Unbiased pass@k from n samples per problem. Yue et al. (2025): RLVR raises pass@k at small k,",
        "while the base model catches up or overtakes at large k — look for the lines crossing.",
      ],
    },
    data: { values: data },
    facet: { field: "benchmark", type: "nominal", sort: order, title: null },
    columns: Math.min(3, order.length),
    spec: {
      ...PANEL,
      layer: [
        // dashes and shapes as well as colours, so that identical curves stay visible on top of each other
        {
          mark: { type: "line", strokeWidth: 2 },
          encoding: { x, y, color, ...(labels.length <= 6 ? { strokeDash: { ...color } } : {}) },
        },
        {
          mark: { type: "point", filled: true, size: 45, opacity: 0.9 },
          encoding: {
            x,
            y,
            color,
            shape: { ...color },
            tooltip: [{ field: "label" }, { field: "k" }, { field: "pass", format: ".3f" }],
          },
        },
      ],
    },
    resolve: { scale: { x: "shared", y: "shared" } },
    config: CONFIG,
  };
}

// ---------------------------------------------------------------------------------------------
// Rendering

// Advance widths (1/1000 em) of DejaVu Sans and DejaVu Sans Bold for ASCII 32…126, read from the
// font files. Without a canvas vega estimates every glyph as 0.8 em, which makes titles and
// facet headers far too wide and spreads panels apart; these widths lay text out as resvg (which
// renders with DejaVu Sans) and browsers (similar sans-serif faces) draw it.
const WIDTHS_REGULAR = [
  318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337, 636, 636, 636, 636, 636, 636, 636,
  636, 636, 636, 337, 337, 838, 838, 838, 531, 1000, 684, 686, 698, 770, 632, 575, 775, 752, 295, 295, 656, 557, 863,
  748, 787, 603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390, 337, 390, 838, 500, 500, 613, 635, 550, 635,
  615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612, 635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636,
  337, 636, 838,
];
const WIDTHS_BOLD = [
  348, 456, 521, 838, 696, 1002, 872, 306, 457, 457, 523, 838, 380, 415, 380, 365, 696, 696, 696, 696, 696, 696, 696,
  696, 696, 696, 400, 400, 838, 838, 838, 580, 1000, 774, 762, 734, 830, 683, 683, 821, 837, 372, 372, 775, 637, 995,
  837, 850, 733, 850, 770, 720, 682, 812, 774, 1103, 771, 724, 725, 457, 365, 457, 838, 500, 500, 675, 716, 593, 716,
  678, 435, 716, 712, 343, 343, 665, 343, 1042, 712, 687, 716, 716, 493, 595, 478, 712, 652, 924, 645, 652, 582, 712,
  365, 712, 838,
];
const WIDTHS_OTHER: Record<string, number> = {
  "−": 838,
  "±": 838,
  "·": 318,
  "₂": 401,
  "≥": 838,
  "…": 1000,
  "—": 1000,
  "–": 500,
  "×": 838,
};

/** Width in pixels of `text` in DejaVu Sans (bold when `bold`) at `fontSize` px. */
export function textWidth(text: string, fontSize: number, bold = false): number {
  const table = bold ? WIDTHS_BOLD : WIDTHS_REGULAR;
  let w = 0;
  for (const ch of text) {
    const c = ch.codePointAt(0) as number;
    w += c >= 32 && c <= 126 ? table[c - 32] : (WIDTHS_OTHER[ch] ?? 620) * (bold ? 1.08 : 1);
  }
  return (w / 1000) * fontSize;
}

interface TextItem {
  text?: unknown;
  fontSize?: number;
  fontWeight?: string | number;
}

function measureItem(item: TextItem, text?: unknown): number {
  const t = text === undefined ? item.text : text;
  const s = Array.isArray(t) ? t.join(" ") : t === null || t === undefined ? "" : String(t);
  const w = item.fontWeight;
  const bold =
    w === "bold" ||
    w === "bolder" ||
    (typeof w === "number" && w >= 600) ||
    (typeof w === "string" && Number(w) >= 600);
  return textWidth(s, item.fontSize ?? 11, bold);
}

/** Compiles a vega-lite spec and renders it to an SVG string (headless vega, no canvas). */
export async function renderSvg(spec: Spec): Promise<string> {
  // vega's documented hook for a user-defined text measure (as vl-convert does)
  (vega as unknown as { textMetrics: { width: (item: TextItem, text?: unknown) => number } }).textMetrics.width =
    measureItem;
  const compiled = vl.compile(spec as unknown as TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const FONT_DIRS = [
  "/usr/share/fonts",
  "/usr/local/share/fonts",
  path.join(os.homedir(), ".fonts"),
  path.join(os.homedir(), ".local/share/fonts"),
  "/System/Library/Fonts",
  "/Library/Fonts",
  "C:\\Windows\\Fonts",
];
const PREFERRED = [
  "DejaVuSans.ttf",
  "DejaVuSans-Bold.ttf",
  "LiberationSans-Regular.ttf",
  "LiberationSans-Bold.ttf",
  "Arial.ttf",
  "arial.ttf",
  "Helvetica.ttc",
];

function findFiles(dir: string, names: readonly string[], depth = 4): string[] {
  if (depth < 0 || !fs.existsSync(dir)) return [];
  const out: string[] = [];
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...findFiles(p, names, depth - 1));
    else if (names.includes(e.name) || (names.length === 0 && /\.(ttf|otf|ttc)$/i.test(e.name))) out.push(p);
  }
  return out;
}

let fontCache: { font: NonNullable<ResvgRenderOptions["font"]>; warning: string | null } | null = null;

/**
 * resvg's font setup: system fonts plus an explicit sans-serif file when one of the usual ones is
 * found (DejaVu Sans, Liberation Sans, Arial), mapped to the generic "sans-serif" family vega
 * writes. `warning` is set when no font file exists at all (PNG text would not render; SVGs are
 * unaffected because the viewer supplies fonts).
 */
export function fontSetup(): { font: NonNullable<ResvgRenderOptions["font"]>; warning: string | null } {
  if (fontCache) return fontCache;
  const preferred = FONT_DIRS.flatMap((d) => findFiles(d, PREFERRED));
  const family = preferred.some((f) => /DejaVu/i.test(f))
    ? "DejaVu Sans"
    : preferred.some((f) => /Liberation/i.test(f))
      ? "Liberation Sans"
      : preferred.length
        ? "Arial"
        : null;
  const any = preferred.length > 0 || FONT_DIRS.some((d) => findFiles(d, [], 3).length > 0);
  const font: NonNullable<ResvgRenderOptions["font"]> = { loadSystemFonts: true, fontFiles: preferred };
  if (family) Object.assign(font, { defaultFontFamily: family, sansSerifFamily: family });
  fontCache = {
    font,
    warning: any
      ? null
      : "no font files found on this machine: text in the PNG plots will be missing (the SVGs and report.html are fine)",
  };
  return fontCache;
}

/** Rasterises an SVG to PNG on a white background at `scale`× its size. */
export function svgToPng(svg: string, scale = 2): Buffer {
  const r = new Resvg(svg, { background: "white", fitTo: { mode: "zoom", value: scale }, font: fontSetup().font });
  return Buffer.from(r.render().asPng());
}

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
