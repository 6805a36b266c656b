// WebAssembly decode kernel (src/model/fastDecoder.wasm via fastDecoder.ts) against the host JS
// decoder (src/model/decode.ts): logits within 1e-4, bit-identical reruns, a sequence's logits
// independent of its batch and of the thread count, and generateFast == generate token for token.
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { makeRng } from "../src/engine/rng.js";
import { disposeParams, initParams, resolveModelConfig, type ModelConfig } from "../src/model/gpt.js";
import { generate, hostWeights, KVDecoder, type GenerateOptions, type HostWeights } from "../src/model/decode.js";
import {
  decoderThreadStats,
  decoderThreadsReady,
  FastKVDecoder,
  generateFast,
  kernelMath,
} from "../src/model/fastDecoder.js";
import {
  defaultThreads,
  matMul,
  matmulAvailable,
  matmulUnavailableReason,
  setMatmulThreads,
} from "../src/kernels/matmul.js";
import { availableOrFailInCI } from "./ci.js";

const available = availableOrFailInCI(
  "test/kernels.test.ts: src/model/fastDecoder.wasm",
  FastKVDecoder.available(),
  () => `${FastKVDecoder.unavailableReason()} (build it with npm run build:kernels)`,
);
const matmulOk = availableOrFailInCI(
  "test/kernels.test.ts: src/kernels/matmul.wasm",
  matmulAvailable(),
  () => `${matmulUnavailableReason()} (build it with npm run build:kernels)`,
);

beforeAll(async () => {
  await tf.setBackend("cpu");
});

/** Init weights of `seed`, matrices scaled by `scale`, then every tensor perturbed (seeded). */
function weights(cfg: ModelConfig, seed: number, scale = 1, noise = 0.05): HostWeights {
  const params = initParams(cfg, seed);
  const src = hostWeights(params, cfg);
  disposeParams(params);
  const rng = makeRng(seed, "perturb");
  const w: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(src.w)) {
    const a = Float32Array.from(v);
    const isG = k.endsWith(".g");
    const isB = k.endsWith(".b");
    for (let i = 0; i < a.length; i++) {
      const u = rng.next() - 0.5;
      if (isG) a[i] = 1 + 4 * noise * u;
      else if (isB) a[i] = 2 * noise * u;
      else a[i] = a[i] * scale + noise * u;
    }
    w[k] = a;
  }
  return { cfg, w };
}

const CONFIGS: [string, Partial<ModelConfig>, number][] = [
  ["width 48, 3 heads, 1 layer, batch 1", { width: 48, heads: 3, layers: 1 }, 1],
  ["width 48, 3 heads, 2 layers, batch 3", { width: 48, heads: 3, layers: 2 }, 3],
  ["width 36, 3 heads (hd 12), 3 layers, batch 17", { width: 36, heads: 3, layers: 3 }, 17],
  ["width 30, 3 heads (hd 10), 2 layers, batch 5", { width: 30, heads: 3, layers: 2 }, 5],
  ["width 20, 10 heads (hd 2), 1 layer, batch 3", { width: 20, heads: 10, layers: 1 }, 3],
  ["gpt-nano shape, batch 17", {}, 17],
];

describe.skipIf(!available)("FastKVDecoder (WebAssembly SIMD)", () => {
  it("kernel exp / tanh / GELU match float64 Math", () => {
    const xs = Float32Array.from({ length: 4001 }, (_, i) => -80 + i * 0.04);
    const e = kernelMath(0, xs);
    const t = kernelMath(1, xs);
    const g = kernelMath(
      2,
      xs.map((x) => x / 8),
    );
    let eRel = 0;
    let tAbs = 0;
    let gAbs = 0;
    const c = Math.sqrt(2 / Math.PI);
    xs.forEach((x, i) => {
      eRel = Math.max(eRel, Math.abs(e[i] - Math.exp(x)) / Math.exp(x));
      tAbs = Math.max(tAbs, Math.abs(t[i] - Math.tanh(x)));
      const u = Math.fround(x / 8);
      gAbs = Math.max(gAbs, Math.abs(g[i] - 0.5 * u * (1 + Math.tanh(c * (u + 0.044715 * u * u * u)))));
    });
    expect(eRel).toBeLessThan(3e-7);
    expect(tAbs).toBeLessThan(3e-7);
    expect(gAbs).toBeLessThan(3e-6);
  });

  for (const [name, over, B] of CONFIGS) {
    it(`logits match KVDecoder within 1e-4: ${name}`, () => {
      const cfg = resolveModelConfig("gpt-nano", 58, { contextLength: 40, mlpRatio: 4, ...over });
      const hw = weights(cfg, 3 + B + cfg.layers, 8, 0.05); // init x 8 + noise: logits span several units
      const V = cfg.vocabSize;
      const T = cfg.contextLength;
      const rng = makeRng(B * 100 + cfg.width, "kernel-test");
      // sequences stop at different positions (as in generate); half the steps want logits
      const end = Array.from({ length: B }, (_, b) => (b === 0 ? T : rng.int(1, T)));
      const js = new KVDecoder(hw, B);
      const fast = new FastKVDecoder(hw, B);
      const l64 = new Float64Array(V);
      const out = new Float32Array(B * V).fill(NaN);
      let maxDiff = 0;
      let compared = 0;
      try {
        for (let pos = 0; pos < T; pos++) {
          const tokens = Int32Array.from({ length: B }, () => rng.int(0, V - 1));
          const active = Uint8Array.from({ length: B }, (_, b) => (pos < end[b] ? 1 : 0));
          const want = Uint8Array.from({ length: B }, () => (rng.next() < 0.5 ? 1 : 0));
          if (pos === T - 1) want.fill(1);
          fast.stepBatch(tokens, active, pos, want, out);
          for (let b = 0; b < B; b++) {
            if (!active[b]) continue;
            js.step(b, tokens[b], pos, want[b] ? l64 : undefined);
            if (!want[b]) continue;
            for (let v = 0; v < V; v++) maxDiff = Math.max(maxDiff, Math.abs(l64[v] - out[b * V + v]));
            compared++;
          }
        }
      } finally {
        fast.dispose();
      }
      expect(compared).toBeGreaterThan(B);
      expect(Number.isFinite(maxDiff)).toBe(true);
      expect(maxDiff).toBeLessThan(1e-4);
    });
  }

  it("is bit-identical across runs and independent of the batch a sequence runs in", () => {
    const cfg = resolveModelConfig("gpt-nano", 58, { contextLength: 40, width: 36, heads: 3, layers: 2 });
    const hw = weights(cfg, 11);
    const B = 13;
    const rng = makeRng(5, "kernel-batch");
    const toks = Array.from({ length: 30 }, () => Int32Array.from({ length: B }, () => rng.int(0, 57)));
    const runBatch = (active: (b: number) => boolean): Float32Array[] => {
      const dec = new FastKVDecoder(hw, B);
      const out = new Float32Array(B * 58);
      const res: Float32Array[] = [];
      try {
        for (let pos = 0; pos < toks.length; pos++) {
          out.fill(0);
          const act = Uint8Array.from({ length: B }, (_, b) => (active(b) ? 1 : 0));
          dec.stepBatch(toks[pos], act, pos, act, out);
          res.push(out.slice());
        }
      } finally {
        dec.dispose();
      }
      return res;
    };
    const all1 = runBatch(() => true);
    const all2 = runBatch(() => true);
    const only7 = runBatch((b) => b === 7);
    const odd = runBatch((b) => b % 2 === 1);
    for (let pos = 0; pos < toks.length; pos++) {
      expect(Array.from(all2[pos])).toEqual(Array.from(all1[pos]));
      expect(Array.from(only7[pos].subarray(7 * 58, 8 * 58))).toEqual(Array.from(all1[pos].subarray(7 * 58, 8 * 58)));
      expect(Array.from(odd[pos].subarray(7 * 58, 8 * 58))).toEqual(Array.from(all1[pos].subarray(7 * 58, 8 * 58)));
    }
  });

  it("1 thread and 2 or 3 threads give bit-identical logits; the workers take part", async () => {
    const cfg = resolveModelConfig("gpt-nano", 58, { contextLength: 40, width: 36, heads: 3, layers: 2 });
    const hw = weights(cfg, 13);
    const B = 37; // chunks of 4 rows on 3 threads, the last one short
    const rng = makeRng(6, "kernel-threads");
    const toks = Array.from({ length: 25 }, () => Int32Array.from({ length: B }, () => rng.int(0, 57)));
    const wants = toks.map((_, pos) => Uint8Array.from({ length: B }, (_, b) => ((b + pos) % 3 === 0 ? 0 : 1)));
    const runAll = (): number[][] => {
      const dec = new FastKVDecoder(hw, B);
      const out = new Float32Array(B * 58);
      const res: number[][] = [];
      try {
        for (let pos = 0; pos < toks.length; pos++) {
          out.fill(0);
          dec.stepBatch(toks[pos], new Uint8Array(B).fill(1), pos, wants[pos], out);
          res.push(Array.from(out));
        }
      } finally {
        dec.dispose();
      }
      return res;
    };
    try {
      setMatmulThreads(1);
      const one = runAll();
      for (const n of [2, 3]) {
        setMatmulThreads(n);
        expect(await decoderThreadsReady(n)).toBe(n);
        // repeated (bounded) until a worker took a chunk: on a busy machine it may wake too late
        for (let attempt = 0; attempt < 20; attempt++) {
          const before = decoderThreadStats();
          expect(runAll()).toEqual(one);
          const after = decoderThreadStats();
          expect(after.threadedSteps).toBeGreaterThan(before.threadedSteps);
          if (after.posted - after.cancelled > before.posted - before.cancelled) break;
          if (attempt === 19) throw new Error(`no worker took part in ${n}-thread decoding in 20 tries`);
        }
      }
    } finally {
      setMatmulThreads(defaultThreads());
    }
  });

  it("single-sequence step() matches KVDecoder.step and rejects bad positions and tokens", () => {
    const cfg = resolveModelConfig("gpt-nano", 58, { contextLength: 16 });
    const hw = weights(cfg, 2);
    const js = new KVDecoder(hw, 2);
    const fast = new FastKVDecoder(hw, 2);
    const a = new Float64Array(58);
    const b = new Float64Array(58);
    for (let pos = 0; pos < 16; pos++) {
      js.step(1, (pos * 5) % 58, pos, a);
      fast.step(1, (pos * 5) % 58, pos, b);
      for (let v = 0; v < 58; v++) expect(Math.abs(a[v] - b[v])).toBeLessThan(1e-4);
    }
    expect(() => fast.step(0, 3, 16)).toThrow(/position 16/);
    expect(() => fast.step(0, 58, 0)).toThrow(/token 58/);
    expect(() => fast.step(2, 3, 0)).toThrow(/sequence 2/);
    fast.dispose();
    expect(() => fast.step(0, 3, 0)).toThrow(/dispose/);
  });

  describe("generateFast == generate", () => {
    // a "trained-looking" model: init weights scaled up so the logits are far from flat
    const cfg = resolveModelConfig("gpt-nano", 58);
    const hw = weights(cfg, 21, 12, 0.02);
    const prompts = Array.from({ length: 40 }, (_, i) => {
      const r = makeRng(i, "kernel-prompts");
      return Array.from({ length: r.int(0, 20) }, () => r.int(3, 57));
    });
    const cases: [string, GenerateOptions][] = [
      ["greedy", { temperature: 0, topP: 1, maxNewTokens: 70 }],
      ["temperature 1", { temperature: 1, topP: 1, maxNewTokens: 70 }],
      ["temperature 0.7, top-p 0.9", { temperature: 0.7, topP: 0.9, maxNewTokens: 50 }],
    ];
    for (const [name, opts] of cases) {
      it(name, () => {
        let tokens = 0;
        let endedByEos = 0;
        let endedByLimit = 0;
        for (const seed of [1, 2, 3]) {
          const rngA = opts.temperature ? makeRng(seed, "kernel-sample") : null;
          const rngB = opts.temperature ? makeRng(seed, "kernel-sample") : null;
          const a = generate(hw, prompts, opts, rngA);
          const b = generateFast(hw, prompts, opts, rngB);
          expect(b).toEqual(a);
          if (rngA && rngB) expect(rngB.next()).toBe(rngA.next()); // same number of draws
          tokens += a.completions.reduce((s, c) => s + c.length, 0);
          endedByEos += a.finished.filter(Boolean).length;
          endedByLimit += a.finished.filter((f) => !f).length;
        }
        expect(tokens).toBeGreaterThan(1000);
        // both ways a sequence ends were compared: EOS, and the token limit or the context end
        expect(endedByEos).toBeGreaterThan(0);
        expect(endedByLimit).toBeGreaterThan(0);
      });
    }

    it("empty batch and prompts at the context limit behave as generate", () => {
      expect(generateFast(hw, [], { temperature: 0, topP: 1, maxNewTokens: 5 }, null)).toEqual({
        completions: [],
        finished: [],
      });
      const long = [Array.from({ length: 94 }, (_, i) => 3 + (i % 50))];
      const opts = { temperature: 0, topP: 1, maxNewTokens: 5 };
      expect(generateFast(hw, long, opts, null)).toEqual(generate(hw, long, opts, null));
      const tooLong = [Array.from({ length: 95 }, () => 4)];
      expect(() => generateFast(hw, tooLong, opts, null)).toThrow(/context/);
    });
  });
});

describe.skipIf(!matmulOk)("matMul (WebAssembly SIMD)", () => {
  it("matches a float64 reference for every transpose combination, batched and broadcast", () => {
    const rng = makeRng(3, "matmul-test");
    const shapes: [number, number, number, number][] = [
      [1, 1, 1, 1],
      [5, 7, 9, 2],
      [4, 8, 8, 1],
      [33, 300, 17, 3],
      [6, 600, 40, 1],
      [3, 0, 5, 2],
    ];
    for (const [M, K, N, batch] of shapes) {
      for (const ta of [false, true]) {
        for (const tb of [false, true]) {
          for (const broadcastB of [false, true]) {
            const a = Float32Array.from({ length: batch * M * K }, () => rng.next() - 0.5);
            const b = Float32Array.from({ length: (broadcastB ? 1 : batch) * K * N }, () => rng.next() - 0.5);
            const c = matMul(a, b, M, K, N, { transposeA: ta, transposeB: tb, batch, broadcastB });
            expect(Array.from(matMul(a, b, M, K, N, { transposeA: ta, transposeB: tb, batch, broadcastB }))).toEqual(
              Array.from(c),
            );
            let maxErr = 0;
            for (let q = 0; q < batch; q++) {
              const ao = q * M * K;
              const bo = broadcastB ? 0 : q * K * N;
              for (let i = 0; i < M; i++) {
                for (let j = 0; j < N; j++) {
                  let s = 0;
                  for (let k = 0; k < K; k++)
                    s += (ta ? a[ao + k * M + i] : a[ao + i * K + k]) * (tb ? b[bo + j * K + k] : b[bo + k * N + j]);
                  maxErr = Math.max(maxErr, Math.abs(s - c[q * M * N + i * N + j]));
                }
              }
            }
            expect(maxErr).toBeLessThan(1e-5 * Math.max(1, Math.sqrt(K)));
          }
        }
      }
    }
  });

  it("rejects inconsistent sizes", () => {
    expect(() => matMul(new Float32Array(6), new Float32Array(6), 2, 3, 3)).toThrow(/B has 6/);
    expect(() => matMul(new Float32Array(5), new Float32Array(6), 2, 3, 2)).toThrow(/A has 5/);
  });
});
