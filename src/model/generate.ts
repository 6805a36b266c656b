// Sampling from the organism: `fast` (the WebAssembly SIMD fused decode step, fastDecoder.ts) or
// `stock` (the plain-JS host decoder, decode.ts). Both compute the same function and draw the same
// random numbers in the same order (tested token for token). `auto` takes `fast` where
// fastDecoder.wasm loads and says so. selectKernels() sets the decoder and our tfjs kernels
// (src/kernels/select.ts) together, once at a command's start, after the tfjs backend is set.
import type { Rng } from "../engine/rng.js";
import { checkKernelsName, selectFastKernels } from "../kernels/select.js";
import { reward } from "../reward/verifier.js";
import type { CharTokenizer } from "../text/tokenizer.js";
import { promptText } from "../world/corpus.js";
import { generate, type GenerateOptions, type HostWeights } from "./decode.js";
import { FastKVDecoder, generateFast } from "./fastDecoder.js";

export { KERNELS, type KernelsName } from "../kernels/select.js";

let active: "fast" | "stock" = FastKVDecoder.available() ? "fast" : "stock";

/** Chooses the decoder and the tfjs kernels; returns a line saying which and why
 * (`matmul`: the backend our kernels are installed on, or null; `matmulBuild`: the matmul's build —
 * "fma (fused)", "fma (not fused)" or "exact" — or null). */
export function selectKernels(requested: string = "auto"): {
  name: "fast" | "stock";
  message: string;
  matmul: string | null;
  matmulBuild: string | null;
} {
  checkKernelsName(requested);
  if (requested === "stock") active = "stock";
  else if (FastKVDecoder.available()) active = "fast";
  else if (requested === "fast")
    throw new Error(
      `--kernels fast: src/model/fastDecoder.wasm cannot be used (${FastKVDecoder.unavailableReason()}); rebuild it with \`npm run build:kernels\` or pass --kernels stock`,
    );
  else active = "stock";
  const why =
    active === "fast"
      ? "WebAssembly SIMD fused decode step (src/model/fastDecoder.wasm)"
      : requested === "stock"
        ? "plain-JS decoder, as requested"
        : `plain-JS decoder (fast kernels unavailable: ${FastKVDecoder.unavailableReason()})`;
  const ops = selectFastKernels(requested);
  return {
    name: active,
    message: `kernels: ${active} — ${why}; ${ops.message}`,
    matmul: ops.backend,
    matmulBuild: ops.matmulBuild,
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

export interface Scored {
  completion: string;
  reward: 0 | 1;
  format: 0 | 1;
  extracted: string | null;
  length: number;
  /** prompt token ids (without BOS) as the model saw them */
  promptIds: number[];
  /** completion token ids (without EOS) and whether the model ended it with EOS */
  ids: number[];
  finished: boolean;
}

/** Rollouts: completions for (prompt, label) pairs in the organism's prompt form, sampled with the
 * active decoder and scored by the verifier, in chunks to bound memory. */
export function rollout(
  hw: HostWeights,
  tok: CharTokenizer,
  pairs: { prompt: string; answer: string }[],
  opts: { temperature: number; topP: number; maxNewTokens: number },
  rng: Rng | null,
  chunk = 512,
): Scored[] {
  const out: Scored[] = [];
  for (let s = 0; s < pairs.length; s += chunk) {
    const part = pairs.slice(s, s + chunk);
    const prompts = part.map((p) => tok.encode(promptText(p.prompt)));
    const { completions, finished } = sample(hw, prompts, opts, rng);
    completions.forEach((ids, i) => {
      const completion = tok.decode(ids);
      const r = reward(completion, part[i].answer);
      out.push({
        completion,
        reward: r.reward,
        format: r.parts.format,
        extracted: r.extracted,
        length: ids.length,
        promptIds: prompts[i],
        ids,
        finished: finished[i],
      });
    });
  }
  return out;
}
