// The resumable state of a run: after step k, `state-<k>/` holds the policy, the optimizer moments
// and the run's own bookkeeping (the rollout stream's state, the points the summary needs, how many
// bytes of metrics.csv and samples.jsonl belong to steps <= k), and `resume.json` points at it.
// Writing the pointer last makes a kill at any moment leave the previous state intact.
import fs from "node:fs";
import path from "node:path";
import type { EvalPoint } from "../analysis/saturation.js";
import { decodeSafetensors, encodeSafetensors, writeAtomic } from "../model/checkpoint.js";
import { loadParamsInto, saveModel } from "../model/load.js";
import type { GrpoTrainer } from "../rl/trainer.js";

export interface RunState {
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

export function freshState(rolloutRng: object): RunState {
  return {
    step: 0,
    rolloutRng,
    evals: [],
    train: [],
    timing: [],
    metricsBytes: 0,
    samplesBytes: 0,
    lastHeldout: NaN,
    lastEvalStep: 0,
  };
}

export function canResume(dir: string): boolean {
  return fs.existsSync(path.join(dir, RESUME_FILE));
}

/** Writes state-<step>/ (model, optimizer, run state), points resume.json at it, removes older states. */
export function saveState(dir: string, state: RunState, trainer: GrpoTrainer): void {
  const name = `state-${state.step}`;
  const sdir = path.join(dir, name);
  fs.rmSync(sdir, { recursive: true, force: true });
  saveModel(trainer.policy, sdir, { kind: "grpo-state", step: state.step });
  saveOptimizer(sdir, trainer);
  writeAtomic(path.join(sdir, "state.json"), JSON.stringify(state) + "\n");
  writeAtomic(path.join(dir, RESUME_FILE), JSON.stringify({ state: name, step: state.step }) + "\n");
  for (const f of fs.readdirSync(dir))
    if (f.startsWith("state-") && f !== name) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
}

/** Restores the policy and optimizer from the state resume.json points at; returns the run state. */
export function loadState(dir: string, trainer: GrpoTrainer): RunState {
  const pointer = JSON.parse(fs.readFileSync(path.join(dir, RESUME_FILE), "utf8")) as { state: string };
  const sdir = path.join(dir, pointer.state);
  const state = JSON.parse(fs.readFileSync(path.join(sdir, "state.json"), "utf8")) as RunState;
  loadParamsInto(trainer.policy, sdir);
  const opt = decodeSafetensors(fs.readFileSync(path.join(sdir, "optimizer.safetensors")));
  trainer.optimizer.loadState(opt.tensors, Number(opt.metadata.step));
  return state;
}

/** The run is complete: its resumable state is no longer needed. */
export function clearStates(dir: string): void {
  fs.rmSync(path.join(dir, RESUME_FILE), { force: true });
  for (const f of fs.readdirSync(dir))
    if (f.startsWith("state-")) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
}

export function saveOptimizer(dir: string, trainer: GrpoTrainer): void {
  writeAtomic(
    path.join(dir, "optimizer.safetensors"),
    encodeSafetensors(trainer.optimizer.stateArrays(), { step: String(trainer.optimizer.step) }),
  );
}
