// The input of `npm run verify`: a JSONL file whose non-blank lines are {"response": "...",
// "label": "..."}. Read and checked whole before anything is scored, so that a bad file never
// yields partial results; errors name the file, the line, the problem and the fix.
import fs from "node:fs";

export interface VerifyItem {
  response: string;
  label: string;
}

const EXAMPLE = `{"response": "...####42", "label": "42"}`;

/** The items of `file`, in line order; throws an Error whose message starts with `verify: `. */
export function readVerifyInput(file: string): VerifyItem[] {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(
      code === "ENOENT"
        ? `verify: file not found: ${file} (give the path of an existing .jsonl file)`
        : `verify: cannot read ${file}: ${(e as Error).message}`,
    );
  }
  const items: VerifyItem[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === "") continue;
    const where = `${file}:${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new Error(
        `verify: ${where}: not valid JSON (${(e as Error).message}). Fix: write one JSON object per line, e.g. ${EXAMPLE}`,
      );
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      throw new Error(`verify: ${where}: expected a JSON object. Fix: write one object per line, e.g. ${EXAMPLE}`);
    }
    const { response, label } = value as Record<string, unknown>;
    const bad = [typeof response !== "string" ? "response" : null, typeof label !== "string" ? "label" : null].filter(
      (x) => x !== null,
    );
    if (bad.length > 0) {
      throw new Error(
        `verify: ${where}: field ${bad.map((b) => `"${b}"`).join(" and ")} missing or not a string. Fix: give both as strings, e.g. ${EXAMPLE}`,
      );
    }
    items.push({ response: response as string, label: label as string });
  }
  return items;
}
