// The WebAssembly SIMD matmul (matmul.ts) as the tfjs `BatchMatMul` kernel of the `wasm` and `cpu`
// backends, so that tf.matMul — forward and backward, since BatchMatMul's gradient is itself
// BatchMatMuls — runs on it; and our GELU op (`RlvrGelu`, with its gradient `RlvrGeluGrad`), which
// src/model/gpt.ts uses while these kernels are installed. The stock kernel config is kept and
// restored by uninstallFastMatmul(), which also removes the GELU kernels.
// On the wasm backend three more kernels are replaced (values unchanged, bit for bit): `Sum` over
// leading axes (the bias gradients: column sums) runs in matmul.wasm without tfjs-wasm's transpose,
// with the same float32 additions in the same order; and two data-movement kernels:
// `Identity` shares the tensor's data (reference-counted, as the cpu backend and tfjs-wasm's own
// Reshape do) instead of copying it — tfjs clones every tensor it saves for a gradient, ~150 MB of
// copies per GRPO step — and `SplitV` copies each part's contiguous runs straight out of the heap
// instead of tfjs-wasm's Slice, which first copies the whole input out (readSync) and then the part
// 16 floats at a time (~6-9 ms per attention split of a GRPO batch).
// Our ops (src/model/gpt.ts) dispatch only BatchMatMul (checked with tf.profile); `_FusedMatMul`
// (tf.fused.matMul, used by tfjs-layers) is left stock.
// Inputs are read where the backend keeps them (cpu: backend.data values; wasm: the tfjs-wasm heap)
// and copied into the matmul memory; the result is copied into a new output tensor. On the wasm
// backend, once its heap is shared (src/kernels/wasmHeap.ts, done by src/engine/backend.ts), every
// call instead runs in place in that heap on all threads (matmul.ts, matmul-heap*.wasm): no copies.
// float32 only:
// other dtypes, empty outputs and calls too large for the 2 GiB kernel memory go to the stock kernel.
// Batch dimensions broadcast as in NumPy (tfjs's stock kernels agree where their own indexing,
// bi % batch, is right: equal batch shapes or one side without batch).
import * as tf from "@tensorflow/tfjs";
import {
  type HostHeap,
  type InPlace,
  matmulAvailable,
  matmulThreads,
  MatMulTooLarge,
  matmulVariant,
  runColSum,
  runGelu,
  runMatMul,
} from "./matmul.js";
import { wasmHeapStatus } from "./wasmHeap.js";

const KERNEL = "BatchMatMul";
/** Our GELU op (tanh approximation) and its input gradient, registered with the fast matmul. */
export const GELU = "RlvrGelu";
export const GELU_GRAD = "RlvrGeluGrad";
export const FAST_MATMUL_BACKENDS = ["wasm", "cpu"] as const;

interface TensorInfo {
  dataId: object;
  shape: number[];
  dtype: string;
}

type KernelFunc = (args: {
  inputs: Record<string, TensorInfo>;
  backend: unknown;
  attrs?: Record<string, unknown>;
}) => TensorInfo | TensorInfo[];

/** stock kernel configs of the backends we replaced */
const stock = new Map<string, tf.KernelConfig>();
/** the other stock kernels replaced on a backend (wasm: Identity, SplitV, Sum), restored on uninstall */
const stockOthers = new Map<string, tf.KernelConfig[]>();

/** Where a float32 tensor's values are: a view of them, valid until the backend allocates again. */
type Reader = (t: TensorInfo) => Float32Array;
type Writer = (shape: number[], c: Float32Array) => TensorInfo;

/** Where a kernel can run in place (matmul.ts InPlace): x and y are its inputs, `result()` the
 * output tensor once `output()` has allocated it; undefined on the cpu backend. */
type Place = (
  x: TensorInfo,
  y: TensorInfo | undefined,
  shape: number[],
) => (InPlace & { result(): TensorInfo }) | undefined;

const hostHeaps = new WeakMap<object, HostHeap | null>();

/** The tfjs-wasm backend's heap (its exported memory and malloc/free), or null if not reachable. */
function hostHeap(backend: any): HostHeap | null {
  let h = hostHeaps.get(backend);
  if (h === undefined) {
    const memory = backend.wasm?.asm?.memory;
    const ok =
      memory instanceof WebAssembly.Memory &&
      memory.buffer === backend.wasm.HEAPU8?.buffer &&
      typeof backend.wasm._malloc === "function" &&
      typeof backend.wasm._free === "function";
    // (`>>> 0`: malloc returns a signed i32, negative for addresses above 2 GiB, as tfjs-wasm notes)
    h = ok
      ? { memory, malloc: (n: number) => backend.wasm._malloc(n) >>> 0, free: (p: number) => backend.wasm._free(p) }
      : null;
    hostHeaps.set(backend, h);
  }
  return h;
}

function io(backendName: string, backend: any): { read: Reader; write: Writer; place: Place } {
  if (backendName === "cpu") {
    return {
      read: (t) => backend.data.get(t.dataId).values as Float32Array,
      write: (shape, c) => backend.makeTensorInfo(shape, "float32", c.slice()),
      place: () => undefined,
    };
  }
  // wasm: tensors live in the tfjs-wasm heap at dataIdMap(dataId).memoryOffset
  const offset = (t: TensorInfo): number => backend.dataIdMap.get(t.dataId).memoryOffset;
  return {
    read: (t) => new Float32Array(backend.wasm.HEAPU8.buffer, offset(t), sizeOf(t.shape)),
    write: (shape, c) => {
      const out = backend.makeOutput(shape, "float32");
      new Float32Array(backend.wasm.HEAPU8.buffer, offset(out), c.length).set(c);
      return out;
    },
    place: (x, y, shape) => {
      const heap = hostHeap(backend);
      if (!heap) return undefined;
      let out: TensorInfo | undefined;
      return {
        heap,
        a: offset(x),
        b: y ? offset(y) : 0,
        output: () => {
          out = backend.makeOutput(shape, "float32");
          return offset(out!);
        },
        result: () => out!,
      };
    },
  };
}

const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Offsets (in floats) of each output batch item's A and B, with NumPy broadcasting of the batch dims. */
export function batchOffsets(
  outer: number[],
  aOuter: number[],
  bOuter: number[],
  aItem: number,
  bItem: number,
): { aOffsets: Int32Array; bOffsets: Int32Array } {
  const batch = sizeOf(outer);
  const aBatch = sizeOf(aOuter);
  const bBatch = sizeOf(bOuter);
  const aOffsets = new Int32Array(batch);
  const bOffsets = new Int32Array(batch);
  if (aBatch === batch && bBatch === batch) {
    for (let i = 0; i < batch; i++) {
      aOffsets[i] = i * aItem;
      bOffsets[i] = i * bItem;
    }
    return { aOffsets, bOffsets };
  }
  // strides (in items) of each operand over the output's batch dims; 0 where broadcast
  const strides = (dims: number[]): number[] => {
    const s = new Array(outer.length).fill(0);
    let acc = 1;
    for (let d = dims.length - 1; d >= 0; d--) {
      const od = outer.length - dims.length + d;
      s[od] = dims[d] === 1 ? 0 : acc;
      acc *= dims[d];
    }
    return s;
  };
  const sa = strides(aOuter);
  const sb = strides(bOuter);
  const idx = new Array(outer.length).fill(0);
  for (let i = 0; i < batch; i++) {
    let ia = 0;
    let ib = 0;
    for (let d = 0; d < outer.length; d++) {
      ia += idx[d] * sa[d];
      ib += idx[d] * sb[d];
    }
    aOffsets[i] = ia * aItem;
    bOffsets[i] = ib * bItem;
    for (let d = outer.length - 1; d >= 0; d--) {
      if (++idx[d] < outer[d]) break;
      idx[d] = 0;
    }
  }
  return { aOffsets, bOffsets };
}

function makeKernel(backendName: string, fallback: KernelFunc): KernelFunc {
  return (args) => {
    const { a, b } = args.inputs;
    const ta = !!args.attrs?.transposeA;
    const tb = !!args.attrs?.transposeB;
    if (a.dtype !== "float32" || b.dtype !== "float32" || a.shape.length < 2 || b.shape.length < 2)
      return fallback(args);
    const ra = a.shape.length;
    const rb = b.shape.length;
    const M = ta ? a.shape[ra - 1] : a.shape[ra - 2];
    const K = ta ? a.shape[ra - 2] : a.shape[ra - 1];
    const Kb = tb ? b.shape[rb - 1] : b.shape[rb - 2];
    const N = tb ? b.shape[rb - 2] : b.shape[rb - 1];
    if (K !== Kb) {
      throw new Error(
        `Error in matMul: inner shapes (${K}) and (${Kb}) of Tensors with shapes ${a.shape} and ${b.shape} and transposeA=${ta} and transposeB=${tb} must match.`,
      );
    }
    const aOuter = a.shape.slice(0, -2);
    const bOuter = b.shape.slice(0, -2);
    const outer = tf.broadcast_util.assertAndGetBroadcastShape(aOuter, bOuter);
    const batch = sizeOf(outer);
    if (batch * M * N === 0) return fallback(args); // (K = 0 is ours: zeros; stock wasm leaves garbage)
    const { read, write, place } = io(backendName, args.backend);
    const { aOffsets, bOffsets } = batchOffsets(outer, aOuter, bOuter, M * K, K * N);
    const shape = [...outer, M, N];
    const inPlace = place(a, b, shape);
    let c: Float32Array | null;
    try {
      c = runMatMul(
        {
          batch,
          M,
          K,
          N,
          transposeA: ta,
          transposeB: tb,
          aLength: sizeOf(a.shape),
          bLength: sizeOf(b.shape),
          aOffsets,
          bOffsets,
        },
        (heap, ai, bi) => {
          heap.set(read(a), ai);
          heap.set(read(b), bi);
        },
        matmulThreads(),
        inPlace,
      );
    } catch (e) {
      if (e instanceof MatMulTooLarge) return fallback(args);
      throw e;
    }
    return c ? write(shape, c) : inPlace!.result();
  };
}

/** out = gelu(x), or (backward) dy * gelu'(x), via matmul.wasm; float32 only. */
function geluKernel(backendName: string, backward: boolean): KernelFunc {
  return (args) => {
    const { x, dy } = args.inputs;
    if (x.dtype !== "float32" || (backward && dy.dtype !== "float32"))
      throw new Error(`${backward ? GELU_GRAD : GELU}: float32 inputs only, got ${x.dtype}`);
    const { read, write, place } = io(backendName, args.backend);
    const inPlace = place(x, backward ? dy : undefined, x.shape);
    const out = runGelu(
      sizeOf(x.shape),
      backward,
      (heap, xi, di) => {
        heap.set(read(x), xi);
        if (backward) heap.set(read(dy), di);
      },
      inPlace,
    );
    return out ? write(x.shape, out) : inPlace!.result();
  };
}

/** Identity that shares x's data (the backend counts references; tfjs tensors are never written in
 * place), as tfjs's cpu backend does; strings go to the stock kernel. */
function identityKernel(fallback: KernelFunc): KernelFunc {
  return (args) => {
    const { x } = args.inputs;
    if (x.dtype === "string") return fallback(args);
    (args.backend as { incRef(dataId: object): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
}

/** SplitV on the wasm backend for 4-byte dtypes: for each part and each index of the axes before
 * `axis`, one contiguous run copied from heap to heap (bytes unchanged). Others go to the stock kernel. */
function splitVKernel(fallback: KernelFunc): KernelFunc {
  return (args) => {
    const { x } = args.inputs;
    if (x.dtype !== "float32" && x.dtype !== "int32") return fallback(args);
    const axis = tf.util.parseAxisParam(args.attrs!.axis as number, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(
      x as unknown as tf.Tensor,
      args.attrs!.numOrSizeSplits as number | number[],
      axis,
    );
    const outer = sizeOf(x.shape.slice(0, axis));
    const inner = sizeOf(x.shape.slice(axis + 1));
    const row = x.shape[axis] * inner;
    const backend = args.backend as { makeOutput(shape: number[], dtype: string): TensorInfo };
    const outs = sizes.map((s) =>
      backend.makeOutput(
        x.shape.map((d, i) => (i === axis ? s : d)),
        x.dtype,
      ),
    );
    // views taken after every allocation (an allocation may grow the heap and replace HEAPU8); a
    // Float32Array view of int32 data is fine: set() between arrays of one type copies the bytes
    const view = io("wasm", args.backend).read;
    const src = view(x);
    let begin = 0;
    sizes.forEach((s, j) => {
      const dst = view(outs[j]);
      const part = s * inner;
      for (let o = 0; o < outer; o++)
        dst.set(src.subarray(o * row + begin * inner, o * row + begin * inner + part), o * part);
      begin += s;
    });
    return outs;
  };
}

/** Sum of a float32 tensor over a leading run of its axes (axis 0 of a [rows, cols] gradient: a bias
 * gradient) as column sums in matmul.wasm; anything else goes to the stock kernel. */
function sumKernel(backendName: string, fallback: KernelFunc): KernelFunc {
  return (args) => {
    const { x } = args.inputs;
    if (x.dtype !== "float32" || x.shape.length < 2) return fallback(args);
    // axes 0..p-1 in that order (stock sums the reduced axes in the order given, the last fastest)
    const axes = tf.util.parseAxisParam(args.attrs!.axis as number | number[], x.shape);
    if (axes.length === 0 || axes.length >= x.shape.length || axes.some((a, i) => a !== i)) return fallback(args);
    const R = sizeOf(x.shape.slice(0, axes.length));
    const C = sizeOf(x.shape.slice(axes.length));
    if (C === 0) return fallback(args); // (R = 0 is ours: zeros; stock wasm leaves garbage)
    const shape = args.attrs!.keepDims ? x.shape.map((d, i) => (i < axes.length ? 1 : d)) : x.shape.slice(axes.length);
    const { read, write, place } = io(backendName, args.backend);
    const inPlace = place(x, undefined, shape);
    const out = runColSum(R, C, (heap, xi) => heap.set(read(x), xi), inPlace);
    return out ? write(shape, out) : inPlace!.result();
  };
}

let geluGradient = false;
function registerGeluGradient(): void {
  if (geluGradient) return;
  geluGradient = true;
  tf.registerGradient({
    kernelName: GELU,
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => ({
      x: () => tf.engine().runKernel(GELU_GRAD, { x: saved[0], dy: dy as tf.Tensor }) as tf.Tensor,
    }),
  });
}

/**
 * Registers the fast BatchMatMul for `backendName` (default: the active backend), keeping the stock
 * kernel. Returns false (changing nothing) for other backends (e.g. tensorflow, which has its own),
 * when the backend's package is not loaded, or when matmul.wasm is unavailable.
 */
export function installFastMatmul(backendName: string = tf.getBackend()): boolean {
  if (!(FAST_MATMUL_BACKENDS as readonly string[]).includes(backendName)) return false;
  if (stock.has(backendName)) return true;
  if (!matmulAvailable()) return false;
  const config = tf.getKernel(KERNEL, backendName);
  if (!config) return false;
  stock.set(backendName, config);
  tf.unregisterKernel(KERNEL, backendName);
  tf.registerKernel({
    kernelName: KERNEL,
    backendName,
    kernelFunc: makeKernel(backendName, config.kernelFunc as unknown as KernelFunc) as unknown as tf.KernelFunc,
  });
  registerGeluGradient();
  for (const [name, backward] of [
    [GELU, false],
    [GELU_GRAD, true],
  ] as const) {
    tf.registerKernel({
      kernelName: name,
      backendName,
      kernelFunc: geluKernel(backendName, backward) as unknown as tf.KernelFunc,
    });
  }
  if (backendName === "wasm") {
    const replaced: tf.KernelConfig[] = [];
    const kernels: [string, (fallback: KernelFunc) => KernelFunc][] = [
      ["Identity", identityKernel],
      ["SplitV", splitVKernel],
      ["Sum", (f) => sumKernel(backendName, f)],
    ];
    for (const [name, make] of kernels) {
      const cfg = tf.getKernel(name, backendName);
      if (!cfg) continue;
      replaced.push(cfg);
      tf.unregisterKernel(name, backendName);
      tf.registerKernel({
        kernelName: name,
        backendName,
        kernelFunc: make(cfg.kernelFunc as unknown as KernelFunc) as unknown as tf.KernelFunc,
      });
    }
    stockOthers.set(backendName, replaced);
  }
  return true;
}

/** Restores the stock BatchMatMul of every backend where the fast one is installed. */
export function uninstallFastMatmul(): void {
  for (const [backendName, config] of stock) {
    tf.unregisterKernel(KERNEL, backendName);
    tf.registerKernel(config);
    tf.unregisterKernel(GELU, backendName);
    tf.unregisterKernel(GELU_GRAD, backendName);
    for (const cfg of stockOthers.get(backendName) ?? []) {
      tf.unregisterKernel(cfg.kernelName, backendName);
      tf.registerKernel(cfg);
    }
  }
  stock.clear();
  stockOthers.clear();
}

/** Whether the fast kernels (BatchMatMul, GELU) serve the active backend now: the model then uses
 * transposed matmuls freely and our GELU op (src/model/gpt.ts). */
export function fastKernelsActive(): boolean {
  return stock.has(tf.getBackend());
}

/** Backends where the fast BatchMatMul is installed now. */
export function fastMatmulBackends(): string[] {
  return [...stock.keys()];
}

/** One line for logs: where the fast matmul runs and on how many threads. */
export function describeFastMatmul(): string {
  const b = fastMatmulBackends();
  if (b.length === 0) return "matmul: stock tfjs kernels";
  const threads = `${matmulThreads()} thread${matmulThreads() === 1 ? "" : "s"}`;
  let where = "";
  if (b.includes("wasm") && tf.getBackend() === "wasm") {
    const heap = hostHeap(tf.backend());
    where =
      heap && heap.memory.buffer instanceof SharedArrayBuffer
        ? ", in place in the tfjs-wasm heap"
        : `, copying operands (the tfjs-wasm heap is not shared: ${wasmHeapStatus() ?? "the backend started before shareTfjsWasmHeap()"})`;
  }
  const v = matmulVariant();
  const build =
    v?.variant === "fma"
      ? `fma build (relaxed-SIMD multiply-add, ${v.fused ? "fused on this CPU" : "not fused on this CPU"}; RLVR_MATMUL=exact for the exact one)`
      : "exact build (product rounded before the add)";
  return `matmul: WebAssembly SIMD BatchMatMul (src/kernels/matmul${v?.variant === "fma" ? "-fma" : ""}.wasm, ${build}) on the ${b.join(", ")} backend, ${threads}${where}`;
}
