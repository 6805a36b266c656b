// Loads held-out benchmarks: every data/benchmarks/<name>.jsonl (or a chosen list), each line
// {id, family, prompt, answer}; optionally the first `limit` problems of each.
import fs from "node:fs";
import path from "node:path";
import { readItems } from "../world/datasets.js";
import type { Benchmark } from "./evaluate.js";

export const BENCHMARK_DIR = "data/benchmarks";

export function listBenchmarks(dir = BENCHMARK_DIR): string[] {
  if (!fs.existsSync(dir)) throw new Error(`${dir}: benchmark directory not found (run \`npm run data\`)`);
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".jsonl"))
    .map((f) => f.slice(0, -6))
    .sort();
}

export function loadBenchmarks(names: string[] | null, limit: number | null, dir = BENCHMARK_DIR): Benchmark[] {
  const chosen = names ?? listBenchmarks(dir);
  return chosen.map((name) => {
    const file = name.endsWith(".jsonl") ? name : path.join(dir, `${name}.jsonl`);
    const items = readItems(file);
    return { name: path.basename(file, ".jsonl"), items: limit ? items.slice(0, limit) : items };
  });
}
