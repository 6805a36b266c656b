// Sampling from the organism: `fast` (the WebAssembly SIMD fused decode step, fastDecoder.ts) or
// `stock` (the plain-JS host decoder, decode.ts). Both compute the same function and draw the same
// random numbers in the same order (tested token for token). `auto` takes `fast` where
// fastDecoder.wasm loads and says so. selectKernels() sets the decoder and our tfjs kernels
// (src/kernels/select.ts) together, once at a command's start, after the tfjs backend is set.
// `fused` is `fast` plus the training forward/backward as native calls: the organism's (gptFused.ts)
// and the Llama family's (llamaFused.ts).
import type { Rng } from "../engine/rng.js";
import { checkKernelsName, selectFastKernels } from "../kernels/select.js";
import { generate, type GenerateOptions, type HostWeights } from "./decode.js";
import { FastKVDecoder, generateFast } from "./fastDecoder.js";
import { setFusedTraining } from "./gptFused.js";

export { KERNELS, type KernelsName } from "../kernels/select.js";

let active: "fast" | "stock" = FastKVDecoder.available() ? "fast" : "stock";

/** Chooses the decoder and the tfjs kernels; returns a line saying which and why
 * (`matmul`: the backend our kernels are installed on, or null; `matmulBuild`: the matmul's build —
 * "fma (fused)", "fma (not fused)" or "exact" — or null; `fused`: the organism trains through the
 * native forward/backward). `fused` throws, naming the reason and the fix, where the addon cannot serve. */
export function selectKernels(requested: string = "auto"): {
  name: "fast" | "stock";
  message: string;
  matmul: string | null;
  matmulBuild: string | null;
  fused: boolean;
} {
  checkKernelsName(requested);
  setFusedTraining(requested === "fused");
  if (requested === "stock") active = "stock";
  else if (FastKVDecoder.available()) active = "fast";
  else if (requested === "fast" || requested === "fused")
    throw new Error(
      `--kernels ${requested}: src/model/fastDecoder.wasm cannot be used (${FastKVDecoder.unavailableReason()}); rebuild it with \`npm run build:kernels\` or pass --kernels stock`,
    );
  else active = "stock";
  const why =
    active === "fast"
      ? "the organism decodes with the WebAssembly SIMD fused decode step (src/model/fastDecoder.wasm)"
      : requested === "stock"
        ? "the organism decodes with the plain-JS decoder, as requested"
        : `the organism decodes with the plain-JS decoder (fast kernels unavailable: ${FastKVDecoder.unavailableReason()})`;
  const ops = selectFastKernels(requested);
  const fused = requested === "fused";
  const training = fused
    ? "; the training forward/backward of the organism and of the Llama family: one native call each (src/native/gpt.c, llama.c; build/rlvr_native.node)"
    : "";
  return {
    name: active,
    message: `kernels: ${fused ? "fused" : active} — ${why}; ${ops.message}${training}`,
    matmul: ops.backend,
    matmulBuild: ops.matmulBuild,
    fused,
  };
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
