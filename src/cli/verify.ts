// `npm run -s verify -- FILE.jsonl`: scores responses with the rule-based verifier, one JSON line
// per input line `{"response": "...", "label": "..."}`, in input order, on stdout.
// It is not a trainer or an evaluator of models: it only applies src/reward/verifier.ts.
// Exit codes: 0 ok; 2 usage error, missing file, or a malformed input line (checked before any
// output is printed, so a bad file never yields partial results).
import { reward } from "../reward/verifier.js";
import { readVerifyInput, type VerifyItem } from "./verifyInput.js";

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

let items: VerifyItem[];
try {
  items = readVerifyInput(file);
} catch (e) {
  fail((e as Error).message);
}

const out = items.map(({ response, label }) => {
  const r = reward(response, label);
  return JSON.stringify({ reward: r.reward, extracted: r.extracted, format: r.parts.format, answer: r.parts.answer });
});
if (out.length > 0) process.stdout.write(out.join("\n") + "\n");
