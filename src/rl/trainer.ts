// One GRPO step on a single example, as in 1-shot RLVR: the example is duplicated into `copies`
// groups of `rollouts` samples; each sample is scored by the verifier; advantages are computed
// within each group; the policy takes `updatesPerBatch` AdamW steps on the clipped surrogate with
// a k3 KL to the frozen reference and an entropy bonus. Any model family (model/family.ts) and task
// (task/task.ts: prompt form, tokenizer, verifier).
import * as tf from "@tensorflow/tfjs";
import type { Rng } from "../engine/rng.js";
import type { CausalLM } from "../model/family.js";
import { AdamW, NumericalFault } from "../model/optim.js";
import { rollout } from "../task/rollout.js";
import type { Task } from "../task/task.js";
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
  /** rows per forward/backward pass, gradients accumulated over them (0: the whole batch at once) */
  microBatch: number;
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

/** Pads sequences into inputs/targets with a mask over the response tokens (and the stop token, if
 * any). prefixes[i] is the model's input prefix of sequence i (BOS included where the model has one),
 * completions[i] its completion without the stop token, stops[i] the stop token that ended it or null. */
export function responseBatch(
  prefixes: number[][],
  completions: number[][],
  stops: (number | null)[],
  padId: number,
): { inputs: number[][]; targets: number[][]; mask: number[][] } {
  const seqs = completions.map((c, i) => [...prefixes[i], ...c, ...(stops[i] !== null ? [stops[i]!] : [])]);
  const T = Math.max(...seqs.map((s) => s.length)) - 1;
  const inputs: number[][] = [];
  const targets: number[][] = [];
  const mask: number[][] = [];
  seqs.forEach((s, i) => {
    const start = prefixes[i].length;
    const inp = new Array(T).fill(padId);
    const tgt = new Array(T).fill(padId);
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

/** Row ranges [r0, r1) of micro-batches of at most `size` rows (0: one batch of all n). */
export function microBatches(n: number, size: number): [number, number][] {
  if (!(size > 0) || size >= n) return [[0, n]];
  const out: [number, number][] = [];
  for (let r = 0; r < n; r += size) out.push([r, Math.min(n, r + size)]);
  return out;
}

function tensorsOf(grads: Record<string, tf.Tensor | Float32Array>): tf.Tensor[] {
  return Object.values(grads).filter((g): g is tf.Tensor => !(g instanceof Float32Array));
}

/** Where a step is, for progress lines on large models (a step can take minutes). */
export type StepProgress =
  | { phase: "rollouts"; seconds: number; tokens: number }
  | { phase: "micro-batch"; done: number; of: number; seconds: number };

export class GrpoTrainer {
  readonly optimizer: AdamW;
  /** called after the rollouts and after each micro-batch's forward and backward */
  onProgress: ((p: StepProgress) => void) | null = null;
  private readonly names: Map<string, string>;

  /** `reference` may be null when the KL coefficient is 0 (no reference model in memory). */
  constructor(
    readonly policy: CausalLM,
    readonly reference: CausalLM | null,
    readonly task: Task,
    readonly cfg: GrpoConfig,
    readonly example: Example | null,
  ) {
    if (!reference && cfg.loss.klCoef !== 0)
      throw new Error(`GrpoTrainer: a KL coefficient of ${cfg.loss.klCoef} needs a reference model`);
    this.optimizer = new AdamW(
      policy.params,
      { beta1: cfg.beta1, beta2: cfg.beta2, eps: 1e-8, weightDecay: cfg.weightDecay, gradClip: cfg.gradClip },
      (name) => policy.decayed(name),
    );
    this.names = new Map(Object.entries(policy.params).map(([k, v]) => [v.name, k]));
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
    const { cfg, task } = this;
    const t0 = performance.now();
    const n = groups.length * cfg.rollouts;
    const pairs = groups.flatMap((g) => Array.from({ length: cfg.rollouts }, () => g));
    const scored = rollout(
      this.policy,
      task,
      pairs,
      { temperature: cfg.temperature, topP: cfg.topP, maxNewTokens: cfg.maxNewTokens },
      rng,
      n,
    );
    const rewards = scored.map((s) => rewardOf({ format: s.format, answer: s.reward }, cfg.reward) as number);
    const adv = groupAdvantages(rewards, cfg.rollouts, cfg.advantage.std, cfg.advantage.eps);
    const t1 = performance.now();
    this.onProgress?.({
      phase: "rollouts",
      seconds: (t1 - t0) / 1000,
      tokens: scored.reduce((a, r) => a + r.length, 0),
    });
    const lpT = logprobTemperature(cfg);
    const reference = this.reference;
    // micro-batches of rows (one: the whole batch), each padded to its own longest sequence; the loss
    // of each is weighted by its share of what the aggregation divides by, so the summed gradients
    // are those of the whole batch
    const chunks = microBatches(n, cfg.microBatch);
    const built = chunks.map(([r0, r1]) => {
      const rows = scored.slice(r0, r1);
      const batch = responseBatch(
        rows.map((s) => s.promptIds),
        rows.map((s) => s.ids),
        rows.map((s) => s.stopId),
        this.task.padId,
      );
      return { batch, r0, r1, maskSum: batch.mask.reduce((a, m) => a + m.reduce((x, y) => x + y, 0), 0) };
    });
    const totalMask = built.reduce((a, c) => a + c.maskSum, 0);
    const parts = built.map(({ batch, r0, r1, maskSum }) => {
      const inputs = tf.tensor2d(batch.inputs, undefined, "int32");
      const targets = tf.tensor2d(batch.targets, undefined, "int32");
      const mask = tf.tensor2d(batch.mask, undefined, "float32");
      const advT = tf.tensor1d(adv.slice(r0, r1), "float32");
      // With one update per batch the policy has not moved when the loss is taken, so the old
      // log-probabilities are the graph's own logp, bit for bit: they are copied from it (off the tape)
      // instead of taking a forward pass of their own.
      const oldLogp =
        cfg.updatesPerBatch > 1
          ? tf.tidy(() => this.policy.tokenLogProbs(inputs, targets, { temperature: lpT, entropy: false }).logp)
          : null;
      const refLogp = reference
        ? tf.tidy(() => reference.tokenLogProbs(inputs, targets, { temperature: lpT, entropy: false }).logp)
        : null;
      const share = cfg.loss.aggregation === "token-mean" ? maskSum / totalMask : (r1 - r0) / n;
      const tokenShare = maskSum / totalMask;
      const tensors = [inputs, targets, mask, advT, ...(oldLogp ? [oldLogp] : []), ...(refLogp ? [refLogp] : [])];
      return { inputs, targets, mask, advT, oldLogp, refLogp, share, tokenShare, tensors };
    });
    const disposeAll = () => tf.dispose(parts.flatMap((p) => p.tensors));
    let last = { loss: 0, pg: 0, kl: 0, entropy: 0, clipFrac: 0, gradNorm: 0 };
    for (let u = 0; u < cfg.updatesPerBatch; u++) {
      const sum: Record<string, tf.Tensor | Float32Array> = {};
      const total = { loss: 0, pg: 0, kl: 0, entropy: 0, clipFrac: 0 };
      for (const [i, c] of parts.entries()) {
        let kept: tf.Scalar[] = [];
        const { value, grads } = tf.variableGrads(() => {
          const { logp, entropy } = this.policy.tokenLogProbs(c.inputs, c.targets, { temperature: lpT, entropy: true });
          const old = c.oldLogp ?? tf.tensor2d(logp.dataSync(), logp.shape);
          // without a reference (KL coefficient 0) the KL term is taken against the policy itself: zero
          const ref = c.refLogp ?? old;
          const r = grpoLossTf(
            { logp, oldLogp: old, refLogp: ref, entropy: entropy!, adv: c.advT, mask: c.mask },
            cfg.loss,
          );
          kept = [r.pg, r.kl, r.entropy, r.clipFrac].map((t) => tf.keep(t));
          return parts.length === 1 ? r.loss : (r.loss.mul(c.share) as tf.Scalar);
        });
        const lossValue = value.dataSync()[0];
        const [pg, kl, ent, clipFrac] = kept.map((t) => t.dataSync()[0]);
        tf.dispose([value, ...kept]);
        if (!Number.isFinite(lossValue)) {
          tf.dispose([...Object.values(grads), ...tensorsOf(sum)]);
          disposeAll();
          throw new NumericalFault(`loss is ${lossValue}; the update was not applied`);
        }
        total.loss += lossValue;
        total.pg += pg * c.share;
        total.kl += kl * c.share;
        total.entropy += ent * c.share;
        total.clipFrac += clipFrac * c.tokenShare;
        this.onProgress?.({
          phase: "micro-batch",
          done: i + 1 + u * parts.length,
          of: parts.length * cfg.updatesPerBatch,
          seconds: (performance.now() - t1) / 1000,
        });
        for (const [vn, g] of Object.entries(grads)) {
          const k = this.names.get(vn)!;
          if (parts.length === 1) {
            sum[k] = g;
            continue;
          }
          // Several micro-batches: the running sum lives on the host, so the backend holds one
          // micro-batch's gradients at a time, not two full copies. Float32 + float32 evaluated in
          // float64 and rounded to float32 is the float32 sum, bit for bit.
          const data = g.dataSync() as Float32Array;
          g.dispose();
          const acc = sum[k] as Float32Array | undefined;
          if (acc === undefined) sum[k] = Float32Array.from(data);
          else for (let i = 0; i < data.length; i++) acc[i] += data[i];
        }
      }
      let gradNorm: number;
      try {
        gradNorm = this.optimizer.apply(sum, cfg.learningRate);
      } catch (e) {
        disposeAll();
        throw e;
      } finally {
        tf.dispose(tensorsOf(sum));
      }
      last = { ...total, kl: reference ? total.kl : NaN, gradNorm };
    }
    disposeAll();
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
