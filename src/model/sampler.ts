// Which decoder runs the sampling: `fast` (the WebAssembly SIMD fused decode step in
// src/kernels/, ~20–30× faster) or `stock` (the plain-JS host decoder in decode.ts). Both compute
// the same function and draw the same random numbers in the same order (tested token for token).
// `auto` takes `fast` where decode.wasm loads and says so; set once at a command's start.
// `fast` (and `auto`, where it can) also registers the WebAssembly SIMD matmul as the tfjs
// BatchMatMul kernel of the active backend (wasm or cpu; src/kernels/tfjsKernels.ts), so training
// uses it; `stock` restores tfjs's own. Call it after the tfjs backend is set.
import * as tf from "@tensorflow/tfjs";
import type { Rng } from "../engine/rng.js";
import { FastKVDecoder, generateFast } from "../kernels/fastDecoder.js";
import { matmulAvailable, matmulUnavailableReason, matmulVariant } from "../kernels/matmul.js";
import {
  describeFastMatmul,
  FAST_MATMUL_BACKENDS,
  installFastMatmul,
  uninstallFastMatmul,
} from "../kernels/tfjsKernels.js";
import { generate, type GenerateOptions, type HostWeights } from "./decode.js";

export const KERNELS = ["auto", "fast", "stock"] as const;
export type KernelsName = (typeof KERNELS)[number];

let active: "fast" | "stock" = FastKVDecoder.available() ? "fast" : "stock";

/** Chooses the decoder and the tfjs matmul kernel; returns a line saying which and why
 * (`matmul`: the backend the fast matmul is installed on, or null; `matmulBuild`: its build —
 * "fma (fused)", "fma (not fused)" or "exact" — or null). */
export function selectKernels(requested: string = "auto"): {
  name: "fast" | "stock";
  message: string;
  matmul: string | null;
  matmulBuild: string | null;
} {
  if (!(KERNELS as readonly string[]).includes(requested))
    throw new Error(`--kernels: unknown value ${JSON.stringify(requested)}; use one of ${KERNELS.join(", ")}`);
  if (requested === "stock") active = "stock";
  else if (FastKVDecoder.available()) active = "fast";
  else if (requested === "fast")
    throw new Error(
      `--kernels fast: src/kernels/decode.wasm cannot be used (${FastKVDecoder.unavailableReason()}); rebuild it with \`npm run build:kernels\` or pass --kernels stock`,
    );
  else active = "stock";
  const why =
    active === "fast"
      ? "WebAssembly SIMD fused decode step (src/kernels/decode.wasm)"
      : requested === "stock"
        ? "plain-JS decoder, as requested"
        : `plain-JS decoder (fast kernels unavailable: ${FastKVDecoder.unavailableReason()})`;
  const mm = selectMatmul(requested);
  const v = mm.backend ? matmulVariant() : null;
  const matmulBuild = v ? (v.variant === "fma" ? `fma (${v.fused ? "fused" : "not fused"})` : "exact") : null;
  return { name: active, message: `kernels: ${active} — ${why}; ${mm.message}`, matmul: mm.backend, matmulBuild };
}

function selectMatmul(requested: string): { backend: string | null; message: string } {
  uninstallFastMatmul();
  if (requested === "stock") return { backend: null, message: "matmul: stock tfjs kernels, as requested" };
  const backend = tf.getBackend();
  if (!(FAST_MATMUL_BACKENDS as readonly string[]).includes(backend)) {
    return {
      backend: null,
      message: `matmul: stock tfjs kernels (the ${backend} backend has its own; the fast matmul is for ${FAST_MATMUL_BACKENDS.join(" and ")})`,
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
  if (!installFastMatmul(backend))
    return { backend: null, message: `matmul: stock tfjs kernels (no BatchMatMul kernel registered for ${backend})` };
  return { backend, message: describeFastMatmul() };
}

export function activeKernels(): "fast" | "stock" {
  return active;
}

/** generate() with the active decoder. */
export function sample(
  hw: HostWeights,
  prompts: number[][],
  opts: GenerateOptions,
  rng: Rng | null,
): { completions: number[][]; finished: boolean[] } {
  return active === "fast" ? generateFast(hw, prompts, opts, rng) : generate(hw, prompts, opts, rng);
}
