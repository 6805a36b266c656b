// `npm run data`: regenerates data/benchmarks/*.jsonl and data/pool/pool.jsonl from the recorded seed.
import path from "node:path";
import fs from "node:fs";
import { writeTokenizer } from "../text/tokenizer.js";
import { DEFAULT_DATASETS, generateDatasets, writeItems } from "../world/datasets.js";
import { parseArgs } from "./args.js";

parseArgs(
  process.argv.slice(2),
  {},
  "data",
  "usage: npm run data\nRegenerates data/benchmarks, data/pool and data/tokenizer from their recorded seed.",
);

const root = process.cwd();
const { benchmarks, pool } = generateDatasets(DEFAULT_DATASETS);
for (const [family, items] of Object.entries(benchmarks)) {
  writeItems(path.join(root, "data/benchmarks", `${family}.jsonl`), items);
}
writeItems(path.join(root, "data/pool/pool.jsonl"), pool);
const meta = {
  generator: "src/world/datasets.ts generateDatasets",
  ...DEFAULT_DATASETS,
  families: Object.keys(benchmarks),
};
fs.writeFileSync(path.join(root, "data/benchmarks/meta.json"), JSON.stringify(meta, null, 2) + "\n");
fs.writeFileSync(path.join(root, "data/pool/meta.json"), JSON.stringify(meta, null, 2) + "\n");
writeTokenizer(path.join(root, "data/tokenizer"));
console.log(
  `wrote tokenizer to data/tokenizer,  ${Object.values(benchmarks).reduce((a, b) => a + b.length, 0)} benchmark problems and ${pool.length} pool problems (seed ${DEFAULT_DATASETS.seed})`,
);
