// AdamW (decoupled weight decay, Loshchilov & Hutter) with global gradient-norm clipping; its state
// (the moments, on the host) is saved in a checkpoint and restored exactly.
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
  // The moments live on the host, not in the backend's memory: for a large model they are twice the
  // weights, which the 4 GiB WebAssembly heap cannot spare. The update is computed op by op in
  // float32 (Math.fround after each operation: a float32 operation is the float64 one rounded, for
  // + − × ÷ and √), so it is the same, bit for bit, as the same sequence of tfjs float32 ops.
  private readonly m: Record<string, Float32Array> = {};
  private readonly v: Record<string, Float32Array> = {};

  /** `decayed(name)`: whether a parameter takes weight decay (default: all but biases `.b` and gains `.g`) */
  constructor(
    private readonly params: Params,
    readonly cfg: AdamWConfig,
    private readonly decayed: (name: string) => boolean = (k) => !k.endsWith(".b") && !k.endsWith(".g"),
  ) {
    for (const [k, p] of Object.entries(params)) {
      this.m[k] = new Float32Array(p.size);
      this.v[k] = new Float32Array(p.size);
    }
  }

  /**
   * Applies one update with learning rate lr. Gradients (tensors, or host arrays in the parameters'
   * shapes) are not disposed here.
   * Returns the global gradient norm before clipping; throws NumericalFault (without updating)
   * when it is NaN or Inf. Weight decay skips the parameters `decayed` excludes.
   */
  apply(grads: Record<string, tf.Tensor | Float32Array>, lr: number): number {
    const { beta1, beta2, eps, weightDecay, gradClip } = this.cfg;
    const host = (k: string): Float32Array => {
      const g = grads[k];
      return g instanceof Float32Array ? g : (g.dataSync() as Float32Array);
    };
    // the norm is taken by the backend (its reduction order), from each gradient as it is stored
    const norm = tf.tidy(() => {
      const sq = Object.keys(grads).map((k) => {
        const g = grads[k];
        if (!(g instanceof Float32Array)) return g.square().sum();
        const t = tf.tensor(g, this.params[k].shape, "float32");
        const s = t.square().sum();
        t.dispose();
        return s;
      });
      return tf.addN(sq).sqrt();
    });
    const gradNorm = norm.dataSync()[0];
    norm.dispose();
    if (!Number.isFinite(gradNorm))
      throw new NumericalFault(`gradient norm is ${gradNorm}; the update was not applied`);
    const clipScale = gradClip > 0 && gradNorm > gradClip ? gradClip / (gradNorm + 1e-6) : 1;
    this.step++;
    const f = Math.fround;
    // every scalar becomes a float32 constant, as a tfjs scalar operand would
    const cClip = f(clipScale);
    const [b1, nb1, b2, nb2] = [f(beta1), f(1 - beta1), f(beta2), f(1 - beta2)];
    const bc1 = f(1 - Math.pow(beta1, this.step));
    const bc2 = f(1 - Math.pow(beta2, this.step));
    const [cEps, cWd, cLr] = [f(eps), f(weightDecay), f(lr)];
    for (const [k, p] of Object.entries(this.params)) {
      if (!grads[k]) continue;
      const g = host(k);
      const w = Float32Array.from(p.dataSync() as Float32Array);
      const m = this.m[k];
      const v = this.v[k];
      const decays = weightDecay > 0 && this.decayed(k);
      for (let i = 0; i < w.length; i++) {
        const gi = clipScale === 1 ? g[i] : f(g[i] * cClip);
        const mi = f(f(m[i] * b1) + f(gi * nb1));
        const vi = f(f(v[i] * b2) + f(f(gi * gi) * nb2));
        m[i] = mi;
        v[i] = vi;
        let upd = f(f(mi / bc1) / f(f(Math.sqrt(f(vi / bc2))) + cEps));
        if (decays) upd = f(upd + f(w[i] * cWd));
        w[i] = f(w[i] - f(upd * cLr));
      }
      tf.tidy(() => p.assign(tf.tensor(w, p.shape, "float32")));
    }
    return gradNorm;
  }

  stateArrays(): Record<string, NamedArray> {
    const out: Record<string, NamedArray> = {};
    for (const k of Object.keys(this.m)) {
      const shape = this.params[k].shape;
      out[`m.${k}`] = { shape, data: this.m[k] };
      out[`v.${k}`] = { shape, data: this.v[k] };
    }
    return out;
  }

  loadState(arrays: Record<string, NamedArray>, step: number): void {
    for (const k of Object.keys(this.m)) {
      const m = arrays[`m.${k}`];
      const v = arrays[`v.${k}`];
      if (!m || !v) throw new Error(`optimizer state: missing moments for ${k}`);
      if (m.data.length !== this.m[k].length || v.data.length !== this.v[k].length)
        throw new Error(
          `optimizer state: moments for ${k} have ${m.data.length} / ${v.data.length} values, the parameter has ${this.m[k].length}`,
        );
      this.m[k].set(m.data);
      this.v[k].set(v.data);
    }
    this.step = step;
  }

  /** nothing on the backend to free; kept so callers release an optimizer the same way as a model */
  dispose(): void {}
}
