// AdamW (decoupled weight decay, Loshchilov & Hutter) with global gradient-norm clipping,
// written with tfjs ops so its state can be saved in a checkpoint and restored exactly.
import * as tf from "@tensorflow/tfjs";
import type { NamedArray } from "./checkpoint.js";
import type { Params } from "./gpt.js";

export interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** clip the global L2 norm of the gradients to this value; 0 = no clipping */
  gradClip: number;
}

export const DEFAULT_ADAMW: AdamWConfig = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, gradClip: 1 };

/** NaN or Inf in a loss or a gradient: the step is not applied. */
export class NumericalFault extends Error {}

export class AdamW {
  step = 0;
  private readonly m: Record<string, tf.Variable> = {};
  private readonly v: Record<string, tf.Variable> = {};

  /** `decayed(name)`: whether a parameter takes weight decay (default: all but biases `.b` and gains `.g`) */
  constructor(
    private readonly params: Params,
    readonly cfg: AdamWConfig,
    private readonly decayed: (name: string) => boolean = (k) => !k.endsWith(".b") && !k.endsWith(".g"),
  ) {
    for (const [k, p] of Object.entries(params)) {
      this.m[k] = tf.variable(tf.zerosLike(p), false);
      this.v[k] = tf.variable(tf.zerosLike(p), false);
    }
  }

  /**
   * Applies one update with learning rate lr. Gradients are not disposed here.
   * Returns the global gradient norm before clipping; throws NumericalFault (without updating)
   * when it is NaN or Inf. Weight decay skips the parameters `decayed` excludes.
   */
  apply(grads: Record<string, tf.Tensor>, lr: number): number {
    const { beta1, beta2, eps, weightDecay, gradClip } = this.cfg;
    const norm = tf.tidy(() => {
      const sq = Object.values(grads).map((g) => g.square().sum());
      return tf.addN(sq).sqrt();
    });
    const gradNorm = norm.dataSync()[0];
    norm.dispose();
    if (!Number.isFinite(gradNorm))
      throw new NumericalFault(`gradient norm is ${gradNorm}; the update was not applied`);
    const clipScale = gradClip > 0 && gradNorm > gradClip ? gradClip / (gradNorm + 1e-6) : 1;
    this.step++;
    const bc1 = 1 - Math.pow(beta1, this.step);
    const bc2 = 1 - Math.pow(beta2, this.step);
    // one tidy per parameter: the temporaries of an update are several times the parameter's size, and
    // holding them for every parameter at once would multiply a large model's peak memory
    for (const [k, p] of Object.entries(this.params)) {
      const g0 = grads[k];
      if (!g0) continue;
      tf.tidy(() => {
        const g = clipScale === 1 ? g0 : g0.mul(clipScale);
        const m = this.m[k].mul(beta1).add(g.mul(1 - beta1));
        const v = this.v[k].mul(beta2).add(g.square().mul(1 - beta2));
        this.m[k].assign(m);
        this.v[k].assign(v);
        let upd = m.div(bc1).div(v.div(bc2).sqrt().add(eps));
        const decays = weightDecay > 0 && this.decayed(k);
        if (decays) upd = upd.add(p.mul(weightDecay));
        p.assign(p.sub(upd.mul(lr)));
      });
    }
    return gradNorm;
  }

  stateArrays(): Record<string, NamedArray> {
    const out: Record<string, NamedArray> = {};
    for (const k of Object.keys(this.m)) {
      out[`m.${k}`] = { shape: this.m[k].shape, data: this.m[k].dataSync() as Float32Array };
      out[`v.${k}`] = { shape: this.v[k].shape, data: this.v[k].dataSync() as Float32Array };
    }
    return out;
  }

  loadState(arrays: Record<string, NamedArray>, step: number): void {
    for (const k of Object.keys(this.m)) {
      const m = arrays[`m.${k}`];
      const v = arrays[`v.${k}`];
      if (!m || !v) throw new Error(`optimizer state: missing moments for ${k}`);
      tf.tidy(() => {
        this.m[k].assign(tf.tensor(m.data, m.shape));
        this.v[k].assign(tf.tensor(v.data, v.shape));
      });
    }
    this.step = step;
  }

  dispose(): void {
    for (const t of [...Object.values(this.m), ...Object.values(this.v)]) t.dispose();
  }
}
