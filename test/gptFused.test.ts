// The fused native forward/backward of the organism (src/native/gpt.c through src/model/gptFused.ts)
// against the tfjs graph of gpt.ts: log-probs, entropy and the gradient of every parameter under a
// GRPO-like loss that uses both, on the real gpt-nano shape with perturbed weights (so biases and
// gains matter) and a right-padded batch, at temperature 1 and 0.7, with and without a residual
// addition. Relative error: max |fused − tfjs| / max |tfjs| per tensor.
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../src/engine/backend.js";
import { makeRng } from "../src/engine/rng.js";
import {
  disposeParams,
  initParams,
  resolveModelConfig,
  tokenLogProbs,
  type ModelConfig,
  type Params,
  type ResidualAddition,
} from "../src/model/gpt.js";
import {
  fusedAvailable,
  fusedTrainingActive,
  fusedUnavailableReason,
  tokenLogProbsFused,
} from "../src/model/gptFused.js";
import { GptLM } from "../src/model/gptLM.js";
import { matmulThreads, setMatmulThreads } from "../src/kernels/matmul.js";
import { selectKernels } from "../src/model/generate.js";
import { ALPHABET, SPECIAL_TOKENS } from "../src/text/tokenizer.js";
import { availableOrFailInCI } from "./ci.js";

const available = availableOrFailInCI("the native addon's fused GPT (build/rlvr_native.node)", fusedAvailable(), () =>
  fusedUnavailableReason(),
);

const TOL = 1e-5;

/** max |a − b| / max |b| (absolute where b is all zeros) */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return m > 0 ? d / m : d;
}

type LogProbs = (
  params: Params,
  cfg: ModelConfig,
  inputs: tf.Tensor2D,
  targets: tf.Tensor2D,
  withEntropy: boolean,
  temperature: number,
  addition: ResidualAddition | null,
) => { logp: tf.Tensor2D; entropy?: tf.Tensor2D };

interface Batch {
  inputs: tf.Tensor2D;
  targets: tf.Tensor2D;
  mask: tf.Tensor2D;
  adv: tf.Tensor2D;
  noise: tf.Tensor2D;
}

/** B sequences of up to T tokens, right-padded with 0, mask on the real positions */
function makeBatch(cfg: ModelConfig, B: number, T: number, seed: number): Batch {
  const rng = makeRng(seed, "batch");
  const ids = new Int32Array(B * (T + 1));
  const mask = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    const len = T - Math.floor(rng.next() * (T / 2)); // 20 … 40 real tokens
    for (let t = 0; t <= T; t++) ids[b * (T + 1) + t] = t < len ? 1 + Math.floor(rng.next() * (cfg.vocabSize - 1)) : 0;
    for (let t = 0; t < T; t++) mask[b * T + t] = t < len - 1 ? 1 : 0;
  }
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      inputs[b * T + t] = ids[b * (T + 1) + t];
      targets[b * T + t] = ids[b * (T + 1) + t + 1];
    }
  const adv = Float32Array.from({ length: B * T }, (_, i) => (Math.floor(i / T) % 3) - 1 + 0.25);
  const noise = Float32Array.from({ length: B * T }, () => (rng.next() - 0.5) * 0.2);
  return {
    inputs: tf.tensor2d(inputs, [B, T], "int32"),
    targets: tf.tensor2d(targets, [B, T], "int32"),
    mask: tf.tensor2d(mask, [B, T]),
    adv: tf.tensor2d(adv, [B, T]),
    noise: tf.tensor2d(noise, [B, T]),
  };
}

/** perturbed init: every parameter N(0, 0.02)-ish noise on top (gains away from 1, biases away from 0) */
function makeParams(cfg: ModelConfig, seed: number): Params {
  const params = initParams(cfg, seed);
  const rng = makeRng(seed, "perturb");
  for (const v of Object.values(params)) {
    const d = v.dataSync() as Float32Array;
    const p = Float32Array.from(d, (x) => x + (rng.next() - 0.5) * 0.1);
    v.assign(tf.tensor(p, v.shape));
  }
  return params;
}

/** a GRPO-like loss of logp and entropy: ratio·A + k3 KL − entropy bonus, masked token mean */
function lossAndGrads(
  f: LogProbs,
  params: Params,
  cfg: ModelConfig,
  b: Batch,
  temperature: number,
  addition: ResidualAddition | null = null,
): { logp: Float32Array; entropy: Float32Array; grads: Record<string, Float32Array> } {
  let logp: Float32Array = new Float32Array();
  let entropy: Float32Array = new Float32Array();
  const { value, grads } = tf.variableGrads(() => {
    const r = f(params, cfg, b.inputs, b.targets, true, temperature, addition);
    logp = r.logp.dataSync().slice() as Float32Array;
    entropy = r.entropy!.dataSync().slice() as Float32Array;
    const old = tf.tensor2d(logp, r.logp.shape);
    const ref = old.add(b.noise);
    const ratio = tf.exp(r.logp.sub(old));
    const d = ref.sub(r.logp);
    const kl = tf.exp(d).sub(d).sub(1);
    const per = ratio.mul(b.adv).neg().add(kl.mul(0.1)).sub(r.entropy!.mul(0.05));
    return per.mul(b.mask).sum().div(b.mask.sum()) as tf.Scalar;
  });
  const out: Record<string, Float32Array> = {};
  for (const [k, g] of Object.entries(grads)) out[k] = g.dataSync().slice() as Float32Array;
  tf.dispose([value, ...Object.values(grads)]);
  return { logp, entropy, grads: out };
}

describe.skipIf(!available)("fused native GPT forward/backward", () => {
  const cfg = resolveModelConfig("gpt-nano", SPECIAL_TOKENS.length + ALPHABET.length);
  let params: Params;
  let batch: Batch;

  beforeAll(async () => {
    await selectBackend("wasm");
    selectKernels("auto");
    params = makeParams(cfg, 3);
    batch = makeBatch(cfg, 16, 40, 5);
  });

  afterAll(() => {
    disposeParams(params);
    tf.dispose(Object.values(batch));
  });

  const steer = { layer: 0, vector: Float32Array.from({ length: cfg.width }, (_, i) => Math.sin(i)), scale: 0.5 };
  const cases: [string, number, ResidualAddition | null][] = [
    ["temperature 1", 1, null],
    ["temperature 0.7", 0.7, null],
    ["temperature 0.7 with a residual addition after block 0", 0.7, steer],
  ];
  for (const [name, temperature, addition] of cases) {
    it(`log-probs, entropy and every parameter's gradient match the tfjs graph (${name})`, () => {
      const ref = lossAndGrads(tokenLogProbs, params, cfg, batch, temperature, addition);
      const got = lossAndGrads(tokenLogProbsFused, params, cfg, batch, temperature, addition);
      expect(relErr(got.logp, ref.logp)).toBeLessThan(TOL);
      expect(relErr(got.entropy, ref.entropy)).toBeLessThan(TOL);
      expect(Object.keys(got.grads).sort()).toEqual(Object.keys(ref.grads).sort());
      const errs = Object.fromEntries(
        Object.entries(params).map(([k, v]) => [k, relErr(got.grads[v.name], ref.grads[v.name])]),
      );
      if (process.env.FUSED_VERBOSE)
        console.log(name, relErr(got.logp, ref.logp), relErr(got.entropy, ref.entropy), errs);
      const worst = Object.entries(errs).sort((a, b) => b[1] - a[1])[0];
      expect(worst[1], `worst: ${worst[0]}`).toBeLessThan(TOL);
      // the gradient is not trivially zero
      expect(Math.max(...ref.grads[params["h.0.attn.c_attn.w"].name].map(Math.abs))).toBeGreaterThan(1e-4);
    });
  }

  it("is causal: changing the last real token changes no earlier log-prob", () => {
    const T = 12;
    const a = [[1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45]];
    const b = [[1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 7]];
    const tg = [[5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 2]];
    const run = (x: number[][]) =>
      tf.tidy(
        () =>
          tokenLogProbsFused(
            params,
            cfg,
            tf.tensor2d(x, [1, T], "int32"),
            tf.tensor2d(tg, [1, T], "int32"),
          ).logp.dataSync() as Float32Array,
      );
    const la = run(a);
    const lb = run(b);
    expect(Array.from(lb.slice(0, T - 1))).toEqual(Array.from(la.slice(0, T - 1)));
    expect(lb[T - 1]).not.toEqual(la[T - 1]);
  });

  it("gives the same bits on 1 and 2 threads", () => {
    const before = matmulThreads();
    try {
      setMatmulThreads(1);
      const one = lossAndGrads(tokenLogProbsFused, params, cfg, batch, 0.7);
      setMatmulThreads(2);
      const two = lossAndGrads(tokenLogProbsFused, params, cfg, batch, 0.7);
      expect(Array.from(two.logp)).toEqual(Array.from(one.logp));
      expect(Array.from(two.entropy)).toEqual(Array.from(one.entropy));
      for (const k of Object.keys(one.grads)) expect(Array.from(two.grads[k]), k).toEqual(Array.from(one.grads[k]));
    } finally {
      setMatmulThreads(before);
    }
  });

  it("--kernels fused routes GptLM.tokenLogProbs through it, and auto back to the tfjs graph", () => {
    const lm = new GptLM(params, cfg);
    const run = () =>
      tf.tidy(() => lm.tokenLogProbs(batch.inputs, batch.targets, { temperature: 1, entropy: true }).logp.dataSync());
    try {
      expect(selectKernels("fused").fused).toBe(true);
      expect(fusedTrainingActive()).toBe(true);
      const fused = run();
      selectKernels("auto");
      expect(fusedTrainingActive()).toBe(false);
      const graph = run();
      expect(relErr(fused, graph)).toBeLessThan(TOL);
      expect(Array.from(fused)).not.toEqual(Array.from(graph)); // not bit for bit: it did take the other path
    } finally {
      selectKernels("auto");
    }
  });

  it("keeps no tensors: a forward outside a tape, and a whole gradient step, leave the count as it was", () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      tokenLogProbsFused(params, cfg, batch.inputs, batch.targets, true, 0.7);
    });
    expect(tf.memory().numTensors).toBe(before);
    lossAndGrads(tokenLogProbsFused, params, cfg, batch, 1);
    expect(tf.memory().numTensors).toBe(before);
  });
});
