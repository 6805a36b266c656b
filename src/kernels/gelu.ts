// GELU (tanh approximation, src/kernels/gelu.c) forward and backward over a run of floats, in the
// matmul module (same memory, threads and in-place heap as the matmul: see matmul.ts). The tfjs op
// that uses it is tfjs/RlvrGelu.ts.
import {
  align,
  alone,
  ensureMemory,
  type InPlace,
  inPlaceExports,
  J,
  matmulThreads,
  mustLoad,
  pool,
  runJob,
} from "./matmul.js";
import { takeWorkers } from "./threads.js";

/** GELUs of at least this many floats run on every thread, in chunks of GELU_CHUNK floats */
const MIN_THREADED_GELU = 65536;
const GELU_CHUNK = 16384;

/** Writes a GELU job (run_job kind 1 / 2) over n floats at byte `job`. */
function writeGeluJob(
  i32: Int32Array,
  job: number,
  x: number,
  dy: number,
  out: number,
  n: number,
  backward: boolean,
): void {
  const j = job / 4;
  i32[j + J.A] = x;
  i32[j + J.B] = dy;
  i32[j + J.C] = out;
  i32[j + J.M] = n;
  i32[j + J.chunkRows] = GELU_CHUNK;
  i32[j + J.nchunks] = Math.ceil(n / GELU_CHUNK);
  i32[j + J.kind] = backward ? 2 : 1;
  Atomics.store(i32, j + J.next, 0);
}

/**
 * GELU (tanh approximation; src/kernels/vmath.h) over n floats: out = gelu(x), or out = dy *
 * gelu'(x) when `backward`; from MIN_THREADED_GELU floats on `threads` threads (default
 * matmulThreads()), in chunks (the same bits as on one). `fill(heap, xIndex, dyIndex)` copies x (and
 * dy) in. Returns a view of out in the wasm memory, valid until the next call — or, with `inPlace`
 * (x at `inPlace.a`, dy at `inPlace.b`), computes straight into `inPlace.output()` and returns null.
 */
export function runGelu(
  n: number,
  backward: boolean,
  fill: (heap: Float32Array, xIndex: number, dyIndex: number) => void,
  inPlace?: InPlace,
  threads = matmulThreads(),
): Float32Array | null {
  const e = mustLoad("gelu");
  const bw = backward ? 1 : 0;
  const workers = threads > 1 && n >= MIN_THREADED_GELU ? takeWorkers(pool(e), threads, alone) : [];
  const ex = inPlaceExports(e, inPlace);
  if (ex) {
    const out = inPlace!.output();
    const raw = workers.length > 0 ? inPlace!.heap.malloc(ex.job_size() + 64) : 0;
    if (!raw) {
      ex.gelu(bw, inPlace!.a, inPlace!.b, out, n);
      return null;
    }
    try {
      const job = align(raw);
      writeGeluJob(new Int32Array(inPlace!.heap.memory.buffer), job, inPlace!.a, inPlace!.b, out, n, backward);
      runJob(e, ex, job, workers, inPlace!.heap.memory);
    } finally {
      inPlace!.heap.free(raw);
    }
    return null;
  }
  const px = e.dyn;
  const pdy = align(px + 4 * n);
  const pout = align(pdy + 4 * (backward ? n : 0));
  ensureMemory(e, align(pout + 4 * n));
  fill(e.f32, px / 4, pdy / 4);
  if (workers.length > 0) {
    writeGeluJob(e.i32, e.job, px, pdy, pout, n, backward);
    runJob(e, e.ex, e.job, workers);
  } else {
    e.ex.gelu(bw, px, pdy, pout, n);
  }
  return e.f32.subarray(pout / 4, pout / 4 + n);
}
