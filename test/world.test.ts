import { describe, expect, it } from "vitest";
import { makeRng } from "../src/engine/rng.js";
import { FAMILY_NAMES, makeProblem } from "../src/world/families.js";
import { classifyProcedure, renderSolution } from "../src/world/procedures.js";
import { corpusStream, DEFAULT_CORPUS } from "../src/world/corpus.js";
import { DEFAULT_DATASETS, generateDatasets, readItems } from "../src/world/datasets.js";
import { loadBenchmarks } from "../src/eval/benchmarks.js";

describe("world", () => {
  it("generators are deterministic for a seed and differ across seeds", () => {
    for (const f of FAMILY_NAMES) {
      const a = Array.from(
        { length: 20 },
        (
          (r) => () =>
            makeProblem(f, r).prompt
        )(makeRng(7, f)),
      );
      const b = Array.from(
        { length: 20 },
        (
          (r) => () =>
            makeProblem(f, r).prompt
        )(makeRng(7, f)),
      );
      const c = Array.from(
        { length: 20 },
        (
          (r) => () =>
            makeProblem(f, r).prompt
        )(makeRng(8, f)),
      );
      expect(a).toEqual(b);
      expect(a).not.toEqual(c);
    }
  });

  it("careful solutions without slips end in the right answer in the graded form", () => {
    const rng = makeRng(3, "t");
    const noSlips = { easy: 0, hard: 0, catchRate: 1, hastyRight: 1, checkSlipBoost: 1 };
    for (const f of FAMILY_NAMES) {
      for (let i = 0; i < 50; i++) {
        const p = makeProblem(f, rng);
        for (const proc of ["careful", "check", "hasty"] as const) {
          const s = renderSolution(p, proc, rng, noSlips);
          expect(s.text.endsWith(`####${p.answer}`)).toBe(true);
          expect(classifyProcedure(s.text)).toBe(proc);
        }
        const nm = renderSolution(p, "nomarker", rng, noSlips);
        expect(nm.text.endsWith(`so ${p.answer}`)).toBe(true);
        expect(classifyProcedure(nm.text)).toBe("nomarker");
      }
    }
  });

  it("the check procedure corrects the slips it catches with the word recheck", () => {
    const rng = makeRng(4, "t");
    const p = makeProblem("mul", rng, { maxOperand: 99 });
    const s = renderSolution(p, "check", rng, { easy: 1, hard: 1, catchRate: 1, hastyRight: 0, checkSlipBoost: 1 });
    expect(s.text).toContain("recheck");
    expect(s.final).toBe(Number(p.answer));
  });

  it("committed benchmarks match the generator and its recorded seed, with >= 200 problems per family", () => {
    const { benchmarks, pool } = generateDatasets(DEFAULT_DATASETS);
    for (const f of FAMILY_NAMES) {
      const file = readItems(`data/benchmarks/${f}.jsonl`);
      expect(file.length).toBeGreaterThanOrEqual(200);
      expect(file).toEqual(benchmarks[f]);
    }
    expect(readItems("data/pool/pool.jsonl")).toEqual(pool);
  });

  it("pool and benchmarks are disjoint, and the corpus never shows a held-out problem", () => {
    const held = new Set(loadBenchmarks(null, null).flatMap((b) => b.items.map((i) => i.prompt)));
    const pool = readItems("data/pool/pool.jsonl");
    for (const p of pool) expect(held.has(p.prompt)).toBe(false);
    const s = corpusStream(DEFAULT_CORPUS, held);
    for (let i = 0; i < 2000; i++) expect(held.has(s.next().value!.problem.prompt)).toBe(false);
  });

  it("the corpus mixture is a parameter", () => {
    const only = { ...DEFAULT_CORPUS, mixture: { careful: 0, check: 0, hasty: 1, nomarker: 0 } };
    const s = corpusStream(only, new Set());
    for (let i = 0; i < 50; i++) expect(s.next().value!.procedure).toBe("hasty");
  });
});
