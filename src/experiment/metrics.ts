// The columns of metrics.csv (one row per step) and their formatting. Row 0 is the base model
// (evaluation only); row k holds the rollouts and the update of GRPO step k, and on evaluation
// steps the held-out metrics after k updates. Empty cell = not measured at that step.
// Numbers are written with fixed precision so the file is byte-identical across identical runs.
import { createObjectCsvStringifier } from "csv-writer";
import type { BenchmarkMetrics } from "../eval/evaluate.js";
import type { EvalReport } from "../eval/report.js";
import { procedureShares } from "../eval/behaviours.js";
import type { StepStats } from "../rl/trainer.js";

/** A training row: the step's statistics and the behaviour shares of its rollouts. */
export type TrainRow = Omit<StepStats, "completions" | "examples"> & {
  procCareful: number;
  procCheck: number;
  procHasty: number;
  procNomarker: number;
};

export function trainRow(stats: StepStats): TrainRow {
  const p = procedureShares(stats.completions);
  return { ...stats, procCareful: p.careful, procCheck: p.check, procHasty: p.hasty, procNomarker: p.nomarker };
}

export const TRAIN_COLUMNS: [string, keyof TrainRow, string][] = [
  ["train_accuracy", "trainAccuracy", "mean reward of this step's rollouts on the single example (reward is 0/1)"],
  ["mean_reward", "meanReward", "mean reward (equal to train_accuracy with the 0/1 verifier reward)"],
  ["train_format_rate", "trainFormatRate", "share of rollouts with an answer in the graded form"],
  ["loss", "loss", "total GRPO loss of the last update (pg + β·kl − α·entropy)"],
  ["pg_loss", "pgLoss", "clipped surrogate part"],
  ["kl", "kl", "k3 KL to the reference (aggregated like the loss)"],
  ["entropy", "entropy", "mean token entropy of the policy on the rollouts (nats)"],
  ["clip_frac", "clipFrac", "share of response tokens whose ratio left [1−ε, 1+ε]"],
  ["grad_norm", "gradNorm", "global gradient norm before clipping"],
  ["response_length", "responseLength", "mean rollout length in tokens"],
  ["groups_with_signal", "groupsWithSignal", "share of groups whose rewards are not all equal (non-zero advantages)"],
  ["proc_careful", "procCareful", "share of rollouts following the careful procedure"],
  ["proc_check", "procCheck", "share following the self-check procedure"],
  ["proc_hasty", "procHasty", "share giving a hasty direct answer"],
  ["proc_nomarker", "procNomarker", "share ending without the graded form"],
];

export const MEAN_COLUMNS: [string, string][] = [
  ["heldout_greedy", "mean over benchmarks of greedy accuracy"],
  ["heldout_format", "mean over benchmarks of the greedy graded-form share"],
  ["heldout_acc_given_format", "mean over benchmarks of greedy accuracy among graded-form answers"],
  ["heldout_sampled", "mean over benchmarks of sampled accuracy"],
];

export function benchmarkColumns(name: string, ks: number[], n: number): string[] {
  const cols = [`${name}_greedy`, `${name}_greedy_format`, `${name}_greedy_acc_given_format`];
  if (n > 0)
    cols.push(
      `${name}_sampled`,
      `${name}_format_rate`,
      `${name}_sampled_acc_given_format`,
      ...ks.map((k) => `${name}_pass@${k}`),
    );
  cols.push(
    `${name}_length`,
    `${name}_recheck_rate`,
    `${name}_proc_careful`,
    `${name}_proc_check`,
    `${name}_proc_hasty`,
    `${name}_proc_nomarker`,
  );
  return cols;
}

export function metricsColumns(benchmarks: string[], ks: number[], n: number): string[] {
  return [
    "step",
    ...TRAIN_COLUMNS.map((c) => c[0]),
    ...MEAN_COLUMNS.map((c) => c[0]),
    ...benchmarks.flatMap((b) => benchmarkColumns(b, ks, n)),
  ];
}

export const fmt = (x: number | null | undefined): string =>
  x === null || x === undefined || Number.isNaN(x) ? "" : x.toFixed(6);

function benchmarkCells(name: string, m: BenchmarkMetrics, ks: number[], n: number): Record<string, string> {
  const c: Record<string, string> = {
    [`${name}_greedy`]: fmt(m.greedy),
    [`${name}_greedy_format`]: fmt(m.greedyFormat),
    [`${name}_greedy_acc_given_format`]: fmt(m.greedyAccGivenFormat),
  };
  if (n > 0) {
    c[`${name}_sampled`] = fmt(m.sampled);
    c[`${name}_format_rate`] = fmt(m.formatRate);
    c[`${name}_sampled_acc_given_format`] = fmt(m.sampledAccGivenFormat);
    for (const k of ks) c[`${name}_pass@${k}`] = fmt(m.passAtK[`pass@${k}`]);
  }
  c[`${name}_length`] = fmt(m.meanLength);
  c[`${name}_recheck_rate`] = fmt(m.selfCheckRate);
  for (const p of ["careful", "check", "hasty", "nomarker"] as const) c[`${name}_proc_${p}`] = fmt(m.procedures[p]);
  return c;
}

export function metricsRow(
  step: number,
  stats: StepStats | null,
  report: EvalReport | null,
  ks: number[],
  n: number,
): Record<string, string> {
  const row: Record<string, string> = { step: String(step) };
  const train = stats ? trainRow(stats) : null;
  for (const [col, key] of TRAIN_COLUMNS) row[col] = train ? fmt(train[key] as number) : "";
  if (report) {
    row.heldout_greedy = fmt(report.mean.greedy);
    row.heldout_format = fmt(report.mean.greedyFormat);
    row.heldout_acc_given_format = fmt(report.mean.greedyAccGivenFormat);
    row.heldout_sampled = fmt(report.mean.sampled);
    for (const [name, m] of Object.entries(report.benchmarks)) Object.assign(row, benchmarkCells(name, m, ks, n));
  }
  return row;
}

export class CsvFormatter {
  private readonly s: ReturnType<typeof createObjectCsvStringifier>;
  constructor(readonly columns: string[]) {
    this.s = createObjectCsvStringifier({ header: columns.map((c) => ({ id: c, title: c })) });
  }
  header(): string {
    return this.s.getHeaderString() ?? "";
  }
  rows(rows: Record<string, string>[]): string {
    return this.s.stringifyRecords(rows.map((r) => Object.fromEntries(this.columns.map((c) => [c, r[c] ?? ""]))));
  }
}
