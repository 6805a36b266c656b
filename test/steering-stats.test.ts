// The steering statistics and the behaviour labeller against values worked out by hand.
import { describe, expect, it } from "vitest";
import {
  cosine,
  differenceOfMeans,
  MeanAccumulator,
  meanKlFromLogits,
  meanOfShares,
  projectionCoefficient,
  recoveredShare,
  shareOverProblems,
  slopeWithCI,
  wilson,
  wilsonAtSe,
  Z95,
} from "../src/analysis/steering-stats.js";
import {
  checkBehaviours,
  keywordLabeller,
  keywordStarts,
  offsetsOf,
  organismLabeller,
  tokenAt,
} from "../src/eval/spans.js";

describe("steering statistics", () => {
  it("Wilson interval: p = 0.5, n = 100 and p = 0, n = 50", () => {
    // z² = 3.841459; denom = 1.0384146; centre = 0.5; half = 1.959964·sqrt(0.0025 + 0.0000960365)/1.0384146 = 0.0961685
    const a = wilson(0.5, 100);
    expect(a.lo).toBeCloseTo(0.5 - 0.0961685, 6);
    expect(a.hi).toBeCloseTo(0.5 + 0.0961685, 6);
    // p = 0: lo = 0, hi = z²/n / (1 + z²/n) = 0.0768292/1.0768292 = 0.0713476
    const b = wilson(0, 50);
    expect(b.lo).toBe(0);
    expect(b.hi).toBeCloseTo(0.0713476, 6);
    expect(wilson(0.3, 0)).toEqual({ lo: 0, hi: 1 });
    expect(() => wilson(1.2, 10)).toThrow(/share/);
  });

  it("share over problems: binary values give Wilson over problems; clustered samples shrink n_eff", () => {
    // 3 of 10 problems right: se² = (3·0.49 + 7·0.09)/100 = 0.021 = p(1-p)/10 -> n_eff = 10
    const g = shareOverProblems([1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
    expect(g.value).toBeCloseTo(0.3, 12);
    expect(g.nEff).toBeCloseTo(10, 9);
    expect(g.lo).toBeCloseTo(wilson(0.3, 10).lo, 12);
    // 4 problems × 4 samples, all-or-nothing per problem: se² = 4·0.25/16 = 0.0625 -> n_eff = 0.25/0.0625 = 4 (not 16)
    const c = shareOverProblems([1, 0, 1, 0], 4);
    expect(c.value).toBe(0.5);
    expect(c.se).toBeCloseTo(0.25, 12);
    expect(c.nEff).toBeCloseTo(4, 9);
    // every problem at the same share: se = 0 -> all 16 samples
    const d = shareOverProblems([0.5, 0.5, 0.5, 0.5], 4);
    expect(d.se).toBe(0);
    expect(d.nEff).toBe(16);
    expect(d.lo).toBeCloseTo(wilson(0.5, 16).lo, 12);
    // n_eff is capped at the number of samples
    expect(wilsonAtSe(0.5, 0.001, 20).nEff).toBe(20);
  });

  it("mean over benchmarks combines standard errors: se² = Σ se² / B²", () => {
    const a = shareOverProblems([1, 0, 1, 0]); // 0.5, se 0.25
    const b = shareOverProblems([1, 1, 1, 1]); // 1, se 0
    const m = meanOfShares([a, b], 8);
    expect(m.value).toBe(0.75);
    expect(m.se).toBeCloseTo(0.125, 12);
    expect(m.nEff).toBe(8); // (0.75·0.25)/0.015625 = 12, capped at the 8 samples
  });

  it("slope over scales: least squares with a normal interval from the points' errors", () => {
    // xs -1, 0, 1; ys 0.2, 0.4, 0.9: x̄ 0, Sxx 2, Sxy = -0.2 + 0.9 = 0.7 -> slope 0.35
    // Var = (1·0.01 + 0 + 1·0.04)/4 = 0.0125 -> se 0.1118034
    const r = slopeWithCI([-1, 0, 1], [0.2, 0.4, 0.9], [0.1, 0.3, 0.2]);
    expect(r.slope).toBeCloseTo(0.35, 12);
    expect(r.se).toBeCloseTo(0.1118034, 7);
    expect(r.lo).toBeCloseTo(0.35 - Z95 * 0.1118034, 6);
    expect(() => slopeWithCI([1, 1], [0, 1], [0, 0])).toThrow(/two different scales/);
  });

  it("cosine, projection coefficient, difference of means and recovered share", () => {
    expect(cosine([1, 0], [1, 1])).toBeCloseTo(Math.SQRT1_2, 12);
    expect(cosine([1, 2], [-2, -4])).toBeCloseTo(-1, 12);
    expect(cosine([0, 0], [1, 1])).toBeNaN();
    expect(projectionCoefficient([3, 4], [1, 0])).toBe(3);
    expect(projectionCoefficient([2, 2], [2, 2])).toBe(1);
    const all = new MeanAccumulator(2);
    const spans = new MeanAccumulator(2);
    const rows = [1, 2, 3, 4, 5, 6]; // rows (1,2), (3,4), (5,6)
    for (let r = 0; r < 3; r++) all.addRow(rows, r);
    spans.addRow(rows, 2);
    expect(all.mean()).toEqual(Float64Array.from([3, 4]));
    expect(differenceOfMeans(spans, all)).toEqual(Float64Array.from([2, 2]));
    // rms norm: sqrt((5 + 25 + 61)/3)
    expect(all.rmsNorm()).toBeCloseTo(Math.sqrt(91 / 3), 12);
    expect([...differenceOfMeans(new MeanAccumulator(2), all)].every(Number.isNaN)).toBe(true);
    expect(recoveredShare(0, 0.5, 0.1)).toBeCloseTo(0.2, 12);
    expect(recoveredShare(0.5, 0, 0.4)).toBeCloseTo(0.2, 12);
    expect(recoveredShare(0.3, 0.3, 0.4)).toBeNull();
  });

  it("KL between next-token distributions from logits", () => {
    // p = (0.5, 0.5), q = (0.25, 0.75): KL = 0.5 ln 2 + 0.5 ln(2/3) = 0.1438410
    const p = [0, 0];
    const q = [0, Math.log(3)];
    expect(meanKlFromLogits(p, q, 2)).toBeCloseTo(0.143841, 6);
    // two rows: the same row twice (0) and the one above -> mean 0.0719205; logits shifted by a constant: same
    expect(meanKlFromLogits([5, 5, 0, 0], [1, 1, 7, 7 + Math.log(3)], 2)).toBeCloseTo(0.0719205, 6);
    expect(meanKlFromLogits([1, 2, 3], [1, 2, 3], 3)).toBe(0);
  });
});

describe("behaviour labels", () => {
  it("tokenAt and keyword starts with multi-character tokens", () => {
    // tokens "ab", "c r", "ech", "eck", " wa", "it": offsets 0, 2, 5, 8, 11, 14
    const pieces = ["ab", "c r", "ech", "eck", " wa", "it"];
    const offsets = offsetsOf(pieces);
    expect(offsets).toEqual([0, 2, 5, 8, 11, 14]);
    const text = pieces.join("");
    expect(tokenAt(offsets, 0)).toBe(0);
    expect(tokenAt(offsets, 4)).toBe(1);
    expect(tokenAt(offsets, 5)).toBe(2);
    expect(keywordStarts(text, offsets, "recheck")).toEqual([1]);
    expect(keywordStarts(text, offsets, "wait")).toEqual([4]);
    const lab = keywordLabeller().label("Wait, recheck", offsetsOf([..."Wait, recheck"]));
    expect(lab.spans).toEqual({ wait: [0], recheck: [6], verify: [] });
    expect(lab.present).toEqual({ wait: true, recheck: true, verify: false });
  });

  it("organism labels: procedures open at token 0, #### and recheck at their first character", () => {
    const L = organismLabeller();
    const lab = (t: string) => L.label(t, offsetsOf([...t]));
    const check = lab("3*4=13 recheck 3*4=12;12+1=13 ok;####13");
    expect(check.present.check).toBe(true);
    expect(check.spans.check).toEqual([0]);
    expect(check.spans.careful).toEqual([]);
    expect(check.spans.recheck).toEqual([7]);
    expect(check.spans.format).toEqual([33]);
    const hasty = lab("####7");
    expect(hasty.spans.hasty).toEqual([0]);
    expect(hasty.spans.format).toEqual([0]);
    const nomarker = lab("3+4=7;so 7");
    expect(nomarker.present).toMatchObject({ nomarker: true, careful: false, format: false });
    // an empty completion is nomarker but opens no span (it has no token)
    expect(lab("")).toMatchObject({ present: { nomarker: true }, spans: { nomarker: [] } });
  });

  it("an unknown behaviour is refused with the valid list", () => {
    expect(() => checkBehaviours(organismLabeller(), ["careful", "carefull"])).toThrow(
      /unknown behaviour "carefull"; valid \(organism labels\): careful, check, hasty, nomarker, format, recheck/,
    );
    expect(() => checkBehaviours(keywordLabeller(), ["hmm"])).toThrow(
      /valid \(keywords labels\): wait, recheck, verify/,
    );
  });
});
