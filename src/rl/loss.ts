// GRPO loss pieces, each as a pure reference function on plain arrays (tested against hand-computed
// values) and one tfjs implementation of the whole loss (tested against the reference).
//   ratio      = exp(logp − oldLogp)                        (against the rollout policy)
//   surrogate  = −min(ratio·A, clip(ratio, 1−ε, 1+ε)·A)     (per token)
//   k3 KL      = exp(d) − d − 1, d = ref − logp              (Schulman's k3, ≥ 0, to the frozen reference)
//                with klClamp c (verl's low_var_kl: c = 10): d clamped to [−20, 20], the KL to [−c, c]
//   per token  = c·surrogate + β·KL − α·entropy   (c = pgCoef: 1 as GRPO; 0 leaves no reward term)
// Aggregation over the masked response tokens of B sequences:
//   token-mean            Σ loss·mask / Σ mask
//   seq-mean-token-mean   mean over sequences of (Σ_t loss·mask / Σ_t mask)
//   constant              Σ loss·mask / (B · L)   with a fixed L (Dr. GRPO; L = max response tokens)
import * as tf from "@tensorflow/tfjs";

export const AGGREGATIONS = ["token-mean", "seq-mean-token-mean", "constant"] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

export interface LossConfig {
  /** coefficient of the policy-gradient (clipped surrogate) term; 0 removes the reward from the loss */
  pgCoef: number;
  clipEps: number;
  klCoef: number;
  entropyCoef: number;
  aggregation: Aggregation;
  /** L for the constant normaliser */
  constantLength: number;
  /** clamp of the k3 KL (and of its log-ratio to ±20) as verl's low_var_kl does; null = unclamped */
  klClamp: number | null;
}

export function clippedSurrogate(logp: number, oldLogp: number, adv: number, eps: number): number {
  const ratio = Math.exp(logp - oldLogp);
  const clipped = Math.min(Math.max(ratio, 1 - eps), 1 + eps);
  return -Math.min(ratio * adv, clipped * adv);
}

/** log-ratios beyond ±20 are clamped before exp() when the KL is clamped (as verl's low_var_kl does) */
export const KL_LOG_RATIO_CLAMP = 20;

export function k3(logp: number, refLogp: number, clamp: number | null = null): number {
  if (clamp === null) {
    const d = refLogp - logp;
    return Math.exp(d) - d - 1;
  }
  const d = Math.min(Math.max(refLogp - logp, -KL_LOG_RATIO_CLAMP), KL_LOG_RATIO_CLAMP);
  return Math.min(Math.max(Math.exp(d) - d - 1, -clamp), clamp);
}

export function aggregate(values: number[][], mask: number[][], mode: Aggregation, constantLength = 1): number {
  if (mode === "token-mean") {
    let s = 0;
    let m = 0;
    values.forEach((row, b) => row.forEach((v, t) => ((s += v * mask[b][t]), (m += mask[b][t]))));
    return m > 0 ? s / m : 0;
  }
  if (mode === "seq-mean-token-mean") {
    let total = 0;
    values.forEach((row, b) => {
      let s = 0;
      let m = 0;
      row.forEach((v, t) => ((s += v * mask[b][t]), (m += mask[b][t])));
      total += m > 0 ? s / m : 0;
    });
    return total / values.length;
  }
  if (mode === "constant") {
    let s = 0;
    values.forEach((row, b) => row.forEach((v, t) => (s += v * mask[b][t])));
    return s / (values.length * constantLength);
  }
  throw new Error(`unknown loss aggregation ${JSON.stringify(mode)}; use one of ${AGGREGATIONS.join(", ")}`);
}

export interface LossInputs<T> {
  logp: T;
  oldLogp: T;
  refLogp: T;
  entropy: T;
  /** one advantage per sequence */
  adv: T;
  mask: T;
}

/** Reference GRPO loss on arrays ([B][T] except adv [B]). Returns the loss and its parts. */
export function grpoLossRef(
  x: Omit<LossInputs<number[][]>, "adv"> & { adv: number[] },
  cfg: LossConfig,
): { loss: number; pg: number; kl: number; entropy: number; clipFrac: number } {
  const pgv = x.logp.map((row: number[], b: number) =>
    row.map((lp, t) => clippedSurrogate(lp, x.oldLogp[b][t], x.adv[b], cfg.clipEps)),
  );
  const klv = x.logp.map((row: number[], b: number) => row.map((lp, t) => k3(lp, x.refLogp[b][t], cfg.klClamp)));
  const clipv = x.logp.map((row: number[], b: number) =>
    row.map((lp, t) => (Math.abs(Math.exp(lp - x.oldLogp[b][t]) - 1) > cfg.clipEps ? 1 : 0)),
  );
  const agg = (v: number[][]) => aggregate(v, x.mask, cfg.aggregation, cfg.constantLength);
  const pg = agg(pgv);
  const kl = agg(klv);
  const entropy = agg(x.entropy);
  return {
    loss: cfg.pgCoef * pg + cfg.klCoef * kl - cfg.entropyCoef * entropy,
    pg,
    kl,
    entropy,
    clipFrac: aggregate(clipv, x.mask, "token-mean"),
  };
}

function aggregateTf(v: tf.Tensor2D, mask: tf.Tensor2D, cfg: LossConfig): tf.Scalar {
  const masked = v.mul(mask);
  if (cfg.aggregation === "token-mean") return masked.sum().div(mask.sum().maximum(1e-8)) as tf.Scalar;
  if (cfg.aggregation === "seq-mean-token-mean")
    return masked.sum(1).div(mask.sum(1).maximum(1e-8)).mean() as tf.Scalar;
  if (cfg.aggregation === "constant") return masked.sum().div(v.shape[0] * cfg.constantLength) as tf.Scalar;
  throw new Error(`unknown loss aggregation ${JSON.stringify(cfg.aggregation)}; use one of ${AGGREGATIONS.join(", ")}`);
}

/** k3 KL per token in tfjs, clamped as k3() is when `clamp` is not null (zero gradient where clamped). */
export function k3Tf(logp: tf.Tensor, refLogp: tf.Tensor, clamp: number | null): tf.Tensor2D {
  if (clamp === null) {
    const d = refLogp.sub(logp);
    return tf.exp(d).sub(d).sub(1) as tf.Tensor2D;
  }
  const d = tf.clipByValue(refLogp.sub(logp), -KL_LOG_RATIO_CLAMP, KL_LOG_RATIO_CLAMP);
  return tf.clipByValue(tf.exp(d).sub(d).sub(1), -clamp, clamp) as tf.Tensor2D;
}

/** The GRPO loss in tfjs: [B, T] tensors (adv [B]). Returns the loss and its parts (scalars). */
export function grpoLossTf(
  x: LossInputs<tf.Tensor>,
  cfg: LossConfig,
): { loss: tf.Scalar; pg: tf.Scalar; kl: tf.Scalar; entropy: tf.Scalar; clipFrac: tf.Scalar } {
  const mask = x.mask as tf.Tensor2D;
  const adv = (x.adv as tf.Tensor1D).expandDims(1);
  const ratio = tf.exp(x.logp.sub(x.oldLogp));
  const clipped = tf.clipByValue(ratio, 1 - cfg.clipEps, 1 + cfg.clipEps);
  const pgv = tf.minimum(ratio.mul(adv), clipped.mul(adv)).neg() as tf.Tensor2D;
  const klv = k3Tf(x.logp, x.refLogp, cfg.klClamp);
  const pg = aggregateTf(pgv, mask, cfg);
  const kl = aggregateTf(klv, mask, cfg);
  const entropy = aggregateTf(x.entropy as tf.Tensor2D, mask, cfg);
  // multiplying by 1 is exact, but skipping it keeps the graph (and every number) of plain GRPO as it was
  const pgTerm = cfg.pgCoef === 1 ? pg : pg.mul(cfg.pgCoef);
  const loss = pgTerm.add(kl.mul(cfg.klCoef)).sub(entropy.mul(cfg.entropyCoef)) as tf.Scalar;
  const clipFrac = ratio
    .sub(1)
    .abs()
    .greater(cfg.clipEps)
    .toFloat()
    .mul(mask)
    .sum()
    .div(mask.sum().maximum(1e-8)) as tf.Scalar;
  return { loss, pg, kl, entropy, clipFrac };
}
