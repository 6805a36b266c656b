// Solution procedures of the pretraining corpus: how a problem's steps are written as text.
//   careful  — step by step, ends in the graded form `####N`; slips are carried to the answer
//   check    — step by step with a self-check after each step, in one of two styles:
//              `recompute` (the base organism): ` ok`, or ` recheck e=v` when a slip is caught —
//              the check does no visible work, so a model can only imitate it;
//              `verify`: the step is verified by its inverse operation, written out
//              (`45-18=27,27+18=45 ok`); a verification that fails is followed by ` recheck`
//              and the step redone and verified again — the check does work a model can do
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

/** How the check procedure checks a step (a corpus parameter; `recompute` is the base organism's). */
export const CHECK_STYLES = ["recompute", "verify", "units", "digit"] as const;
export type CheckStyle = (typeof CHECK_STYLES)[number];
/** the styles whose check writes its work */
export type WrittenCheckStyle = Exclude<CheckStyle, "recompute">;

/** A step's written check: `expr=value`, then `:compare` when the style shows the digit it compares
 * with; `passes` tells whether a shown result agrees. */
export interface StepCheck {
  expr: string;
  value: number;
  compare?: number;
  passes: (shown: number) => boolean;
}

/** The inverse of a step `a op b = v`, written as an expression of v whose value should be a:
 * a sum is checked by subtraction, a difference by addition, a quotient by multiplication; a
 * product only when it is the answer (by a rounded division), since the organism's products are its most
 * reliable steps and a division is not an easier way to check them. Null: the step is not verified. */
export function inverseOf(
  lhs: string,
  value: number,
  isLast: boolean,
): { expr: string; value: number; target: number } | null {
  const m = /^(-?\d+)([-+*/])(-?\d+)$/.exec(lhs);
  if (!m) return null;
  const a = Number(m[1]);
  const b = Number(m[3]);
  switch (m[2]) {
    case "+":
      return { expr: `${value}-${b}`, value: value - b, target: a };
    case "-":
      return { expr: `${value}+${b}`, value: value + b, target: a };
    case "/":
      return { expr: `${value}*${b}`, value: value * b, target: a };
    default:
      // a quotient is written rounded, as the world's divisions are, so a slip smaller than half
      // the divisor passes this check unseen: a weak check, used only when the product is the answer
      return isLast ? { expr: `${value}/${b}`, value: Math.round(value / b), target: a } : null;
  }
}

/** A step's check in the `units` style: the inverse operation on units digits only, a few
 * one-digit facts instead of a many-digit computation (`45-18=27` → `7+8=15`: its units digit must
 * be 45's). A sum's check borrows when it must (`80+35=115` → `15-5=10`), a quotient's multiplies
 * the units digit back (`96/8=12` → `2*8=16`), a product (only when it is the answer) recomputes its
 * own units digit (`30*9=270` → `0*9=0`). A slip that keeps the units digit (±10) passes unseen.
 * Steps with a negative number are checked by the whole inverse (their units digits do not add up
 * the same way). `passes`: the check's result agrees with the digit it is compared with. */
export function unitsCheckOf(
  lhs: string,
  value: number,
  isLast: boolean,
): { expr: string; value: number; passes: (shown: number) => boolean } | null {
  const m = /^(-?\d+)([-+*/])(-?\d+)$/.exec(lhs);
  if (!m) return null;
  const a = Number(m[1]);
  const b = Number(m[3]);
  if (a < 0 || b < 0 || value < 0) {
    const inv = inverseOf(lhs, value, isLast);
    return inv && { expr: inv.expr, value: inv.value, passes: (shown) => shown === inv.target };
  }
  const units = (n: number) => n % 10;
  const agrees = (digit: number) => (shown: number) => shown >= 0 && units(shown) === digit;
  switch (m[2]) {
    case "+": {
      const u = units(value) < units(b) ? units(value) + 10 : units(value);
      return { expr: `${u}-${units(b)}`, value: u - units(b), passes: agrees(units(a)) };
    }
    case "-":
      return { expr: `${units(value)}+${units(b)}`, value: units(value) + units(b), passes: agrees(units(a)) };
    case "/":
      return { expr: `${units(value)}*${b}`, value: units(value) * b, passes: agrees(units(a)) };
    default:
      return isLast ? { expr: `${units(a)}*${b}`, value: units(a) * b, passes: agrees(units(value)) } : null;
  }
}

/** A step's check in the `digit` style: the units digit recomputed from the operands' units digits
 * (`45-18=27` → `15-8=7`, borrowing when it must; a product, only when it is the answer,
 * `30*9=270` → `0*9=0`), then `:` and the units digit it must match, copied from the step's value
 * (`15-8=7:7`), so that the verdict compares two digits side by side. A quotient has no such
 * forward rule: its units digit times the divisor must end in the dividend's (`96/8=12` →
 * `2*8=16:6`). A slip that keeps the units digit (±10) passes unseen; steps with a negative number
 * are checked by the whole inverse (`6-24=-18:-18`). */
export function digitCheckOf(lhs: string, value: number, isLast: boolean): StepCheck | null {
  const m = /^(-?\d+)([-+*/])(-?\d+)$/.exec(lhs);
  if (!m) return null;
  const a = Number(m[1]);
  const b = Number(m[3]);
  if (a < 0 || b < 0 || value < 0) {
    const inv = inverseOf(lhs, value, isLast);
    return inv && { expr: inv.expr, value: inv.value, compare: inv.target, passes: (shown) => shown === inv.target };
  }
  const units = (n: number) => n % 10;
  const check = (expr: string, result: number, compare: number): StepCheck => ({
    expr,
    value: result,
    compare,
    passes: (shown) => shown >= 0 && units(shown) === compare,
  });
  const [ua, ub, uv] = [units(a), units(b), units(value)];
  switch (m[2]) {
    case "+":
      return check(`${ua}+${ub}`, ua + ub, uv);
    case "-":
      return ua < ub ? check(`${ua + 10}-${ub}`, ua + 10 - ub, uv) : check(`${ua}-${ub}`, ua - ub, uv);
    case "/":
      return check(`${uv}*${b}`, uv * b, ua);
    default:
      return isLast ? check(`${ua}*${b}`, ua * b, uv) : null;
  }
}

/** the check of a step in a style that writes its work: `verify` (whole inverse) or `units` */
export function stepCheck(style: WrittenCheckStyle, lhs: string, value: number, isLast: boolean): StepCheck | null {
  if (style === "units") return unitsCheckOf(lhs, value, isLast);
  if (style === "digit") return digitCheckOf(lhs, value, isLast);
  const inv = inverseOf(lhs, value, isLast);
  return inv && { expr: inv.expr, value: inv.value, passes: (shown) => shown === inv.target };
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
  checkStyle: CheckStyle = "recompute",
): Solution {
  if (procedure === "check" && checkStyle !== "recompute") return renderVerified(problem, rng, rates, checkStyle);
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

const written = (c: StepCheck, shown: number) => `${c.expr}=${shown}${c.compare === undefined ? "" : `:${c.compare}`}`;

/** The check procedure in the `verify` style. Each verified step is followed by its inverse,
 * computed (`,v+b=w`), and ` ok` when w is the step's first operand. A slip (boosted rate, as in
 * the recompute style) always shows as a failed verification, and a right step's verification
 * itself slips at the easy rate (a false alarm); either is followed by ` recheck`, the step redone
 * right and verified again — so the values that later steps use are right, a failed verification is
 * always followed by a correction, and a step has one recheck at most (which bounds the length).
 * Steps that are not verified (products before the answer) slip at the unboosted rate and are
 * carried, as in careful work. */
function renderVerified(problem: Problem, rng: Rng, rates: SlipRates, style: WrittenCheckStyle): Solution {
  const values: number[] = [];
  const parts: string[] = [];
  problem.steps.forEach((step, i) => {
    const isLast = i === problem.steps.length - 1;
    const { lhs, value: right } = step.redo(values);
    const rate = step.hard ? rates.hard : rates.easy;
    if (stepCheck(style, lhs, right, isLast) === null) {
      const value = rng.next() < rate ? slip(rng, right) : right;
      parts.push(`${lhs}=${value}`);
      values.push(value);
      return;
    }
    let value = rng.next() < rate * rates.checkSlipBoost ? slip(rng, right) : right;
    const inv = stepCheck(style, lhs, value, isLast)!;
    let shown = value === right && rng.next() < rates.easy ? slip(rng, inv.value) : inv.value;
    // a units check's slip that keeps the units digit would pass as right: a false alarm changes it
    if (style !== "verify" && shown !== inv.value) while (inv.passes(shown)) shown = slip(rng, inv.value);
    let text = `${lhs}=${value},${written(inv, shown)}`;
    if (!inv.passes(shown)) {
      const redo = stepCheck(style, lhs, right, isLast)!;
      text += ` recheck ${lhs}=${right},${written(redo, redo.value)}`;
      value = right;
    }
    parts.push(`${text} ok`);
    values.push(value);
  });
  const final = values[values.length - 1];
  return { text: `${parts.join(";")};${MARKER}${final}`, final, procedure: "check" };
}

/** A verification drill: a step as claimed (right or slipped, even odds) is the prompt, its
 * verification the completion — ` ok`, or ` recheck` and the step redone and verified. The claims
 * are wrong half the time, so the verification's result cannot be guessed from the operand it
 * should equal: it has to be computed. Null when the problem has no verified step. */
export function renderDrill(
  problem: Problem,
  rng: Rng,
  style: WrittenCheckStyle = "verify",
): { prompt: string; completion: string } | null {
  const exact: number[] = [];
  const candidates: { lhs: string; right: number; isLast: boolean }[] = [];
  problem.steps.forEach((step, i) => {
    const { lhs, value } = step.redo(exact);
    const isLast = i === problem.steps.length - 1;
    if (stepCheck(style, lhs, value, isLast) !== null) candidates.push({ lhs, right: value, isLast });
    exact.push(value);
  });
  if (candidates.length === 0) return null;
  const { lhs, right, isLast } = rng.pick(candidates);
  const claimed = rng.next() < 0.5 ? slip(rng, right) : right;
  const inv = stepCheck(style, lhs, claimed, isLast)!;
  let completion = `,${written(inv, inv.value)}`;
  if (!inv.passes(inv.value)) {
    const redo = stepCheck(style, lhs, right, isLast)!;
    completion += ` recheck ${lhs}=${right},${written(redo, redo.value)}`;
  }
  return { prompt: `${lhs}=${claimed}${SEPARATOR}`, completion: `${completion} ok` };
}

/** Classifies a completion by the procedure it follows (used on model samples). */
export function classifyProcedure(completion: string): Procedure {
  const c = completion.trimStart();
  if (c.startsWith(MARKER)) return "hasty";
  if (c.includes("recheck") || /\d ok(;|$)/.test(c)) return "check";
  if (c.includes(MARKER)) return "careful";
  return "nomarker";
}
