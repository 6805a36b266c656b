// Float32 matrix multiply in WebAssembly SIMD (matmul.wasm, built from matmul.c by
// scripts/build-kernels.sh) on plain Float32Arrays: C = op(A) op(B), batched, with the same
// transpose conventions as tf.matMul. Not wired into tfjs; used by bench/matmul.ts.
// Inputs are copied into the wasm memory and the result copied out (one module instance, its
// memory grown to the largest call and reused). Results are bit-identical from run to run.
import fs from "node:fs";
import { fileURLToPath } from "node:url";

const WASM_URL = new URL("./matmul.wasm", import.meta.url);

interface Exports {
  memory: WebAssembly.Memory;
  __heap_base: WebAssembly.Global;
  matmul(
    A: number, B: number, C: number, batch: number, M: number, K: number, N: number, ta: number, tb: number,
    strideA: number, strideB: number, pa: number, pb: number, cp: number,
  ): void;
}

let inst: Exports | null | undefined;
let loadError = "";

function instance(): Exports | null {
  if (inst !== undefined) return inst;
  try {
    const mod = new WebAssembly.Module(fs.readFileSync(fileURLToPath(WASM_URL)));
    inst = new WebAssembly.Instance(mod, {}).exports as unknown as Exports;
  } catch (e) {
    loadError = String((e as Error).message ?? e);
    inst = null;
  }
  return inst;
}

/** Whether matmul.wasm is present and compiles here (WebAssembly SIMD). */
export function matmulAvailable(): boolean {
  return instance() !== null;
}

export interface MatMulOptions {
  /** A is stored [batch, K, M] instead of [batch, M, K] */
  transposeA?: boolean;
  /** B is stored [batch, N, K] instead of [batch, K, N] */
  transposeB?: boolean;
  /** number of independent products (default 1) */
  batch?: number;
  /** B is one matrix shared by every batch item (default false) */
  broadcastB?: boolean;
  /** where to write C [batch, M, N] (allocated if absent) */
  out?: Float32Array;
}

const align = (bytes: number) => (bytes + 15) & ~15;

/** C [batch, M, N] = op(A) [M, K] x op(B) [K, N] for each batch item. */
export function matMul(a: Float32Array, b: Float32Array, M: number, K: number, N: number, opts: MatMulOptions = {}): Float32Array {
  const ex = instance();
  if (!ex) throw new Error(`matMul: cannot load ${fileURLToPath(WASM_URL)} (${loadError}); run npm run build:kernels`);
  const batch = opts.batch ?? 1;
  for (const [k, v] of Object.entries({ M, K, N, batch })) {
    if (!Number.isInteger(v) || v < 0) throw new Error(`matMul: ${k} must be a non-negative integer, got ${v}`);
  }
  const nB = opts.broadcastB ? 1 : batch;
  if (a.length !== batch * M * K) throw new Error(`matMul: A has ${a.length} values, expected ${batch}*${M}*${K}`);
  if (b.length !== nB * K * N) throw new Error(`matMul: B has ${b.length} values, expected ${nB}*${K}*${N}`);
  const out = opts.out ?? new Float32Array(batch * M * N);
  if (out.length !== batch * M * N) throw new Error(`matMul: out has ${out.length} values, expected ${batch * M * N}`);
  if (batch * M * N === 0) return out;
  const Mp = (M + 3) & ~3;
  const Np = (N + 7) & ~7;
  const base = align(ex.__heap_base.value as number);
  const pA = base;
  const pB = align(pA + 4 * a.length);
  const pC = align(pB + 4 * b.length);
  const pa = align(pC + 4 * out.length);
  const pb = align(pa + 4 * Mp * K);
  const cp = align(pb + 4 * Np * K);
  const end = cp + 4 * Mp * Np;
  const mem = ex.memory;
  if (mem.buffer.byteLength < end) mem.grow(Math.ceil((end - mem.buffer.byteLength) / 65536));
  const f32 = new Float32Array(mem.buffer);
  f32.set(a, pA / 4);
  f32.set(b, pB / 4);
  ex.matmul(pA, pB, pC, batch, M, K, N, opts.transposeA ? 1 : 0, opts.transposeB ? 1 : 0, M * K, opts.broadcastB ? 0 : K * N, pa, pb, cp);
  out.set(f32.subarray(pC / 4, pC / 4 + out.length));
  return out;
}
