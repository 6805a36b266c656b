// Behaviour shares of a set of completions in the organism's world: the share following each
// solution procedure (careful, check, hasty, nomarker; world/procedures.ts classifies them) and the
// share using the self-check word. Computed outside the trainer, which knows nothing of the world.
import { classifyProcedure, PROCEDURES, type Procedure } from "../world/procedures.js";

/** share of completions per procedure (count / n; zeros for no completions) */
export function procedureShares(completions: readonly string[]): Record<Procedure, number> {
  const counts = Object.fromEntries(PROCEDURES.map((p) => [p, 0])) as Record<Procedure, number>;
  for (const c of completions) counts[classifyProcedure(c)]++;
  const n = completions.length;
  return Object.fromEntries(PROCEDURES.map((p) => [p, n > 0 ? counts[p] / n : 0])) as Record<Procedure, number>;
}

/** share of completions that contain the self-check word */
export function selfCheckRate(completions: readonly string[]): number {
  return completions.length > 0 ? completions.filter((c) => c.includes("recheck")).length / completions.length : 0;
}

export interface ProcedureAccuracy {
  /** completions following the procedure */
  n: number;
  /** of those, right answers in the graded form (reward 1) */
  correct: number;
  /** correct / n; null when n is 0 */
  accuracy: number | null;
}

/** accuracy of completions per procedure: which procedure pays on the model's own samples */
export function accuracyByProcedure(
  samples: readonly { completion: string; reward: number }[],
): Record<Procedure, ProcedureAccuracy> {
  const out = Object.fromEntries(PROCEDURES.map((p) => [p, { n: 0, correct: 0, accuracy: null }])) as Record<
    Procedure,
    ProcedureAccuracy
  >;
  for (const s of samples) {
    const a = out[classifyProcedure(s.completion)];
    a.n++;
    if (s.reward === 1) a.correct++;
  }
  for (const a of Object.values(out)) a.accuracy = a.n > 0 ? a.correct / a.n : null;
  return out;
}

/** value of `a op b` as the organism's world computes it (a quotient is rounded), or null */
export function evalStep(expr: string): number | null {
  const m = /^(-?\d+)([-+*/])(-?\d+)$/.exec(expr);
  if (!m) return null;
  const a = Number(m[1]);
  const b = Number(m[3]);
  switch (m[2]) {
    case "+":
      return a + b;
    case "-":
      return a - b;
    case "*":
      return a * b;
    default:
      return b === 0 ? null : Math.round(a / b);
  }
}

/** One verified step of a check that writes its work: `lhs=value,check=shown` (and `:digit` in the
 * digit style), then ` ok` or ` recheck redoLhs=redoValue,...`. */
export interface Verification {
  /** the step as first written was arithmetically right */
  stepRight: boolean;
  /** the verification's own arithmetic was right */
  verificationRight: boolean;
  /** the verification failed (followed by ` recheck`) */
  failed: boolean;
  /** digit style: the verdict follows from the shown result and the digit written beside it (a
   * recheck exactly when the units digits differ); null for checks that write no such digit */
  verdictConsistent: boolean | null;
  /** after a failed verification: the redone step is arithmetically right (null when none) */
  redoRight: boolean | null;
}

const VERIFIED_STEP =
  /(-?\d+[-+*/]-?\d+)=(-?\d+),(-?\d+[-+*/]-?\d+)=(-?\d+)(?::(-?\d+))?(?: recheck (-?\d+[-+*/]-?\d+)=(-?\d+))?/g;

/** The verifications in a completion (empty for completions without any). A step is judged by its
 * own operands (a step on a wrong earlier value can still be right), as the check itself does. The
 * redo's own verification (`,inverse=w ok`) is not counted as a verification; a second recheck of
 * the same step (which the corpus never shows) counts as a new one. */
export function verifications(completion: string): Verification[] {
  const out: Verification[] = [];
  for (const m of completion.matchAll(VERIFIED_STEP)) {
    const [, lhs, value, inv, shown, compare, redoLhs, redoValue] = m;
    const failed = redoLhs !== undefined;
    const agrees =
      compare === undefined
        ? null
        : Number(shown) === Number(compare) || (Number(shown) >= 0 && Number(shown) % 10 === Number(compare));
    out.push({
      stepRight: evalStep(lhs) === Number(value),
      verificationRight: evalStep(inv) === Number(shown),
      failed,
      verdictConsistent: agrees === null ? null : failed !== agrees,
      redoRight: redoLhs === undefined ? null : evalStep(redoLhs) === Number(redoValue),
    });
  }
  return out;
}

export interface VerificationSummary {
  /** verified steps, first attempts */
  steps: number;
  /** share of first attempts that were wrong (the model's own slips) */
  stepErrorRate: number | null;
  /** share of the verification computations that were right */
  verificationAccuracy: number | null;
  /** P(verification failed | step wrong): the model's own slips that its check catches */
  detectionRate: number | null;
  /** P(verification failed | step right): false alarms */
  falseAlarmRate: number | null;
  /** failed verifications */
  failed: number;
  /** P(redone step right | verification failed): a failed check followed by a right correction */
  correctionRate: number | null;
  /** P(redone step right | verification failed on a wrong step) */
  correctionRateOnWrong: number | null;
  /** digit style: share of verdicts that follow from the digits compared (null without any) */
  verdictConsistency: number | null;
}

const share = (a: number, b: number) => (b > 0 ? a / b : null);

export function summariseVerifications(completions: readonly string[]): VerificationSummary {
  const all = completions.flatMap((c) => verifications(c));
  const wrong = all.filter((v) => !v.stepRight);
  const right = all.filter((v) => v.stepRight);
  const failed = all.filter((v) => v.failed);
  const failedOnWrong = wrong.filter((v) => v.failed);
  return {
    steps: all.length,
    stepErrorRate: share(wrong.length, all.length),
    verificationAccuracy: share(all.filter((v) => v.verificationRight).length, all.length),
    detectionRate: share(failedOnWrong.length, wrong.length),
    falseAlarmRate: share(right.filter((v) => v.failed).length, right.length),
    failed: failed.length,
    correctionRate: share(failed.filter((v) => v.redoRight).length, failed.length),
    correctionRateOnWrong: share(failedOnWrong.filter((v) => v.redoRight).length, failedOnWrong.length),
    verdictConsistency: share(
      all.filter((v) => v.verdictConsistent === true).length,
      all.filter((v) => v.verdictConsistent !== null).length,
    ),
  };
}

/** share of the written steps `a op b = v` with op among `ops` that are arithmetically wrong, over
 * completions that have no verifications (careful work: how often the model slips without checking) */
export function stepErrorRate(completions: readonly string[], ops = "+-*/"): number | null {
  let steps = 0;
  let wrong = 0;
  for (const c of completions)
    for (const m of c.matchAll(/(-?\d+([-+*/])-?\d+)=(-?\d+)/g)) {
      if (!ops.includes(m[2])) continue;
      steps++;
      if (evalStep(m[1]) !== Number(m[3])) wrong++;
    }
  return steps > 0 ? wrong / steps : null;
}
