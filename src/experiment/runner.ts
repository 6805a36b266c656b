// Runs one seed of an experiment: loads the base checkpoint twice (policy and frozen reference),
// evaluates at step 0 and every `eval.every` steps, runs GRPO steps on the single example and
// writes metrics.csv, samples.jsonl, config.resolved.json, summary.json and timing.json into
// <out>/<name>/seed-<seed>/. Console output goes through the `log` callback (the CLI's edge).
import fs from "node:fs";
import path from "node:path";
import { makeRng, restoreRng, type Rng } from "../engine/rng.js";
import type { BackendInfo } from "../engine/backend.js";
import {
  decodeSafetensors,
  loadCheckpoint,
  saveCheckpoint,
  writeAtomic,
  encodeSafetensors,
} from "../model/checkpoint.js";
import { disposeParams, type ModelConfig } from "../model/gpt.js";
import { NumericalFault } from "../model/optim.js";
import { hostWeights } from "../model/decode.js";
import { copyTokenizer, loadTokenizerFor, type CharTokenizer } from "../text/tokenizer.js";
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
  /** null when the run was stopped before its last step */
  summary: Summary | null;
  seconds: number;
  stopped: boolean;
}

export function runDir(outDir: string, name: string, seed: number): string {
  return path.join(outDir, name, `seed-${seed}`);
}

const fmtTime = (s: number) =>
  s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${s.toFixed(0)}s`;

interface RunState {
  step: number;
  rolloutRng: object;
  evals: EvalPoint[];
  train: { step: number; value: number }[];
  timing: { step: number; rolloutSeconds: number; updateSeconds: number; evalSeconds: number }[];
  metricsBytes: number;
  samplesBytes: number;
  lastHeldout: number;
  lastEvalStep: number;
}

const RESUME_FILE = "resume.json";

/** Writes a resumable state: model, optimizer and run state in state-<step>/, then points resume.json at it. */
function saveState(dir: string, state: RunState, trainer: GrpoTrainer, model: ModelConfig): void {
  const name = `state-${state.step}`;
  const sdir = path.join(dir, name);
  fs.rmSync(sdir, { recursive: true, force: true });
  saveCheckpoint(sdir, trainer.policy, model, { kind: "grpo-state", step: state.step });
  writeAtomic(
    path.join(sdir, "optimizer.safetensors"),
    encodeSafetensors(trainer.optimizer.stateArrays(), { step: String(trainer.optimizer.step) }),
  );
  writeAtomic(path.join(sdir, "state.json"), JSON.stringify(state) + "\n");
  writeAtomic(path.join(dir, RESUME_FILE), JSON.stringify({ state: name, step: state.step }) + "\n");
  for (const f of fs.readdirSync(dir))
    if (f.startsWith("state-") && f !== name) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
}

function loadState(dir: string, trainer: GrpoTrainer): RunState {
  const pointer = JSON.parse(fs.readFileSync(path.join(dir, RESUME_FILE), "utf8")) as { state: string };
  const sdir = path.join(dir, pointer.state);
  const state = JSON.parse(fs.readFileSync(path.join(sdir, "state.json"), "utf8")) as RunState;
  const ck = loadCheckpoint(sdir);
  for (const [k, v] of Object.entries(trainer.policy)) v.assign(ck.params[k]);
  disposeParams(ck.params);
  const opt = decodeSafetensors(fs.readFileSync(path.join(sdir, "optimizer.safetensors")));
  trainer.optimizer.loadState(opt.tensors, Number(opt.metadata.step));
  return state;
}

function truncateTo(file: string, bytes: number): void {
  const fd = fs.openSync(file, "r+");
  fs.ftruncateSync(fd, bytes);
  fs.closeSync(fd);
}

export type RunMode = "fresh" | "resume";

export function canResume(dir: string): boolean {
  return fs.existsSync(path.join(dir, RESUME_FILE));
}

export async function runSeed(ctx: RunContext, seed: number, mode: RunMode = "fresh"): Promise<RunResult> {
  const { exp, example, benchmarks, log } = ctx;
  const dir = runDir(ctx.outDir, exp.name, seed);
  fs.mkdirSync(dir, { recursive: true });
  const tok: CharTokenizer = loadTokenizerFor(exp.checkpoint);
  const policyCk = loadCheckpoint(exp.checkpoint);
  const refCk = loadCheckpoint(exp.checkpoint);
  const model = policyCk.cfg;
  const g = exp.grpo;
  const trainer = new GrpoTrainer(
    policyCk.params,
    refCk.params,
    model,
    tok,
    { ...g, maxNewTokens: Math.min(g.maxNewTokens, model.contextLength) },
    example,
  );
  const ev = exp.eval;
  const ks = ev.n > 0 ? ev.ks : [];
  const columns = metricsColumns(
    benchmarks.map((b) => b.name),
    ks,
    ev.n,
  );
  const csv = new CsvFormatter(columns);
  const metricsFile = path.join(dir, "metrics.csv");
  const samplesFile = path.join(dir, "samples.jsonl");
  const evalOpts = {
    n: ev.n,
    ks,
    temperature: ev.temperature,
    topP: ev.topP,
    maxNewTokens: Math.min(g.maxNewTokens, model.contextLength),
    keepExamples: ev.samples,
  };
  const heldoutProblems = benchmarks.reduce((a, b) => a + b.items.length, 0);
  const cleanup = () => {
    trainer.optimizer.dispose();
    disposeParams(policyCk.params);
    disposeParams(refCk.params);
  };

  const evaluate = (step: number, state: RunState): { report: EvalReport; seconds: number } => {
    const t = performance.now();
    const { report, examples } = evaluateAll(hostWeights(policyCk.params, model), tok, benchmarks, evalOpts, seed);
    fs.appendFileSync(
      samplesFile,
      examples.map((e) => JSON.stringify({ step, ...e })).join("\n") + (examples.length ? "\n" : ""),
    );
    const perBenchmark = Object.fromEntries(
      Object.entries(report.benchmarks).map(([n, m]) => [n, { greedy: m.greedy, format: m.greedyFormat }]),
    );
    state.evals.push({
      step,
      heldout: report.mean.greedy,
      format: report.mean.greedyFormat,
      accGivenFormat: report.mean.greedyAccGivenFormat,
      sampled: report.mean.sampled,
      perBenchmark,
    });
    return { report, seconds: (performance.now() - t) / 1000 };
  };
  const describeEval = (r: EvalReport) =>
    Object.entries(r.benchmarks)
      .map(([n, m]) => `${n} ${m.greedy.toFixed(3)}`)
      .join("  ") +
    `  | mean ${r.mean.greedy.toFixed(3)} (format ${r.mean.greedyFormat.toFixed(3)}, acc|format ${r.mean.greedyAccGivenFormat?.toFixed(3) ?? "-"}${r.mean.sampled !== null ? `, sampled ${r.mean.sampled.toFixed(3)}` : ""})`;

  const t0 = performance.now();
  let state: RunState;
  let rolloutRng: Rng;
  if (mode === "resume") {
    state = loadState(dir, trainer);
    rolloutRng = restoreRng(state.rolloutRng);
    // drop anything written after the checkpoint (including a row cut by a kill)
    truncateTo(metricsFile, state.metricsBytes);
    truncateTo(samplesFile, state.samplesBytes);
    log(`[seed ${seed}] resuming ${dir} after step ${state.step} of ${exp.steps}`);
  } else {
    const resolved = {
      ...exp,
      seeds: [seed],
      example: { prompt: example.prompt, answer: example.answer, source: example.source },
      backend: ctx.backend,
      versions: ctx.versions,
      model,
      ...ctx.provenance,
    };
    writeAtomic(path.join(dir, "config.resolved.json"), JSON.stringify(resolved, null, 2) + "\n");
    rolloutRng = makeRng(seed, "rollout");
    state = {
      step: 0,
      rolloutRng: rolloutRng.state(),
      evals: [],
      train: [],
      timing: [],
      metricsBytes: 0,
      samplesBytes: 0,
      lastHeldout: NaN,
      lastEvalStep: 0,
    };
    fs.writeFileSync(metricsFile, csv.header());
    fs.writeFileSync(samplesFile, "");
    const e0 = evaluate(0, state);
    fs.appendFileSync(metricsFile, csv.rows([metricsRow(0, null, e0.report, ks, ev.n)]));
    state.timing.push({ step: 0, rolloutSeconds: 0, updateSeconds: 0, evalSeconds: e0.seconds });
    state.lastHeldout = e0.report.mean.greedy;
    log(`[seed ${seed}] step 0 held-out greedy: ${describeEval(e0.report)}  (${e0.seconds.toFixed(1)}s)`);
  }
  const checkpointNow = () => {
    state.rolloutRng = rolloutRng.state();
    state.metricsBytes = fs.statSync(metricsFile).size;
    state.samplesBytes = fs.statSync(samplesFile).size;
    saveState(dir, state, trainer, model);
  };
  if (mode === "fresh") checkpointNow();
  let stopped = false;
  const loopStart = performance.now();
  const firstStep = state.step + 1;
  for (let step = firstStep; step <= exp.steps; step++) {
    let stats: StepStats;
    try {
      stats = trainer.step(rolloutRng);
    } catch (e) {
      if (e instanceof NumericalFault) {
        cleanup();
        throw new Error(
          `[seed ${seed}] numerical fault at step ${step}: ${e.message}. The last good checkpoint (step ${state.step}) is kept in ${dir}; lower grpo.learningRate or raise grpo.gradClip, then rerun with --force (or --resume to retry from step ${state.step})`,
        );
      }
      throw e;
    }
    state.train.push({ step, value: stats.trainAccuracy });
    let report: EvalReport | null = null;
    let evalSeconds = 0;
    if (step % ev.every === 0 || step === exp.steps) {
      const e = evaluate(step, state);
      report = e.report;
      evalSeconds = e.seconds;
      state.lastHeldout = report.mean.greedy;
      state.lastEvalStep = step;
      fs.appendFileSync(
        samplesFile,
        stats.examples
          .slice(0, 2)
          .map((x) =>
            JSON.stringify({
              step,
              benchmark: "train",
              prompt: example.prompt,
              answer: example.answer,
              mode: "rollout",
              ...x,
            }),
          )
          .join("\n") + "\n",
      );
    }
    fs.appendFileSync(metricsFile, csv.rows([metricsRow(step, stats, report, ks, ev.n)]));
    state.timing.push({ step, rolloutSeconds: stats.rolloutSeconds, updateSeconds: stats.updateSeconds, evalSeconds });
    state.step = step;
    const elapsed = (performance.now() - loopStart) / 1000;
    const rate = elapsed / (step - firstStep + 1);
    log(
      `[seed ${seed}] step ${step}/${exp.steps}  train_acc ${stats.trainAccuracy.toFixed(3)}  fmt ${stats.trainFormatRate.toFixed(2)}  ` +
        `kl ${stats.kl.toExponential(1)}  ent ${stats.entropy.toFixed(3)}  len ${stats.responseLength.toFixed(1)}  signal ${stats.groupsWithSignal.toFixed(2)}  ` +
        `held-out ${state.lastHeldout.toFixed(3)} (@${state.lastEvalStep})  ${rate.toFixed(2)} s/step  ETA ${fmtTime(rate * (exp.steps - step))}`,
    );
    if (report)
      log(`[seed ${seed}]   held-out greedy @${step}: ${describeEval(report)}  (eval ${evalSeconds.toFixed(1)}s)`);
    // yield to the event loop so that SIGINT/SIGTERM handlers (and console output) run between steps
    await new Promise((resolve) => setImmediate(resolve));
    const stopping = ctx.shouldStop?.() ?? false;
    if (
      (exp.checkpointEvery > 0 && step % exp.checkpointEvery === 0 && step < exp.steps) ||
      (stopping && step < exp.steps)
    )
      checkpointNow();
    if (stopping && step < exp.steps) {
      stopped = true;
      break;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  if (stopped) {
    cleanup();
    return { dir, summary: null, seconds, stopped };
  }
  const summary = summarise(state.train, state.evals, exp.saturation.threshold, exp.saturation.window, heldoutProblems);
  writeAtomic(
    path.join(dir, "summary.json"),
    JSON.stringify({ experiment: exp.name, seed, steps: state.step, ...summary }, null, 2) + "\n",
  );
  writeAtomic(
    path.join(dir, "timing.json"),
    JSON.stringify({ seconds, backend: ctx.backend.name, steps: state.timing }, null, 2) + "\n",
  );
  const ckDir = path.join(dir, "checkpoint");
  saveCheckpoint(ckDir, policyCk.params, model, {
    kind: "grpo",
    experiment: exp.name,
    seed,
    step: state.step,
    base: exp.checkpoint,
  });
  writeAtomic(
    path.join(ckDir, "optimizer.safetensors"),
    encodeSafetensors(trainer.optimizer.stateArrays(), { step: String(trainer.optimizer.step) }),
  );
  copyTokenizer(exp.checkpoint, ckDir);
  // the run is complete: the resumable state is no longer needed
  fs.rmSync(path.join(dir, RESUME_FILE), { force: true });
  for (const f of fs.readdirSync(dir))
    if (f.startsWith("state-")) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
  cleanup();
  return { dir, summary, seconds, stopped };
}
