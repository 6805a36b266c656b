// The sweep file format: a base experiment file, the axes of a grid (seeds, examples, any experiment
// field by its dotted path → a list of values) and how runs are named. One zod schema is the
// definition; the JSON Schema for editors (experiments/sweeps/sweep.schema.json) is generated from
// it. Grid paths are checked against the experiment schema, so a misspelt field is an error that
// names the file, the key and the nearest real field. Expanding a sweep into runs is ./expand.ts.
import { z } from "zod";
import { ConfigError, ExampleSchema, ExperimentSchema } from "../experiment/schema.js";
import { nearest } from "../engine/nearest.js";

const NAME_RE = /^[A-Za-z0-9._-]+$/;

export const SweepExampleSchema = z.union([
  z.string().min(1).describe("a JSON file {prompt, answer}, e.g. data/examples/default.json"),
  z
    .object({
      label: z
        .string()
        .regex(NAME_RE, "use letters, digits, '.', '_' or '-'")
        .optional()
        .describe("the example's name in run names (default: the prompt with other characters as _)"),
      prompt: ExampleSchema.shape.prompt,
      answer: ExampleSchema.shape.answer,
    })
    .strict(),
]);

export const SweepSchema = z
  .object({
    $schema: z.string().optional(),
    name: z
      .string()
      .regex(NAME_RE, "use letters, digits, '.', '_' or '-'")
      .describe("the sweep's name: default results directory results/sweeps/<name>, and the start of run names"),
    description: z.string().optional(),
    base: z
      .string()
      .min(1)
      .describe(
        "the experiment file every run starts from (path from the repository root, like experiments/smoke.json)",
      ),
    seeds: z
      .array(z.number().int().min(0))
      .min(1)
      .optional()
      .describe("one run per seed for every grid point (default: the base file's seeds)"),
    examples: z
      .array(SweepExampleSchema)
      .min(1)
      .optional()
      .describe("the training examples to sweep over (default: the base file's example)"),
    grid: z
      .record(z.string(), z.array(z.unknown()).min(1))
      .default({})
      .describe('experiment field by dotted path → values, e.g. {"grpo.learningRate": [0.0001, 0.0003]}'),
    runName: z
      .string()
      .min(1)
      .optional()
      .describe(
        "run name template with {sweep}, {example} and {<grid path>}; default: the sweep name, then the value of every axis with more than one value",
      ),
  })
  .strict();

export type SweepInput = z.input<typeof SweepSchema>;
export type Sweep = z.output<typeof SweepSchema>;
export type SweepExample = z.output<typeof SweepExampleSchema>;

/** Fields a grid may not set, with what to use instead. */
const RESERVED: Record<string, string> = {
  name: "runs are named by `runName`",
  description: "runs get their description from the sweep",
  $schema: "it is not a setting",
  seeds: "put them in the sweep's top-level `seeds`",
  example: "put them in the sweep's top-level `examples`",
};

function unwrap(s: any): any {
  let cur = s;
  while (cur?._zod?.def?.innerType) cur = cur._zod.def.innerType;
  return cur;
}

/** Every settable leaf of the experiment schema as a dotted path (objects are descended, arrays are leaves). */
export function experimentFieldPaths(schema: z.ZodType = ExperimentSchema, prefix = ""): string[] {
  const shape = unwrap(schema)?._zod?.def?.shape as Record<string, z.ZodType> | undefined;
  if (!shape) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(shape)) {
    const p = prefix ? `${prefix}.${k}` : k;
    const inner = unwrap(v);
    if (inner?._zod?.def?.type === "object") out.push(...experimentFieldPaths(inner, p));
    else out.push(p);
  }
  return out;
}

/** Checks one grid key; returns the error text (without the file) or null. */
export function gridKeyProblem(key: string): string | null {
  const top = key.split(".")[0];
  if (key in RESERVED || (top === "example" && key !== top))
    return `grid key \`${key}\` cannot be swept: ${RESERVED[top] ?? RESERVED[key]}`;
  const paths = experimentFieldPaths();
  if (paths.includes(key)) return null;
  const groups = [...new Set(paths.filter((p) => p.includes(".")).map((p) => p.split(".").slice(0, -1).join(".")))];
  if (groups.includes(key)) {
    const fields = paths.filter((p) => p.startsWith(`${key}.`) && p.split(".").length === key.split(".").length + 1);
    return `grid key \`${key}\` is a group of fields; sweep one of them: ${fields.map((f) => `\`${f}\``).join(", ")}`;
  }
  const near = nearest(key, paths);
  return `grid key \`${key}\` is not an experiment field${near ? ` — did you mean \`${near}\`?` : ""} (fields: ${paths.filter((p) => !(p in RESERVED) && p !== "example").join(", ")})`;
}

/** Parses and validates the text of a sweep file; every problem names the file, the key, the value and the fix. */
export function parseSweep(text: string, file: string): Sweep {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${file}: malformed JSON: ${(e as Error).message}`);
  }
  return validateSweep(raw, file);
}

export function validateSweep(raw: unknown, file: string): Sweep {
  const r = SweepSchema.safeParse(raw);
  if (!r.success) {
    const keys = Object.keys(SweepSchema.shape);
    const lines = r.error.issues.map((iss) => {
      const field = iss.path.map(String).join(".") || "(top level)";
      if (iss.code === "unrecognized_keys" && iss.path.length === 0)
        return iss.keys
          .map((k) => {
            const near = nearest(k, keys);
            return `unknown key \`${k}\`${near ? ` — did you mean \`${near}\`?` : ""} (keys: ${keys.join(", ")})`;
          })
          .join("\n  ");
      if (iss.code === "unrecognized_keys")
        return `\`${field}\`: unknown key(s) ${iss.keys.map((k) => `\`${k}\``).join(", ")}; an inline example has prompt, answer and an optional label`;
      let value: any = raw;
      for (const k of iss.path) value = value?.[k as any];
      const shown = value === undefined ? "nothing (the field is missing)" : JSON.stringify(value);
      return `field \`${field}\`: ${iss.message}; got ${shown}`;
    });
    throw new ConfigError(`${file}: invalid sweep:\n  ${lines.join("\n  ")}`);
  }
  const problems = Object.keys(r.data.grid)
    .map(gridKeyProblem)
    .filter((p): p is string => p !== null);
  if (problems.length) throw new ConfigError(`${file}: invalid sweep:\n  ${problems.join("\n  ")}`);
  return r.data;
}

/** The JSON Schema of sweep files, for editor completion. */
export function sweepJsonSchema(): object {
  return z.toJSONSchema(SweepSchema, { io: "input", unrepresentable: "any" });
}
