// The findings suite's analysis, as pure functions of the runs' metrics tables and pass@k rows:
// metrics named by a small language (`<arm>:<metric>`), claims about a − b paired by seed with a
// 95 % t interval (./stats.ts), the rule that turns an interval into a verdict, the per-finding
// tables, and RESULTS.md as text. Reading files, running, and rendering plots are the CLI's job.
//
// Metrics (the part after `<arm>:`):
//   a key of compare.ts's runMetrics (heldout_final, post_saturation_gain, gain_from_skill, …), or
//   gain                     heldout_final − heldout_start
//   <columns>@<when>         a metrics.csv column at a step: <when> is a step number, start (step 0),
//                            final (its last value), sat (the first value at or after the saturation
//                            step), or peak (its largest value); <columns> is a column name, or
//                            *<suffix> (the mean over every benchmark of <benchmark><suffix>), or
//                            {add,lin}<suffix> (the mean over the listed benchmarks)
//   pass@<k>                 pass@k, mean over benchmarks, of the run's final checkpoint
import { BENCH } from "./columns.js";
import { benchmarksOf, runMetrics, series, type MetricsTable } from "./compare.js";
import { MEAN_BENCHMARK, type PasskRow } from "./passk-curve.js";
import { CI_METHOD, meanCI, type MeanCI } from "./stats.js";

export const CLAIM_EXPECT = [">", "<", "≈"] as const;
export type Expect = (typeof CLAIM_EXPECT)[number];
export const PLOT_KINDS = ["training", "format", "behaviour", "transfer", "passk"] as const;
export type PlotKind = (typeof PLOT_KINDS)[number];
export const TABLE_KINDS = ["arms", "transfer", "passk"] as const;
export type TableKind = (typeof TABLE_KINDS)[number];

/** keys of runMetrics that a metric may name, and the derived "gain" */
export const SUMMARY_METRICS = [
  "saturation_step",
  "final_train_accuracy",
  "heldout_start",
  "heldout_at_saturation",
  "heldout_final",
  "heldout_max",
  "heldout_max_step",
  "post_saturation_gain",
  "gain_from_format",
  "gain_from_skill",
  "format_start",
  "format_at_saturation",
  "format_final",
  "acc_given_format_start",
  "acc_given_format_at_saturation",
  "acc_given_format_final",
  "gain",
] as const;

export type When = number | "start" | "final" | "sat" | "peak";
export type ColumnSel = { column: string } | { suffix: string; benchmarks: string[] | "all" };
export type MetricRef =
  | { kind: "summary"; key: (typeof SUMMARY_METRICS)[number] }
  | { kind: "column"; columns: ColumnSel; when: When }
  | { kind: "passk"; k: number };

export interface ValueRef {
  arm: string;
  metric: MetricRef;
  /** the text it was parsed from */
  text: string;
}

/** Parses the metric part of a value reference; throws with the accepted forms. */
export function parseMetric(text: string): MetricRef {
  const forms =
    "use a summary key (gain, heldout_final, post_saturation_gain, …), <column>@<step|start|final|sat|peak> (column: a metrics.csv column, *<suffix> or {a,b}<suffix>), or pass@<k>";
  if ((SUMMARY_METRICS as readonly string[]).includes(text))
    return { kind: "summary", key: text as (typeof SUMMARY_METRICS)[number] };
  const pk = /^pass@(\d+)$/.exec(text);
  if (pk) return { kind: "passk", k: Number(pk[1]) };
  const m = /^(.+)@(\d+|start|final|sat|peak)$/.exec(text);
  if (!m) throw new Error(`metric ${JSON.stringify(text)} is not understood; ${forms}`);
  const when: When = /^\d+$/.test(m[2]) ? Number(m[2]) : (m[2] as When);
  const col = m[1];
  const star = /^\*(_[A-Za-z0-9_@]+)$/.exec(col);
  if (star) return { kind: "column", columns: { suffix: star[1], benchmarks: "all" }, when };
  const list = /^\{([A-Za-z0-9_-]+(?:,[A-Za-z0-9_-]+)*)\}(_[A-Za-z0-9_@]+)$/.exec(col);
  if (list) return { kind: "column", columns: { suffix: list[2], benchmarks: list[1].split(",") }, when };
  if (!/^[A-Za-z0-9_@]+$/.test(col))
    throw new Error(`metric ${JSON.stringify(text)}: bad column ${JSON.stringify(col)}; ${forms}`);
  return { kind: "column", columns: { column: col }, when };
}

/** Parses `<arm>:<metric>`. */
export function parseValueRef(text: string): ValueRef {
  const i = text.indexOf(":");
  if (i <= 0) throw new Error(`${JSON.stringify(text)}: write <arm>:<metric>, e.g. "full:heldout_final"`);
  return { arm: text.slice(0, i), metric: parseMetric(text.slice(i + 1)), text };
}

/** A run's metrics table with its saturation settings. */
export interface RunTable {
  seed: number;
  table: MetricsTable;
  threshold: number;
  window: number;
}

/** (step, value) of the selected column(s); a mean over benchmarks where every one has a value. */
export function columnSeries(t: MetricsTable, sel: ColumnSel): { step: number; value: number }[] {
  if ("column" in sel) return series(t, sel.column);
  const benches = sel.benchmarks === "all" ? benchmarksOf(t.columns) : sel.benchmarks;
  const cols = benches.map((b) => b + sel.suffix).filter((c) => t.columns.includes(c));
  if (cols.length === 0 || cols.length < benches.length) return [];
  const maps = cols.map((c) => new Map(series(t, c).map((p) => [p.step, p.value])));
  return [...maps[0].keys()]
    .filter((s) => maps.every((m) => m.has(s)))
    .sort((a, b) => a - b)
    .map((step) => ({ step, value: maps.reduce((a, m) => a + (m.get(step) as number), 0) / maps.length }));
}

/** One run's value of a metric (pass@k excluded: it is not in metrics.csv); null when not measured. */
export function runValue(r: RunTable, m: MetricRef): number | null {
  if (m.kind === "passk") throw new Error("runValue: pass@k comes from the pass@k rows, not metrics.csv");
  if (m.kind === "summary") {
    const s = runMetrics(r.table, r.threshold, r.window);
    if (m.key === "gain") {
      const a = s.heldout_final;
      const b = s.heldout_start;
      return a === null || a === undefined || b === null || b === undefined ? null : a - b;
    }
    const v = s[m.key];
    return v === undefined ? null : v;
  }
  const pts = columnSeries(r.table, m.columns);
  if (pts.length === 0) return null;
  const w = m.when;
  if (w === "final") return pts[pts.length - 1].value;
  if (w === "peak") return Math.max(...pts.map((p) => p.value));
  if (w === "start") return pts.find((p) => p.step === 0)?.value ?? null;
  if (w === "sat") {
    const sat = runMetrics(r.table, r.threshold, r.window).saturation_step ?? null;
    return sat === null ? null : (pts.find((p) => p.step >= sat)?.value ?? null);
  }
  return pts.find((p) => p.step === w)?.value ?? null;
}

/** Mean pass@k over benchmarks in a checkpoint's rows (the "mean" rows, or one benchmark's). */
export function passkValue(rows: readonly PasskRow[], k: number): number | null {
  const benches = new Set(rows.map((r) => r.benchmark));
  const use = benches.has(MEAN_BENCHMARK) ? MEAN_BENCHMARK : benches.size === 1 ? [...benches][0] : null;
  if (use === null) return null;
  return rows.find((r) => r.benchmark === use && r.k === k)?.passAtK ?? null;
}

/** What a finding's analysis knows of one arm: its runs and, for pass@k findings, each seed's curve. */
export interface ArmData {
  label: string;
  runs: RunTable[];
  passk?: Map<number, PasskRow[]>;
}

/** The base checkpoint's pass@k rows (arm "base"): one curve, the same for every seed. */
export interface SuiteData {
  arms: ArmData[];
  basePasskRows?: PasskRow[];
}

export const BASE_LABEL = "base";

/** Per-seed values of `<arm>:<metric>`; the base arm's single pass@k value is given to every seed. */
export function armValues(data: SuiteData, ref: ValueRef, seeds: readonly number[]): Map<number, number | null> {
  const out = new Map<number, number | null>();
  if (ref.arm === BASE_LABEL) {
    if (ref.metric.kind !== "passk") throw new Error(`${ref.text}: the base arm has pass@k values only`);
    const v = data.basePasskRows ? passkValue(data.basePasskRows, ref.metric.k) : null;
    for (const s of seeds) out.set(s, v);
    return out;
  }
  const arm = data.arms.find((a) => a.label === ref.arm);
  for (const s of seeds) {
    if (!arm) {
      out.set(s, null);
      continue;
    }
    if (ref.metric.kind === "passk") {
      const rows = arm.passk?.get(s);
      out.set(s, rows ? passkValue(rows, ref.metric.k) : null);
      continue;
    }
    const run = arm.runs.find((r) => r.seed === s);
    out.set(s, run ? runValue(run, ref.metric) : null);
  }
  return out;
}

/** a − b for every seed where both are measured (b may be a constant). */
export function pairedDifferences(a: Map<number, number | null>, b: Map<number, number | null> | number): number[] {
  const out: number[] = [];
  for (const [s, va] of a) {
    const vb = typeof b === "number" ? b : (b.get(s) ?? null);
    if (va !== null && vb !== null && Number.isFinite(va) && Number.isFinite(vb)) out.push(va - vb);
  }
  return out;
}

export type Verdict = "reproduced" | "not reproduced" | "opposite" | "no data";

/** |mean difference| up to which "≈" claims can count as reproduced (accuracy is a fraction in [0, 1]). */
export const EQUIVALENCE_MARGIN = 0.05;

export const VERDICT_RULE =
  "Each claim is about d = a − b, paired by seed, with the 95 % t interval of its mean over seeds. " +
  "A claim that the paper found a > b (or a < b) is reproduced when the whole interval is above 0 (below 0), " +
  "opposite when the whole interval is on the other side, and not reproduced when the interval contains 0. " +
  `A claim that the paper found no difference (≈) is reproduced when the interval contains 0 and |mean d| ≤ ${EQUIVALENCE_MARGIN}, ` +
  "and not reproduced otherwise. Fewer than two seeds with both values: no data. " +
  "A finding is reproduced when every claim is, opposite when at least one claim is opposite and none is reproduced, " +
  "and not reproduced otherwise.";

/** The verdict on one claim from its interval (see VERDICT_RULE). */
export function claimVerdict(ci: MeanCI, expect: Expect, margin = EQUIVALENCE_MARGIN): Verdict {
  if (ci.n < 2 || ci.lo === null || ci.hi === null || ci.mean === null) return "no data";
  if (expect === "≈") return ci.lo <= 0 && ci.hi >= 0 && Math.abs(ci.mean) <= margin ? "reproduced" : "not reproduced";
  const sign = expect === ">" ? 1 : -1;
  const lo = sign > 0 ? ci.lo : -ci.hi;
  const hi = sign > 0 ? ci.hi : -ci.lo;
  if (lo > 0) return "reproduced";
  if (hi < 0) return "opposite";
  return "not reproduced";
}

/** The finding's verdict from its claims' (see VERDICT_RULE). */
export function findingVerdict(verdicts: readonly Verdict[]): Verdict {
  if (verdicts.length === 0 || verdicts.every((v) => v === "no data")) return "no data";
  if (verdicts.every((v) => v === "reproduced")) return "reproduced";
  if (verdicts.some((v) => v === "opposite") && !verdicts.some((v) => v === "reproduced")) return "opposite";
  return "not reproduced";
}

/** What the analysis needs of a finding file (src/sweep/suite.ts's Finding fits it). */
export interface FindingDef {
  name: string;
  title: string;
  question: string;
  paper: { source: string; direction: string };
  notes?: string;
  seeds: number[];
  arms: { label: string; description?: string; paper?: number | string; from?: string }[];
  claims: { text: string; a: string; b: string | number; expect: Expect; paper?: string }[];
  table: TableKind;
  columns: { metric: string; header: string }[];
  plot: PlotKind;
  passk?: { n: number; limit: number; temperature: number; arms: string[] };
}

export interface ClaimResult {
  text: string;
  a: string;
  b: string | number;
  expect: Expect;
  paper?: string;
  diffs: number[];
  ci: MeanCI;
  verdict: Verdict;
}

export function evaluateClaims(f: FindingDef, data: SuiteData): ClaimResult[] {
  return f.claims.map((c) => {
    const a = armValues(data, parseValueRef(c.a), f.seeds);
    const b = typeof c.b === "number" ? c.b : armValues(data, parseValueRef(c.b), f.seeds);
    const diffs = pairedDifferences(a, b);
    const ci = meanCI(diffs);
    return { ...c, diffs, ci, verdict: claimVerdict(ci, c.expect) };
  });
}

export const DEFAULT_COLUMNS = [
  { metric: "heldout_start", header: "held-out at step 0" },
  { metric: "heldout_final", header: "held-out final" },
  { metric: "gain", header: "gain (final − step 0)" },
];

/** A table of means ± 95 % intervals over seeds: rows × columns, with the header row. */
export interface CiTable {
  corner: string;
  columns: string[];
  /** decimals per column (default 3) */
  digits?: number[];
  rows: { label: string; note?: string; cells: MeanCI[]; paper?: number | string }[];
}

/** One row per arm, one column per metric (mean ± 95 % interval over seeds). */
export function armsTable(f: FindingDef, data: SuiteData): CiTable {
  const cols = f.columns.length ? f.columns : DEFAULT_COLUMNS;
  return {
    corner: "arm",
    columns: cols.map((c) => c.header),
    // steps are whole numbers: one decimal shows a mean over seeds
    digits: cols.map((c) => (/(^|_)step$/.test(c.metric) ? 1 : 3)),
    rows: f.arms.map((arm) => ({
      label: arm.label,
      note: arm.description,
      paper: arm.paper,
      cells: cols.map((c) => meanCI([...armValues(data, parseValueRef(`${arm.label}:${c.metric}`), f.seeds).values()])),
    })),
  };
}

/** Gains (final − step 0) of greedy accuracy on every benchmark, one row per arm. */
export function transferTable(f: FindingDef, data: SuiteData): CiTable {
  const benches = [...new Set(data.arms.flatMap((a) => a.runs.flatMap((r) => benchmarksOf(r.table.columns))))];
  return {
    corner: "trained on ↓ / gain on →",
    columns: benches,
    rows: f.arms.map((arm) => ({
      label: arm.label,
      note: arm.description,
      paper: arm.paper,
      cells: benches.map((b) => {
        const fin = armValues(data, parseValueRef(`${arm.label}:${b}${BENCH.greedy}@final`), f.seeds);
        const st = armValues(data, parseValueRef(`${arm.label}:${b}${BENCH.greedy}@start`), f.seeds);
        return meanCI(pairedDifferences(fin, st));
      }),
    })),
  };
}

/** pass@k (mean over benchmarks) for k = 1, 2, 4, … n: the base, then one row per arm with curves. */
export function passkTable(f: FindingDef, data: SuiteData): CiTable {
  const ks = [
    ...new Set(
      [...(data.basePasskRows ?? []), ...data.arms.flatMap((a) => [...(a.passk?.values() ?? [])].flat())].map(
        (r) => r.k,
      ),
    ),
  ].sort((a, b) => a - b);
  const labels = [BASE_LABEL, ...(f.passk?.arms ?? [])];
  return {
    corner: "checkpoint / k",
    columns: ks.map((k) => `k = ${k}`),
    rows: labels.map((label) => ({
      label,
      note:
        label === BASE_LABEL ? "the base checkpoint (one curve)" : f.arms.find((a) => a.label === label)?.description,
      cells: ks.map((k) => meanCI([...armValues(data, parseValueRef(`${label}:pass@${k}`), f.seeds).values()])),
    })),
  };
}

export function findingTable(f: FindingDef, data: SuiteData): CiTable {
  if (f.table === "transfer") return transferTable(f, data);
  if (f.table === "passk") return passkTable(f, data);
  return armsTable(f, data);
}

/** Mean pass@k rows per arm (mean over seeds), labelled for the plot: the base first. */
export function meanPasskRows(f: FindingDef, data: SuiteData): PasskRow[] {
  const out: PasskRow[] = (data.basePasskRows ?? []).map((r) => ({ ...r, checkpoint: BASE_LABEL, label: BASE_LABEL }));
  for (const label of f.passk?.arms ?? []) {
    const curves = [...(data.arms.find((a) => a.label === label)?.passk?.values() ?? [])];
    if (curves.length === 0) continue;
    const name = `${label} (mean of ${curves.length} seed${curves.length === 1 ? "" : "s"})`;
    const keys = new Map<string, { benchmark: string; k: number; sum: number; n: number }>();
    for (const rows of curves)
      for (const r of rows) {
        const key = `${r.benchmark}/${r.k}`;
        const e = keys.get(key) ?? { benchmark: r.benchmark, k: r.k, sum: 0, n: 0 };
        e.sum += r.passAtK;
        e.n += 1;
        keys.set(key, e);
      }
    for (const e of keys.values())
      out.push({ checkpoint: label, label: name, benchmark: e.benchmark, k: e.k, passAtK: e.sum / e.n });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// RESULTS.md

export function formatCi(ci: MeanCI, digits = 3, signed = false): string {
  if (ci.mean === null) return "–";
  const f = (x: number) => (signed && x > 0 ? "+" : "") + x.toFixed(digits);
  let s = f(ci.mean);
  if (ci.halfWidth !== null) s += ` ± ${ci.halfWidth.toFixed(digits)}`;
  if (ci.n < ci.of) s += ` (${ci.n}/${ci.of})`;
  return s;
}

const md = (s: string) => s.replace(/\|/g, "\\|");

export function ciTableMarkdown(t: CiTable, signed = false): string {
  const withPaper = t.rows.some((r) => r.paper !== undefined);
  const head = [t.corner, ...t.columns, ...(withPaper ? ["paper"] : [])];
  const lines = [
    `| ${head.map(md).join(" | ")} |`,
    `|---|${t.columns.map(() => "---:").join("|")}|${withPaper ? "---:|" : ""}`,
  ];
  for (const r of t.rows) {
    const label = r.note ? `**${md(r.label)}**: ${md(r.note)}` : `**${md(r.label)}**`;
    const paper = withPaper
      ? [r.paper === undefined ? "" : typeof r.paper === "number" ? r.paper.toFixed(1) : md(r.paper)]
      : [];
    lines.push(
      `| ${[label, ...r.cells.map((c, j) => formatCi(c, t.digits?.[j] ?? 3, signed)), ...paper].join(" | ")} |`,
    );
  }
  return lines.join("\n");
}

const EXPECT_WORDS: Record<Expect, string> = { ">": "a > b", "<": "a < b", "≈": "a ≈ b" };

export function claimsMarkdown(claims: readonly ClaimResult[]): string {
  const lines = [
    "| claim (paper) | a | b | a − b (mean ± 95 % CI, n) | paper | expected | verdict |",
    "|---|---|---|---:|---|---|---|",
  ];
  for (const c of claims)
    lines.push(
      `| ${md(c.text)} | \`${md(c.a)}\` | ${typeof c.b === "number" ? c.b : `\`${md(c.b)}\``} | ${formatCi(c.ci, 3, true)}${c.ci.n ? ` (n = ${c.ci.n})` : ""} | ${md(c.paper ?? "")} | ${EXPECT_WORDS[c.expect]} | ${c.verdict} |`,
    );
  return lines.join("\n");
}

/** The finding's one plain line: its verdict and how many claims went which way. */
export function verdictLine(claims: readonly ClaimResult[]): string {
  const v = findingVerdict(claims.map((c) => c.verdict));
  const count = (x: Verdict) => claims.filter((c) => c.verdict === x).length;
  const parts = [`${count("reproduced")} of ${claims.length} claims as in the paper`];
  if (count("opposite")) parts.push(`${count("opposite")} opposite`);
  if (count("not reproduced")) parts.push(`${count("not reproduced")} not reproduced`);
  if (count("no data")) parts.push(`${count("no data")} without data`);
  return `**Verdict: ${v}** (${parts.join(", ")}).`;
}

export interface FindingReport {
  def: FindingDef;
  /** why the finding was not run (e.g. a missing checkpoint), or null */
  skipped: string | null;
  /** runs (name seed-N) without results */
  missingRuns: string[];
  /** complete runs of the arms this finding defines itself, and their summed run time (timing.json) */
  ownRuns: number;
  ownRunSeconds: number;
  table: CiTable | null;
  claims: ClaimResult[];
  /** the figure's path relative to RESULTS.md, or null */
  figure: string | null;
  command: string;
}

export interface ResultsMeta {
  /** the command that regenerates RESULTS.md */
  command: string;
  out: string;
  /** wall time of the suite invocations that ran work, in seconds, and how many there were */
  wallSeconds: number;
  invocations: number;
  jobs: number[];
  /** run time summed over complete runs (timing.json), seconds */
  runSeconds: number;
  runs: number;
  passkSeconds: number;
  machine: string;
}

/** "x seed 1", "x seed 2", "y" → "x (seeds 1, 2), y" */
export function compactRuns(runs: readonly string[]): string {
  const groups = new Map<string, string[]>();
  for (const r of runs) {
    const m = /^(.*) seed (\d+)$/.exec(r);
    const key = m ? m[1] : r;
    const seeds = groups.get(key) ?? [];
    if (m) seeds.push(m[2]);
    groups.set(key, seeds);
  }
  return [...groups.entries()]
    .map(([k, seeds]) => (seeds.length ? `${k} (seed${seeds.length === 1 ? "" : "s"} ${seeds.join(", ")})` : k))
    .join(", ");
}

export function formatDuration(s: number): string {
  const r = Math.round(s);
  if (r < 60) return `${r} s`;
  if (r < 3600) return `${Math.floor(r / 60)} min ${String(r % 60).padStart(2, "0")} s`;
  return `${Math.floor(r / 3600)} h ${String(Math.floor((r % 3600) / 60)).padStart(2, "0")} min`;
}

export function resultsMarkdown(reports: readonly FindingReport[], meta: ResultsMeta): string {
  const out: string[] = [];
  out.push("# Results: the 1-shot RLVR paper's findings on the model organism", "");
  out.push(
    `Generated by \`${meta.command}\` from the run files in \`${meta.out}/\`; every number, table and figure below comes from those files. Do not edit by hand: rerun the command.`,
    "",
  );
  out.push(
    "The paper is Wang et al. 2025, *Reinforcement Learning for Reasoning in Large Language Models with One Training Example* (Qwen2.5-Math-1.5B, MATH500 unless said otherwise). Here the model is the project's model organism (docs/organism.md) and the test is greedy accuracy on held-out benchmarks of its four problem families, mean over the four unless said otherwise.",
    "",
  );
  out.push(
    `**Wall time on ${meta.machine}:** ${formatDuration(meta.wallSeconds)} over ${meta.invocations} invocation${meta.invocations === 1 ? "" : "s"} of \`npm run suite\` that ran work (--jobs ${[...new Set(meta.jobs)].join(", ") || "–"}), of which pass@k sampling ${formatDuration(meta.passkSeconds)}; the ${meta.runs} training runs took ${formatDuration(meta.runSeconds)} summed over runs (each run's timing.json).`,
    "",
  );
  out.push("## Summary", "", "| finding | verdict | claims as in the paper | seeds |", "|---|---|---:|---|");
  for (const r of reports) {
    const name = `[${r.def.title}](#${anchor(r.def)})`;
    if (r.skipped) {
      out.push(`| ${name} | not run: ${md(r.skipped)} | – | – |`);
      continue;
    }
    const v = findingVerdict(r.claims.map((c) => c.verdict));
    const rep = r.claims.filter((c) => c.verdict === "reproduced").length;
    out.push(
      `| ${name} | ${v}${r.missingRuns.length ? ` (${r.missingRuns.length} runs missing)` : ""} | ${rep} of ${r.claims.length} | ${r.def.seeds.join(", ")} |`,
    );
  }
  out.push("");
  const missing = reports.filter((r) => r.skipped || r.missingRuns.length);
  if (missing.length) {
    out.push("**Missing:**", "");
    for (const r of missing)
      out.push(
        r.skipped
          ? `- ${r.def.title}: not run — ${r.skipped}.`
          : `- ${r.def.title}: ${r.missingRuns.length} run${r.missingRuns.length === 1 ? "" : "s"} without results (${compactRuns(r.missingRuns)}); its numbers use the runs that finished.`,
      );
    out.push("");
  }
  out.push("## Method", "");
  out.push(`- Intervals: ${CI_METHOD}`);
  out.push(`- Verdicts: ${VERDICT_RULE}`);
  out.push(
    "- Metrics are named `<arm>:<metric>` (docs/suite.md): `heldout_final` is greedy held-out accuracy at the last evaluation, `gain` is that minus step 0, `<column>@<when>` a metrics.csv column at a step, `*<suffix>` the mean over benchmarks, `pass@k` the unbiased pass@k of the final checkpoint.",
    "",
  );
  for (const r of reports) {
    out.push(`## ${r.def.title}`, "");
    out.push(`*${r.def.question}*`, "");
    out.push(`**Paper** (${r.def.paper.source}): ${r.def.paper.direction}`, "");
    if (r.def.notes) out.push(r.def.notes, "");
    out.push(`Reproduce: \`${r.command}\``, "");
    if (r.skipped) {
      out.push(`**Not run:** ${r.skipped}.`, "");
      continue;
    }
    out.push(
      `Runs: ${r.ownRuns} runs of this finding's own arms complete (${formatDuration(r.ownRunSeconds)} of run time)${
        r.def.arms.some((a) => a.from)
          ? `; arms taken from other findings: ${r.def.arms
              .filter((a) => a.from)
              .map((a) => `${a.label} = ${a.from}`)
              .join(", ")}`
          : ""
      }.${r.missingRuns.length ? ` Missing: ${compactRuns(r.missingRuns)}.` : ""}`,
      "",
    );
    if (r.table) out.push(ciTableMarkdown(r.table, r.def.table === "transfer"), "");
    out.push(claimsMarkdown(r.claims), "");
    if (r.figure) out.push(`![${r.def.title}](${r.figure})`, "");
    out.push(verdictLine(r.claims), "");
  }
  return out.join("\n");
}

function anchor(f: FindingDef): string {
  return f.title
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, "")
    .trim()
    .replace(/ /g, "-");
}
