// Steering vectors for any model family behind the CausalLM seam (src/model/family.ts): residual-stream
// activations on sampled completions, difference-of-means vectors per behaviour and block, evaluation
// with a vector added, the effect of each block, and the shift RL makes to the mean activations.
// Computation only: files, flags and printing are src/cli/steer.ts's. The functions taking a CausalLM
// set its residual addition as they need and leave it removed. The organism helpers at the end of
// each section (params and config, prompts without BOS) are the same computations on a GptLM.
//
// Positions. A sequence is the model's input prefix for the prompt (BOS included where the model has
// one, as Task.promptIds gives it: P tokens), then the completion's tokens ids[0..n). The activations
// of a completion are the residual stream after each block at the n positions that PREDICT its
// tokens (positions P−1 … P+n−2: the prompt's last token, then every completion token but the last).
// The row for completion token i is the model's state when it chooses token i; a span that opens at
// token i (src/eval/spans.ts) takes that row. "All completion tokens" are those n rows of every
// completion.
import * as tf from "@tensorflow/tfjs";
import { makeRng } from "../engine/rng.js";
import type { ModelConfig, Params, ResidualAddition } from "../model/gpt.js";
import { withResidualAddition, type HostWeights } from "../model/decode.js";
import { decodeSafetensors, encodeSafetensors, type NamedArray } from "../model/checkpoint.js";
import type { CausalLM } from "../model/family.js";
import { rollout, type Scored } from "../task/rollout.js";
import { organismTask, type Task } from "../task/task.js";
import { GptLM, hostLM } from "../model/gptLM.js";
import { BOS_ID, PAD_ID, type CharTokenizer } from "../text/tokenizer.js";
import type { Item } from "../world/datasets.js";
import type { Benchmark, EvalOptions } from "../eval/evaluate.js";
import { evaluateAll, type EvalReport } from "../eval/report.js";
import { passAtK } from "../eval/passk.js";
import { behaviourShares, offsetsOf, type CompletionLabels, type Labeller } from "../eval/spans.js";
import {
  addKlRows,
  differenceOfMeans,
  recoveredShare,
  MeanAccumulator,
  meanOfShares,
  norm,
  shareOverProblems,
  slopeWithCI,
  type ShareEstimate,
} from "./steering-stats.js";

/** A prompt and a completion as the model reads them: `promptIds` is the model's whole input prefix
 * (BOS included where the model has one: Task.promptIds, Scored.promptIds), `ids` the completion
 * without its stop token. */
export interface ModelSequence {
  promptIds: readonly number[];
  ids: readonly number[];
}

/** The organism helpers' sequences: prompt and completion token ids without BOS and EOS (BOS is
 * prepended for them). */
export type TokenSequence = ModelSequence;

/** What the computations need of a task: completion tokens → text (for labels), and the filler of
 * right-padded batches. */
export type SequenceTask = Pick<Task, "decode" | "padId">;

/** Checks block indices against the model (an organism config or any CausalLM); the error lists the valid ones. */
export function checkLayers(
  model: Pick<ModelConfig, "layers"> | Pick<CausalLM, "numLayers">,
  layers: readonly number[],
  flag = "--layers",
): void {
  const blocks = "numLayers" in model ? model.numLayers : model.layers;
  const valid = Array.from({ length: blocks }, (_, i) => i);
  const bad = layers.filter((l) => !valid.includes(l));
  if (bad.length > 0 || layers.length === 0)
    throw new Error(
      `${flag}: ${layers.length === 0 ? "no block given" : `block ${bad.join(", ")} is out of range`}; this model has ${blocks} blocks, valid: ${valid.join(", ")} (0-based; the vector is added after that block)`,
    );
}

/** floats of logits read back per batch (a batch shrinks below `batch` sequences to stay under it) */
const LOGITS_PER_BATCH = 1 << 23;

const inputLength = (q: ModelSequence) => q.promptIds.length + Math.max(0, q.ids.length - 1);

/**
 * The sequences in right-padded batches of at most `batch` (fewer when logits of a large vocabulary
 * are read): calls `run` with each batch's first index, its sequences, and the input ids [b, T].
 */
function forBatches(
  lm: CausalLM,
  seqs: readonly ModelSequence[],
  opts: { padId: number; batch?: number; logits?: boolean },
  run: (s0: number, part: readonly ModelSequence[], input: tf.Tensor2D, T: number) => void,
): void {
  let batch = opts.batch ?? 64;
  if (opts.logits) {
    const longest = seqs.reduce((a, q) => Math.max(a, inputLength(q)), 1);
    batch = Math.max(1, Math.min(batch, Math.floor(LOGITS_PER_BATCH / (longest * lm.vocabSize))));
  }
  for (let s0 = 0; s0 < seqs.length; s0 += batch) {
    const part = seqs.slice(s0, s0 + batch);
    part.forEach((q, b) => {
      if (q.promptIds.length === 0)
        throw new Error(`completion rows: sequence ${s0 + b} has an empty prompt (it needs at least a BOS token)`);
    });
    const T = part.reduce((a, q) => Math.max(a, inputLength(q)), 1);
    if (T > lm.contextLength)
      throw new Error(`completion rows: a sequence of ${T} input tokens exceeds the context ${lm.contextLength}`);
    const idx = new Int32Array(part.length * T).fill(opts.padId);
    part.forEach((q, b) => {
      const seq = [...q.promptIds, ...q.ids.slice(0, Math.max(0, q.ids.length - 1))];
      idx.set(seq.slice(0, T), b * T);
    });
    const input = tf.tensor2d(idx, [part.length, T], "int32");
    try {
      run(s0, part, input, T);
    } finally {
      input.dispose();
    }
  }
}

/** The model's activations of a batch read back: residuals per layer [b*T*C] and logits [b*T*V] or null. */
function readActivations(
  lm: CausalLM,
  input: tf.Tensor2D,
  layers: readonly number[],
  logits: boolean,
): { residuals: Float32Array[]; logits: Float32Array | null } {
  const out = lm.activations(input, { layers, logits });
  const tensors = [...out.residuals, ...(out.logits ? [out.logits] : [])];
  try {
    const data = tensors.map((t) => t.dataSync() as Float32Array);
    return { residuals: data.slice(0, layers.length), logits: out.logits ? data[layers.length] : null };
  } finally {
    tf.dispose(tensors);
  }
}

/**
 * Teacher-forced forward passes over sequences, in batches, with the model's residual addition as
 * set: for each sequence, calls `visit` with its completion rows (see the file comment) of the
 * residual stream after each block in `layers` ([n, C] each) and, if asked, the logits at the same
 * rows ([n, V]). No tensor outlives a batch.
 */
export function completionRowsOf(
  lm: CausalLM,
  seqs: readonly ModelSequence[],
  opts: { layers: readonly number[]; logits?: boolean; padId: number; batch?: number },
  visit: (index: number, rows: { residuals: Float32Array[]; logits: Float32Array | null; n: number }) => void,
): void {
  if (opts.layers.length > 0) checkLayers(lm, opts.layers);
  const C = lm.hiddenSize;
  const V = lm.vocabSize;
  forBatches(lm, seqs, opts, (s0, part, input) => {
    const T = input.shape[1];
    const data = readActivations(lm, input, opts.layers, opts.logits ?? false);
    part.forEach((q, b) => {
      const n = q.ids.length;
      const first = b * T + q.promptIds.length - 1; // the prompt's last position
      const residuals = data.residuals.map((r) => r.subarray(first * C, (first + n) * C));
      const logits = data.logits ? data.logits.subarray(first * V, (first + n) * V) : null;
      visit(s0 + b, { residuals, logits, n });
    });
  });
}

/** The organism's sequences (prompts without BOS) as the model reads them. */
function withBos(seqs: readonly TokenSequence[]): ModelSequence[] {
  return seqs.map((q) => ({ promptIds: [BOS_ID, ...q.promptIds], ids: q.ids }));
}

/** The organism's GptLM over `params`, with `addition` set. */
function organismLM(params: Params, cfg: ModelConfig, addition: ResidualAddition | null = null): GptLM {
  const lm = new GptLM(params, cfg);
  lm.setResidualAddition(addition);
  return lm;
}

/** completionRowsOf for the organism: prompts without BOS, the addition passed in. */
export function completionRows(
  params: Params,
  cfg: ModelConfig,
  seqs: readonly TokenSequence[],
  opts: { layers: readonly number[]; logits?: boolean; addition?: ResidualAddition | null; batch?: number },
  visit: (index: number, rows: { residuals: Float32Array[]; logits: Float32Array | null; n: number }) => void,
): void {
  const lm = organismLM(params, cfg, opts.addition ?? null);
  completionRowsOf(
    lm,
    withBos(seqs),
    { layers: opts.layers, logits: opts.logits, padId: PAD_ID, batch: opts.batch },
    visit,
  );
}

/** Labels of a completion from its token ids, with character offsets from each token's own text. */
export function labelCompletion(decode: (ids: number[]) => string, labeller: Labeller, ids: readonly number[]) {
  const pieces = ids.map((id) => decode([id]));
  return labeller.label(pieces.join(""), offsetsOf(pieces));
}

export interface ActivationStats {
  layers: number[];
  width: number;
  /** per layer (in `layers` order): all completion rows */
  all: MeanAccumulator[];
  /** per layer: the rows of completion token 0 (the prompt's last position) of every completion */
  starts: MeanAccumulator[];
  /** per behaviour, per layer: the rows where one of its spans opens */
  spans: Record<string, MeanAccumulator[]>;
  completions: number;
  /** completions showing each behaviour */
  present: Record<string, number>;
}

/** Sums of the activations over all completion rows and over each behaviour's span starts. */
export function collectActivationsOf(
  lm: CausalLM,
  task: SequenceTask,
  seqs: readonly ModelSequence[],
  labeller: Labeller,
  behaviours: readonly string[],
  layers: readonly number[],
  onBatch?: (done: number) => void,
): ActivationStats {
  const C = lm.hiddenSize;
  const stats: ActivationStats = {
    layers: [...layers],
    width: C,
    all: layers.map(() => new MeanAccumulator(C)),
    starts: layers.map(() => new MeanAccumulator(C)),
    spans: Object.fromEntries(behaviours.map((b) => [b, layers.map(() => new MeanAccumulator(C))])),
    completions: seqs.length,
    present: Object.fromEntries(behaviours.map((b) => [b, 0])),
  };
  const decode = (ids: number[]) => task.decode(ids);
  completionRowsOf(lm, seqs, { layers, padId: task.padId }, (i, { residuals, n }) => {
    const labels = labelCompletion(decode, labeller, seqs[i].ids);
    for (const b of behaviours) if (labels.present[b]) stats.present[b]++;
    layers.forEach((_, j) => {
      for (let t = 0; t < n; t++) stats.all[j].addRow(residuals[j], t);
      if (n > 0) stats.starts[j].addRow(residuals[j], 0);
      for (const b of behaviours) for (const t of labels.spans[b]) stats.spans[b][j].addRow(residuals[j], t);
    });
    if ((i + 1) % 64 === 0 || i + 1 === seqs.length) onBatch?.(i + 1);
  });
  return stats;
}

/** collectActivationsOf for the organism (prompts without BOS). */
export function collectActivations(
  params: Params,
  cfg: ModelConfig,
  decode: (ids: number[]) => string,
  seqs: readonly TokenSequence[],
  labeller: Labeller,
  behaviours: readonly string[],
  layers: readonly number[],
  onBatch?: (done: number) => void,
): ActivationStats {
  const task = { decode, padId: PAD_ID };
  return collectActivationsOf(organismLM(params, cfg), task, withBos(seqs), labeller, behaviours, layers, onBatch);
}

export interface SteeringVector {
  behaviour: string;
  layer: number;
  /** mean over span-start rows − mean over all completion rows (float32) */
  vector: Float32Array;
  /** span-start rows behind it */
  spanTokens: number;
  norm: number;
}

/**
 * What a behaviour's span-start mean is compared with: "all" completion rows (the paper's choice, for
 * every behaviour), or, with "starts", the completion-start rows for the behaviours whose spans always
 * open at token 0 (procedure labels; all completion rows still for the others). Every completion opens
 * at token 0, so against all rows a procedure's vector is mostly "this is the completion's first
 * position"; against the start rows it is what tells that procedure's starts from the others'.
 */
export const BASELINES = ["all", "starts"] as const;
export type Baseline = (typeof BASELINES)[number];

/** Difference-of-means vectors for every behaviour and layer with at least one span start. */
export function steeringVectors(
  stats: ActivationStats,
  baseline: Baseline = "all",
  startOnly: readonly string[] = [],
): { vectors: SteeringVector[]; missing: string[] } {
  const vectors: SteeringVector[] = [];
  const missing: string[] = [];
  for (const [b, accs] of Object.entries(stats.spans)) {
    stats.layers.forEach((layer, j) => {
      if (accs[j].count === 0) {
        if (j === 0) missing.push(b);
        return;
      }
      const against = baseline === "starts" && startOnly.includes(b) ? stats.starts[j] : stats.all[j];
      const vector = Float32Array.from(differenceOfMeans(accs[j], against));
      vectors.push({ behaviour: b, layer, vector, spanTokens: accs[j].count, norm: norm(vector) });
    });
  }
  return { vectors, missing };
}

// ---------------------------------------------------------------------------------------------
// Vector files: a safetensors file with tensors "<behaviour>/<layer>" (the vectors), "mean/<layer>"
// (the mean over all completion rows) and "start/<layer>" (over the completion-start rows), and the metadata as JSON (in the header's __metadata__ under
// "steering", and beside the file as <name>.json).

export const VECTOR_FORMAT = "oneshot-rlvr/steering@1";

export interface VectorFileMeta {
  format: typeof VECTOR_FORMAT;
  checkpoint: string;
  width: number;
  blocks: number;
  layers: number[];
  /** keyword labellers: behaviour -> keyword (what apply, layers and rl label with on other families) */
  labeller: { kind: string; definitions: Record<string, string>; keywords?: Record<string, string> };
  positions: string;
  /** what the span-start mean was compared with (see BASELINES) */
  baseline: { kind: Baseline; startBehaviours: string[] };
  source: string;
  sampling: { n: number; temperature: number; topP: number; seed: number; problems: number };
  completions: number;
  completionTokens: number;
  shares: Record<string, number>;
  /** behaviours asked for but never seen (no vector) */
  missing: string[];
  vectors: {
    behaviour: string;
    layer: number;
    spanTokens: number;
    norm: number;
    meanNorm: number;
    tokenNorm: number;
  }[];
}

export const POSITIONS_NOTE =
  "activation rows are the residual stream after the block at the positions that predict each completion token " +
  "(the prompt's last token for token 0); a vector is the mean over the rows where the behaviour's spans open " +
  "minus the mean over all completion rows";

export function encodeVectorFile(
  vectors: readonly SteeringVector[],
  stats: ActivationStats,
  meta: Omit<VectorFileMeta, "format" | "vectors" | "completionTokens" | "layers" | "width" | "completions">,
): { safetensors: Buffer; meta: VectorFileMeta } {
  const tensors: Record<string, NamedArray> = {};
  const means = stats.layers.map((_, j) => Float32Array.from(stats.all[j].mean()));
  for (const v of vectors) tensors[`${v.behaviour}/${v.layer}`] = { shape: [v.vector.length], data: v.vector };
  stats.layers.forEach((l, j) => {
    tensors[`mean/${l}`] = { shape: [stats.width], data: means[j] };
    tensors[`start/${l}`] = { shape: [stats.width], data: Float32Array.from(stats.starts[j].mean()) };
  });
  const full: VectorFileMeta = {
    format: VECTOR_FORMAT,
    ...meta,
    width: stats.width,
    layers: stats.layers,
    completions: stats.completions,
    completionTokens: stats.all[0]?.count ?? 0,
    vectors: vectors.map((v) => ({
      behaviour: v.behaviour,
      layer: v.layer,
      spanTokens: v.spanTokens,
      norm: v.norm,
      meanNorm: norm(means[stats.layers.indexOf(v.layer)]),
      tokenNorm: stats.all[stats.layers.indexOf(v.layer)].rmsNorm(),
    })),
  };
  return { safetensors: encodeSafetensors(tensors, { steering: JSON.stringify(full) }), meta: full };
}

export interface VectorFile {
  meta: VectorFileMeta;
  vector(behaviour: string, layer: number): Float32Array;
  mean(layer: number): Float32Array;
  behaviours: string[];
}

export function decodeVectorFile(buf: Buffer, file: string): VectorFile {
  const { tensors, metadata } = decodeSafetensors(buf, file);
  let meta: VectorFileMeta;
  try {
    meta = JSON.parse(metadata.steering ?? "null");
  } catch {
    throw new Error(`${file}: the header's steering metadata is not JSON`);
  }
  if (!meta || meta.format !== VECTOR_FORMAT)
    throw new Error(
      `${file}: not a steering vector file (${VECTOR_FORMAT}); write one with \`npm run steer -- extract\``,
    );
  const behaviours = [...new Set(meta.vectors.map((v) => v.behaviour))];
  const get = (name: string, what: string) => {
    const t = tensors[name];
    if (!t) throw new Error(`${file}: ${what}`);
    return t.data;
  };
  return {
    meta,
    behaviours,
    vector(behaviour, layer) {
      if (!behaviours.includes(behaviour))
        throw new Error(
          `${file}: no vector for behaviour ${JSON.stringify(behaviour)}; valid: ${behaviours.join(", ")}${meta.missing.length ? ` (never seen when extracted: ${meta.missing.join(", ")})` : ""}`,
        );
      return get(
        `${behaviour}/${layer}`,
        `no vector for ${behaviour} at block ${layer}; valid blocks: ${meta.layers.join(", ")}`,
      );
    },
    mean(layer) {
      return get(`mean/${layer}`, `no mean activation for block ${layer}; valid blocks: ${meta.layers.join(", ")}`);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Evaluation with a vector added: `npm run eval`'s report (evaluateAll, the same rollouts and random
// streams) plus behaviour shares and 95 % intervals from the per-problem outcomes.

export interface SteeredMetrics {
  heldoutGreedy: ShareEstimate;
  greedyFormatShare: ShareEstimate;
  heldoutSampled: ShareEstimate | null;
  /** graded-form share of the completions the behaviour shares count (samples if n > 0, else greedy) */
  formatShare: ShareEstimate;
  behaviours: Record<string, ShareEstimate>;
  passAtK: Record<string, ShareEstimate>;
}

export interface SteeredEval extends SteeredMetrics {
  report: EvalReport;
  benchmarks: Record<string, SteeredMetrics>;
}

function metricsOf(
  greedy: readonly Scored[],
  sampled: readonly Scored[] | null,
  labels: readonly CompletionLabels[],
  n: number,
  ks: readonly number[],
  behaviours: readonly string[],
): SteeredMetrics {
  const P = greedy.length;
  const perProblem = (f: (s: Scored, i: number) => number, xs: readonly Scored[], per: number) =>
    Array.from({ length: P }, (_, p) => {
      let a = 0;
      for (let j = 0; j < per; j++) a += f(xs[p * per + j], p * per + j);
      return a / per;
    });
  const shown = sampled ?? greedy;
  const per = sampled ? n : 1;
  const out: SteeredMetrics = {
    heldoutGreedy: shareOverProblems(perProblem((s) => s.reward, greedy, 1)),
    greedyFormatShare: shareOverProblems(perProblem((s) => s.format, greedy, 1)),
    heldoutSampled: sampled
      ? shareOverProblems(
          perProblem((s) => s.reward, sampled, n),
          n,
        )
      : null,
    formatShare: shareOverProblems(
      perProblem((s) => s.format, shown, per),
      per,
    ),
    behaviours: Object.fromEntries(
      behaviours.map((b) => [
        b,
        shareOverProblems(
          perProblem((_, i) => (labels[i].present[b] ? 1 : 0), shown, per),
          per,
        ),
      ]),
    ),
    passAtK: {},
  };
  if (sampled)
    for (const k of ks) {
      const vals = Array.from({ length: P }, (_, p) =>
        passAtK(n, sampled.slice(p * n, (p + 1) * n).filter((s) => s.reward === 1).length, k),
      );
      out.passAtK[`pass@${k}`] = shareOverProblems(vals, n);
    }
  return out;
}

function combine(parts: readonly SteeredMetrics[], units: number, unitsGreedy: number): SteeredMetrics {
  const pick = <T>(f: (m: SteeredMetrics) => T) => parts.map(f);
  const sampled = pick((m) => m.heldoutSampled);
  const keys = (f: (m: SteeredMetrics) => Record<string, ShareEstimate>) => Object.keys(f(parts[0]));
  const perKey = (f: (m: SteeredMetrics) => Record<string, ShareEstimate>, maxN: number) =>
    Object.fromEntries(
      keys(f).map((k) => [
        k,
        meanOfShares(
          pick((m) => f(m)[k]),
          maxN,
        ),
      ]),
    );
  const shownUnits = sampled[0] ? units : unitsGreedy;
  return {
    heldoutGreedy: meanOfShares(
      pick((m) => m.heldoutGreedy),
      unitsGreedy,
    ),
    greedyFormatShare: meanOfShares(
      pick((m) => m.greedyFormatShare),
      unitsGreedy,
    ),
    heldoutSampled: sampled.every((s) => s !== null) ? meanOfShares(sampled as ShareEstimate[], units) : null,
    formatShare: meanOfShares(
      pick((m) => m.formatShare),
      shownUnits,
    ),
    behaviours: perKey((m) => m.behaviours, shownUnits),
    passAtK: perKey((m) => m.passAtK, units),
  };
}

/** The evaluation of `lm` as it is (its addition untouched): `npm run eval`'s report plus shares. */
function evaluateScored(
  lm: CausalLM,
  task: Task,
  benches: readonly Benchmark[],
  opts: EvalOptions,
  seed: number,
  labeller: Labeller,
  behaviours: readonly string[],
  onBenchmark?: (name: string) => void,
): SteeredEval {
  const scored: Record<string, { greedy: readonly Scored[]; sampled: readonly Scored[] | null }> = {};
  const { report } = evaluateAll(
    lm,
    task,
    [...benches],
    opts,
    seed,
    (name) => onBenchmark?.(name),
    (bench, mode, rows) => {
      scored[bench] ??= { greedy: [], sampled: null };
      if (mode === "greedy") scored[bench].greedy = rows;
      else scored[bench].sampled = rows;
    },
  );
  const decode = (ids: number[]) => task.decode(ids);
  const benchmarks: Record<string, SteeredMetrics> = {};
  let units = 0;
  let unitsGreedy = 0;
  for (const b of benches) {
    const { greedy, sampled } = scored[b.name];
    const shown = sampled ?? greedy;
    const labels = shown.map((s) => labelCompletion(decode, labeller, s.ids));
    benchmarks[b.name] = metricsOf(greedy, sampled, labels, opts.n, opts.ks, behaviours);
    units += shown.length;
    unitsGreedy += greedy.length;
  }
  return { report, benchmarks, ...combine(Object.values(benchmarks), units, unitsGreedy) };
}

/**
 * Evaluates `lm` with `addition` (null: plain) on the benchmarks exactly as `npm run eval` does
 * (evaluateAll, same seed and streams), and adds behaviour shares and intervals. The graded-form
 * shares are the task's (the verifier's format check: `####N` for the organism, a `\boxed{}` answer
 * for the text task's default).
 */
export function evaluateSteeredOf(
  lm: CausalLM,
  task: Task,
  benches: readonly Benchmark[],
  opts: EvalOptions,
  seed: number,
  addition: ResidualAddition | null,
  labeller: Labeller,
  behaviours: readonly string[] = labeller.behaviours,
  onBenchmark?: (name: string) => void,
): SteeredEval {
  lm.setResidualAddition(addition);
  try {
    return evaluateScored(lm, task, benches, opts, seed, labeller, behaviours, onBenchmark);
  } finally {
    lm.setResidualAddition(null);
  }
}

/** evaluateSteeredOf for the organism's host weights (one copy of the weights for many evaluations). */
export function evaluateSteered(
  hw: HostWeights,
  tok: CharTokenizer,
  benches: readonly Benchmark[],
  opts: EvalOptions,
  seed: number,
  addition: ResidualAddition | null,
  labeller: Labeller,
  behaviours: readonly string[] = labeller.behaviours,
  onBenchmark?: (name: string) => void,
): SteeredEval {
  const lm = hostLM(withResidualAddition(hw, addition));
  return evaluateScored(lm, organismTask(tok), benches, opts, seed, labeller, behaviours, onBenchmark);
}

// ---------------------------------------------------------------------------------------------
// Which layer: per layer, the behaviour share over a few scales (slope per unit scale) and the KL of
// the steered next-token distribution to the unsteered one.

export interface LayerEffect {
  behaviour: string;
  layer: number;
  /** |vector|: slope / vectorNorm is the change per unit of added norm */
  vectorNorm: number;
  /** `formatShare`: the share of samples in the task's graded form (the verifier's format check) */
  points: { scale: number; share: ShareEstimate; shares: Record<string, number>; formatShare: number; kl: number }[];
  slope: { slope: number; se: number; lo: number; hi: number };
}

/**
 * Mean over the completion tokens of `seqs` of KL(steered ‖ unsteered) next-token distribution, in
 * nats: per batch, the logits without and with `addition` (the model is left without one).
 */
export function meanKlOf(
  lm: CausalLM,
  seqs: readonly ModelSequence[],
  addition: ResidualAddition,
  padId: number,
): number {
  const V = lm.vocabSize;
  const acc = { total: 0, rows: 0 };
  try {
    forBatches(lm, seqs, { padId, logits: true }, (_, part, input, T) => {
      lm.setResidualAddition(null);
      const plain = readActivations(lm, input, [], true).logits!;
      lm.setResidualAddition(addition);
      const steered = readActivations(lm, input, [], true).logits!;
      part.forEach((q, b) => {
        const first = b * T + q.promptIds.length - 1;
        const n = q.ids.length;
        addKlRows(steered.subarray(first * V, (first + n) * V), plain.subarray(first * V, (first + n) * V), V, acc);
      });
    });
  } finally {
    lm.setResidualAddition(null);
  }
  return acc.rows > 0 ? acc.total / acc.rows : NaN;
}

/**
 * For each behaviour and layer: samples n completions per item at every scale (the same random
 * stream at each scale), the share of completions showing the behaviour, and the mean KL(steered ‖
 * unsteered) over the completion tokens of the unsteered samples (teacher-forced).
 */
export function layerEffectsOf(
  lm: CausalLM,
  task: Task,
  items: readonly Item[],
  vectors: { behaviour: string; layer: number; vector: Float32Array }[],
  scales: readonly number[],
  sampling: { n: number; temperature: number; topP: number; maxNewTokens: number; seed: number },
  labeller: Labeller,
  onPoint?: (behaviour: string, layer: number, scale: number) => void,
): LayerEffect[] {
  const pairs = items.flatMap((it) => Array.from({ length: sampling.n }, () => it));
  const decode = (ids: number[]) => task.decode(ids);
  const sample = (addition: ResidualAddition | null) => {
    lm.setResidualAddition(addition);
    try {
      return rollout(lm, task, pairs, sampling, makeRng(sampling.seed, "steer/layers"));
    } finally {
      lm.setResidualAddition(null);
    }
  };
  const plain = sample(null);
  const out: LayerEffect[] = [];
  for (const { behaviour, layer, vector } of vectors) {
    checkLayers(lm, [layer], "--layers");
    const points: LayerEffect["points"] = [];
    for (const scale of scales) {
      const addition = scale === 0 ? null : { layer, vector, scale };
      const rows = addition ? sample(addition) : plain;
      const labels = rows.map((s) => labelCompletion(decode, labeller, s.ids));
      const perProblem = items.map((_, p) => {
        let a = 0;
        for (let j = 0; j < sampling.n; j++) a += labels[p * sampling.n + j].present[behaviour] ? 1 : 0;
        return a / sampling.n;
      });
      const kl = addition ? meanKlOf(lm, plain, addition, task.padId) : 0;
      points.push({
        scale,
        share: shareOverProblems(perProblem, sampling.n),
        shares: behaviourShares(labels, labeller.behaviours),
        formatShare: rows.length > 0 ? rows.filter((r) => r.format === 1).length / rows.length : 0,
        kl,
      });
      onPoint?.(behaviour, layer, scale);
    }
    const slope = slopeWithCI(
      points.map((p) => p.scale),
      points.map((p) => p.share.value),
      points.map((p) => p.share.se),
    );
    out.push({ behaviour, layer, vectorNorm: norm(vector), points, slope });
  }
  return out;
}

/** layerEffectsOf for the organism: sampling and forward passes from `params` (`hw` gives its config;
 * it must be hostWeights(params)). */
export function layerEffects(
  params: Params,
  hw: HostWeights,
  tok: CharTokenizer,
  items: readonly Item[],
  vectors: { behaviour: string; layer: number; vector: Float32Array }[],
  scales: readonly number[],
  sampling: { n: number; temperature: number; topP: number; maxNewTokens: number; seed: number },
  labeller: Labeller,
  onPoint?: (behaviour: string, layer: number, scale: number) => void,
): LayerEffect[] {
  const lm = organismLM(params, hw.cfg);
  return layerEffectsOf(lm, organismTask(tok), items, vectors, scales, sampling, labeller, onPoint);
}

// ---------------------------------------------------------------------------------------------
// Steering against RL.

export interface ShiftRows {
  layer: number;
  /** RL − base mean over all completion rows, and over the completion-start rows */
  delta: Float64Array;
  deltaStart: Float64Array;
  tokens: number;
  completions: number;
}

/** RL − base mean residual stream per layer over the same sequences (all completion rows, and start rows). */
export function activationShiftOf(
  lmA: CausalLM,
  lmB: CausalLM,
  padId: number,
  seqs: readonly ModelSequence[],
  layers: readonly number[],
): ShiftRows[] {
  const C = lmA.hiddenSize;
  if (lmB.hiddenSize !== C) throw new Error(`activation shift: the models' widths differ (${C}, ${lmB.hiddenSize})`);
  const means = [lmA, lmB].map((lm) => {
    const all = layers.map(() => new MeanAccumulator(C));
    const starts = layers.map(() => new MeanAccumulator(C));
    completionRowsOf(lm, seqs, { layers, padId }, (_, { residuals, n }) =>
      layers.forEach((__, j) => {
        for (let t = 0; t < n; t++) all[j].addRow(residuals[j], t);
        if (n > 0) starts[j].addRow(residuals[j], 0);
      }),
    );
    return { all, starts };
  });
  const diff = (a: MeanAccumulator, b: MeanAccumulator) => {
    const ma = a.mean();
    return b.mean().map((x, i) => x - ma[i]);
  };
  return layers.map((layer, j) => ({
    layer,
    delta: diff(means[0].all[j], means[1].all[j]),
    deltaStart: diff(means[0].starts[j], means[1].starts[j]),
    tokens: means[0].all[j].count,
    completions: means[0].starts[j].count,
  }));
}

/** activationShiftOf for the organism (prompts without BOS). */
export function activationShift(
  paramsA: Params,
  paramsB: Params,
  cfg: ModelConfig,
  seqs: readonly TokenSequence[],
  layers: readonly number[],
): ShiftRows[] {
  return activationShiftOf(organismLM(paramsA, cfg), organismLM(paramsB, cfg), PAD_ID, withBos(seqs), layers);
}

/** A seeded direction of unit norm (Gaussian components), for random-direction controls. */
export function randomDirection(width: number, seed: number, stream: string): Float32Array {
  const rng = makeRng(seed, stream);
  const v = new Float64Array(width);
  for (let i = 0; i < width; i++) {
    const u = Math.max(rng.next(), 1e-12);
    v[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
  }
  const n = norm(v);
  return Float32Array.from(v, (x) => x / n);
}

export interface Candidate {
  /** a behaviour, RL_SHIFT or random-<i> */
  name: string;
  kind: "behaviour" | "rl-shift" | "random";
  layer: number;
  vector: Float32Array;
}

export const RL_SHIFT = "rl-shift";

export interface RlGridRow {
  candidate: string;
  kind: Candidate["kind"];
  layer: number;
  /** norm of the added vector (residual-stream units); the base gets +, RL − */
  norm: number;
  model: "base" | "rl";
  heldout: ShareEstimate;
  greedyFormat: number;
  /** greedy accuracy on the selection items (base rows only) */
  selection: number | null;
}

/** The addition of `norm` along a candidate's direction, with the sign for the model. */
export function normAddition(c: Candidate, addedNorm: number, sign: 1 | -1): ResidualAddition {
  const n = norm(c.vector);
  if (!(n > 0)) throw new Error(`steering: the ${c.name} vector at block ${c.layer} is zero`);
  return { layer: c.layer, vector: c.vector, scale: (sign * addedNorm) / n };
}

/**
 * Greedy held-out accuracy of the base steered by +norm and of RL steered by −norm along every
 * candidate direction; base rows also on the selection items (not held out), to choose a setting
 * without looking at the held-out answers.
 */
export function againstRlGrid(
  lms: { base: CausalLM; rl: CausalLM },
  task: Task,
  benches: readonly Benchmark[],
  selection: readonly Benchmark[],
  opts: EvalOptions,
  seed: number,
  candidates: readonly Candidate[],
  norms: readonly number[],
  labeller: Labeller,
  onRow?: (row: RlGridRow) => void,
): RlGridRow[] {
  const greedy = { ...opts, n: 0, ks: [] };
  const rows: RlGridRow[] = [];
  for (const c of candidates)
    for (const addedNorm of norms)
      for (const model of ["base", "rl"] as const) {
        const addition = normAddition(c, addedNorm, model === "base" ? 1 : -1);
        const r = evaluateSteeredOf(lms[model], task, benches, greedy, seed, addition, labeller, []);
        const row: RlGridRow = {
          candidate: c.name,
          kind: c.kind,
          layer: c.layer,
          norm: addedNorm,
          model,
          heldout: r.heldoutGreedy,
          greedyFormat: r.greedyFormatShare.value,
          selection:
            model === "base"
              ? evaluateSteeredOf(lms.base, task, selection, greedy, seed, addition, labeller, []).heldoutGreedy.value
              : null,
        };
        rows.push(row);
        onRow?.(row);
      }
  return rows;
}

export interface RlSummary {
  heldoutBase: number;
  heldoutRl: number;
  /** the base setting with the best selection-set accuracy (ties: the smaller norm), and its held-out result */
  bestBaseBySelection: RlGridRow & { recovered: number | null };
  /** the best base setting on the held-out set itself (optimistic: chosen on what it reports) */
  bestBaseOnHeldout: RlGridRow & { recovered: number | null };
  /** per behaviour candidate, layer and norm: RL's held-out under −norm, the random directions' mean,
   * the share of RL's gain removed by each, and the difference (removed beyond random) */
  undo: {
    candidate: string;
    layer: number;
    norm: number;
    heldout: number;
    randomHeldout: number | null;
    removed: number | null;
    removedByRandom: number | null;
    beyondRandom: number | null;
  }[];
}

/** Pure summary of the grid (see RlSummary). */
export function summariseAgainstRl(grid: readonly RlGridRow[], heldoutBase: number, heldoutRl: number): RlSummary {
  const base = grid.filter((g) => g.model === "base" && g.kind !== "random");
  if (base.length === 0) throw new Error("summariseAgainstRl: no base rows");
  const better = (key: (g: RlGridRow) => number) => (a: RlGridRow, g: RlGridRow) =>
    key(g) > key(a) || (key(g) === key(a) && g.norm < a.norm) ? g : a;
  const bySel = base.reduce(better((g) => g.selection ?? -1));
  const byHeld = base.reduce(better((g) => g.heldout.value));
  const rl = grid.filter((g) => g.model === "rl");
  const undo = rl
    .filter((g) => g.kind !== "random")
    .map((g) => {
      const rand = rl.filter((r) => r.kind === "random" && r.layer === g.layer && r.norm === g.norm);
      const randomHeldout = rand.length ? rand.reduce((a, r) => a + r.heldout.value, 0) / rand.length : null;
      const removed = recoveredShare(heldoutRl, heldoutBase, g.heldout.value);
      const removedByRandom = randomHeldout === null ? null : recoveredShare(heldoutRl, heldoutBase, randomHeldout);
      return {
        candidate: g.candidate,
        layer: g.layer,
        norm: g.norm,
        heldout: g.heldout.value,
        randomHeldout,
        removed,
        removedByRandom,
        beyondRandom: removed === null || removedByRandom === null ? null : removed - removedByRandom,
      };
    });
  return {
    heldoutBase,
    heldoutRl,
    bestBaseBySelection: { ...bySel, recovered: recoveredShare(heldoutBase, heldoutRl, bySel.heldout.value) },
    bestBaseOnHeldout: { ...byHeld, recovered: recoveredShare(heldoutBase, heldoutRl, byHeld.heldout.value) },
    undo,
  };
}
