// Which decoder runs the sampling: `fast` (the WebAssembly SIMD fused decode step in
// src/kernels/, ~20–30× faster) or `stock` (the plain-JS host decoder in decode.ts). Both compute
// the same function and draw the same random numbers in the same order (tested token for token).
// `auto` takes `fast` where decode.wasm loads and says so; set once at a command's start.
import type { Rng } from "../engine/rng.js";
import { FastKVDecoder, generateFast } from "../kernels/fastDecoder.js";
import { generate, type GenerateOptions, type HostWeights } from "./decode.js";

export const KERNELS = ["auto", "fast", "stock"] as const;
export type KernelsName = (typeof KERNELS)[number];

let active: "fast" | "stock" = FastKVDecoder.available() ? "fast" : "stock";

/** Chooses the decoder; returns a line saying which and why. */
export function selectKernels(requested: string = "auto"): { name: "fast" | "stock"; message: string } {
  if (!(KERNELS as readonly string[]).includes(requested)) throw new Error(`--kernels: unknown value ${JSON.stringify(requested)}; use one of ${KERNELS.join(", ")}`);
  if (requested === "stock") active = "stock";
  else if (FastKVDecoder.available()) active = "fast";
  else if (requested === "fast") throw new Error(`--kernels fast: src/kernels/decode.wasm cannot be used (${FastKVDecoder.unavailableReason()}); rebuild it with \`npm run build:kernels\` or pass --kernels stock`);
  else active = "stock";
  const why = active === "fast" ? "WebAssembly SIMD fused decode step (src/kernels/decode.wasm)" : requested === "stock" ? "plain-JS decoder, as requested" : `plain-JS decoder (fast kernels unavailable: ${FastKVDecoder.unavailableReason()})`;
  return { name: active, message: `kernels: ${active} — ${why}` };
}

export function activeKernels(): "fast" | "stock" {
  return active;
}

/** generate() with the active decoder. */
export function sample(hw: HostWeights, prompts: number[][], opts: GenerateOptions, rng: Rng | null): { completions: number[][]; finished: boolean[] } {
  return active === "fast" ? generateFast(hw, prompts, opts, rng) : generate(hw, prompts, opts, rng);
}
