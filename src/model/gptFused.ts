// The organism's tokenLogProbs (gpt.ts) as one native forward and one native backward (the addon's
// gptForward / gptBackward, src/native/gpt.c) joined to tfjs by a customGrad: `--kernels fused`.
// Same function as gpt.ts's to float rounding (not bit for bit: other summation orders), tested
// parameter by parameter against the tfjs graph (test/gptFused.test.ts). The residual addition
// (steering) is supported: a constant added after a block, which the backward passes through.
// The activations the backward needs live in a Float32Array held only by the gradient closure, so
// a call outside a gradient tape (reference and old-policy log-probs) keeps no tensor once it
// returns. One spare activation buffer is kept for the next call (allocating tens of MB afresh, and
// faulting its pages in, costs time every step): a call outside a tape hands its buffer back at once, a
// call on a tape once its backward ran.
import * as tf from "@tensorflow/tfjs";
import { nativeAddon, nativeUnavailableReason } from "../engine/native.js";
import { matmulThreads } from "../kernels/matmul.js";
import { paramShapes, residualAdditionVector, type ModelConfig, type Params, type ResidualAddition } from "./gpt.js";
import { SpareBuffer, tapeRecording } from "./fusedBuffers.js";

/** The addon's exports for the organism (src/native/gpt_addon.c). */
interface GptNative {
  /** [parameter floats, activation floats] of a config [B, T, C, NH, L, V, H, ctx] */
  gptSizes(cfg: Int32Array): [number, number];
  gptForward(
    cfg: Int32Array,
    params: Float32Array,
    inputs: Int32Array,
    targets: Int32Array,
    temperature: number,
    acts: Float32Array,
    logp: Float32Array,
    entropy: Float32Array | null,
    addLayer: number,
    addVector: Float32Array | null,
    threads: number,
  ): void;
  gptBackward(
    cfg: Int32Array,
    params: Float32Array,
    inputs: Int32Array,
    targets: Int32Array,
    temperature: number,
    acts: Float32Array,
    dlogp: Float32Array,
    dentropy: Float32Array | null,
    grads: Float32Array,
    threads: number,
  ): void;
}

function gptNative(): GptNative | null {
  const a = nativeAddon();
  return a && typeof a.gptForward === "function" ? (a as unknown as GptNative) : null;
}

/** whether the fused forward/backward can run here; fusedUnavailableReason() says why not */
export function fusedAvailable(): boolean {
  return gptNative() !== null;
}

export function fusedUnavailableReason(): string {
  if (!nativeAddon()) return nativeUnavailableReason();
  return gptNative() ? "" : "the native addon was built without src/native/gpt.c (rebuild it: npm run build:native)";
}

let active = false;

/** Routes GptLM.tokenLogProbs through the fused kernels (true) or the tfjs graph (false); set by
 * selectKernels (generate.ts) for `--kernels fused`. */
export function setFusedTraining(on: boolean): void {
  if (on && !fusedAvailable())
    throw new Error(
      `--kernels fused: the native addon cannot be used (${fusedUnavailableReason()}); build it with \`npm run build:native\` or pass --kernels fast`,
    );
  active = on;
}

export function fusedTrainingActive(): boolean {
  return active;
}

const spare = new SpareBuffer();

/** all parameters, concatenated in paramShapes() order (the layout gpt.c reads) */
function packParams(params: Params, cfg: ModelConfig, total: number): Float32Array {
  const flat = new Float32Array(total);
  let off = 0;
  for (const [name] of paramShapes(cfg)) {
    const d = params[name].dataSync() as Float32Array;
    flat.set(d, off);
    off += d.length;
  }
  if (off !== total) throw new Error(`gptFused: parameters have ${off} floats, the native layout ${total}`);
  return flat;
}

/**
 * tokenLogProbs (gpt.ts) through the native kernels: log-probabilities of `targets` under
 * softmax(logits / temperature) and, with `withEntropy`, its entropy; [B, T] each. Differentiable with
 * respect to every parameter (tf.variableGrads sees a custom op over all of them).
 */
export function tokenLogProbsFused(
  params: Params,
  cfg: ModelConfig,
  inputs: tf.Tensor2D,
  targets: tf.Tensor2D,
  withEntropy = false,
  temperature = 1,
  addition: ResidualAddition | null = null,
): { logp: tf.Tensor2D; entropy?: tf.Tensor2D } {
  if (!(temperature > 0)) throw new Error(`tokenLogProbs: temperature must be > 0, got ${temperature}`);
  const nat = gptNative();
  if (!nat) throw new Error(`gptFused: the native addon cannot be used (${fusedUnavailableReason()})`);
  const [B, T] = inputs.shape;
  if (T > cfg.contextLength) throw new Error(`forward: sequence length ${T} exceeds context ${cfg.contextLength}`);
  const N = B * T;
  const shapes = paramShapes(cfg);
  const vars = shapes.map(([name]) => params[name]);
  const ncfg = Int32Array.from([
    B,
    T,
    cfg.width,
    cfg.heads,
    cfg.layers,
    cfg.vocabSize,
    cfg.mlpRatio * cfg.width,
    cfg.contextLength,
  ]);
  const [nParams, nActs] = nat.gptSizes(ncfg);
  // a new buffer is sized for this batch at the full context length, so that a later, longer batch
  // (GRPO batches grow and shrink with the rollouts) still fits the spare: no reallocation, no
  // first-touch page faults in the middle of a run
  const fullT = Int32Array.from(ncfg);
  fullT[1] = cfg.contextLength;
  const allocActs = Math.max(nActs, nat.gptSizes(fullT)[1]);
  const ids = Int32Array.from(inputs.dataSync());
  const tgt = Int32Array.from(targets.dataSync());
  const add = addition ? residualAdditionVector(cfg, addition) : null;
  const threads = matmulThreads();
  const taped = tapeRecording();
  const op = tf.customGrad((() => {
    const flat = packParams(params, cfg, nParams);
    let acts: Float32Array | null = spare.take(nActs, allocActs);
    const out = new Float32Array(2 * N); // logp, then entropy
    nat.gptForward(
      ncfg,
      flat,
      ids,
      tgt,
      temperature,
      acts,
      out.subarray(0, N),
      out.subarray(N),
      add ? addition!.layer : -1,
      add,
      threads,
    );
    if (!taped) {
      spare.give(acts); // no backward will read it
      acts = null;
    }
    return {
      value: tf.tensor3d(out, [2, B, T]),
      gradFunc: (dy: tf.Tensor) => {
        const d = dy.dataSync() as Float32Array;
        if (!acts) throw new Error("gptFused: a backward through a forward taken outside a gradient tape");
        const grads = new Float32Array(nParams);
        nat.gptBackward(ncfg, flat, ids, tgt, temperature, acts, d.subarray(0, N), d.subarray(N), grads, threads);
        spare.give(acts);
        acts = null;
        let off = 0;
        return shapes.map(([, shape]) => {
          const n = shape.reduce((a, b) => a * b, 1);
          const g = tf.tensor(grads.subarray(off, off + n), shape);
          off += n;
          return g;
        });
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (...xs: tf.Tensor[]) => tf.Tensor3D;
  // intermediates are left to the caller's tidy / variableGrads, as gpt.ts's are
  const both = op(...vars);
  const logp = both.slice([0, 0, 0], [1, B, T]).reshape([B, T]) as tf.Tensor2D;
  if (!withEntropy) return { logp };
  return { logp, entropy: both.slice([1, 0, 0], [1, B, T]).reshape([B, T]) as tf.Tensor2D };
}
