// `npm run schema`: writes the JSON Schemas of experiment files (experiments/experiment.schema.json)
// and sweep files (experiments/sweeps/sweep.schema.json) from their zod schemas (editor completion).
import fs from "node:fs";
import { experimentJsonSchema } from "../experiment/schema.js";
import { sweepJsonSchema } from "../sweep/schema.js";

for (const [file, schema] of [
  ["experiments/experiment.schema.json", experimentJsonSchema()],
  ["experiments/sweeps/sweep.schema.json", sweepJsonSchema()],
] as const) {
  fs.writeFileSync(file, JSON.stringify(schema, null, 2) + "\n");
  console.log(`wrote ${file}`);
}
