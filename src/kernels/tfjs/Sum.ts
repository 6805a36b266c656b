// tfjs's Sum over leading axes on wasm (bias gradients) as column sums (kernels/colSum.ts), without
// tfjs-wasm's transpose: the same float32 additions in the same order, so the same bits.
import * as tf from "@tensorflow/tfjs";
import { runColSum } from "../colSum.js";
import { type FastKernel, io, type KernelFunc, sizeOf } from "./io.js";

/** Sum of a float32 tensor over a leading run of its axes (axis 0 of a [rows, cols] gradient: a bias
 * gradient) as column sums in matmul.wasm; anything else goes to the stock kernel. */
function sum(backendName: string, fallback: KernelFunc): KernelFunc {
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

export const sumKernel: FastKernel = {
  kernelName: "Sum",
  backends: ["wasm"],
  make: (backendName, stock) => sum(backendName, stock!),
};
