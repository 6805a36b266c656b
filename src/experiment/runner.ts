// Runs one seed of an experiment: loads the base checkpoint twice (policy and frozen reference),
// evaluates at step 0 and every `eval.every` steps, runs GRPO steps on the single example (or, with
// several, on each step's share of them: src/rl/schedule.ts), and
// writes the run directory (runFiles.ts), saving a resumable state (resumable.ts) every
// `checkpointEvery` steps and when asked to stop. Console output goes through `log` (the CLI's edge).
import path from "node:path";
import { looksLikeWasmOutOfMemory, wasmHeapMB, type BackendInfo } from "../engine/backend.js";
import { makeRng, restoreRng, type Rng } from "../engine/rng.js";
import { summarise, type Summary } from "../analysis/saturation.js";
import type { Benchmark } from "../eval/evaluate.js";
import { evaluateAll, type EvalReport } from "../eval/report.js";
import { loadModel, modelConfigOf, saveModel } from "../model/load.js";
import { NumericalFault } from "../model/optim.js";
import { taskFor } from "../task/forModel.js";
import { stepExamples } from "../rl/schedule.js";
import { GrpoTrainer, type StepStats } from "../rl/trainer.js";
import { copyTokenizer } from "../text/tokenizer.js";
import { metricsColumns, metricsRow } from "./metrics.js";
import { describeEval, describeStep, describeStepProgress } from "./progress.js";
import { canResume, clearStates, freshState, loadState, saveOptimizer, saveState, type RunState } from "./resumable.js";
import { RunFiles, runDir } from "./runFiles.js";
import type { Experiment } from "./schema.js";

export { canResume, runDir };

export interface ResolvedExample {
  prompt: string;
  answer: string;
  /** where it came from: "inline" or a file path */
  source: string;
}

export interface RunContext {
  exp: Experiment;
  /** the single training example (the experiment's `example`), or null when it trains on several */
  example: ResolvedExample | null;
  /** the training examples when the experiment gives `examples` (null for a single example) */
  examples?: ResolvedExample[] | null;
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

export type RunMode = "fresh" | "resume";

export async function runSeed(ctx: RunContext, seed: number, mode: RunMode = "fresh"): Promise<RunResult> {
  const { exp, example, benchmarks, log } = ctx;
  const several = ctx.examples ?? null;
  if ((example === null) === (several === null))
    throw new Error("runSeed: give either one example or a list of examples (RunContext.example / examples)");
  const task = taskFor(exp.checkpoint, { prompt: exp.prompt, answerFormat: exp.answerFormat });
  const policy = loadModel(exp.checkpoint);
  // no reference model in memory when nothing uses it
  const reference = exp.grpo.loss.klCoef !== 0 ? loadModel(exp.checkpoint) : null;
  const maxNewTokens = Math.min(exp.grpo.maxNewTokens, policy.contextLength);
  const trainer = new GrpoTrainer(policy, reference, task, { ...exp.grpo, maxNewTokens }, example);
  /** the groups of a step when training on several examples */
  const groupsOf = (step: number) => stepExamples(several!.length, exp.grpo.copies, step, seed).map((i) => several![i]);
  const ev = exp.eval;
  const ks = ev.n > 0 ? ev.ks : [];
  const evalOpts = { n: ev.n, ks, temperature: ev.temperature, topP: ev.topP, maxNewTokens, keepExamples: ev.samples };
  const files = new RunFiles(
    runDir(ctx.outDir, exp.name, seed),
    metricsColumns(
      benchmarks.map((b) => b.name),
      ks,
      ev.n,
    ),
  );
  const dir = files.dir;
  const tag = `[seed ${seed}]`;
  const cleanup = () => {
    trainer.optimizer.dispose();
    policy.dispose();
    reference?.dispose();
  };

  /** held-out evaluation of the policy now: logged to samples.jsonl and kept for the summary */
  const evaluate = (step: number, state: RunState): { report: EvalReport; seconds: number } => {
    const t = performance.now();
    const { report, examples } = evaluateAll(policy, task, benchmarks, evalOpts, seed);
    files.appendSamples(examples.map((e) => ({ step, ...e })));
    const perBenchmark = Object.fromEntries(
      Object.entries(report.benchmarks).map(([n, m]) => [n, { greedy: m.greedy, format: m.greedyFormat }]),
    );
    const { greedy: heldout, greedyFormat: format, greedyAccGivenFormat: accGivenFormat, sampled } = report.mean;
    state.evals.push({ step, heldout, format, accGivenFormat, sampled, perBenchmark });
    state.lastHeldout = heldout;
    state.lastEvalStep = step;
    return { report, seconds: (performance.now() - t) / 1000 };
  };

  const t0 = performance.now();
  let state: RunState;
  let rolloutRng: Rng;
  if (mode === "resume") {
    state = loadState(dir, trainer);
    rolloutRng = restoreRng(state.rolloutRng);
    files.truncate(state);
    log(`${tag} resuming ${dir} after step ${state.step} of ${exp.steps}`);
  } else {
    const data = example
      ? { example: { prompt: example.prompt, answer: example.answer, source: example.source } }
      : { examples: several!.map((e) => ({ prompt: e.prompt, answer: e.answer, source: e.source })) };
    files.start({
      ...exp,
      seeds: [seed],
      ...data,
      backend: ctx.backend,
      versions: ctx.versions,
      model: modelConfigOf(policy),
      ...ctx.provenance,
    });
    rolloutRng = makeRng(seed, "rollout");
    state = freshState(rolloutRng.state());
    const e0 = evaluate(0, state);
    files.appendRow(metricsRow(0, null, e0.report, ks, ev.n));
    state.timing.push({ step: 0, rolloutSeconds: 0, updateSeconds: 0, evalSeconds: e0.seconds });
    log(`${tag} step 0 held-out greedy: ${describeEval(e0.report)}  (${e0.seconds.toFixed(1)}s)`);
  }
  const checkpointNow = () => {
    Object.assign(state, { rolloutRng: rolloutRng.state(), ...files.sizes() });
    saveState(dir, state, trainer);
  };
  if (mode === "fresh") checkpointNow();

  // the step loop: rollouts and update, evaluation every `eval.every` steps, one metrics row per step
  let stopped = false;
  const loopStart = performance.now();
  const firstStep = state.step + 1;
  // inside a step that runs long (a large model), a line after the rollouts and after each micro-batch
  let stepStart = 0;
  let stepNow = 0;
  trainer.onProgress = (p) => {
    if ((performance.now() - stepStart) / 1000 >= 20)
      log(`${tag} step ${stepNow}/${exp.steps}  ${describeStepProgress(p)}`);
  };
  for (let step = firstStep; step <= exp.steps; step++) {
    [stepStart, stepNow] = [performance.now(), step];
    const groups = several ? groupsOf(step) : null;
    const stats = stepOrExplain(
      () => (groups ? trainer.stepOn(groups, rolloutRng) : trainer.step(rolloutRng)),
      step,
      state.step,
      dir,
      cleanup,
      tag,
    );
    state.train.push({ step, value: stats.trainAccuracy });
    const e = step % ev.every === 0 || step === exp.steps ? evaluate(step, state) : null;
    // the logged rollouts are the first group's
    if (e) files.appendSamples(trainSamples(stats, step, groups ? groups[0] : example!));
    files.appendRow(metricsRow(step, stats, e?.report ?? null, ks, ev.n));
    const { rolloutSeconds, updateSeconds } = stats;
    state.timing.push({ step, rolloutSeconds, updateSeconds, evalSeconds: e?.seconds ?? 0 });
    state.step = step;
    const rate = (performance.now() - loopStart) / 1000 / (step - firstStep + 1);
    log(`${tag} step ${step}/${exp.steps}  ${describeStep(stats, state, rate, exp.steps - step)}`);
    if (e) log(`${tag}   held-out greedy @${step}: ${describeEval(e.report)}  (eval ${e.seconds.toFixed(1)}s)`);
    // yield to the event loop so that SIGINT/SIGTERM handlers (and console output) run between steps
    await new Promise((resolve) => setImmediate(resolve));
    const stopping = (ctx.shouldStop?.() ?? false) && step < exp.steps;
    if (stopping || (exp.checkpointEvery > 0 && step % exp.checkpointEvery === 0 && step < exp.steps)) checkpointNow();
    if (stopping) {
      stopped = true;
      break;
    }
  }

  const seconds = (performance.now() - t0) / 1000;
  if (stopped) {
    cleanup();
    return { dir, summary: null, seconds, stopped };
  }
  const heldoutProblems = benchmarks.reduce((a, b) => a + b.items.length, 0);
  const summary = summarise(state.train, state.evals, exp.saturation.threshold, exp.saturation.window, heldoutProblems);
  files.writeJson("summary.json", { experiment: exp.name, seed, steps: state.step, ...summary });
  files.writeJson("timing.json", { seconds, backend: ctx.backend.name, steps: state.timing });
  const ckDir = path.join(dir, "checkpoint");
  const meta = { kind: "grpo", experiment: exp.name, seed, step: state.step, base: exp.checkpoint };
  saveModel(policy, ckDir, meta);
  saveOptimizer(ckDir, trainer);
  copyTokenizer(exp.checkpoint, ckDir);
  clearStates(dir);
  cleanup();
  return { dir, summary, seconds, stopped };
}

/** One GRPO step; a numerical fault becomes an error that says what was kept and how to go on. */
function stepOrExplain(
  takeStep: () => StepStats,
  step: number,
  savedStep: number,
  dir: string,
  cleanup: () => void,
  tag: string,
): StepStats {
  try {
    return takeStep();
  } catch (e) {
    if (looksLikeWasmOutOfMemory(e))
      throw new Error(
        `${tag} step ${step} failed (${(e as Error).message.split("\n")[0]}): the tfjs-wasm heap is probably exhausted (${wasmHeapMB()} MB of its 4096 MB limit). Lower grpo.microBatch (rows per forward/backward pass), grpo.maxNewTokens or grpo.copies × grpo.rollouts, set grpo.loss.klCoef to 0 (no reference model), or use --backend cpu or tensorflow; --resume retries from step ${savedStep}`,
      );
    if (!(e instanceof NumericalFault)) throw e;
    cleanup();
    throw new Error(
      `${tag} numerical fault at step ${step}: ${e.message}. The last good checkpoint (step ${savedStep}) is kept in ${dir}; lower grpo.learningRate or raise grpo.gradClip, then rerun with --force (or --resume to retry from step ${savedStep})`,
    );
  }
}

/** two of the step's rollouts, logged beside the evaluation samples */
function trainSamples(stats: StepStats, step: number, example: { prompt: string; answer: string }): object[] {
  const { prompt, answer } = example;
  return stats.examples.slice(0, 2).map((x) => ({ step, benchmark: "train", prompt, answer, mode: "rollout", ...x }));
}
