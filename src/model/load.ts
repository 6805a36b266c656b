// Opens a checkpoint directory as a CausalLM of its family: the organism's own format (config.json
// with "format": "oneshot-rlvr/gpt@1") or the Hugging Face layout (config.json with `model_type`:
// llama, qwen2, qwen3 — llama.ts).
import fs from "node:fs";
import path from "node:path";
import { CHECKPOINT_FORMAT, readCheckpointConfig, saveCheckpoint } from "./checkpoint.js";
import type { CausalLM } from "./family.js";
import { GptLM } from "./gptLM.js";
import { readHfDirectory } from "./hfCheckpoint.js";
import { LlamaModel, parseLlamaConfig } from "./llama.js";

/** Whether `dir` holds an organism checkpoint (as opposed to a Hugging Face one). */
export function isOrganismCheckpoint(dir: string): boolean {
  const file = path.join(dir, "config.json");
  if (!fs.existsSync(file)) return false;
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"))?.format === CHECKPOINT_FORMAT;
  } catch {
    return false;
  }
}

/** A checkpoint's family and sizes, from its config.json alone (no weights read). */
export interface ModelShape {
  family: string;
  numLayers: number;
  hiddenSize: number;
  vocabSize: number;
  contextLength: number;
  /** the parsed model configuration (two checkpoints of one model have equal ones) */
  config: unknown;
}

export function readModelShape(dir: string): ModelShape {
  if (isOrganismCheckpoint(dir)) {
    const { cfg } = readCheckpointConfig(dir);
    return {
      family: "gpt",
      numLayers: cfg.layers,
      hiddenSize: cfg.width,
      vocabSize: cfg.vocabSize,
      contextLength: cfg.contextLength,
      config: cfg,
    };
  }
  const cfg = parseLlamaConfig(readHfDirectory(dir).config, path.join(dir, "config.json"));
  return {
    family: cfg.family,
    numLayers: cfg.numLayers,
    hiddenSize: cfg.hiddenSize,
    vocabSize: cfg.vocabSize,
    contextLength: cfg.maxPositions,
    config: cfg,
  };
}

export function loadModel(dir: string): CausalLM {
  if (isOrganismCheckpoint(dir)) return GptLM.load(dir);
  // a Hugging Face checkpoint: its family from config.json (refused with the supported list otherwise)
  return LlamaModel.load(dir);
}

/** Saves a model in its family's layout; an organism checkpoint also records `meta` in its config.json. */
export function saveModel(lm: CausalLM, dir: string, meta: Record<string, unknown> = {}): void {
  if (lm instanceof GptLM) saveCheckpoint(dir, lm.params, lm.cfg, meta);
  else lm.save(dir);
}

/** Copies the parameters of the checkpoint in `dir` into `lm` (same family and shapes). */
export function loadParamsInto(lm: CausalLM, dir: string): void {
  const saved = loadModel(dir);
  try {
    for (const [k, v] of Object.entries(lm.params)) {
      const src = saved.params[k];
      if (!src) throw new Error(`${dir}: the saved model has no tensor ${k}`);
      v.assign(src);
    }
  } finally {
    saved.dispose();
  }
}

/** The model's configuration as recorded in config.resolved.json. */
export function modelConfigOf(lm: CausalLM): unknown {
  if (lm instanceof GptLM) return lm.cfg;
  if (lm instanceof LlamaModel) return lm.config;
  return { family: lm.family, vocabSize: lm.vocabSize, contextLength: lm.contextLength };
}
