// Installs our kernels into tfjs the tfjs-wasm way: one FastKernel per file in this folder, one list,
// installed and uninstalled in a loop (the stock configs are kept and restored). BatchMatMul comes
// first: where it cannot be installed (matmul.wasm unavailable, a backend with its own, such as
// tensorflow) nothing is. Our ops dispatch only BatchMatMul among the matmuls (checked with
// tf.profile); `_FusedMatMul` (tf.fused.matMul, used by tfjs-layers) is left stock.
import * as tf from "@tensorflow/tfjs";
import { wasmHeapStatus } from "../../engine/wasmHeap.js";
import { matmulAvailable, matmulNative, matmulThreads, matmulVariant } from "../matmul.js";
import { batchMatMulKernel } from "./BatchMatMul.js";
import { gatherV2Kernel } from "./GatherV2.js";
import { identityKernel } from "./Identity.js";
import { hostHeap, type FastKernel, type KernelFunc } from "./io.js";
import { geluGradKernel, geluKernel } from "./RlvrGelu.js";
import { splitVKernel } from "./SplitV.js";
import { sumKernel } from "./Sum.js";

export const FAST_KERNELS: readonly FastKernel[] = [
  batchMatMulKernel,
  gatherV2Kernel,
  geluKernel,
  geluGradKernel,
  identityKernel,
  splitVKernel,
  sumKernel,
];
export const FAST_KERNEL_BACKENDS = ["wasm", "cpu"] as const;

/** per backend: what each installed kernel replaced (null: our own op, nothing to restore) */
const installed = new Map<string, { kernelName: string; stock: tf.KernelConfig | null }[]>();

/**
 * Installs every kernel of FAST_KERNELS that serves `backendName` (default: the active backend).
 * Returns false, changing nothing, for other backends, when the backend's package is not loaded, or
 * when matmul.wasm is unavailable.
 */
export function installFastKernels(backendName: string = tf.getBackend()): boolean {
  if (!(FAST_KERNEL_BACKENDS as readonly string[]).includes(backendName)) return false;
  if (installed.has(backendName)) return true;
  if (!matmulAvailable() || !tf.getKernel(batchMatMulKernel.kernelName, backendName)) return false;
  const done: { kernelName: string; stock: tf.KernelConfig | null }[] = [];
  for (const k of FAST_KERNELS) {
    if (!k.backends.includes(backendName)) continue;
    const stock = tf.getKernel(k.kernelName, backendName) ?? null;
    if (stock) tf.unregisterKernel(k.kernelName, backendName);
    tf.registerKernel({
      kernelName: k.kernelName,
      backendName,
      kernelFunc: k.make(
        backendName,
        stock?.kernelFunc as unknown as KernelFunc | undefined,
      ) as unknown as tf.KernelFunc,
    });
    done.push({ kernelName: k.kernelName, stock });
  }
  installed.set(backendName, done);
  return true;
}

/** Restores the stock kernels (and removes our own ops) on every backend where ours are installed. */
export function uninstallFastKernels(): void {
  for (const [backendName, done] of installed) {
    for (const { kernelName, stock } of done) {
      tf.unregisterKernel(kernelName, backendName);
      if (stock) tf.registerKernel(stock);
    }
  }
  installed.clear();
}

/** Whether our kernels serve the active backend now: the model then uses transposed matmuls freely
 * and our GELU op (src/model/gpt.ts). */
export function fastKernelsActive(): boolean {
  return installed.has(tf.getBackend());
}

/** Backends where our kernels are installed now. */
export function fastKernelBackends(): string[] {
  return [...installed.keys()];
}

/** One line for logs: where the fast matmul runs and on how many threads. */
export function describeFastKernels(): string {
  const b = fastKernelBackends();
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
  const wasm = `src/kernels/matmul${v?.variant === "fma" ? "-fma" : ""}.wasm, ${build}`;
  const nat = matmulNative();
  const kernel =
    nat.isa !== null
      ? `native ${nat.isa === "avx512" ? "AVX-512" : "AVX2"} BatchMatMul (build/rlvr_native.node; the same bits as ${wasm}; RLVR_NATIVE=0 for the WebAssembly one)`
      : `WebAssembly SIMD BatchMatMul (${wasm}; native addon unavailable: ${nat.reason})`;
  return `matmul: ${kernel} on the ${b.join(", ")} backend, ${threads}${where}`;
}
