// LlamaModel.tokenLogProbs (llama.ts) as one native forward and one native backward (the addon's
// llamaForward / llamaBackward, src/native/llama.c) joined to tfjs by a customGrad: `--kernels fused`
// for the Llama family (llama, qwen2, qwen3), as gptFused.ts is for the organism, under the same
// switch (fusedTrainingActive). Same function as the tfjs graph to float rounding, tested parameter
// by parameter (test/llamaFused.test.ts). The residual addition (steering) is supported: a constant
// added after a layer, which the backward passes through. The activations the backward needs live
// in a Float32Array held only by the gradient closure; one spare buffer is kept for the next call.
// The kernels read the parameters where tfjs keeps them and write the gradients into tensors
// allocated beforehand (on the wasm backend, both in its heap), so no parameter-sized copy is made.
import * as tf from "@tensorflow/tfjs";
import { nativeAddon, nativeUnavailableReason } from "../engine/native.js";
import { matmulThreads } from "../kernels/matmul.js";
import { io } from "../kernels/tfjs/io.js";
import { llamaParamShapes, type LlamaConfig } from "./llama.js";
import { SpareBuffer, tapeRecording } from "./fusedBuffers.js";

/** The addon's exports for the Llama family (src/native/llama_addon.c). */
interface LlamaNative {
  /** [parameter tensors, activation floats] of a config [B, T, C, L, V, I, nh, nkv, hd, qkvBias, oBias, qkNorm,
   * tied, keepLogits] */
  llamaSizes(cfg: Int32Array): [number, number];
  /** params, grads: one Float32Array per parameter tensor, in llamaParamShapes() order */
  llamaForward(
    cfg: Int32Array,
    params: Float32Array[],
    inputs: Int32Array,
    targets: Int32Array,
    cos: Float32Array,
    sin: Float32Array,
    eps: number,
    temperature: number,
    acts: Float32Array,
    logp: Float32Array,
    entropy: Float32Array | null,
    addLayer: number,
    addVector: Float32Array | null,
    threads: number,
  ): void;
  llamaBackward(
    cfg: Int32Array,
    params: Float32Array[],
    inputs: Int32Array,
    targets: Int32Array,
    cos: Float32Array,
    sin: Float32Array,
    eps: number,
    temperature: number,
    acts: Float32Array,
    dlogp: Float32Array,
    dentropy: Float32Array | null,
    grads: Float32Array[],
    threads: number,
  ): void;
}

function llamaNative(): LlamaNative | null {
  const a = nativeAddon();
  return a && typeof a.llamaForward === "function" ? (a as unknown as LlamaNative) : null;
}

/** whether the Llama family's fused forward/backward can run here; llamaFusedUnavailableReason() says why not */
export function llamaFusedAvailable(): boolean {
  return llamaNative() !== null;
}

export function llamaFusedUnavailableReason(): string {
  if (!nativeAddon()) return nativeUnavailableReason();
  return llamaNative()
    ? ""
    : "the native addon was built without src/native/llama.c (rebuild it: npm run build:native)";
}

/** Why the native path cannot compute this config ("" when it can): the MLP biases of llama's
 * mlp_bias are not in its parameter layout (no released checkpoint of the three families uses them). */
export function llamaFusedUnsupported(cfg: LlamaConfig): string {
  if (cfg.mlpBias) return "mlp_bias is not supported by the native kernels";
  return "";
}

/** The forward keeps the output layer's logits for the backward when they take at most this many bytes
 * (B·T·V floats); above it, the backward computes each vocabulary slice's logits again. */
let headKeepBytes = 256 * 2 ** 20;

/** sets the limit above (for tests: 0 makes the backward always recompute); returns the previous one */
export function setLlamaHeadKeepBytes(bytes: number): number {
  const old = headKeepBytes;
  headKeepBytes = bytes;
  return old;
}

const spare = new SpareBuffer();

/** The values of float32 tensors where they live, without a copy: views of the tfjs-wasm heap (valid
 * until the backend allocates again: take them just before the native call) or the cpu backend's
 * arrays; copies (dataSync) on any other backend. */
function views(ts: tf.Tensor[]): Float32Array[] {
  const name = tf.getBackend();
  if (name !== "wasm" && name !== "cpu") return ts.map((t) => t.dataSync() as Float32Array);
  const { read } = io(name, tf.backend());
  return ts.map((t) => read(t));
}

/** New float32 tensors of `shapes` and their values to be written: on the wasm backend allocated in
 * its heap first and written there (no copy), elsewhere written into arrays that become tensors. */
function outputs(shapes: number[][]): { arrays: Float32Array[]; tensors: () => tf.Tensor[] } {
  if (tf.getBackend() === "wasm") {
    const backend = tf.backend() as unknown as {
      makeOutput(shape: number[], dtype: string): { dataId: object; shape: number[]; dtype: "float32" };
    };
    const infos = shapes.map((s) => backend.makeOutput(s, "float32"));
    const { read } = io("wasm", backend);
    const arrays = infos.map((i) => read(i)); // after every allocation
    const engine = tf.engine() as unknown as { makeTensorFromTensorInfo(i: object): tf.Tensor };
    return { arrays, tensors: () => infos.map((i) => engine.makeTensorFromTensorInfo(i)) };
  }
  const arrays = shapes.map((s) => new Float32Array(s.reduce((a, b) => a * b, 1)));
  return { arrays, tensors: () => arrays.map((a, i) => tf.tensor(a, shapes[i])) };
}

export interface LlamaFusedInput {
  config: LlamaConfig;
  params: Record<string, tf.Variable>;
  /** RoPE tables of positions 0 … T − 1, [T, hd] each (sin signed: −sin, then +sin) */
  cos: Float32Array;
  sin: Float32Array;
  /** added to the residual stream after layer `layer` */
  addition: { layer: number; vector: Float32Array } | null;
}

/**
 * tokenLogProbs through the native kernels: log-probabilities of `targets` under softmax(logits /
 * temperature) and their entropies, [B, T] each. Differentiable with respect to every parameter (a
 * custom op over all of them, in llamaParamShapes() order).
 */
export function llamaTokenLogProbsFused(
  m: LlamaFusedInput,
  inputs: tf.Tensor2D,
  targets: tf.Tensor2D,
  temperature: number,
  withEntropy: boolean,
): { logp: tf.Tensor2D; entropy: tf.Tensor2D | null } {
  const nat = llamaNative();
  if (!nat) throw new Error(`llamaFused: the native addon cannot be used (${llamaFusedUnavailableReason()})`);
  const cfg = m.config;
  const why = llamaFusedUnsupported(cfg);
  if (why) throw new Error(`llamaFused: ${why}`);
  const [B, T] = inputs.shape;
  const N = B * T;
  const shapes = llamaParamShapes(cfg);
  const vars = shapes.map(([name]) => m.params[name]);
  const taped = tapeRecording();
  const ncfg = Int32Array.from([
    B,
    T,
    cfg.hiddenSize,
    cfg.numLayers,
    cfg.vocabSize,
    cfg.intermediateSize,
    cfg.numHeads,
    cfg.numKvHeads,
    cfg.headDim,
    cfg.qkvBias ? 1 : 0,
    cfg.oBias ? 1 : 0,
    cfg.qkNorm ? 1 : 0,
    cfg.tieWordEmbeddings ? 1 : 0,
    taped && N * cfg.vocabSize * 4 <= headKeepBytes ? 1 : 0, // (no backward will read them otherwise)
  ]);
  const [nTensors, nActs] = nat.llamaSizes(ncfg);
  if (nTensors !== shapes.length)
    throw new Error(`llamaFused: ${shapes.length} parameter tensors, the native layout ${nTensors}`);
  const ids = Int32Array.from(inputs.dataSync());
  const tgt = Int32Array.from(targets.dataSync());
  const eps = cfg.rmsNormEps;
  const threads = matmulThreads();
  const add = m.addition;
  const op = tf.customGrad((() => {
    let acts: Float32Array | null = spare.take(nActs);
    const out = new Float32Array(2 * N); // logp, then entropy
    nat.llamaForward(
      ncfg,
      views(vars),
      ids,
      tgt,
      m.cos,
      m.sin,
      eps,
      temperature,
      acts,
      out.subarray(0, N),
      out.subarray(N),
      add ? add.layer : -1,
      add ? add.vector : null,
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
        if (!acts) throw new Error("llamaFused: a backward through a forward taken outside a gradient tape");
        const grads = outputs(shapes.map(([, shape]) => shape));
        nat.llamaBackward(
          ncfg,
          views(vars), // (after the gradients' allocation, which may move the heap)
          ids,
          tgt,
          m.cos,
          m.sin,
          eps,
          temperature,
          acts,
          d.subarray(0, N),
          d.subarray(N),
          grads.arrays,
          threads,
        );
        spare.give(acts);
        acts = null;
        return grads.tensors();
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (...xs: tf.Tensor[]) => tf.Tensor3D;
  return tf.tidy(() => {
    const both = op(...vars);
    const logp = both.slice([0, 0, 0], [1, B, T]).reshape([B, T]) as tf.Tensor2D;
    const entropy = withEntropy ? (both.slice([1, 0, 0], [1, B, T]).reshape([B, T]) as tf.Tensor2D) : null;
    return { logp, entropy } as unknown as tf.TensorContainer;
  }) as unknown as { logp: tf.Tensor2D; entropy: tf.Tensor2D | null };
}
