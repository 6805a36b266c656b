// tfjs's Identity on wasm sharing the tensor's data (reference-counted, as the cpu backend and
// tfjs-wasm's own Reshape do) instead of copying it: tfjs clones every tensor it saves for a gradient.
import { type FastKernel, type KernelFunc } from "./io.js";

/** Identity that shares x's data (the backend counts references; tfjs tensors are never written in
 * place), as tfjs's cpu backend does; strings go to the stock kernel. */
function identity(fallback: KernelFunc): KernelFunc {
  return (args) => {
    const { x } = args.inputs;
    if (x.dtype === "string") return fallback(args);
    (args.backend as { incRef(dataId: object): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
}

export const identityKernel: FastKernel = {
  kernelName: "Identity",
  backends: ["wasm"],
  make: (_backendName, stock) => identity(stock!),
};
