import { describe, expect, it } from "vitest";
import { makeRng } from "../src/engine/rng.js";
import { FAMILY_NAMES, hardSteps, makeProblem, parseProblem } from "../src/world/families.js";
import {
  classifyProcedure,
  inverseOf,
  renderDrill,
  renderSolution,
  digitCheckOf,
  stepCheck,
  unitsCheckOf,
  DEFAULT_SLIPS,
} from "../src/world/procedures.js";
import { CORPUS_PRESETS, corpusStream, DEFAULT_CORPUS } from "../src/world/corpus.js";
import { readItems } from "../src/world/datasets.js";
import {
  accuracyByProcedure,
  evalStep,
  stepErrorRate,
  summariseVerifications,
  verifications,
} from "../src/eval/behaviours.js";
import {
  difficultyOf,
  drillPrompts,
  formatBreakdown,
  procedureBreakdown,
  summariseDrills,
} from "../src/eval/procedures.js";

const noSlips = { easy: 0, hard: 0, catchRate: 1, hastyRight: 1, checkSlipBoost: 1 };
const allSlips = { easy: 1, hard: 1, catchRate: 1, hastyRight: 0, checkSlipBoost: 1 };

/** the verified segments of a check solution: `lhs=v,inv=w` then ` ok` or a recheck */
const SEGMENT =
  /^(-?\d+[-+*/]-?\d+)=(-?\d+),(-?\d+[-+*/]-?\d+)=(-?\d+)(?: recheck (-?\d+[-+*/]-?\d+)=(-?\d+),(-?\d+[-+*/]-?\d+)=(-?\d+))? ok$/;

describe("the verify check style", () => {
  it("inverts each kind of step by hand", () => {
    expect(inverseOf("45-18", 27, false)).toEqual({ expr: "27+18", value: 45, target: 45 });
    expect(inverseOf("80+32", 113, true)).toEqual({ expr: "113-32", value: 81, target: 80 });
    expect(inverseOf("32/8", 4, true)).toEqual({ expr: "4*8", value: 32, target: 32 });
    expect(inverseOf("-18+24", 6, false)).toEqual({ expr: "6-24", value: -18, target: -18 });
    expect(inverseOf("30*9", 270, true)).toEqual({ expr: "270/9", value: 30, target: 30 });
    // the rounded division misses a slip smaller than half the divisor and catches a larger one
    expect(inverseOf("60*7", 418, true)).toEqual({ expr: "418/7", value: 60, target: 60 });
    expect(inverseOf("60*7", 410, true)).toEqual({ expr: "410/7", value: 59, target: 60 });
    // products before the answer are not verified
    expect(inverseOf("9*5", 45, false)).toBeNull();
  });

  it("without slips every verification passes and the answer is right; classifyProcedure says check", () => {
    const rng = makeRng(5, "t");
    for (const f of FAMILY_NAMES) {
      for (let i = 0; i < 50; i++) {
        const p = makeProblem(f, rng);
        const s = renderSolution(p, "check", rng, noSlips, "verify");
        expect(s.text.endsWith(`####${p.answer}`)).toBe(true);
        expect(s.text).not.toContain("recheck");
        expect(classifyProcedure(s.text)).toBe("check");
        const segs = s.text
          .split(";")
          .slice(0, -1)
          .filter((x) => x.includes(","));
        expect(segs.length).toBeGreaterThan(0);
        for (const seg of segs) {
          const m = SEGMENT.exec(seg)!;
          expect(m).not.toBeNull();
          expect(evalStep(m[1])).toBe(Number(m[2]));
          expect(evalStep(m[3])).toBe(Number(m[4]));
          expect(Number(m[4])).toBe(Number(/^-?\d+/.exec(m[1])![0]));
        }
      }
    }
  });

  it("a failed verification is followed by a recheck with the right step, verified", () => {
    const rng = makeRng(6, "t");
    let failures = 0;
    for (const f of FAMILY_NAMES) {
      for (let i = 0; i < 50; i++) {
        const p = makeProblem(f, rng);
        const s = renderSolution(p, "check", rng, allSlips, "verify");
        expect(classifyProcedure(s.text)).toBe("check");
        for (const seg of s.text.split(";").filter((x) => x.includes(","))) {
          const m = SEGMENT.exec(seg)!;
          expect(m).not.toBeNull();
          const first = Number(/^-?\d+/.exec(m[1])![0]);
          const passed = Number(m[4]) === first;
          expect(m[5] === undefined).toBe(passed);
          if (!passed) {
            failures++;
            expect(m[5]).toBe(m[1]);
            expect(evalStep(m[5])).toBe(Number(m[6]));
            expect(evalStep(m[7])).toBe(Number(m[8]));
            expect(Number(m[8])).toBe(first);
          }
        }
        // add and lin verify every step, so the answer is right whatever slipped
        if (f === "add" || f === "lin") expect(s.final).toBe(Number(p.answer));
      }
    }
    expect(failures).toBeGreaterThan(100);
  });

  it("the default corpus is unchanged (pinned from the recompute style) and is the base preset", () => {
    expect(CORPUS_PRESETS.base).toBe(DEFAULT_CORPUS);
    const s = corpusStream(DEFAULT_CORPUS, new Set());
    const texts = Array.from({ length: 4 }, () => {
      const it = s.next().value!;
      return it.prompt + it.completion;
    });
    expect(texts).toEqual([
      "28*4?20*4=80;8*4=32;80+32=113;so 113",
      "12+9-4?####27",
      "8 boxes of 11 eat 30?8*11=88;88-30=58;####58",
      "27+28-23?27+28=55;55-23=32;####32",
    ]);
    const rng1 = makeRng(9, "t");
    const rng2 = makeRng(9, "t");
    const p = makeProblem("mul", makeRng(2, "p"));
    expect(renderSolution(p, "check", rng1, DEFAULT_SLIPS).text).toBe(
      renderSolution(p, "check", rng2, DEFAULT_SLIPS, "recompute").text,
    );
  });

  it("the reflect corpora: a written check, unboosted slips, drills, nothing longer than the context", () => {
    for (const [name, style] of [
      ["reflect", "verify"],
      ["reflect-units", "units"],
      ["reflect-digit", "digit"],
    ] as const) {
      const { checkStyle, maxChars, drills, slips, ...rest } = CORPUS_PRESETS[name];
      const { slips: baseSlips, ...baseRest } = DEFAULT_CORPUS;
      expect(rest).toEqual(baseRest);
      expect(slips).toEqual({ ...baseSlips, checkSlipBoost: 1 });
      expect(checkStyle).toBe(style);
      const s = corpusStream(CORPUS_PRESETS[name], new Set());
      const counts: Record<string, number> = {};
      for (let i = 0; i < 3000; i++) {
        const it = s.next().value!;
        expect(it.prompt.length + it.completion.length).toBeLessThanOrEqual(maxChars);
        counts[it.procedure] = (counts[it.procedure] ?? 0) + 1;
        if (it.procedure !== "drill") expect(classifyProcedure(it.completion)).toBe(it.procedure);
      }
      expect(counts.drill / 3000).toBeCloseTo(drills, 1);
      expect(counts.check / 3000).toBeGreaterThan(0.06);
    }
  });

  it("a drill verifies a claimed step: a right claim passes, a wrong one is rechecked and redone right", () => {
    const rng = makeRng(12, "t");
    let wrong = 0;
    for (let i = 0; i < 400; i++) {
      const p = makeProblem(FAMILY_NAMES[i % 4], rng);
      const d = renderDrill(p, rng);
      // every family's solution has a verified step, so every problem gives a drill
      if (!d) throw new Error(`no drill for ${p.prompt}`);
      const claim = /^(-?\d+[-+*/]-?\d+)=(-?\d+)\?$/.exec(d.prompt)!;
      expect(claim).not.toBeNull();
      const m =
        /^,(-?\d+[-+*/]-?\d+)=(-?\d+)(?: recheck (-?\d+[-+*/]-?\d+)=(-?\d+),(-?\d+[-+*/]-?\d+)=(-?\d+))? ok$/.exec(
          d.completion,
        )!;
      expect(m).not.toBeNull();
      expect(evalStep(m[1])).toBe(Number(m[2]));
      const right = evalStep(claim[1]) === Number(claim[2]);
      const target = Number(/^-?\d+/.exec(claim[1])![0]);
      if (!claim[1].includes("*")) expect(Number(m[2]) === target).toBe(right);
      if (m[3] !== undefined) {
        wrong++;
        expect(m[3]).toBe(claim[1]);
        expect(evalStep(m[3])).toBe(Number(m[4]));
        expect(Number(m[6])).toBe(target);
      } else expect(Number(m[2])).toBe(target);
    }
    expect(wrong / 400).toBeGreaterThan(0.35);
    expect(wrong / 400).toBeLessThan(0.6);
  });

  it("parseProblem recovers every benchmark problem, steps and answer included", () => {
    const rng = makeRng(11, "t");
    for (const f of FAMILY_NAMES) {
      for (let i = 0; i < 100; i++) {
        const p = makeProblem(f, rng);
        const q = parseProblem(p.prompt)!;
        expect(q.family).toBe(f);
        expect(q.answer).toBe(p.answer);
        expect(q.steps.map((x) => [x.lhs, x.value, x.hard])).toEqual(p.steps.map((x) => [x.lhs, x.value, x.hard]));
      }
    }
    for (const f of FAMILY_NAMES)
      for (const item of readItems(`data/benchmarks/${f}.jsonl`))
        expect(parseProblem(item.prompt)!.answer).toBe(item.answer);
    expect(parseProblem("hello")).toBeNull();
    expect(hardSteps(parseProblem("45*3")!)).toBe(2); // 40*3=120 (≥ 100) and 5*3=15 (≥ 10); 120+15 no carry
  });
});

describe("the units check style", () => {
  it("checks units digits by hand", () => {
    const c = (lhs: string, v: number, last = false) => {
      const r = unitsCheckOf(lhs, v, last)!;
      return { expr: r.expr, value: r.value, passes: r.passes(r.value) };
    };
    expect(c("45-18", 27)).toEqual({ expr: "7+8", value: 15, passes: true }); // 15 ends in 45's 5
    expect(c("45-18", 26)).toEqual({ expr: "6+8", value: 14, passes: false });
    expect(c("45-18", 37)).toEqual({ expr: "7+8", value: 15, passes: true }); // a slip of 10 passes unseen
    expect(c("75+38", 113)).toEqual({ expr: "13-8", value: 5, passes: true }); // borrows: 13-8 is 75's 5
    expect(c("80+32", 113)).toEqual({ expr: "3-2", value: 1, passes: false });
    expect(c("96/8", 12)).toEqual({ expr: "2*8", value: 16, passes: true });
    expect(c("96/8", 11)).toEqual({ expr: "1*8", value: 8, passes: false });
    expect(c("30*9", 270, true)).toEqual({ expr: "0*9", value: 0, passes: true });
    expect(c("30*9", 271, true)).toEqual({ expr: "0*9", value: 0, passes: false });
    expect(unitsCheckOf("9*5", 45, false)).toBeNull();
    // a negative number: the whole inverse
    expect(c("-18+24", 6)).toEqual({ expr: "6-24", value: -18, passes: true });
    expect(stepCheck("verify", "45-18", 27, false)!.expr).toBe("27+18");
  });

  it("a units check that fails is followed by a recheck and the right step; right steps pass", () => {
    const rng = makeRng(13, "t");
    let failures = 0;
    for (const f of FAMILY_NAMES) {
      for (let i = 0; i < 100; i++) {
        const p = makeProblem(f, rng);
        const clean = renderSolution(p, "check", rng, noSlips, "units");
        expect(clean.text).not.toContain("recheck");
        expect(clean.text.endsWith(`####${p.answer}`)).toBe(true);
        expect(classifyProcedure(clean.text)).toBe("check");
        const s = renderSolution(p, "check", rng, allSlips, "units");
        expect(classifyProcedure(s.text)).toBe("check");
        const segs = s.text.split(";");
        for (const [k, seg] of segs.entries()) {
          if (!seg.includes(",")) continue;
          const m = SEGMENT.exec(seg)!;
          expect(m).not.toBeNull();
          const check = unitsCheckOf(m[1], Number(m[2]), k === segs.length - 2)!;
          if (m[5] === undefined) expect(check.passes(Number(m[4]))).toBe(true);
          else {
            failures++;
            expect(check.passes(Number(m[4]))).toBe(false);
            expect(m[5]).toBe(m[1]);
            expect(evalStep(m[5])).toBe(Number(m[6]));
            expect(evalStep(m[7])).toBe(Number(m[8]));
          }
        }
      }
    }
    expect(failures).toBeGreaterThan(100);
  });
});

describe("the digit check style", () => {
  it("recomputes units digits and writes the digit compared, by hand", () => {
    const c = (lhs: string, v: number, last = false) => {
      const r = digitCheckOf(lhs, v, last)!;
      return { expr: r.expr, value: r.value, compare: r.compare, passes: r.passes(r.value) };
    };
    expect(c("45-18", 27)).toEqual({ expr: "15-8", value: 7, compare: 7, passes: true });
    expect(c("45-18", 26)).toEqual({ expr: "15-8", value: 7, compare: 6, passes: false });
    expect(c("45-18", 37)).toEqual({ expr: "15-8", value: 7, compare: 7, passes: true }); // ±10 unseen
    expect(c("75+38", 113)).toEqual({ expr: "5+8", value: 13, compare: 3, passes: true });
    expect(c("96/8", 12)).toEqual({ expr: "2*8", value: 16, compare: 6, passes: true });
    expect(c("96/8", 11)).toEqual({ expr: "1*8", value: 8, compare: 6, passes: false });
    expect(c("30*9", 271, true)).toEqual({ expr: "0*9", value: 0, compare: 1, passes: false });
    expect(digitCheckOf("9*5", 45, false)).toBeNull();
    expect(c("-18+24", 6)).toEqual({ expr: "6-24", value: -18, compare: -18, passes: true });
  });

  it("solutions and drills: a check shows `expr=r:d`, rechecks exactly when r's units digit is not d", () => {
    const rng = makeRng(15, "t");
    let rechecks = 0;
    for (let i = 0; i < 400; i++) {
      const p = makeProblem(FAMILY_NAMES[i % 4], rng);
      const s = renderSolution(p, "check", rng, allSlips, "digit");
      const d = renderDrill(p, rng, "digit")!;
      expect(classifyProcedure(s.text)).toBe("check");
      expect(renderSolution(p, "check", rng, noSlips, "digit").text.endsWith(`####${p.answer}`)).toBe(true);
      for (const text of [s.text, d.prompt + d.completion])
        for (const m of text.matchAll(
          /(-?\d+[-+*/]-?\d+)=(-?\d+),(-?\d+[-+*/]-?\d+)=(-?\d+):(-?\d+)( recheck (-?\d+[-+*/]-?\d+)=(-?\d+))?/g,
        )) {
          expect(evalStep(m[3])).toBe(Number(m[4]));
          const agrees = Number(m[4]) === Number(m[5]) || (Number(m[4]) >= 0 && Number(m[4]) % 10 === Number(m[5]));
          expect(m[6] !== undefined).toBe(!agrees);
          if (m[6]) {
            rechecks++;
            expect(m[7]).toBe(m[1]);
            expect(evalStep(m[7])).toBe(Number(m[8]));
          }
        }
    }
    expect(rechecks).toBeGreaterThan(200);
  });
});

describe("units drills", () => {
  it("a drill's units check decides the recheck, and the redo is right", () => {
    const rng = makeRng(14, "t");
    let rechecks = 0;
    for (let i = 0; i < 400; i++) {
      const p = makeProblem(FAMILY_NAMES[i % 4], rng);
      const d = renderDrill(p, rng, "units")!;
      const claim = /^(-?\d+[-+*/]-?\d+)=(-?\d+)\?$/.exec(d.prompt)!;
      const m =
        /^,(-?\d+[-+*/]-?\d+)=(-?\d+)(?: recheck (-?\d+[-+*/]-?\d+)=(-?\d+),(-?\d+[-+*/]-?\d+)=(-?\d+))? ok$/.exec(
          d.completion,
        )!;
      expect(evalStep(m[1])).toBe(Number(m[2]));
      const isLast = p.steps[p.steps.length - 1].lhs === claim[1];
      const check = unitsCheckOf(claim[1], Number(claim[2]), isLast)!;
      expect(m[1]).toBe(check.expr);
      expect(m[3] !== undefined).toBe(!check.passes(Number(m[2])));
      if (m[3] !== undefined) {
        rechecks++;
        expect(evalStep(m[3])).toBe(Number(m[4]));
      }
    }
    expect(rechecks / 400).toBeGreaterThan(0.25);
  });
});

describe("per-procedure accuracy and verification statistics", () => {
  it("accuracyByProcedure counts by hand", () => {
    const r = accuracyByProcedure([
      { completion: "2+3=5,5-3=2 ok;####5", reward: 1 },
      { completion: "2+3=6,6-3=3 recheck 2+3=5,5-3=2 ok;####5", reward: 1 },
      { completion: "2+3=6;####6", reward: 0 },
      { completion: "2+3=5;####5", reward: 1 },
      { completion: "####7", reward: 0 },
    ]);
    expect(r.check).toEqual({ n: 2, correct: 2, accuracy: 1 });
    expect(r.careful).toEqual({ n: 2, correct: 1, accuracy: 0.5 });
    expect(r.hasty).toEqual({ n: 1, correct: 0, accuracy: 0 });
    expect(r.nomarker).toEqual({ n: 0, correct: 0, accuracy: null });
  });

  it("verifications judge steps, checks and corrections by their own arithmetic", () => {
    expect(evalStep("7/2")).toBe(4);
    expect(evalStep("-18+24")).toBe(6);
    expect(evalStep("x")).toBeNull();
    expect(stepErrorRate(["2+3=5;5*2=11;####11", "7-2=5;so 5"])).toBeCloseTo(1 / 3, 12);
    expect(stepErrorRate(["####5"])).toBeNull();
    expect(stepErrorRate(["2+3=5;5*2=11;####11", "7-2=5;so 5"], "+-/")).toBe(0);
    const v = verifications("45-18=23,23+18=41 recheck 45-18=27,27+18=45 ok;####27");
    expect(v).toEqual([
      { stepRight: false, verificationRight: true, failed: true, redoRight: true, verdictConsistent: null },
    ]);
    // the digit style: 15-8=7 against the written 6 must recheck; against 7 it must pass
    expect(verifications("45-18=26,15-8=7:6 recheck 45-18=27,15-8=7:7 ok;####27")).toEqual([
      { stepRight: false, verificationRight: true, failed: true, redoRight: true, verdictConsistent: true },
    ]);
    expect(verifications("45-18=26,15-8=7:6 ok;####26")[0].verdictConsistent).toBe(false);
    expect(verifications("5+8=13,5+8=13:3 recheck 5+8=13,5+8=13:3 ok;####13")[0].verdictConsistent).toBe(false);
    // a miss: wrong step, wrong verification that "passes"
    expect(verifications("45-18=23,23+18=45 ok;####23")).toEqual([
      { stepRight: false, verificationRight: false, failed: false, redoRight: null, verdictConsistent: null },
    ]);
    const s = summariseVerifications([
      "45-18=23,23+18=41 recheck 45-18=27,27+18=45 ok;####27", // caught, corrected
      "45-18=23,23+18=45 ok;####23", // missed
      "9*5=45;45-18=27,27+18=45 ok;####27", // right, passes
      "45-18=27,27+18=44 recheck 45-18=26,26+18=44 ok;####26", // false alarm, wrong redo
      "9*5=45;45-18=27;####27", // no verification
    ]);
    expect(s).toEqual({
      steps: 4,
      stepErrorRate: 0.5,
      verificationAccuracy: 0.5,
      detectionRate: 0.5,
      falseAlarmRate: 0.5,
      failed: 2,
      correctionRate: 0.5,
      correctionRateOnWrong: 1,
      verdictConsistency: null,
    });
  });
});

describe("procedureBreakdown", () => {
  it("splits accuracy per procedure by difficulty and separates checks with a recheck", () => {
    // 12+5 has no carry (0 hard steps); 45-18 borrows (1 hard step)
    expect(difficultyOf("12+5")).toBe("0");
    expect(difficultyOf("45-18")).toBe("1");
    expect(difficultyOf("45*3")).toBe("2+");
    expect(() => difficultyOf("nonsense")).toThrow(/nonsense/);
    const b = procedureBreakdown([
      { prompt: "12+5", completion: "12+5=17,17-5=12 ok;####17", reward: 1 },
      { prompt: "12+5", completion: "12+5=17;####17", reward: 1 },
      { prompt: "45-18", completion: "45-18=23,23+18=41 recheck 45-18=27,27+18=45 ok;####27", reward: 1 },
      { prompt: "45-18", completion: "45-18=23;####23", reward: 0 },
      { prompt: "45-18", completion: "45-18=27,27+18=45 ok;####27", reward: 1 },
      { prompt: "45-18", completion: "45-18=27;so 27", reward: 0 },
    ]);
    expect(b.samples).toBe(6);
    expect(b.accuracy).toBeCloseTo(4 / 6, 12);
    expect(b.byProcedure.check).toEqual({ n: 3, correct: 3, accuracy: 1 });
    expect(b.byProcedure.careful).toEqual({ n: 2, correct: 1, accuracy: 0.5 });
    expect(b.byDifficulty["0"].samples).toBe(2);
    expect(b.byDifficulty["1"].byProcedure.careful).toEqual({ n: 1, correct: 0, accuracy: 0 });
    expect(b.byDifficulty["1"].byProcedure.check).toEqual({ n: 2, correct: 2, accuracy: 1 });
    expect(b.byDifficulty["2+"].samples).toBe(0);
    expect(b.checkWithRecheck).toEqual({ n: 1, correct: 1, accuracy: 1 });
    expect(b.checkWithoutRecheck).toEqual({ n: 2, correct: 2, accuracy: 1 });
    expect(b.verification.steps).toBe(3);
    expect(b.verification.detectionRate).toBe(1);
    expect(b.verification.falseAlarmRate).toBe(0);
    // careful work: 12+5=17 right, 45-18=23 wrong
    expect(b.carefulStepErrorRate).toBe(0.5);
    expect(formatBreakdown({ all: b })).toContain("1.000 (   3)");
  });
});

describe("drills as a measurement", () => {
  it("reads a claim and the model's check as one verified step", () => {
    const s = summariseDrills([
      { prompt: "22-9=13?", completion: ",13+9=22 ok" }, // right claim, passes
      { prompt: "22-9=14?", completion: ",14+9=22 ok" }, // wrong claim, copied operand: missed
      { prompt: "22-9=14?", completion: ",14+9=23 recheck 22-9=13,13+9=22 ok" }, // caught and redone right
      { prompt: "22-9=13?", completion: ",12-9=4:3 recheck 22-9=13,12-9=3:3 ok" }, // false alarm from a wrong check
    ]);
    expect(s.steps).toBe(4);
    expect(s.stepErrorRate).toBe(0.5);
    expect(s.verificationAccuracy).toBe(0.5);
    expect(s.detectionRate).toBe(0.5);
    expect(s.falseAlarmRate).toBe(0.5);
    expect(s.correctionRate).toBe(1);
    expect(s.verdictConsistency).toBe(1); // 4 against the written 3: a recheck, as it must
  });

  it("drill prompts are deterministic for a stream and wrong about half the time", () => {
    const a = drillPrompts("digit", 200, makeRng(1, "d"));
    expect(a).toEqual(drillPrompts("digit", 200, makeRng(1, "d")));
    expect(a).toHaveLength(200);
    const wrong = a.filter((p) => {
      const m = /^(-?\d+[-+*/]-?\d+)=(-?\d+)\?$/.exec(p)!;
      return evalStep(m[1]) !== Number(m[2]);
    }).length;
    expect(wrong / 200).toBeGreaterThan(0.35);
    expect(wrong / 200).toBeLessThan(0.65);
  });
});
