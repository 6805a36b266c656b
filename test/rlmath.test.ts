import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../src/engine/backend.js";
import { groupAdvantages, groupsWithSignal } from "../src/rl/advantages.js";
import { aggregate, clippedSurrogate, grpoLossRef, grpoLossTf, k3, k3Tf, type LossConfig } from "../src/rl/loss.js";
import { passAtK } from "../src/eval/passk.js";
import { saturationStep, summarise } from "../src/analysis/saturation.js";
import { makeRng } from "../src/engine/rng.js";

beforeAll(async () => {
  await selectBackend("cpu");
});

const close = (a: number, b: number, tol = 1e-9) => expect(Math.abs(a - b)).toBeLessThan(tol);

describe("group advantages", () => {
  it("rewards [1,0,0,0], population std, ε = 0 → [√3, −1/√3, −1/√3, −1/√3]", () => {
    const a = groupAdvantages([1, 0, 0, 0], 4, "population", 0);
    [Math.sqrt(3), -1 / Math.sqrt(3), -1 / Math.sqrt(3), -1 / Math.sqrt(3)].forEach((v, i) => close(a[i], v));
  });
  it("sample std divides by G − 1: [1,0,0,0] → [1.5, −0.5, −0.5, −0.5]", () => {
    // mean 0.25, Σ(r−m)² = 0.75, s = sqrt(0.75/3) = 0.5
    const a = groupAdvantages([1, 0, 0, 0], 4, "sample", 0);
    [1.5, -0.5, -0.5, -0.5].forEach((v, i) => close(a[i], v));
  });
  it("a group of 8 with the sample std (verl's torch.std): [1,0,0,0,0,0,0,0] → [7√2/4, −√2/4 × 7]", () => {
    // mean 1/8, Σ(r−m)² = 49/64 + 7/64 = 7/8, s = sqrt((7/8)/7) = 1/(2√2); (7/8)·2√2 = 7√2/4, (−1/8)·2√2 = −√2/4
    const a = groupAdvantages([1, 0, 0, 0, 0, 0, 0, 0], 8, "sample", 0);
    close(a[0], (7 * Math.SQRT2) / 4);
    for (let i = 1; i < 8; i++) close(a[i], -Math.SQRT2 / 4);
    // two right: mean 1/4, Σ = 2·(9/16) + 6·(1/16) = 24/16, s = sqrt(1.5/7); adv = ±(3/4 or 1/4)/s
    const b = groupAdvantages([1, 1, 0, 0, 0, 0, 0, 0], 8, "sample", 0);
    close(b[0], 0.75 / Math.sqrt(1.5 / 7));
    close(b[7], -0.25 / Math.sqrt(1.5 / 7));
  });
  it("none (Dr. GRPO) is r − mean", () => {
    const a = groupAdvantages([1, 1, 0, 0], 4, "none", 1e-6);
    [0.5, 0.5, -0.5, -0.5].forEach((v, i) => close(a[i], v));
  });
  it("an all-equal group gives zeros in every mode; groups are independent", () => {
    for (const m of ["population", "sample", "none"] as const) {
      const a = groupAdvantages([1, 1, 1, 1, 0, 0, 1, 0], 4, m, 1e-6);
      expect(a.slice(0, 4)).toEqual([0, 0, 0, 0]);
      expect(a[6]).toBeGreaterThan(0);
    }
    const b = groupAdvantages([1, 1, 0, 0, 0, 0], 3, "population", 0);
    expect(b.slice(3)).toEqual([0, 0, 0]);
    expect(groupsWithSignal([1, 1, 0, 0, 0, 0], 3)).toBe(0.5);
  });
  it("rejects an unknown std mode and a ragged batch", () => {
    expect(() => groupAdvantages([1, 0], 2, "mad" as never, 0)).toThrow(/population, sample, none/);
    expect(() => groupAdvantages([1, 0, 1], 2, "population", 0)).toThrow(/groups of 2/);
  });
});

describe("GRPO loss pieces", () => {
  it("clipped surrogate", () => {
    // ratio 1: −A
    close(clippedSurrogate(-1, -1, 2, 0.2), -2);
    // ratio e^0.5 ≈ 1.6487 > 1.2 with A > 0: clipped to 1.2·A
    close(clippedSurrogate(0, -0.5, 1, 0.2), -1.2);
    // same ratio with A < 0: min(1.6487·(−1), 1.2·(−1)) = −1.6487 → loss 1.6487
    close(clippedSurrogate(0, -0.5, -1, 0.2), Math.exp(0.5));
    // ratio e^−1 ≈ 0.3679 < 0.8 with A > 0: min(0.3679, 0.8) = 0.3679 → −0.3679
    close(clippedSurrogate(-1, 0, 1, 0.2), -Math.exp(-1));
  });
  it("clamped k3 (verl's low_var_kl): log-ratio to ±20, KL to ±c; unchanged inside the range", () => {
    close(k3(-1, -2, 10), Math.exp(-1) + 1 - 1);
    // d = ref − logp = 3: e³ − 4 = 16.0855 → clamped to 10
    close(k3(-3, 0, 10), 10);
    expect(k3(-3, 0, null)).toBeCloseTo(Math.exp(3) - 4, 9);
    // d = −30 → −20: e^−20 + 19 = 19.000000002 → 10
    close(k3(0, -30, 10), 10);
    // a smaller clamp
    close(k3(-3, 0, 5), 5);
    // tfjs: same values, and zero gradient where clamped
    const logp = tf.tensor2d([[-1, -3, 0, -0.5]]);
    const ref = tf.tensor2d([[-2, 0, -30, -0.5]]);
    const v = k3Tf(logp, ref, 10).dataSync();
    [Math.exp(-1), 10, 10, 0].forEach((x, i) => close(v[i], x, 1e-5));
    const g = tf
      .grad((lp: tf.Tensor) => k3Tf(lp, ref, 10).sum())(logp)
      .dataSync();
    // d/dlogp of e^d − d − 1 with d = ref − logp is 1 − e^d: at d = −1, 1 − e^−1; clamped entries 0
    close(g[0], 1 - Math.exp(-1), 1e-5);
    expect([g[1], g[2], g[3]].map(Math.abs)).toEqual([0, 0, 0]);
    tf.dispose([logp, ref]);
  });
  it("k3 KL is 0 at equality and exp(d) − d − 1 otherwise", () => {
    close(k3(-2, -2), 0);
    close(k3(-1, -2), Math.exp(-1) + 1 - 1); // d = −1
    expect(k3(-3, -1)).toBeGreaterThan(0);
  });
  it("aggregations on a hand-computed example", () => {
    const v = [
      [1, 2, 3],
      [4, 0, 0],
    ];
    const m = [
      [1, 1, 1],
      [1, 0, 0],
    ];
    close(aggregate(v, m, "token-mean"), 10 / 4);
    close(aggregate(v, m, "seq-mean-token-mean"), (2 + 4) / 2);
    close(aggregate(v, m, "constant", 5), 10 / (2 * 5));
    expect(() => aggregate(v, m, "sum" as never)).toThrow(/token-mean/);
  });
  it("the tfjs loss matches the reference loop over several shapes and seeds", () => {
    for (const [B, T, seed] of [
      [2, 3, 1],
      [4, 7, 2],
      [3, 1, 3],
      [8, 5, 4],
    ] as const) {
      const rng = makeRng(seed, "loss");
      const mk = (s: number) => Array.from({ length: B }, () => Array.from({ length: T }, () => -rng.next() * s));
      const x = {
        logp: mk(2),
        oldLogp: mk(2),
        refLogp: mk(2),
        entropy: mk(1).map((r) => r.map((v) => -v)),
        adv: Array.from({ length: B }, () => rng.next() * 2 - 1),
        mask: Array.from({ length: B }, () =>
          Array.from({ length: T }, (_, t) => (t === 0 || rng.next() < 0.7 ? 1 : 0)),
        ),
      };
      for (const [aggregation, klClamp] of [
        ["token-mean", null],
        ["seq-mean-token-mean", 10],
        ["constant", 0.05],
      ] as const) {
        const cfg: LossConfig = {
          pgCoef: 1,
          clipEps: 0.2,
          klCoef: 0.05,
          entropyCoef: 0.01,
          aggregation,
          constantLength: 9,
          klClamp,
        };
        const ref = grpoLossRef(x, cfg);
        const got = tf.tidy(() => {
          const r = grpoLossTf(
            {
              logp: tf.tensor2d(x.logp),
              oldLogp: tf.tensor2d(x.oldLogp),
              refLogp: tf.tensor2d(x.refLogp),
              entropy: tf.tensor2d(x.entropy),
              adv: tf.tensor1d(x.adv),
              mask: tf.tensor2d(x.mask),
            },
            cfg,
          );
          return [r.loss, r.pg, r.kl, r.entropy, r.clipFrac].map((t) => t.dataSync()[0]);
        });
        [ref.loss, ref.pg, ref.kl, ref.entropy, ref.clipFrac].forEach((v, i) => close(got[i], v, 1e-5));
      }
    }
  });
});

describe("pass@k", () => {
  it("n − c < k gives 1; c = 0 gives 0; k = 1 gives c/n", () => {
    expect(passAtK(10, 8, 3)).toBe(1);
    expect(passAtK(10, 0, 5)).toBe(0);
    close(passAtK(10, 3, 1), 0.3);
    close(passAtK(64, 17, 1), 17 / 64);
  });
  it("agrees with 1 − C(n−c, k)/C(n, k) for small n", () => {
    const C = (n: number, k: number): number => (k < 0 || k > n ? 0 : k === 0 ? 1 : (C(n - 1, k - 1) * n) / k);
    for (let n = 1; n <= 12; n++)
      for (let c = 0; c <= n; c++)
        for (let k = 1; k <= n; k++) close(passAtK(n, c, k), 1 - C(n - c, k) / C(n, k), 1e-12);
  });
  it("k > n is an error", () => {
    expect(() => passAtK(4, 1, 8)).toThrow(/larger than the number of samples/);
  });
});

describe("saturation", () => {
  const acc = (xs: number[]) => xs.map((value, i) => ({ step: i + 1, value }));
  it("is the first step whose trailing-window mean reaches the threshold", () => {
    // window 3: means at steps 3..: (0.5+0.9+1)/3=0.8, (0.9+1+1)/3=0.967 → step 4
    expect(saturationStep(acc([0.5, 0.9, 1, 1, 1]), 0.95, 3)).toBe(4);
    expect(saturationStep(acc([1, 1]), 0.95, 3)).toBeNull(); // fewer steps than the window
    expect(saturationStep(acc([0.5, 0.6, 0.7]), 0.95, 1)).toBeNull();
  });
  it("summary: held-out at saturation is the first eval at or after it; gain = final − that", () => {
    const ev = [0, 10, 20, 30].map((step, i) => ({
      step,
      heldout: [0.1, 0.3, 0.35, 0.45][i],
      format: 0.5,
      accGivenFormat: 0.6,
      sampled: null,
    }));
    const train = acc(Array.from({ length: 30 }, (_, i) => (i >= 11 ? 1 : 0.5)));
    const s = summarise(train, ev, 0.95, 5, 400);
    expect(s.saturationStep).toBe(16);
    expect(s.saturationEvalStep).toBe(20);
    close(s.heldoutAtSaturation!, 0.35);
    close(s.postSaturationGain!, 0.1);
    close(s.heldoutMax, 0.45);
    close(s.heldoutStandardError, Math.sqrt((0.45 * 0.55) / 400));
  });
});

import { historicalVariance, variance } from "../src/analysis/variance.js";

describe("historical variance score", () => {
  it("population variance and ranking, ties by index", () => {
    close(variance([0, 0.5, 1]), 1 / 6);
    const r = historicalVariance([
      [1, 1, 1],
      [0, 1, 0, 1],
      [0, 0.5, 1],
      [0.2, 0.2],
    ]);
    expect(r.map((x) => x.index)).toEqual([1, 2, 0, 3]);
    expect(r.map((x) => x.rank)).toEqual([1, 2, 3, 4]);
    close(r[0].variance, 0.25);
  });
});

import { splitGain } from "../src/analysis/saturation.js";

describe("format/skill split of a held-out gain", () => {
  it("is exact per benchmark and averaged: Δacc = a₀·Δf + f₁·Δa", () => {
    // benchmark x: f 0.5 → 0.9, a 0.6 → 0.5 (acc 0.30 → 0.45); y: f 0 → 1, acc 0 → 0.2
    const from = {
      step: 20,
      heldout: 0.15,
      format: 0.25,
      accGivenFormat: null,
      sampled: null,
      perBenchmark: { x: { greedy: 0.3, format: 0.5 }, y: { greedy: 0, format: 0 } },
    };
    const to = {
      step: 150,
      heldout: 0.325,
      format: 0.95,
      accGivenFormat: null,
      sampled: null,
      perBenchmark: { x: { greedy: 0.45, format: 0.9 }, y: { greedy: 0.2, format: 1 } },
    };
    const s = splitGain(from, to)!;
    // x: format 0.6·0.4 = 0.24, skill 0.9·(−0.1) = −0.09; y: format 0·1 = 0, skill 1·0.2 = 0.2
    close(s.format, (0.24 + 0) / 2);
    close(s.skill, (-0.09 + 0.2) / 2);
    close(s.format + s.skill, to.heldout - from.heldout);
  });
});
