// Incremental decoding with a KV cache and batched sampling (temperature, top-p, greedy), on
// the host: the weights are read once from the tfjs variables and every decode step of every
// sequence runs as one fused pass over plain Float32Arrays. At this model size a tfjs decode
// step is dominated by per-op overhead (dozens of tiny ops per token); the fused host step is
// faster, identical on every backend, and needs no tensor bookkeeping. It computes the same
// function as gpt.ts `forward` (tested to 1e-4).
import type { Rng } from "../engine/rng.js";
import { BOS_ID, EOS_ID } from "../text/tokenizer.js";
import { residualAdditionVector, type ModelConfig, type Params, type ResidualAddition } from "./gpt.js";

export interface HostWeights {
  cfg: ModelConfig;
  w: Record<string, Float32Array>;
  /** steering: `vector` (already scaled, float32) is added to the residual stream after block `layer` */
  addition?: { layer: number; vector: Float32Array } | null;
}

/** The same weights (not copied) with a residual addition for both decoders, or none (null). */
export function withResidualAddition(hw: HostWeights, a: ResidualAddition | null): HostWeights {
  return { cfg: hw.cfg, w: hw.w, addition: a ? { layer: a.layer, vector: residualAdditionVector(hw.cfg, a) } : null };
}

/** Copies the parameters to host memory (one small readback per tensor). */
export function hostWeights(params: Params, cfg: ModelConfig): HostWeights {
  const w: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(params)) w[k] = v.dataSync() as Float32Array;
  return { cfg, w };
}

function matvec(
  x: Float64Array,
  W: Float32Array,
  b: Float32Array | null,
  I: number,
  O: number,
  out: Float64Array,
): void {
  if (b) for (let j = 0; j < O; j++) out[j] = b[j];
  else out.fill(0, 0, O);
  for (let i = 0; i < I; i++) {
    const xi = x[i];
    if (xi === 0) continue;
    const row = i * O;
    for (let j = 0; j < O; j++) out[j] += xi * W[row + j];
  }
}

function layerNorm(x: Float64Array, g: Float32Array, b: Float32Array, C: number, out: Float64Array): void {
  let mean = 0;
  for (let i = 0; i < C; i++) mean += x[i];
  mean /= C;
  let v = 0;
  for (let i = 0; i < C; i++) v += (x[i] - mean) * (x[i] - mean);
  const r = 1 / Math.sqrt(v / C + 1e-5);
  for (let i = 0; i < C; i++) out[i] = (x[i] - mean) * r * g[i] + b[i];
}

const GELU_C = Math.sqrt(2 / Math.PI);

/** KV cache for a batch of sequences decoded in lockstep (all at the same position). */
export class KVDecoder {
  private readonly k: Float32Array[];
  private readonly v: Float32Array[];
  private readonly T: number;
  private readonly C: number;
  // scratch
  private readonly x: Float64Array;
  private readonly h: Float64Array;
  private readonly qkv: Float64Array;
  private readonly y: Float64Array;
  private readonly tmp: Float64Array;
  private readonly mlp: Float64Array;
  private readonly att: Float64Array;

  constructor(
    private readonly hw: HostWeights,
    readonly batch: number,
  ) {
    const { cfg } = hw;
    this.T = cfg.contextLength;
    this.C = cfg.width;
    this.k = [];
    this.v = [];
    for (let l = 0; l < cfg.layers; l++) {
      this.k.push(new Float32Array(batch * this.T * this.C));
      this.v.push(new Float32Array(batch * this.T * this.C));
    }
    this.x = new Float64Array(this.C);
    this.h = new Float64Array(this.C);
    this.qkv = new Float64Array(3 * this.C);
    this.y = new Float64Array(this.C);
    this.tmp = new Float64Array(Math.max(this.C, cfg.vocabSize));
    this.mlp = new Float64Array(cfg.mlpRatio * this.C);
    this.att = new Float64Array(this.T);
  }

  /**
   * Feeds token `token` at position `pos` for sequence `b`, updating its cache.
   * If `logits` is given, writes the next-token logits [V] into it.
   */
  step(b: number, token: number, pos: number, logits?: Float64Array): void {
    const { cfg, w } = this.hw;
    const C = this.C;
    const T = this.T;
    const nh = cfg.heads;
    const hd = C / nh;
    const Hm = cfg.mlpRatio * C;
    const { x, h, qkv, y, tmp, mlp, att } = this;
    const wte = w.wte;
    const wpe = w.wpe;
    for (let i = 0; i < C; i++) x[i] = wte[token * C + i] + wpe[pos * C + i];
    const scale = 1 / Math.sqrt(hd);
    const add = this.hw.addition ?? null;
    for (let l = 0; l < cfg.layers; l++) {
      const p = `h.${l}.`;
      layerNorm(x, w[p + "ln_1.g"], w[p + "ln_1.b"], C, h);
      matvec(h, w[p + "attn.c_attn.w"], w[p + "attn.c_attn.b"], C, 3 * C, qkv);
      const kc = this.k[l];
      const vc = this.v[l];
      const base = b * T * C;
      for (let i = 0; i < C; i++) {
        kc[base + pos * C + i] = qkv[C + i];
        vc[base + pos * C + i] = qkv[2 * C + i];
      }
      for (let hh = 0; hh < nh; hh++) {
        const off = hh * hd;
        let max = -Infinity;
        for (let j = 0; j <= pos; j++) {
          let s = 0;
          const kr = base + j * C + off;
          for (let d = 0; d < hd; d++) s += qkv[off + d] * kc[kr + d];
          s *= scale;
          att[j] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let j = 0; j <= pos; j++) {
          att[j] = Math.exp(att[j] - max);
          sum += att[j];
        }
        for (let d = 0; d < hd; d++) y[off + d] = 0;
        for (let j = 0; j <= pos; j++) {
          const a = att[j] / sum;
          const vr = base + j * C + off;
          for (let d = 0; d < hd; d++) y[off + d] += a * vc[vr + d];
        }
      }
      matvec(y, w[p + "attn.c_proj.w"], w[p + "attn.c_proj.b"], C, C, tmp);
      for (let i = 0; i < C; i++) x[i] += tmp[i];
      layerNorm(x, w[p + "ln_2.g"], w[p + "ln_2.b"], C, h);
      matvec(h, w[p + "mlp.c_fc.w"], w[p + "mlp.c_fc.b"], C, Hm, mlp);
      for (let i = 0; i < Hm; i++) {
        const u = mlp[i];
        mlp[i] = 0.5 * u * (1 + Math.tanh(GELU_C * (u + 0.044715 * u * u * u)));
      }
      matvec(mlp, w[p + "mlp.c_proj.w"], w[p + "mlp.c_proj.b"], Hm, C, tmp);
      for (let i = 0; i < C; i++) x[i] += tmp[i];
      if (add && l === add.layer) for (let i = 0; i < C; i++) x[i] += add.vector[i];
    }
    if (logits) {
      layerNorm(x, w["ln_f.g"], w["ln_f.b"], C, h);
      matvec(h, w["lm_head.w"], null, C, cfg.vocabSize, logits);
    }
  }
}

export interface SampleOptions {
  /** 0 = greedy (argmax, lowest id on ties) */
  temperature: number;
  /** nucleus sampling mass in (0, 1]; 1 = off */
  topP: number;
}

/** Draws one token id from logits [V] with temperature and top-p; greedy when temperature = 0. */
export function sampleToken(logits: Float64Array, V: number, opts: SampleOptions, rng: Rng | null): number {
  if (opts.temperature === 0 || rng === null) {
    let best = 0;
    for (let i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i] > max) max = logits[i];
  if (probsScratch.length < V) probsScratch = new Float64Array(V);
  const probs = probsScratch;
  let sum = 0;
  for (let i = 0; i < V; i++) {
    probs[i] = Math.exp((logits[i] - max) / opts.temperature);
    sum += probs[i];
  }
  if (opts.topP >= 1) {
    let u = rng.next() * sum;
    for (let i = 0; i < V; i++) {
      u -= probs[i];
      if (u < 0) return i;
    }
    return V - 1;
  }
  const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
  let cum = 0;
  let keep = 0;
  while (keep < V) {
    cum += probs[order[keep]];
    keep++;
    if (cum >= opts.topP * sum) break;
  }
  let u = rng.next() * cum;
  for (let r = 0; r < keep; r++) {
    u -= probs[order[r]];
    if (u < 0) return order[r];
  }
  return order[keep - 1];
}

let probsScratch = new Float64Array(0);

export interface GenerateOptions extends SampleOptions {
  maxNewTokens: number;
}

/** Checks the options and sets up the lockstep state shared by generate() and generateFast(). */
export function startGeneration(hw: HostWeights, prompts: number[][], opts: GenerateOptions) {
  const B = prompts.length;
  const V = hw.cfg.vocabSize;
  const T = hw.cfg.contextLength;
  if (opts.temperature < 0) throw new Error(`temperature must be >= 0, got ${opts.temperature}`);
  if (!(opts.topP > 0 && opts.topP <= 1)) throw new Error(`topP must be in (0, 1], got ${opts.topP}`);
  const seqs = prompts.map((p) => [BOS_ID, ...p]);
  for (const [i, s] of seqs.entries()) {
    if (s.length >= T) throw new Error(`prompt ${i} has ${s.length} tokens with BOS; the context is ${T}`);
  }
  const completions: number[][] = prompts.map(() => []);
  const finished = new Array<boolean>(B).fill(false);
  const done = new Array<boolean>(B).fill(false);
  return { B, V, T, seqs, completions, finished, done };
}

export type GenerationState = ReturnType<typeof startGeneration>;

/** Records the token sampled for sequence b (EOS ends it, as do maxNewTokens and the context end).
 * Returns true while the sequence is still generating. */
export function acceptToken(st: GenerationState, b: number, next: number, maxNewTokens: number): boolean {
  if (next === EOS_ID) {
    st.finished[b] = true;
    st.done[b] = true;
    return false;
  }
  st.seqs[b].push(next);
  st.completions[b].push(next);
  if (st.completions[b].length >= maxNewTokens || st.seqs[b].length >= st.T) {
    st.done[b] = true;
    return false;
  }
  return true;
}

/**
 * Generates a completion for each prompt (token ids without BOS; BOS is prepended).
 * Sequences run in lockstep; prompt tokens are fed (not sampled) until each prompt is consumed.
 * Stops a sequence at EOS (not included in its completion), at maxNewTokens or at the context end.
 * Returns completion token ids and whether each ended with EOS.
 */
export function generate(
  hw: HostWeights,
  prompts: number[][],
  opts: GenerateOptions,
  rng: Rng | null,
): { completions: number[][]; finished: boolean[] } {
  const st = startGeneration(hw, prompts, opts);
  const { B, V, T, seqs, completions, finished, done } = st;
  const dec = new KVDecoder(hw, B);
  const logits = new Float64Array(V);
  for (let pos = 0; pos < T - 1; pos++) {
    let anyActive = false;
    for (let b = 0; b < B; b++) {
      if (done[b]) continue;
      const s = seqs[b];
      const inPrompt = pos + 1 < s.length;
      dec.step(b, s[pos], pos, inPrompt ? undefined : logits);
      if (inPrompt) {
        anyActive = true;
        continue;
      }
      if (acceptToken(st, b, sampleToken(logits, V, opts, rng), opts.maxNewTokens)) anyActive = true;
    }
    if (!anyActive) break;
  }
  return { completions, finished };
}
