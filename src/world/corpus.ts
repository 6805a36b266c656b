// The pretraining corpus: an endless, seeded stream of `prompt?solution` texts whose solutions
// follow a mixture of procedures (procedures.ts). The mixture and slip rates are parameters,
// recorded in the model card. Benchmark problems are excluded so held-out stays held out.
import { makeRng } from "../engine/rng.js";
import { FAMILY_NAMES, makeProblem, type FamilyName, type Problem } from "./families.js";
import { PROCEDURES, renderSolution, DEFAULT_SLIPS, SEPARATOR, type Procedure, type SlipRates } from "./procedures.js";

export interface CorpusConfig {
  seed: number;
  /** relative weights of the procedures */
  mixture: Record<Procedure, number>;
  slips: SlipRates;
  /** relative weights of the families */
  families: Record<FamilyName, number>;
}

export const DEFAULT_CORPUS: CorpusConfig = {
  seed: 1234,
  mixture: { careful: 0.25, check: 0.1, hasty: 0.2, nomarker: 0.45 },
  slips: DEFAULT_SLIPS,
  families: { add: 1, mul: 1, lin: 1, word: 1 },
};

export interface CorpusItem {
  problem: Problem;
  procedure: Procedure;
  /** the text the model sees before the solution, separator included */
  prompt: string;
  completion: string;
}

export function promptText(problemPrompt: string): string {
  return `${problemPrompt}${SEPARATOR}`;
}

/** An endless seeded stream of corpus items, skipping any problem whose prompt is in `exclude`. */
export function* corpusStream(cfg: CorpusConfig, exclude: ReadonlySet<string>): Generator<CorpusItem> {
  const rng = makeRng(cfg.seed, "corpus");
  const famWeights = FAMILY_NAMES.map((f) => cfg.families[f]);
  const procWeights = PROCEDURES.map((p) => cfg.mixture[p]);
  for (;;) {
    const family = FAMILY_NAMES[rng.weighted(famWeights)];
    const problem = makeProblem(family, rng);
    if (exclude.has(problem.prompt)) continue;
    const procedure = PROCEDURES[rng.weighted(procWeights)];
    const sol = renderSolution(problem, procedure, rng, cfg.slips);
    yield { problem, procedure, prompt: promptText(problem.prompt), completion: sol.text };
  }
}
