// The pretraining corpus: an endless, seeded stream of `prompt?solution` texts whose solutions
// follow a mixture of procedures (procedures.ts). The mixture and slip rates are parameters,
// recorded in the model card. Benchmark problems are excluded so held-out stays held out.
import { makeRng } from "../engine/rng.js";
import { FAMILY_NAMES, makeProblem, type FamilyName, type Problem } from "./families.js";
import {
  PROCEDURES,
  renderDrill,
  renderSolution,
  DEFAULT_SLIPS,
  SEPARATOR,
  type CheckStyle,
  type Procedure,
  type SlipRates,
} from "./procedures.js";

export interface CorpusConfig {
  seed: number;
  /** relative weights of the procedures */
  mixture: Record<Procedure, number>;
  slips: SlipRates;
  /** relative weights of the families */
  families: Record<FamilyName, number>;
  /** how the check procedure checks its steps; absent means `recompute` (the base organism) */
  checkStyle?: CheckStyle;
  /** items whose prompt and solution together are longer are skipped (so that none is cut off by
   * the model's context); absent means no limit */
  maxChars?: number;
  /** share of items that are verification drills (procedures.ts renderDrill) instead of solved
   * problems; absent means none */
  drills?: number;
}

export const DEFAULT_CORPUS: CorpusConfig = {
  seed: 1234,
  mixture: { careful: 0.25, check: 0.1, hasty: 0.2, nomarker: 0.45 },
  slips: DEFAULT_SLIPS,
  families: { add: 1, mul: 1, lin: 1, word: 1 },
};

const REFLECT_COMMON = {
  ...DEFAULT_CORPUS,
  slips: { ...DEFAULT_SLIPS, checkSlipBoost: 1 },
  // 95 characters + BOS + EOS fill the organism's context of 96 positions (97 tokens with the target)
  maxChars: 95,
  drills: 0.2,
};

/** Named corpora. `base` is the organism's. The `reflect` corpora have a check procedure that writes
 * its verification of each step and corrects what fails, its first attempts slipping no more often
 * than careful work's, and verification drills (a claimed step, wrong half the time, and its check)
 * so that a verification's result cannot be predicted by copying the number it should reproduce.
 * `reflect` checks by the whole inverse operation (procedures.ts `verify`); `reflect-units` by the
 * inverse on units digits (`units`); `reflect-digit` recomputes each step's units digit and writes the
 * digit it compares with beside it (`digit`). All three were pretrained; the committed
 * data/models/base-reflect is `reflect`, whose check did best (docs/notebook.md). */
export const CORPUS_PRESETS = {
  base: DEFAULT_CORPUS,
  reflect: { ...REFLECT_COMMON, checkStyle: "verify" },
  "reflect-units": { ...REFLECT_COMMON, checkStyle: "units" },
  "reflect-digit": { ...REFLECT_COMMON, checkStyle: "digit" },
} as const satisfies Record<string, CorpusConfig>;
export type CorpusPreset = keyof typeof CORPUS_PRESETS;

export interface CorpusItem {
  problem: Problem;
  /** `drill`: a verification drill (a claimed step and its check), not a solved problem */
  procedure: Procedure | "drill";
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
    const drill = cfg.drills !== undefined && rng.next() < cfg.drills;
    const family = FAMILY_NAMES[rng.weighted(famWeights)];
    const problem = makeProblem(family, rng);
    if (exclude.has(problem.prompt)) continue;
    if (drill) {
      const d = renderDrill(
        problem,
        rng,
        cfg.checkStyle === undefined || cfg.checkStyle === "recompute" ? "verify" : cfg.checkStyle,
      );
      if (d) yield { problem, procedure: "drill", ...d };
      continue;
    }
    const procedure = PROCEDURES[rng.weighted(procWeights)];
    const sol = renderSolution(problem, procedure, rng, cfg.slips, cfg.checkStyle ?? "recompute");
    if (cfg.maxChars !== undefined && problem.prompt.length + SEPARATOR.length + sol.text.length > cfg.maxChars)
      continue;
    yield { problem, procedure, prompt: promptText(problem.prompt), completion: sol.text };
  }
}
