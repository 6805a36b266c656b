// `npm run schema`: writes the JSON Schemas of experiment files (experiments/experiment.schema.json)
// and sweep files (experiments/sweeps/sweep.schema.json) from their zod schemas (editor completion).
import fs from "node:fs";
import { experimentJsonSchema } from "../experiment/schema.js";
import { sweepJsonSchema } from "../sweep/schema.js";
import { findingJsonSchema } from "../sweep/suite.js";
import { parseArgs } from "./args.js";

parseArgs(
  process.argv.slice(2),
  {},
  "schema",
  "usage: npm run schema\nRegenerates experiments/experiment.schema.json, experiments/sweeps/sweep.schema.json and experiments/suite/suite.schema.json from the zod schemas.",
);

for (const [file, schema] of [
  ["experiments/experiment.schema.json", experimentJsonSchema()],
  ["experiments/sweeps/sweep.schema.json", sweepJsonSchema()],
  ["experiments/suite/suite.schema.json", findingJsonSchema()],
] as const) {
  fs.writeFileSync(file, JSON.stringify(schema, null, 2) + "\n");
  console.log(`wrote ${file}`);
}
