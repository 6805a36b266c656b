// The label of a dataset record, from the field that holds it: the text itself ("plain"), the
// content of the last `\boxed{...}` of a worked solution ("boxed", MATH-style, nested braces
// allowed), or the number after GSM8K's `#### ` line ("gsm8k"). "auto" picks gsm8k when the text
// has a `####` line, else boxed when it has a `\boxed{`, else plain. Pure functions.
import { balancedGroup } from "../engine/braces.js";

export const ANSWER_EXTRACTS = ["auto", "plain", "boxed", "gsm8k"] as const;
export type AnswerExtract = (typeof ANSWER_EXTRACTS)[number];

/** Content of the last `\boxed{...}` (or `\fbox{...}`, which some MATH solutions use), trimmed;
 * null when there is none, when it is empty, or when its braces never close. */
export function lastBoxed(text: string): string | null {
  const re = /\\(?:boxed|fbox)\s*\{/g;
  let last: RegExpExecArray | null = null;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) last = m;
  if (last === null) return null;
  const inner = balancedGroup(text, last.index + last[0].length - 1);
  const trimmed = inner?.trim() ?? "";
  return trimmed === "" ? null : trimmed;
}

/** GSM8K's final answer: what follows the last `####` on its line, with thousands commas
 * removed from a number (as the reference data preparation of verl does); null when absent. */
export function gsm8kAnswer(text: string): string | null {
  const at = text.lastIndexOf("####");
  if (at < 0) return null;
  const line = text
    .slice(at + 4)
    .split(/\r?\n/)[0]
    .trim();
  if (line === "") return null;
  return /^-?[\d,]*\.?\d+$/.test(line) ? line.replace(/,/g, "") : line;
}

/** Which extraction "auto" means for this text. */
export function autoExtract(text: string): Exclude<AnswerExtract, "auto"> {
  if (/(^|\n)\s*####/.test(text)) return "gsm8k";
  if (/\\(?:boxed|fbox)\s*\{/.test(text)) return "boxed";
  return "plain";
}

/** The label from a field's text under an extraction; null when the extraction finds nothing. */
export function extractLabel(text: string, extract: AnswerExtract): string | null {
  const how = extract === "auto" ? autoExtract(text) : extract;
  if (how === "boxed") return lastBoxed(text);
  if (how === "gsm8k") return gsm8kAnswer(text);
  const t = text.trim();
  return t === "" ? null : t;
}
