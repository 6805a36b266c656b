// Evaluates a model on several benchmarks and aggregates: the shape printed by `npm run eval --json`
// and written into model cards.
import { makeRng } from "../engine/rng.js";
import type { CausalLM } from "../model/family.js";
import type { Task } from "../task/task.js";
import {
  evaluateBenchmark,
  type Benchmark,
  type BenchmarkMetrics,
  type EvalExample,
  type EvalOptions,
  type OnScored,
} from "./evaluate.js";

export interface EvalReport {
  options: EvalOptions & { seed: number };
  benchmarks: Record<string, BenchmarkMetrics & Record<string, unknown>>;
  /** unweighted means over benchmarks */
  mean: { greedy: number; sampled: number | null; greedyFormat: number; greedyAccGivenFormat: number | null };
}

export function evaluateAll(
  lm: CausalLM,
  task: Task,
  benches: Benchmark[],
  opts: EvalOptions,
  seed: number,
  onBenchmark?: (name: string, m: BenchmarkMetrics) => void,
  onScored?: OnScored,
): { report: EvalReport; examples: EvalExample[] } {
  const benchmarks: EvalReport["benchmarks"] = {};
  const examples: EvalExample[] = [];
  for (const b of benches) {
    const rng = makeRng(seed, `eval/${b.name}`);
    const r = evaluateBenchmark(lm, task, b, opts, rng, onScored);
    // flatten pass@k next to the other metrics, as the --json output promises
    benchmarks[b.name] = { ...r.metrics, ...r.metrics.passAtK };
    examples.push(...r.examples);
    onBenchmark?.(b.name, r.metrics);
  }
  const vals = Object.values(benchmarks);
  const mean = (f: (m: BenchmarkMetrics) => number | null) => {
    const xs = vals.map(f).filter((x): x is number => x !== null);
    return xs.length === vals.length && xs.length > 0 ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
  };
  return {
    report: {
      options: { ...opts, seed },
      benchmarks,
      mean: {
        greedy: mean((m) => m.greedy)!,
        sampled: mean((m) => m.sampled),
        greedyFormat: mean((m) => m.greedyFormat)!,
        greedyAccGivenFormat: mean((m) => m.greedyAccGivenFormat),
      },
    },
    examples,
  };
}

const f3 = (x: number | null | undefined) => (x === null || x === undefined ? "  -  " : x.toFixed(3));

/** A fixed-width table of an evaluation report, one row per benchmark. */
export function formatReport(r: EvalReport): string {
  const ks = r.options.n > 0 ? r.options.ks : [];
  const head = [
    "benchmark",
    "problems",
    "greedy",
    "fmt(g)",
    "acc|fmt(g)",
    "sampled",
    "fmt(s)",
    ...ks.map((k) => `pass@${k}`),
    "len",
    "recheck",
    "careful",
    "check",
    "hasty",
    "nomarker",
  ];
  const rows = Object.entries(r.benchmarks).map(([name, m]) => [
    name,
    String(m.problems),
    f3(m.greedy),
    f3(m.greedyFormat),
    f3(m.greedyAccGivenFormat),
    f3(m.sampled),
    f3(m.formatRate),
    ...ks.map((k) => f3(m.passAtK[`pass@${k}`])),
    m.meanLength.toFixed(1),
    f3(m.selfCheckRate),
    f3(m.procedures.careful),
    f3(m.procedures.check),
    f3(m.procedures.hasty),
    f3(m.procedures.nomarker),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(head), ...rows.map(line)].join("\n");
}
