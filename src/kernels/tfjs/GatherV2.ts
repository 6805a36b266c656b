// tfjs's GatherV2 on wasm for whole rows (axis 0, no batch dims, 4-byte dtypes): one heap-to-heap copy
// per index, instead of tfjs-wasm's element-by-element gather (the Llama head gathers slices of its
// output matrix several times per micro-batch; docs/performance.md has the measured cost). Bytes
// unchanged. An index outside [0, rows) goes to the stock kernel, as does everything else.
import * as tf from "@tensorflow/tfjs";
import { type FastKernel, io, type KernelFunc, sizeOf, type TensorInfo } from "./io.js";

function gatherRows(fallback: KernelFunc): KernelFunc {
  return (args) => {
    const { x, indices } = args.inputs;
    const axis = tf.util.parseAxisParam(args.attrs!.axis as number, x.shape)[0];
    const batchDims = (args.attrs!.batchDims as number | undefined) ?? 0;
    if (axis !== 0 || batchDims !== 0 || x.shape.length < 1 || indices.dtype !== "int32") return fallback(args);
    if ((x.dtype !== "float32" && x.dtype !== "int32") || sizeOf(indices.shape) === 0 || sizeOf(x.shape) === 0)
      return fallback(args);
    const rows = x.shape[0];
    const inner = sizeOf(x.shape.slice(1));
    const n = sizeOf(indices.shape);
    const view = io("wasm", args.backend).read;
    const idx = new Int32Array(view(indices).buffer, view(indices).byteOffset, n).slice();
    for (let i = 0; i < n; i++) if (idx[i] < 0 || idx[i] >= rows) return fallback(args);
    const backend = args.backend as { makeOutput(shape: number[], dtype: string): TensorInfo };
    const out = backend.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
    // views after the allocation (it may grow the heap); set() between Float32Arrays copies bytes, so
    // int32 data read through a Float32Array view is copied unchanged
    const src = view(x);
    const dst = view(out);
    for (let i = 0; i < n; i++) dst.set(src.subarray(idx[i] * inner, (idx[i] + 1) * inner), i * inner);
    return out;
  };
}

export const gatherV2Kernel: FastKernel = {
  kernelName: "GatherV2",
  backends: ["wasm"],
  make: (_backendName, stock) => gatherRows(stock!),
};
