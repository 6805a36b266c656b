// A dataset in an experiment file: a file as downloaded (JSONL, JSON or Parquet) plus a field
// mapping that says where the question and the answer are. The zod schema is the single
// definition; loadDataset turns a file into {id, question, answer} examples or refuses it,
// naming the file, the record and the fields it has. Prompt formatting and grading happen
// elsewhere (text/prompt.ts, reward/verifier.ts).
import path from "node:path";
import { z } from "zod";
import { ANSWER_EXTRACTS, extractLabel, type AnswerExtract } from "./answers.js";
import { readRecords, type SourceRecord } from "./records.js";

/** A field name, or a dotted path into nested records (`reward_model.ground_truth`, `prompt.0.content`). */
const FieldPath = z.string().min(1);

export const AnswerFieldSchema = z.union([
  FieldPath.describe("the field holding the answer (extracted as `auto`)"),
  z
    .object({
      field: FieldPath.describe("the field holding the answer or the worked solution"),
      extract: z
        .enum(ANSWER_EXTRACTS)
        .default("auto")
        .describe(
          "plain: the text itself; boxed: the last \\boxed{...} (MATH solutions); gsm8k: the number after `####`; " +
            "auto: gsm8k if the text has a #### line, else boxed if it has \\boxed{, else plain",
        ),
    })
    .strict(),
]);

export const DatasetSchema = z
  .object({
    file: z.string().min(1).describe("a .jsonl, .json or .parquet file"),
    question: FieldPath.optional().describe(
      "the field holding the question (default: the first of problem, question, prompt that the first record has)",
    ),
    answer: AnswerFieldSchema.optional().describe(
      "the field holding the answer (default: answer, else solution; extracted as auto)",
    ),
    id: FieldPath.optional().describe("a field holding a unique id (default: <file name>-<index>)"),
    limit: z.number().int().positive().optional().describe("use only the first this many records"),
  })
  .strict();

export type DatasetInput = z.input<typeof DatasetSchema>;
export type DatasetSpec = z.output<typeof DatasetSchema>;

/** A dataset file, or the mapping object. */
export const DatasetRefSchema = z.union([z.string().min(1), DatasetSchema]);
export type DatasetRef = z.input<typeof DatasetRefSchema>;

export interface Example {
  id: string;
  question: string;
  answer: string;
}

export const DEFAULT_QUESTION_FIELDS = ["problem", "question", "prompt"] as const;
export const DEFAULT_ANSWER_FIELDS: readonly { field: string; extract: AnswerExtract }[] = [
  { field: "answer", extract: "auto" },
  { field: "solution", extract: "boxed" },
];

/** The value at a dotted path, or undefined. Array elements are addressed by index (`prompt.0`). */
export function fieldAt(record: Record<string, unknown>, fieldPath: string): unknown {
  let cur: unknown = record;
  for (const key of fieldPath.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    if (Array.isArray(cur)) {
      if (!/^\d+$/.test(key)) return undefined;
      cur = cur[Number(key)];
    } else {
      if (!Object.hasOwn(cur, key)) return undefined;
      cur = (cur as Record<string, unknown>)[key];
    }
  }
  return cur;
}

function describeFields(record: Record<string, unknown>): string {
  const keys = Object.keys(record);
  return keys.length === 0 ? "none" : keys.join(", ");
}

function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

/** A text field, or an exact number as text; anything else is refused. */
function textAt(file: string, rec: SourceRecord, field: string, role: string, fix: string): string {
  const v = fieldAt(rec.value, field);
  if (v === undefined)
    throw new Error(`${file}: ${rec.where} has no field "${field}" (its fields: ${describeFields(rec.value)}); ${fix}`);
  if (typeof v === "string") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  throw new Error(`${file}: ${rec.where}: the ${role} field "${field}" is ${kindOf(v)}, expected text; ${fix}`);
}

/** Parses a dataset reference (a file name or a mapping) with the defaults filled in. */
export function datasetSpec(ref: DatasetRef): DatasetSpec {
  return DatasetSchema.parse(typeof ref === "string" ? { file: ref } : ref);
}

/**
 * Reads a dataset file and maps each record to {id, question, answer}. Field defaults are
 * decided from the first record (question: problem / question / prompt; answer: answer, else the
 * last \boxed{} of solution) and then required of every record. Errors name the file, the
 * record ("line 3", "row 3", "item 3") and the fields it has, and say which setting fixes it.
 */
export async function loadDataset(ref: DatasetRef): Promise<Example[]> {
  const spec = datasetSpec(ref);
  const file = spec.file;
  const records = await readRecords(file, spec.limit ?? null);
  if (records.length === 0) throw new Error(`${file}: no records`);
  const first = records[0];

  let questionField = spec.question;
  if (questionField === undefined) {
    questionField = DEFAULT_QUESTION_FIELDS.find((f) => typeof first.value[f] === "string");
    if (questionField === undefined)
      throw new Error(
        `${file}: ${first.where} has none of the fields ${DEFAULT_QUESTION_FIELDS.join(", ")} as text ` +
          `(its fields: ${describeFields(first.value)}); set "question" in the dataset mapping to the field that holds it`,
      );
  }
  let answer: { field: string; extract: AnswerExtract };
  if (spec.answer === undefined) {
    const found = DEFAULT_ANSWER_FIELDS.find((a) => first.value[a.field] !== undefined);
    if (found === undefined)
      throw new Error(
        `${file}: ${first.where} has neither an "answer" nor a "solution" field ` +
          `(its fields: ${describeFields(first.value)}); set "answer" in the dataset mapping, ` +
          `e.g. {"field": "NAME", "extract": "plain" | "boxed" | "gsm8k"}`,
      );
    answer = found;
  } else answer = typeof spec.answer === "string" ? { field: spec.answer, extract: "auto" } : spec.answer;

  const base = path.basename(file).replace(/\.[^.]+$/, "");
  const seen = new Map<string, string>();
  return records.map((rec, i) => {
    const question = textAt(file, rec, questionField, "question", 'set "question" in the dataset mapping');
    if (question.trim() === "")
      throw new Error(`${file}: ${rec.where}: the question field "${questionField}" is empty`);
    const raw = textAt(file, rec, answer.field, "answer", 'set "answer" in the dataset mapping');
    const label = extractLabel(raw, answer.extract);
    if (label === null) {
      const how =
        answer.extract === "boxed"
          ? "has no complete \\boxed{...}"
          : answer.extract === "gsm8k"
            ? "has no answer after ####"
            : "is empty";
      throw new Error(
        `${file}: ${rec.where}: the answer field "${answer.field}" ${how} (${JSON.stringify(raw.slice(-80))}); ` +
          `choose another "extract" (plain, boxed, gsm8k) or field`,
      );
    }
    const id =
      spec.id === undefined ? `${base}-${i}` : textAt(file, rec, spec.id, "id", 'set "id" in the dataset mapping');
    const dup = seen.get(id);
    if (dup !== undefined) throw new Error(`${file}: ${rec.where} has the same id "${id}" as ${dup}`);
    seen.set(id, rec.where);
    return { id, question, answer: label };
  });
}
