// The organism's GPT (gpt.ts) behind the model-family seam (family.ts). Prompts given to generate()
// are the model's whole input prefix, BOS included (as every family's are); the organism's decoders
// prepend BOS themselves, so it is taken off here. Sampling runs on the active decoder (generate.ts:
// the fused WebAssembly step or the plain-JS one), with the same random draws as calling it directly.
import * as tf from "@tensorflow/tfjs";
import type { Rng } from "../engine/rng.js";
import { BOS_ID, EOS_ID } from "../text/tokenizer.js";
import { loadCheckpoint, saveCheckpoint } from "./checkpoint.js";
import { hostWeights, withResidualAddition, type HostWeights } from "./decode.js";
import { checkActivationLayers, type CausalLM, type GenerateOptions, type WeightDType } from "./family.js";
import { sample } from "./generate.js";
import { disposeParams, forward, tokenLogProbs, type ModelConfig, type Params, type ResidualAddition } from "./gpt.js";
import { fusedTrainingActive, tokenLogProbsFused } from "./gptFused.js";

export class GptLM implements CausalLM {
  readonly family = "gpt";
  private addition: ResidualAddition | null = null;

  constructor(
    readonly params: Params,
    readonly cfg: ModelConfig,
    readonly meta: Record<string, unknown> = {},
  ) {}

  static load(dir: string): GptLM {
    const ck = loadCheckpoint(dir);
    return new GptLM(ck.params, ck.cfg, ck.meta);
  }

  get vocabSize(): number {
    return this.cfg.vocabSize;
  }

  get contextLength(): number {
    return this.cfg.contextLength;
  }

  get numLayers(): number {
    return this.cfg.layers;
  }

  get hiddenSize(): number {
    return this.cfg.width;
  }

  /** biases (`.b`) and LayerNorm gains (`.g`) take no weight decay (the rule of model/optim.ts) */
  decayed(name: string): boolean {
    return !name.endsWith(".b") && !name.endsWith(".g");
  }

  tokenLogProbs(
    inputs: tf.Tensor2D,
    targets: tf.Tensor2D,
    opts: { temperature: number; entropy: boolean },
  ): { logp: tf.Tensor2D; entropy: tf.Tensor2D | null } {
    // `--kernels fused`: the native forward/backward (gptFused.ts), residual addition included
    const f = fusedTrainingActive() ? tokenLogProbsFused : tokenLogProbs;
    const r = f(this.params, this.cfg, inputs, targets, opts.entropy, opts.temperature, this.addition);
    return { logp: r.logp, entropy: r.entropy ?? null };
  }

  /** the training forward (forward() with its `residuals` hook), read without a gradient */
  activations(
    inputs: tf.Tensor2D,
    opts: { layers: readonly number[]; logits?: boolean },
  ): { residuals: tf.Tensor2D[]; logits: tf.Tensor2D | null } {
    checkActivationLayers(this.family, this.cfg.layers, opts.layers);
    const out = tf.tidy(() => {
      const residuals: tf.Tensor2D[] = [];
      const logits = forward(this.params, this.cfg, inputs, { addition: this.addition, residuals });
      return [...opts.layers.map((l) => residuals[l]), ...(opts.logits ? [logits] : [])];
    });
    return { residuals: out.slice(0, opts.layers.length), logits: opts.logits ? out[opts.layers.length] : null };
  }

  generate(
    prompts: number[][],
    opts: GenerateOptions,
    rng: Rng | null,
  ): { completions: number[][]; finished: boolean[] } {
    return generateWith(withResidualAddition(hostWeights(this.params, this.cfg), this.addition), prompts, opts, rng);
  }

  /** scale 0 (or null) is no addition at all */
  setResidualAddition(a: ResidualAddition | null): void {
    this.addition = a && a.scale !== 0 ? a : null;
  }

  save(dir: string, opts: { dtype?: WeightDType } = {}): void {
    if (opts.dtype && opts.dtype !== "F32") throw new Error(`gpt: checkpoints are F32; got dtype ${opts.dtype}`);
    saveCheckpoint(dir, this.params, this.cfg, this.meta);
  }

  dispose(): void {
    disposeParams(this.params);
  }
}

/** Generation from host weights already read back (with any residual addition they carry), for
 * evaluations that reuse one copy of the weights. Generation only: tokenLogProbs refuses. */
export function hostLM(hw: HostWeights): CausalLM {
  const refuse = (what: string) => () => {
    throw new Error(`hostLM: ${what}; load the checkpoint as a GptLM for that`);
  };
  return {
    family: "gpt",
    params: {},
    vocabSize: hw.cfg.vocabSize,
    contextLength: hw.cfg.contextLength,
    numLayers: hw.cfg.layers,
    hiddenSize: hw.cfg.width,
    decayed: () => false,
    tokenLogProbs: refuse("generation only"),
    activations: refuse("generation only"),
    generate: (prompts, opts, rng) => generateWith(hw, prompts, opts, rng),
    setResidualAddition: refuse("set the addition on the host weights (withResidualAddition)"),
    save: refuse("nothing to save"),
    dispose: () => {},
  };
}

function generateWith(
  hw: HostWeights,
  prompts: number[][],
  opts: GenerateOptions,
  rng: Rng | null,
): { completions: number[][]; finished: boolean[] } {
  if (opts.stopIds.length !== 1 || opts.stopIds[0] !== EOS_ID)
    throw new Error(`gpt: generation stops at its EOS (${EOS_ID}) only; got stopIds ${JSON.stringify(opts.stopIds)}`);
  const bare = prompts.map((p, i) => {
    if (p[0] !== BOS_ID) throw new Error(`gpt: prompt ${i} must start with BOS (${BOS_ID})`);
    return p.slice(1);
  });
  const { temperature, topP, maxNewTokens } = opts;
  const r = sample(hw, bare, { temperature, topP, maxNewTokens }, rng);
  // the seam's convention: a finished completion ends with its stop token
  return { completions: r.completions.map((c, i) => (r.finished[i] ? [...c, EOS_ID] : c)), finished: r.finished };
}
