// Float32 matrix multiply in WebAssembly SIMD (matmul.wasm, built from matmul.c by
// scripts/build-kernels.sh), batched, with the same transpose conventions as tf.matMul, on one or
// more threads (threads.ts). Registered as the tfjs BatchMatMul kernel by tfjs/BatchMatMul.ts; matMul()
// below works on plain Float32Arrays (bench/matmul.ts, tests).
// One module instance per thread over one shared WebAssembly.Memory, grown to the largest call
// and reused: inputs are copied in and the result read out (runMatMul returns a view of it).
// A call can instead run in place, in another module's shared memory (the tfjs-wasm backend's heap,
// made shared by src/engine/wasmHeap.ts; tfjs/io.ts), through matmul-heap.wasm — the same C built for an
// imported memory, with no static data and no stack — reading the input tensors where they are and
// writing the output tensor directly: no copies, on one thread or on several (the workers run their
// own instances of matmul-heap.wasm over that memory: threads.ts attachHeap).
// Results are bit-identical from run to run and for any number of threads (work is split by
// output rows / batch items only; see matmul.c). Two builds of each module: fma (the default where
// it compiles: relaxed-SIMD multiply-add, fused on CPUs with FMA, ~1.4x the exact build's speed
// here) and exact (RLVR_MATMUL=exact: product rounded before the add, the same bits on every CPU);
// the *-fma.wasm files are the fma build.
import fs from "node:fs";
import os from "node:os";
import v8 from "node:v8";
import { fileURLToPath } from "node:url";
import { CTRL_INTS, type RunAlone, takeWorkers, WorkerPool } from "./threads.js";
import { sections } from "../engine/wasmBinary.js";
import { type NativeAddon, type NativeIsa, nativeAddon, nativeUnavailableReason } from "../engine/native.js";

/** The two builds of matmul.c (scripts/build-kernels.sh): "fma" multiplies and adds with relaxed-SIMD
 * f32x4.relaxed_madd (fused where the CPU has FMA), "exact" rounds the product before adding (the
 * same bits on every CPU). Each has a module for our shared memory and one for a host's heap. */
export const MATMUL_VARIANTS = ["fma", "exact"] as const;
export type MatmulVariant = (typeof MATMUL_VARIANTS)[number];
const WASM_URLS: Record<MatmulVariant, { main: URL; heap: URL }> = {
  fma: {
    main: new URL("./matmul-fma.wasm", import.meta.url),
    heap: new URL("./matmul-heap-fma.wasm", import.meta.url),
  },
  exact: { main: new URL("./matmul.wasm", import.meta.url), heap: new URL("./matmul-heap.wasm", import.meta.url) },
};
/** env var choosing the variant: fma or exact (default: fma where it compiles, else exact) */
export const VARIANT_ENV = "RLVR_MATMUL";
const PAGE = 65536;
/** --max-memory of the build (2 GiB) */
const MAX_PAGES = 32768;
/** below this many flops a call runs on the caller's thread only (waking a worker costs ~10-50 µs) */
const MIN_THREADED_FLOPS = 400_000;
/** env var with the default thread count */
export const THREADS_ENV = "RLVR_THREADS";

export interface Exports {
  __heap_base: WebAssembly.Global;
  job_size(): number;
  max_threads(): number;
  run_job(job: number, thread: number): void;
  gelu(backward: number, x: number, dy: number, out: number, n: number): void;
  colsum(x: number, R: number, C: number, out: number): void;
  fma_probe(a: number, b: number, c: number): number;
}

// Int32 fields of Job in matmul.c, then Scratch ts[MAXT] (pa, pb, cp, packed)
export const J = {
  A: 0,
  B: 1,
  C: 2,
  aoff: 3,
  boff: 4,
  batch: 5,
  M: 6,
  K: 7,
  N: 8,
  ta: 9,
  tb: 10,
  chunkRows: 11,
  nchunks: 12,
  next: 13,
  kind: 14,
  ts: 16,
} as const;
export interface Engine {
  variant: MatmulVariant;
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  ex: Exports;
  /** whether its multiply-add is fused on this CPU (fma_probe) */
  fused: boolean;
  maxThreads: number;
  job: number;
  ctrl: number;
  dyn: number;
  f32: Float32Array;
  i32: Int32Array;
  pool: WorkerPool | null;
  /** the host-heap module (undefined: not loaded yet; null: missing or unsafe) and its instances */
  heapModule?: WebAssembly.Module | null;
  heapInstances: WeakMap<WebAssembly.Memory, Exports>;
}

const engines: Partial<Record<MatmulVariant, Engine | null>> = {};
const loadErrors: Partial<Record<MatmulVariant, string>> = {};
/** the variant in use (undefined: not chosen yet, see activeVariant) */
let variant: MatmulVariant | undefined;
let threadCount: number | undefined;
let spinMicros: number | undefined;
/** threaded calls to run alone before trying the workers again, and the current doubling (see runMatMul) */
export const alone: RunAlone = { strikes: 0, backoff: 0 };
let stalls = 0;
/** calls run in place in a host heap (matmul and GELU), and whether that is allowed */
let inPlaceCalls = 0;
let inPlaceEnabled = true;
let nativeEnabled = true;
let nativeCalls = 0;

/** (unsigned: heap addresses above 2 GiB) */
export const align = (bytes: number) => ((bytes + 63) & ~63) >>> 0;
const pad4 = (n: number) => (n + 3) & ~3;
const pad8 = (n: number) => (n + 7) & ~7;

/** Compiles a kernel binary; one that uses relaxed SIMD first turns on V8's flag for it where this
 * Node needs one (Node 20: --experimental-wasm-relaxed-simd; on by default from V8 11.4). */
function compile(bytes: Uint8Array<ArrayBuffer>): WebAssembly.Module {
  if (!WebAssembly.validate(bytes)) v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
  return new WebAssembly.Module(bytes);
}

function loadVariant(v: MatmulVariant): Engine | null {
  if (engines[v] !== undefined) return engines[v]!;
  try {
    const module = compile(new Uint8Array(fs.readFileSync(fileURLToPath(WASM_URLS[v].main))));
    const memory = new WebAssembly.Memory({ initial: 64, maximum: MAX_PAGES, shared: true });
    const ex = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as Exports;
    if (ex.job_size() !== (J.ts + 4 * ex.max_threads()) * 4)
      throw new Error("the kernel does not match matmul.ts (Job layout); rebuild the kernels");
    const maxThreads = ex.max_threads();
    const job = align(ex.__heap_base.value as number);
    const ctrl = align(job + ex.job_size());
    const dyn = align(ctrl + maxThreads * CTRL_INTS * 4);
    const fused = ex.fma_probe(1 + 2 ** -23, 1 - 2 ** -23, -1) !== 0;
    engines[v] = {
      variant: v,
      module,
      memory,
      ex,
      fused,
      maxThreads,
      job,
      ctrl,
      dyn,
      f32: new Float32Array(memory.buffer),
      i32: new Int32Array(memory.buffer),
      pool: null,
      heapInstances: new WeakMap(),
    };
  } catch (e) {
    loadErrors[v] = `${fileURLToPath(WASM_URLS[v].main)}: ${String((e as Error).message ?? e)}`;
    engines[v] = null;
  }
  return engines[v]!;
}

/** The build named by RLVR_MATMUL's value (null: unset or empty); throws on anything else. */
export function parseVariant(raw: string | undefined): MatmulVariant | null {
  if (raw === undefined || raw === "") return null;
  if (!(MATMUL_VARIANTS as readonly string[]).includes(raw))
    throw new Error(`${VARIANT_ENV}=${JSON.stringify(raw)}: use one of ${MATMUL_VARIANTS.join(", ")}`);
  return raw as MatmulVariant;
}

/** The variant in use: set by setMatmulVariant, else RLVR_MATMUL, else fma where it loads, else exact. */
function activeVariant(): MatmulVariant {
  variant ??= parseVariant(process.env[VARIANT_ENV]) ?? (loadVariant("fma") ? "fma" : "exact");
  return variant;
}

function load(): Engine | null {
  return loadVariant(activeVariant());
}

/** The loaded engine, or an error naming `what` and how to rebuild the kernels. */
export function mustLoad(what: string): Engine {
  const e = load();
  if (!e) throw new Error(`${what}: cannot load ${loadErrors[activeVariant()]}; run npm run build:kernels`);
  return e;
}

/** Switches between the two builds (thread pools and heap instances are kept per build). */
export function setMatmulVariant(v: MatmulVariant): void {
  if (!(MATMUL_VARIANTS as readonly string[]).includes(v))
    throw new Error(`matmul variant: use one of ${MATMUL_VARIANTS.join(", ")}, got ${JSON.stringify(v)}`);
  variant = v;
  alone.backoff = 0;
  alone.strikes = 0;
}

/** The build in use and whether its multiply-add is fused on this CPU (null: no kernel loads). */
export function matmulVariant(): { variant: MatmulVariant; fused: boolean } | null {
  const e = load();
  return e ? { variant: e.variant, fused: e.fused } : null;
}

/** Another module's linear memory (the tfjs-wasm backend's heap) and its allocator. */
export interface HostHeap {
  memory: WebAssembly.Memory;
  /** byte offset of `bytes` fresh bytes (0 if none) */
  malloc(bytes: number): number;
  free(ptr: number): void;
}

/** Whether a WebAssembly binary has a data section (id 11): such a module would write its static data
 * into whatever memory it is given, so it must not run in a host's heap. */
export function hasDataSection(bytes: Uint8Array): boolean {
  for (const { id } of sections(bytes)) if (id === 11) return true;
  return false;
}

/** The active build's host-heap module instantiated over `memory` (cached), or null where it is
 * missing or unsafe, or `memory` is not shared (the module imports a shared memory, so that workers
 * can run in it too). */
function heapExports(e: Engine, memory: WebAssembly.Memory): Exports | null {
  if (!(memory.buffer instanceof SharedArrayBuffer)) return null;
  if (e.heapModule === undefined) {
    try {
      const bytes = new Uint8Array(fs.readFileSync(fileURLToPath(WASM_URLS[e.variant].heap)));
      e.heapModule = hasDataSection(bytes) ? null : compile(bytes);
    } catch {
      e.heapModule = null;
    }
  }
  if (!e.heapModule) return null;
  let ex = e.heapInstances.get(memory);
  if (!ex) {
    ex = new WebAssembly.Instance(e.heapModule, { env: { memory } }).exports as unknown as Exports;
    e.heapInstances.set(memory, ex);
  }
  return ex;
}

/** Allows (default) or forbids running in place; forbidden, every call copies in and out (for
 * comparisons: results are bit-identical either way). */
export function setMatmulInPlace(on: boolean): void {
  inPlaceEnabled = on;
}

/** The host-heap module over the heap of `place`, when in-place calls are allowed and possible. */
export function inPlaceExports(e: Engine, place: InPlace | undefined): Exports | null {
  if (!place || !inPlaceEnabled) return null;
  const ex = heapExports(e, place.heap.memory);
  if (ex) inPlaceCalls++;
  return ex;
}

/** Whether the active build is present and instantiates here (WebAssembly SIMD, threads, shared
 * memory; relaxed SIMD for fma). */
export function matmulAvailable(): boolean {
  return load() !== null;
}

export function matmulUnavailableReason(): string {
  load();
  return loadErrors[activeVariant()] ?? "";
}

/** Thread count from RLVR_THREADS, else min(2, available cores). */
export function defaultThreads(): number {
  const raw = process.env[THREADS_ENV];
  if (raw !== undefined && raw !== "") {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > 16)
      throw new Error(`${THREADS_ENV}=${JSON.stringify(raw)}: use an integer from 1 to 16`);
    return n;
  }
  const cores = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(2, cores));
}

/** Threads used by matmul calls (the caller's own thread included). */
export function matmulThreads(): number {
  if (threadCount === undefined) threadCount = defaultThreads();
  return threadCount;
}

/** Sets the thread count (1 = the caller's thread only); workers start in the background. */
export function setMatmulThreads(n: number): void {
  const e = load();
  const max = e ? e.maxThreads : 16;
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new Error(`matmul threads: use an integer from 1 to ${max}, got ${n}`);
  threadCount = n;
  alone.backoff = 0;
  alone.strikes = 0;
  if (e && n > 1) pool(e).ensure(n - 1);
}

export function pool(e: Engine): WorkerPool {
  if (!e.pool) {
    e.pool = new WorkerPool(e.module, e.memory, e.ctrl, e.maxThreads - 1);
    if (spinMicros !== undefined) e.pool.setSpin(spinMicros);
  }
  return e.pool;
}

const loadedEngines = (): Engine[] => MATMUL_VARIANTS.map((v) => engines[v]).filter((e): e is Engine => !!e);

/** Microseconds a worker keeps polling for the next job (and the caller for a worker's finish)
 * before sleeping in Atomics.wait. */
export function setMatmulSpin(us: number): void {
  spinMicros = us;
  for (const e of loadedEngines()) e.pool?.setSpin(us);
}

/** Starts the workers for `n` threads (default: matmulThreads()) and resolves with how many threads are ready. */
export async function matmulThreadsReady(n = matmulThreads()): Promise<number> {
  const e = load();
  if (!e) return 0;
  if (n <= 1) return 1;
  return 1 + (await pool(e).whenReady(n - 1));
}

/** Stops the worker threads of both builds (they restart on the next threaded call). */
export async function stopMatmulThreads(): Promise<void> {
  const pools = loadedEngines().flatMap((e) => {
    const p = e.pool;
    e.pool = null;
    return p ? [p] : [];
  });
  await Promise.all(pools.map((p) => p.terminate()));
}

/** Worker posts so far, how many were cancelled (no worker woke before the caller finished),
 * stalls (calls where the caller waited on a descheduled worker; each one pauses threading), and
 * calls run in place in a host heap (matmuls, on any number of threads, and GELUs on
 * the tfjs-wasm heap). */
export function matmulThreadStats(): {
  posted: number;
  cancelled: number;
  stalls: number;
  inPlace: number;
  native: number;
} {
  let posted = 0;
  let cancelled = 0;
  for (const e of loadedEngines()) {
    posted += e.pool?.stats.posted ?? 0;
    cancelled += e.pool?.stats.cancelled ?? 0;
  }
  return { posted, cancelled, stalls, inPlace: inPlaceCalls, native: nativeCalls };
}

export interface MatMulJob {
  /** output batch items */
  batch: number;
  M: number;
  K: number;
  N: number;
  /** A is stored [K, M] per item instead of [M, K] */
  transposeA: boolean;
  /** B is stored [N, K] per item instead of [K, N] */
  transposeB: boolean;
  /** floats of A and of B that `load` copies in */
  aLength: number;
  bLength: number;
  /** per batch item: float offset of its A / B (default i*M*K / i*K*N) */
  aOffsets?: Int32Array;
  bOffsets?: Int32Array;
}

/** Thrown when a call does not fit in the 2 GiB wasm memory. */
export class MatMulTooLarge extends Error {}

export function ensureMemory(e: Engine, end: number): void {
  const have = e.memory.buffer.byteLength;
  if (end > have) {
    const pages = Math.ceil((end - have) / PAGE);
    if (have / PAGE + pages > MAX_PAGES)
      throw new MatMulTooLarge(`matmul: needs ${(end / 2 ** 20).toFixed(0)} MiB, over the 2 GiB of matmul.wasm`);
    e.memory.grow(pages);
  }
  if (e.f32.buffer.byteLength !== e.memory.buffer.byteLength) {
    e.f32 = new Float32Array(e.memory.buffer);
    e.i32 = new Int32Array(e.memory.buffer);
  }
}

/** Byte offsets of a call's operands, result and per-item offset tables in the memory it runs in. */
interface Placement {
  A: number;
  B: number;
  C: number;
  aoff: number;
  boff: number;
}

/** Writes the Job struct at byte `job`, the per-item offsets, and each thread's scratch pointers. */
function writeJob(
  i32: Int32Array,
  job: number,
  p: Placement,
  m: MatMulJob,
  chunkRows: number,
  scratch: ThreadScratch[],
): void {
  const { batch, M, K, N } = m;
  const ao = i32.subarray(p.aoff / 4, p.aoff / 4 + batch);
  const bo = i32.subarray(p.boff / 4, p.boff / 4 + batch);
  if (m.aOffsets) ao.set(m.aOffsets);
  else for (let i = 0; i < batch; i++) ao[i] = i * M * K;
  if (m.bOffsets) bo.set(m.bOffsets);
  else for (let i = 0; i < batch; i++) bo[i] = i * K * N;
  const j = job / 4;
  i32[j + J.A] = p.A;
  i32[j + J.B] = p.B;
  i32[j + J.C] = p.C;
  i32[j + J.aoff] = p.aoff;
  i32[j + J.boff] = p.boff;
  i32[j + J.batch] = batch;
  i32[j + J.M] = M;
  i32[j + J.K] = K;
  i32[j + J.N] = N;
  i32[j + J.ta] = m.transposeA ? 1 : 0;
  i32[j + J.tb] = m.transposeB ? 1 : 0;
  i32[j + J.chunkRows] = chunkRows;
  i32[j + J.nchunks] = M > 0 && N > 0 ? batch * Math.ceil(M / Math.max(chunkRows, 1)) : 0;
  i32[j + J.kind] = 0;
  Atomics.store(i32, j + J.next, 0);
  for (const { t, pa, pb, cp } of scratch) {
    i32[j + J.ts + 4 * t] = pa;
    i32[j + J.ts + 4 * t + 1] = pb;
    i32[j + J.ts + 4 * t + 2] = cp;
    i32[j + J.ts + 4 * t + 3] = -1;
  }
}

/** Bytes of one thread's packing buffers (pa, pb, cp: see Scratch in matmul.c), each 64-byte aligned. */
function scratchLayout(
  start: number,
  chunkRows: number,
  K: number,
  N: number,
): { pa: number; pb: number; cp: number; end: number } {
  const pa = start;
  const pb = align(pa + 4 * pad4(chunkRows) * K);
  const cp = align(pb + 4 * pad8(N) * K);
  return { pa, pb, cp, end: align(cp + 4 * pad4(chunkRows) * pad8(N)) };
}

type ThreadScratch = { t: number; pa: number; pb: number; cp: number };

/** Packing buffers for the caller (thread 0) and `workers`, one after another from byte `start`. */
function threadScratch(
  start: number,
  chunkRows: number,
  m: MatMulJob,
  workers: number[],
): { scratch: ThreadScratch[]; end: number } {
  const scratch: ThreadScratch[] = [];
  let end = start;
  for (const t of [0, ...workers]) {
    const { pa, pb, cp, end: next } = scratchLayout(end, chunkRows, m.K, m.N);
    scratch.push({ t, pa, pb, cp });
    end = next;
  }
  return { scratch, end };
}

/** A call may run in place in `heap` (a shared memory: on every thread): A and
 * B are already there (byte offsets `a`, `b`), and `output()` allocates the result there and
 * returns its byte offset. */
export interface InPlace {
  heap: HostHeap;
  a: number;
  b: number;
  output(): number;
}

/** Allocates every thread's scratch in the host heap, then the output (so that nothing needs
 * releasing if the scratch does not fit), and writes a Job there. Null: no room. Free `raw` after
 * running `job`. */
function heapJob(
  ex: Exports,
  place: InPlace,
  m: MatMulJob,
  chunkRows: number,
  workers: number[],
): { raw: number; job: number } | null {
  const aoff = align(ex.job_size());
  const boff = align(aoff + 4 * m.batch);
  const { scratch, end } = threadScratch(align(boff + 4 * m.batch), chunkRows, m, workers);
  const raw = place.heap.malloc(end + 64);
  if (!raw) return null;
  const C = place.output();
  const base = align(raw);
  const i32 = new Int32Array(place.heap.memory.buffer);
  const moved = scratch.map(({ t, pa, pb, cp }) => ({ t, pa: base + pa, pb: base + pb, cp: base + cp }));
  writeJob(i32, base, { A: place.a, B: place.b, C, aoff: base + aoff, boff: base + boff }, m, chunkRows, moved);
  return { raw, job: base };
}

/** In the host heap, on the caller's thread and `workers` (none: the caller alone); scratch is
 * malloc'd for the call and freed. Returns false, having done nothing, if the heap has no room. */
function runInHeap(
  e: Engine,
  ex: Exports,
  place: InPlace,
  m: MatMulJob,
  chunkRows: number,
  workers: number[],
): boolean {
  const h = heapJob(ex, place, m, chunkRows, workers);
  if (!h) return false;
  try {
    runJob(e, ex, h.job, workers, place.heap.memory);
  } finally {
    place.heap.free(h.raw);
  }
  return true;
}

/** Runs `job` with `ex` on the caller's thread; with `workers`, posts it to them first (in
 * `heapMemory`, a host heap, through the build's heap module, when given), waits for them, and
 * applies the stall policy. */
export function runJob(e: Engine, ex: Exports, job: number, workers: number[], heapMemory?: WebAssembly.Memory): void {
  if (workers.length === 0) {
    ex.run_job(job, 0);
    return;
  }
  const { ownMs, waitedMs } = e.pool!.runJob(
    job,
    workers,
    () => ex.run_job(job, 0),
    heapMemory && { module: e.heapModule!, memory: heapMemory },
  );
  noteThreadedCall(ownMs, waitedMs);
}

/** The shared memory's layout for one call (operands, C, offset tables, each thread's scratch), grown to fit. */
function sharedLayout(
  e: Engine,
  m: MatMulJob,
  chunkRows: number,
  workers: number[],
): { place: Placement; scratch: ThreadScratch[] } {
  const A = e.dyn;
  const B = align(A + 4 * m.aLength);
  const C = align(B + 4 * m.bLength);
  const aoff = align(C + 4 * m.batch * m.M * m.N);
  const boff = align(aoff + 4 * m.batch);
  const { scratch, end } = threadScratch(align(boff + 4 * m.batch), chunkRows, m, workers);
  ensureMemory(e, end);
  return { place: { A, B, C, aoff, boff }, scratch };
}

/** After a threaded call in which the caller worked `ownMs` and then waited `waitedMs`: a worker that
 * took a chunk and was then descheduled (the cores busy with other processes) made the caller wait;
 * after such a call, work alone for a while (doubling each time; afterThreadedCall). */
function noteThreadedCall(ownMs: number, waitedMs: number): void {
  const next = afterThreadedCall(alone, ownMs, waitedMs);
  if (next.stalled) stalls++;
  ({ strikes: alone.strikes, backoff: alone.backoff } = next);
}

/** Allows (default) or forbids the native addon's matmul (src/native/gemm.c); forbidden, or where the
 * addon is unavailable, the WebAssembly kernels run every call. Both give the same bits. */
export function setMatmulNative(on: boolean): void {
  nativeEnabled = on;
}

/** The native matmul in use: the addon's instruction set (avx512 or avx2), or null with the reason. */
export function matmulNative(): { isa: NativeIsa; reason?: undefined } | { isa: null; reason: string } {
  if (!nativeEnabled) return { isa: null, reason: "switched off" };
  const n = nativeAddon();
  return n ? { isa: n.info().isa } : { isa: null, reason: nativeUnavailableReason() };
}

const offsetsFor = (batch: number, item: number): Int32Array => {
  const o = new Int32Array(batch);
  for (let i = 0; i < batch; i++) o[i] = i * item;
  return o;
};

const heapViews = new WeakMap<WebAssembly.Memory, Float32Array>();

/** A Float32Array over the whole of `memory` (renewed when it has grown). */
function floatView(memory: WebAssembly.Memory): Float32Array {
  let v = heapViews.get(memory);
  if (!v || v.buffer !== memory.buffer) {
    v = new Float32Array(memory.buffer);
    heapViews.set(memory, v);
  }
  return v;
}

/** The call on the native addon: in place in the host heap when `inPlace` is given (and allowed),
 * else through the kernel memory as the WebAssembly path does. The multiply-add is fused exactly
 * when the WebAssembly build in use fuses it, so the bits are the same. */
function runNative(
  n: NativeAddon,
  e: Engine,
  job: MatMulJob,
  fill: (heap: Float32Array, aIndex: number, bIndex: number) => void,
  threads: number,
  inPlace: InPlace | undefined,
): Float32Array | null {
  const { batch, M, K, N } = job;
  const aoff = job.aOffsets ?? offsetsFor(batch, M * K);
  const boff = job.bOffsets ?? offsetsFor(batch, K * N);
  const fma = e.variant === "fma" && e.fused ? 1 : 0;
  const ta = job.transposeA ? 1 : 0;
  const tb = job.transposeB ? 1 : 0;
  nativeCalls++;
  if (inPlace && inPlaceEnabled) {
    const c = inPlace.output();
    const f = floatView(inPlace.heap.memory);
    n.gemm(f, inPlace.a / 4, f, inPlace.b / 4, f, c / 4, aoff, boff, batch, M, K, N, ta, tb, fma, threads);
    inPlaceCalls++;
    return null;
  }
  const { place } = sharedLayout(e, job, 4, []);
  fill(e.f32, place.A / 4, place.B / 4);
  n.gemm(e.f32, place.A / 4, e.f32, place.B / 4, e.f32, place.C / 4, aoff, boff, batch, M, K, N, ta, tb, fma, threads);
  return e.f32.subarray(place.C / 4, place.C / 4 + batch * M * N);
}

/**
 * Runs one batched product. `fill(heap, aIndex, bIndex)` must copy A into heap from float index
 * aIndex and B from bIndex. Returns a view of C [batch, M, N] in the wasm memory, valid until the
 * next call. `threads` defaults to matmulThreads(). With `inPlace`, the result normally goes to
 * `inPlace.output()` and the call returns null: it runs in that heap, on every thread (no copies);
 * with in-place calls switched off (setMatmulInPlace), an unshared heap, or no room in that heap for
 * the scratch, it copies through `fill` as without it.
 */
export function runMatMul(
  job: MatMulJob,
  fill: (heap: Float32Array, aIndex: number, bIndex: number) => void,
  threads = matmulThreads(),
  inPlace?: InPlace,
): Float32Array | null {
  const e = mustLoad("matMul");
  const { batch, M, K, N } = job;
  const cLength = batch * M * N;
  const threaded = threads > 1 && 2 * cLength * K >= MIN_THREADED_FLOPS;
  const n = nativeEnabled ? nativeAddon() : null;
  if (n) return runNative(n, e, job, fill, threaded ? threads : 1, inPlace);
  // threads: the caller plus the workers that are up
  const workers = threaded ? takeWorkers(pool(e), threads, alone) : [];
  const T = 1 + workers.length;
  let chunkRows = Math.min(pad4(M), 128);
  // With threads: ~16 chunks per thread, at least 8 rows each, so that the caller's wait for the
  // workers' last chunk stays short (paired 2-thread runs at 256^3: +2-10 % over 4 chunks per thread).
  if (T > 1) chunkRows = Math.min(chunkRows, Math.max(8, pad4(Math.ceil((batch * M) / (16 * T)))));
  const ex = inPlaceExports(e, inPlace);
  if (ex && runInHeap(e, ex, inPlace!, job, chunkRows, workers)) return null;

  const { place, scratch } = sharedLayout(e, job, chunkRows, workers);
  fill(e.f32, place.A / 4, place.B / 4);
  writeJob(e.i32, e.job, place, job, chunkRows, scratch);
  runJob(e, e.ex, e.job, workers);
  return e.f32.subarray(place.C / 4, place.C / 4 + cLength);
}

/** strikes above which the run-alone pause stops doubling: 2^5 = 32 calls */
export const MAX_STRIKES = 5;

/**
 * The run-alone policy after a threaded call in which the caller worked `ownMs` and then waited
 * `waitedMs` for the workers. A wait over half its own time (+0.05 ms) means a worker was
 * descheduled (the cores busy with other processes, or the host's other tenants): add a strike and
 * run the next 2^strikes calls alone. Strikes stop at MAX_STRIKES, so that a passing hiccup costs
 * at most 32 single-threaded calls, while steady contention still costs at most one stalled call
 * in 33; each call without a stall removes one strike.
 */
export function afterThreadedCall(
  state: { strikes: number; backoff: number },
  ownMs: number,
  waitedMs: number,
): { strikes: number; backoff: number; stalled: boolean } {
  if (waitedMs > 0.5 * ownMs + 0.05) {
    const strikes = Math.min(state.strikes + 1, MAX_STRIKES);
    return { strikes, backoff: 2 ** strikes, stalled: true };
  }
  return { strikes: Math.max(0, state.strikes - 1), backoff: state.backoff, stalled: false };
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
  /** threads (default matmulThreads()) */
  threads?: number;
}

/** C [batch, M, N] = op(A) [M, K] x op(B) [K, N] for each batch item. */
export function matMul(
  a: Float32Array,
  b: Float32Array,
  M: number,
  K: number,
  N: number,
  opts: MatMulOptions = {},
): Float32Array {
  mustLoad("matMul");
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
  const c = runMatMul(
    {
      batch,
      M,
      K,
      N,
      transposeA: !!opts.transposeA,
      transposeB: !!opts.transposeB,
      aLength: a.length,
      bLength: b.length,
      bOffsets: opts.broadcastB ? new Int32Array(batch) : undefined,
    },
    (heap, ai, bi) => {
      heap.set(a, ai);
      heap.set(b, bi);
    },
    opts.threads ?? matmulThreads(),
  );
  out.set(c!);
  return out;
}
