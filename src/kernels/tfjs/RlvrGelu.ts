// Our GELU op (tanh approximation, kernels/gelu.ts) and its input gradient as two tfjs kernels,
// `RlvrGelu` and `RlvrGeluGrad`, on the wasm and cpu backends; src/model/gpt.ts uses them while the
// fast kernels are installed (fastKernelsActive()).
import * as tf from "@tensorflow/tfjs";
import { runGelu } from "../gelu.js";
import { type FastKernel, io, type KernelFunc, sizeOf } from "./io.js";

export const GELU = "RlvrGelu";
export const GELU_GRAD = "RlvrGeluGrad";

/** out = gelu(x), or (backward) dy * gelu'(x), via matmul.wasm; float32 only. */
function gelu(backendName: string, backward: boolean): KernelFunc {
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

let geluGradient = false;
export function registerGeluGradient(): void {
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

export const geluKernel: FastKernel = {
  kernelName: GELU,
  backends: ["wasm", "cpu"],
  make: (backendName) => {
    registerGeluGradient();
    return gelu(backendName, false);
  },
};

export const geluGradKernel: FastKernel = {
  kernelName: GELU_GRAD,
  backends: ["wasm", "cpu"],
  make: (backendName) => gelu(backendName, true),
};
