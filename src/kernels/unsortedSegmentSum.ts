// UnsortedSegmentSum — out[s] = Σ x[i] over the rows i with segmentIds[i] = s — as a tfjs kernel.
// It is the gradient of tf.gather (a scatter-add of the output gradient into the gathered rows),
// which makes an embedding lookup trainable: the tfjs-wasm backend has no such kernel (the gradient
// of a gather fails there), and the cpu backend's loops over every segment with a full-size mask
// (O(segments × rows × width): hours for a 150k-token vocabulary). This one makes one pass over the
// rows, reading and writing the backend's own memory (the wasm heap, or the cpu backend's arrays).
// Ids outside [0, numSegments) are dropped, as in TensorFlow. Rows are added in index order in
// float64 and rounded once: the values of tfjs's cpu kernel, bit for bit, on every backend and run.
import * as tf from "@tensorflow/tfjs";

export const UNSORTED_SEGMENT_SUM = "UnsortedSegmentSum";

interface TensorInfo {
  dataId: object;
  shape: number[];
  dtype: string;
}

type Args = { inputs: Record<string, TensorInfo>; backend: any; attrs?: Record<string, unknown> };

const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** The segment sums of x [rows, ...inner] (values) by ids [rows] into out [numSegments, ...inner]:
 * each segment's rows added in index order in float64 and rounded once (as tfjs's cpu Sum does);
 * segments no row maps to are zero. */
export function segmentSum(
  x: Float32Array | Int32Array,
  ids: Int32Array,
  inner: number,
  numSegments: number,
  out: Float32Array | Int32Array,
): void {
  out.fill(0);
  // rows grouped by segment, in index order within a segment (a stable sort of the row indices)
  const rows = Array.from({ length: ids.length }, (_, i) => i).filter((i) => ids[i] >= 0 && ids[i] < numSegments);
  rows.sort((a, b) => ids[a] - ids[b] || a - b);
  const acc = new Float64Array(inner);
  for (let r = 0; r < rows.length;) {
    const s = ids[rows[r]];
    acc.fill(0);
    for (; r < rows.length && ids[rows[r]] === s; r++) {
      const src = rows[r] * inner;
      for (let j = 0; j < inner; j++) acc[j] += x[src + j];
    }
    out.set(acc, s * inner);
  }
}

function checkArgs(x: TensorInfo, segmentIds: TensorInfo, numSegments: number): number[] {
  if (segmentIds.shape.length !== 1 || segmentIds.shape[0] !== x.shape[0])
    throw new Error(
      `${UNSORTED_SEGMENT_SUM}: segmentIds must be 1-D with x.shape[0] = ${x.shape[0]} entries, got shape [${segmentIds.shape}]`,
    );
  if (!Number.isInteger(numSegments) || numSegments < 0)
    throw new Error(`${UNSORTED_SEGMENT_SUM}: numSegments must be a non-negative integer, got ${numSegments}`);
  return [numSegments, ...x.shape.slice(1)];
}

function view(dtype: string, buffer: ArrayBufferLike, byteOffset: number, length: number): Float32Array | Int32Array {
  return dtype === "int32" ? new Int32Array(buffer, byteOffset, length) : new Float32Array(buffer, byteOffset, length);
}

/** The kernel function for the wasm backend: x and segmentIds read in its heap, the output written there. */
function wasmKernel({ inputs, backend, attrs }: Args): TensorInfo {
  const { x, segmentIds } = inputs;
  const numSegments = attrs!.numSegments as number;
  const shape = checkArgs(x, segmentIds, numSegments);
  if (x.dtype !== "float32" && x.dtype !== "int32")
    throw new Error(`${UNSORTED_SEGMENT_SUM}: float32 or int32 values only, got ${x.dtype}`);
  const out: TensorInfo = backend.makeOutput(shape, x.dtype);
  // views taken after the allocation: it may grow the heap and replace the buffer
  const heap: ArrayBufferLike = backend.wasm.HEAPU8.buffer;
  const at = (t: TensorInfo) => backend.dataIdMap.get(t.dataId).memoryOffset as number;
  segmentSum(
    view(x.dtype, heap, at(x), sizeOf(x.shape)),
    new Int32Array(heap, at(segmentIds), segmentIds.shape[0]),
    sizeOf(x.shape.slice(1)),
    numSegments,
    view(x.dtype, heap, at(out), sizeOf(shape)),
  );
  return out;
}

/** The kernel function for the cpu backend: its arrays read in place, a new array for the output. */
function cpuKernel({ inputs, backend, attrs }: Args): TensorInfo {
  const { x, segmentIds } = inputs;
  const numSegments = attrs!.numSegments as number;
  const shape = checkArgs(x, segmentIds, numSegments);
  if (x.dtype !== "float32" && x.dtype !== "int32")
    throw new Error(`${UNSORTED_SEGMENT_SUM}: float32 or int32 values only, got ${x.dtype}`);
  const values = backend.data.get(x.dataId).values as Float32Array | Int32Array;
  const ids = backend.data.get(segmentIds.dataId).values as Int32Array;
  const out = x.dtype === "int32" ? new Int32Array(sizeOf(shape)) : new Float32Array(sizeOf(shape));
  segmentSum(values, ids, sizeOf(x.shape.slice(1)), numSegments, out);
  return backend.makeTensorInfo(shape, x.dtype, out);
}

export const unsortedSegmentSumWasmConfig: tf.KernelConfig = {
  kernelName: UNSORTED_SEGMENT_SUM,
  backendName: "wasm",
  kernelFunc: wasmKernel as unknown as tf.KernelFunc,
};

export const unsortedSegmentSumCpuConfig: tf.KernelConfig = {
  kernelName: UNSORTED_SEGMENT_SUM,
  backendName: "cpu",
  kernelFunc: cpuKernel as unknown as tf.KernelFunc,
};

/** the cpu backend's own kernel, kept while ours replaces it */
let stockCpu: tf.KernelConfig | null = null;

/**
 * Registers the kernel for the wasm backend (which has none) and, unless `cpu` is false, for the cpu
 * backend in place of its own (restored by unregisterUnsortedSegmentSum). Idempotent.
 */
export function registerUnsortedSegmentSum(opts: { cpu?: boolean } = {}): void {
  if (tf.getKernel(UNSORTED_SEGMENT_SUM, "wasm")?.kernelFunc !== unsortedSegmentSumWasmConfig.kernelFunc) {
    if (tf.getKernel(UNSORTED_SEGMENT_SUM, "wasm")) tf.unregisterKernel(UNSORTED_SEGMENT_SUM, "wasm");
    tf.registerKernel(unsortedSegmentSumWasmConfig);
  }
  if (opts.cpu === false) return;
  const cur = tf.getKernel(UNSORTED_SEGMENT_SUM, "cpu");
  if (cur?.kernelFunc === unsortedSegmentSumCpuConfig.kernelFunc) return;
  if (cur) {
    stockCpu = cur;
    tf.unregisterKernel(UNSORTED_SEGMENT_SUM, "cpu");
  }
  tf.registerKernel(unsortedSegmentSumCpuConfig);
}

/** Removes our kernels: the wasm backend has none again, the cpu backend gets its own back. */
export function unregisterUnsortedSegmentSum(): void {
  if (tf.getKernel(UNSORTED_SEGMENT_SUM, "wasm")?.kernelFunc === unsortedSegmentSumWasmConfig.kernelFunc)
    tf.unregisterKernel(UNSORTED_SEGMENT_SUM, "wasm");
  if (tf.getKernel(UNSORTED_SEGMENT_SUM, "cpu")?.kernelFunc === unsortedSegmentSumCpuConfig.kernelFunc) {
    tf.unregisterKernel(UNSORTED_SEGMENT_SUM, "cpu");
    if (stockCpu) tf.registerKernel(stockCpu);
    stockCpu = null;
  }
}
