// Llama-style decoders in TensorFlow.js — Hugging Face's `llama` (Llama 3's `llama3` rope scaling
// included), `qwen2` (q/k/v biases) and `qwen3` (per-head RMSNorm of q and k before RoPE, explicit
// head_dim) — as one modeling file whose parameter names ARE the checkpoint's tensor names, so that
// loading and saving is a name-for-name copy (hfCheckpoint.ts). Pre-norm blocks: RMSNorm (float32,
// rms_norm_eps), grouped-query attention with rotate-half RoPE (rope_theta), SwiGLU MLP; tied or
// untied embeddings. Shapes in comments: B batch, T positions, C hidden, nh / nkv query / key-value
// heads, hd head_dim, I intermediate, V vocabulary, N = B*T rows.
// Training forward: an embedding gather (its gradient a scatter-add: src/kernels/unsortedSegmentSum.ts)
// and tf.matMul everywhere (the WebAssembly SIMD matmul when the fast kernels are installed, which
// takes transposed operands at full speed; stock tfjs gets explicit transposes, as gpt.ts does). The
// output layer never materialises [N, V] logits: log-probs and entropies are computed over
// vocabulary slices, and the gradient recomputes each slice (lmHeadLogProbs), so a micro-batch's
// memory is bounded by its activations, not by N x V.
// Generation: the prompts are left-padded into one batch and prefilled together; then every step
// feeds one token per sequence against a per-layer KV cache. Sampling: argmax on the device; or one
// uniform per sequence from the Rng and an inverse-CDF draw, over cumulative sums computed on the
// device (read back: ~15 ms for [64, 49152]), or, for top-p < 1, over the top 256 probabilities per
// row (the rest of a row read only when they hold less than top-p).
import fs from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { z } from "zod";
import type { Rng } from "../engine/rng.js";
import { fastKernelsActive } from "../kernels/tfjs/register.js";
import { registerUnsortedSegmentSum } from "../kernels/unsortedSegmentSum.js";
import { checkActivationLayers, type CausalLM, type GenerateOptions } from "./family.js";
import {
  CONFIG_FILE,
  copyCompanionFiles,
  eosTokenIds,
  loadHfTensors,
  readHfDirectory,
  saveHfTensors,
  TORCH_DTYPE,
  writeJsonAtomic,
} from "./hfCheckpoint.js";
import { fusedTrainingActive } from "./gptFused.js";
import { llamaFusedUnsupported, llamaTokenLogProbsFused } from "./llamaFused.js";
import type { WeightDType } from "./safetensors.js";

export const LLAMA_FAMILIES = ["llama", "qwen2", "qwen3"] as const;
export type LlamaFamily = (typeof LLAMA_FAMILIES)[number];
const ARCHITECTURES: Record<string, LlamaFamily> = {
  LlamaForCausalLM: "llama",
  Qwen2ForCausalLM: "qwen2",
  Qwen3ForCausalLM: "qwen3",
};

// ---------------------------------------------------------------------------------------------
// config

/** config.json fields read here (others are kept as written and saved back unchanged); defaults are
 * transformers' LlamaConfig / Qwen2Config / Qwen3Config ones. */
const HfConfigSchema = z
  .object({
    model_type: z.string().optional(),
    architectures: z.array(z.string()).optional(),
    vocab_size: z.number().int().positive(),
    hidden_size: z.number().int().positive(),
    intermediate_size: z.number().int().positive(),
    num_hidden_layers: z.number().int().positive(),
    num_attention_heads: z.number().int().positive(),
    num_key_value_heads: z.number().int().positive().nullish(),
    head_dim: z.number().int().positive().nullish(),
    max_position_embeddings: z.number().int().positive().default(2048),
    rms_norm_eps: z.number().positive().default(1e-6),
    rope_theta: z.number().positive().default(10000),
    rope_scaling: z.record(z.string(), z.unknown()).nullish(),
    tie_word_embeddings: z.boolean().default(false),
    attention_bias: z.boolean().default(false),
    mlp_bias: z.boolean().default(false),
    hidden_act: z.string().default("silu"),
    use_sliding_window: z.boolean().default(false),
    partial_rotary_factor: z.number().optional(),
  })
  .loose();

export interface RopeScaling {
  /** Llama 3: inv_freq scaled by frequency band */
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

export interface LlamaConfig {
  family: LlamaFamily;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  tieWordEmbeddings: boolean;
  /** biases on q, k, v (qwen2 always; llama/qwen3 with attention_bias) */
  qkvBias: boolean;
  /** bias on o_proj (llama/qwen3 with attention_bias) */
  oBias: boolean;
  mlpBias: boolean;
  /** qwen3: RMSNorm over each head of q and k */
  qkNorm: boolean;
}

/** The family named by config.json: model_type, else the first of architectures. */
export function detectFamily(raw: Record<string, unknown>, file = CONFIG_FILE): LlamaFamily {
  const mt = raw.model_type;
  const supported = `supported: ${LLAMA_FAMILIES.join(", ")} (architectures ${Object.keys(ARCHITECTURES).join(", ")})`;
  if (typeof mt === "string") {
    if ((LLAMA_FAMILIES as readonly string[]).includes(mt)) return mt as LlamaFamily;
    throw new Error(`${file}: model_type ${JSON.stringify(mt)} is not supported; ${supported}`);
  }
  const arch = Array.isArray(raw.architectures) ? raw.architectures[0] : undefined;
  if (typeof arch === "string" && ARCHITECTURES[arch]) return ARCHITECTURES[arch];
  throw new Error(
    `${file}: no model_type, and architectures ${JSON.stringify(raw.architectures ?? null)} names no supported model; ${supported}`,
  );
}

/** Parses and checks a config.json object; errors name the file, the field, the value and the fix. */
export function parseLlamaConfig(raw: Record<string, unknown>, file = CONFIG_FILE): LlamaConfig {
  const family = detectFamily(raw, file);
  const r = HfConfigSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    const field = i.path.join(".");
    throw new Error(
      `${file}: field ${field || "(root)"}: ${i.message} (got ${JSON.stringify((raw as Record<string, unknown>)[field] ?? null)})`,
    );
  }
  const c = r.data;
  const bad = (field: string, why: string) =>
    new Error(`${file}: field ${field} = ${JSON.stringify(raw[field])}: ${why}`);
  if (c.hidden_act !== "silu") throw bad("hidden_act", "only silu (SwiGLU) is supported");
  if (c.use_sliding_window)
    throw bad("use_sliding_window", "sliding-window attention is not supported; set it to false");
  if (c.partial_rotary_factor !== undefined && c.partial_rotary_factor !== 1)
    throw bad("partial_rotary_factor", "only full rotary embeddings (1.0) are supported");
  const numKvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % numKvHeads !== 0)
    throw bad("num_key_value_heads", `must divide num_attention_heads = ${c.num_attention_heads}`);
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0)
    throw bad(c.head_dim ? "head_dim" : "hidden_size", `head_dim ${headDim} must be an even integer`);
  let ropeScaling: RopeScaling | null = null;
  if (c.rope_scaling) {
    const rs = c.rope_scaling;
    const type = rs.rope_type ?? rs.type;
    if (type === "llama3") {
      const num = (k: string) => {
        const v = rs[k];
        if (typeof v !== "number" || !(v > 0)) throw bad("rope_scaling", `${k} must be a positive number`);
        return v;
      };
      ropeScaling = {
        factor: num("factor"),
        lowFreqFactor: num("low_freq_factor"),
        highFreqFactor: num("high_freq_factor"),
        originalMaxPositions: num("original_max_position_embeddings"),
      };
      if (ropeScaling.highFreqFactor === ropeScaling.lowFreqFactor)
        throw bad("rope_scaling", "high_freq_factor must differ from low_freq_factor");
    } else if (type !== "default") {
      throw bad(
        "rope_scaling",
        `rope type ${JSON.stringify(type)} is not supported; supported: llama3, default (or null)`,
      );
    }
  }
  return {
    family,
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads,
    headDim,
    maxPositions: c.max_position_embeddings,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta,
    ropeScaling,
    tieWordEmbeddings: c.tie_word_embeddings,
    qkvBias: family === "qwen2" || c.attention_bias,
    oBias: family !== "qwen2" && c.attention_bias,
    mlpBias: family === "llama" && c.mlp_bias,
    qkNorm: family === "qwen3",
  };
}

/** Every parameter's checkpoint name and shape ([out, in] for linear weights), in checkpoint order. */
export function llamaParamShapes(cfg: LlamaConfig): [string, number[]][] {
  const { hiddenSize: C, intermediateSize: I, headDim: hd, numHeads: nh, numKvHeads: nkv, vocabSize: V } = cfg;
  const out: [string, number[]][] = [["model.embed_tokens.weight", [V, C]]];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}.`;
    out.push([`${p}input_layernorm.weight`, [C]]);
    out.push([`${p}self_attn.q_proj.weight`, [nh * hd, C]]);
    if (cfg.qkvBias) out.push([`${p}self_attn.q_proj.bias`, [nh * hd]]);
    out.push([`${p}self_attn.k_proj.weight`, [nkv * hd, C]]);
    if (cfg.qkvBias) out.push([`${p}self_attn.k_proj.bias`, [nkv * hd]]);
    out.push([`${p}self_attn.v_proj.weight`, [nkv * hd, C]]);
    if (cfg.qkvBias) out.push([`${p}self_attn.v_proj.bias`, [nkv * hd]]);
    out.push([`${p}self_attn.o_proj.weight`, [C, nh * hd]]);
    if (cfg.oBias) out.push([`${p}self_attn.o_proj.bias`, [C]]);
    if (cfg.qkNorm) out.push([`${p}self_attn.q_norm.weight`, [hd]], [`${p}self_attn.k_norm.weight`, [hd]]);
    out.push([`${p}post_attention_layernorm.weight`, [C]]);
    out.push([`${p}mlp.gate_proj.weight`, [I, C]]);
    if (cfg.mlpBias) out.push([`${p}mlp.gate_proj.bias`, [I]]);
    out.push([`${p}mlp.up_proj.weight`, [I, C]]);
    if (cfg.mlpBias) out.push([`${p}mlp.up_proj.bias`, [I]]);
    out.push([`${p}mlp.down_proj.weight`, [C, I]]);
    if (cfg.mlpBias) out.push([`${p}mlp.down_proj.bias`, [C]]);
  }
  out.push(["model.norm.weight", [C]]);
  if (!cfg.tieWordEmbeddings) out.push(["lm_head.weight", [V, C]]);
  return out;
}

export function countLlamaParams(cfg: LlamaConfig): number {
  return llamaParamShapes(cfg).reduce((a, [, s]) => a + s.reduce((x, y) => x * y, 1), 0);
}

/** No weight decay on biases and norm weights (transformers' Trainer / TRL grouping). */
export function llamaDecayed(name: string): boolean {
  return !(name.endsWith(".bias") || /(^|\.)(norm|[a-z_]*layernorm|q_norm|k_norm)\.weight$/.test(name));
}

/** RoPE inverse frequencies [hd/2] in float32, as transformers computes them (default, or llama3). */
export function ropeInvFreq(cfg: LlamaConfig): Float32Array {
  const d = cfg.headDim;
  const inv = new Float32Array(d / 2);
  for (let i = 0; i < d / 2; i++) inv[i] = 1 / Math.fround(cfg.ropeTheta ** Math.fround((2 * i) / d));
  const rs = cfg.ropeScaling;
  if (!rs) return inv;
  const lowWavelen = rs.originalMaxPositions / rs.lowFreqFactor;
  const highWavelen = rs.originalMaxPositions / rs.highFreqFactor;
  for (let i = 0; i < inv.length; i++) {
    const f = inv[i];
    const wavelen = (2 * Math.PI) / f;
    if (wavelen > lowWavelen) inv[i] = f / rs.factor;
    else if (wavelen >= highWavelen) {
      const smooth = (rs.originalMaxPositions / wavelen - rs.lowFreqFactor) / (rs.highFreqFactor - rs.lowFreqFactor);
      inv[i] = (1 - smooth) * (f / rs.factor) + smooth * f;
    }
  }
  return inv;
}

// ---------------------------------------------------------------------------------------------
// layers

/** Whether tf.matMul takes transposed operands at full speed: everywhere but the stock wasm
 * kernel, whose transposed products are ~10x slower than an explicit transpose and a plain product. */
function transposesFree(): boolean {
  return tf.getBackend() !== "wasm" || fastKernelsActive();
}

/** y = x @ w^T for a [out, in] weight, x [N, in] → [N, out] (explicit transposes where they are not free). */
const linearNoBias = tf.customGrad(((x: tf.Tensor2D, w: tf.Tensor2D, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: transposesFree() ? tf.matMul(x, w, false, true) : tf.matMul(x, w.transpose()),
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [xs, ws] = saved as tf.Tensor2D[];
      const g = dy as tf.Tensor2D;
      const dw = transposesFree() ? tf.matMul(g, xs, true, false) : tf.matMul(g.transpose(), xs);
      return [tf.matMul(g, ws), dw];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor2D, w: tf.Tensor) => tf.Tensor2D;

function linear(x: tf.Tensor2D, w: tf.Tensor, b?: tf.Tensor): tf.Tensor2D {
  const y = linearNoBias(x, w);
  return b ? y.add(b) : y;
}

/** x / sqrt(mean(x², last axis) + eps) · w, in float32 */
function rmsNorm<T extends tf.Tensor>(x: T, w: tf.Tensor, eps: number): T {
  return x.mul(x.square().mean(-1, true).add(eps).rsqrt()).mul(w) as T;
}

/** x·cos + rotate_half(x)·sin, with rotate_half(x) = cat(−x₂, x₁) written as cat(x₂, x₁)·cat(−s, s)
 * (sinSigned). x: [B, h, T, hd]; cos, sinSigned broadcast to it. */
function applyRope(x: tf.Tensor4D, cos: tf.Tensor, sinSigned: tf.Tensor): tf.Tensor4D {
  const [x1, x2] = tf.split(x, 2, 3);
  return x.mul(cos).add(tf.concat([x2, x1], 3).mul(sinSigned)) as tf.Tensor4D;
}

/** additive causal mask [T, T]: 0 on and below the diagonal, −1e9 above */
function causalMask(T: number): tf.Tensor2D {
  const i = tf.range(0, T, 1, "int32");
  return tf.cast(tf.greater(i.reshape([1, T]), i.reshape([T, 1])), "float32").mul(-1e9) as tf.Tensor2D;
}

/** rows per vocabulary slice of the output layer: about 8M floats (32 MB) per [rows, slice] temporary */
const HEAD_SLICE_ELEMENTS = 1 << 23;

/**
 * log p(target | h) and the entropy of softmax(h Wᵀ / τ), [N, 2] (column 0 log-probs, column 1
 * entropies; 0 when `entropy` is false), without holding [N, V] logits: the vocabulary is taken in
 * slices, each slice's log-sum-exp and Σ p·s combined at the end; the gradient recomputes each
 * slice's logits (d log p/ds = onehot − p, dH/ds = −p (log p + H), both divided by τ).
 * h: [N, C]; w: [V, C]; targets: int32 [N]; sliceRows: vocabulary rows per slice (default: about
 * HEAD_SLICE_ELEMENTS / N).
 */
export function lmHeadLogProbs(
  h: tf.Tensor2D,
  w: tf.Tensor2D,
  targets: tf.Tensor1D,
  temperature: number,
  entropy: boolean,
  sliceRows?: number,
): tf.Tensor2D {
  const [N] = h.shape;
  const [V] = w.shape;
  const slice = sliceRows ?? Math.max(256, Math.min(V, Math.floor(HEAD_SLICE_ELEMENTS / Math.max(1, N))));
  const ranges: [number, number][] = [];
  for (let v0 = 0; v0 < V; v0 += slice) ranges.push([v0, Math.min(V, v0 + slice)]);
  const fast = transposesFree();
  /** rows [a, b) of w: the whole of it when there is one slice; a gather otherwise (tfjs-wasm's
   * Slice copies its whole input out first) */
  const rowsOf = (ww: tf.Tensor2D, a: number, b: number): tf.Tensor2D =>
    b - a === V ? ww : (tf.gather(ww, tf.range(a, b, 1, "int32")) as tf.Tensor2D);
  const logitsOf = (hh: tf.Tensor2D, ws: tf.Tensor2D) => {
    const z = fast ? tf.matMul(hh, ws, false, true) : tf.matMul(hh, ws.transpose());
    return temperature === 1 ? z : z.div(temperature);
  };
  // per-row log-sum-exp [N, 1] and Σ_j p_j s_j [N, 1] over all slices
  const stats = (hh: tf.Tensor2D, ww: tf.Tensor2D) => {
    const lses: tf.Tensor[] = [];
    const sums: tf.Tensor[] = [];
    for (const [a, b] of ranges) {
      const [l, s] = tf.tidy(() => {
        const st = logitsOf(hh, rowsOf(ww, a, b)); // [N, v]
        const lse = tf.logSumExp(st, 1, true); // [N, 1]
        const ps = entropy ? tf.exp(st.sub(lse)).mul(st).sum(1, true) : tf.zeros([N, 1]);
        return [lse, ps];
      });
      lses.push(l);
      sums.push(s);
    }
    const L = tf.concat(lses, 1); // [N, slices]
    const lse = tf.logSumExp(L, 1, true); // [N, 1]
    // Σ_j p_j s_j = Σ_slices exp(lse_slice − lse) · (Σ_{j in slice} softmax_slice(s)_j s_j)
    const ps = entropy ? tf.exp(L.sub(lse)).mul(tf.concat(sums, 1)).sum(1, true) : tf.zeros([N, 1]);
    tf.dispose([...lses, ...sums, L]);
    return { lse, ps };
  };
  const f = tf.customGrad(((hh: tf.Tensor2D, ww: tf.Tensor2D, save: tf.GradSaveFunc) => {
    const { lse, ps } = stats(hh, ww);
    const H = lse.sub(ps); // [N, 1]
    save([hh, ww, lse, H, targets]); // (targets too: the caller's tidy may dispose it before the backward pass)
    // the target's logit: a row-wise dot with the gathered output rows
    const zt = tf.gather(ww, targets).mul(hh).sum(1, true); // [N, 1]
    const st = temperature === 1 ? zt : zt.div(temperature);
    const value = tf.concat([st.sub(lse), entropy ? H : tf.zerosLike(lse)], 1);
    return {
      value,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [hs, ws, lse2, H, tgt] = saved as tf.Tensor2D[];
        const g = dy as tf.Tensor2D; // [N, 2]
        const dLogp = g.slice([0, 0], [N, 1]);
        const dEnt = entropy ? g.slice([0, 1], [N, 1]) : tf.zeros([N, 1]);
        let dh: tf.Tensor2D = tf.zerosLike(hs);
        const dws: tf.Tensor[] = [];
        for (const [a, b] of ranges) {
          const [dhNext, dw] = tf.tidy(() => {
            const wsl = rowsOf(ws, a, b); // [v, C]
            const s = logitsOf(hs, wsl); // [N, v]
            const logp = s.sub(lse2);
            const p = tf.exp(logp);
            // ds = dLogp (onehot − p) − dEnt p (log p + H)
            let ds = p.mul(dLogp.add(dEnt.mul(logp.add(H)))).neg();
            const onehot = tf.oneHot(tgt.sub(tf.scalar(a, "int32")) as tf.Tensor1D, b - a).toFloat(); // zero rows for targets outside the slice
            ds = ds.add(onehot.mul(dLogp));
            const dz = (temperature === 1 ? ds : ds.div(temperature)) as tf.Tensor2D;
            const dwSlice = fast ? tf.matMul(dz, hs, true, false) : tf.matMul(dz.transpose(), hs); // [v, C]
            return [dh.add(tf.matMul(dz, wsl)), dwSlice];
          });
          dh.dispose();
          dh = dhNext as tf.Tensor2D;
          dws.push(dw);
        }
        const dW = dws.length === 1 ? dws[0] : tf.concat(dws, 0);
        if (dws.length > 1) tf.dispose(dws);
        tf.dispose([dLogp, dEnt]);
        return [dh, dW];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (h: tf.Tensor2D, w: tf.Tensor2D) => tf.Tensor2D;
  return f(h, w);
}

// ---------------------------------------------------------------------------------------------
// the model

/** the prefill's working memory per chunk of prompts, about (bytes) */
const PREFILL_BYTES = 256 * 2 ** 20;

interface LayerKV {
  k: tf.Tensor4D; // [B, nkv, Tk, hd]
  v: tf.Tensor4D;
}

interface Source {
  dir: string | null;
  config: Record<string, unknown>;
  generationConfig: Record<string, unknown> | null;
}

export class LlamaModel implements CausalLM {
  readonly family: LlamaFamily;
  readonly vocabSize: number;
  readonly contextLength: number;
  readonly numLayers: number;
  readonly hiddenSize: number;
  /** the ids that end generation by default: generation_config.json's eos_token_id, else config.json's */
  readonly eosTokenIds: number[];
  private readonly invFreq: Float32Array;
  private steer: { layer: number; add: tf.Tensor1D } | null = null;
  /** gradient checkpointing of the training forward, block by block (tokenLogProbs); the values are
   * the same either way, bit for bit */
  recompute = true;
  /** the prefill's working memory per chunk of prompts, about (bytes): generate() runs its prompts in
   * chunks of as many rows as fit */
  prefillBytes = PREFILL_BYTES;

  constructor(
    readonly config: LlamaConfig,
    readonly params: Record<string, tf.Variable>,
    private readonly source: Source,
  ) {
    for (const [name, shape] of llamaParamShapes(config)) {
      const p = params[name];
      if (!p) throw new Error(`${config.family} model: missing parameter ${name}`);
      if (p.shape.join(",") !== shape.join(","))
        throw new Error(`${config.family} model: parameter ${name} has shape [${p.shape}], expected [${shape}]`);
    }
    this.family = config.family;
    this.vocabSize = config.vocabSize;
    this.contextLength = config.maxPositions;
    this.numLayers = config.numLayers;
    this.hiddenSize = config.hiddenSize;
    this.eosTokenIds = eosTokenIds(source.config, source.generationConfig);
    this.invFreq = ropeInvFreq(config);
    registerUnsortedSegmentSum();
  }

  /** Loads a Hugging Face checkpoint directory (tensors streamed one at a time into variables). */
  static load(dir: string): LlamaModel {
    const src = readHfDirectory(dir);
    const cfg = parseLlamaConfig(src.config, `${dir}/${CONFIG_FILE}`);
    const params: Record<string, tf.Variable> = {};
    try {
      loadHfTensors(
        dir,
        llamaParamShapes(cfg),
        (name, data, shape) => {
          // the variable shares the tensor's data (no copy); the tensor itself is released. Unnamed:
          // tfjs variable names are global, and two models may be loaded at once
          const t = tf.tensor(data, shape, "float32");
          params[name] = tf.variable(t, true);
          t.dispose();
        },
        // rotary inv_freq buffers of older exports; lm_head.weight beside tied embeddings (transformers drops it too)
        (name) => name.endsWith("rotary_emb.inv_freq") || (cfg.tieWordEmbeddings && name === "lm_head.weight"),
      );
    } catch (e) {
      for (const v of Object.values(params)) v.dispose();
      throw e;
    }
    return new LlamaModel(cfg, params, src);
  }

  /** A model from a config.json object and float32 arrays named as the checkpoint's tensors. */
  static fromArrays(config: Record<string, unknown>, arrays: Record<string, Float32Array>): LlamaModel {
    const cfg = parseLlamaConfig(config);
    const params: Record<string, tf.Variable> = {};
    for (const [name, shape] of llamaParamShapes(cfg)) {
      if (!arrays[name]) throw new Error(`fromArrays: missing tensor ${name}`);
      const t = tf.tensor(arrays[name], shape, "float32");
      params[name] = tf.variable(t, true);
      t.dispose();
    }
    return new LlamaModel(cfg, params, { dir: null, config, generationConfig: null });
  }

  decayed(name: string): boolean {
    return llamaDecayed(name);
  }

  private p(name: string): tf.Variable {
    return this.params[name];
  }

  private get outputWeight(): tf.Variable {
    return this.config.tieWordEmbeddings ? this.p("model.embed_tokens.weight") : this.p("lm_head.weight");
  }

  /** cos and cat(−sin, sin) of the RoPE angles at `positions` (host computed, float32): [n, hd] each */
  private ropeTables(positions: ArrayLike<number>): { cos: Float32Array; sin: Float32Array } {
    const hd = this.config.headDim;
    const half = hd / 2;
    const n = positions.length;
    const cos = new Float32Array(n * hd);
    const sin = new Float32Array(n * hd);
    for (let r = 0; r < n; r++) {
      const pos = positions[r];
      for (let i = 0; i < half; i++) {
        const a = Math.fround(pos * this.invFreq[i]);
        const c = Math.cos(a);
        const s = Math.sin(a);
        cos[r * hd + i] = c;
        cos[r * hd + half + i] = c;
        sin[r * hd + i] = -s;
        sin[r * hd + half + i] = s;
      }
    }
    return { cos, sin };
  }

  /**
   * One decoder block over rows x [B*T, C] of B sequences of T new positions. rope: cos / signed sin
   * broadcastable to [B, h, T, hd]; mask: additive, broadcastable to [B, nh, T, Tk]; past: the
   * cached keys and values of earlier positions. Returns the new residual stream and the layer's
   * keys and values over all Tk positions.
   */
  private block(
    l: number,
    x: tf.Tensor2D,
    B: number,
    T: number,
    rope: { cos: tf.Tensor; sin: tf.Tensor },
    mask: tf.Tensor,
    past: LayerKV | null,
  ): { x: tf.Tensor2D; kv: LayerKV } {
    const cfg = this.config;
    const { numHeads: nh, numKvHeads: nkv, headDim: hd, rmsNormEps: eps } = cfg;
    const pre = `model.layers.${l}.`;
    const w = (s: string) => this.p(pre + s);
    const b = (s: string) => this.params[pre + s]; // undefined where the config has no such bias
    const h = rmsNorm(x, w("input_layernorm.weight"), eps); // [N, C]
    let q = linear(h, w("self_attn.q_proj.weight"), b("self_attn.q_proj.bias")).reshape([B, T, nh, hd]) as tf.Tensor4D;
    let k = linear(h, w("self_attn.k_proj.weight"), b("self_attn.k_proj.bias")).reshape([B, T, nkv, hd]) as tf.Tensor4D;
    const vNew = linear(h, w("self_attn.v_proj.weight"), b("self_attn.v_proj.bias"))
      .reshape([B, T, nkv, hd])
      .transpose([0, 2, 1, 3]) as tf.Tensor4D; // [B, nkv, T, hd]
    if (cfg.qkNorm) {
      q = rmsNorm(q, w("self_attn.q_norm.weight"), eps);
      k = rmsNorm(k, w("self_attn.k_norm.weight"), eps);
    }
    // scaling q by hd^-1/2 before the product (exact for hd = 64, 256; HF scales the scores)
    const qh = applyRope(q.transpose([0, 2, 1, 3]) as tf.Tensor4D, rope.cos, rope.sin).mul(1 / Math.sqrt(hd)); // [B, nh, T, hd]
    const kNew = applyRope(k.transpose([0, 2, 1, 3]) as tf.Tensor4D, rope.cos, rope.sin); // [B, nkv, T, hd]
    const kAll = past ? (tf.concat([past.k, kNew], 2) as tf.Tensor4D) : kNew;
    const vAll = past ? (tf.concat([past.v, vNew], 2) as tf.Tensor4D) : vNew;
    const Tk = kAll.shape[2];
    // grouped-query attention: KV head j serves query heads j·r … j·r + r − 1, so [B, nh, T, hd] is
    // [B·nkv, r·T, hd] against [B·nkv, Tk, hd] with no copy of the keys
    const r = nh / nkv;
    const q3 = qh.reshape([B * nkv, r * T, hd]) as tf.Tensor3D;
    const k3 = kAll.reshape([B * nkv, Tk, hd]) as tf.Tensor3D;
    const v3 = vAll.reshape([B * nkv, Tk, hd]) as tf.Tensor3D;
    const scores = transposesFree() ? tf.matMul(q3, k3, false, true) : tf.matMul(q3, k3.transpose([0, 2, 1]));
    const att = tf.softmax(scores.reshape([B, nh, T, Tk]).add(mask)).reshape([B * nkv, r * T, Tk]) as tf.Tensor3D;
    const y = tf
      .matMul(att, v3) // [B·nkv, r·T, hd]
      .reshape([B, nh, T, hd])
      .transpose([0, 2, 1, 3])
      .reshape([B * T, nh * hd]) as tf.Tensor2D;
    x = x.add(linear(y, w("self_attn.o_proj.weight"), b("self_attn.o_proj.bias")));
    const h2 = rmsNorm(x, w("post_attention_layernorm.weight"), eps);
    const gate = linear(h2, w("mlp.gate_proj.weight"), b("mlp.gate_proj.bias")); // [N, I]
    const up = linear(h2, w("mlp.up_proj.weight"), b("mlp.up_proj.bias"));
    const act = gate.mul(tf.sigmoid(gate)).mul(up) as tf.Tensor2D; // SwiGLU
    x = x.add(linear(act, w("mlp.down_proj.weight"), b("mlp.down_proj.bias")));
    if (this.steer && this.steer.layer === l) x = x.add(this.steer.add);
    return { x, kv: { k: kAll, v: vAll } };
  }

  /** Inference: the residual stream after every block, then the final norm, [B*T, C], and each
   * layer's keys and values over past + new positions. */
  private hidden(
    ids: tf.Tensor2D,
    rope: { cos: tf.Tensor; sin: tf.Tensor },
    mask: tf.Tensor,
    past: LayerKV[] | null,
    /** dispose each layer's past keys and values once its extended cache exists, so that the cache
     * is held once, not twice, during a decode step */
    consumePast = false,
  ): { h: tf.Tensor2D; kv: LayerKV[] } {
    const [B, T] = ids.shape;
    let x = tf.gather(this.p("model.embed_tokens.weight"), ids.reshape([B * T])) as tf.Tensor2D; // [N, C]
    const kv: LayerKV[] = [];
    for (let l = 0; l < this.config.numLayers; l++) {
      // one block's temporaries at a time (no gradient is taken here)
      const prev = x;
      const r = tf.tidy(
        () => this.block(l, prev, B, T, rope, mask, past ? past[l] : null) as unknown as tf.TensorContainer,
      ) as unknown as {
        x: tf.Tensor2D;
        kv: LayerKV;
      };
      if (past && consumePast) tf.dispose([past[l].k, past[l].v]);
      if (l > 0) prev.dispose();
      x = r.x;
      kv.push(r.kv);
    }
    return { h: rmsNorm(x, this.p("model.norm.weight"), this.config.rmsNormEps), kv };
  }

  /** The training forward's residual stream after the final norm, [B*T, C]; with `recompute`, each
   * block keeps only its input for the backward pass and runs again there (gradient checkpointing). */
  private trainingHidden(ids: tf.Tensor2D, rope: { cos: tf.Tensor; sin: tf.Tensor }, mask: tf.Tensor): tf.Tensor2D {
    const [B, T] = ids.shape;
    let x = tf.gather(this.p("model.embed_tokens.weight"), ids.reshape([B * T])) as tf.Tensor2D; // [N, C]
    for (let l = 0; l < this.config.numLayers; l++) {
      x = this.recompute ? this.checkpointedBlock(l, x, B, T, rope, mask) : this.block(l, x, B, T, rope, mask, null).x;
    }
    return rmsNorm(x, this.p("model.norm.weight"), this.config.rmsNormEps);
  }

  /** block(l) as one op whose gradient runs the block again under its own tape: a block's
   * activations live only while its gradient is computed (one block at a time), at the cost of a
   * second forward pass. */
  private checkpointedBlock(
    l: number,
    x: tf.Tensor2D,
    B: number,
    T: number,
    rope: { cos: tf.Tensor; sin: tf.Tensor },
    mask: tf.Tensor,
  ): tf.Tensor2D {
    const prefix = `model.layers.${l}.`;
    const weights = Object.keys(this.params)
      .filter((n) => n.startsWith(prefix))
      .map((n) => this.params[n]);
    const f = tf.customGrad(((...args: unknown[]) => {
      const save = args[args.length - 1] as tf.GradSaveFunc;
      const xIn = args[0] as tf.Tensor2D;
      // (rope and mask saved too: the caller's tidy may dispose them before the backward pass)
      save([xIn, rope.cos, rope.sin, mask]);
      return {
        value: this.block(l, xIn, B, T, rope, mask, null).x,
        gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
          const [xs, cos, sin, m] = saved;
          const run = () => this.block(l, xs as tf.Tensor2D, B, T, { cos, sin }, m, null).x;
          return gradientsWithin(run, [xs, ...weights], dy as tf.Tensor);
        },
      };
    }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (...xs: tf.Tensor[]) => tf.Tensor2D;
    return f(x, ...weights);
  }

  tokenLogProbs(
    inputs: tf.Tensor2D,
    targets: tf.Tensor2D,
    opts: { temperature: number; entropy: boolean },
  ): { logp: tf.Tensor2D; entropy: tf.Tensor2D | null } {
    const [B, T] = inputs.shape;
    if (targets.shape[0] !== B || targets.shape[1] !== T)
      throw new Error(`tokenLogProbs: targets [${targets.shape}] must have the shape of inputs [${inputs.shape}]`);
    if (T > this.contextLength)
      throw new Error(`tokenLogProbs: ${T} positions exceed max_position_embeddings ${this.contextLength}`);
    if (!(opts.temperature > 0)) throw new Error(`tokenLogProbs: temperature must be > 0, got ${opts.temperature}`);
    // an id outside the vocabulary would gather whatever lies beyond the embedding on wasm
    const [lo, hi] = tf.tidy(() => {
      const both = tf.concat([inputs.toInt().reshape([-1]), targets.toInt().reshape([-1])]);
      return Array.from(tf.stack([both.min(), both.max()]).dataSync());
    });
    if (lo < 0 || hi >= this.vocabSize)
      throw new Error(`tokenLogProbs: token ids must lie in [0, ${this.vocabSize}), got ${lo < 0 ? lo : hi}`);
    // `--kernels fused`: the native forward/backward (llamaFused.ts), steering included; a config it
    // does not cover (llamaFusedUnsupported: MLP biases) takes the tfjs graph below
    if (fusedTrainingActive() && !llamaFusedUnsupported(this.config)) {
      const { cos, sin } = this.ropeTables(Array.from({ length: T }, (_, t) => t));
      const addition = this.steer
        ? { layer: this.steer.layer, vector: this.steer.add.dataSync() as Float32Array }
        : null;
      const model = { config: this.config, params: this.params, cos, sin, addition };
      return llamaTokenLogProbsFused(model, inputs, targets, opts.temperature, opts.entropy);
    }
    return tf.tidy(() => {
      const pos = Array.from({ length: T }, (_, t) => t);
      const { cos, sin } = this.ropeTables(pos);
      const rope = { cos: tf.tensor2d(cos, [T, this.config.headDim]), sin: tf.tensor2d(sin, [T, this.config.headDim]) };
      const ids = inputs.dtype === "int32" ? inputs : inputs.toInt();
      const tgt = (targets.dtype === "int32" ? targets : targets.toInt()).reshape([B * T]) as tf.Tensor1D;
      const h = this.trainingHidden(ids, rope, causalMask(T));
      const out = lmHeadLogProbs(h, this.outputWeight as tf.Tensor as tf.Tensor2D, tgt, opts.temperature, opts.entropy); // [N, 2]
      const logp = out.slice([0, 0], [B * T, 1]).reshape([B, T]) as tf.Tensor2D;
      const entropy = opts.entropy ? (out.slice([0, 1], [B * T, 1]).reshape([B, T]) as tf.Tensor2D) : null;
      return { logp, entropy } as unknown as tf.TensorContainer;
    }) as unknown as { logp: tf.Tensor2D; entropy: tf.Tensor2D | null };
  }

  /** The inference forward (one block's temporaries at a time, no KV cache kept) over right-padded
   * inputs at positions 0 … T − 1, reading the residual stream after the blocks asked for. */
  activations(
    inputs: tf.Tensor2D,
    opts: { layers: readonly number[]; logits?: boolean },
  ): { residuals: tf.Tensor2D[]; logits: tf.Tensor2D | null } {
    const [B, T] = inputs.shape;
    checkActivationLayers(this.family, this.config.numLayers, opts.layers);
    if (T > this.contextLength)
      throw new Error(`activations: ${T} positions exceed max_position_embeddings ${this.contextLength}`);
    const [lo, hi] = tf.tidy(() => {
      const flat = inputs.toInt().reshape([-1]);
      return Array.from(tf.stack([flat.min(), flat.max()]).dataSync());
    });
    if (B * T > 0 && (lo < 0 || hi >= this.vocabSize))
      throw new Error(`activations: token ids must lie in [0, ${this.vocabSize}), got ${lo < 0 ? lo : hi}`);
    const wanted = new Set(opts.layers);
    const { cos, sin } = this.ropeTables(Array.from({ length: T }, (_, t) => t));
    const out = tf.tidy(() => {
      const hd = this.config.headDim;
      const rope = { cos: tf.tensor2d(cos, [T, hd]), sin: tf.tensor2d(sin, [T, hd]) };
      const mask = causalMask(T);
      const ids = (inputs.dtype === "int32" ? inputs : inputs.toInt()) as tf.Tensor2D;
      let x = tf.gather(this.p("model.embed_tokens.weight"), ids.reshape([B * T])) as tf.Tensor2D; // [N, C]
      const taps = new Map<number, tf.Tensor2D>();
      for (let l = 0; l < this.config.numLayers; l++) {
        const prev = x;
        // one block's temporaries at a time (its keys and values are dropped with them)
        x = tf.tidy(() => this.block(l, prev, B, T, rope, mask, null).x);
        if (l > 0 && !wanted.has(l - 1)) prev.dispose();
        if (wanted.has(l)) taps.set(l, x);
      }
      const kept: tf.Tensor2D[] = opts.layers.map((l) => taps.get(l)!);
      if (opts.logits) kept.push(this.logits(rmsNorm(x, this.p("model.norm.weight"), this.config.rmsNormEps)));
      return kept;
    });
    return { residuals: out.slice(0, opts.layers.length), logits: opts.logits ? out[opts.layers.length] : null };
  }

  generate(
    prompts: number[][],
    opts: GenerateOptions,
    rng: Rng | null,
  ): { completions: number[][]; finished: boolean[] } {
    const { temperature, topP, maxNewTokens } = opts;
    if (!(temperature >= 0)) throw new Error(`generate: temperature must be >= 0, got ${temperature}`);
    if (!(topP > 0 && topP <= 1)) throw new Error(`generate: topP must be in (0, 1], got ${topP}`);
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0)
      throw new Error(`generate: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`);
    const V = this.vocabSize;
    const Tmax = this.contextLength;
    prompts.forEach((p, i) => {
      if (p.length === 0) throw new Error(`generate: prompt ${i} is empty (it needs at least a BOS token)`);
      if (p.length >= Tmax)
        throw new Error(`generate: prompt ${i} has ${p.length} tokens; max_position_embeddings is ${Tmax}`);
      for (const id of p)
        if (!Number.isInteger(id) || id < 0 || id >= V)
          throw new Error(`generate: prompt ${i} has token id ${id} outside [0, ${V})`);
    });
    const B = prompts.length;
    const completions: number[][] = prompts.map(() => []);
    const finished = new Array<boolean>(B).fill(false);
    if (B === 0 || maxNewTokens === 0) return { completions, finished };
    const stop = new Set(opts.stopIds);
    const hd = this.config.headDim;
    const P = Math.max(...prompts.map((p) => p.length));
    // left padding: row b's prompt sits at cache slots [P - len, P); its positions count from 0
    const ids = new Int32Array(B * P);
    const positions = new Int32Array(B * P);
    /** additive key mask per row over the cache slots: −1e9 at padding */
    let keyMask: Float32Array[] = prompts.map((p) => {
      const m = new Float32Array(P);
      m.fill(-1e9, 0, P - p.length);
      return m;
    });
    prompts.forEach((p, b) => {
      const pad = P - p.length;
      for (let t = 0; t < P; t++) {
        ids[b * P + t] = t < pad ? 0 : p[t - pad];
        positions[b * P + t] = Math.max(0, t - pad);
      }
    });
    /** the original index of each row still generating, and its next position */
    let rows = prompts.map((_, b) => b);
    let nextPos = prompts.map((p) => p.length);
    let cache: LayerKV[];
    let logits: tf.Tensor2D; // [rows, V]
    {
      // the prompts in chunks of rows, so that the prefill's activations (attention scores [rows, heads,
      // P, P], the MLP's [rows·P, I]) stay bounded however many sequences and however long the prompts;
      // the chunks' caches are joined layer by layer
      const { numHeads: nh, intermediateSize: I, hiddenSize: C } = this.config;
      const bytesPerRow = 4 * P * (nh * P + 3 * I + 4 * C);
      const chunk = Math.max(1, Math.min(B, Math.floor(this.prefillBytes / bytesPerRow)));
      const parts: { kv: LayerKV[]; logits: tf.Tensor2D }[] = [];
      for (let b0 = 0; b0 < B; b0 += chunk) {
        const n = Math.min(chunk, B - b0);
        const { cos, sin } = this.ropeTables(positions.subarray(b0 * P, (b0 + n) * P));
        parts.push(
          tf.tidy(() => {
            const rope = { cos: tf.tensor4d(cos, [n, 1, P, hd]), sin: tf.tensor4d(sin, [n, 1, P, hd]) };
            const pad = tf.tensor4d(concatRows(keyMask.slice(b0, b0 + n), P), [n, 1, 1, P]);
            const mask = causalMask(P).reshape([1, 1, P, P]).add(pad);
            const { h, kv } = this.hidden(
              tf.tensor2d(ids.subarray(b0 * P, (b0 + n) * P), [n, P], "int32"),
              rope,
              mask,
              null,
            );
            const lastRows = tf.tensor1d(
              Array.from({ length: n }, (_, b) => b * P + P - 1),
              "int32",
            );
            const last = tf.gather(h, lastRows) as tf.Tensor2D; // [n, C]: each row's last prompt position
            return { kv, logits: this.logits(last) } as unknown as tf.TensorContainer;
          }) as unknown as { kv: LayerKV[]; logits: tf.Tensor2D },
        );
      }
      if (parts.length === 1) ({ kv: cache, logits } = parts[0]);
      else {
        cache = parts[0].kv.map((_, l) => {
          const k = tf.concat(
            parts.map((c) => c.kv[l].k),
            0,
          ) as tf.Tensor4D;
          const v = tf.concat(
            parts.map((c) => c.kv[l].v),
            0,
          ) as tf.Tensor4D;
          tf.dispose(parts.flatMap((c) => [c.kv[l].k, c.kv[l].v]));
          return { k, v };
        });
        logits = tf.concat(
          parts.map((c) => c.logits),
          0,
        ) as tf.Tensor2D;
        tf.dispose(parts.map((c) => c.logits));
      }
    }
    try {
      for (;;) {
        const next = sampleRows(logits, V, opts, rng);
        logits.dispose();
        const keep: number[] = [];
        rows.forEach((b, i) => {
          const t = next[i];
          completions[b].push(t);
          if (stop.has(t)) finished[b] = true;
          else if (completions[b].length < maxNewTokens && nextPos[i] + 1 < Tmax) keep.push(i);
        });
        if (keep.length === 0) break;
        if (keep.length < rows.length) {
          const idx = tf.tensor1d(keep, "int32");
          // layer by layer, so that the cache is never held twice
          cache = cache.map((c) => {
            const kept = { k: tf.gather(c.k, idx) as tf.Tensor4D, v: tf.gather(c.v, idx) as tf.Tensor4D };
            tf.dispose([c.k, c.v]);
            return kept;
          });
          idx.dispose();
          rows = keep.map((i) => rows[i]);
          nextPos = keep.map((i) => nextPos[i]);
          keyMask = keep.map((i) => keyMask[i]);
        }
        const n = rows.length;
        const tokens = Int32Array.from(keep.length < next.length ? keep.map((i) => next[i]) : next);
        const Tk = keyMask[0].length + 1;
        keyMask = keyMask.map((m) => {
          const e = new Float32Array(Tk);
          e.set(m);
          return e;
        });
        const { cos, sin } = this.ropeTables(nextPos);
        const old = cache;
        const r = tf.tidy(() => {
          const rope = { cos: tf.tensor4d(cos, [n, 1, 1, hd]), sin: tf.tensor4d(sin, [n, 1, 1, hd]) };
          const mask = tf.tensor4d(concatRows(keyMask, Tk), [n, 1, 1, Tk]);
          const { h, kv } = this.hidden(tf.tensor2d(tokens, [n, 1], "int32"), rope, mask, old, true);
          return { kv, logits: this.logits(h) } as unknown as tf.TensorContainer;
        }) as unknown as { kv: LayerKV[]; logits: tf.Tensor2D };
        tf.dispose(old.flatMap((c) => [c.k, c.v]));
        cache = r.kv;
        logits = r.logits;
        nextPos = nextPos.map((p) => p + 1);
      }
    } finally {
      tf.dispose(cache.flatMap((c) => [c.k, c.v]));
      if (!logits.isDisposed) logits.dispose();
    }
    return { completions, finished };
  }

  /** logits [n, V] of final-norm rows h [n, C] */
  private logits(h: tf.Tensor2D): tf.Tensor2D {
    return linearNoBias(h, this.outputWeight);
  }

  setResidualAddition(a: { layer: number; vector: Float32Array; scale: number } | null): void {
    if (this.steer) this.steer.add.dispose();
    this.steer = null;
    if (a === null) return;
    const { layer, vector, scale } = a;
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.config.numLayers)
      throw new Error(`setResidualAddition: layer ${layer} outside [0, ${this.config.numLayers})`);
    if (vector.length !== this.config.hiddenSize)
      throw new Error(
        `setResidualAddition: vector has ${vector.length} values, hidden_size is ${this.config.hiddenSize}`,
      );
    if (!Number.isFinite(scale)) throw new Error(`setResidualAddition: scale must be finite, got ${scale}`);
    const add = tf.tidy(() => tf.tensor1d(vector).mul(scale)) as tf.Tensor1D;
    this.steer = { layer, add: tf.keep(add) };
  }

  /**
   * Writes the model in the Hugging Face layout: config.json (as loaded, torch_dtype set to the saved
   * dtype), the weights (dtype F32 unless asked: BF16 would round away small updates; sharded above
   * maxShardBytes), and, when loaded from another directory, its tokenizer and generation files.
   */
  save(dir: string, opts: { dtype?: WeightDType; maxShardBytes?: number } = {}): void {
    const dtype = opts.dtype ?? "F32";
    fs.mkdirSync(dir, { recursive: true });
    saveHfTensors(
      dir,
      llamaParamShapes(this.config).map(([name, shape]) => ({
        name,
        shape,
        data: () => this.params[name].dataSync() as Float32Array,
      })),
      { dtype, maxShardBytes: opts.maxShardBytes },
    );
    const config: Record<string, unknown> = { ...this.source.config, torch_dtype: TORCH_DTYPE[dtype] };
    if ("dtype" in this.source.config) config.dtype = TORCH_DTYPE[dtype];
    if (!config.architectures)
      config.architectures = [Object.keys(ARCHITECTURES).find((k) => ARCHITECTURES[k] === this.family)];
    if (!config.model_type) config.model_type = this.family;
    writeJsonAtomic(`${dir}/${CONFIG_FILE}`, config);
    if (this.source.dir) copyCompanionFiles(this.source.dir, dir);
  }

  dispose(): void {
    for (const v of Object.values(this.params)) v.dispose();
    this.setResidualAddition(null);
  }
}

/**
 * Gradients of f() with respect to xs, from inside another gradient's backward pass (a checkpointed
 * block's). tfjs keeps one tape in its engine state, which a nested gradient computation replaces
 * and clears when it finishes; the outer pass's tape is put back afterwards.
 */
function gradientsWithin(f: () => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor): tf.Tensor[] {
  const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
  const outer = state.activeTape;
  try {
    const { value, grads } = tf.engine().gradients(f, xs, dy, true);
    value.dispose();
    return grads.map((g, i) => g ?? tf.zerosLike(xs[i]));
  } finally {
    state.activeTape = outer;
  }
}

function concatRows(rows: Float32Array[], n: number): Float32Array {
  const out = new Float32Array(rows.length * n);
  rows.forEach((r, i) => out.set(r, i * n));
  return out;
}

/** top probabilities read back per row for top-p < 1 (the rest of a row is read only when they fall short) */
const TOP_P_CANDIDATES = 256;

/**
 * One token per row of logits [n, V]: greedy (argmax, lowest id on ties) at temperature 0 or
 * without an Rng; otherwise one uniform per row from `rng`, in row order, turned into a token on the
 * device by inverse CDF over softmax(logits / T) in id order; with top-p < 1, over the smallest set of
 * most probable tokens holding at least topP of the mass, in order of decreasing probability.
 */
export function sampleRows(
  logits: tf.Tensor2D,
  V: number,
  opts: { temperature: number; topP: number },
  rng: Rng | null,
): number[] {
  const n = logits.shape[0];
  if (opts.temperature === 0 || rng === null) {
    const am = tf.argMax(logits, 1);
    const out = Array.from(am.dataSync());
    am.dispose();
    return out;
  }
  const u = Array.from({ length: n }, () => rng.next());
  if (opts.topP >= 1) {
    // cumulative sums on the device, the draw on the host: a binary search per row (tfjs-wasm's
    // broadcasting comparisons take ~1 s on [64, 49152]; reading the sums back takes ~15 ms)
    const c = tf.tidy(() => tf.cumsum(tf.softmax(logits.div(opts.temperature)), 1));
    const cum = c.dataSync() as Float32Array;
    c.dispose();
    return Array.from({ length: n }, (_, i) => inverseCdf(cum.subarray(i * V, (i + 1) * V), u[i]));
  }
  const k = Math.min(V, TOP_P_CANDIDATES);
  const probs = tf.tidy(() => tf.softmax(logits.div(opts.temperature)));
  try {
    const { values, indices } = tf.topk(probs, k, true);
    const total = probs.sum(1);
    const vals = values.dataSync();
    const ids = indices.dataSync();
    const tot = total.dataSync();
    tf.dispose([values, indices, total]);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const pick = nucleusPick(vals.subarray(i * k, (i + 1) * k), tot[i], opts.topP, u[i], k === V);
      if (pick !== null) {
        out.push(ids[i * k + pick]);
        continue;
      }
      // the top candidates hold less than topP of the mass: this row in full, sorted on the host
      const row = probs.slice([i, 0], [1, V]);
      const p = row.dataSync() as Float32Array;
      row.dispose();
      const order = Array.from({ length: V }, (_, j) => j).sort((a, b) => p[b] - p[a] || a - b);
      const sorted = Float32Array.from(order, (j) => p[j]);
      out.push(order[nucleusPick(sorted, tot[i], opts.topP, u[i], true)!]);
    }
    return out;
  } finally {
    probs.dispose();
  }
}

/** The first index whose cumulative mass exceeds u times the total (the last entry), by binary
 * search: always a token with mass, since the sums rise only there. */
export function inverseCdf(cum: ArrayLike<number>, u: number): number {
  const V = cum.length;
  const target = u * cum[V - 1];
  let lo = 0;
  let hi = V - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cum[mid] > target) hi = mid;
    else lo = mid + 1;
  }
  // (target = the total only by rounding: the last token with mass)
  while (lo > 0 && cum[lo] === cum[lo - 1]) lo--;
  return lo;
}

/**
 * The nucleus draw over probabilities sorted in decreasing order: the smallest prefix holding at
 * least topP·total, then the first index whose cumulative mass exceeds u times the prefix's.
 * null when the list holds less than topP·total and is not `complete` (more candidates are needed).
 */
export function nucleusPick(
  sorted: ArrayLike<number>,
  total: number,
  topP: number,
  u: number,
  complete: boolean,
): number | null {
  let cum = 0;
  let keep = 0;
  while (keep < sorted.length) {
    cum += sorted[keep++];
    if (cum >= topP * total) break;
  }
  if (cum < topP * total && !complete) return null;
  let x = u * cum;
  for (let r = 0; r < keep; r++) {
    x -= sorted[r];
    if (x < 0) return r;
  }
  return keep - 1;
}
