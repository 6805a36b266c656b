// Solution procedures of the pretraining corpus: how a problem's steps are written as text.
//   careful  — step by step, ends in the graded form `####N`; slips are carried to the answer
//   check    — step by step with a self-check after each step (` ok`), that catches most slips
//              and corrects them (` recheck e=v`): the backtracking behaviour
//   hasty    — `####N` straight away, right only sometimes
//   nomarker — careful work that ends `so N`: never in the graded form (a format failure)
// Pure text generation from a seeded stream; the corpus mixture lives in corpus.ts.
import type { Rng } from "../engine/rng.js";
import type { Problem } from "./families.js";

export const PROCEDURES = ["careful", "check", "hasty", "nomarker"] as const;
export type Procedure = (typeof PROCEDURES)[number];

export const SEPARATOR = "?";
export const MARKER = "####";
export const SELF_CHECK_WORDS = ["recheck", "ok"] as const;

export interface SlipRates {
  /** probability of a slip on an easy step */
  easy: number;
  /** probability of a slip on a hard step (carry, borrow, large product, division) */
  hard: number;
  /** probability that the check procedure catches a slip it made */
  catchRate: number;
  /** probability that a hasty answer is right */
  hastyRight: number;
  /** slip rates in the check procedure are multiplied by this, so that catching a slip
   * ("recheck") is common enough in the corpus to be learned */
  checkSlipBoost: number;
}

export const DEFAULT_SLIPS: SlipRates = { easy: 0.03, hard: 0.12, catchRate: 0.9, hastyRight: 0.3, checkSlipBoost: 2 };

function slip(rng: Rng, value: number): number {
  const delta = rng.pick([-10, -2, -1, 1, 2, 10]);
  return value + delta;
}

export interface Solution {
  text: string;
  /** the final number the solution states (graded or not) */
  final: number;
  procedure: Procedure;
}

/** Renders one solution text (what follows `prompt?`). */
export function renderSolution(
  problem: Problem,
  procedure: Procedure,
  rng: Rng,
  rates: SlipRates = DEFAULT_SLIPS,
): Solution {
  const exactAnswer = Number(problem.answer);
  if (procedure === "hasty") {
    const final = rng.next() < rates.hastyRight ? exactAnswer : slip(rng, exactAnswer);
    return { text: `${MARKER}${final}`, final, procedure };
  }
  const values: number[] = [];
  const parts: string[] = [];
  for (const step of problem.steps) {
    const { lhs, value: right } = step.redo(values);
    const boost = procedure === "check" ? rates.checkSlipBoost : 1;
    const slipped = rng.next() < (step.hard ? rates.hard : rates.easy) * boost;
    let value = slipped ? slip(rng, right) : right;
    let text = `${lhs}=${value}`;
    if (procedure === "check") {
      if (slipped && rng.next() < rates.catchRate) {
        text += ` recheck ${lhs}=${right}`;
        value = right;
      } else {
        text += " ok";
      }
    }
    parts.push(text);
    values.push(value);
  }
  const final = values[values.length - 1];
  const ending = procedure === "nomarker" ? `so ${final}` : `${MARKER}${final}`;
  return { text: `${parts.join(";")};${ending}`, final, procedure };
}

/** Classifies a completion by the procedure it follows (used on model samples). */
export function classifyProcedure(completion: string): Procedure {
  const c = completion.trimStart();
  if (c.startsWith(MARKER)) return "hasty";
  if (c.includes("recheck") || /\d ok(;|$)/.test(c)) return "check";
  if (c.includes(MARKER)) return "careful";
  return "nomarker";
}
