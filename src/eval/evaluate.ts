// Held-out evaluation of a model on benchmarks: greedy accuracy, sampled accuracy, unbiased
// pass@k, the rate of answers in the graded form and the accuracy among them (so that format
// correction and real improvement can be told apart), response length, self-check word rate
// and the share of each solution procedure in the samples.
import type { Rng } from "../engine/rng.js";
import type { CausalLM } from "../model/family.js";
import { rollout, type Scored } from "../task/rollout.js";
import type { Task } from "../task/task.js";
import type { Item } from "../world/datasets.js";
import type { Procedure } from "../world/procedures.js";
import { procedureShares, selfCheckRate } from "./behaviours.js";
import { meanPassAtK } from "./passk.js";

export interface Benchmark {
  name: string;
  items: Item[];
}

export interface EvalOptions {
  /** samples per problem for sampled accuracy and pass@k (0 = greedy only) */
  n: number;
  ks: number[];
  temperature: number;
  topP: number;
  maxNewTokens: number;
  /** how many example completions per benchmark to return */
  keepExamples: number;
}

export interface BenchmarkMetrics {
  problems: number;
  greedy: number;
  /** share of greedy answers in the graded form */
  greedyFormat: number;
  /** accuracy among greedy answers in the graded form (null if none) */
  greedyAccGivenFormat: number | null;
  sampled: number | null;
  formatRate: number | null;
  sampledAccGivenFormat: number | null;
  passAtK: Record<string, number>;
  /** mean completion length in tokens (samples if n > 0, else greedy) */
  meanLength: number;
  /** share of completions with the self-check word "recheck" (samples if n > 0, else greedy) */
  selfCheckRate: number;
  /** share of completions following each procedure (samples if n > 0, else greedy) */
  procedures: Record<Procedure, number>;
}

export interface EvalExample {
  benchmark: string;
  id: string;
  prompt: string;
  answer: string;
  mode: "greedy" | "sampled";
  completion: string;
  extracted: string | null;
  reward: number;
}

const ratio = (a: number, b: number) => (b > 0 ? a / b : null);

export function summarise(scored: Scored[]): {
  acc: number;
  format: number;
  accGivenFormat: number | null;
  meanLength: number;
  selfCheckRate: number;
  procedures: Record<Procedure, number>;
} {
  const n = scored.length;
  const correct = scored.filter((s) => s.reward === 1).length;
  const formatted = scored.filter((s) => s.format === 1).length;
  const completions = scored.map((s) => s.completion);
  return {
    acc: correct / n,
    format: formatted / n,
    accGivenFormat: ratio(correct, formatted),
    meanLength: scored.reduce((a, s) => a + s.length, 0) / n,
    selfCheckRate: selfCheckRate(completions),
    procedures: procedureShares(completions),
  };
}

/** Receives every scored rollout of an evaluation (greedy: one per problem, in problem order; sampled:
 * n per problem, problem by problem), for measures beyond the report's. */
export type OnScored = (benchmark: string, mode: "greedy" | "sampled", scored: readonly Scored[]) => void;

export function evaluateBenchmark(
  lm: CausalLM,
  task: Task,
  bench: Benchmark,
  opts: EvalOptions,
  rng: Rng,
  onScored?: OnScored,
): { metrics: BenchmarkMetrics; examples: EvalExample[] } {
  const items = bench.items;
  for (const k of opts.ks) {
    if (opts.n > 0 && k > opts.n) throw new Error(`pass@${k} needs at least ${k} samples per problem; n is ${opts.n}`);
  }
  const gen = { temperature: 0, topP: 1, maxNewTokens: opts.maxNewTokens };
  const greedy = rollout(lm, task, items, gen, null);
  onScored?.(bench.name, "greedy", greedy);
  const g = summarise(greedy);
  const examples: EvalExample[] = [];
  const ex = (mode: "greedy" | "sampled", item: Item, s: Scored) =>
    examples.push({
      benchmark: bench.name,
      id: item.id,
      prompt: item.prompt,
      answer: item.answer,
      mode,
      completion: s.completion,
      extracted: s.extracted,
      reward: s.reward,
    });
  for (let i = 0; i < Math.min(opts.keepExamples, items.length); i++) ex("greedy", items[i], greedy[i]);
  const metrics: BenchmarkMetrics = {
    problems: items.length,
    greedy: g.acc,
    greedyFormat: g.format,
    greedyAccGivenFormat: g.accGivenFormat,
    sampled: null,
    formatRate: null,
    sampledAccGivenFormat: null,
    passAtK: {},
    meanLength: g.meanLength,
    selfCheckRate: g.selfCheckRate,
    procedures: g.procedures,
  };
  if (opts.n > 0) {
    const pairs = items.flatMap((it) => Array.from({ length: opts.n }, () => it));
    const sampled = rollout(
      lm,
      task,
      pairs,
      { temperature: opts.temperature, topP: opts.topP, maxNewTokens: opts.maxNewTokens },
      rng,
    );
    onScored?.(bench.name, "sampled", sampled);
    const s = summarise(sampled);
    const corrects = items.map(
      (_, i) => sampled.slice(i * opts.n, (i + 1) * opts.n).filter((x) => x.reward === 1).length,
    );
    metrics.sampled = s.acc;
    metrics.formatRate = s.format;
    metrics.sampledAccGivenFormat = s.accGivenFormat;
    for (const k of opts.ks) metrics.passAtK[`pass@${k}`] = meanPassAtK(opts.n, corrects, k);
    metrics.meanLength = s.meanLength;
    metrics.selfCheckRate = s.selfCheckRate;
    metrics.procedures = s.procedures;
    for (let i = 0; i < Math.min(opts.keepExamples, items.length); i++) ex("sampled", items[i], sampled[i * opts.n]);
  }
  return { metrics, examples };
}
