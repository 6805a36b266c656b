// Which of our tfjs kernels serve training (src/kernels/tfjs/): `fast` (and `auto`, where
// matmul.wasm loads) installs them on the active backend (wasm or cpu), `stock` restores tfjs's own.
// `fused` installs them as `fast` does; on top, the organism's training forward/backward runs as one
// native call each (model/gptFused.ts, chosen by model/generate.ts's selectKernels).
// Call it after the tfjs backend is set (src/engine/backend.ts).
import * as tf from "@tensorflow/tfjs";
import { matmulAvailable, matmulUnavailableReason, matmulVariant } from "./matmul.js";
import {
  describeFastKernels,
  FAST_KERNEL_BACKENDS,
  installFastKernels,
  uninstallFastKernels,
} from "./tfjs/register.js";

export const KERNELS = ["auto", "fast", "stock", "fused"] as const;
export type KernelsName = (typeof KERNELS)[number];

export function checkKernelsName(requested: string): asserts requested is KernelsName {
  if (!(KERNELS as readonly string[]).includes(requested))
    throw new Error(`--kernels: unknown value ${JSON.stringify(requested)}; use one of ${KERNELS.join(", ")}`);
}

/** Installs (or removes) our tfjs kernels; returns the backend they serve (null: none), a line for
 * logs, and the matmul build — "fma (fused)", "fma (not fused)" or "exact" — or null. */
export function selectFastKernels(requested: string): {
  backend: string | null;
  message: string;
  matmulBuild: string | null;
} {
  checkKernelsName(requested);
  const mm = install(requested === "fused" ? "fast" : requested);
  const v = mm.backend ? matmulVariant() : null;
  const matmulBuild = v ? (v.variant === "fma" ? `fma (${v.fused ? "fused" : "not fused"})` : "exact") : null;
  return { ...mm, matmulBuild };
}

function install(requested: string): { backend: string | null; message: string } {
  uninstallFastKernels();
  if (requested === "stock") return { backend: null, message: "matmul: stock tfjs kernels, as requested" };
  const backend = tf.getBackend();
  if (!(FAST_KERNEL_BACKENDS as readonly string[]).includes(backend)) {
    return {
      backend: null,
      message: `matmul: stock tfjs kernels (the ${backend} backend has its own; the fast matmul is for ${FAST_KERNEL_BACKENDS.join(" and ")})`,
    };
  }
  if (!matmulAvailable()) {
    if (requested === "fast")
      throw new Error(
        `--kernels fast: src/kernels/matmul.wasm cannot be used (${matmulUnavailableReason()}); rebuild it with \`npm run build:kernels\` or pass --kernels stock`,
      );
    return {
      backend: null,
      message: `matmul: stock tfjs kernels (matmul.wasm unavailable: ${matmulUnavailableReason()})`,
    };
  }
  if (!installFastKernels(backend))
    return { backend: null, message: `matmul: stock tfjs kernels (no BatchMatMul kernel registered for ${backend})` };
  return { backend, message: describeFastKernels() };
}
