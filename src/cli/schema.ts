// `npm run schema`: writes experiments/experiment.schema.json from the zod schema (editor completion).
import fs from "node:fs";
import { experimentJsonSchema } from "../experiment/schema.js";
import { parseArgs } from "./args.js";

parseArgs(
  process.argv.slice(2),
  {},
  "schema",
  "usage: npm run schema\nRegenerates experiments/experiment.schema.json from the zod schema.",
);

fs.writeFileSync("experiments/experiment.schema.json", JSON.stringify(experimentJsonSchema(), null, 2) + "\n");
console.log("wrote experiments/experiment.schema.json");
