// Runs one seed of an experiment: loads the base checkpoint twice (policy and frozen reference),
// evaluates at step 0 and every `eval.every` steps, runs GRPO steps on the single example and
// writes metrics.csv, samples.jsonl, config.resolved.json, summary.json and timing.json into
// <out>/<name>/seed-<seed>/. Console output goes through the `log` callback (the CLI's edge).
import fs from "node:fs";
import path from "node:path";
import { makeRng } from "../engine/rng.js";
import type { BackendInfo } from "../engine/backend.js";
import { loadCheckpoint, saveCheckpoint, writeAtomic, encodeSafetensors } from "../model/checkpoint.js";
import { disposeParams } from "../model/gpt.js";
import { hostWeights } from "../model/decode.js";
import { loadTokenizer, type CharTokenizer } from "../text/tokenizer.js";
import { evaluateAll, type EvalReport } from "../eval/report.js";
import type { Benchmark } from "../eval/evaluate.js";
import { GrpoTrainer, type StepStats } from "../rl/trainer.js";
import { summarise, type EvalPoint, type Summary } from "../analysis/saturation.js";
import { CsvFormatter, metricsColumns, metricsRow } from "./metrics.js";
import type { Experiment } from "./schema.js";

export interface ResolvedExample {
  prompt: string;
  answer: string;
  /** where it came from: "inline" or a file path */
  source: string;
}

export interface RunContext {
  exp: Experiment;
  example: ResolvedExample;
  benchmarks: Benchmark[];
  backend: BackendInfo;
  versions: Record<string, string>;
  outDir: string;
  /** extra fields for config.resolved.json (file, overrides) */
  provenance: Record<string, unknown>;
  log: (line: string) => void;
  /** polled between steps; true = stop after the current step */
  shouldStop?: () => boolean;
}

export interface RunResult {
  dir: string;
  summary: Summary;
  seconds: number;
  stopped: boolean;
}

export function runDir(outDir: string, name: string, seed: number): string {
  return path.join(outDir, name, `seed-${seed}`);
}

const fmtTime = (s: number) => (s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${s.toFixed(0)}s`);

export async function runSeed(ctx: RunContext, seed: number): Promise<RunResult> {
  const { exp, example, benchmarks, log } = ctx;
  const dir = runDir(ctx.outDir, exp.name, seed);
  fs.mkdirSync(dir, { recursive: true });
  const tok: CharTokenizer = loadTokenizer(fs.existsSync(path.join(exp.checkpoint, "tokenizer.json")) ? exp.checkpoint : "data/tokenizer");
  const policyCk = loadCheckpoint(exp.checkpoint);
  const refCk = loadCheckpoint(exp.checkpoint);
  const model = policyCk.cfg;
  const resolved = { ...exp, seeds: [seed], example: { prompt: example.prompt, answer: example.answer, source: example.source }, backend: ctx.backend, versions: ctx.versions, model, ...ctx.provenance };
  writeAtomic(path.join(dir, "config.resolved.json"), JSON.stringify(resolved, null, 2) + "\n");

  const g = exp.grpo;
  const trainer = new GrpoTrainer(policyCk.params, refCk.params, model, tok, { ...g, maxNewTokens: Math.min(g.maxNewTokens, model.contextLength) }, example);
  const rolloutRng = makeRng(seed, "rollout");
  const ev = exp.eval;
  const ks = ev.n > 0 ? ev.ks : [];
  const columns = metricsColumns(benchmarks.map((b) => b.name), ks, ev.n);
  const csv = new CsvFormatter(columns);
  const metricsFile = path.join(dir, "metrics.csv");
  const samplesFile = path.join(dir, "samples.jsonl");
  fs.writeFileSync(metricsFile, csv.header());
  fs.writeFileSync(samplesFile, "");
  const evalOpts = { n: ev.n, ks, temperature: ev.temperature, topP: ev.topP, maxNewTokens: Math.min(g.maxNewTokens, model.contextLength), keepExamples: ev.samples };
  const evals: EvalPoint[] = [];
  const train: { step: number; value: number }[] = [];
  const timing: { step: number; rolloutSeconds: number; updateSeconds: number; evalSeconds: number }[] = [];
  const heldoutProblems = benchmarks.reduce((a, b) => a + b.items.length, 0);

  const evaluate = (step: number): { report: EvalReport; seconds: number } => {
    const t = performance.now();
    const { report, examples } = evaluateAll(hostWeights(policyCk.params, model), tok, benchmarks, evalOpts, seed);
    fs.appendFileSync(samplesFile, examples.map((e) => JSON.stringify({ step, ...e })).join("\n") + (examples.length ? "\n" : ""));
    evals.push({ step, heldout: report.mean.greedy, format: report.mean.greedyFormat, accGivenFormat: report.mean.greedyAccGivenFormat, sampled: report.mean.sampled });
    return { report, seconds: (performance.now() - t) / 1000 };
  };
  const describeEval = (r: EvalReport) =>
    Object.entries(r.benchmarks)
      .map(([n, m]) => `${n} ${m.greedy.toFixed(3)}`)
      .join("  ") + `  | mean ${r.mean.greedy.toFixed(3)} (format ${r.mean.greedyFormat.toFixed(3)}, acc|format ${r.mean.greedyAccGivenFormat?.toFixed(3) ?? "-"}${r.mean.sampled !== null ? `, sampled ${r.mean.sampled.toFixed(3)}` : ""})`;

  const t0 = performance.now();
  const e0 = evaluate(0);
  fs.appendFileSync(metricsFile, csv.rows([metricsRow(0, null, e0.report, ks, ev.n)]));
  timing.push({ step: 0, rolloutSeconds: 0, updateSeconds: 0, evalSeconds: e0.seconds });
  log(`[seed ${seed}] step 0 held-out greedy: ${describeEval(e0.report)}  (${e0.seconds.toFixed(1)}s)`);
  let lastHeldout = e0.report.mean.greedy;
  let lastEvalStep = 0;
  let stopped = false;
  let stepsDone = 0;
  const loopStart = performance.now();
  for (let step = 1; step <= exp.steps; step++) {
    const stats: StepStats = trainer.step(rolloutRng);
    train.push({ step, value: stats.trainAccuracy });
    let report: EvalReport | null = null;
    let evalSeconds = 0;
    if (step % ev.every === 0 || step === exp.steps) {
      const e = evaluate(step);
      report = e.report;
      evalSeconds = e.seconds;
      lastHeldout = report.mean.greedy;
      lastEvalStep = step;
      fs.appendFileSync(samplesFile, stats.examples.slice(0, 2).map((x) => JSON.stringify({ step, benchmark: "train", prompt: example.prompt, answer: example.answer, mode: "rollout", ...x })).join("\n") + "\n");
    }
    fs.appendFileSync(metricsFile, csv.rows([metricsRow(step, stats, report, ks, ev.n)]));
    timing.push({ step, rolloutSeconds: stats.rolloutSeconds, updateSeconds: stats.updateSeconds, evalSeconds });
    stepsDone = step;
    const elapsed = (performance.now() - loopStart) / 1000;
    const rate = elapsed / step;
    log(
      `[seed ${seed}] step ${step}/${exp.steps}  train_acc ${stats.trainAccuracy.toFixed(3)}  fmt ${stats.trainFormatRate.toFixed(2)}  ` +
        `kl ${stats.kl.toExponential(1)}  ent ${stats.entropy.toFixed(3)}  len ${stats.responseLength.toFixed(1)}  signal ${stats.groupsWithSignal.toFixed(2)}  ` +
        `held-out ${lastHeldout.toFixed(3)} (@${lastEvalStep})  ${rate.toFixed(2)} s/step  ETA ${fmtTime(rate * (exp.steps - step))}`,
    );
    if (report) log(`[seed ${seed}]   held-out greedy @${step}: ${describeEval(report)}  (eval ${evalSeconds.toFixed(1)}s)`);
    if (ctx.shouldStop?.()) {
      stopped = true;
      break;
    }
  }
  const summary = summarise(train, evals, exp.saturation.threshold, exp.saturation.window, heldoutProblems);
  const seconds = (performance.now() - t0) / 1000;
  writeAtomic(path.join(dir, "summary.json"), JSON.stringify({ experiment: exp.name, seed, steps: stepsDone, ...summary }, null, 2) + "\n");
  writeAtomic(path.join(dir, "timing.json"), JSON.stringify({ seconds, backend: ctx.backend.name, steps: timing }, null, 2) + "\n");
  const ckDir = path.join(dir, "checkpoint");
  saveCheckpoint(ckDir, policyCk.params, model, { kind: "grpo", experiment: exp.name, seed, step: stepsDone, base: exp.checkpoint });
  writeAtomic(path.join(ckDir, "optimizer.safetensors"), encodeSafetensors(trainer.optimizer.stateArrays(), { step: String(trainer.optimizer.step) }));
  for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
    const src = fs.existsSync(path.join(exp.checkpoint, f)) ? path.join(exp.checkpoint, f) : path.join("data/tokenizer", f);
    fs.copyFileSync(src, path.join(ckDir, f));
  }
  trainer.optimizer.dispose();
  disposeParams(policyCk.params);
  disposeParams(refCk.params);
  return { dir, summary, seconds, stopped };
}
