// The fused native forward/backward of the Llama family (src/native/llama.c through
// src/model/llamaFused.ts) against LlamaModel's tfjs graph: log-probs, entropy and the gradient of
// every parameter under a GRPO-like loss that uses both, on tiny random llama (untied, llama3 rope
// scaling; and with attention biases, tied), qwen2 (q/k/v biases, tied, grouped heads) and qwen3
// (q/k norms, head_dim ≠ hidden / heads, untied) checkpoints, a right-padded batch, at temperature
// 1 and 0.7, with and without a residual addition. Relative error: max |fused − tfjs| / max |tfjs|
// per tensor.
import fs from "node:fs";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../src/engine/backend.js";
import { makeRng } from "../src/engine/rng.js";
import { setFusedTraining } from "../src/model/gptFused.js";
import { LlamaModel } from "../src/model/llama.js";
import { llamaFusedAvailable, llamaFusedUnavailableReason, setLlamaHeadKeepBytes } from "../src/model/llamaFused.js";
import { matmulThreads, setMatmulThreads } from "../src/kernels/matmul.js";
import { selectKernels } from "../src/model/generate.js";
import { availableOrFailInCI } from "./ci.js";
import { tinyCheckpoint } from "./fixtures/hfTiny.js";

const available = availableOrFailInCI(
  "the native addon's fused Llama family (build/rlvr_native.node)",
  llamaFusedAvailable(),
  () => llamaFusedUnavailableReason(),
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

interface Batch {
  inputs: tf.Tensor2D;
  targets: tf.Tensor2D;
  mask: tf.Tensor2D;
  adv: tf.Tensor2D;
  noise: tf.Tensor2D;
}

/** B sequences of up to T tokens, right-padded with 0, mask on the real positions */
function makeBatch(V: number, B: number, T: number, seed: number): Batch {
  const rng = makeRng(seed, "batch");
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const mask = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    const len = T - Math.floor(rng.next() * (T / 2));
    const ids = Array.from({ length: T + 1 }, (_, t) => (t < len ? 1 + Math.floor(rng.next() * (V - 1)) : 0));
    for (let t = 0; t < T; t++) {
      inputs[b * T + t] = ids[t];
      targets[b * T + t] = ids[t + 1];
      mask[b * T + t] = t < len - 1 ? 1 : 0;
    }
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

/** a GRPO-like loss of logp and entropy (ratio·A + k3 KL − entropy bonus, masked token mean), through
 * the native path (fused) or the tfjs graph */
function lossAndGrads(
  m: LlamaModel,
  b: Batch,
  temperature: number,
  fused: boolean,
): { logp: Float32Array; entropy: Float32Array; grads: Record<string, Float32Array> } {
  let logp: Float32Array = new Float32Array();
  let entropy: Float32Array = new Float32Array();
  setFusedTraining(fused);
  try {
    const { value, grads } = tf.variableGrads(() => {
      const r = m.tokenLogProbs(b.inputs, b.targets, { temperature, entropy: true });
      logp = r.logp.dataSync().slice() as Float32Array;
      entropy = r.entropy!.dataSync().slice() as Float32Array;
      const old = tf.tensor2d(logp, r.logp.shape);
      const ref = old.add(b.noise);
      const ratio = tf.exp(r.logp.sub(old));
      const d = ref.sub(r.logp);
      const kl = tf.exp(d).sub(d).sub(1);
      const per = ratio.mul(b.adv).neg().add(kl.mul(0.1)).sub(r.entropy!.mul(0.05));
      return per.mul(b.mask).sum().div(b.mask.sum()) as tf.Scalar;
    }, Object.values(m.params));
    const byId = new Map(Object.entries(m.params).map(([k, v]) => [v.name, k]));
    const out: Record<string, Float32Array> = {};
    for (const [k, g] of Object.entries(grads)) out[byId.get(k) ?? k] = g.dataSync().slice() as Float32Array;
    tf.dispose([value, ...Object.values(grads)]);
    return { logp, entropy, grads: out };
  } finally {
    setFusedTraining(false);
  }
}

const CASES: [string, string, Record<string, unknown>][] = [
  ["llama, untied, llama3 rope scaling", "llama3-untied", {}],
  ["llama with q/k/v/o biases, tied", "llama-bias-tied", { mlp_bias: false }],
  ["qwen2, tied, 3 query heads per key-value head", "qwen2-tied", {}],
  ["qwen3, q/k norms, untied", "qwen3-untied", {}],
];

describe.skipIf(!available)("fused native Llama-family forward/backward", () => {
  const dirs: string[] = [];
  const models: Record<string, LlamaModel> = {};
  const batches: Record<string, Batch> = {};

  beforeAll(async () => {
    await selectBackend("wasm");
    selectKernels("auto");
    for (const [name, base, config] of CASES) {
      const dir = tinyCheckpoint(base, { config });
      dirs.push(dir);
      models[name] = LlamaModel.load(dir);
      batches[name] = makeBatch(models[name].vocabSize, 5, 17, 3);
    }
  });

  afterAll(() => {
    for (const m of Object.values(models)) m.dispose();
    for (const b of Object.values(batches)) tf.dispose(Object.values(b));
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  for (const [name] of CASES)
    for (const [temperature, steer] of [
      [1, false],
      [0.7, false],
      [0.7, true],
    ] as const)
      it(`${name}, temperature ${temperature}${steer ? ", a residual addition after layer 0" : ""}: log-probs, entropy and every gradient match the tfjs graph`, () => {
        const m = models[name];
        if (steer)
          m.setResidualAddition({
            layer: 0,
            vector: Float32Array.from({ length: m.hiddenSize }, (_, i) => Math.sin(i)),
            scale: 0.5,
          });
        try {
          const ref = lossAndGrads(m, batches[name], temperature, false);
          const got = lossAndGrads(m, batches[name], temperature, true);
          expect(relErr(got.logp, ref.logp)).toBeLessThan(TOL);
          expect(relErr(got.entropy, ref.entropy)).toBeLessThan(TOL);
          expect(Object.keys(got.grads).sort()).toEqual(Object.keys(m.params).sort());
          expect(Object.keys(ref.grads).sort()).toEqual(Object.keys(m.params).sort());
          const errs = Object.keys(m.params).map((k) => [k, relErr(got.grads[k], ref.grads[k])] as const);
          if (process.env.FUSED_VERBOSE) console.log(name, temperature, relErr(got.logp, ref.logp), errs);
          const worst = [...errs].sort((a, b) => b[1] - a[1])[0];
          expect(worst[1], `worst: ${worst[0]}`).toBeLessThan(TOL);
          // the gradients are not trivially zero
          for (const k of Object.keys(m.params))
            expect(Math.max(...ref.grads[k].map(Math.abs)), k).toBeGreaterThan(1e-6);
        } finally {
          m.setResidualAddition(null);
        }
      });

  for (const name of ["qwen2, tied, 3 query heads per key-value head", "qwen3, q/k norms, untied"])
    it(`${name}: the backward that computes the logits again (not kept by the forward) agrees too`, () => {
      const m = models[name];
      const ref = lossAndGrads(m, batches[name], 0.7, false);
      const old = setLlamaHeadKeepBytes(0);
      let got: ReturnType<typeof lossAndGrads>;
      try {
        got = lossAndGrads(m, batches[name], 0.7, true);
      } finally {
        setLlamaHeadKeepBytes(old);
      }
      const kept = lossAndGrads(m, batches[name], 0.7, true);
      expect(relErr(got.logp, ref.logp)).toBeLessThan(TOL);
      expect(relErr(got.entropy, ref.entropy)).toBeLessThan(TOL);
      for (const k of Object.keys(m.params)) {
        expect(relErr(got.grads[k], ref.grads[k]), k).toBeLessThan(TOL);
        expect(Array.from(got.grads[k]), k).toEqual(Array.from(kept.grads[k])); // the same logits either way
      }
    });

  it("is causal: changing the last real token changes no earlier log-prob", () => {
    const m = models["qwen2, tied, 3 query heads per key-value head"];
    const T = 12;
    const a = [[1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45]];
    const b = [[1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 7]];
    const tg = [[5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 2]];
    const run = (x: number[][]) => {
      setFusedTraining(true);
      try {
        return tf.tidy(
          () =>
            m
              .tokenLogProbs(tf.tensor2d(x, [1, T], "int32"), tf.tensor2d(tg, [1, T], "int32"), {
                temperature: 1,
                entropy: false,
              })
              .logp.dataSync() as Float32Array,
        );
      } finally {
        setFusedTraining(false);
      }
    };
    const la = run(a);
    const lb = run(b);
    expect(Array.from(lb.slice(0, T - 1))).toEqual(Array.from(la.slice(0, T - 1)));
    expect(lb[T - 1]).not.toEqual(la[T - 1]);
  });

  it("gives the same bits on 1 and 2 threads", () => {
    const name = "qwen3, q/k norms, untied";
    const before = matmulThreads();
    try {
      setMatmulThreads(1);
      const one = lossAndGrads(models[name], batches[name], 0.7, true);
      setMatmulThreads(2);
      const two = lossAndGrads(models[name], batches[name], 0.7, true);
      expect(Array.from(two.logp)).toEqual(Array.from(one.logp));
      for (const k of Object.keys(one.grads)) expect(Array.from(two.grads[k]), k).toEqual(Array.from(one.grads[k]));
    } finally {
      setMatmulThreads(before);
    }
  });

  it("--kernels fused routes LlamaModel.tokenLogProbs through it; mlp_bias takes the tfjs graph", () => {
    const m = models["llama, untied, llama3 rope scaling"];
    const b = batches["llama, untied, llama3 rope scaling"];
    const run = () =>
      tf.tidy(() => m.tokenLogProbs(b.inputs, b.targets, { temperature: 1, entropy: true }).logp.dataSync());
    try {
      expect(selectKernels("fused").fused).toBe(true);
      const fused = run();
      selectKernels("auto");
      const graph = run();
      expect(relErr(fused, graph)).toBeLessThan(TOL);
      expect(Array.from(fused)).not.toEqual(Array.from(graph)); // not bit for bit: it did take the other path
      const dir = tinyCheckpoint("llama-bias-tied");
      dirs.push(dir);
      const withMlpBias = LlamaModel.load(dir);
      try {
        const bb = makeBatch(withMlpBias.vocabSize, 2, 9, 4);
        const runB = () =>
          tf.tidy(() =>
            Array.from(
              withMlpBias.tokenLogProbs(bb.inputs, bb.targets, { temperature: 1, entropy: false }).logp.dataSync(),
            ),
          );
        selectKernels("fused");
        const f = runB();
        selectKernels("auto");
        expect(f).toEqual(runB()); // bit for bit: the same graph
        tf.dispose(Object.values(bb));
      } finally {
        withMlpBias.dispose();
      }
    } finally {
      selectKernels("auto");
    }
  });

  it("keeps no tensors: a forward outside a tape, and a whole gradient step, leave the count as it was", () => {
    const name = "qwen2, tied, 3 query heads per key-value head";
    const m = models[name];
    const b = batches[name];
    const before = tf.memory().numTensors;
    setFusedTraining(true);
    try {
      tf.tidy(() => {
        m.tokenLogProbs(b.inputs, b.targets, { temperature: 0.7, entropy: true });
      });
    } finally {
      setFusedTraining(false);
    }
    expect(tf.memory().numTensors).toBe(before);
    lossAndGrads(m, b, 1, true);
    expect(tf.memory().numTensors).toBe(before);
  });
});

// The cpu backend: the kernels read its arrays in place, and the gradients become tensors afterwards
// (llamaFused.ts views / outputs), another path than the wasm heap's.
describe.skipIf(!available)("fused native Llama-family forward/backward on the cpu backend", () => {
  const name = "qwen3, q/k norms, untied";
  let dir = "";
  let m: LlamaModel;
  let batch: Batch;

  beforeAll(async () => {
    await selectBackend("cpu");
    selectKernels("auto");
    dir = tinyCheckpoint("qwen3-untied");
    m = LlamaModel.load(dir);
    batch = makeBatch(m.vocabSize, 4, 13, 9);
  });

  afterAll(() => {
    m.dispose();
    tf.dispose(Object.values(batch));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it(`${name}, temperature 0.7, a residual addition: matches the tfjs graph and keeps no tensors`, () => {
    m.setResidualAddition({
      layer: 1,
      vector: Float32Array.from({ length: m.hiddenSize }, (_, i) => Math.cos(i)),
      scale: 0.3,
    });
    try {
      const ref = lossAndGrads(m, batch, 0.7, false);
      const before = tf.memory().numTensors;
      const got = lossAndGrads(m, batch, 0.7, true);
      expect(tf.memory().numTensors).toBe(before);
      expect(Array.from(got.logp)).not.toEqual(Array.from(ref.logp)); // not bit for bit: it took the native path
      expect(relErr(got.logp, ref.logp)).toBeLessThan(TOL);
      expect(relErr(got.entropy, ref.entropy)).toBeLessThan(TOL);
      for (const k of Object.keys(m.params)) expect(relErr(got.grads[k], ref.grads[k]), k).toBeLessThan(TOL);
    } finally {
      m.setResidualAddition(null);
    }
  });
});
