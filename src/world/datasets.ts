// Held-out benchmarks and the training pool: JSONL files of {id, family, prompt, answer},
// generated deterministically from a recorded seed, disjoint from each other by prompt.
import fs from "node:fs";
import path from "node:path";
import { makeRng } from "../engine/rng.js";
import { FAMILY_NAMES, makeProblem, type FamilyName } from "./families.js";

export interface Item {
  id: string;
  family: string;
  prompt: string;
  answer: string;
}

export interface DatasetSpec {
  seed: number;
  benchmarkSize: number;
  poolSize: number;
}

export const DEFAULT_DATASETS: DatasetSpec = { seed: 20250101, benchmarkSize: 250, poolSize: 16 };

/** Generates per-family benchmarks and a pool (per family `poolSize`), all prompts distinct. */
export function generateDatasets(spec: DatasetSpec): { benchmarks: Record<FamilyName, Item[]>; pool: Item[] } {
  const seen = new Set<string>();
  const benchmarks = {} as Record<FamilyName, Item[]>;
  const pool: Item[] = [];
  for (const family of FAMILY_NAMES) {
    const rng = makeRng(spec.seed, `dataset/${family}`);
    const take = (n: number, prefix: string): Item[] => {
      const out: Item[] = [];
      let tries = 0;
      while (out.length < n) {
        if (++tries > n * 1000) throw new Error(`family ${family}: cannot draw ${n} distinct problems`);
        const p = makeProblem(family, rng);
        if (seen.has(p.prompt)) continue;
        seen.add(p.prompt);
        out.push({
          id: `${prefix}-${family}-${String(out.length).padStart(4, "0")}`,
          family,
          prompt: p.prompt,
          answer: p.answer,
        });
      }
      return out;
    };
    benchmarks[family] = take(spec.benchmarkSize, "test");
    pool.push(...take(spec.poolSize, "pool"));
  }
  return { benchmarks, pool };
}

/** Reads a JSONL file of items; a bad line is an error naming the file and the line number. */
export function readItems(file: string): Item[] {
  if (!fs.existsSync(file)) throw new Error(`${file}: file not found`);
  const lines = fs.readFileSync(file, "utf8").split("\n");
  const items: Item[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      throw new Error(
        `${file}:${i + 1}: not valid JSON (${(e as Error).message}); each line must be {"prompt": "...", "answer": "..."}`,
      );
    }
    const o = obj as Record<string, unknown>;
    if (typeof o !== "object" || o === null || typeof o.prompt !== "string" || typeof o.answer !== "string") {
      throw new Error(
        `${file}:${i + 1}: expected an object with string fields "prompt" and "answer", got ${line.slice(0, 80)}`,
      );
    }
    items.push({
      id: typeof o.id === "string" ? o.id : `${path.basename(file, ".jsonl")}-${i + 1}`,
      family: typeof o.family === "string" ? o.family : path.basename(file, ".jsonl"),
      prompt: o.prompt,
      answer: o.answer,
    });
  });
  if (items.length === 0) throw new Error(`${file}: no items`);
  return items;
}

export function writeItems(file: string, items: Item[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, items.map((x) => JSON.stringify(x)).join("\n") + "\n");
}
