// One GRPO step on a single example, as in 1-shot RLVR: the example is duplicated into `copies`
// groups of `rollouts` samples; each sample is scored by the verifier; advantages are computed
// within each group; the policy takes `updatesPerBatch` AdamW steps on the clipped surrogate with
// a k3 KL to the frozen reference and an entropy bonus. Rollouts run on the host decoder.
import * as tf from "@tensorflow/tfjs";
import type { Rng } from "../engine/rng.js";
import { hostWeights } from "../model/decode.js";
import { rollout } from "../model/generate.js";
import { tokenLogProbs, type ModelConfig, type Params } from "../model/gpt.js";
import { AdamW, NumericalFault } from "../model/optim.js";
import { BOS_ID, EOS_ID, PAD_ID, type CharTokenizer } from "../text/tokenizer.js";
import { groupAdvantages, groupsWithSignal, type StdMode } from "./advantages.js";
import { grpoLossTf, type LossConfig } from "./loss.js";
import { rewardOf, type RewardMode } from "./reward.js";

/** The temperature of the distribution whose log-probs, KL and entropy the loss takes: the rollouts'
 * (as the paper's verl and TRL do), or a fixed number (1 = the raw logits). */
export function logprobTemperature(cfg: Pick<GrpoConfig, "temperature" | "loss">): number {
  const t = cfg.loss.logprobTemperature;
  return t === "rollout" ? cfg.temperature : t;
}

export interface GrpoConfig {
  copies: number;
  rollouts: number;
  temperature: number;
  topP: number;
  maxNewTokens: number;
  learningRate: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  gradClip: number;
  updatesPerBatch: number;
  reward: RewardMode;
  advantage: { std: StdMode; eps: number };
  loss: LossConfig & { logprobTemperature: "rollout" | number };
}

export interface StepStats {
  /** share of rollouts with the right answer (whatever the reward) */
  trainAccuracy: number;
  /** mean of the reward the update used */
  meanReward: number;
  trainFormatRate: number;
  loss: number;
  pgLoss: number;
  kl: number;
  entropy: number;
  clipFrac: number;
  gradNorm: number;
  responseLength: number;
  groupsWithSignal: number;
  /** every rollout's completion text, in rollout order (behaviour shares are computed from them by the caller) */
  completions: string[];
  rolloutSeconds: number;
  updateSeconds: number;
  /** a few rollouts of this step, for logs */
  examples: { completion: string; reward: number }[];
}

export interface Example {
  prompt: string;
  answer: string;
}

/** Pads sequences into inputs/targets with a mask over the response tokens (and the EOS, if any).
 * prompts[i] are the prompt ids of sequence i (without BOS). */
export function responseBatch(
  prompts: number[][],
  completions: number[][],
  finished: boolean[],
): { inputs: number[][]; targets: number[][]; mask: number[][] } {
  const seqs = completions.map((c, i) => [BOS_ID, ...prompts[i], ...c, ...(finished[i] ? [EOS_ID] : [])]);
  const T = Math.max(...seqs.map((s) => s.length)) - 1;
  const inputs: number[][] = [];
  const targets: number[][] = [];
  const mask: number[][] = [];
  seqs.forEach((s, i) => {
    const start = prompts[i].length + 1;
    const inp = new Array(T).fill(PAD_ID);
    const tgt = new Array(T).fill(PAD_ID);
    const m = new Array(T).fill(0);
    for (let t = 0; t < s.length - 1; t++) {
      inp[t] = s[t];
      tgt[t] = s[t + 1];
      if (t + 1 >= start) m[t] = 1;
    }
    inputs.push(inp);
    targets.push(tgt);
    mask.push(m);
  });
  return { inputs, targets, mask };
}

export class GrpoTrainer {
  readonly optimizer: AdamW;
  private readonly names: Map<string, string>;

  constructor(
    readonly policy: Params,
    readonly reference: Params,
    readonly model: ModelConfig,
    readonly tok: CharTokenizer,
    readonly cfg: GrpoConfig,
    readonly example: Example | null,
  ) {
    this.optimizer = new AdamW(policy, {
      beta1: cfg.beta1,
      beta2: cfg.beta2,
      eps: 1e-8,
      weightDecay: cfg.weightDecay,
      gradClip: cfg.gradClip,
    });
    this.names = new Map(Object.entries(policy).map(([k, v]) => [v.name, k]));
  }

  /** One step on the single example: `copies` groups of `rollouts` samples. */
  step(rng: Rng): StepStats {
    if (!this.example) throw new Error("GrpoTrainer.step: no single example; use stepOn(groups)");
    return this.stepOn(
      Array.from({ length: this.cfg.copies }, () => this.example!),
      rng,
    );
  }

  /** One step on the given groups (one prompt each, `rollouts` samples per group). */
  stepOn(groups: Example[], rng: Rng): StepStats & { groupRewards: number[] } {
    const { cfg, model, tok } = this;
    const t0 = performance.now();
    const n = groups.length * cfg.rollouts;
    const pairs = groups.flatMap((g) => Array.from({ length: cfg.rollouts }, () => g));
    const hw = hostWeights(this.policy, model);
    const scored = rollout(
      hw,
      tok,
      pairs,
      { temperature: cfg.temperature, topP: cfg.topP, maxNewTokens: cfg.maxNewTokens },
      rng,
      n,
    );
    const rewards = scored.map((s) => rewardOf({ format: s.format, answer: s.reward }, cfg.reward) as number);
    const adv = groupAdvantages(rewards, cfg.rollouts, cfg.advantage.std, cfg.advantage.eps);
    const batch = responseBatch(
      scored.map((s) => s.promptIds),
      scored.map((s) => s.ids),
      scored.map((s) => s.finished),
    );
    const t1 = performance.now();

    const inputs = tf.tensor2d(batch.inputs, undefined, "int32");
    const targets = tf.tensor2d(batch.targets, undefined, "int32");
    const mask = tf.tensor2d(batch.mask, undefined, "float32");
    const advT = tf.tensor1d(adv, "float32");
    // With one update per batch the policy has not moved when the loss is taken, so the old
    // log-probabilities are the graph's own logp, bit for bit: they are copied from it (off the tape)
    // instead of taking a forward pass of their own.
    const lpT = logprobTemperature(cfg);
    const oldLogp =
      cfg.updatesPerBatch > 1
        ? tf.tidy(() => tokenLogProbs(this.policy, model, inputs, targets, false, lpT).logp)
        : null;
    const refLogp = tf.tidy(() => tokenLogProbs(this.reference, model, inputs, targets, false, lpT).logp);
    let last = { loss: 0, pg: 0, kl: 0, entropy: 0, clipFrac: 0, gradNorm: 0 };
    for (let u = 0; u < cfg.updatesPerBatch; u++) {
      let parts: tf.Scalar[] = [];
      const { value, grads } = tf.variableGrads(() => {
        const { logp, entropy } = tokenLogProbs(this.policy, model, inputs, targets, true, lpT);
        const old = oldLogp ?? tf.tensor2d(logp.dataSync(), logp.shape);
        const r = grpoLossTf({ logp, oldLogp: old, refLogp, entropy: entropy!, adv: advT, mask }, cfg.loss);
        parts = [r.pg, r.kl, r.entropy, r.clipFrac].map((t) => tf.keep(t));
        return r.loss;
      });
      const named: Record<string, tf.Tensor> = {};
      for (const [vn, g] of Object.entries(grads)) named[this.names.get(vn)!] = g;
      const lossValue = value.dataSync()[0];
      const [pg, kl, ent, clipFrac] = parts.map((t) => t.dataSync()[0]);
      if (!Number.isFinite(lossValue)) {
        tf.dispose([
          value,
          ...parts,
          ...Object.values(grads),
          inputs,
          targets,
          mask,
          advT,
          refLogp,
          ...(oldLogp ? [oldLogp] : []),
        ]);
        throw new NumericalFault(`loss is ${lossValue}; the update was not applied`);
      }
      let gradNorm: number;
      try {
        gradNorm = this.optimizer.apply(named, cfg.learningRate);
      } finally {
        tf.dispose([value, ...parts, ...Object.values(grads)]);
      }
      last = { loss: lossValue, pg, kl, entropy: ent, clipFrac, gradNorm };
    }
    tf.dispose([inputs, targets, mask, advT, refLogp, ...(oldLogp ? [oldLogp] : [])]);
    const t2 = performance.now();
    return {
      trainAccuracy: scored.reduce((a, s) => a + s.reward, 0) / n,
      meanReward: rewards.reduce((a, b) => a + b, 0) / n,
      trainFormatRate: scored.filter((s) => s.format === 1).length / n,
      loss: last.loss,
      pgLoss: last.pg,
      kl: last.kl,
      entropy: last.entropy,
      clipFrac: last.clipFrac,
      gradNorm: last.gradNorm,
      responseLength: scored.reduce((a, s) => a + s.length, 0) / n,
      groupsWithSignal: groupsWithSignal(rewards, cfg.rollouts),
      completions: scored.map((s) => s.completion),
      rolloutSeconds: (t1 - t0) / 1000,
      updateSeconds: (t2 - t1) / 1000,
      examples: scored.slice(0, 4).map((s) => ({ completion: s.completion, reward: s.reward })),
      groupRewards: groups.map(
        (_, g) => rewards.slice(g * cfg.rollouts, (g + 1) * cfg.rollouts).reduce((a, b) => a + b, 0) / cfg.rollouts,
      ),
    };
  }
}

export { NumericalFault };
