// Reads the records of a dataset file as users download them: JSON Lines (`.jsonl`), JSON (an
// array, `{"data": [...]}`, or one object for a single example) or Parquet (`.parquet`, any codec
// hyparquet-compressors reads: snappy, gzip, brotli, zstd, lz4). Each record keeps where it came
// from ("line 7", "row 3", "item 2") so later errors can point at it. No field mapping here.
import fs from "node:fs";
import path from "node:path";
import { asyncBufferFromFile, parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";

export interface SourceRecord {
  /** The record, with Parquet int64 values as numbers when they are exact, else strings. */
  value: Record<string, unknown>;
  /** "line N" (JSONL, 1-based), "row N" (Parquet, 0-based as in pandas), "item N" (JSON array, 0-based). */
  where: string;
}

export const DATASET_FORMATS = ["jsonl", "json", "parquet"] as const;
export type DatasetFormat = (typeof DATASET_FORMATS)[number];

export function formatOf(file: string): DatasetFormat {
  const ext = path.extname(file).toLowerCase();
  if (ext === ".jsonl" || ext === ".ndjson") return "jsonl";
  if (ext === ".json") return "json";
  if (ext === ".parquet") return "parquet";
  throw new Error(`${file}: unknown dataset format "${ext}"; use a .jsonl, .json or .parquet file`);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** JSON has no int64; Parquet does. Keep exact integers as numbers, others as decimal text. */
function plainValue(v: unknown): unknown {
  if (typeof v === "bigint")
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (Array.isArray(v)) return v.map(plainValue);
  if (isObject(v) && !(v instanceof Date) && !(v instanceof Uint8Array))
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plainValue(x)]));
  return v;
}

function notAnObject(file: string, where: string, v: unknown): Error {
  const got = Array.isArray(v) ? "an array" : v === null ? "null" : typeof v;
  return new Error(`${file}: ${where} is ${got}, expected an object with the question and answer fields`);
}

function readJsonl(file: string, text: string, limit: number | null): SourceRecord[] {
  const out: SourceRecord[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length && (limit === null || out.length < limit); i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(
        `${file}: line ${i + 1} is not valid JSON (${(e as Error).message}); each line must be one JSON object`,
      );
    }
    if (!isObject(v)) throw notAnObject(file, `line ${i + 1}`, v);
    out.push({ value: v, where: `line ${i + 1}` });
  }
  return out;
}

function readJson(file: string, text: string, limit: number | null): SourceRecord[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const m = /position (\d+)/.exec(msg);
    const where = m ? ` at line ${text.slice(0, Number(m[1])).split("\n").length}` : "";
    throw new Error(`${file}: not valid JSON${where} (${msg})`);
  }
  let items: unknown[];
  if (Array.isArray(v)) items = v;
  else if (isObject(v) && Array.isArray(v.data)) items = v.data;
  else if (isObject(v)) return [{ value: v, where: "the object" }];
  else
    throw new Error(
      `${file}: expected a JSON array of records, {"data": [...]}, or one record object; got ${typeof v}`,
    );
  const take = limit === null ? items : items.slice(0, limit);
  return take.map((x, i) => {
    if (!isObject(x)) throw notAnObject(file, `item ${i}`, x);
    return { value: x, where: `item ${i}` };
  });
}

async function readParquet(file: string, limit: number | null): Promise<SourceRecord[]> {
  let rows: Record<string, unknown>[];
  try {
    const buffer = await asyncBufferFromFile(file);
    rows = await parquetReadObjects({ file: buffer, compressors, rowEnd: limit ?? undefined });
  } catch (e) {
    throw new Error(`${file}: not a Parquet file hyparquet can read (${(e as Error).message})`);
  }
  return rows.map((r, i) => ({ value: plainValue(r) as Record<string, unknown>, where: `row ${i}` }));
}

/** All records of a dataset file (the first `limit` when given). Errors name the file and the record. */
export async function readRecords(file: string, limit: number | null = null): Promise<SourceRecord[]> {
  const format = formatOf(file);
  if (!fs.existsSync(file)) throw new Error(`${file}: file not found`);
  if (format === "parquet") return readParquet(file, limit);
  const text = fs.readFileSync(file, "utf8");
  return format === "jsonl" ? readJsonl(file, text, limit) : readJson(file, text, limit);
}
