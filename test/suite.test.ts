// Tests of the findings suite and the features its findings need: the verdict rule and the
// aggregation against hand-computed values, the metric language on a hand-made metrics table, the
// RESULTS.md generator (pure, and the suite command end to end on fixture run directories — no
// training), the loss's policy-gradient coefficient (0 → no gradient through the surrogate), the
// format-only reward, the schedule of several examples, the experiment schema's new fields, every
// committed finding file, and a `--only` dry run.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseMetricsCsv } from "../src/analysis/compare.js";
import {
  armValues,
  claimVerdict,
  evaluateClaims,
  findingVerdict,
  pairedDifferences,
  parseMetric,
  parseValueRef,
  resultsMarkdown,
  runValue,
  transferTable,
  verdictLine,
  type ClaimResult,
  type FindingDef,
  type FindingReport,
  type RunTable,
  type SuiteData,
} from "../src/analysis/findings.js";
import { meanCI, studentTQuantile } from "../src/analysis/stats.js";
import { validateExperiment } from "../src/experiment/schema.js";
import { AdamW } from "../src/model/optim.js";
import { reward } from "../src/reward/verifier.js";
import { grpoLossRef, grpoLossTf, type LossConfig } from "../src/rl/loss.js";
import { rewardOf } from "../src/rl/reward.js";
import { epochOrder, stepExamples } from "../src/rl/schedule.js";
import { runId } from "../src/sweep/expand.js";
import { checkConflicts, runPaths } from "../src/sweep/layout.js";
import { findingJsonSchema, loadSuite, parseFinding, suiteRuns } from "../src/sweep/suite.js";

const close = (a: number, b: number, tol = 1e-9) => expect(Math.abs(a - b)).toBeLessThanOrEqual(tol);
const T2 = studentTQuantile(0.975, 2); // 4.302652729…

describe("verdict rule", () => {
  it("a > b: reproduced when the whole interval is above 0, opposite below, else not reproduced", () => {
    // [0.2, 0.21, 0.22]: mean 0.21, s = 0.01, half-width 4.3027·0.01/√3 = 0.02484
    expect(claimVerdict(meanCI([0.2, 0.21, 0.22]), ">")).toBe("reproduced");
    expect(claimVerdict(meanCI([-0.2, -0.21, -0.22]), ">")).toBe("opposite");
    // [0.1, 0.2, 0.3]: mean 0.2, s = 0.1, half-width 0.2484 → interval (−0.048, 0.448) contains 0
    const ci = meanCI([0.1, 0.2, 0.3]);
    close(ci.halfWidth!, (T2 * 0.1) / Math.sqrt(3), 1e-9);
    expect(claimVerdict(ci, ">")).toBe("not reproduced");
    expect(claimVerdict(ci, "<")).toBe("not reproduced");
  });
  it("a < b mirrors a > b", () => {
    expect(claimVerdict(meanCI([-0.2, -0.21, -0.22]), "<")).toBe("reproduced");
    expect(claimVerdict(meanCI([0.2, 0.21, 0.22]), "<")).toBe("opposite");
  });
  it("≈: reproduced when the interval contains 0 and |mean| ≤ 0.05, else not reproduced (never opposite)", () => {
    expect(claimVerdict(meanCI([0.01, -0.01, 0.0]), "≈")).toBe("reproduced");
    // mean 0.07 > 0.05 though the interval (−0.11, 0.25) contains 0
    expect(claimVerdict(meanCI([0.0, 0.07, 0.14]), "≈")).toBe("not reproduced");
    // a clear difference
    expect(claimVerdict(meanCI([0.2, 0.21, 0.22]), "≈")).toBe("not reproduced");
  });
  it("fewer than two paired values: no data", () => {
    expect(claimVerdict(meanCI([0.3]), ">")).toBe("no data");
    expect(claimVerdict(meanCI([]), "≈")).toBe("no data");
  });
  it("a finding: reproduced when all claims are, opposite when some are and none reproduced", () => {
    expect(findingVerdict(["reproduced", "reproduced"])).toBe("reproduced");
    expect(findingVerdict(["reproduced", "not reproduced"])).toBe("not reproduced");
    expect(findingVerdict(["opposite", "not reproduced"])).toBe("opposite");
    expect(findingVerdict(["opposite", "reproduced"])).toBe("not reproduced");
    expect(findingVerdict(["no data", "no data"])).toBe("no data");
    expect(findingVerdict(["no data", "reproduced"])).toBe("not reproduced");
    expect(findingVerdict([])).toBe("no data");
  });
});

/**
 * A hand-made run: steps 0–10, evaluations at 0, 5 and 10; training accuracy 0.5, 0.5, then 1 from
 * step 3 (window 2, threshold 0.95 → saturation at step 4, first evaluation after it: step 5);
 * held-out greedy 0.1, 0.3, 0.4 (+ offset); add/lin recheck rates (0, 0.1, 0.3) and (0.2, 0.1, 0.1).
 */
function fixtureCsv(offset = 0): string {
  const cols = [
    "step",
    "train_accuracy",
    "heldout_greedy",
    "heldout_format",
    "heldout_acc_given_format",
    "add_greedy",
    "add_greedy_format",
    "lin_greedy",
    "lin_greedy_format",
    "add_recheck_rate",
    "lin_recheck_rate",
  ];
  const held: Record<number, number> = { 0: 0.1, 5: 0.3, 10: 0.4 };
  const addR: Record<number, number> = { 0: 0, 5: 0.1, 10: 0.3 };
  const linR: Record<number, number> = { 0: 0.2, 5: 0.1, 10: 0.1 };
  const lines = [cols.join(",")];
  for (let s = 0; s <= 10; s++) {
    const train = s === 0 ? "" : s < 3 ? "0.5" : "1";
    if (s in held) {
      const h = held[s] + offset;
      // add is 0.1 below the mean, lin 0.1 above; both fully in the graded form
      lines.push(
        [s, train, h, 1, h, h - 0.1, 1, h + 0.1, 1, addR[s], linR[s]].map((x) => (x === "" ? "" : String(x))).join(","),
      );
    } else lines.push([s, train, "", "", "", "", "", "", "", "", ""].join(","));
  }
  return lines.join("\n") + "\n";
}

const run = (seed: number, offset = 0): RunTable => ({
  seed,
  table: parseMetricsCsv(fixtureCsv(offset), `fixture seed ${seed}`),
  threshold: 0.95,
  window: 2,
});

describe("metrics of a run", () => {
  const r = run(1);
  it("parses the metric language, and says what it accepts", () => {
    expect(parseMetric("gain")).toEqual({ kind: "summary", key: "gain" });
    expect(parseMetric("pass@256")).toEqual({ kind: "passk", k: 256 });
    expect(parseMetric("heldout_greedy@20")).toEqual({
      kind: "column",
      columns: { column: "heldout_greedy" },
      when: 20,
    });
    expect(parseMetric("*_recheck_rate@sat")).toEqual({
      kind: "column",
      columns: { suffix: "_recheck_rate", benchmarks: "all" },
      when: "sat",
    });
    expect(parseMetric("{add,lin}_greedy@final").kind).toBe("column");
    expect(() => parseMetric("heldout_greedy")).toThrow(/<column>@<step\|start\|final\|sat\|peak>/);
    expect(() => parseValueRef("gain")).toThrow(/<arm>:<metric>/);
    expect(parseValueRef("pg:heldout_final").arm).toBe("pg");
  });
  it("summary metrics and gain", () => {
    close(runValue(r, parseMetric("heldout_final"))!, 0.4);
    close(runValue(r, parseMetric("gain"))!, 0.3);
    expect(runValue(r, parseMetric("saturation_step"))).toBe(4);
    close(runValue(r, parseMetric("post_saturation_gain"))!, 0.1);
  });
  it("columns at a step, start, final, sat and peak; means over benchmarks", () => {
    close(runValue(r, parseMetric("heldout_greedy@5"))!, 0.3);
    expect(runValue(r, parseMetric("heldout_greedy@7"))).toBeNull();
    close(runValue(r, parseMetric("train_accuracy@1"))!, 0.5);
    close(runValue(r, parseMetric("train_accuracy@final"))!, 1);
    // mean recheck rate: (0+0.2)/2 = 0.1, (0.1+0.1)/2 = 0.1, (0.3+0.1)/2 = 0.2
    close(runValue(r, parseMetric("*_recheck_rate@start"))!, 0.1);
    close(runValue(r, parseMetric("*_recheck_rate@sat"))!, 0.1);
    close(runValue(r, parseMetric("*_recheck_rate@final"))!, 0.2);
    close(runValue(r, parseMetric("*_recheck_rate@peak"))!, 0.2);
    close(runValue(r, parseMetric("{add}_recheck_rate@final"))!, 0.3);
    expect(runValue(r, parseMetric("{add,mul}_recheck_rate@final"))).toBeNull();
  });
});

describe("aggregation over seeds", () => {
  const def: FindingDef = {
    name: "x",
    title: "x. Test",
    question: "q",
    paper: { source: "s", direction: "d" },
    seeds: [1, 2, 3],
    arms: [{ label: "hi" }, { label: "lo" }],
    claims: [
      { text: "hi beats lo", a: "hi:heldout_final", b: "lo:heldout_final", expect: ">" },
      { text: "hi gains", a: "hi:gain", b: 0, expect: ">" },
    ],
    table: "arms",
    columns: [],
    plot: "training",
  };
  // hi: offsets 0.1, 0.2, 0.3 → finals 0.5, 0.6, 0.7; lo: offset 0 except seed 3 missing
  const data: SuiteData = {
    arms: [
      { label: "hi", runs: [run(1, 0.1), run(2, 0.2), run(3, 0.3)] },
      { label: "lo", runs: [run(1), run(2)] },
    ],
  };
  it("pairs by seed, dropping seeds where either side is missing", () => {
    const a = armValues(data, parseValueRef("hi:heldout_final"), def.seeds);
    const b = armValues(data, parseValueRef("lo:heldout_final"), def.seeds);
    expect(b.get(3)).toBeNull();
    const d = pairedDifferences(a, b);
    expect(d.length).toBe(2);
    close(d[0], 0.1, 1e-12);
    close(d[1], 0.2, 1e-12);
    expect(pairedDifferences(a, 0.5).map((x) => Number(x.toFixed(9)))).toEqual([0, 0.1, 0.2]);
  });
  it("claims: the mean, interval and verdict of the paired differences", () => {
    const [c1, c2] = evaluateClaims(def, data);
    // d = 0.1, 0.2: mean 0.15, s = 0.0707, t(0.975, 1) = 12.706 → half-width 0.635
    close(c1.ci.mean!, 0.15, 1e-12);
    close(c1.ci.halfWidth!, (studentTQuantile(0.975, 1) * Math.sqrt(0.005)) / Math.sqrt(2), 1e-9);
    expect(c1.verdict).toBe("not reproduced");
    // gains are 0.3 for every seed: s = 0, the interval is the point 0.3
    close(c2.ci.mean!, 0.3, 1e-12);
    expect(c2.verdict).toBe("reproduced");
    expect(verdictLine([c1, c2])).toBe(
      "**Verdict: not reproduced** (1 of 2 claims as in the paper, 1 not reproduced).",
    );
  });
  it("the transfer table: final − step-0 gain per benchmark", () => {
    const t = transferTable({ ...def, table: "transfer" }, data);
    expect(t.columns).toEqual(["add", "lin"]);
    // add: (h − 0.1) final − start = 0.4 − 0.1 = 0.3 for every seed
    close(t.rows[0].cells[0].mean!, 0.3, 1e-12);
    expect(t.rows[1].cells[0].n).toBe(2);
  });
});

describe("RESULTS.md", () => {
  const def = (name: string, title: string): FindingDef => ({
    name,
    title,
    question: "Does it?",
    paper: { source: "Table 9", direction: "it does (71.8 vs 39.8)" },
    seeds: [1, 2, 3],
    arms: [{ label: "a", paper: 71.8 }],
    claims: [{ text: "it does", a: "a:gain", b: 0, expect: ">" }],
    table: "arms",
    columns: [],
    plot: "training",
  });
  const claim = (diffs: number[]): ClaimResult => {
    const ci = meanCI(diffs);
    return { text: "it does", a: "a:gain", b: 0, expect: ">", diffs, ci, verdict: claimVerdict(ci, ">") };
  };
  const base = {
    missingRuns: [],
    ownRuns: 3,
    ownRunSeconds: 90,
    table: null,
    figure: "docs/figures/suite/x.svg",
    command: "npm run suite -- --only x",
  };
  const reports: FindingReport[] = [
    { ...base, def: def("x-yes", "x. Yes"), skipped: null, claims: [claim([0.2, 0.21, 0.22])] },
    { ...base, def: def("y-no", "y. No"), skipped: null, claims: [claim([-0.2, -0.21, -0.22])] },
    {
      ...base,
      def: def("z-skip", "z. Skipped"),
      skipped: "the base checkpoint data/models/nope is not there",
      claims: [],
    },
  ];
  const text = resultsMarkdown(reports, {
    command: "npm run suite",
    out: "results/suite",
    wallSeconds: 3725,
    invocations: 2,
    jobs: [2, 2],
    runSeconds: 7200,
    runs: 54,
    passkSeconds: 600,
    machine: "a test machine",
  });
  it("has a summary row, a verdict line and the paper's direction per finding", () => {
    expect(text).toMatch(/\| \[x\. Yes\]\(#x-yes\) \| reproduced \| 1 of 1 \|/);
    expect(text).toMatch(/\| \[y\. No\]\(#y-no\) \| opposite \| 0 of 1 \|/);
    expect(text).toContain("**Verdict: reproduced** (1 of 1 claims as in the paper).");
    expect(text).toContain("**Verdict: opposite** (0 of 1 claims as in the paper, 1 opposite).");
    expect(text).toContain("**Paper** (Table 9): it does (71.8 vs 39.8)");
    expect(text).toContain("Reproduce: `npm run suite -- --only x`");
    expect(text).toContain("![x. Yes](docs/figures/suite/x.svg)");
  });
  it("states the wall time and what is missing", () => {
    expect(text).toContain("**Wall time on a test machine:** 1 h 02 min over 2 invocations");
    expect(text).toContain("the 54 training runs took 2 h 00 min summed over runs");
    expect(text).toContain("- z. Skipped: not run — the base checkpoint data/models/nope is not there.");
  });
});

describe("npm run suite on fixture run directories (no training)", () => {
  let dir: string;
  const finding = (name: string, extra: object = {}) => ({
    name,
    title: `${name}. Test finding`,
    question: "Does the fixture gain?",
    paper: { source: "nowhere", direction: "it gains" },
    base: "experiments/smoke.json",
    seeds: [1, 2, 3],
    arms: [
      { label: "one", description: "as the base" },
      { label: "two", set: { "grpo.loss.pgCoef": 0 } },
    ],
    claims: [
      { text: "one gains", a: "one:gain", b: 0, expect: ">" },
      { text: "one beats two", a: "one:heldout_final", b: "two:heldout_final", expect: ">" },
    ],
    ...extra,
  });
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "suite-test-"));
    fs.mkdirSync(path.join(dir, "suite"));
    fs.writeFileSync(path.join(dir, "suite", "x-fix.json"), JSON.stringify(finding("x-fix")));
    fs.writeFileSync(
      path.join(dir, "suite", "y-gone.json"),
      JSON.stringify(finding("y-gone", { set: { checkpoint: "data/models/not-there" } })),
    );
    // runs of x-fix: arm one at offsets 0.1·seed, arm two at 0
    for (const [arm, off] of [
      ["one", (s: number) => 0.1 * s],
      ["two", () => 0],
    ] as const)
      for (const seed of [1, 2, 3]) {
        const d = path.join(dir, "out", `x-fix-${arm}`, `seed-${seed}`);
        fs.mkdirSync(d, { recursive: true });
        fs.writeFileSync(path.join(d, "metrics.csv"), fixtureCsv(off(seed)));
        fs.writeFileSync(
          path.join(d, "config.resolved.json"),
          JSON.stringify({ name: `x-fix-${arm}`, seeds: [seed], saturation: { threshold: 0.95, window: 2 } }),
        );
        fs.writeFileSync(path.join(d, "summary.json"), "{}");
        fs.writeFileSync(path.join(d, "timing.json"), JSON.stringify({ seconds: 30 }));
      }
    fs.mkdirSync(path.join(dir, "out", "invocations"));
    fs.writeFileSync(
      path.join(dir, "out", "invocations", "1.json"),
      JSON.stringify({ seconds: 100, jobs: 2, runsDone: 6, passkDone: 0, passkSeconds: 0 }),
    );
    fs.writeFileSync(
      path.join(dir, "out", "invocations", "2.json"),
      JSON.stringify({ seconds: 50, jobs: 2, runsDone: 0, passkDone: 0, passkSeconds: 0 }),
    );
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("--report-only writes RESULTS.md and a figure from the run files", () => {
    const r = spawnSync(
      process.execPath,
      [
        "--import",
        "tsx",
        "src/cli/suite.ts",
        "--suite",
        path.join(dir, "suite"),
        "--out",
        path.join(dir, "out"),
        "--results",
        path.join(dir, "RESULTS.md"),
        "--figures",
        path.join(dir, "figs"),
        "--report-only",
      ],
      { encoding: "utf8" },
    );
    expect(r.status, r.stderr).toBe(0);
    const text = fs.readFileSync(path.join(dir, "RESULTS.md"), "utf8");
    // one's finals 0.5, 0.6, 0.7 against two's 0.4: d = 0.1, 0.2, 0.3 → 0.200 ± 0.248, not reproduced
    expect(text).toMatch(
      /\| one beats two \| `one:heldout_final` \| `two:heldout_final` \| \+0\.200 ± 0\.248 \(n = 3\)/,
    );
    // gains are 0.3 in every seed
    expect(text).toMatch(/\| one gains \| `one:gain` \| 0 \| \+0\.300 ± 0\.000 \(n = 3\)/);
    expect(text).toContain("**Verdict: not reproduced** (1 of 2 claims as in the paper, 1 not reproduced).");
    expect(text).toContain("1 min 40 s over 1 invocation of `npm run suite` that ran work");
    expect(text).toContain("the 6 training runs took 3 min 00 s summed over runs");
    expect(text).toContain("y-gone. Test finding: not run — the base checkpoint data/models/not-there is not there.");
    expect(fs.readFileSync(path.join(dir, "figs", "x-fix.svg"), "utf8")).toMatch(/^<svg/);
  });
});

describe("the policy-gradient coefficient", () => {
  const x = {
    logp: [
      [-0.5, -1.2],
      [-0.3, -2.0],
    ],
    oldLogp: [
      [-0.6, -1.0],
      [-0.3, -1.9],
    ],
    refLogp: [
      [-0.4, -1.1],
      [-0.2, -2.2],
    ],
    entropy: [
      [0.7, 0.9],
      [0.4, 0.2],
    ],
    adv: [1.5, -0.5],
    mask: [
      [1, 1],
      [1, 0],
    ],
  };
  const cfg = (pgCoef: number, klCoef = 0, entropyCoef = 0): LossConfig => ({
    pgCoef,
    clipEps: 0.2,
    klCoef,
    entropyCoef,
    aggregation: "token-mean",
    constantLength: 2,
    klClamp: 10,
  });
  const gradLogp = (c: LossConfig) =>
    tf.tidy(() => {
      const g = tf.grad(
        (logp: tf.Tensor) =>
          grpoLossTf(
            {
              logp,
              oldLogp: tf.tensor2d(x.oldLogp),
              refLogp: tf.tensor2d(x.refLogp),
              entropy: tf.tensor2d(x.entropy),
              adv: tf.tensor1d(x.adv),
              mask: tf.tensor2d(x.mask),
            },
            c,
          ).loss,
      )(tf.tensor2d(x.logp));
      return Array.from(g.dataSync());
    });
  it("pgCoef 0 with no other term: the loss and its gradient are exactly zero", () => {
    expect(gradLogp(cfg(0)).every((v) => v === 0)).toBe(true);
    expect(grpoLossRef(x, cfg(0)).loss).toBe(0);
    expect(gradLogp(cfg(1)).some((v) => v !== 0)).toBe(true);
  });
  it("pgCoef scales the surrogate: loss = c·pg + β·kl − α·entropy", () => {
    const r1 = grpoLossRef(x, cfg(1, 0.1, 0.01));
    const r0 = grpoLossRef(x, cfg(0, 0.1, 0.01));
    const rh = grpoLossRef(x, cfg(0.5, 0.1, 0.01));
    close(r0.loss, 0.1 * r1.kl - 0.01 * r1.entropy, 1e-12);
    close(rh.loss, 0.5 * r1.pg + 0.1 * r1.kl - 0.01 * r1.entropy, 1e-12);
    const g1 = gradLogp(cfg(1, 0.1));
    const g0 = gradLogp(cfg(0, 0.1));
    const g2 = gradLogp(cfg(2, 0.1));
    // linear in c: g(2) − g(1) = g(1) − g(0) (the pg gradient)
    g1.forEach((v, i) => close(g2[i] - v, v - g0[i], 1e-6));
  });
  it("no loss at all leaves the weights exactly where they were (zero gradients, no weight decay)", () => {
    const p = { "w.w": tf.variable(tf.tensor2d([[0.3, -0.7]])) };
    const opt = new AdamW(p, { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, gradClip: 1 });
    const before = Array.from(p["w.w"].dataSync());
    const zero = tf.zeros([1, 2]);
    for (let i = 0; i < 3; i++) expect(opt.apply({ "w.w": zero }, 1e-4)).toBe(0);
    expect(Array.from(p["w.w"].dataSync())).toEqual(before);
    tf.dispose([zero, p["w.w"]]);
    opt.dispose();
  });
});

describe("format-only reward", () => {
  it("rewards the graded form whatever the answer; the outcome reward needs the right answer", () => {
    const wrong = reward("27+5=32;32/8=4;####5", "4");
    const right = reward("27+5=32;32/8=4;####4", "4");
    const none = reward("27+5=32;32/8=4;so 4", "4");
    expect([rewardOf(wrong.parts, "format"), rewardOf(wrong.parts, "outcome")]).toEqual([1, 0]);
    expect([rewardOf(right.parts, "format"), rewardOf(right.parts, "outcome")]).toEqual([1, 1]);
    expect([rewardOf(none.parts, "format"), rewardOf(none.parts, "outcome")]).toEqual([0, 0]);
    expect(() => rewardOf(right.parts, "length" as never)).toThrow(/outcome, format/);
  });
});

describe("several training examples", () => {
  it("one example: every group is it", () => {
    expect(stepExamples(1, 8, 1, 1)).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(stepExamples(1, 8, 99, 5)).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
  });
  it("epochs are seeded permutations; steps take consecutive slices of them", () => {
    const o = epochOrder(64, 0, 1);
    expect([...o].sort((a, b) => a - b)).toEqual(Array.from({ length: 64 }, (_, i) => i));
    expect(epochOrder(64, 0, 1)).toEqual(o);
    expect(epochOrder(64, 1, 1)).not.toEqual(o);
    expect(epochOrder(64, 0, 2)).not.toEqual(o);
    // 64 examples, 8 copies: steps 1–8 are epoch 0 in order, each example once
    const first8 = Array.from({ length: 8 }, (_, s) => stepExamples(64, 8, s + 1, 1)).flat();
    expect(first8).toEqual(o);
    expect(stepExamples(64, 8, 9, 1)).toEqual(epochOrder(64, 1, 1).slice(0, 8));
  });
  it("two examples, eight copies: four groups each per step", () => {
    for (const step of [1, 2, 17]) {
      const g = stepExamples(2, 8, step, 3);
      expect(g.filter((i) => i === 0).length).toBe(4);
      expect(g.filter((i) => i === 1).length).toBe(4);
    }
    // 3 examples, 2 copies: step 2 straddles epochs 0 and 1
    expect(stepExamples(3, 2, 2, 1)).toEqual([epochOrder(3, 0, 1)[2], epochOrder(3, 1, 1)[0]]);
  });
  it("the schema takes `example` or `examples`, never both or neither", () => {
    const ok = validateExperiment({ name: "x", examples: "data/pool/pool.jsonl" }, "x.json");
    expect(ok.examples).toBe("data/pool/pool.jsonl");
    expect(ok.grpo.loss.pgCoef).toBe(1);
    expect(ok.grpo.reward).toBe("outcome");
    expect(() =>
      validateExperiment({ name: "x", example: { prompt: "1+1", answer: "2" }, examples: [] }, "x.json"),
    ).toThrow(/examples/);
    expect(() =>
      validateExperiment(
        { name: "x", example: { prompt: "1+1", answer: "2" }, examples: [{ prompt: "1+2", answer: "3" }] },
        "x.json",
      ),
    ).toThrow(/x\.json: invalid experiment:\n {2}field `examples`: give the training data once/);
    expect(() => validateExperiment({ name: "x" }, "x.json")).toThrow(/field `example`: no training data/);
    expect(() => validateExperiment({ name: "x", examples: "p.jsonl", grpo: { reward: "length" } }, "x.json")).toThrow(
      /grpo\.reward/,
    );
  });
});

describe("run identity across added defaults", () => {
  it("a run file written before a defaulted field existed is still the same run", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "suite-ids-"));
    try {
      const config = validateExperiment({ name: "r", seeds: [1], example: { prompt: "12*2", answer: "24" } }, "r.json");
      const old = structuredClone(config) as any;
      delete old.grpo.reward;
      delete old.grpo.loss.pgCoef;
      const p = runPaths(dir, { name: "r", seed: 1 });
      fs.mkdirSync(path.dirname(p.file), { recursive: true });
      fs.mkdirSync(p.dir, { recursive: true });
      fs.writeFileSync(p.file, JSON.stringify(old));
      const runs = [{ id: runId(config), name: "r", seed: 1, example: "e", values: {}, config }];
      expect(() => checkConflicts(dir, runs)).not.toThrow();
      const changed = validateExperiment({ ...config, steps: 7 }, "r.json");
      expect(() => checkConflicts(dir, [{ ...runs[0], id: runId(changed), config: changed }])).toThrow(
        /different configuration/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the committed suite", () => {
  it("every finding file validates; arms expand into runs with unique names; ≥ 3 seeds each", () => {
    const all = loadSuite("experiments/suite");
    expect(all.map((f) => f.name[0])).toEqual("abcdefghijkl".split(""));
    const runs = suiteRuns(all, all);
    const keys = runs.map((r) => `${r.name}/${r.seed}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const f of all) expect(f.seeds.length).toBeGreaterThanOrEqual(3);
    // the default arm is the default experiment, run once for every finding that uses it
    const full = runs.filter((r) => r.name === "a-loss-ablation-full");
    expect(full.length).toBe(3);
    const def = JSON.parse(fs.readFileSync("experiments/default.json", "utf8"));
    expect(full[0].config.grpo.loss).toEqual(validateExperiment(def, "default").grpo.loss);
    // the pool arm trains on every pool problem, inline
    const pool = runs.find((r) => r.name === "e-data-size-pool")!;
    expect(Array.isArray(pool.config.examples) && pool.config.examples.length).toBe(64);
  });
  it("suite.schema.json is the one `npm run schema` writes", () => {
    expect(JSON.parse(fs.readFileSync("experiments/suite/suite.schema.json", "utf8"))).toEqual(findingJsonSchema());
  });
  it("a finding's errors name the file and the field", () => {
    const bad = {
      name: "q-bad",
      title: "t",
      question: "q",
      paper: { source: "s", direction: "d" },
      base: "experiments/default.json",
      seeds: [1, 2, 3],
      arms: [{ label: "a", set: { "grpo.lerningRate": 1 } }],
      claims: [{ text: "t", a: "b:gain", b: 0, expect: ">" }],
    };
    expect(() => parseFinding(JSON.stringify(bad), "experiments/suite/q-bad.json")).toThrow(
      /q-bad\.json: invalid finding:\n {2}`arms\.0 \(a\)\.set`: key `grpo\.lerningRate` is not an experiment field — did you mean `grpo\.learningRate`\?[\s\S]*`claims\.0\.a`: unknown arm "b"/,
    );
    expect(() => parseFinding(JSON.stringify({ ...bad, seeds: [1, 2] }), "q-bad.json")).toThrow(/seeds/);
  });
  it("--only NAME --dry-run lists that finding's runs (and the arms it borrows) and runs nothing", () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "suite-dry-"));
    try {
      const r = spawnSync(
        process.execPath,
        ["--import", "tsx", "src/cli/suite.ts", "--only", "c-format-reward", "--dry-run", "--out", out],
        { encoding: "utf8" },
      );
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain("c-format-reward: c. Format-only reward");
      expect(r.stdout).toMatch(/a-loss-ablation-full seed 1 {2}[0-9a-f]{16} {2}not started/);
      expect(r.stdout).toMatch(/c-format-reward-format seed 3 {2}[0-9a-f]{16} {2}not started/);
      expect(r.stdout).toContain("6 runs into");
      expect(fs.readdirSync(out)).toEqual([]);
      const bad = spawnSync(
        process.execPath,
        ["--import", "tsx", "src/cli/suite.ts", "--only", "c-format", "--dry-run"],
        {
          encoding: "utf8",
        },
      );
      expect(bad.status).toBe(1);
      expect(bad.stderr).toMatch(/--only c-format: no such finding in experiments\/suite \(findings: a-loss-ablation/);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
