// Random Llama-family checkpoints in the Hugging Face layout, for tests and benchmarks (no real
// weights are needed to measure speed, memory or numerical agreement): config.json objects shaped
// like real models (presets) and seeded weights written tensor by tensor, never all in memory.
import fs from "node:fs";
import path from "node:path";
import { makeRng } from "../engine/rng.js";
import { CONFIG_FILE, GENERATION_CONFIG_FILE, saveHfTensors, TORCH_DTYPE, writeJsonAtomic } from "./hfCheckpoint.js";
import { llamaParamShapes, parseLlamaConfig } from "./llama.js";
import type { WeightDType } from "./safetensors.js";

/** config.json of the shapes of real checkpoints (their sizes, not their weights). */
export const HF_PRESETS: Record<string, Record<string, unknown>> = {
  // HuggingFaceTB/SmolLM2-135M(-Instruct)
  "smollm2-135m": {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: 49152,
    hidden_size: 576,
    intermediate_size: 1536,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    max_position_embeddings: 8192,
    rms_norm_eps: 1e-5,
    rope_theta: 100000,
    rope_scaling: null,
    tie_word_embeddings: true,
    hidden_act: "silu",
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: "bfloat16",
  },
  // Qwen/Qwen2.5-0.5B(-Instruct)
  "qwen2.5-0.5b": {
    architectures: ["Qwen2ForCausalLM"],
    model_type: "qwen2",
    vocab_size: 151936,
    hidden_size: 896,
    intermediate_size: 4864,
    num_hidden_layers: 24,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    max_position_embeddings: 32768,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    sliding_window: 32768,
    max_window_layers: 21,
    use_sliding_window: false,
    tie_word_embeddings: true,
    hidden_act: "silu",
    bos_token_id: 151643,
    eos_token_id: 151645,
    torch_dtype: "bfloat16",
  },
  // Qwen/Qwen3-0.6B
  "qwen3-0.6b": {
    architectures: ["Qwen3ForCausalLM"],
    model_type: "qwen3",
    vocab_size: 151936,
    hidden_size: 1024,
    intermediate_size: 3072,
    num_hidden_layers: 28,
    num_attention_heads: 16,
    num_key_value_heads: 8,
    head_dim: 128,
    max_position_embeddings: 40960,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    rope_scaling: null,
    attention_bias: false,
    use_sliding_window: false,
    tie_word_embeddings: true,
    hidden_act: "silu",
    bos_token_id: 151643,
    eos_token_id: 151645,
    torch_dtype: "bfloat16",
  },
  // meta-llama/Llama-3.2-1B
  "llama-3.2-1b": {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    vocab_size: 128256,
    hidden_size: 2048,
    intermediate_size: 8192,
    num_hidden_layers: 16,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 64,
    max_position_embeddings: 131072,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    rope_scaling: {
      factor: 32,
      high_freq_factor: 4,
      low_freq_factor: 1,
      original_max_position_embeddings: 8192,
      rope_type: "llama3",
    },
    tie_word_embeddings: true,
    hidden_act: "silu",
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: 128000,
    eos_token_id: 128001,
    torch_dtype: "bfloat16",
  },
};

export interface RandomInit {
  seed: number;
  /** standard deviation of matrices and embeddings (transformers' initializer_range: 0.02) */
  std?: number;
  /** norm weights are 1 + normJitter · N(0, 1) (0: ones, as a fresh model) */
  normJitter?: number;
  /** standard deviation of biases (0: zeros, as a fresh model) */
  biasStd?: number;
}

/** One tensor's seeded values: its own stream per name, so that any subset is reproducible. */
export function randomTensor(name: string, shape: number[], init: RandomInit): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const isNorm = shape.length === 1 && !name.endsWith(".bias");
  const std = isNorm ? (init.normJitter ?? 0) : name.endsWith(".bias") ? (init.biasStd ?? 0) : (init.std ?? 0.02);
  if (isNorm) out.fill(1);
  if (std === 0) return out;
  const rng = makeRng(init.seed, `init/${name}`);
  for (let i = 0; i < n; i += 2) {
    // Box–Muller: two normals per pair of uniforms
    const r = Math.sqrt(-2 * Math.log(Math.max(rng.next(), 1e-300))) * std;
    const a = 2 * Math.PI * rng.next();
    out[i] += r * Math.cos(a);
    if (i + 1 < n) out[i + 1] += r * Math.sin(a);
  }
  return out;
}

/**
 * Writes a random checkpoint: config.json (torch_dtype = dtype), generation_config.json (its
 * eos_token_id) and the weights, generated and written one tensor at a time.
 */
export function writeRandomCheckpoint(
  dir: string,
  config: Record<string, unknown>,
  init: RandomInit,
  opts: { dtype?: WeightDType; maxShardBytes?: number; onTensor?: (name: string) => void } = {},
): void {
  const dtype = opts.dtype ?? "F32";
  const cfg = parseLlamaConfig(config, `${dir}/${CONFIG_FILE}`);
  fs.mkdirSync(dir, { recursive: true });
  saveHfTensors(
    dir,
    llamaParamShapes(cfg).map(([name, shape]) => ({
      name,
      shape,
      data: () => {
        opts.onTensor?.(name);
        return randomTensor(name, shape, init);
      },
    })),
    { dtype, maxShardBytes: opts.maxShardBytes },
  );
  writeJsonAtomic(path.join(dir, CONFIG_FILE), { ...config, torch_dtype: TORCH_DTYPE[dtype] });
  if (config.eos_token_id !== undefined)
    writeJsonAtomic(path.join(dir, GENERATION_CONFIG_FILE), {
      bos_token_id: config.bos_token_id,
      eos_token_id: config.eos_token_id,
    });
}
