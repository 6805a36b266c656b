// Comparing runs: parses metrics.csv text, recomputes each run's saturation summary with
// src/analysis/saturation.ts, aggregates runs of the same experiment over seeds (mean and t
// confidence interval from ./stats.ts) and formats the result as an aligned text table, CSV and
// Markdown. Pure functions: reading files, walking directories and writing outputs happen in
// src/cli/compare.ts. This is not a plotting module (./plots.ts) nor an HTML writer (./html.ts).
import { BENCH, COL } from "./columns.js";
import path from "node:path";
import { summarise, saturationStep, type EvalPoint } from "./saturation.js";
import { meanCI, CI_METHOD } from "./stats.js";

export const DEFAULT_THRESHOLD = 0.95;
export const DEFAULT_WINDOW = 5;

// ---------------------------------------------------------------------------------------------
// CSV

/** Splits CSV text into rows of string cells (RFC 4180 quotes supported; blank lines skipped). */
export function parseCsvText(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = "";
  let quoted = false;
  const src = text.replace(/^\uFEFF/, "");
  for (let i = 0; i < src.length; i++) {
    const ch = src[i];
    if (quoted) {
      if (ch === '"' && src[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"' && cell === "") quoted = true;
    else if (ch === ",") {
      row.push(cell);
      cell = "";
    } else if (ch === "\n" || ch === "\r") {
      if (ch === "\r" && src[i + 1] === "\n") i++;
      row.push(cell);
      if (row.length > 1 || row[0] !== "") rows.push(row);
      row = [];
      cell = "";
    } else cell += ch;
  }
  row.push(cell);
  if (row.length > 1 || row[0] !== "") rows.push(row);
  return rows;
}

/** A metrics.csv held column by column; null = not measured at that step (empty cell). */
export interface MetricsTable {
  columns: string[];
  values: Record<string, (number | null)[]>;
  /** number of rows (steps) */
  length: number;
}

/** Parses and checks a results metrics.csv; `name` (usually the file path) appears in every error. */
export function parseMetricsCsv(text: string, name: string): MetricsTable {
  const rows = parseCsvText(text);
  if (rows.length === 0) throw new Error(`${name}: empty file, not a results metrics.csv`);
  const columns = rows[0].map((c) => c.trim());
  if (!columns.includes(COL.step) || !(columns.includes(COL.trainAccuracy) || columns.includes(COL.heldoutGreedy))) {
    const missing = ["step", "train_accuracy or heldout_greedy"].filter((c) =>
      c === "step"
        ? !columns.includes(COL.step)
        : !columns.includes(COL.trainAccuracy) && !columns.includes(COL.heldoutGreedy),
    );
    throw new Error(
      `${name}: not a results metrics.csv (missing column ${missing.map((m) => `"${m}"`).join(" and ")}; header starts ${JSON.stringify(columns.slice(0, 4).join(","))})`,
    );
  }
  const dup = columns.find((c, i) => columns.indexOf(c) !== i);
  if (dup) throw new Error(`${name}: column "${dup}" appears twice in the header`);
  const values: Record<string, (number | null)[]> = Object.fromEntries(columns.map((c) => [c, []]));
  for (let r = 1; r < rows.length; r++) {
    const cells = rows[r];
    if (cells.length !== columns.length)
      throw new Error(`${name}: line ${r + 1} has ${cells.length} cells, the header has ${columns.length}`);
    cells.forEach((raw, j) => {
      const s = raw.trim();
      if (s === "") return void values[columns[j]].push(null);
      const v = Number(s);
      if (!Number.isFinite(v))
        throw new Error(
          `${name}: line ${r + 1}, column "${columns[j]}": expected a number or an empty cell, got ${JSON.stringify(s)}`,
        );
      values[columns[j]].push(v);
    });
  }
  if (values.step.some((s) => s === null)) throw new Error(`${name}: a row has an empty "step" cell`);
  return { columns, values, length: rows.length - 1 };
}

/** The table restricted to the given columns (in the given order; missing ones are skipped). */
export function projectTable(t: MetricsTable, columns: readonly string[]): MetricsTable {
  const keep = columns.filter((c) => t.columns.includes(c));
  return { columns: keep, values: Object.fromEntries(keep.map((c) => [c, t.values[c]])), length: t.length };
}

/** The (step, value) pairs of a column where it was measured. */
export function series(t: MetricsTable, column: string): { step: number; value: number }[] {
  const col = t.values[column];
  if (!col) return [];
  const out: { step: number; value: number }[] = [];
  for (let i = 0; i < t.length; i++)
    if (col[i] !== null) out.push({ step: t.values.step[i] as number, value: col[i] as number });
  return out;
}

/** Benchmark names: every `<b>` with a `<b>_greedy` column. */
export function benchmarksOf(columns: readonly string[]): string[] {
  return columns
    .filter((c) => c.endsWith(BENCH.greedy) && c !== COL.heldoutGreedy)
    .map((c) => c.slice(0, -BENCH.greedy.length));
}

/** The `<b>_pass@<k>` columns, by benchmark order then k. */
export function passkColumnsOf(columns: readonly string[]): { column: string; benchmark: string; k: number }[] {
  const out: { column: string; benchmark: string; k: number }[] = [];
  for (const c of columns) {
    const m = /^(.+)_pass@(\d+)$/.exec(c);
    if (m) out.push({ column: c, benchmark: m[1], k: Number(m[2]) });
  }
  const order = benchmarksOf(columns);
  return out.sort((a, b) => order.indexOf(a.benchmark) - order.indexOf(b.benchmark) || a.k - b.k);
}

/** Columns present in every table, in the first table's order, and the ones left out. */
export function sharedColumns(tables: readonly MetricsTable[]): { shared: string[]; dropped: string[] } {
  if (tables.length === 0) return { shared: [], dropped: [] };
  const shared = tables[0].columns.filter((c) => tables.every((t) => t.columns.includes(c)));
  const all = [...new Set(tables.flatMap((t) => t.columns))];
  return { shared, dropped: all.filter((c) => !shared.includes(c)) };
}

// ---------------------------------------------------------------------------------------------
// Runs

export interface RunInfo {
  /** path of the metrics.csv */
  file: string;
  experiment: string;
  /** "<experiment>/seed-N" (or "<experiment>/<dir>") */
  label: string;
  seed: number | null;
  threshold: number;
  window: number;
  table: MetricsTable;
}

/** The part of config.resolved.json that comparison reads. */
export interface RunConfig {
  name?: unknown;
  seeds?: unknown;
  saturation?: { threshold?: unknown; window?: unknown };
}

/**
 * Names a run from its metrics.csv path and (if present) its config.resolved.json: the experiment
 * is config `name`, else the parent of a `seed-N` directory, else the CSV's directory; the seed is
 * N from `seed-N`, else config `seeds[0]`.
 */
export function identifyRun(
  file: string,
  config: RunConfig | null,
): { experiment: string; label: string; seed: number | null; threshold: number; window: number } {
  const dir = path.dirname(path.resolve(file));
  const base = path.basename(dir);
  const seedMatch = /^seed-(\d+)$/.exec(base);
  const cfgSeed =
    Array.isArray(config?.seeds) && config!.seeds.length === 1 && typeof config!.seeds[0] === "number"
      ? (config!.seeds[0] as number)
      : null;
  const seed = seedMatch ? Number(seedMatch[1]) : cfgSeed;
  const experiment =
    typeof config?.name === "string" && config.name ? config.name : seedMatch ? path.basename(path.dirname(dir)) : base;
  const fileBase = path.basename(file);
  const runPart = seedMatch
    ? base
    : seed !== null
      ? `seed-${seed}`
      : fileBase === "metrics.csv"
        ? base
        : fileBase.replace(/\.csv$/i, "");
  const threshold = typeof config?.saturation?.threshold === "number" ? config.saturation.threshold : DEFAULT_THRESHOLD;
  const window = typeof config?.saturation?.window === "number" ? config.saturation.window : DEFAULT_WINDOW;
  return { experiment, label: `${experiment}/${runPart}`, seed, threshold, window };
}

/** Sorts runs by experiment name, then seed, then path, and makes labels unique. */
export function orderRuns(runs: RunInfo[]): RunInfo[] {
  const sorted = [...runs].sort(
    (a, b) =>
      a.experiment.localeCompare(b.experiment) ||
      (a.seed ?? Infinity) - (b.seed ?? Infinity) ||
      a.file.localeCompare(b.file),
  );
  const seen = new Map<string, number>();
  return sorted.map((r) => {
    const k = seen.get(r.label) ?? 0;
    seen.set(r.label, k + 1);
    return k === 0 ? r : { ...r, label: `${r.label} (${k + 1})` };
  });
}

// ---------------------------------------------------------------------------------------------
// Metrics per run

export interface MetricDef {
  key: string;
  /** short column header */
  header: string;
  description: string;
  group: string;
  /** decimals for a run's value (a mean gets one more for integer-valued metrics) */
  digits: number;
}

export const GROUP_SATURATION = "Saturation and held-out greedy accuracy (mean over benchmarks)";
export const GROUP_FORMAT =
  "Format vs skill on held-out greedy answers: graded-form share (fmt) and accuracy among graded answers (acc|fmt)";
export const GROUP_PASSK = "Final pass@k per benchmark (sampled, unbiased estimator)";

export function metricDefs(columns: readonly string[]): MetricDef[] {
  const S = GROUP_SATURATION;
  const F = GROUP_FORMAT;
  const defs: MetricDef[] = [
    {
      key: "saturation_step",
      header: "sat step",
      description: "first step whose trailing-window mean training accuracy reaches the threshold",
      group: S,
      digits: 0,
    },
    {
      key: "final_train_accuracy",
      header: "train(last W)",
      description: "mean training accuracy over the last window of steps",
      group: S,
      digits: 3,
    },
    {
      key: "heldout_start",
      header: "start",
      description: "held-out greedy accuracy of the base model (step 0)",
      group: S,
      digits: 3,
    },
    {
      key: "heldout_at_saturation",
      header: "@sat",
      description: "held-out greedy accuracy at the first evaluation at or after saturation",
      group: S,
      digits: 3,
    },
    {
      key: "heldout_final",
      header: "final",
      description: "held-out greedy accuracy at the last evaluation",
      group: S,
      digits: 3,
    },
    {
      key: "heldout_max",
      header: "max",
      description: "highest held-out greedy accuracy of any evaluation",
      group: S,
      digits: 3,
    },
    {
      key: "heldout_max_step",
      header: "max step",
      description: "step of that highest evaluation",
      group: S,
      digits: 0,
    },
    {
      key: "post_saturation_gain",
      header: "post-sat gain",
      description: "final − @sat (null without saturation)",
      group: S,
      digits: 3,
    },
    {
      key: "gain_from_format",
      header: "gain: fmt",
      description: "part of the post-saturation gain from more graded-form answers (Σ_b a₀·Δf / B)",
      group: F,
      digits: 3,
    },
    {
      key: "gain_from_skill",
      header: "gain: acc|fmt",
      description: "part of the post-saturation gain from accuracy among graded answers (Σ_b f₁·Δa / B)",
      group: F,
      digits: 3,
    },
    {
      key: "format_start",
      header: "fmt start",
      description: "share of greedy answers in the graded form, step 0",
      group: F,
      digits: 3,
    },
    {
      key: "format_at_saturation",
      header: "fmt @sat",
      description: "graded-form share at saturation",
      group: F,
      digits: 3,
    },
    {
      key: "format_final",
      header: "fmt final",
      description: "graded-form share at the last evaluation",
      group: F,
      digits: 3,
    },
    {
      key: "acc_given_format_start",
      header: "acc|fmt start",
      description: "accuracy among graded-form answers, step 0",
      group: F,
      digits: 3,
    },
    {
      key: "acc_given_format_at_saturation",
      header: "acc|fmt @sat",
      description: "accuracy among graded-form answers at saturation",
      group: F,
      digits: 3,
    },
    {
      key: "acc_given_format_final",
      header: "acc|fmt final",
      description: "accuracy among graded-form answers at the last evaluation",
      group: F,
      digits: 3,
    },
  ];
  for (const p of passkColumnsOf(columns)) {
    defs.push({
      key: p.column,
      header: `${p.benchmark} p@${p.k}`,
      description: `pass@${p.k} on ${p.benchmark} at the last evaluation`,
      group: GROUP_PASSK,
      digits: 3,
    });
  }
  return defs;
}

const last = (xs: { step: number; value: number }[]): number | null => (xs.length ? xs[xs.length - 1].value : null);
const nn = (x: number | null | undefined): number | null =>
  x === null || x === undefined || Number.isNaN(x) ? null : x;

/** Recomputes one run's comparison metrics from its table (keys as in metricDefs). */
export function runMetrics(t: MetricsTable, threshold: number, window: number): Record<string, number | null> {
  const train = series(t, COL.trainAccuracy);
  const held = series(t, COL.heldoutGreedy);
  const out: Record<string, number | null> = {};
  const byStep = (col: string) => new Map(series(t, col).map((p) => [p.step, p.value]));
  if (held.length > 0) {
    const fmt = byStep(COL.heldoutFormat);
    const agf = byStep(COL.heldoutAccGivenFormat);
    const smp = byStep(COL.heldoutSampled);
    const benches = t.columns
      .filter((c) => c.endsWith(BENCH.greedyFormat))
      .map((c) => c.slice(0, -BENCH.greedyFormat.length));
    const perB = benches.map((b) => ({ b, g: byStep(b + BENCH.greedy), f: byStep(b + BENCH.greedyFormat) }));
    const evals: EvalPoint[] = held.map((h) => ({
      step: h.step,
      heldout: h.value,
      format: fmt.get(h.step) ?? NaN,
      accGivenFormat: agf.get(h.step) ?? null,
      sampled: smp.get(h.step) ?? null,
      perBenchmark: perB.length
        ? Object.fromEntries(perB.map(({ b, g, f }) => [b, { greedy: g.get(h.step) ?? 0, format: f.get(h.step) ?? 0 }]))
        : undefined,
    }));
    const s = summarise(train, evals, threshold, window, 0);
    Object.assign(out, {
      saturation_step: s.saturationStep,
      final_train_accuracy: s.finalTrainAccuracy,
      heldout_start: s.heldoutAtStart,
      heldout_at_saturation: s.heldoutAtSaturation,
      heldout_final: s.heldoutFinal,
      heldout_max: s.heldoutMax,
      heldout_max_step: s.heldoutMaxStep,
      post_saturation_gain: s.postSaturationGain,
      gain_from_format: s.postSaturationGainFromFormat,
      gain_from_skill: s.postSaturationGainFromAccuracyGivenFormat,
      format_start: nn(s.formatAtStart),
      format_at_saturation: nn(s.formatAtSaturation),
      format_final: nn(s.formatFinal),
      acc_given_format_start: s.accGivenFormatAtStart,
      acc_given_format_at_saturation: s.accGivenFormatAtSaturation,
      acc_given_format_final: s.accGivenFormatFinal,
    });
  } else {
    const lastTrain = train.slice(-window);
    out.saturation_step = saturationStep(train, threshold, window);
    out.final_train_accuracy = lastTrain.length ? lastTrain.reduce((a, p) => a + p.value, 0) / lastTrain.length : null;
  }
  for (const p of passkColumnsOf(t.columns)) out[p.column] = last(series(t, p.column));
  return out;
}

// ---------------------------------------------------------------------------------------------
// The comparison table

export interface Cell {
  value: number | null;
  /** half-width of the 95% interval (mean rows with n >= 2) */
  halfWidth: number | null;
  /** values present / runs in the row */
  n: number;
  of: number;
}

export interface TableRow {
  kind: "run" | "mean";
  experiment: string;
  label: string;
  cells: Record<string, Cell>;
}

export interface Comparison {
  metrics: MetricDef[];
  rows: TableRow[];
  runs: RunInfo[];
  shared: string[];
  dropped: string[];
  method: string;
}

/** Builds the comparison: one row per run, then one aggregate row per experiment. */
export function compareRuns(inputRuns: RunInfo[], level = 0.95): Comparison {
  if (inputRuns.length === 0) throw new Error("compare: no runs to compare");
  const { shared, dropped } = sharedColumns(inputRuns.map((r) => r.table));
  const runs = orderRuns(inputRuns).map((r) => ({ ...r, table: projectTable(r.table, shared) }));
  const metrics = metricDefs(shared);
  const values = runs.map((r) => runMetrics(r.table, r.threshold, r.window));
  const rows: TableRow[] = runs.map((r, i) => ({
    kind: "run",
    experiment: r.experiment,
    label: r.label,
    cells: Object.fromEntries(
      metrics.map((m) => [
        m.key,
        { value: values[i][m.key] ?? null, halfWidth: null, n: values[i][m.key] == null ? 0 : 1, of: 1 },
      ]),
    ),
  }));
  const experiments = [...new Set(runs.map((r) => r.experiment))];
  for (const e of experiments) {
    const idx = runs.map((r, i) => (r.experiment === e ? i : -1)).filter((i) => i >= 0);
    const cells: Record<string, Cell> = {};
    for (const m of metrics) {
      const ci = meanCI(
        idx.map((i) => values[i][m.key] ?? null),
        level,
      );
      cells[m.key] = { value: ci.mean, halfWidth: ci.halfWidth, n: ci.n, of: ci.of };
    }
    rows.push({ kind: "mean", experiment: e, label: `${e} (mean of ${idx.length})`, cells });
  }
  return { metrics, rows, runs, shared, dropped, method: CI_METHOD };
}

// ---------------------------------------------------------------------------------------------
// Formatting

/** A cell as text: "0.512", "0.512 ± 0.034", "41.0 ± 5.2 (2/3)", "-" when missing. */
export function formatCell(c: Cell, m: MetricDef, kind: "run" | "mean"): string {
  if (c.value === null) return kind === "mean" && c.of > 0 ? `- (0/${c.of})` : "-";
  const digits = kind === "mean" && m.digits === 0 ? 1 : m.digits;
  let s = c.value.toFixed(digits);
  if (c.halfWidth !== null) s += ` ± ${c.halfWidth.toFixed(digits)}`;
  if (kind === "mean" && c.n < c.of) s += ` (${c.n}/${c.of})`;
  return s;
}

/** Metric groups in order, each split into chunks whose text rows fit in `maxWidth` characters. */
export function tableChunks(cmp: Comparison, maxWidth = 160): { group: string; metrics: MetricDef[] }[] {
  const labelW = Math.max("run".length, ...cmp.rows.map((r) => r.label.length));
  const width = (m: MetricDef) =>
    Math.max(m.header.length, ...cmp.rows.map((r) => formatCell(r.cells[m.key], m, r.kind).length));
  const out: { group: string; metrics: MetricDef[] }[] = [];
  for (const group of [...new Set(cmp.metrics.map((m) => m.group))]) {
    let cur: MetricDef[] = [];
    let w = labelW;
    for (const m of cmp.metrics.filter((x) => x.group === group)) {
      const mw = width(m) + 2;
      if (cur.length > 0 && w + mw > maxWidth) {
        out.push({ group, metrics: cur });
        cur = [];
        w = labelW;
      }
      cur.push(m);
      w += mw;
    }
    if (cur.length) out.push({ group, metrics: cur });
  }
  return out;
}

/** Aligned plain-text tables (one block per metric group), a legend and the method. */
export function formatText(cmp: Comparison, maxWidth = 160): string {
  const labelW = Math.max("run".length, ...cmp.rows.map((r) => r.label.length));
  const blocks: string[] = [];
  for (const chunk of tableChunks(cmp, maxWidth)) {
    const cells = cmp.rows.map((r) => chunk.metrics.map((m) => formatCell(r.cells[m.key], m, r.kind)));
    const widths = chunk.metrics.map((m, j) => Math.max(m.header.length, ...cells.map((c) => c[j].length)));
    const line = (label: string, cs: string[]) =>
      [label.padEnd(labelW), ...cs.map((c, j) => c.padStart(widths[j]))].join("  ");
    const lines = [
      chunk.group,
      line(
        "run",
        chunk.metrics.map((m) => m.header),
      ),
      "-".repeat(labelW + widths.reduce((a, w) => a + w + 2, 0)),
    ];
    let prevKind: string | null = null;
    cmp.rows.forEach((r, i) => {
      if (prevKind === "run" && r.kind === "mean")
        lines.push("-".repeat(labelW + widths.reduce((a, w) => a + w + 2, 0)));
      prevKind = r.kind;
      lines.push(line(r.label, cells[i]));
    });
    blocks.push(lines.join("\n"));
  }
  return blocks.join("\n\n");
}

export function legendLines(cmp: Comparison): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const m of cmp.metrics) {
    if (m.group === GROUP_PASSK) continue;
    if (seen.has(m.header)) continue;
    seen.add(m.header);
    out.push(`${m.header}: ${m.description}`);
  }
  if (cmp.metrics.some((m) => m.group === GROUP_PASSK))
    out.push("<bench> p@k: pass@k on that benchmark at the last evaluation");
  return out;
}

const csvCell = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
/** CSV numbers: integers as such for step-valued metrics on run rows, else 6 decimals. */
const num = (x: number | null, m: MetricDef, kind: "run" | "mean") =>
  x === null ? "" : m.digits === 0 && kind === "run" && Number.isInteger(x) ? String(x) : x.toFixed(6);

/**
 * The table as CSV: kind (run|mean), experiment, run, runs, then for every metric `<key>` (the
 * run's value or the mean), `<key>_ci95` (half-width, mean rows only) and `<key>_n` (values present).
 */
export function toCsv(cmp: Comparison): string {
  const head = [
    "kind",
    "experiment",
    "run",
    "runs",
    ...cmp.metrics.flatMap((m) => [m.key, `${m.key}_ci95`, `${m.key}_n`]),
  ];
  const lines = [head.map(csvCell).join(",")];
  for (const r of cmp.rows) {
    const of = Math.max(0, ...Object.values(r.cells).map((c) => c.of));
    const cells = [
      r.kind,
      r.experiment,
      r.label,
      String(of),
      ...cmp.metrics.flatMap((m) => {
        const c = r.cells[m.key];
        return [num(c.value, m, r.kind), num(c.halfWidth, m, "mean"), String(c.n)];
      }),
    ];
    lines.push(cells.map(csvCell).join(","));
  }
  return lines.join("\n") + "\n";
}

const mdEscape = (s: string) => s.replace(/\|/g, "\\|");

/** Markdown: one table per metric group chunk, bold aggregate rows, then the legend and method. */
export function toMarkdown(cmp: Comparison, title = "Run comparison"): string {
  const out: string[] = [`# ${title}`, ""];
  out.push(
    `Runs: ${cmp.runs.length} in ${new Set(cmp.runs.map((r) => r.experiment)).size} experiment(s). Aggregates: ${cmp.method}`,
    "",
  );
  for (const chunk of tableChunks(cmp, 200)) {
    out.push(`## ${chunk.group}`, "");
    out.push(`| run | ${chunk.metrics.map((m) => mdEscape(m.header)).join(" | ")} |`);
    out.push(`|---|${chunk.metrics.map(() => "---:").join("|")}|`);
    for (const r of cmp.rows) {
      const label = r.kind === "mean" ? `**${mdEscape(r.label)}**` : mdEscape(r.label);
      out.push(
        `| ${label} | ${chunk.metrics.map((m) => mdEscape(formatCell(r.cells[m.key], m, r.kind))).join(" | ")} |`,
      );
    }
    out.push("");
  }
  out.push("## Columns", "", ...legendLines(cmp).map((l) => `- ${mdEscape(l)}`), "");
  out.push(
    "## Runs",
    "",
    ...cmp.runs.map(
      (r) => `- ${mdEscape(r.label)}: \`${r.file}\` (saturation threshold ${r.threshold}, window ${r.window})`,
    ),
    "",
  );
  if (cmp.dropped.length)
    out.push(
      `Compared on the ${cmp.shared.length} columns all runs share; left out: ${cmp.dropped.map((c) => `\`${c}\``).join(", ")}.`,
      "",
    );
  return out.join("\n");
}
