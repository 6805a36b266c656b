// The model-family seam: what the runner, GRPO, evaluation and steering need from a causal language
// model, whatever its architecture. The organism (`gpt`, gpt.ts) and the Llama-style decoders
// (`llama`, `qwen2`, `qwen3`, llama.ts) implement it. Token ids in, log-probabilities out: tokenizers
// and prompts live beside the model (src/text/), not inside it.
import type * as tf from "@tensorflow/tfjs";
import type { Rng } from "../engine/rng.js";
import type { WeightDType } from "./safetensors.js";

export type { WeightDType } from "./safetensors.js";

export interface GenerateOptions {
  /** 0 = greedy (argmax, lowest id on ties) */
  temperature: number;
  /** nucleus sampling mass in (0, 1]; 1 = off */
  topP: number;
  maxNewTokens: number;
  /** a sequence ends when it samples one of these (the token is kept as its last completion token) */
  stopIds: number[];
}

/** Checks block indices for activations(); the error lists the valid ones. */
export function checkActivationLayers(family: string, numLayers: number, layers: readonly number[]): void {
  const bad = layers.filter((l) => !Number.isInteger(l) || l < 0 || l >= numLayers);
  if (bad.length > 0)
    throw new Error(
      `${family} activations: block ${bad.join(", ")} is out of range; this model has ${numLayers} blocks, valid: ${Array.from({ length: numLayers }, (_, i) => i).join(", ")}`,
    );
}

export interface CausalLM {
  readonly family: string; // "gpt" | "llama" | "qwen2" | "qwen3"
  /** trainable, named exactly as the checkpoint's tensors */
  readonly params: Record<string, tf.Variable>;
  readonly vocabSize: number;
  /** max_position_embeddings: prompt + completion never exceed it */
  readonly contextLength: number;
  /** blocks (decoder layers), numbered 0 … numLayers − 1 */
  readonly numLayers: number;
  /** width of the residual stream */
  readonly hiddenSize: number;
  /** weight-decay group: false for biases and norm weights (as Hugging Face's Trainer and TRL), true otherwise */
  decayed(name: string): boolean;
  /** log p(targets[b,t] | inputs[b,<=t]) from logits / temperature, and the entropy of that
   * distribution, [B, T]. Right-padded batches: position t sees inputs[b, 0..t] only. */
  tokenLogProbs(
    inputs: tf.Tensor2D,
    targets: tf.Tensor2D,
    opts: { temperature: number; entropy: boolean },
  ): { logp: tf.Tensor2D; entropy: tf.Tensor2D | null };
  /** Teacher-forced forward of inputs [B, T] for reading, not training (no gradient is taken): the
   * residual stream after each block in `layers` ([B*T, C] each, row b*T + t, in the order given;
   * after the block's MLP residual add and the residual addition, if one is set at that block) and,
   * with `logits`, the next-token logits [B*T, V]. Right-padded batches: row b*T + t sees
   * inputs[b, 0..t] only. The caller disposes the tensors. */
  activations(
    inputs: tf.Tensor2D,
    opts: { layers: readonly number[]; logits?: boolean },
  ): { residuals: tf.Tensor2D[]; logits: tf.Tensor2D | null };
  /** batched KV-cache sampling; temperature 0 = greedy; stops a sequence at any of stopIds (finished
   * = true, the stop token included in its completion) or after maxNewTokens or at the context end */
  generate(
    prompts: number[][],
    opts: GenerateOptions,
    rng: Rng | null,
  ): { completions: number[][]; finished: boolean[] };
  /** residual-stream hook for steering: add vector (length hidden) * scale after block `layer` at every
   * position, in tokenLogProbs, activations and generate; null removes it */
  setResidualAddition(a: { layer: number; vector: Float32Array; scale: number } | null): void;
  save(dir: string, opts?: { dtype?: WeightDType }): void;
  dispose(): void;
}
