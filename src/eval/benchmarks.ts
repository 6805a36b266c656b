// Loads held-out benchmarks: the organism's data/benchmarks/<name>.jsonl (each line {id, family,
// prompt, answer}), or datasets as users download them (JSONL, JSON, Parquet, with a field mapping:
// src/datasets/); optionally the first `limit` problems of each.
import fs from "node:fs";
import path from "node:path";
import { datasetSpec, loadDataset, type DatasetRef } from "../datasets/dataset.js";
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

/** An organism benchmark name (no folder, no extension) or a `.jsonl` file in the organism's form. */
export function isOrganismBenchmark(ref: DatasetRef): ref is string {
  return typeof ref === "string" && (!/[/.]/.test(ref) || path.dirname(ref) === BENCHMARK_DIR);
}

/** Benchmarks from organism names and dataset references (files or mappings), in the order given. */
export async function loadBenchmarkRefs(refs: DatasetRef[], limit: number | null): Promise<Benchmark[]> {
  const out: Benchmark[] = [];
  for (const ref of refs) {
    if (isOrganismBenchmark(ref)) {
      out.push(...loadBenchmarks([ref], limit));
      continue;
    }
    const spec = datasetSpec(ref);
    const rows = await loadDataset({ ...spec, limit: spec.limit ?? limit ?? undefined });
    const name = path.basename(spec.file).replace(/\.[^.]+$/, "");
    out.push({ name, items: rows.map((r) => ({ id: r.id, family: name, prompt: r.question, answer: r.answer })) });
  }
  return out;
}

/** A command's `--benchmarks a,b`: organism benchmark names or dataset files (JSONL, JSON, Parquet,
 * read with the default fields); null = every organism benchmark. */
export async function loadBenchmarkList(names: string[] | null, limit: number | null): Promise<Benchmark[]> {
  return names === null ? loadBenchmarks(null, limit) : await loadBenchmarkRefs(names, limit);
}
