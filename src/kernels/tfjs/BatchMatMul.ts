// tfjs's BatchMatMul on the wasm and cpu backends as our WebAssembly SIMD matmul (matmul.ts), so that
// tf.matMul forward and backward (its gradient is BatchMatMuls too) runs on it. Batch dimensions
// broadcast as in NumPy (tfjs's stock kernels agree where their own indexing, bi % batch, is right:
// equal batch shapes or one side without batch). Inputs are read where the backend keeps them and
// copied into the matmul memory, or, on wasm with its heap shared (src/engine/wasmHeap.ts), the
// call runs in place in that heap on all threads. float32 only: other dtypes, empty outputs and
// calls too large for the 2 GiB kernel memory go to the stock kernel.
import * as tf from "@tensorflow/tfjs";
import { matmulThreads, MatMulTooLarge, runMatMul } from "../matmul.js";
import { type FastKernel, io, type KernelFunc, sizeOf } from "./io.js";

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

function batchMatMul(backendName: string, fallback: KernelFunc): KernelFunc {
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

export const batchMatMulKernel: FastKernel = {
  kernelName: "BatchMatMul",
  backends: ["wasm", "cpu"],
  make: (backendName, stock) => batchMatMul(backendName, stock!),
};
