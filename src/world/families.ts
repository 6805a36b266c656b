// Problem families of the model organism's math world: each makes verifiable problems from a
// seeded stream, with difficulty parameters, and knows the exact step-by-step solution.
// It does not render solutions as text (procedures.ts does) and never draws from Math.random.
import type { Rng } from "../engine/rng.js";

/** One arithmetic step: `lhs` is written as `lhs=value`. `hard` steps (carries, borrows,
 * large products, divisions) are where the corpus puts most slips. */
export interface Step {
  lhs: string;
  value: number;
  hard: boolean;
  /** rewrites the step from the values of the previous steps, as written (slips propagate) */
  redo: (prev: number[]) => { lhs: string; value: number };
}

export interface Problem {
  family: FamilyName;
  /** the problem text the model sees (before the `?` separator) */
  prompt: string;
  /** the label, as the verifier compares it */
  answer: string;
  steps: Step[];
}

export const FAMILY_NAMES = ["add", "mul", "lin", "word"] as const;
export type FamilyName = (typeof FAMILY_NAMES)[number];

export interface Difficulty {
  /** add: number of terms (2–5); others ignore it */
  terms?: number;
  /** largest operand (add: per term; mul: the multi-digit factor; lin: the unknown; word: per count) */
  maxOperand?: number;
}

const carry = (a: number, b: number) => (a % 10) + (b % 10) >= 10;
const borrow = (a: number, b: number) => a % 10 < b % 10;

/** builds a step whose left-hand side is written from the (possibly slipped) previous values */
function chained(
  build: (prev: number[]) => { lhs: string; value: number },
  hard: (prev: number[]) => boolean,
  exact: number[],
): Step {
  const { lhs, value } = build(exact);
  return { lhs, value, hard: hard(exact), redo: build };
}

export function addProblem(rng: Rng, d: Difficulty = {}): Problem {
  const terms = d.terms ?? 3;
  const max = d.maxOperand ?? 30;
  let total = rng.int(10, max);
  const parts: { op: "+" | "-"; n: number }[] = [];
  const first = total;
  for (let i = 1; i < terms; i++) {
    const n = rng.int(2, max);
    const op: "+" | "-" = n <= total && rng.next() < 0.5 ? "-" : "+";
    parts.push({ op, n });
    total = op === "+" ? total + n : total - n;
  }
  return buildAdd(first, parts);
}

function buildAdd(first: number, parts: { op: "+" | "-"; n: number }[]): Problem {
  const prompt = `${first}${parts.map((p) => `${p.op}${p.n}`).join("")}`;
  const steps: Step[] = [];
  const exact: number[] = [];
  let acc = first;
  parts.forEach((p, i) => {
    const step = chained(
      (prev) => {
        const left = i === 0 ? first : prev[i - 1];
        return { lhs: `${left}${p.op}${p.n}`, value: p.op === "+" ? left + p.n : left - p.n };
      },
      (prev) => {
        const left = i === 0 ? first : prev[i - 1];
        return p.op === "+" ? carry(left, p.n) : borrow(left, p.n);
      },
      exact,
    );
    acc = step.value;
    exact.push(acc);
    steps.push(step);
  });
  return { family: "add", prompt, answer: String(acc), steps };
}

export function mulProblem(rng: Rng, d: Difficulty = {}): Problem {
  const max = d.maxOperand ?? 99;
  const a = rng.int(11, Math.max(11, max));
  const b = rng.int(2, 9);
  return buildMul(a, b);
}

function buildMul(a: number, b: number): Problem {
  const tens = a - (a % 10);
  const units = a % 10;
  const steps: Step[] = [];
  const exact: number[] = [];
  steps.push(
    chained(
      () => ({ lhs: `${tens}*${b}`, value: tens * b }),
      () => tens * b >= 100,
      exact,
    ),
  );
  exact.push(tens * b);
  if (units > 0) {
    steps.push(
      chained(
        () => ({ lhs: `${units}*${b}`, value: units * b }),
        () => units * b >= 10,
        exact,
      ),
    );
    exact.push(units * b);
    steps.push(
      chained(
        (prev) => ({ lhs: `${prev[0]}+${prev[1]}`, value: prev[0] + prev[1] }),
        (prev) => carry(prev[0], prev[1]) || (prev[0] % 100) + prev[1] >= 100,
        exact,
      ),
    );
  }
  return { family: "mul", prompt: `${a}*${b}`, answer: String(a * b), steps };
}

export function linProblem(rng: Rng, d: Difficulty = {}): Problem {
  const max = d.maxOperand ?? 12;
  const a = rng.int(2, 9);
  const x = rng.int(1, max);
  let b = rng.int(1, 30);
  if (rng.next() < 0.5) b = -b;
  return buildLin(a, x, b);
}

function buildLin(a: number, x: number, b: number): Problem {
  const c = a * x + b;
  const prompt = `${a}x${b < 0 ? "-" : "+"}${Math.abs(b)}=${c}`;
  const exact: number[] = [];
  const steps: Step[] = [];
  steps.push(
    chained(
      () => ({ lhs: b < 0 ? `${c}+${-b}` : `${c}-${b}`, value: c - b }),
      () => (b < 0 ? carry(c, -b) : borrow(c, b)),
      exact,
    ),
  );
  exact.push(c - b);
  steps.push(
    chained(
      (prev) => ({ lhs: `${prev[0]}/${a}`, value: Math.round(prev[0] / a) }),
      (prev) => prev[0] >= 40,
      exact,
    ),
  );
  return { family: "lin", prompt, answer: String(x), steps };
}

const WORD_TEMPLATES = [
  { text: (a: number, b: number, c: number) => `${a} boxes of ${b} eat ${c}`, op: "-" as const },
  { text: (a: number, b: number, c: number) => `${a} bags of ${b} add ${c}`, op: "+" as const },
  { text: (a: number, b: number, c: number) => `${a} rows of ${b} lose ${c}`, op: "-" as const },
];

export function wordProblem(rng: Rng, d: Difficulty = {}): Problem {
  const max = d.maxOperand ?? 12;
  const t = rng.pick(WORD_TEMPLATES);
  const a = rng.int(2, 9);
  const b = rng.int(2, max);
  const c = t.op === "-" ? rng.int(1, a * b - 1) : rng.int(1, 30);
  return buildWord(t, a, b, c);
}

function buildWord(t: (typeof WORD_TEMPLATES)[number], a: number, b: number, c: number): Problem {
  const exact: number[] = [];
  const steps: Step[] = [];
  steps.push(
    chained(
      () => ({ lhs: `${a}*${b}`, value: a * b }),
      () => a * b >= 20,
      exact,
    ),
  );
  exact.push(a * b);
  steps.push(
    chained(
      (prev) => ({ lhs: `${prev[0]}${t.op}${c}`, value: t.op === "-" ? prev[0] - c : prev[0] + c }),
      (prev) => (t.op === "-" ? borrow(prev[0], c) : carry(prev[0], c)),
      exact,
    ),
  );
  const answer = t.op === "-" ? a * b - c : a * b + c;
  return { family: "word", prompt: t.text(a, b, c), answer: String(answer), steps };
}

export const FAMILIES: Record<FamilyName, (rng: Rng, d?: Difficulty) => Problem> = {
  add: addProblem,
  mul: mulProblem,
  lin: linProblem,
  word: wordProblem,
};

/** The problem (with its exact steps) whose prompt this is, or null if no family writes it —
 * so that a benchmark item's steps and difficulty can be recovered from its prompt alone. */
export function parseProblem(prompt: string): Problem | null {
  let m = /^(\d+)((?:[-+]\d+)+)$/.exec(prompt);
  if (m) {
    const parts = [...m[2].matchAll(/([-+])(\d+)/g)].map((x) => ({ op: x[1] as "+" | "-", n: Number(x[2]) }));
    return buildAdd(Number(m[1]), parts);
  }
  m = /^(\d+)\*(\d+)$/.exec(prompt);
  if (m) return buildMul(Number(m[1]), Number(m[2]));
  m = /^(\d+)x([-+])(\d+)=(-?\d+)$/.exec(prompt);
  if (m) {
    const a = Number(m[1]);
    const b = (m[2] === "-" ? -1 : 1) * Number(m[3]);
    const x = (Number(m[4]) - b) / a;
    return Number.isInteger(x) ? buildLin(a, x, b) : null;
  }
  for (const t of WORD_TEMPLATES) {
    m = /^(\d+) \w+ of (\d+) \w+ (\d+)$/.exec(prompt);
    if (m && t.text(Number(m[1]), Number(m[2]), Number(m[3])) === prompt)
      return buildWord(t, Number(m[1]), Number(m[2]), Number(m[3]));
  }
  return null;
}

/** Number of hard steps (carries, borrows, large products, divisions of large numbers) in a
 * problem's exact solution: the organism's measure of difficulty. */
export function hardSteps(problem: Problem): number {
  return problem.steps.filter((s) => s.hard).length;
}

export function makeProblem(family: FamilyName, rng: Rng, d?: Difficulty): Problem {
  return FAMILIES[family](rng, d);
}
