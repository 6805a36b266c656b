// The Llama-family decoders (src/model/llama.ts) on tiny random checkpoints written in the Hugging
// Face layout: log-probs and entropies against an independent numpy implementation, gradients,
// KV-cache generation against the full forward, seeded sampling, the steering hook, memory.
// Token ids in, log-probs out: no tokenizer is involved.
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../src/engine/backend.js";
import { makeRng } from "../src/engine/rng.js";
import {
  registerUnsortedSegmentSum,
  segmentSum,
  unregisterUnsortedSegmentSum,
} from "../src/kernels/unsortedSegmentSum.js";
import {
  detectFamily,
  inverseCdf,
  LlamaModel,
  lmHeadLogProbs,
  nucleusPick,
  parseLlamaConfig,
  ropeInvFreq,
} from "../src/model/llama.js";
import { selectKernels } from "../src/model/generate.js";
import { benchHfModel } from "../bench/hfModel.js";
import { numpyMissing, numpyRef, TINY, tinyCheckpoint } from "./fixtures/hfTiny.js";

type Ref = { logp: number[][]; entropy: number[][] };

/** the numpy comparisons run wherever numpy is; under CI its absence is a failure, not a skip */
const numpyGate = (): void => {
  const why = numpyMissing();
  if (why) throw new Error(`the numpy reference cannot run: ${why}`);
};
const itNumpy = numpyMissing() && !process.env.CI ? it.skip : it;

const dirs: Record<string, string> = {};
beforeAll(async () => {
  await selectBackend("wasm");
  selectKernels("fast");
  registerUnsortedSegmentSum();
  for (const name of Object.keys(TINY)) dirs[name] = tinyCheckpoint(name);
});
afterAll(() => {
  selectKernels("auto");
});

function randomIds(seed: number, B: number, T: number, V: number): number[][] {
  const rng = makeRng(seed, "ids");
  return Array.from({ length: B }, () => Array.from({ length: T }, () => rng.int(0, V - 1)));
}

function logProbs(
  m: LlamaModel,
  inputs: number[][],
  targets: number[][],
  temperature = 1,
): { logp: number[][]; entropy: number[][] } {
  const r = m.tokenLogProbs(tf.tensor2d(inputs, undefined, "int32"), tf.tensor2d(targets, undefined, "int32"), {
    temperature,
    entropy: true,
  });
  const out = { logp: r.logp.arraySync(), entropy: r.entropy!.arraySync() };
  tf.dispose([r.logp, r.entropy!]);
  return out;
}

function maxAbsDiff(a: number[][], b: number[][]): number {
  let d = 0;
  a.forEach((row, i) => row.forEach((x, j) => (d = Math.max(d, Math.abs(x - b[i][j])))));
  return d;
}

/** log p(· | seq) over the whole vocabulary at seq's last position, from the training forward */
function nextTokenLogProbs(m: LlamaModel, seq: number[]): number[] {
  const V = m.vocabSize;
  const inputs = Array.from({ length: V }, () => seq);
  const targets = Array.from({ length: V }, (_, v) => [...seq.slice(1), v]);
  const { logp } = logProbs(m, inputs, targets);
  return logp.map((row) => row[row.length - 1]);
}

const argmax = (xs: number[]) => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);

describe("Llama-family config", () => {
  it("reads the family from model_type, else architectures, and refuses others with the supported list", () => {
    expect(detectFamily({ model_type: "qwen2" })).toBe("qwen2");
    expect(detectFamily({ architectures: ["Qwen3ForCausalLM"] })).toBe("qwen3");
    expect(() => detectFamily({ model_type: "mistral" }, "x/config.json")).toThrow(
      /x\/config.json: model_type "mistral" is not supported; supported: llama, qwen2, qwen3/,
    );
    expect(() => detectFamily({ architectures: ["GPT2LMHeadModel"] })).toThrow(/LlamaForCausalLM/);
  });

  it("refuses fields it cannot honour, naming the field and value", () => {
    const base = TINY["llama3-untied"];
    const { hidden_size: _h, ...noHidden } = base;
    expect(() => parseLlamaConfig(noHidden, "c.json")).toThrow(/c.json: field hidden_size/);
    expect(() => parseLlamaConfig({ ...base, rope_scaling: { rope_type: "yarn", factor: 4 } }, "c.json")).toThrow(
      /c.json: field rope_scaling.*"yarn" is not supported; supported: llama3/,
    );
    expect(() => parseLlamaConfig({ ...base, hidden_act: "gelu" })).toThrow(/hidden_act = "gelu"/);
    expect(() => parseLlamaConfig({ ...base, num_key_value_heads: 3 })).toThrow(/must divide num_attention_heads = 4/);
    expect(() => parseLlamaConfig({ ...TINY["qwen2-tied"], use_sliding_window: true })).toThrow(/sliding-window/);
  });

  it("derives biases, norms and head_dim per family", () => {
    const q2 = parseLlamaConfig(TINY["qwen2-tied"]);
    expect([q2.qkvBias, q2.oBias, q2.qkNorm, q2.tieWordEmbeddings]).toEqual([true, false, false, true]);
    const q3 = parseLlamaConfig(TINY["qwen3-untied"]);
    expect([q3.qkvBias, q3.qkNorm, q3.headDim]).toEqual([false, true, 16]);
    const lb = parseLlamaConfig(TINY["llama-bias-tied"]);
    expect([lb.qkvBias, lb.oBias, lb.mlpBias, lb.numKvHeads]).toEqual([true, true, true, 3]);
  });

  it("llama3 rope scaling: high frequencies kept, low ones divided by factor, the band between smoothed", () => {
    const cfg = parseLlamaConfig(TINY["llama3-untied"]);
    const plain = ropeInvFreq({ ...cfg, ropeScaling: null });
    const scaled = ropeInvFreq(cfg);
    // hd = 8, θ = 10000: 1, 0.1, 0.01, 0.001; wavelengths 2π/f against 64/8 = 8 and 64/1 = 64
    expect(Array.from(plain)).toEqual([1, 0.1, 0.01, 0.001].map(Math.fround));
    expect(scaled[0]).toBe(plain[0]);
    const smooth = (64 / ((2 * Math.PI) / plain[1]) - 1) / (8 - 1);
    expect(scaled[1]).toBeCloseTo((1 - smooth) * (plain[1] / 8) + smooth * plain[1], 7);
    expect(scaled[2]).toBeCloseTo(plain[2] / 8, 9);
    expect(scaled[3]).toBeCloseTo(plain[3] / 8, 10);
  });

  it("weight decay: matrices and embeddings yes; biases and every norm weight no", () => {
    const m = LlamaModel.load(dirs["qwen3-untied"]);
    const no = Object.keys(m.params).filter((n) => !m.decayed(n));
    expect(no.every((n) => m.params[n].shape.length === 1)).toBe(true);
    expect(no).toContain("model.norm.weight");
    expect(no).toContain("model.layers.0.self_attn.q_norm.weight");
    expect(no).toContain("model.layers.1.post_attention_layernorm.weight");
    expect(m.decayed("model.embed_tokens.weight")).toBe(true);
    expect(m.decayed("model.layers.0.mlp.down_proj.weight")).toBe(true);
    m.dispose();
  });
});

describe("Llama-family log-probs against numpy (float64) to 1e-4", () => {
  const cases: [string, string, "wasm" | "cpu", "fast" | "stock"][] = [];
  for (const name of Object.keys(TINY)) cases.push([name, "wasm fast", "wasm", "fast"]);
  cases.push(["qwen3-untied", "wasm stock", "wasm", "stock"], ["llama3-untied", "cpu", "cpu", "stock"]);
  for (const [name, where, backend, kernels] of cases) {
    itNumpy(`${name} on ${where}, temperature 1 and 0.7`, async () => {
      numpyGate();
      await tf.setBackend(backend);
      selectKernels(kernels);
      try {
        const m = LlamaModel.load(dirs[name]);
        const inputs = randomIds(1, 3, 11, m.vocabSize);
        const targets = randomIds(2, 3, 11, m.vocabSize);
        for (const temperature of [1, 0.7]) {
          const ours = logProbs(m, inputs, targets, temperature);
          const ref = numpyRef<Ref>({ mode: "logprobs", dir: dirs[name], inputs, targets, temperature });
          expect(maxAbsDiff(ours.logp, ref.logp)).toBeLessThan(1e-4);
          expect(maxAbsDiff(ours.entropy, ref.entropy)).toBeLessThan(1e-4);
          // not a trivial agreement: the distributions are far from uniform
          expect(Math.min(...ref.entropy.flat())).toBeLessThan(Math.log(m.vocabSize) - 0.5);
        }
        m.dispose();
      } finally {
        await tf.setBackend("wasm");
        selectKernels("fast");
      }
    });
  }

  itNumpy("a BF16 checkpoint (each side converting it on its own)", () => {
    numpyGate();
    const dir = tinyCheckpoint("qwen2-tied", { dtype: "BF16" });
    const m = LlamaModel.load(dir);
    const inputs = randomIds(3, 2, 9, m.vocabSize);
    const targets = randomIds(4, 2, 9, m.vocabSize);
    const ref = numpyRef<Ref>({ mode: "logprobs", dir, inputs, targets, temperature: 1 });
    expect(maxAbsDiff(logProbs(m, inputs, targets).logp, ref.logp)).toBeLessThan(1e-4);
    m.dispose();
  });

  it("refuses ids outside the vocabulary and mismatched shapes", () => {
    const m = LlamaModel.load(dirs["qwen2-tied"]);
    const ids = (rows: number[][]) => tf.tensor2d(rows, undefined, "int32");
    const opts = { temperature: 1, entropy: false };
    expect(() => m.tokenLogProbs(ids([[1, 101]]), ids([[1, 2]]), opts)).toThrow(/\[0, 101\), got 101/);
    expect(() => m.tokenLogProbs(ids([[1, 2]]), ids([[-1, 2]]), opts)).toThrow(/got -1/);
    expect(() => m.tokenLogProbs(ids([[1, 2]]), ids([[1, 2, 3]]), opts)).toThrow(/must have the shape of inputs/);
    m.dispose();
  });

  it("right padding: a position's log-prob does not depend on the positions after it", () => {
    const m = LlamaModel.load(dirs["qwen2-tied"]);
    const seq = randomIds(5, 1, 12, m.vocabSize)[0];
    const padded = [...seq.slice(0, 7), 0, 0, 0, 0, 0];
    const a = logProbs(m, [seq], [seq.map((_, i) => seq[(i + 1) % 12])]).logp[0];
    const b = logProbs(m, [padded], [seq.map((_, i) => seq[(i + 1) % 12])]).logp[0];
    for (let t = 0; t < 7; t++) expect(Math.abs(a[t] - b[t])).toBeLessThan(1e-6);
    m.dispose();
  });
});

describe("Llama-family gradients", () => {
  /** loss = Σ logp + 0.3 Σ entropy, and its gradient with respect to every parameter */
  function lossGrads(m: LlamaModel, inputs: number[][], targets: number[][], temperature = 0.8) {
    const { value, grads } = tf.variableGrads(() => {
      const { logp, entropy } = m.tokenLogProbs(
        tf.tensor2d(inputs, undefined, "int32"),
        tf.tensor2d(targets, undefined, "int32"),
        { temperature, entropy: true },
      );
      return logp.sum().add(entropy!.sum().mul(0.3)) as tf.Scalar;
    });
    // (variableGrads keys gradients by variable name; the parameters are keyed by checkpoint name)
    const paramOf = Object.fromEntries(Object.entries(m.params).map(([k, v]) => [v.name, k]));
    const out: Record<string, Float32Array> = {};
    for (const [k, g] of Object.entries(grads)) out[paramOf[k]] = g.dataSync() as Float32Array;
    const loss = value.dataSync()[0];
    tf.dispose([value, ...Object.values(grads)]);
    return { loss, grads: out };
  }

  it("block recomputation (checkpointing) gives the same gradients bit for bit, and leaks no tensor", () => {
    const m = LlamaModel.load(dirs["llama3-untied"]);
    const inputs = randomIds(6, 2, 8, m.vocabSize);
    const targets = randomIds(7, 2, 8, m.vocabSize);
    m.recompute = false;
    const plain = lossGrads(m, inputs, targets);
    m.recompute = true;
    const before = tf.memory().numTensors;
    const ckpt = lossGrads(m, inputs, targets);
    expect(tf.memory().numTensors).toBe(before);
    expect(ckpt.loss).toBe(plain.loss);
    expect(Object.keys(ckpt.grads).sort()).toEqual(Object.keys(m.params).sort());
    for (const k of Object.keys(plain.grads)) expect(ckpt.grads[k]).toEqual(plain.grads[k]);
    m.dispose();
  });

  it("the gradient agrees with a central finite difference along a random direction", () => {
    for (const name of ["qwen3-untied", "llama-bias-tied"]) {
      const m = LlamaModel.load(dirs[name]);
      const inputs = randomIds(8, 2, 7, m.vocabSize);
      const targets = randomIds(9, 2, 7, m.vocabSize);
      const { grads } = lossGrads(m, inputs, targets);
      const rng = makeRng(10, "direction");
      const dir: Record<string, Float32Array> = {};
      let predicted = 0;
      for (const [k, g] of Object.entries(grads)) {
        dir[k] = Float32Array.from(g, () => rng.next() - 0.5);
        for (let i = 0; i < g.length; i++) predicted += g[i] * dir[k][i];
      }
      const original = Object.fromEntries(Object.entries(m.params).map(([k, v]) => [k, v.dataSync().slice()]));
      const lossAt = (eps: number) => {
        for (const [k, v] of Object.entries(m.params))
          v.assign(
            tf.tensor(
              Float32Array.from(original[k], (x, i) => x + eps * dir[k][i]),
              v.shape,
            ),
          );
        return logProbsLoss(m, inputs, targets);
      };
      const eps = 1e-3;
      const numeric = (lossAt(eps) - lossAt(-eps)) / (2 * eps);
      expect(Math.abs(numeric - predicted) / Math.abs(predicted)).toBeLessThan(2e-2);
      m.dispose();
    }
  });

  function logProbsLoss(m: LlamaModel, inputs: number[][], targets: number[][]): number {
    const r = logProbs(m, inputs, targets, 0.8);
    return r.logp.flat().reduce((a, b) => a + b, 0) + 0.3 * r.entropy.flat().reduce((a, b) => a + b, 0);
  }

  it("the sliced output layer equals log-softmax over full logits, value and gradient", () => {
    const rng = makeRng(11, "head");
    const N = 13;
    const C = 8;
    const V = 50;
    const h = tf.tensor2d(
      Float32Array.from({ length: N * C }, () => rng.next() * 2 - 1),
      [N, C],
    );
    const w = tf.tensor2d(
      Float32Array.from({ length: V * C }, () => rng.next() * 2 - 1),
      [V, C],
    );
    const t = tf.tensor1d(
      Array.from({ length: N }, () => rng.int(0, V - 1)),
      "int32",
    );
    const coef = tf.tensor2d(
      Float32Array.from({ length: N * 2 }, () => rng.next() - 0.5),
      [N, 2],
    );
    for (const temperature of [1, 0.6]) {
      const full = (hh: tf.Tensor2D, ww: tf.Tensor2D) => {
        const lp = tf.logSoftmax(tf.matMul(hh, ww, false, true).div(temperature));
        const logp = tf
          .gather(lp.reshape([-1]), tf.range(0, N, 1, "int32").mul(tf.scalar(V, "int32")).add(t))
          .reshape([N, 1]);
        const ent = tf.exp(lp).mul(lp).sum(1, true).neg();
        return tf.concat([logp, ent], 1);
      };
      for (const slice of [16, 50]) {
        const sliced = (hh: tf.Tensor2D, ww: tf.Tensor2D) => lmHeadLogProbs(hh, ww, t, temperature, true, slice);
        const a = tf.grads((hh: tf.Tensor, ww: tf.Tensor) =>
          full(hh as tf.Tensor2D, ww as tf.Tensor2D)
            .mul(coef)
            .sum(),
        );
        const b = tf.grads((hh: tf.Tensor, ww: tf.Tensor) =>
          sliced(hh as tf.Tensor2D, ww as tf.Tensor2D)
            .mul(coef)
            .sum(),
        );
        const expectClose = (x: tf.Tensor, y: tf.Tensor) => {
          const d = tf.tidy(() => x.sub(y).abs().max().dataSync()[0]);
          expect(d).toBeLessThan(2e-5);
        };
        expectClose(sliced(h, w), full(h, w));
        const [ga, gb] = [a([h, w]), b([h, w])];
        expectClose(ga[0], gb[0]);
        expectClose(ga[1], gb[1]);
        tf.dispose([...ga, ...gb]);
      }
    }
    tf.dispose([h, w, t, coef]);
  });

  it("segment sums by hand: rows added per id, out-of-range ids dropped, untouched segments zero", () => {
    const out = new Float32Array(6);
    segmentSum(Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), Int32Array.from([1, -1, 1, 3]), 2, 3, out);
    expect(Array.from(out)).toEqual([0, 0, 6, 8, 0, 0]);
  });

  it("gather's gradient (the embedding's): our wasm and cpu kernels equal tfjs's cpu kernel", async () => {
    const rng = makeRng(12, "segments");
    const V = 23;
    const C = 5;
    const E = Float32Array.from({ length: V * C }, () => rng.next() - 0.5);
    const ids = Array.from({ length: 40 }, () => rng.int(0, V - 1)); // repeats
    const dy = Float32Array.from({ length: 40 * C }, () => rng.next() - 0.5);
    const gatherGrad = () =>
      tf.tidy(() => {
        const g = tf.grad((e: tf.Tensor) =>
          tf
            .gather(e, tf.tensor1d(ids, "int32"))
            .mul(tf.tensor2d(dy, [40, C]))
            .sum(),
        );
        return Array.from(g(tf.tensor2d(E, [V, C])).dataSync());
      });
    const segments = () =>
      tf.tidy(() =>
        Array.from(
          tf
            .unsortedSegmentSum(tf.tensor2d(dy, [40, C]), tf.tensor1d([...ids.slice(0, 38), -1, V], "int32"), V)
            .dataSync(),
        ),
      );
    try {
      await tf.setBackend("cpu");
      unregisterUnsortedSegmentSum(); // tfjs's own cpu kernel
      const stock = [gatherGrad(), segments()];
      registerUnsortedSegmentSum();
      const oursCpu = [gatherGrad(), segments()];
      await tf.setBackend("wasm");
      const oursWasm = [gatherGrad(), segments()];
      expect(oursWasm).toEqual(stock);
      expect(oursCpu).toEqual(stock);
      // out-of-range ids (-1 and V) are dropped
      expect(stock[1].reduce((a, b) => a + b, 0)).not.toBe(0);
    } finally {
      registerUnsortedSegmentSum();
      await tf.setBackend("wasm");
    }
  });

  it("no tensor growth across tokenLogProbs + gradient", () => {
    const m = LlamaModel.load(dirs["qwen2-tied"]);
    const inputs = randomIds(13, 2, 9, m.vocabSize);
    const targets = randomIds(14, 2, 9, m.vocabSize);
    lossGrads(m, inputs, targets);
    const before = tf.memory().numTensors;
    lossGrads(m, inputs, targets);
    lossGrads(m, inputs, targets, 1);
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });
});

describe("Llama-family generation", () => {
  const greedy = { temperature: 0, topP: 1, stopIds: [] as number[] };

  for (const name of ["llama3-untied", "qwen3-untied", "qwen2-tied"]) {
    it(`${name}: greedy KV-cache decoding is the full forward's argmax at every step (prompts of several lengths)`, () => {
      const m = LlamaModel.load(dirs[name]);
      const prompts = [
        randomIds(15, 1, 5, m.vocabSize)[0],
        randomIds(16, 1, 1, m.vocabSize)[0],
        randomIds(17, 1, 9, m.vocabSize)[0],
      ];
      const { completions, finished } = m.generate(prompts, { ...greedy, maxNewTokens: 6 }, null);
      expect(finished).toEqual([false, false, false]);
      prompts.forEach((p, b) => {
        expect(completions[b]).toHaveLength(6);
        for (let i = 0; i < 6; i++) {
          const lp = nextTokenLogProbs(m, [...p, ...completions[b].slice(0, i)]);
          expect(completions[b][i]).toBe(argmax(lp));
        }
      });
      m.dispose();
    });
  }

  it("sequences that stop early leave the others unchanged (batch compaction, left padding)", () => {
    const m = LlamaModel.load(dirs["llama3-untied"]);
    const prompts = [4, 2, 7, 1].map((n, i) => randomIds(20 + i, 1, n, m.vocabSize)[0]);
    const alone = prompts.map((p) => m.generate([p], { ...greedy, maxNewTokens: 8 }, null).completions[0]);
    // stop row 1 at its 2nd token (an id that does not occur before it)
    const stopAt = alone[1].findIndex((t, i) => i >= 1 && !alone[1].slice(0, i).includes(t));
    const stopId = alone[1][stopAt];
    const batch = m.generate(prompts, { ...greedy, maxNewTokens: 8, stopIds: [stopId] }, null);
    prompts.forEach((_, b) => {
      const cut = alone[b].indexOf(stopId);
      const expected = cut >= 0 ? alone[b].slice(0, cut + 1) : alone[b];
      expect(batch.completions[b]).toEqual(expected);
      expect(batch.finished[b]).toBe(cut >= 0);
    });
    expect(batch.finished[1]).toBe(true);
    m.dispose();
  });

  it("stops at the context end and at maxNewTokens", () => {
    const m = LlamaModel.load(dirs["qwen3-untied"]); // 40 positions
    const long = randomIds(30, 1, 38, m.vocabSize)[0];
    const r = m.generate([long, [3]], { ...greedy, maxNewTokens: 5 }, null);
    expect(r.completions[0]).toHaveLength(2);
    expect(r.completions[1]).toHaveLength(5);
    expect(() => m.generate([randomIds(31, 1, 40, m.vocabSize)[0]], { ...greedy, maxNewTokens: 1 }, null)).toThrow(
      /prompt 0 has 40 tokens; max_position_embeddings is 40/,
    );
    expect(() => m.generate([[m.vocabSize]], { ...greedy, maxNewTokens: 1 }, null)).toThrow(/outside \[0, 89\)/);
    m.dispose();
  });

  it("sampling is seeded: same stream same tokens, another stream other tokens", () => {
    const m = LlamaModel.load(dirs["qwen2-tied"]);
    const prompts = [randomIds(40, 1, 3, m.vocabSize)[0], randomIds(41, 1, 6, m.vocabSize)[0]];
    const opts = { temperature: 1, topP: 1, maxNewTokens: 10, stopIds: [] };
    const a = m.generate(prompts, opts, makeRng(1, "rollout"));
    const b = m.generate(prompts, opts, makeRng(1, "rollout"));
    const c = m.generate(prompts, opts, makeRng(2, "rollout"));
    expect(a).toEqual(b);
    expect(a.completions).not.toEqual(c.completions);
    m.dispose();
  });

  for (const topP of [1, 0.6]) {
    it(`sampling draws by inverse CDF from the model's distribution, one uniform per row (top-p ${topP})`, () => {
      const m = LlamaModel.load(dirs["llama3-untied"]);
      const prompt = randomIds(50, 1, 4, m.vocabSize)[0];
      const temperature = 0.8;
      const rows = 600;
      const { completions } = m.generate(
        Array.from({ length: rows }, () => prompt),
        { temperature, topP, maxNewTokens: 1, stopIds: [] },
        makeRng(3, "sampling"),
      );
      // the same draws on the host, from the training forward's distribution
      const probs = nextTokenLogProbs(m, prompt).map((lp) => Math.exp(lp / temperature));
      const total = probs.reduce((a, b) => a + b, 0);
      const order = probs.map((_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
      const rng = makeRng(3, "sampling");
      let agree = 0;
      for (let r = 0; r < rows; r++) {
        const u = rng.next();
        let expected: number;
        if (topP < 1) {
          expected =
            order[
              nucleusPick(
                order.map((i) => probs[i]),
                total,
                topP,
                u,
                true,
              )!
            ];
        } else {
          let x = u * total;
          expected = probs.findIndex((p) => (x -= p) < 0);
        }
        if (completions[r][0] === expected) agree++;
      }
      // float32 on the device vs float64 here: only draws within rounding of a boundary may differ
      expect(agree).toBeGreaterThanOrEqual(rows - 3);
      if (topP < 1) {
        const nucleus = new Set(
          order.slice(
            0,
            nucleusPick(
              order.map((i) => probs[i]),
              total,
              topP,
              1 - 1e-12,
              true,
            )! + 1,
          ),
        );
        expect(completions.every((c) => nucleus.has(c[0]))).toBe(true);
        expect(nucleus.size).toBeLessThan(m.vocabSize / 2);
      }
      m.dispose();
    });
  }

  it("inverseCdf: the first id whose cumulative mass exceeds u·total, never a token without mass", () => {
    const cum = [0.1, 0.1, 0.5, 1.0, 1.0]; // ids 1 and 4 have no mass
    expect([0, 0.05, 0.1, 0.3, 0.5, 0.99].map((u) => inverseCdf(cum, u))).toEqual([0, 0, 2, 2, 3, 3]);
    expect(inverseCdf(cum, 1)).toBe(3); // u·total = total (rounding): the last token with mass
    expect(inverseCdf([0, 0, 2], 0)).toBe(2);
  });

  it("nucleusPick: smallest prefix holding topP of the mass, then inverse CDF within it", () => {
    const sorted = [0.5, 0.3, 0.15, 0.05];
    expect(nucleusPick(sorted, 1, 0.7, 0, false)).toBe(0);
    expect(nucleusPick(sorted, 1, 0.7, 0.7, false)).toBe(1); // 0.7·0.8 = 0.56 > 0.5
    expect(nucleusPick(sorted, 1, 0.9, 0.99, false)).toBe(2);
    expect(nucleusPick([0.5, 0.2], 1, 0.9, 0.5, false)).toBeNull(); // the rest of the row is needed
    expect(nucleusPick([0.5, 0.2], 0.7, 0.9, 0.9, true)).toBe(1);
  });

  it("prompts prefilled in chunks of rows sample what one prefill samples, with no tensor growth", () => {
    const m = LlamaModel.load(dirs["qwen2-tied"]);
    const prompts = [[1, 2, 3, 4, 5], [6], [7, 8], [9, 10, 11], [12, 13, 14, 15]];
    const opts = { temperature: 1, topP: 1, maxNewTokens: 6, stopIds: [5] };
    const whole = m.generate(prompts, opts, makeRng(4, "chunks"));
    const greedy = m.generate(prompts, { ...opts, temperature: 0 }, null);
    m.prefillBytes = 1; // one row per chunk
    const before = tf.memory().numTensors;
    expect(m.generate(prompts, opts, makeRng(4, "chunks"))).toEqual(whole);
    expect(m.generate(prompts, { ...opts, temperature: 0 }, null)).toEqual(greedy);
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });

  it("no tensor growth across a generate", () => {
    const m = LlamaModel.load(dirs["qwen2-tied"]);
    const prompts = [[1, 2, 3], [4]];
    m.generate(prompts, { temperature: 1, topP: 0.9, maxNewTokens: 4, stopIds: [] }, makeRng(1, "g"));
    const before = tf.memory().numTensors;
    m.generate(prompts, { temperature: 1, topP: 0.9, maxNewTokens: 6, stopIds: [5] }, makeRng(2, "g"));
    m.generate(prompts, { temperature: 0, topP: 1, maxNewTokens: 6, stopIds: [] }, null);
    m.generate(prompts, { temperature: 0.7, topP: 1, maxNewTokens: 6, stopIds: [] }, makeRng(3, "g"));
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });
});

describe("steering hook", () => {
  it("scale 0 is bit-identical to no hook, in tokenLogProbs and generate; null removes it", () => {
    const m = LlamaModel.load(dirs["llama3-untied"]);
    const inputs = randomIds(60, 2, 8, m.vocabSize);
    const targets = randomIds(61, 2, 8, m.vocabSize);
    const prompts = [inputs[0].slice(0, 3), inputs[1].slice(0, 5)];
    const opts = { temperature: 1, topP: 1, maxNewTokens: 6, stopIds: [] };
    const none = logProbs(m, inputs, targets);
    const genNone = m.generate(prompts, opts, makeRng(1, "s"));
    const vector = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i) * 3);
    m.setResidualAddition({ layer: 0, vector, scale: 0 });
    expect(logProbs(m, inputs, targets)).toEqual(none);
    expect(m.generate(prompts, opts, makeRng(1, "s"))).toEqual(genNone);
    m.setResidualAddition({ layer: 0, vector, scale: 1 });
    expect(logProbs(m, inputs, targets).logp).not.toEqual(none.logp);
    m.setResidualAddition(null);
    expect(logProbs(m, inputs, targets)).toEqual(none);
    expect(() => m.setResidualAddition({ layer: 2, vector, scale: 1 })).toThrow(/layer 2 outside \[0, 2\)/);
    expect(() => m.setResidualAddition({ layer: 0, vector: new Float32Array(3), scale: 1 })).toThrow(
      /hidden_size is 32/,
    );
    m.dispose();
  });

  itNumpy("a non-zero addition matches numpy's, and generation sees it too", () => {
    numpyGate();
    const m = LlamaModel.load(dirs["qwen3-untied"]);
    const inputs = randomIds(62, 2, 8, m.vocabSize);
    const targets = randomIds(63, 2, 8, m.vocabSize);
    const vector = Float32Array.from({ length: 32 }, (_, i) => Math.cos(i));
    const steer = { layer: 1, vector, scale: 2.5 };
    m.setResidualAddition(steer);
    const ref = numpyRef<Ref>({
      mode: "logprobs",
      dir: dirs["qwen3-untied"],
      inputs,
      targets,
      temperature: 1,
      steer: { ...steer, vector: Array.from(vector) },
    });
    expect(maxAbsDiff(logProbs(m, inputs, targets).logp, ref.logp)).toBeLessThan(1e-4);
    // greedy generation under the hook is the hooked forward's argmax
    const p = inputs[0].slice(0, 4);
    const { completions } = m.generate([p], { temperature: 0, topP: 1, maxNewTokens: 3, stopIds: [] }, null);
    for (let i = 0; i < 3; i++)
      expect(completions[0][i]).toBe(argmax(nextTokenLogProbs(m, [...p, ...completions[0].slice(0, i)])));
    m.dispose();
  });
});

describe("bench/hfModel.ts", () => {
  it("runs on a tiny checkpoint and reports every part", async () => {
    const r = await benchHfModel({
      checkpoint: dirs["qwen3-untied"],
      kernels: ["fast", "stock"],
      sequences: 3,
      newTokens: 4,
      promptTokens: 4,
      updateBatch: 3,
      updateLength: 6,
      microBatch: 2,
      grpoStep: true,
    });
    expect(r.family).toBe("qwen3");
    expect(r.results.map((x) => x.kernels)).toEqual(["fast", "stock"]);
    for (const x of r.results) {
      expect(x.samplingTokens).toBe(12);
      // times are measured, not asserted (a tiny model can take under the timer's resolution)
      for (const t of [x.samplingTokensPerSecond, x.updateSeconds, x.forwardSeconds, x.grpoStep?.seconds])
        expect(t !== undefined && Number.isFinite(t) && t >= 0, String(t)).toBe(true);
      expect(x.updateMicroBatchesTimed).toBe(2);
      // the whole step: one group of 8 rollouts that never stop early, 4 tokens each
      expect(x.grpoStep).toMatchObject({ copies: 1, rollouts: 8, rolloutTokens: 32, microBatch: 2, klCoef: 0.001 });
    }
    expect(r.grpoStepSeconds).toBe(r.results[0].grpoStep!.seconds);
    expect(r.peakRssMB).toBeGreaterThan(0);
    const stepOnly = await benchHfModel({
      checkpoint: dirs["qwen3-untied"],
      kernels: ["fast"],
      sequences: 8,
      newTokens: 2,
      promptTokens: 3,
      microBatch: 4,
      grpoStep: true,
      parts: false,
    });
    expect(stepOnly.results[0].samplingTokens).toBeUndefined();
    expect(stepOnly.samplingTokensPerSecond).toBeNull();
    expect(stepOnly.results[0].grpoStep).toMatchObject({ copies: 1, rollouts: 8, rolloutTokens: 16 });
    selectKernels("fast");
  });
});
