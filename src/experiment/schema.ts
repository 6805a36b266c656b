// The experiment file format: one zod schema is the single definition; the user-facing type
// (optional fields) and the resolved type (all fields) are inferred from it, and the JSON Schema
// for editors (experiments/experiment.schema.json) is generated from it.
// Validation errors name the file, the field, the value received and the fix.
import { z } from "zod";
import { nearest } from "../engine/nearest.js";
import { DatasetSchema } from "../datasets/dataset.js";
import { ANSWER_FORMATS } from "../reward/verifier.js";
import { PromptSchema } from "../text/prompt.js";
import { STD_MODES } from "../rl/advantages.js";
import { AGGREGATIONS } from "../rl/loss.js";
import { REWARDS } from "../rl/reward.js";

const pos = () => z.number().positive();
const posInt = () => z.number().int().positive();
const prob = () => z.number().min(0).max(1);

export const ExampleSchema = z
  .object({
    prompt: z
      .string()
      .min(1)
      .max(20000)
      .describe(
        "the question: for the organism the problem text before the `?` separator; for other models the question put into the prompt",
      ),
    answer: z.string().min(1).max(80).describe("the label the verifier compares the final answer with"),
  })
  .strict();

export const GrpoSchema = z
  .object({
    copies: posInt().default(8).describe("B: copies of the single example per step (one group each)"),
    rollouts: posInt().default(8).describe("G: rollouts per copy (group size)"),
    temperature: z.number().positive().max(10).default(1).describe("rollout sampling temperature"),
    topP: z.number().gt(0).max(1).default(1).describe("rollout nucleus sampling mass (1 = off)"),
    maxNewTokens: posInt().max(32768).default(80).describe("longest response, in tokens"),
    learningRate: pos().max(1).default(1e-4).describe("AdamW learning rate (constant)"),
    weightDecay: z.number().min(0).max(1).default(0.01).describe("AdamW decoupled weight decay"),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.99),
    gradClip: z.number().min(0).default(1).describe("clip the global gradient norm to this (0 = off)"),
    updatesPerBatch: posInt().max(16).default(1).describe("optimizer steps per rollout batch"),
    microBatch: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe(
        "rows (rollouts) per forward/backward pass, gradients accumulated over them, so a step's activations stay bounded (0 = all copies × rollouts at once)",
      ),
    reward: z
      .enum(REWARDS)
      .default("outcome")
      .describe(
        "outcome: 1 for a graded answer equal to the label (the verifier's reward); format: 1 for any answer in the graded form, right or wrong",
      ),
    advantage: z
      .object({
        std: z
          .enum(STD_MODES)
          .default("sample")
          .describe("sample (unbiased, as verl's torch.std), population, or none (Dr. GRPO: no std division)"),
        eps: z.number().min(0).default(1e-6).describe("ε in (r − mean)/(std + ε)"),
      })
      .strict()
      .prefault({}),
    loss: z
      .object({
        pgCoef: z
          .number()
          .min(0)
          .default(1)
          .describe("coefficient of the policy-gradient (clipped surrogate) term; 0 removes the reward from the loss"),
        clipEps: z.number().min(0).max(1).default(0.2).describe("PPO clip ε"),
        klCoef: z.number().min(0).default(0.001).describe("β, coefficient of the k3 KL to the reference"),
        entropyCoef: z.number().default(0.001).describe("α, coefficient of the entropy bonus (negative = penalty)"),
        aggregation: z
          .enum(AGGREGATIONS)
          .default("token-mean")
          .describe("token-mean, seq-mean-token-mean or constant (Dr. GRPO)"),
        constantLength: posInt().default(80).describe("L of the constant aggregation"),
        logprobTemperature: z
          .union([z.literal("rollout"), z.number().positive().max(10)])
          .default("rollout")
          .describe(
            'temperature of the log-probs, KL and entropy in the loss: "rollout" (logits ÷ the rollout temperature, as the paper\'s verl does) or a number (1 = raw logits)',
          ),
        klClamp: z
          .number()
          .positive()
          .nullable()
          .default(10)
          .describe("clamp of the k3 KL to [−c, c] (and its log-ratio to ±20), as verl's low_var_kl; null = unclamped"),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export const EvalSchema = z
  .object({
    every: posInt().default(10).describe("evaluate held-out benchmarks at step 0 and every this many steps"),
    n: z
      .number()
      .int()
      .min(0)
      .default(4)
      .describe("samples per problem for sampled accuracy and pass@k (0 = greedy only)"),
    ks: z.array(posInt()).default([1, 4]).describe("k values for pass@k (each <= n)"),
    temperature: z.number().positive().max(10).default(1).describe("sampling temperature of the held-out samples"),
    topP: z.number().gt(0).max(1).default(1),
    limit: z.number().int().min(0).default(0).describe("problems per benchmark (0 = all)"),
    samples: z
      .number()
      .int()
      .min(0)
      .default(2)
      .describe("completions per benchmark written to samples.jsonl at each eval"),
  })
  .strict();

export const SaturationSchema = z
  .object({
    threshold: prob().default(0.95).describe("training accuracy that counts as saturated"),
    window: posInt().default(5).describe("trailing window (steps) over which training accuracy is averaged"),
  })
  .strict();

export const ExperimentSchema = z
  .object({
    $schema: z.string().optional(),
    name: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/, "use letters, digits, '.', '_' or '-'")
      .describe("results go to <out>/<name>/seed-<seed>/"),
    description: z.string().optional(),
    seeds: z.array(z.number().int().min(0)).min(1).default([1]).describe("one run per seed"),
    steps: z.number().int().min(0).default(150).describe("GRPO steps"),
    checkpoint: z.string().default("data/models/base").describe("base checkpoint directory"),
    example: z
      .union([ExampleSchema, z.string()])
      .optional()
      .describe("the single training example: {prompt, answer} or a JSON file under data/examples/"),
    examples: z
      .union([z.array(z.union([ExampleSchema, z.string()])).min(1), z.string(), DatasetSchema])
      .optional()
      .describe(
        "instead of `example`, several training examples: a list of {prompt, answer} or example files, or a dataset file (JSONL, JSON or Parquet; data/pool/pool.jsonl: the whole pool) or dataset mapping {file, question, answer, limit}, read as the benchmarks are. Each step's `copies` groups take the next examples of a stream of epochs, each epoch a seeded shuffle of the list",
      ),
    benchmarks: z
      .array(z.union([z.string(), DatasetSchema]))
      .min(1)
      .default(["add", "lin", "mul", "word"])
      .describe(
        "held-out benchmarks: organism names under data/benchmarks/, or dataset files (JSONL, JSON, Parquet) or dataset mappings {file, question, answer, limit}",
      ),
    prompt: PromptSchema.optional().describe(
      'how a question becomes the model\'s input (not for the organism): "chat" (the model\'s chat template; the default when it has one), "raw", a preset name (e.g. "qwen25-math-boxed") or a template with {question}',
    ),
    answerFormat: z
      .enum(ANSWER_FORMATS)
      .optional()
      .describe(
        'where the verifier reads the answer (not for the organism): "boxed" (last \\boxed{}) or "marker" (after ####); default: the prompt preset\'s, else boxed',
      ),
    checkpointEvery: z
      .number()
      .int()
      .min(0)
      .default(25)
      .describe("save a resumable state every this many steps (0 = only at step 0 and on Ctrl-C/SIGTERM)"),
    grpo: GrpoSchema.prefault({}),
    eval: EvalSchema.prefault({}),
    saturation: SaturationSchema.prefault({}),
  })
  .strict()
  .superRefine((e, ctx) => {
    const has = (k: "example" | "examples") => e[k] !== undefined;
    if (has("example") === has("examples"))
      ctx.addIssue({
        code: "custom",
        path: has("example") ? ["examples"] : ["example"],
        message: has("example")
          ? "give the training data once: `example` (one example) or `examples` (several), not both"
          : "no training data: give `example` ({prompt, answer} or a file under data/examples/) or `examples` (a list, or a JSONL file such as data/pool/pool.jsonl)",
      });
  });

export type ExperimentInput = z.input<typeof ExperimentSchema>;
export type Experiment = z.output<typeof ExperimentSchema>;

function valueAt(obj: unknown, p: PropertyKey[]): unknown {
  let cur: any = obj;
  for (const k of p) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = cur[k as any];
  }
  return cur;
}

function shapeAt(schema: z.ZodType, p: PropertyKey[]): string[] {
  let cur: any = schema;
  for (const k of p) {
    while (cur?._zod?.def?.innerType) cur = cur._zod.def.innerType;
    if (cur?._zod?.def?.type === "union") cur = cur._zod.def.options.find((o: any) => o._zod.def.type === "object");
    cur = cur?._zod?.def?.shape?.[k as string];
  }
  while (cur?._zod?.def?.innerType) cur = cur._zod.def.innerType;
  if (cur?._zod?.def?.type === "union") cur = cur._zod.def.options.find((o: any) => o._zod.def.type === "object");
  return cur?._zod?.def?.shape ? Object.keys(cur._zod.def.shape) : [];
}

/** Parses raw JSON text of an experiment file; every problem is reported with file, field, value and fix. */
export function parseExperiment(text: string, file: string): Experiment {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message;
    const m = /position (\d+)/.exec(msg);
    let where = "";
    if (m) {
      const posn = Number(m[1]);
      const before = text.slice(0, posn).split("\n");
      where = ` at line ${before.length}, column ${before[before.length - 1].length + 1}`;
    }
    throw new ConfigError(`${file}: malformed JSON${where}: ${msg}`);
  }
  return validateExperiment(raw, file);
}

export class ConfigError extends Error {}

export function validateExperiment(raw: unknown, file: string): Experiment {
  const r = ExperimentSchema.safeParse(raw);
  if (r.success) return r.data;
  const lines = r.error.issues.map((iss) => {
    const field = iss.path.map(String).join(".") || "(top level)";
    if (iss.code === "unrecognized_keys") {
      return iss.keys
        .map((k) => {
          const fullPath = [...iss.path, k].map(String).join(".");
          const near = nearest(k, shapeAt(ExperimentSchema, iss.path));
          return `unknown key \`${fullPath}\`${near ? ` — did you mean \`${[...iss.path.map(String), near].join(".")}\`?` : ""}`;
        })
        .join("\n  ");
    }
    const value = valueAt(raw, iss.path);
    const shown = value === undefined ? "nothing (the field is missing)" : JSON.stringify(value);
    return `field \`${field}\`: ${iss.message}; got ${shown}`;
  });
  throw new ConfigError(`${file}: invalid experiment:\n  ${lines.join("\n  ")}`);
}

/** The JSON Schema of experiment files, for editor completion. */
export function experimentJsonSchema(): object {
  return z.toJSONSchema(ExperimentSchema, { io: "input", unrepresentable: "any" });
}
