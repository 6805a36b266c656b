// `npm run -s verify -- FILE.jsonl`: scores responses with the rule-based verifier, one JSON line
// per input line `{"response": "...", "label": "..."}`, in input order, on stdout.
// It is not a trainer or an evaluator of models: it only applies src/reward/verifier.ts.
// Exit codes: 0 ok; 2 usage error, missing file, or a malformed input line (checked before any
// output is printed, so a bad file never yields partial results).
import fs from "node:fs";
import { reward } from "../reward/verifier.js";

const USAGE = `usage: npm run -s verify -- FILE.jsonl
  Each non-blank line of FILE.jsonl is a JSON object {"response": "...", "label": "..."}.
  Prints one line per input line: {"reward":0|1,"extracted":string|null,"format":0|1,"answer":0|1}`;

function fail(message: string): never {
  process.stderr.write(message.endsWith("\n") ? message : message + "\n");
  process.exit(2);
}

const args = process.argv.slice(2).filter((a) => a !== "--");
if (args.includes("-h") || args.includes("--help")) {
  console.log(USAGE);
  process.exit(0);
}
if (args.length === 0) fail(USAGE);
if (args.length > 1) fail(`verify: expected one file, got ${args.length}: ${args.join(" ")}\n${USAGE}`);
const file = args[0];

let text: string;
try {
  text = fs.readFileSync(file, "utf8");
} catch (e) {
  const code = (e as NodeJS.ErrnoException).code;
  fail(
    code === "ENOENT"
      ? `verify: file not found: ${file} (give the path of an existing .jsonl file)`
      : `verify: cannot read ${file}: ${(e as Error).message}`,
  );
}

const EXAMPLE = `{"response": "...####42", "label": "42"}`;
const items: { response: string; label: string }[] = [];
const lines = text.split(/\r?\n/);
for (let i = 0; i < lines.length; i++) {
  const line = lines[i];
  if (line.trim() === "") continue;
  const where = `${file}:${i + 1}`;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (e) {
    fail(
      `verify: ${where}: not valid JSON (${(e as Error).message}). Fix: write one JSON object per line, e.g. ${EXAMPLE}`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(`verify: ${where}: expected a JSON object. Fix: write one object per line, e.g. ${EXAMPLE}`);
  }
  const { response, label } = value as Record<string, unknown>;
  const bad = [typeof response !== "string" ? "response" : null, typeof label !== "string" ? "label" : null].filter(
    (x) => x !== null,
  );
  if (bad.length > 0) {
    fail(
      `verify: ${where}: field ${bad.map((b) => `"${b}"`).join(" and ")} missing or not a string. Fix: give both as strings, e.g. ${EXAMPLE}`,
    );
  }
  items.push({ response: response as string, label: label as string });
}

const out = items.map(({ response, label }) => {
  const r = reward(response, label);
  return JSON.stringify({ reward: r.reward, extracted: r.extracted, format: r.parts.format, answer: r.parts.answer });
});
if (out.length > 0) process.stdout.write(out.join("\n") + "\n");
