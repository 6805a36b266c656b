import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../src/engine/backend.js";
import { makeRng } from "../src/engine/rng.js";
import {
  forward,
  initParams,
  lmLoss,
  resolveModelConfig,
  countParams,
  disposeParams,
  tokenLogProbs,
} from "../src/model/gpt.js";
import { selectKernels } from "../src/model/generate.js";
import { fastKernelsActive } from "../src/kernels/tfjs/register.js";
import { generate, hostWeights, KVDecoder, sampleToken } from "../src/model/decode.js";
import { AdamW, DEFAULT_ADAMW } from "../src/model/optim.js";
import { loadCheckpoint, saveCheckpoint, decodeSafetensors, encodeSafetensors } from "../src/model/checkpoint.js";

const cfg = resolveModelConfig("gpt-nano", 58, { contextLength: 32 });

beforeAll(async () => {
  await selectBackend("wasm");
});

describe("GPT model", () => {
  it("forward gives logits [B*T, V]", () => {
    const params = initParams(cfg, 1);
    const logits = tf.tidy(() =>
      forward(
        params,
        cfg,
        tf.tensor2d(
          [
            [1, 5, 6],
            [1, 7, 8],
          ],
          [2, 3],
          "int32",
        ),
      ),
    );
    expect(logits.shape).toEqual([6, 58]);
    logits.dispose();
    disposeParams(params);
  });

  it("init is seeded: same seed same weights, other seed other weights", () => {
    const a = initParams(cfg, 3);
    const b = initParams(cfg, 3);
    const c = initParams(cfg, 4);
    expect(Array.from(a.wte.dataSync())).toEqual(Array.from(b.wte.dataSync()));
    expect(Array.from(a.wte.dataSync())).not.toEqual(Array.from(c.wte.dataSync()));
    [a, b, c].forEach(disposeParams);
  });

  it("KV-cache incremental decoding gives the full forward pass's logits within 1e-4", () => {
    const params = initParams(cfg, 2);
    // make the weights less trivial than the init: a few training steps
    const opt = new AdamW(params, DEFAULT_ADAMW);
    const names = new Map(Object.entries(params).map(([k, v]) => [v.name, k]));
    for (let i = 0; i < 3; i++) {
      const inp = tf.tensor2d([[1, 5, 6, 7, 8, 9, 10, 11]], undefined, "int32");
      const tgt = tf.tensor2d([[5, 6, 7, 8, 9, 10, 11, 2]], undefined, "int32");
      const mask = tf.ones([1, 8]) as tf.Tensor2D;
      const { value, grads } = tf.variableGrads(() => lmLoss(params, cfg, inp, tgt, mask));
      opt.apply(Object.fromEntries(Object.entries(grads).map(([k, g]) => [names.get(k)!, g])), 1e-2);
      tf.dispose([value, inp, tgt, mask, ...Object.values(grads)]);
    }
    const ids = Array.from({ length: 30 }, (_, i) => (i * 11 + 3) % 58);
    const full = tf.tidy(() => forward(params, cfg, tf.tensor2d([ids], undefined, "int32")));
    const ref = full.arraySync() as number[][];
    full.dispose();
    const dec = new KVDecoder(hostWeights(params, cfg), 1);
    const logits = new Float64Array(58);
    let maxDiff = 0;
    ids.forEach((id, t) => {
      dec.step(0, id, t, logits);
      for (let v = 0; v < 58; v++) maxDiff = Math.max(maxDiff, Math.abs(logits[v] - ref[t][v]));
    });
    expect(maxDiff).toBeLessThan(1e-4);
    opt.dispose();
    disposeParams(params);
  });

  it("seeded sampling is reproducible and greedy is deterministic", () => {
    const params = initParams(cfg, 5);
    const hw = hostWeights(params, cfg);
    const prompts = [[5, 6, 7], [8, 9], [10]];
    const opts = { temperature: 1, topP: 0.9, maxNewTokens: 12 };
    const a = generate(hw, prompts, opts, makeRng(9, "s"));
    const b = generate(hw, prompts, opts, makeRng(9, "s"));
    const c = generate(hw, prompts, opts, makeRng(10, "s"));
    expect(a).toEqual(b);
    expect(a.completions).not.toEqual(c.completions);
    const g1 = generate(hw, prompts, { ...opts, temperature: 0 }, null);
    const g2 = generate(hw, prompts, { ...opts, temperature: 0 }, makeRng(1, "x"));
    expect(g1).toEqual(g2);
    disposeParams(params);
  });

  it("sampleToken respects top-p and greedy ties", () => {
    const logits = Float64Array.from([0, Math.log(6), Math.log(3), Math.log(1)]); // probs 1/11, 6/11, 3/11, 1/11
    const rng = makeRng(1, "p");
    const seen = new Set<number>();
    for (let i = 0; i < 300; i++) seen.add(sampleToken(logits, 4, { temperature: 1, topP: 0.6 }, rng));
    // 6/11 = 0.545 < 0.6, so the nucleus is {1, 2}; ids 0 and 3 (1/11 each) are never drawn
    expect([...seen].sort()).toEqual([1, 2]);
  });

  it("tokenLogProbs' logp is the same bits with and without entropy, on the gradient tape or not, fast or stock kernels (GrpoTrainer copies the old log-probs from the graph's own)", () => {
    const params = initParams(cfg, 4);
    const rng = makeRng(4, "logp-tape");
    const ids = Array.from({ length: 6 }, () => Array.from({ length: 20 }, () => rng.int(3, 57)));
    const inputs = tf.tensor2d(
      ids.map((r) => r.slice(0, -1)),
      undefined,
      "int32",
    );
    const targets = tf.tensor2d(
      ids.map((r) => r.slice(1)),
      undefined,
      "int32",
    );
    const wasFast = fastKernelsActive();
    for (const kernels of ["fast", "stock"] as const) {
      selectKernels(kernels);
      const plain = tf.tidy(() => tokenLogProbs(params, cfg, inputs, targets).logp);
      let onTape: number[] = [];
      const { value, grads } = tf.variableGrads(() => {
        const { logp, entropy } = tokenLogProbs(params, cfg, inputs, targets, true);
        onTape = Array.from(logp.dataSync());
        return logp.sum().add(entropy!.sum()) as tf.Scalar;
      });
      expect(onTape).toEqual(Array.from(plain.dataSync()));
      tf.dispose([plain, value, ...Object.values(grads)]);
    }
    selectKernels(wasFast ? "fast" : "stock");
    tf.dispose([inputs, targets]);
    disposeParams(params);
  });

  it("tokenLogProbs at temperature T: log-probs and entropy of softmax(logits / T), computed by hand in float64", () => {
    const params = initParams(cfg, 5);
    const ids = [[1, 5, 9, 13, 20, 2]];
    const inputs = tf.tensor2d([ids[0].slice(0, -1)], undefined, "int32");
    const targets = tf.tensor2d([ids[0].slice(1)], undefined, "int32");
    const logits = tf.tidy(() => forward(params, cfg, inputs));
    const L = Array.from(logits.dataSync());
    const V = cfg.vocabSize;
    for (const T of [0.6, 1, 1.7]) {
      const { logp, entropy } = tokenLogProbs(params, cfg, inputs, targets, true, T);
      const lp = logp.dataSync();
      const ent = entropy!.dataSync();
      for (let t = 0; t < 5; t++) {
        const z = L.slice(t * V, (t + 1) * V).map((x) => x / T);
        const m = Math.max(...z);
        const lse = m + Math.log(z.reduce((a, x) => a + Math.exp(x - m), 0));
        const target = ids[0][t + 1];
        expect(Math.abs(lp[t] - (z[target] - lse))).toBeLessThan(1e-4);
        const h = -z.reduce((a, x) => a + Math.exp(x - lse) * (x - lse), 0);
        expect(Math.abs(ent[t] - h)).toBeLessThan(1e-4);
      }
      tf.dispose([logp, entropy!]);
    }
    // a lower temperature sharpens: the entropy falls
    const h = (T: number) =>
      tf.tidy(() => tokenLogProbs(params, cfg, inputs, targets, true, T).entropy!.sum().dataSync()[0]);
    expect(h(0.5)).toBeLessThan(h(1));
    expect(() => tokenLogProbs(params, cfg, inputs, targets, false, 0)).toThrow(/temperature/);
    tf.dispose([inputs, targets, logits]);
    disposeParams(params);
  });

  it("no tfjs tensor leaks across a training step or a generation", () => {
    const params = initParams(cfg, 6);
    const opt = new AdamW(params, DEFAULT_ADAMW);
    const names = new Map(Object.entries(params).map(([k, v]) => [v.name, k]));
    const trainStep = () => {
      const inp = tf.tensor2d([[1, 5, 6, 7]], undefined, "int32");
      const tgt = tf.tensor2d([[5, 6, 7, 2]], undefined, "int32");
      const mask = tf.tensor2d([[0, 1, 1, 1]]);
      const { value, grads } = tf.variableGrads(() => lmLoss(params, cfg, inp, tgt, mask));
      opt.apply(Object.fromEntries(Object.entries(grads).map(([k, g]) => [names.get(k)!, g])), 1e-3);
      tf.dispose([value, inp, tgt, mask, ...Object.values(grads)]);
    };
    trainStep(); // first call caches the causal mask
    const before = tf.memory().numTensors;
    trainStep();
    generate(hostWeights(params, cfg), [[5, 6]], { temperature: 1, topP: 1, maxNewTokens: 8 }, makeRng(1, "g"));
    expect(tf.memory().numTensors).toBe(before);
    opt.dispose();
    disposeParams(params);
  });

  it("AdamW's host update equals the same update as tfjs float32 ops, bit for bit (clipping, decay, host gradients)", () => {
    // the reference: the update written with tfjs ops, as the moments would be kept on the backend
    const reference = (
      p: tf.Variable,
      m: tf.Variable,
      v: tf.Variable,
      g0: tf.Tensor,
      c: number,
      t: number,
      lr: number,
    ) =>
      tf.tidy(() => {
        const { beta1, beta2, eps } = DEFAULT_ADAMW;
        const wd = 0.1;
        const g = c === 1 ? g0 : g0.mul(c);
        m.assign(m.mul(beta1).add(g.mul(1 - beta1)));
        v.assign(v.mul(beta2).add(g.square().mul(1 - beta2)));
        const upd = m
          .div(1 - Math.pow(beta1, t))
          .div(
            v
              .div(1 - Math.pow(beta2, t))
              .sqrt()
              .add(eps),
          )
          .add(p.mul(wd));
        p.assign(p.sub(upd.mul(lr)));
      });
    const rng = makeRng(11, "adamw-test");
    const values = (n: number, scale: number) => Array.from({ length: n }, () => (rng.next() - 0.5) * scale);
    const ours = { "w.w": tf.variable(tf.tensor2d(values(600, 1), [20, 30])) };
    const ref = tf.variable(ours["w.w"].clone());
    const [m, v] = [tf.variable(tf.zerosLike(ref)), tf.variable(tf.zerosLike(ref))];
    const opt = new AdamW(ours, { ...DEFAULT_ADAMW, weightDecay: 0.1, gradClip: 1 });
    for (let t = 1; t <= 12; t++) {
      const scale = t % 3 === 0 ? 10 : 0.01; // a large gradient every third step: clipped
      const g = tf.tensor2d(values(600, scale), [20, 30]);
      const norm = Math.sqrt((g.square().sum().dataSync() as Float32Array)[0]);
      const norm32 = opt.apply({ "w.w": t % 2 ? (g.dataSync() as Float32Array).slice() : g }, 1e-3);
      expect(norm32).toBeCloseTo(norm, 4);
      reference(ref, m, v, g, norm32 > 1 ? 1 / (norm32 + 1e-6) : 1, t, 1e-3);
      g.dispose();
    }
    expect(Array.from(ours["w.w"].dataSync())).toEqual(Array.from(ref.dataSync()));
    const state = opt.stateArrays();
    expect(Array.from(state["m.w.w"].data)).toEqual(Array.from(m.dataSync()));
    expect(Array.from(state["v.w.w"].data)).toEqual(Array.from(v.dataSync()));
    tf.dispose([ours["w.w"], ref, m, v]);
  });

  it("checkpoints round-trip through config.json + safetensors", () => {
    const params = initParams(cfg, 7);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ck-"));
    let loaded: ReturnType<typeof loadCheckpoint>;
    try {
      saveCheckpoint(dir, params, cfg, { note: "test" });
      loaded = loadCheckpoint(dir);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    expect(loaded.cfg).toEqual(cfg);
    expect(loaded.meta).toEqual({ note: "test" });
    for (const k of Object.keys(params))
      expect(Array.from(loaded.params[k].dataSync())).toEqual(Array.from(params[k].dataSync()));
    expect(Object.keys(loaded.params).length).toBe(Object.keys(params).length);
    expect(Object.values(params).reduce((a, v) => a + v.size, 0)).toBe(countParams(cfg));
    // by hand, width 64, MLP 256, vocabulary 58, context 32: wte 58·64 + wpe 32·64, per layer
    // 2·(64 + 64) norms + 64·192 + 192 + 64·64 + 64 + 64·256 + 256 + 256·64 + 64, ln_f 128, lm_head 64·58
    expect(countParams(cfg)).toBe(3712 + 2048 + 2 * (256 + 12480 + 4160 + 16640 + 16448) + 128 + 3712);
    const buf = encodeSafetensors({ a: { shape: [2], data: Float32Array.from([1, 2]) } }, { step: "3" });
    expect(decodeSafetensors(buf).metadata).toEqual({ step: "3" });
    disposeParams(params);
    disposeParams(loaded.params);
  });
});
