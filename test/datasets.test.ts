// Datasets as users download them (src/datasets/): JSONL, JSON and Parquet files written here,
// field mappings, answers from plain fields, the last \boxed{} of a solution and GSM8K's ####,
// the shipped π1 example, and refusals that name the file, the record and its fields.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import zlib from "node:zlib";
import { parquetWriteBuffer } from "hyparquet-writer";
import { afterAll, describe, expect, it } from "vitest";
import { autoExtract, extractLabel, gsm8kAnswer, lastBoxed } from "../src/datasets/answers.js";
import { DatasetSchema, fieldAt, loadDataset } from "../src/datasets/dataset.js";
import { readRecords } from "../src/datasets/records.js";
import { loadBenchmarkList } from "../src/eval/benchmarks.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "datasets-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
const write = (name: string, content: string | ArrayBuffer): string => {
  const file = path.join(tmpRoot, name);
  fs.writeFileSync(file, typeof content === "string" ? content : Buffer.from(content));
  return file;
};
const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";

describe("answer extraction from a field", () => {
  const boxed: [string, string | null][] = [
    ["so the answer is $\\boxed{12.8}$.", "12.8"],
    ["\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"], // nested braces
    ["\\boxed{ \\left\\{ 1,2 \\right\\} }", "\\left\\{ 1,2 \\right\\}"], // escaped braces do not count
    ["first \\boxed{3}, finally \\boxed{4}", "4"], // the last box
    ["\\boxed {5}", "5"],
    ["\\fbox{6}", "6"],
    ["\\boxed{}", null],
    ["\\boxed{1 + {2}", null], // never closes
    ["no box", null],
  ];
  it.each(boxed)("lastBoxed(%j) = %j", (text, want) => expect(lastBoxed(text)).toBe(want));

  const gsm8k: [string, string | null][] = [
    ["Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 72", "72"],
    ["... #### 1,000", "1000"], // thousands commas dropped from a number
    ["#### -3.5\n", "-3.5"],
    ["#### \n", null],
    ["no marker", null],
  ];
  it.each(gsm8k)("gsm8kAnswer(%j) = %j", (text, want) => expect(gsm8kAnswer(text)).toBe(want));

  it("auto picks gsm8k, then boxed, then plain", () => {
    expect(autoExtract("work\n#### 72")).toBe("gsm8k");
    expect(autoExtract("so \\boxed{3}")).toBe("boxed");
    expect(autoExtract("\\frac{14}{3}")).toBe("plain");
    expect(extractLabel("  \\frac{14}{3} ", "auto")).toBe("\\frac{14}{3}");
    expect(extractLabel("work\n#### 72", "plain")).toBe("work\n#### 72");
  });
});

describe("field paths", () => {
  const rec = { prompt: [{ role: "user", content: "Q?" }], reward_model: { ground_truth: "12.8" } };
  it("reads nested objects and list elements", () => {
    expect(fieldAt(rec, "prompt.0.content")).toBe("Q?");
    expect(fieldAt(rec, "reward_model.ground_truth")).toBe("12.8");
    expect(fieldAt(rec, "prompt.1.content")).toBeUndefined();
    expect(fieldAt(rec, "prompt.x")).toBeUndefined();
    expect(fieldAt(rec, "toString")).toBeUndefined(); // own fields only
  });
});

describe("loading files", () => {
  it("GSM8K as downloaded (JSONL, question + answer with ####)", async () => {
    const file = write(
      "gsm8k.jsonl",
      jsonl([
        { question: "Natalia sold 48 clips...", answer: "She sold 48/2 = 24 in May.\n#### 72" },
        { question: "Weng earns $12 an hour...", answer: "12/60 = 0.2 per minute.\n#### 10" },
      ]) + "\n\n", // blank lines are skipped
    );
    expect(await loadDataset(file)).toEqual([
      { id: "gsm8k-0", question: "Natalia sold 48 clips...", answer: "72" },
      { id: "gsm8k-1", question: "Weng earns $12 an hour...", answer: "10" },
    ]);
  });

  it("MATH as downloaded (JSON {data: [...]}, problem + solution with \\boxed{})", async () => {
    const file = write(
      "math.json",
      JSON.stringify({
        data: [
          { problem: "Compute $\\frac12+\\frac14$.", solution: "We get $\\boxed{\\frac{3}{4}}$.", level: "Level 1" },
          { problem: "Find $x$.", solution: "Try \\boxed{1}; no, it is $\\boxed{2}$." },
        ],
      }),
    );
    const ex = await loadDataset({ file });
    expect(ex.map((e) => e.answer)).toEqual(["\\frac{3}{4}", "2"]);
    expect(ex[0].question).toBe("Compute $\\frac12+\\frac14$.");
  });

  it("MATH-500 style (a JSON array with problem, solution and answer): the answer field wins", async () => {
    const file = write(
      "math500.json",
      JSON.stringify([
        { problem: "P", solution: "... \\boxed{\\dfrac{14}{3}}", answer: "\\frac{14}{3}", unique_id: "u/1" },
      ]),
    );
    expect(await loadDataset({ file, id: "unique_id" })).toEqual([
      { id: "u/1", question: "P", answer: "\\frac{14}{3}" },
    ]);
    expect((await loadDataset({ file, answer: { field: "solution", extract: "boxed" } }))[0].answer).toBe(
      "\\dfrac{14}{3}",
    );
  });

  it("a verl-style record with nested fields, and a limit", async () => {
    const rows = [0, 1, 2].map((i) => ({
      prompt: [{ role: "user", content: `Q${i}` }],
      reward_model: { ground_truth: `${i}` },
    }));
    const file = write("verl.jsonl", jsonl(rows));
    expect(
      await loadDataset({ file, question: "prompt.0.content", answer: "reward_model.ground_truth", limit: 2 }),
    ).toEqual([
      { id: "verl-0", question: "Q0", answer: "0" },
      { id: "verl-1", question: "Q1", answer: "1" },
    ]);
  });

  it("the shipped π1 example", async () => {
    const [pi1] = await loadDataset("data/examples/pi1.json");
    expect(pi1.answer).toBe("12.8");
    expect(pi1.question).toMatch(/^The pressure \\\( P \\\) exerted by wind on a sail varies jointly/);
    expect(pi1.question).toMatch(
      /Find the wind velocity when the pressure on \\\( 4 \\\) square feet of sail is \\\( 32 \\\) pounds\.$/,
    );
  });

  it("the organism's example files load too (prompt + answer)", async () => {
    expect(await loadDataset("data/examples/default.json")).toEqual([
      { id: "default-0", question: "8x-5=27", answer: "4" },
    ]);
  });
});

/** A zstd frame made of raw (stored) blocks: valid zstd that any decoder must read, written
 * without a zstd compressor (Node 20 has none). */
function zstdStored(input: Uint8Array): Uint8Array {
  const MAX = 1 << 17;
  const parts: number[] = [0x28, 0xb5, 0x2f, 0xfd, 0xa0]; // magic; single segment, 4-byte content size
  const n = input.length;
  parts.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  let off = 0;
  do {
    const size = Math.min(MAX, n - off);
    const last = off + size >= n ? 1 : 0;
    const header = (size << 3) | last; // block type 0: raw
    parts.push(header & 0xff, (header >>> 8) & 0xff, (header >>> 16) & 0xff);
    for (let i = 0; i < size; i++) parts.push(input[off + i]);
    off += size;
  } while (off < n);
  return Uint8Array.from(parts);
}

describe("Parquet", () => {
  const columnData = () => [
    { name: "problem", data: ["What is 7*6?", "Half of 9?", "Solve x+1=3."], type: "STRING" as const },
    { name: "answer", data: [BigInt(42), BigInt(-7), BigInt(2)], type: "INT64" as const },
    {
      name: "solution",
      data: ["7*6 = \\boxed{42}", "\\boxed{\\frac{9}{2}}", "x = \\boxed{2}"],
      type: "STRING" as const,
    },
  ];
  const codecs = [
    { codec: "SNAPPY" as const, compressors: undefined },
    { codec: "UNCOMPRESSED" as const, compressors: undefined },
    { codec: "GZIP" as const, compressors: { GZIP: (b: Uint8Array) => new Uint8Array(zlib.gzipSync(b)) } },
    { codec: "ZSTD" as const, compressors: { ZSTD: zstdStored } },
  ];
  it.each(codecs.map((c) => [c.codec, c] as const))("reads %s pages", async (codec, c) => {
    const file = write(
      `t-${codec}.parquet`,
      parquetWriteBuffer({ columnData: columnData(), codec, compressors: c.compressors }),
    );
    // int64 answers come back as exact numbers, then as label text
    expect(await loadDataset(file)).toEqual([
      { id: `t-${codec}-0`, question: "What is 7*6?", answer: "42" },
      { id: `t-${codec}-1`, question: "Half of 9?", answer: "-7" },
      { id: `t-${codec}-2`, question: "Solve x+1=3.", answer: "2" },
    ]);
    const boxed = await loadDataset({ file, answer: { field: "solution", extract: "boxed" }, limit: 2 });
    expect(boxed.map((e) => e.answer)).toEqual(["42", "\\frac{9}{2}"]);
  });

  it("reports rows 0-based, with the fields a row has", async () => {
    const file = write(
      "bad-row.parquet",
      parquetWriteBuffer({
        columnData: [
          { name: "problem", data: ["a", "b"], type: "STRING" },
          { name: "solution", data: ["\\boxed{1}", "no box here"], type: "STRING" },
        ],
      }),
    );
    await expect(loadDataset(file)).rejects.toThrow(
      /bad-row\.parquet: row 1: the answer field "solution" has no complete \\boxed\{\.\.\.\} \("no box here"\)/,
    );
  });

  it("refuses a file that is not Parquet", async () => {
    const file = write("fake.parquet", "problem,answer\n1+1,2\n");
    await expect(readRecords(file)).rejects.toThrow(/fake\.parquet: not a Parquet file hyparquet can read/);
  });
});

describe("refusals name the file, the record and its fields", () => {
  const cases: { name: string; content: string; spec?: object; error: RegExp }[] = [
    {
      name: "badline.jsonl",
      content: '{"problem": "a", "answer": "1"}\n{"problem": "b", "answer": 2,}\n',
      error: /badline\.jsonl: line 2 is not valid JSON/,
    },
    {
      name: "notobj.jsonl",
      content: '{"problem": "a", "answer": "1"}\n["b", "2"]\n',
      error: /notobj\.jsonl: line 2 is an array, expected an object/,
    },
    {
      name: "nofields.jsonl",
      content: jsonl([{ text: "a", label: "1" }]),
      error:
        /nofields\.jsonl: line 1 has none of the fields problem, question, prompt as text \(its fields: text, label\); set "question"/,
    },
    {
      name: "noanswer.jsonl",
      content: jsonl([{ problem: "a", label: "1" }]),
      error:
        /noanswer\.jsonl: line 1 has neither an "answer" nor a "solution" field \(its fields: problem, label\); set "answer"/,
    },
    {
      name: "missing-later.jsonl",
      content: jsonl([
        { problem: "a", answer: "1" },
        { problem: "b", ans: "2" },
      ]),
      error: /missing-later\.jsonl: line 2 has no field "answer" \(its fields: problem, ans\); set "answer"/,
    },
    {
      name: "mapped.jsonl",
      content: jsonl([{ problem: "a", answer: "1" }]),
      spec: { question: "query" },
      error: /mapped\.jsonl: line 1 has no field "query" \(its fields: problem, answer\); set "question"/,
    },
    {
      name: "listq.json",
      content: JSON.stringify([
        { problem: "a", answer: "1" },
        { problem: ["b"], answer: "2" },
      ]),
      error: /listq\.json: item 1: the question field "problem" is a list, expected text/,
    },
    {
      name: "nohash.jsonl",
      content: jsonl([{ question: "a", answer: "just words" }]),
      spec: { answer: { field: "answer", extract: "gsm8k" } },
      error: /nohash\.jsonl: line 1: the answer field "answer" has no answer after ####/,
    },
    {
      name: "dup.json",
      content: JSON.stringify([
        { id: "x", problem: "a", answer: "1" },
        { id: "x", problem: "b", answer: "2" },
      ]),
      spec: { id: "id" },
      error: /dup\.json: item 1 has the same id "x" as item 0/,
    },
    { name: "broken.json", content: '{"data": [\n{"problem": "a"\n', error: /broken\.json: not valid JSON/ },
    { name: "scalar.json", content: "42", error: /scalar\.json: expected a JSON array of records/ },
    { name: "empty.jsonl", content: "\n", error: /empty\.jsonl: no records/ },
    { name: "table.csv", content: "problem,answer\n", error: /table\.csv: unknown dataset format "\.csv"/ },
  ];
  it.each(cases.map((c) => [c.name, c] as const))("%s", async (_n, c) => {
    const file = write(c.name, c.content);
    await expect(loadDataset({ file, ...c.spec })).rejects.toThrow(c.error);
  });

  it("a missing file", async () => {
    await expect(loadDataset(path.join(tmpRoot, "nope.jsonl"))).rejects.toThrow(/nope\.jsonl: file not found/);
  });

  it("the mapping schema refuses unknown keys and extractions", () => {
    expect(DatasetSchema.safeParse({ file: "x.jsonl", questoin: "q" }).success).toBe(false);
    expect(DatasetSchema.safeParse({ file: "x.jsonl", answer: { field: "a", extract: "last" } }).success).toBe(false);
    expect(DatasetSchema.safeParse({ file: "x.jsonl", limit: 0 }).success).toBe(false);
    expect(DatasetSchema.parse({ file: "x.jsonl", answer: { field: "solution" } }).answer).toEqual({
      field: "solution",
      extract: "auto",
    });
  });
});

describe("a command's --benchmarks list", () => {
  it("mixes organism benchmark names and dataset files; none given = every organism benchmark", async () => {
    const f = path.join(tmpRoot, "math.json");
    fs.writeFileSync(
      f,
      JSON.stringify([
        { problem: "What is 7*6?", solution: "It is $\\boxed{42}$." },
        { problem: "What is 1+1?", solution: "$\\boxed{2}$" },
      ]),
    );
    const list = await loadBenchmarkList(["add", f], 1);
    expect(list.map((b) => [b.name, b.items.length])).toEqual([
      ["add", 1],
      ["math", 1],
    ]);
    expect(list[1].items[0]).toMatchObject({ prompt: "What is 7*6?", answer: "42" });
    const all = await loadBenchmarkList(null, 2);
    expect(all.map((b) => b.name)).toEqual(["add", "lin", "mul", "word"]);
  });
});
