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
