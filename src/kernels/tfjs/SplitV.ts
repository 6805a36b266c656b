// tfjs's SplitV on wasm copying each part's contiguous runs straight out of the heap, instead of
// tfjs-wasm's Slice, which first copies the whole input out (readSync) and then the part 16 floats at
// a time. Bytes unchanged.
import * as tf from "@tensorflow/tfjs";
import { type FastKernel, io, type KernelFunc, sizeOf, type TensorInfo } from "./io.js";

/** SplitV on the wasm backend for 4-byte dtypes: for each part and each index of the axes before
 * `axis`, one contiguous run copied from heap to heap (bytes unchanged). Others go to the stock kernel. */
function splitV(fallback: KernelFunc): KernelFunc {
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

export const splitVKernel: FastKernel = {
  kernelName: "SplitV",
  backends: ["wasm"],
  make: (_backendName, stock) => splitV(stock!),
};
