// `npm run experiment -- [FILE] [--seed S] [--steps N] [--example FILE] [--prompt TEXT --answer TEXT]
//                        [--out DIR] [--backend B] [--dry-run] [--force]`
// Validates everything before any work (exit 1 with file, field, value and fix), then runs GRPO on
// the single example for each seed and prints the summary.
import fs from "node:fs";
import path from "node:path";
import {
  ConfigError,
  ExperimentSchema,
  parseExperiment,
  validateExperiment,
  type Experiment,
} from "../experiment/schema.js";
import { canResume, runDir, runSeed, type ResolvedExample, type RunMode } from "../experiment/runner.js";
import { readCheckpointConfig } from "../model/checkpoint.js";
import { loadTokenizerFor } from "../text/tokenizer.js";
import { isOrganismBenchmark, loadBenchmarkRefs, loadBenchmarks } from "../eval/benchmarks.js";
import type { Benchmark } from "../eval/evaluate.js";
import { isOrganismCheckpoint } from "../model/load.js";
import { loadDataset, type DatasetRef } from "../datasets/dataset.js";
import { taskFor } from "../task/forModel.js";
import { isValidLabel } from "../reward/verifier.js";
import { numberFlag, parseArgs, runMain } from "./args.js";
import { COMPUTE_FLAGS, COMPUTE_USAGE, setupCompute } from "./setup.js";
import { packageVersions } from "./versions.js";

const DEFAULT_FILE = "experiments/default.json";

/** Reads an example file {prompt, answer}; `where` names the field that points at it. */
function readExampleFile(f: string, file: string, where: string): ResolvedExample {
  if (!fs.existsSync(f))
    throw new ConfigError(
      `${file}: field \`${where}\`: file ${JSON.stringify(f)} not found; give a JSON file like data/examples/<name>.json or an inline {"prompt", "answer"}`,
    );
  let raw: any;
  try {
    raw = JSON.parse(fs.readFileSync(f, "utf8"));
  } catch (e) {
    throw new ConfigError(
      `${f}: malformed JSON (${(e as Error).message}); an example file is {"prompt": "...", "answer": "..."}`,
    );
  }
  // the question may be called as datasets call it: prompt, problem or question
  const question = ["prompt", "problem", "question"].map((k) => raw?.[k]).find((v) => typeof v === "string");
  if (typeof question !== "string" || typeof raw?.answer !== "string") {
    throw new ConfigError(
      `${f}: an example file needs a string question ("prompt", "problem" or "question") and a string "answer"; got ${JSON.stringify(raw).slice(0, 120)}`,
    );
  }
  return { prompt: question, answer: raw.answer, source: f };
}

/** Reads a dataset of examples (JSONL, JSON or Parquet, with an optional field mapping) as
 * {prompt, answer} examples; `source` is the file and the record number (the line, for JSONL). */
async function readExamplesDataset(ref: DatasetRef, file: string): Promise<ResolvedExample[]> {
  const f = typeof ref === "string" ? ref : ref.file;
  if (!fs.existsSync(f))
    throw new ConfigError(
      `${file}: field \`examples\`: file ${JSON.stringify(f)} not found; give a dataset file (JSONL, JSON or Parquet, e.g. data/pool/pool.jsonl), a mapping {file, question, answer}, or a list of examples`,
    );
  let rows: { question: string; answer: string }[];
  try {
    rows = await loadDataset(ref);
  } catch (e) {
    throw new ConfigError(`${file}: field \`examples\`: ${(e as Error).message}`);
  }
  return rows.map((r, i) => ({ prompt: r.question, answer: r.answer, source: `${f}:${i + 1}` }));
}

/** The experiment's single example, or null when it trains on a list (`examples`). */
export function resolveExample(exp: Experiment, file: string): ResolvedExample | null {
  if (exp.example === undefined) return null;
  if (typeof exp.example !== "string")
    return { prompt: exp.example.prompt, answer: exp.example.answer, source: "inline" };
  return readExampleFile(exp.example, file, "example");
}

/** The experiment's list of examples (`examples`), or null when it trains on one (`example`). */
export async function resolveExamples(exp: Experiment, file: string): Promise<ResolvedExample[] | null> {
  const ex = exp.examples;
  if (ex === undefined) return null;
  if (!Array.isArray(ex)) return await readExamplesDataset(ex, file);
  return ex.map((e, i) =>
    typeof e === "string"
      ? readExampleFile(e, file, `examples.${i}`)
      : { prompt: e.prompt, answer: e.answer, source: "inline" },
  );
}

/** Every check that can fail before training starts. Returns the example and the loaded benchmarks. */
export async function preflight(exp: Experiment, file: string) {
  const example = resolveExample(exp, file);
  const examples = await resolveExamples(exp, file);
  const field = <T>(name: string, fix: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      throw new ConfigError(`${file}: field \`${name}\`: ${(e as Error).message}; ${fix}`);
    }
  };
  const all = example ? [{ e: example, field: "example" }] : examples!.map((e, i) => ({ e, field: `examples.${i}` }));
  const where = all.map(({ e, field: f }) => ({
    e,
    at: e.source === "inline" || !examples ? f : `${f} (${e.source})`,
  }));
  const { model, answerOpts } = isOrganismCheckpoint(exp.checkpoint)
    ? organismChecks(exp, file, where, field)
    : field(
        "checkpoint",
        "point it at a Hugging Face model directory (config.json, model.safetensors, tokenizer.json)",
        () => textModelChecks(exp, file, where),
      );
  for (const { e, at } of where)
    if (!isValidLabel(e.answer, answerOpts))
      throw new ConfigError(
        `${file}: field \`${at}.answer\`: the verifier cannot parse ${JSON.stringify(e.answer)}; use a number, fraction or simple expression (check with \`npm run -s verify\`)`,
      );
  if (exp.eval.n > 0) {
    const big = exp.eval.ks.filter((k) => k > exp.eval.n);
    if (big.length)
      throw new ConfigError(
        `${file}: field \`eval.ks\`: ${JSON.stringify(big)} larger than eval.n = ${exp.eval.n}; pass@k needs k <= n samples — lower k or raise eval.n`,
      );
  }
  for (const ref of exp.benchmarks) {
    const f = typeof ref === "string" ? (isOrganismBenchmark(ref) ? null : ref) : ref.file;
    if (f !== null && !fs.existsSync(f))
      throw new ConfigError(`${file}: field \`benchmarks\`: dataset file ${JSON.stringify(f)} not found`);
  }
  const names = exp.benchmarks.filter(isOrganismBenchmark);
  const limit = exp.eval.limit > 0 ? exp.eval.limit : null;
  const organismBenchmarks = field(
    "benchmarks",
    "use names of files in data/benchmarks/ (add, lin, mul, word), or dataset files",
    () => loadBenchmarks(names, limit),
  );
  // dataset files are read (asynchronously: Parquet) by resolveBenchmarks
  const benchmarks = names.length === exp.benchmarks.length ? organismBenchmarks : null;
  return { example, examples, model, benchmarks };
}

/** The benchmarks of an experiment, dataset files included. */
export async function resolveBenchmarks(exp: Experiment, file: string): Promise<Benchmark[]> {
  try {
    return await loadBenchmarkRefs(exp.benchmarks, exp.eval.limit > 0 ? exp.eval.limit : null);
  } catch (e) {
    throw new ConfigError(`${file}: field \`benchmarks\`: ${(e as Error).message}`);
  }
}

type Field = <T>(name: string, fix: string, f: () => T) => T;

/** The organism: its tokenizer's alphabet and context. */
type Located = { e: ResolvedExample; at: string }[];

function organismChecks(exp: Experiment, file: string, examples: Located, field: Field) {
  if (exp.prompt !== undefined || (exp.answerFormat !== undefined && exp.answerFormat !== "marker"))
    throw new ConfigError(
      `${file}: fields \`prompt\` / \`answerFormat\` are for other model families; the organism (${exp.checkpoint}) uses \`<problem>?\` and \`####N\` — remove them`,
    );
  const { cfg: model } = field(
    "checkpoint",
    "point it at a directory written by `npm run pretrain` (e.g. data/models/base), or a Hugging Face model directory",
    () => readCheckpointConfig(exp.checkpoint),
  );
  const tok = loadTokenizerFor(exp.checkpoint);
  for (const { e, at } of examples) {
    const bad = tok.unknownChars(e.prompt);
    if (bad.length) {
      throw new ConfigError(
        `${file}: field \`${at}.prompt\`: ${JSON.stringify(e.prompt)} has characters outside the tokenizer's vocabulary: ${bad.map((c) => JSON.stringify(c)).join(", ")}; rewrite the prompt with the world's alphabet (digits, + - * / = ( ) x, lowercase words), or use a Hugging Face model (--checkpoint DIR)`,
      );
    }
    if (tok.encode(e.prompt).length + 2 >= model.contextLength) {
      throw new ConfigError(
        `${file}: field \`${at}.prompt\`: ${e.prompt.length} characters leave no room for a response in the model's context of ${model.contextLength}`,
      );
    }
  }
  return { model: model as unknown, answerOpts: {} };
}

/** Any other family: its config.json, tokenizer and prompt, and room for a response. */
function textModelChecks(exp: Experiment, file: string, examples: Located) {
  const cfgFile = path.join(exp.checkpoint, "config.json");
  if (!fs.existsSync(cfgFile))
    throw new Error(
      `${exp.checkpoint}: not a checkpoint directory (no config.json); pass a directory written by \`npm run pretrain\` or an experiment, or a Hugging Face model directory`,
    );
  const model = JSON.parse(fs.readFileSync(cfgFile, "utf8")) as Record<string, unknown>;
  const task = taskFor(exp.checkpoint, { prompt: exp.prompt, answerFormat: exp.answerFormat });
  const context = Number(model.max_position_embeddings);
  for (const { e, at } of examples) {
    const n = task.promptIds(e.prompt).length;
    if (Number.isFinite(context) && n + 1 >= context)
      throw new ConfigError(
        `${file}: field \`${at}.prompt\`: its prompt has ${n} tokens, no room for a response in the model's context of ${context}`,
      );
  }
  return { model: model as unknown, answerOpts: { answerFormat: task.answerFormat } };
}

const USAGE = `usage: npm run experiment -- [FILE] [--seed S] [--steps N] [--checkpoint DIR] [--example FILE] [--prompt TEXT --answer TEXT]
                            [--out DIR] [--backend auto|tensorflow|wasm|cpu] [--dry-run] [--force | --resume]
With no FILE it runs ${DEFAULT_FILE}.`;

runMain(async () => {
  const { positional, flags } = parseArgs(
    process.argv.slice(2),
    {
      seed: "string",
      steps: "string",
      example: "string",
      checkpoint: "string",
      prompt: "string",
      answer: "string",
      out: "string",
      ...COMPUTE_FLAGS,
      "dry-run": "boolean",
      force: "boolean",
      resume: "boolean",
    },
    "experiment",
    USAGE,
  );
  if (positional.length > 1)
    throw new Error(`experiment: one experiment file at a time, got ${positional.join(" ")}\n${USAGE}`);
  const file = positional[0] ?? DEFAULT_FILE;
  if (!fs.existsSync(file)) throw new Error(`${file}: experiment file not found (files are in experiments/)`);
  const raw = parseExperiment(fs.readFileSync(file, "utf8"), file);
  // command-line overrides go through the same schema as the file
  const over: Record<string, unknown> = { ...raw };
  if (flags.seed !== undefined) over.seeds = [numberFlag(flags, "seed", 0, { integer: true, min: 0 })];
  if (flags.steps !== undefined) over.steps = numberFlag(flags, "steps", 0, { integer: true, min: 0 });
  if (flags.example !== undefined) over.example = flags.example;
  if (flags.checkpoint !== undefined) over.checkpoint = flags.checkpoint;
  if ((flags.prompt === undefined) !== (flags.answer === undefined))
    throw new Error("experiment: --prompt and --answer go together");
  if (flags.prompt !== undefined) over.example = { prompt: flags.prompt, answer: flags.answer };
  const exp = validateExperiment(over, `${file} (with command-line overrides)`);
  const checked = await preflight(exp, file);
  const { example, examples, model } = checked;
  const benchmarks = checked.benchmarks ?? (await resolveBenchmarks(exp, file));
  const outDir = (flags.out as string) ?? "results";
  if (flags.force && flags.resume)
    throw new Error("experiment: --force starts over and --resume continues; pass one of them");
  const modes = new Map<number, RunMode | "complete">();
  for (const seed of exp.seeds) {
    const d = runDir(outDir, exp.name, seed);
    const exists = fs.existsSync(path.join(d, "metrics.csv"));
    if (!exists || flags.force) modes.set(seed, "fresh");
    else if (!flags.resume) {
      throw new Error(
        `${d} already holds a run; pass --resume to continue it, --force to start it over (its files are deleted), or --out another directory`,
      );
    } else if (canResume(d)) {
      const old = JSON.parse(fs.readFileSync(path.join(d, "config.resolved.json"), "utf8"));
      // what decides the numbers: every schema field but seeds, description and $schema, with the
      // defaults of fields added since the run started filled in
      const keys = Object.keys(ExperimentSchema.shape).filter((k) => !["seeds", "description", "$schema"].includes(k));
      const pair = (e: any) => ({ prompt: e.prompt, answer: e.answer });
      const same = (a: any) => {
        const picked: Record<string, unknown> = Object.fromEntries(
          keys
            .filter((k) => a[k] !== undefined && a[k] !== null)
            .map((k) => [k, k === "example" ? pair(a.example) : k === "examples" ? a.examples.map(pair) : a[k]]),
        );
        let filled: Record<string, unknown> = picked;
        try {
          filled = validateExperiment(picked, d);
        } catch {
          // compared as written
        }
        return JSON.stringify(keys.map((k) => [k, filled[k]]));
      };
      if (same(old) !== same({ ...exp, example, examples }))
        throw new Error(
          `${d}: the run was started with a different configuration (see its config.resolved.json); resume it with the same file and options, or pass --force to start over`,
        );
      modes.set(seed, "resume");
    } else if (fs.existsSync(path.join(d, "summary.json"))) modes.set(seed, "complete");
    else modes.set(seed, "fresh");
  }
  if (flags["dry-run"]) {
    console.log(
      JSON.stringify(
        {
          file,
          ...exp,
          example,
          examples,
          model,
          benchmarks: benchmarks.map((b) => ({ name: b.name, problems: b.items.length })),
          out: outDir,
        },
        null,
        2,
      ),
    );
    console.log(`${file}: valid (dry run, nothing trained)`);
    return;
  }
  const { backend, kernels } = await setupCompute(flags);
  const data = example
    ? `example ${JSON.stringify(example.prompt)} -> ${JSON.stringify(example.answer)} (${example.source})`
    : `${examples!.length} examples (${typeof exp.examples === "string" ? exp.examples : "listed"}; each step takes the next ${exp.grpo.copies} of seeded shuffles)`;
  console.log(
    `experiment ${exp.name}: ${data}; ${exp.steps} steps of ${exp.grpo.copies}x${exp.grpo.rollouts} rollouts; held-out ${benchmarks.map((b) => `${b.name}:${b.items.length}`).join(" ")}; seeds ${exp.seeds.join(",")}`,
  );
  let stop = false;
  const onSignal = (sig: string) => {
    if (stop) process.exit(130);
    stop = true;
    console.log(`\n${sig}: finishing the current step, then saving a resumable state (press again to abort at once)`);
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  const versions = packageVersions();
  for (const seed of exp.seeds) {
    const mode = modes.get(seed)!;
    const d = runDir(outDir, exp.name, seed);
    if (mode === "complete") {
      console.log(`[seed ${seed}] ${d} is already complete (summary.json); nothing to resume`);
      continue;
    }
    if (mode === "fresh" && flags.force) fs.rmSync(d, { recursive: true, force: true });
    const r = await runSeed(
      {
        exp,
        example,
        examples,
        benchmarks,
        backend,
        versions,
        outDir,
        provenance: {
          file,
          overrides: process.argv.slice(3),
          kernels: kernels.name,
          matmulBuild: kernels.matmulBuild,
          // only when fused, so that every other run's files stay as they were
          ...(kernels.fused ? { training: "fused native forward/backward" } : {}),
        },
        log: (l) => console.log(l),
        shouldStop: () => stop,
      },
      seed,
      mode,
    );
    if (r.stopped || !r.summary) {
      const cmd = [
        "npm run experiment --",
        ...process.argv.slice(2).filter((a) => a !== "--force" && a !== "--resume"),
        "--resume",
      ].join(" ");
      console.log(`stopped: state saved in ${r.dir}; continue with: ${cmd}`);
      process.exit(130);
    }
    const s = r.summary;
    const f = (x: number | null) => (x === null ? "n/a" : x.toFixed(3));
    console.log(
      `[seed ${seed}] summary: saturationStep ${s.saturationStep ?? "never"}  heldoutAtStart ${f(s.heldoutAtStart)}  heldoutAtSaturation ${f(s.heldoutAtSaturation)}` +
        `  heldoutFinal ${f(s.heldoutFinal)}  heldoutMax ${f(s.heldoutMax)} (@${s.heldoutMaxStep})  postSaturationGain ${f(s.postSaturationGain)} (±${f(s.heldoutStandardError)} s.e.)`,
    );
    console.log(
      `[seed ${seed}]   graded-form share start/sat/final ${f(s.formatAtStart)}/${f(s.formatAtSaturation)}/${f(s.formatFinal)}; accuracy among graded ${f(s.accGivenFormatAtStart)}/${f(s.accGivenFormatAtSaturation)}/${f(s.accGivenFormatFinal)}; post-saturation gain from format ${f(s.postSaturationGainFromFormat)}, from accuracy among graded ${f(s.postSaturationGainFromAccuracyGivenFormat)}`,
    );
    console.log(
      `[seed ${seed}]   wrote ${r.dir}/{metrics.csv,summary.json,samples.jsonl,config.resolved.json,timing.json,checkpoint/} in ${r.seconds.toFixed(0)}s`,
    );
  }
});
