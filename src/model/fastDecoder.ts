// KV-cache decoding in WebAssembly (SIMD): the same function as KVDecoder / generate in
// src/model/decode.ts, with each lockstep token step of the whole batch done by one call into
// fastDecoder.wasm (built from fastDecoder.c by scripts/build-kernels.sh; the binary is committed).
// Weights are copied into the wasm memory (float32, tfjs [in, out] layouts with output columns
// zero-padded to a multiple of 8); the KV cache and all scratch live there too. Instances (and
// their memory, grown once to the largest batch seen) are pooled and reused across decoders.
// Arithmetic is float32 (LayerNorm statistics float64): logits agree with the float64 host
// decoder to ~1e-5, and are bit-identical from run to run.
// Threads: the memory is shared, and a step of at least MIN_THREADED_ROWS rows runs on the
// matmul's thread count (matmulThreads(): RLVR_THREADS, default min(2, cores)): each instance has
// its own WorkerPool (threads.ts), whose workers run their own instances of fastDecoder.wasm over the
// same memory and take chunks of rows with the caller (run_job in fastDecoder.c). Rows are independent,
// so results are bit-identical for any thread count; a worker that stalls the caller makes the
// next steps run alone for a while (matmul.ts afterThreadedCall).
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import type { Rng } from "../engine/rng.js";
import { paramShapes } from "./gpt.js";
import { acceptToken, sampleToken, startGeneration, type GenerateOptions, type HostWeights } from "./decode.js";
import { afterThreadedCall, matmulThreads } from "../kernels/matmul.js";
import { CTRL_INTS, type RunAlone, takeWorkers, WorkerPool } from "../kernels/threads.js";

const WASM_URL = new URL("./fastDecoder.wasm", import.meta.url);

// Field order of Desc and Layer in fastDecoder.c (all 4-byte ints or pointers).
const DESC = [
  "V",
  "T",
  "L",
  "C",
  "nh",
  "H",
  "B",
  "Cp",
  "C3p",
  "Hp",
  "Vp",
  "wte",
  "wpe",
  "lnf_g",
  "lnf_b",
  "lm_head",
  "kc",
  "vc",
  "x",
  "h",
  "qkv",
  "y",
  "mlp",
  "att",
  "logits",
  "rows_b",
  "rows_tok",
  "rows_want",
  "layers",
  "add_layer",
  "add",
] as const;
type DescField = (typeof DESC)[number];
// Layer fields and the parameter (suffix of `h.${l}.`) each points at; "pad" marks the matrices and
// biases whose output dimension is padded.
const LAYER: [string, string, boolean][] = [
  ["ln1_g", "ln_1.g", false],
  ["ln1_b", "ln_1.b", false],
  ["attn_w", "attn.c_attn.w", true],
  ["attn_b", "attn.c_attn.b", true],
  ["proj_w", "attn.c_proj.w", true],
  ["proj_b", "attn.c_proj.b", true],
  ["ln2_g", "ln_2.g", false],
  ["ln2_b", "ln_2.b", false],
  ["fc_w", "mlp.c_fc.w", true],
  ["fc_b", "mlp.c_fc.b", true],
  ["mproj_w", "mlp.c_proj.w", true],
  ["mproj_b", "mlp.c_proj.b", true],
];

interface Exports {
  __heap_base: WebAssembly.Global;
  desc_size(): number;
  layer_size(): number;
  job_size(): number;
  max_threads(): number;
  vec_math(f: number, inPtr: number, outPtr: number, n: number): void;
  decode_step(desc: number, nb: number, pos: number): number;
  run_job(job: number, thread: number): void;
}

/** An instance over its own shared memory, with its worker threads once a step needed them. */
interface Instance {
  ex: Exports;
  memory: WebAssembly.Memory;
  workers: WorkerPool | null;
}

// Job fields in fastDecoder.c (int32 / pointers): d, nb, pos, chunk, nchunks, next, want_before, att[MAXT]
const JOB = { d: 0, nb: 1, pos: 2, chunk: 3, nchunks: 4, next: 5, wantBefore: 6, att: 7 } as const;
/** steps with fewer rows run on the caller's thread alone (a worker's wake-up costs ~10-50 µs) */
const MIN_THREADED_ROWS = 8;
/** pages of a new instance's memory (grown to each decoder's layout), and its maximum (2 GiB) */
const INITIAL_PAGES = 32;
const MAX_PAGES = 32768;

let compiled: WebAssembly.Module | null | undefined;
let loadError = "";
/** idle instances kept for reuse (more than this many decoders alive at once allocate afresh) */
const POOL_MAX = 4;
const pool: Instance[] = [];
/** threaded steps to run alone before trying the workers again (afterThreadedCall) */
const alone: RunAlone = { strikes: 0, backoff: 0 };
/** steps run with workers, posts to workers, and posts no worker picked up in time (all instances) */
const stats = { threadedSteps: 0, posted: 0, cancelled: 0 };

function wasmModule(): WebAssembly.Module | null {
  if (compiled !== undefined) return compiled;
  try {
    const bytes = fs.readFileSync(fileURLToPath(WASM_URL));
    compiled = new WebAssembly.Module(bytes);
  } catch (e) {
    loadError = String((e as Error).message ?? e);
    compiled = null;
  }
  return compiled;
}

function acquire(): Instance {
  const pooled = pool.pop();
  if (pooled) return pooled;
  const mod = wasmModule();
  if (!mod)
    throw new Error(`FastKVDecoder: cannot load ${fileURLToPath(WASM_URL)} (${loadError}); run npm run build:kernels`);
  const memory = new WebAssembly.Memory({ initial: INITIAL_PAGES, maximum: MAX_PAGES, shared: true });
  const ex = new WebAssembly.Instance(mod, { env: { memory } }).exports as unknown as Exports;
  if (
    ex.desc_size() !== DESC.length * 4 ||
    ex.layer_size() !== LAYER.length * 4 ||
    ex.job_size() !== (JOB.att + ex.max_threads() * (1 + DESC.length)) * 4
  ) {
    throw new Error(
      "FastKVDecoder: fastDecoder.wasm does not match fastDecoder.ts (struct layout); rebuild the kernels",
    );
  }
  return { ex, memory, workers: null };
}

/** Steps run with workers so far, posts to workers, and posts cancelled (the step was done before
 * a worker woke), over every decoder. */
export function decoderThreadStats(): { threadedSteps: number; posted: number; cancelled: number } {
  return { ...stats };
}

/** Starts the workers of the next decoder's instance for `n` threads; resolves with how many threads are ready. */
export async function decoderThreadsReady(n = matmulThreads()): Promise<number> {
  if (n <= 1) return 1;
  const inst = acquire();
  try {
    return 1 + (await workersOf(inst).whenReady(n - 1));
  } finally {
    release(inst);
  }
}

/** The instance's worker pool (created on first use; its control blocks sit in the fixed layout). */
function workersOf(inst: Instance): WorkerPool {
  inst.workers ??= new WorkerPool(wasmModule()!, inst.memory, fixedLayout(inst.ex).ctrl, inst.ex.max_threads() - 1);
  return inst.workers;
}

function release(inst: Instance): void {
  if (pool.length < POOL_MAX) pool.push(inst);
  else void inst.workers?.terminate();
}

/** The first bytes after __heap_base, the same in every decoder on an instance (its workers' control
 * blocks must not move): the Desc, the control blocks, the Job. */
function fixedLayout(ex: Exports): { lay: Layout; desc: number; ctrl: number; job: number } {
  const lay = new Layout(ex.__heap_base.value as number);
  const desc = lay.alloc(DESC.length);
  const ctrl = lay.alloc(CTRL_INTS * (ex.max_threads() - 1));
  const job = lay.alloc(ex.job_size() / 4);
  return { lay, desc, ctrl, job };
}

const pad8 = (n: number) => (n + 7) & ~7;

/** Bump allocator over the wasm memory, from __heap_base, 16-byte aligned. */
class Layout {
  end: number;
  constructor(base: number) {
    this.end = (base + 15) & ~15;
  }
  alloc(floats: number): number {
    const p = this.end;
    this.end = (p + floats * 4 + 15) & ~15;
    return p;
  }
}

/**
 * KV cache and weights for a batch of `batch` sequences decoded in lockstep, in WebAssembly.
 * Same semantics as KVDecoder (decode.ts); call dispose() when done so the instance is reused.
 */
export class FastKVDecoder {
  private inst: Instance | null;
  private readonly job: number;
  private readonly wantBefore: number;
  private readonly f32: Float32Array;
  private readonly i32: Int32Array;
  private readonly desc: number;
  private readonly rowsB: number;
  private readonly rowsTok: number;
  private readonly rowsWant: number;
  private readonly logits: number;
  private readonly V: number;
  private readonly Vp: number;
  private readonly T: number;
  private readonly row64: Float64Array;

  /** Whether fastDecoder.wasm is present and this runtime can compile it (WebAssembly SIMD). */
  static available(): boolean {
    return typeof WebAssembly === "object" && wasmModule() !== null;
  }

  /** Why available() is false ("" when it is true). */
  static unavailableReason(): string {
    return FastKVDecoder.available() ? "" : loadError || "WebAssembly is not supported";
  }

  constructor(
    hw: HostWeights,
    readonly batch: number,
  ) {
    const { cfg, w } = hw;
    if (!Number.isInteger(batch) || batch < 0)
      throw new Error(`FastKVDecoder: batch must be a non-negative integer, got ${batch}`);
    for (const [name, shape] of paramShapes(cfg)) {
      const n = shape.reduce((a, b) => a * b, 1);
      if (!w[name] || w[name].length !== n)
        throw new Error(`FastKVDecoder: weight ${name} missing or not of size ${n}`);
    }
    const C = cfg.width,
      T = cfg.contextLength,
      L = cfg.layers,
      V = cfg.vocabSize,
      H = cfg.mlpRatio * C;
    const Cp = pad8(C),
      C3p = pad8(3 * C),
      Hp = pad8(H),
      Vp = pad8(V);
    this.V = V;
    this.Vp = Vp;
    this.T = T;
    this.row64 = new Float64Array(V);
    const inst = acquire();
    this.inst = inst;
    const { ex } = inst;

    const { lay, desc, job } = fixedLayout(ex);
    const layers = lay.alloc(LAYER.length * L);
    // weights: [name, pointer, rows, cols, padded cols]
    const copies: [Float32Array, number, number, number, number][] = [];
    const weight = (name: string, rows: number, cols: number, padded: boolean): number => {
      const ld = padded ? pad8(cols) : cols;
      const p = lay.alloc(rows * ld);
      copies.push([w[name], p, rows, cols, ld]);
      return p;
    };
    const d: Record<DescField, number> = {
      V,
      T,
      L,
      C,
      nh: cfg.heads,
      H,
      B: batch,
      Cp,
      C3p,
      Hp,
      Vp,
      wte: weight("wte", V, C, false),
      wpe: weight("wpe", T, C, false),
      lnf_g: weight("ln_f.g", 1, C, false),
      lnf_b: weight("ln_f.b", 1, C, false),
      lm_head: weight("lm_head.w", C, V, true),
      kc: 0,
      vc: 0,
      x: 0,
      h: 0,
      qkv: 0,
      y: 0,
      mlp: 0,
      att: 0,
      logits: 0,
      rows_b: 0,
      rows_tok: 0,
      rows_want: 0,
      layers,
      add_layer: 0,
      add: 0,
    };
    if (hw.addition) {
      const { layer, vector } = hw.addition;
      if (!Number.isInteger(layer) || layer < 0 || layer >= L || vector.length !== C)
        throw new Error(`FastKVDecoder: residual addition needs a layer in [0, ${L}) and ${C} values`);
      d.add_layer = layer;
      d.add = lay.alloc(Cp);
      copies.push([vector, d.add, 1, C, C]);
    }
    const layerPtrs: number[] = [];
    for (let l = 0; l < L; l++) {
      for (const [, suffix, padded] of LAYER) {
        const name = `h.${l}.${suffix}`;
        const shape = paramShapes(cfg).find(([n]) => n === name)![1];
        const [rows, cols] = shape.length === 2 ? shape : [1, shape[0]];
        layerPtrs.push(weight(name, rows, cols, padded));
      }
    }
    d.kc = lay.alloc(L * batch * T * C);
    d.vc = lay.alloc(L * batch * T * C);
    d.x = lay.alloc(batch * Cp);
    d.h = lay.alloc(batch * Cp);
    d.qkv = lay.alloc(batch * C3p);
    d.y = lay.alloc(batch * Cp);
    d.mlp = lay.alloc(batch * Hp);
    d.att = lay.alloc((T + 3) & ~3);
    d.logits = lay.alloc(batch * Vp);
    d.rows_b = lay.alloc(batch);
    d.rows_tok = lay.alloc(batch);
    d.rows_want = lay.alloc(batch);
    const wantBefore = lay.alloc(batch + 1);
    const att = Array.from({ length: ex.max_threads() }, () => lay.alloc((T + 3) & ~3));

    const mem = inst.memory;
    if (mem.buffer.byteLength < lay.end) mem.grow(Math.ceil((lay.end - mem.buffer.byteLength) / 65536));
    this.f32 = new Float32Array(mem.buffer);
    this.i32 = new Int32Array(mem.buffer);
    // zero everything after the fixed part (padding of weights and biases must be 0; the cache
    // starts clean); the fixed part holds the workers' control blocks, and the Desc and Job are
    // written below
    this.f32.fill(0, layers / 4, lay.end / 4);
    for (const [src, p, rows, cols, ld] of copies) {
      if (ld === cols) this.f32.set(src, p / 4);
      else for (let r = 0; r < rows; r++) this.f32.set(src.subarray(r * cols, (r + 1) * cols), p / 4 + r * ld);
    }
    DESC.forEach((k, i) => (this.i32[desc / 4 + i] = d[k]));
    layerPtrs.forEach((p, i) => (this.i32[layers / 4 + i] = p));
    this.i32[job / 4 + JOB.d] = desc;
    this.i32[job / 4 + JOB.wantBefore] = wantBefore;
    att.forEach((p, t) => (this.i32[job / 4 + JOB.att + t] = p));
    this.desc = desc;
    this.job = job;
    this.wantBefore = wantBefore / 4;
    this.rowsB = d.rows_b / 4;
    this.rowsTok = d.rows_tok / 4;
    this.rowsWant = d.rows_want / 4;
    this.logits = d.logits / 4;
  }

  /** Returns the wasm instance to the pool; the decoder cannot be used afterwards. */
  dispose(): void {
    if (this.inst) release(this.inst);
    this.inst = null;
  }

  private live(): Instance {
    if (!this.inst) throw new Error("FastKVDecoder: used after dispose()");
    return this.inst;
  }

  private checkPos(pos: number): void {
    if (!Number.isInteger(pos) || pos < 0 || pos >= this.T)
      throw new Error(`FastKVDecoder: position ${pos} outside the context [0, ${this.T})`);
  }

  private checkToken(token: number): void {
    if (!Number.isInteger(token) || token < 0 || token >= this.V)
      throw new Error(`FastKVDecoder: token ${token} outside the vocabulary [0, ${this.V})`);
  }

  /**
   * Low level: runs the rows set with setRow(0..nb-1) at position pos. Returns the number of rows
   * that wanted logits; read them (in row order) with logitsRow(i).
   */
  run(nb: number, pos: number): number {
    const inst = this.live();
    this.checkPos(pos);
    if (nb > this.batch) throw new Error(`FastKVDecoder: ${nb} rows for a batch of ${this.batch}`);
    if (nb === 0) return 0;
    const threads = Math.min(matmulThreads(), inst.ex.max_threads());
    const workers = threads > 1 && nb >= MIN_THREADED_ROWS ? takeWorkers(workersOf(inst), threads, alone) : [];
    if (workers.length === 0) return inst.ex.decode_step(this.desc, nb, pos);
    // rows before each row that want logits (where its logits go), chunks of >= 4 rows, ~4 per thread
    const wb = this.wantBefore;
    this.i32[wb] = 0;
    for (let r = 0; r < nb; r++) this.i32[wb + r + 1] = this.i32[wb + r] + (this.i32[this.rowsWant + r] ? 1 : 0);
    const chunk = Math.max(4, Math.ceil(nb / (4 * (1 + workers.length)) / 4) * 4);
    const j = this.job / 4;
    this.i32[j + JOB.nb] = nb;
    this.i32[j + JOB.pos] = pos;
    this.i32[j + JOB.chunk] = chunk;
    this.i32[j + JOB.nchunks] = Math.ceil(nb / chunk);
    Atomics.store(this.i32, j + JOB.next, 0);
    const pool = inst.workers!;
    const cancelled = pool.stats.cancelled;
    const { ownMs, waitedMs } = pool.runJob(this.job, workers, () => inst.ex.run_job(this.job, 0));
    ({ strikes: alone.strikes, backoff: alone.backoff } = afterThreadedCall(alone, ownMs, waitedMs));
    stats.threadedSteps++;
    stats.posted += workers.length;
    stats.cancelled += pool.stats.cancelled - cancelled;
    return this.i32[wb + nb];
  }

  /** Row r of the next run feeds `token` for sequence b; want: compute its logits. */
  setRow(r: number, b: number, token: number, want: boolean): void {
    if (!(b >= 0 && b < this.batch)) throw new Error(`FastKVDecoder: sequence ${b} outside the batch of ${this.batch}`);
    this.checkToken(token);
    this.i32[this.rowsB + r] = b;
    this.i32[this.rowsTok + r] = token;
    this.i32[this.rowsWant + r] = want ? 1 : 0;
  }

  /** View of the i-th logits row of the last run (valid until the next run). */
  logitsRow(i: number): Float32Array {
    const o = this.logits + i * this.Vp;
    return this.f32.subarray(o, o + this.V);
  }

  /**
   * One lockstep step: every sequence b with active[b] feeds tokens[b] at position pos; those with
   * wantLogits[b] get their next-token logits in logitsOut[b*V .. (b+1)*V).
   */
  stepBatch(
    tokens: Int32Array,
    active: Uint8Array,
    pos: number,
    wantLogits: Uint8Array,
    logitsOut: Float32Array,
  ): void {
    const B = this.batch,
      V = this.V;
    let nb = 0;
    for (let b = 0; b < B; b++) if (active[b]) this.setRow(nb++, b, tokens[b], wantLogits[b] !== 0);
    this.run(nb, pos);
    let i = 0;
    for (let r = 0; r < nb; r++) {
      if (!this.i32[this.rowsWant + r]) continue;
      logitsOut.set(this.logitsRow(i++), this.i32[this.rowsB + r] * V);
    }
  }

  /** KVDecoder-compatible single-sequence step: feeds `token` at `pos` for sequence b. */
  step(b: number, token: number, pos: number, logits?: Float64Array | Float32Array): void {
    this.setRow(0, b, token, logits !== undefined);
    this.run(1, pos);
    if (logits) logits.set(this.logitsRow(0));
  }

  /** Float64 copy of logits row i (reused buffer), for sampleToken. */
  logitsRow64(i: number): Float64Array {
    this.row64.set(this.logitsRow(i));
    return this.row64;
  }
}

/**
 * Same as generate() in src/model/decode.ts (same prompt feeding, stopping rules, and rng draws:
 * one sampleToken call per sampling sequence per step, in sequence order), with the decode steps
 * in WebAssembly. Tokens agree with generate() wherever the float32 logits pick the same token.
 */
export function generateFast(
  hw: HostWeights,
  prompts: number[][],
  opts: GenerateOptions,
  rng: Rng | null,
): { completions: number[][]; finished: boolean[] } {
  const st = startGeneration(hw, prompts, opts);
  const { B, V, T, seqs, completions, finished, done } = st;
  const dec = new FastKVDecoder(hw, B);
  try {
    const rowB = new Int32Array(B);
    const rowWant = new Uint8Array(B);
    for (let pos = 0; pos < T - 1; pos++) {
      let nb = 0;
      for (let b = 0; b < B; b++) {
        if (done[b]) continue;
        const s = seqs[b];
        const inPrompt = pos + 1 < s.length;
        dec.setRow(nb, b, s[pos], !inPrompt);
        rowB[nb] = b;
        rowWant[nb] = inPrompt ? 0 : 1;
        nb++;
      }
      dec.run(nb, pos);
      let anyActive = false;
      let i = 0;
      for (let r = 0; r < nb; r++) {
        const b = rowB[r];
        if (!rowWant[r]) {
          anyActive = true;
          continue;
        }
        if (acceptToken(st, b, sampleToken(dec.logitsRow64(i++), V, opts, rng), opts.maxNewTokens)) anyActive = true;
      }
      if (!anyActive) break;
    }
  } finally {
    dec.dispose();
  }
  return { completions, finished };
}

/** Test hook: applies the kernel's float32 exp (f=0), tanh (1) or GELU (2) to xs. */
export function kernelMath(f: 0 | 1 | 2, xs: Float32Array): Float32Array {
  const inst = acquire();
  const { ex, memory } = inst;
  try {
    const n = (xs.length + 3) & ~3;
    const base = fixedLayout(ex).lay.end;
    const need = base + 8 * n;
    if (memory.buffer.byteLength < need) memory.grow(Math.ceil((need - memory.buffer.byteLength) / 65536));
    const f32 = new Float32Array(memory.buffer);
    f32.fill(0, base / 4, base / 4 + n);
    f32.set(xs, base / 4);
    ex.vec_math(f, base, base + 4 * n, n);
    return f32.slice(base / 4 + n, base / 4 + n + xs.length);
  } finally {
    release(inst);
  }
}
