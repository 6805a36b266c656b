// The columns of metrics.csv (one row per step) and their formatting. Row 0 is the base model
// (evaluation only); row k holds the rollouts and the update of GRPO step k, and on evaluation
// steps the held-out metrics after k updates. Empty cell = not measured at that step.
// Numbers are written with fixed precision so the file is byte-identical across identical runs.
import { createObjectCsvStringifier } from "csv-writer";
import type { BenchmarkMetrics } from "../eval/evaluate.js";
import type { EvalReport } from "../eval/report.js";
import { BENCH, COL } from "../analysis/columns.js";
import { procedureShares } from "../eval/behaviours.js";
import { PROCEDURES } from "../world/procedures.js";
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
  [COL.trainAccuracy, "trainAccuracy", "mean reward of this step's rollouts on the single example (reward is 0/1)"],
  [COL.meanReward, "meanReward", "mean reward (equal to train_accuracy with the 0/1 verifier reward)"],
  [COL.trainFormatRate, "trainFormatRate", "share of rollouts with an answer in the graded form"],
  [COL.loss, "loss", "total GRPO loss of the last update (pg + β·kl − α·entropy)"],
  [COL.pgLoss, "pgLoss", "clipped surrogate part"],
  [COL.kl, "kl", "k3 KL to the reference (aggregated like the loss)"],
  [COL.entropy, "entropy", "mean token entropy of the policy on the rollouts (nats)"],
  [COL.clipFrac, "clipFrac", "share of response tokens whose ratio left [1−ε, 1+ε]"],
  [COL.gradNorm, "gradNorm", "global gradient norm before clipping"],
  [COL.responseLength, "responseLength", "mean rollout length in tokens"],
  [COL.groupsWithSignal, "groupsWithSignal", "share of groups whose rewards are not all equal (non-zero advantages)"],
  [COL.procCareful, "procCareful", "share of rollouts following the careful procedure"],
  [COL.procCheck, "procCheck", "share following the self-check procedure"],
  [COL.procHasty, "procHasty", "share giving a hasty direct answer"],
  [COL.procNomarker, "procNomarker", "share ending without the graded form"],
];

export const MEAN_COLUMNS: [string, string][] = [
  [COL.heldoutGreedy, "mean over benchmarks of greedy accuracy"],
  [COL.heldoutFormat, "mean over benchmarks of the greedy graded-form share"],
  [COL.heldoutAccGivenFormat, "mean over benchmarks of greedy accuracy among graded-form answers"],
  [COL.heldoutSampled, "mean over benchmarks of sampled accuracy"],
];

export function benchmarkColumns(name: string, ks: number[], n: number): string[] {
  const cols = [name + BENCH.greedy, name + BENCH.greedyFormat, name + BENCH.greedyAccGivenFormat];
  if (n > 0)
    cols.push(
      name + BENCH.sampled,
      name + BENCH.formatRate,
      name + BENCH.sampledAccGivenFormat,
      ...ks.map((k) => name + BENCH.passAt(k)),
    );
  cols.push(name + BENCH.length, name + BENCH.recheckRate, ...PROCEDURES.map((p) => name + BENCH.proc(p)));
  return cols;
}

export function metricsColumns(benchmarks: string[], ks: number[], n: number): string[] {
  return [
    COL.step,
    ...TRAIN_COLUMNS.map((c) => c[0]),
    ...MEAN_COLUMNS.map((c) => c[0]),
    ...benchmarks.flatMap((b) => benchmarkColumns(b, ks, n)),
  ];
}

export const fmt = (x: number | null | undefined): string =>
  x === null || x === undefined || Number.isNaN(x) ? "" : x.toFixed(6);

function benchmarkCells(name: string, m: BenchmarkMetrics, ks: number[], n: number): Record<string, string> {
  const c: Record<string, string> = {
    [name + BENCH.greedy]: fmt(m.greedy),
    [name + BENCH.greedyFormat]: fmt(m.greedyFormat),
    [name + BENCH.greedyAccGivenFormat]: fmt(m.greedyAccGivenFormat),
  };
  if (n > 0) {
    c[name + BENCH.sampled] = fmt(m.sampled);
    c[name + BENCH.formatRate] = fmt(m.formatRate);
    c[name + BENCH.sampledAccGivenFormat] = fmt(m.sampledAccGivenFormat);
    for (const k of ks) c[name + BENCH.passAt(k)] = fmt(m.passAtK[`pass@${k}`]);
  }
  c[name + BENCH.length] = fmt(m.meanLength);
  c[name + BENCH.recheckRate] = fmt(m.selfCheckRate);
  for (const p of PROCEDURES) c[name + BENCH.proc(p)] = fmt(m.procedures[p]);
  return c;
}

export function metricsRow(
  step: number,
  stats: StepStats | null,
  report: EvalReport | null,
  ks: number[],
  n: number,
): Record<string, string> {
  const row: Record<string, string> = { [COL.step]: String(step) };
  const train = stats ? trainRow(stats) : null;
  for (const [col, key] of TRAIN_COLUMNS) row[col] = train ? fmt(train[key] as number) : "";
  if (report) {
    row[COL.heldoutGreedy] = fmt(report.mean.greedy);
    row[COL.heldoutFormat] = fmt(report.mean.greedyFormat);
    row[COL.heldoutAccGivenFormat] = fmt(report.mean.greedyAccGivenFormat);
    row[COL.heldoutSampled] = fmt(report.mean.sampled);
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
