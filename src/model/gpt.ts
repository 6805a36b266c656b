// A decoder-only transformer (GPT-2 style, pre-LayerNorm, learned positions, untied lm_head) in
// TensorFlow.js: parameters, seeded init and the training forward pass. Incremental decoding with
// a KV cache lives in decode.ts; checkpoints in checkpoint.ts.
// Two formulations of the same function, chosen by the kernels installed on the active backend:
//  - fast kernels (src/kernels, `--kernels fast`): transposed operands go straight to the
//    WebAssembly BatchMatMul (same speed as plain ones, and bit-identical to an explicit transpose),
//    attention runs all heads as one batched matmul, and GELU is one op (RlvrGelu) with its own
//    gradient kernel;
//  - stock tfjs: linear layers use a customGrad with explicit transposes (stock wasm's transposed
//    matmul is ~10x slower), attention heads are split with slice, GELU is composed of tfjs ops.
// The two differ only in GELU's rounding (our tanh vs the backend's). Token embedding is a one-hot
// matmul either way (wasm has no gradient for gather).
import * as tf from "@tensorflow/tfjs";
import { makeRng } from "../engine/rng.js";
import { fastKernelsActive } from "../kernels/tfjs/register.js";
import { GELU } from "../kernels/tfjs/RlvrGelu.js";

export interface ModelConfig {
  vocabSize: number;
  contextLength: number;
  layers: number;
  width: number;
  heads: number;
  /** MLP hidden size = mlpRatio * width */
  mlpRatio: number;
}

export const PRESETS: Record<string, Omit<ModelConfig, "vocabSize">> = {
  "gpt-nano": { contextLength: 96, layers: 2, width: 64, heads: 4, mlpRatio: 4 },
  "gpt-nano-l3": { contextLength: 96, layers: 3, width: 64, heads: 4, mlpRatio: 4 },
  "gpt-micro": { contextLength: 96, layers: 3, width: 96, heads: 4, mlpRatio: 4 },
  "gpt-mini": { contextLength: 128, layers: 4, width: 128, heads: 4, mlpRatio: 4 },
};

export function resolveModelConfig(
  preset: string,
  vocabSize: number,
  overrides: Partial<ModelConfig> = {},
): ModelConfig {
  const p = PRESETS[preset];
  if (!p)
    throw new Error(`unknown model preset ${JSON.stringify(preset)}; use one of ${Object.keys(PRESETS).join(", ")}`);
  const cfg = { ...p, vocabSize, ...overrides };
  validateModelConfig(cfg);
  return cfg;
}

export function validateModelConfig(cfg: ModelConfig): void {
  for (const k of ["vocabSize", "contextLength", "layers", "width", "heads", "mlpRatio"] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] <= 0)
      throw new Error(`model config: ${k} must be a positive integer, got ${cfg[k]}`);
  }
  if (cfg.width % cfg.heads !== 0)
    throw new Error(`model config: width ${cfg.width} must be divisible by heads ${cfg.heads}`);
}

/** Parameter names and shapes, in checkpoint order (names follow nanoGPT). */
export function paramShapes(cfg: ModelConfig): [string, number[]][] {
  const C = cfg.width;
  const H = cfg.mlpRatio * C;
  const out: [string, number[]][] = [
    ["wte", [cfg.vocabSize, C]],
    ["wpe", [cfg.contextLength, C]],
  ];
  for (let l = 0; l < cfg.layers; l++) {
    out.push(
      [`h.${l}.ln_1.g`, [C]],
      [`h.${l}.ln_1.b`, [C]],
      [`h.${l}.attn.c_attn.w`, [C, 3 * C]],
      [`h.${l}.attn.c_attn.b`, [3 * C]],
      [`h.${l}.attn.c_proj.w`, [C, C]],
      [`h.${l}.attn.c_proj.b`, [C]],
      [`h.${l}.ln_2.g`, [C]],
      [`h.${l}.ln_2.b`, [C]],
      [`h.${l}.mlp.c_fc.w`, [C, H]],
      [`h.${l}.mlp.c_fc.b`, [H]],
      [`h.${l}.mlp.c_proj.w`, [H, C]],
      [`h.${l}.mlp.c_proj.b`, [C]],
    );
  }
  out.push(["ln_f.g", [C]], ["ln_f.b", [C]], ["lm_head.w", [C, cfg.vocabSize]]);
  return out;
}

export type Params = Record<string, tf.Variable>;

export function countParams(cfg: ModelConfig): number {
  return paramShapes(cfg).reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);
}

/** Seeded host-side init (backend independent): N(0, 0.02), residual projections scaled by 1/sqrt(2L). */
export function initParams(cfg: ModelConfig, seed: number): Params {
  const rng = makeRng(seed, "init");
  const gauss = () => {
    const u = Math.max(rng.next(), 1e-12);
    const v = rng.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  };
  const params: Params = {};
  for (const [name, shape] of paramShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith(".g")) data.fill(1);
    else if (!name.endsWith(".b")) {
      const std = name.endsWith("c_proj.w") ? 0.02 / Math.sqrt(2 * cfg.layers) : 0.02;
      for (let i = 0; i < n; i++) data[i] = gauss() * std;
    }
    params[name] = tf.variable(tf.tensor(data, shape), true);
  }
  return params;
}

export function disposeParams(params: Params): void {
  for (const v of Object.values(params)) v.dispose();
}

/** y = x @ w (+ b), with a gradient that uses explicit transposes. x: [N, I], w: [I, O], b: [O]. */
const linearNoBias = tf.customGrad(((x: tf.Tensor, w: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [xs, ws] = saved as tf.Tensor2D[];
      const g = dy as tf.Tensor2D;
      if (fastKernelsActive()) return [tf.matMul(g, ws, false, true), tf.matMul(xs, g, true, false)];
      return [tf.matMul(g, ws.transpose()), tf.matMul(xs.transpose(), g)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor, w: tf.Tensor) => tf.Tensor;

export function linear(x: tf.Tensor2D, w: tf.Tensor, b?: tf.Tensor): tf.Tensor2D {
  const y = linearNoBias(x, w) as tf.Tensor2D;
  return b ? y.add(b) : y;
}

export function layerNorm(x: tf.Tensor2D, g: tf.Tensor, b: tf.Tensor, eps = 1e-5): tf.Tensor2D {
  const { mean, variance } = tf.moments(x, -1, true);
  return x
    .sub(mean)
    .mul(tf.rsqrt(variance.add(eps)))
    .mul(g)
    .add(b);
}

/** GELU, tanh approximation: our op while the fast kernels are installed, else tfjs ops. */
export function gelu(x: tf.Tensor): tf.Tensor {
  if (fastKernelsActive() && x.dtype === "float32") return tf.engine().runKernel(GELU, { x }) as tf.Tensor;
  const c = Math.sqrt(2 / Math.PI);
  return x.mul(0.5).mul(tf.tanh(x.add(x.pow(3).mul(0.044715)).mul(c)).add(1));
}

const maskCache = new Map<number, tf.Tensor2D>();
/** additive causal mask [T, T]: 0 on and below the diagonal, -1e9 above (kept across calls) */
function causalMask(T: number): tf.Tensor2D {
  let m = maskCache.get(T);
  if (!m) {
    const data = new Float32Array(T * T);
    for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) data[i * T + j] = -1e9;
    m = tf.keep(tf.tensor2d(data, [T, T]));
    maskCache.set(T, m);
  }
  return m;
}

/** Causal self-attention from qkv [B, T, 3C]; returns [B*T, C]. One head at a time, with slices. */
export function attentionPerHead(
  qkv: tf.Tensor,
  B: number,
  T: number,
  nh: number,
  hd: number,
  mask: tf.Tensor2D,
  scale: number,
): tf.Tensor2D {
  const C = nh * hd;
  const heads: tf.Tensor[] = [];
  for (let h = 0; h < nh; h++) {
    const q = qkv.slice([0, 0, h * hd], [B, T, hd]) as tf.Tensor3D;
    const k = qkv.slice([0, 0, C + h * hd], [B, T, hd]) as tf.Tensor3D;
    const v = qkv.slice([0, 0, 2 * C + h * hd], [B, T, hd]) as tf.Tensor3D;
    const att = tf.softmax(
      tf
        .matMul(q, k.transpose([0, 2, 1]))
        .mul(scale)
        .add(mask),
    ); // [B, T, T]
    heads.push(tf.matMul(att as tf.Tensor3D, v)); // [B, T, hd]
  }
  return tf.concat(heads, 2).reshape([B * T, C]) as tf.Tensor2D;
}

/** The same, all heads in one batched matmul ([B*nh, T, hd] each for q, k, v); the transposed k
 * goes to the matmul kernel as is. Same values as attentionPerHead with the fast matmul. */
export function attentionAllHeads(
  qkv: tf.Tensor,
  B: number,
  T: number,
  nh: number,
  hd: number,
  mask: tf.Tensor2D,
  scale: number,
): tf.Tensor2D {
  // [B, T, 3*nh, hd] -> [B, 3*nh, T, hd] (rank 4: the wasm backend's rank-5 transpose is ~25x slower)
  const [q, k, v] = tf
    .split(qkv.reshape([B, T, 3 * nh, hd]).transpose([0, 2, 1, 3]), 3, 1)
    .map((t) => t.reshape([B * nh, T, hd]) as tf.Tensor3D);
  const att = tf.softmax(tf.matMul(q, k, false, true).mul(scale).add(mask)) as tf.Tensor3D; // [B*nh, T, T]
  return tf
    .matMul(att, v)
    .reshape([B, nh, T, hd])
    .transpose([0, 2, 1, 3])
    .reshape([B * T, nh * hd]) as tf.Tensor2D;
}

/** Steering: `vector * scale` (rounded to float32) is added to the residual stream after block `layer`
 * (0-based) at every position, in forward() and in both decoders (decode.ts, fastDecoder.ts). */
export interface ResidualAddition {
  layer: number;
  vector: Float32Array;
  scale: number;
}

/** Checks an addition against the model; returns the added vector (vector * scale in float32). */
export function residualAdditionVector(cfg: ModelConfig, a: ResidualAddition): Float32Array {
  if (!Number.isInteger(a.layer) || a.layer < 0 || a.layer >= cfg.layers)
    throw new Error(
      `residual addition: layer ${a.layer} is out of range; this model has blocks ${Array.from({ length: cfg.layers }, (_, i) => i).join(", ")}`,
    );
  if (a.vector.length !== cfg.width)
    throw new Error(`residual addition: vector has ${a.vector.length} values, the model width is ${cfg.width}`);
  if (!Number.isFinite(a.scale)) throw new Error(`residual addition: scale must be finite, got ${a.scale}`);
  const out = new Float32Array(cfg.width);
  for (let i = 0; i < out.length; i++) out[i] = a.vector[i] * a.scale;
  if (!out.every(Number.isFinite)) throw new Error("residual addition: vector * scale has non-finite values");
  return out;
}

/** Optional extras of forward(): a residual addition, and `residuals`, which receives the residual
 * stream after every block ([B*T, C] each, in block order; the caller keeps or disposes them). */
export interface ForwardHooks {
  addition?: ResidualAddition | null;
  residuals?: tf.Tensor2D[];
}

/**
 * Training forward pass. idx: int32 [B, T] token ids (T <= contextLength).
 * Returns logits [B*T, V] (row b*T + t predicts token t+1 of sequence b).
 * Call inside tf.tidy / variableGrads.
 */
export function forward(params: Params, cfg: ModelConfig, idx: tf.Tensor2D, hooks: ForwardHooks = {}): tf.Tensor2D {
  const [B, T] = idx.shape;
  if (T > cfg.contextLength) throw new Error(`forward: sequence length ${T} exceeds context ${cfg.contextLength}`);
  const C = cfg.width;
  const nh = cfg.heads;
  const hd = C / nh;
  const N = B * T;
  const onehot = tf.oneHot(idx.reshape([N]) as tf.Tensor1D, cfg.vocabSize).toFloat() as tf.Tensor2D;
  const pos = params.wpe.slice([0, 0], [T, C]);
  let x = linear(onehot, params.wte).reshape([B, T, C]).add(pos).reshape([N, C]) as tf.Tensor2D; // [N, C]
  const mask = causalMask(T);
  const scale = 1 / Math.sqrt(hd);
  const fast = fastKernelsActive();
  const add = hooks.addition ? tf.tensor1d(residualAdditionVector(cfg, hooks.addition)) : null;
  for (let l = 0; l < cfg.layers; l++) {
    const p = (s: string) => params[`h.${l}.${s}`];
    const h1 = layerNorm(x, p("ln_1.g"), p("ln_1.b"));
    const qkv = linear(h1, p("attn.c_attn.w"), p("attn.c_attn.b")).reshape([B, T, 3 * C]); // [B, T, 3C]
    const y = fast
      ? attentionAllHeads(qkv, B, T, nh, hd, mask, scale)
      : attentionPerHead(qkv, B, T, nh, hd, mask, scale);
    x = x.add(linear(y, p("attn.c_proj.w"), p("attn.c_proj.b")));
    const h2 = layerNorm(x, p("ln_2.g"), p("ln_2.b"));
    const m = gelu(linear(h2, p("mlp.c_fc.w"), p("mlp.c_fc.b"))) as tf.Tensor2D;
    x = x.add(linear(m, p("mlp.c_proj.w"), p("mlp.c_proj.b")));
    if (add && l === hooks.addition!.layer) x = x.add(add);
    hooks.residuals?.push(x);
  }
  const xf = layerNorm(x, params["ln_f.g"], params["ln_f.b"]);
  return linear(xf, params["lm_head.w"]); // [N, V]
}

/**
 * Log-probabilities of the next tokens and the entropy of each predictive distribution, both of the
 * distribution softmax(logits / temperature) — the one rollouts sampled at that temperature come from.
 * inputs: [B, T] ids; targets: [B, T] ids (inputs shifted by one). Returns [B, T] each.
 */
export function tokenLogProbs(
  params: Params,
  cfg: ModelConfig,
  inputs: tf.Tensor2D,
  targets: tf.Tensor2D,
  withEntropy = false,
  temperature = 1,
  addition: ResidualAddition | null = null,
): { logp: tf.Tensor2D; entropy?: tf.Tensor2D } {
  if (!(temperature > 0)) throw new Error(`tokenLogProbs: temperature must be > 0, got ${temperature}`);
  const [B, T] = inputs.shape;
  const raw = forward(params, cfg, inputs, { addition });
  const logits = temperature === 1 ? raw : raw.div(temperature);
  const logprobs = tf.logSoftmax(logits); // [N, V]
  const onehot = tf.oneHot(targets.reshape([B * T]) as tf.Tensor1D, cfg.vocabSize).toFloat();
  const logp = logprobs.mul(onehot).sum(-1).reshape([B, T]) as tf.Tensor2D;
  if (!withEntropy) return { logp };
  const entropy = tf.exp(logprobs).mul(logprobs).sum(-1).neg().reshape([B, T]) as tf.Tensor2D;
  return { logp, entropy };
}

/** Next-token cross-entropy summed over positions where mask = 1, divided by `normaliser`
 * (default: the number of such positions, i.e. the token mean of this batch). */
export function lmLoss(
  params: Params,
  cfg: ModelConfig,
  inputs: tf.Tensor2D,
  targets: tf.Tensor2D,
  mask: tf.Tensor2D,
  normaliser?: number,
): tf.Scalar {
  const { logp } = tokenLogProbs(params, cfg, inputs, targets);
  const total = logp.mul(mask).sum().neg();
  return (normaliser ? total.div(normaliser) : total.div(mask.sum().maximum(1))) as tf.Scalar;
}
