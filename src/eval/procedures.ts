// Which solution procedure pays on a model's own samples: accuracy per procedure (careful, check,
// hasty, nomarker), overall and by difficulty (the number of hard steps in the problem's exact
// solution, recovered from its prompt), with what the check procedure's verifications did —
// how often they caught the model's own slips and how often a failed check was followed by a right
// correction. Pure aggregation over scored samples; sampling happens at the caller.
import type { Rng } from "../engine/rng.js";
import { FAMILY_NAMES, hardSteps, makeProblem, parseProblem } from "../world/families.js";
import {
  classifyProcedure,
  PROCEDURES,
  renderDrill,
  SEPARATOR,
  type Procedure,
  type WrittenCheckStyle,
} from "../world/procedures.js";
import {
  accuracyByProcedure,
  stepErrorRate,
  summariseVerifications,
  type ProcedureAccuracy,
  type VerificationSummary,
} from "./behaviours.js";

export interface ProcedureSample {
  prompt: string;
  completion: string;
  reward: number;
}

export const DIFFICULTIES = ["0", "1", "2+"] as const;
export type DifficultyBucket = (typeof DIFFICULTIES)[number];

/** the difficulty bucket of a problem: its number of hard steps, 2 and more together */
export function difficultyOf(prompt: string): DifficultyBucket {
  const p = parseProblem(prompt);
  if (!p) throw new Error(`difficultyOf: no problem family writes the prompt ${JSON.stringify(prompt)}`);
  const h = hardSteps(p);
  return h >= 2 ? "2+" : h === 1 ? "1" : "0";
}

export interface ProcedureBreakdown {
  samples: number;
  accuracy: number | null;
  byProcedure: Record<Procedure, ProcedureAccuracy>;
  byDifficulty: Record<DifficultyBucket, { samples: number; byProcedure: Record<Procedure, ProcedureAccuracy> }>;
  /** the check procedure's verifications (over every completion that has any) */
  verification: VerificationSummary;
  /** share of careful work's sums, differences and quotients that are wrong — the kinds of step
   * the check verifies (compare with verification.stepErrorRate) */
  carefulStepErrorRate: number | null;
  /** check completions with a recheck (a failed verification) and without */
  checkWithRecheck: ProcedureAccuracy;
  checkWithoutRecheck: ProcedureAccuracy;
}

function accuracyOf(samples: readonly ProcedureSample[]): ProcedureAccuracy {
  const correct = samples.filter((s) => s.reward === 1).length;
  return { n: samples.length, correct, accuracy: samples.length > 0 ? correct / samples.length : null };
}

export function procedureBreakdown(samples: readonly ProcedureSample[]): ProcedureBreakdown {
  const byDifficulty = Object.fromEntries(
    DIFFICULTIES.map((d) => {
      const part = samples.filter((s) => difficultyOf(s.prompt) === d);
      return [d, { samples: part.length, byProcedure: accuracyByProcedure(part) }];
    }),
  ) as ProcedureBreakdown["byDifficulty"];
  const checks = samples.filter((s) => classifyProcedure(s.completion) === "check");
  return {
    samples: samples.length,
    accuracy: accuracyOf(samples).accuracy,
    byProcedure: accuracyByProcedure(samples),
    byDifficulty,
    verification: summariseVerifications(samples.map((s) => s.completion)),
    carefulStepErrorRate: stepErrorRate(
      samples.filter((s) => classifyProcedure(s.completion) === "careful").map((s) => s.completion),
      "+-/",
    ),
    checkWithRecheck: accuracyOf(checks.filter((s) => s.completion.includes("recheck"))),
    checkWithoutRecheck: accuracyOf(checks.filter((s) => !s.completion.includes("recheck"))),
  };
}

const f3 = (x: number | null) => (x === null ? "    -" : x.toFixed(3));
const cell = (a: ProcedureAccuracy) => `${f3(a.accuracy)} (${String(a.n).padStart(4)})`;

/** A fixed-width table: per group and difficulty, the accuracy (and count) of each procedure. */
export function formatBreakdown(groups: Record<string, ProcedureBreakdown>): string {
  const head = ["group", "difficulty", "samples", ...PROCEDURES.map((p) => `${p} acc (n)`)];
  const rows: string[][] = [];
  for (const [name, b] of Object.entries(groups)) {
    rows.push([name, "all", String(b.samples), ...PROCEDURES.map((p) => cell(b.byProcedure[p]))]);
    for (const d of DIFFICULTIES)
      rows.push([
        "",
        `${d} hard`,
        String(b.byDifficulty[d].samples),
        ...PROCEDURES.map((p) => cell(b.byDifficulty[d].byProcedure[p])),
      ]);
  }
  const vhead = [
    "group",
    "careful step err (+-/)",
    "verified",
    "step err",
    "verif acc",
    "detect",
    "false alarm",
    "failed",
    "redo right",
    "redo right|wrong",
    "verdict consistent",
    "check+recheck acc (n)",
    "check-no-recheck acc (n)",
  ];
  const vrows = Object.entries(groups).map(([name, b]) => {
    const v = b.verification;
    return [
      name,
      f3(b.carefulStepErrorRate),
      String(v.steps),
      f3(v.stepErrorRate),
      f3(v.verificationAccuracy),
      f3(v.detectionRate),
      f3(v.falseAlarmRate),
      String(v.failed),
      f3(v.correctionRate),
      f3(v.correctionRateOnWrong),
      f3(v.verdictConsistency),
      cell(b.checkWithRecheck),
      cell(b.checkWithoutRecheck),
    ];
  });
  const table = (h: string[], rs: string[][]) => {
    const w = h.map((x, i) => Math.max(x.length, ...rs.map((r) => r[i].length)));
    const line = (cs: string[]) => cs.map((c, i) => (i < 2 ? c.padEnd(w[i]) : c.padStart(w[i]))).join("  ");
    return [line(h), ...rs.map(line)].join("\n");
  };
  return `${table(head, rows)}\n\nverifications (check procedure):\n${table(vhead, vrows)}`;
}

/** `count` verification drills (a claimed step, right or slipped at even odds), families in turn */
export function drillPrompts(style: WrittenCheckStyle, count: number, rng: Rng): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) {
    const d = renderDrill(makeProblem(FAMILY_NAMES[i % FAMILY_NAMES.length], rng), rng, style);
    if (d) out.push(d.prompt);
  }
  return out;
}

/** What a model's checks do on drills: the claim and its completion read as one verified step
 * (`22-9=13?` + `,13+9=22 ok`), so detection is P(recheck | claim wrong). */
export function summariseDrills(drills: readonly { prompt: string; completion: string }[]): VerificationSummary {
  return summariseVerifications(
    drills.map(
      (d) => `${d.prompt.endsWith(SEPARATOR) ? d.prompt.slice(0, -SEPARATOR.length) : d.prompt}${d.completion}`,
    ),
  );
}
