// Behaviour labels of completions, for steering vectors: where in a completion each behaviour's
// spans start, as token indices, and whether the completion shows the behaviour at all.
//
// Span start (the token that OPENS a span), per kind of label:
//  - procedure labels (the organism's careful, check, hasty, nomarker; world/procedures.ts
//    classifyProcedure): the span is the whole completion, so it opens at completion token 0 of
//    every completion classified as that procedure;
//  - keyword labels (the organism's `format` = the graded-form marker `####` and `recheck` = the
//    self-check word; for other model families any keywords, by default "wait", "recheck", "verify"):
//    the token holding the first character of each occurrence of the keyword.
// The activation that goes with a span start is the one at the position that PREDICTS that token
// (the previous token's position: for token 0, the prompt's last token), i.e. the model's state when
// it chooses to open the span. src/analysis/steering.ts takes the activations there.
// Labels are computed from the completion's text and each token's character offset in it, so they
// work for any tokenizer.
import { classifyProcedure, MARKER, PROCEDURES } from "../world/procedures.js";

export interface CompletionLabels {
  /** per behaviour, the completion token indices that open one of its spans (ascending) */
  spans: Record<string, number[]>;
  /** per behaviour, whether the completion shows it (what the behaviour shares count) */
  present: Record<string, boolean>;
}

export interface Labeller {
  /** "organism" (exact labels of the organism's world) or "keywords" */
  kind: "organism" | "keywords";
  /** the behaviours, in a fixed order */
  behaviours: readonly string[];
  /** what each behaviour's span start is, in words (written into the vector metadata) */
  definitions: Record<string, string>;
  /** the behaviours whose one span is the whole completion (it opens at token 0) */
  wholeCompletion: readonly string[];
  /** labels of one completion: its text and the character offset where each of its tokens starts */
  label(text: string, offsets: readonly number[]): CompletionLabels;
}

/** Index of the token holding character `c`: the last token starting at or before it. */
export function tokenAt(offsets: readonly number[], c: number): number {
  let lo = 0;
  let hi = offsets.length - 1;
  if (hi < 0 || c < offsets[0]) return -1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (offsets[mid] <= c) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Character offsets of tokens from their decoded pieces (each piece's text, in order). */
export function offsetsOf(pieces: readonly string[]): number[] {
  const out: number[] = [];
  let c = 0;
  for (const p of pieces) {
    out.push(c);
    c += p.length;
  }
  return out;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Token indices opening each (non-overlapping, left to right) occurrence of `keyword` in `text`. */
export function keywordStarts(
  text: string,
  offsets: readonly number[],
  keyword: string,
  caseInsensitive = false,
): number[] {
  if (keyword.length === 0) throw new Error("keyword labeller: a keyword must not be empty");
  const re = new RegExp(escapeRegExp(keyword), caseInsensitive ? "gi" : "g");
  const out: number[] = [];
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const t = tokenAt(offsets, m.index);
    if (t >= 0 && out[out.length - 1] !== t) out.push(t);
  }
  return out;
}

export const DEFAULT_KEYWORDS: Record<string, string> = { wait: "wait", recheck: "recheck", verify: "verify" };

/** Keyword behaviours for any model family: behaviour name -> keyword (matched case-insensitively). */
export function keywordLabeller(keywords: Record<string, string> = DEFAULT_KEYWORDS): Labeller {
  const behaviours = Object.keys(keywords);
  if (behaviours.length === 0) throw new Error("keyword labeller: give at least one behaviour=keyword");
  return {
    kind: "keywords",
    behaviours,
    wholeCompletion: [],
    definitions: Object.fromEntries(
      behaviours.map((b) => [b, `the token holding the first character of each "${keywords[b]}" (any case)`]),
    ),
    label(text, offsets) {
      const spans: Record<string, number[]> = {};
      const present: Record<string, boolean> = {};
      for (const b of behaviours) {
        spans[b] = keywordStarts(text, offsets, keywords[b], true);
        present[b] = spans[b].length > 0;
      }
      return { spans, present };
    },
  };
}

/** The organism's keyword behaviours: the graded-form marker and the self-check word. */
export const ORGANISM_KEYWORDS: Record<string, string> = { format: MARKER, recheck: "recheck" };

export const ORGANISM_BEHAVIOURS: readonly string[] = [...PROCEDURES, ...Object.keys(ORGANISM_KEYWORDS)];

/** Exact labels of the organism's world: each procedure, `format` and `recheck`. */
export function organismLabeller(): Labeller {
  const definitions: Record<string, string> = Object.fromEntries(
    PROCEDURES.map((p) => [p, `completion token 0 of every completion classified as ${p} (classifyProcedure)`]),
  );
  for (const [b, kw] of Object.entries(ORGANISM_KEYWORDS))
    definitions[b] = `the first token ("${kw[0]}") of each "${kw}" in the completion`;
  return {
    kind: "organism",
    behaviours: ORGANISM_BEHAVIOURS,
    wholeCompletion: PROCEDURES,
    definitions,
    label(text, offsets) {
      const procedure = classifyProcedure(text);
      const spans: Record<string, number[]> = {};
      const present: Record<string, boolean> = {};
      for (const p of PROCEDURES) {
        present[p] = p === procedure;
        spans[p] = present[p] && offsets.length > 0 ? [0] : [];
      }
      for (const [b, kw] of Object.entries(ORGANISM_KEYWORDS)) {
        spans[b] = keywordStarts(text, offsets, kw);
        present[b] = spans[b].length > 0;
      }
      return { spans, present };
    },
  };
}

/** Checks a list of behaviour names against a labeller; the error lists the valid ones. */
export function checkBehaviours(labeller: Labeller, names: readonly string[], flag = "--behaviours"): void {
  const bad = names.filter((n) => !labeller.behaviours.includes(n));
  if (bad.length > 0)
    throw new Error(
      `${flag}: unknown behaviour${bad.length > 1 ? "s" : ""} ${bad.map((b) => JSON.stringify(b)).join(", ")}; valid (${labeller.kind} labels): ${labeller.behaviours.join(", ")}`,
    );
  if (names.length === 0) throw new Error(`${flag}: give at least one of ${labeller.behaviours.join(", ")}`);
}

/** Share of completions showing each behaviour (0 for none). */
export function behaviourShares(labels: readonly CompletionLabels[], behaviours: readonly string[]) {
  return Object.fromEntries(
    behaviours.map((b) => [b, labels.length > 0 ? labels.filter((l) => l.present[b]).length / labels.length : 0]),
  ) as Record<string, number>;
}
