// `npm run steer -- <extract|apply|layers|rl> ...`: steering vectors of any checkpoint loadModel opens
// (the organism, or a Hugging Face llama / qwen2 / qwen3 one).
//   extract  residual-stream activations on sampled completions, labelled by behaviour; difference-of-means
//            vectors per behaviour and block → a safetensors file and its JSON metadata
//   apply    held-out evaluation (as `npm run eval`) with vector × scale added after a block, per scale,
//            with 95 % intervals; JSON, table and plot
//   layers   per block: the behaviour share's change per unit scale and the KL to the unsteered model
//   rl       steering against RL: RL's shift of the mean activations vs the vectors; how much of RL's
//            held-out gain steering the base recovers; whether steering the RL checkpoint back undoes it
// The organism gets its exact labels and samples the training pool by default; other families get
// keyword labels and sample a benchmark or dataset file, with prompts, answers and stop tokens from
// the checkpoint's task (taskFor, as `npm run eval`).
// Only the I/O edge: the computation is src/analysis/steering.ts, the statistics steering-stats.ts.
import fs from "node:fs";
import path from "node:path";
import { makeRng } from "../engine/rng.js";
import type { CausalLM } from "../model/family.js";
import { loadModel, readModelShape, type ModelShape } from "../model/load.js";
import type { ResidualAddition } from "../model/gpt.js";
import { rollout, type Scored } from "../task/rollout.js";
import { taskFor } from "../task/forModel.js";
import type { Task } from "../task/task.js";
import { readItems, type Item } from "../world/datasets.js";
import { listBenchmarks, loadBenchmarkList, loadBenchmarkRefs, loadBenchmarks } from "../eval/benchmarks.js";
import type { EvalOptions } from "../eval/evaluate.js";
import { checkBehaviours, DEFAULT_KEYWORDS, keywordLabeller, organismLabeller, type Labeller } from "../eval/spans.js";
import {
  activationShiftOf,
  againstRlGrid,
  BASELINES,
  checkLayers,
  collectActivationsOf,
  decodeVectorFile,
  encodeVectorFile,
  evaluateSteeredOf,
  layerEffectsOf,
  normAddition,
  POSITIONS_NOTE,
  randomDirection,
  RL_SHIFT,
  summariseAgainstRl,
  type Candidate,
  type RlGridRow,
  steeringVectors,
  type Baseline,
  type LayerEffect,
  type SteeredEval,
  type VectorFile,
} from "../analysis/steering.js";
import {
  cosine,
  INTERVAL_METHOD,
  norm,
  projectionCoefficient,
  recoveredShare,
  type ShareEstimate,
} from "../analysis/steering-stats.js";
import { applySpec, layersSpec, rlSpec, type ApplyRow } from "../analysis/steering-plots.js";
import { fontSetup, renderSvg, svgToPng } from "../analysis/plots.js";
import { nearest } from "../engine/nearest.js";
import { numberFlag, parseArgs, runMain, type ParsedArgs } from "./args.js";
import { COMPUTE_FLAGS, COMPUTE_USAGE, setupCompute } from "./setup.js";

const SUBCOMMANDS = ["extract", "apply", "layers", "rl"] as const;
const POOL_FILE = "data/pool/pool.jsonl";

const USAGE = `usage: npm run steer -- extract --checkpoint DIR [--behaviours a,b] [--layers 0,1] [--source pool|BENCHMARK|FILE]
                     [--n 16] [--limit P] [--temperature 1] [--top-p 1] [--seed S] [--max-new-tokens N]
                     [--labels organism|keywords] [--keywords name=word,...] [--baseline all|starts]
                     [--out results/steering/vectors.safetensors]
       npm run steer -- apply --checkpoint DIR --vector FILE --behaviour B --layer L --scale s1,s2,...
                     [--n 64] [--k 1,8,64] [--limit P] [--benchmarks a,b] [--temperature 1] [--top-p 1] [--seed S]
                     [--max-new-tokens N] [--json] [--out DIR] [--png false]   (evaluation flags and defaults as npm run eval)
       npm run steer -- layers --checkpoint DIR --vector FILE [--behaviours a,b] [--layers 0,1] [--scales -0.5,-0.25,0,0.25,0.5]
                     [--source pool|BENCHMARK|FILE] [--n 8] [--limit P] [--temperature 1] [--seed S] [--max-new-tokens N]
                     [--json] [--out DIR]
       npm run steer -- rl --base DIR --rl DIR --vector FILE [--behaviours a,b] [--layers 0,1] [--norms 2,4,8,16] [--random 2]
                     [--source pool|BENCHMARK|FILE] [--n 8] [--eval-n 16] [--k 1,4,16] [--limit P] [--benchmarks a,b]
                     [--seed S] [--max-new-tokens N] [--json] [--out DIR]   (every command also takes ${COMPUTE_USAGE})
Steering vectors (difference of means of the residual stream at the tokens that open a behaviour span, minus
all completion tokens) and generation with vector × scale added after a block (0-based) at every position.
Any checkpoint npm run eval takes: the organism (behaviours careful, check, hasty, nomarker, format, recheck;
source default: the training pool) or a Hugging Face llama / qwen2 / qwen3 one (keyword labels, default
wait, recheck, verify; source: a benchmark or a dataset file, default the first benchmark; the pool is the
organism's). --max-new-tokens defaults to the model's context, as in npm run eval: set it for a real model.`;

const EVAL = ["n", "k", "limit", "benchmarks", "temperature", "top-p", "seed", "max-new-tokens"];
const OUTPUT = ["json", "out", "png"];
const ALL_FLAGS = {
  checkpoint: "string",
  base: "string",
  rl: "string",
  vector: "string",
  behaviour: "string",
  behaviours: "string",
  layer: "string",
  layers: "string",
  scale: "string",
  scales: "string",
  norms: "string",
  random: "string",
  source: "string",
  n: "string",
  "eval-n": "string",
  k: "string",
  limit: "string",
  benchmarks: "string",
  temperature: "string",
  "top-p": "string",
  seed: "string",
  "max-new-tokens": "string",
  labels: "string",
  keywords: "string",
  baseline: "string",
  out: "string",
  png: "boolean",
  json: "boolean",
  ...COMPUTE_FLAGS,
} as const;
/** the flags each command takes */
const COMMAND_FLAGS: Record<(typeof SUBCOMMANDS)[number], string[]> = {
  extract: [
    "checkpoint",
    "behaviours",
    "layers",
    "source",
    "n",
    "limit",
    "temperature",
    "top-p",
    "seed",
    "max-new-tokens",
    "labels",
    "keywords",
    "baseline",
    "out",
    "json",
  ],
  apply: ["checkpoint", "vector", "behaviour", "layer", "scale", ...EVAL, ...OUTPUT],
  layers: [
    "checkpoint",
    "vector",
    "behaviours",
    "layers",
    "scales",
    "source",
    "n",
    "limit",
    "temperature",
    "seed",
    "max-new-tokens",
    ...OUTPUT,
  ],
  rl: [
    "base",
    "rl",
    "vector",
    "behaviours",
    "layers",
    "norms",
    "random",
    "source",
    "n",
    "eval-n",
    "k",
    "limit",
    "benchmarks",
    "temperature",
    "top-p",
    "seed",
    "max-new-tokens",
    ...OUTPUT,
  ],
};

type Flags = ParsedArgs["flags"];

function numberList(flags: Flags, name: string, fallback: string, opts: { integer?: boolean } = {}): number[] {
  const raw = String(flags[name] ?? fallback);
  const xs = raw.split(",").map((s) => Number(s.trim()));
  if (xs.length === 0 || xs.some((x) => !Number.isFinite(x) || (opts.integer && !Number.isInteger(x))))
    throw new Error(
      `--${name}: expected a comma-separated list of ${opts.integer ? "integers" : "numbers"}, got ${JSON.stringify(raw)}`,
    );
  return xs;
}

function requireFlag(flags: Flags, name: string, example: string): string {
  const v = flags[name];
  if (typeof v !== "string" || v === "")
    throw new Error(`steer: --${name} is required (for example --${name} ${example})`);
  return v;
}

function checkpointDir(dir: string, flag: string): string {
  if (!fs.existsSync(path.join(dir, "config.json")))
    throw new Error(`--${flag} ${dir}: not a checkpoint directory (no config.json)`);
  return dir;
}

/** A checkpoint's shape, read before any work (the checks and refusals need no weights). */
interface Checkpoint {
  dir: string;
  shape: ModelShape;
  organism: boolean;
}

function checkpointOf(flags: Flags, flag: string, example: string): Checkpoint {
  const dir = checkpointDir(requireFlag(flags, flag, example), flag);
  const shape = readModelShape(dir);
  return { dir, shape, organism: shape.family === "gpt" };
}

/** The model and its task (prompts, answer format, stop ids: taskFor, as `npm run eval`). */
function openModel(ck: Checkpoint): { lm: CausalLM; task: Task } {
  const task = taskFor(ck.dir);
  return { lm: loadModel(ck.dir), task };
}

/** Says once how a non-organism family generates with a vector set. */
function decoderNote(ck: Checkpoint, log: (s: string) => void): void {
  if (!ck.organism)
    log(
      `generation: the ${ck.shape.family} decoder (tfjs, KV cache) adds the vector inside its blocks, prefill and every step; the organism's fused decoder does not apply`,
    );
}

/** The items a command samples on: the training pool (organism only), one benchmark, or a dataset file. */
async function sourceItems(source: string, limit: number, ck: Checkpoint): Promise<Item[]> {
  const names = listBenchmarks();
  const valid = `${ck.organism ? "pool, " : ""}${names.join(", ")}, or a dataset file (.jsonl, .json, .parquet)`;
  let items: Item[];
  if (source === "pool") {
    if (!ck.organism)
      throw new Error(
        `--source pool: the training pool is the organism's; for a ${ck.shape.family} checkpoint give one of ${valid}`,
      );
    items = readItems(POOL_FILE);
  } else if (names.includes(source)) items = loadBenchmarks([source], null)[0].items;
  else if (/[/.]/.test(source) && fs.existsSync(source)) items = (await loadBenchmarkRefs([source], null))[0].items;
  else {
    const near = nearest(source, [...(ck.organism ? ["pool"] : []), ...names]);
    throw new Error(
      `--source: unknown source ${JSON.stringify(source)}${near ? ` — did you mean ${near}?` : ""}; valid: ${valid}`,
    );
  }
  return limit > 0 ? items.slice(0, limit) : items;
}

/** --source, with the family's default: the pool for the organism, else the first benchmark. */
function sourceName(flags: Flags, ck: Checkpoint, log: (s: string) => void): string {
  if (flags.source !== undefined) return String(flags.source);
  if (ck.organism) return "pool";
  const first = listBenchmarks()[0];
  log(`source: ${first} (the default for a ${ck.shape.family} checkpoint; the training pool is the organism's)`);
  return first;
}

/** The labeller of extract: organism labels for the organism, keyword labels otherwise (and on request). */
function labellerOf(
  flags: Flags,
  ck: Checkpoint,
  log: (s: string) => void,
): { labeller: Labeller; keywords: Record<string, string> | null } {
  const kind = String(flags.labels ?? (ck.organism ? "organism" : "keywords"));
  if (kind === "organism") {
    if (!ck.organism)
      throw new Error(
        `--labels organism: organism labels read the organism's world (procedures, ####); a ${ck.shape.family} checkpoint takes --labels keywords (--keywords name=word,...; default ${keywordList(DEFAULT_KEYWORDS)})`,
      );
    if (flags.keywords) throw new Error("--keywords: only with --labels keywords");
    return { labeller: organismLabeller(), keywords: null };
  }
  if (kind !== "keywords") throw new Error(`--labels: expected organism or keywords, got ${JSON.stringify(kind)}`);
  let keywords = DEFAULT_KEYWORDS;
  if (flags.keywords) {
    const pairs = String(flags.keywords)
      .split(",")
      .map((p) => {
        const [name, word] = p.split("=");
        if (!name || !word)
          throw new Error(`--keywords: expected name=word,... (e.g. wait=wait,verify=verify), got ${p}`);
        return [name.trim(), word] as const;
      });
    keywords = Object.fromEntries(pairs);
  }
  if (!ck.organism)
    log(
      `labels: keywords (${keywordList(keywords)}, any case)${flags.labels === undefined ? `, the default for a ${ck.shape.family} checkpoint` : ""}; organism labels need an organism checkpoint`,
    );
  return { labeller: keywordLabeller(keywords), keywords };
}

const keywordList = (k: Record<string, string>) =>
  Object.entries(k)
    .map(([b, w]) => (b === w ? b : `${b}=${w}`))
    .join(", ");

/** The labeller of the behaviour shares of apply, layers and rl: the organism's for the organism;
 * otherwise the vector file's keywords (the defaults for a file with organism labels). */
function sharesLabeller(ck: Checkpoint, vf: VectorFile, log: (s: string) => void): Labeller {
  if (ck.organism) return organismLabeller();
  const keywords = vf.meta.labeller.keywords ?? DEFAULT_KEYWORDS;
  log(
    `behaviour shares: keyword labels (${keywordList(keywords)}, any case)${vf.meta.labeller.keywords ? " from the vector file" : ""}, and the graded-form share (the task's answer format)`,
  );
  return keywordLabeller(keywords);
}

function writeOut(dir: string, name: string, data: string | Buffer, written: string[]): void {
  fs.mkdirSync(dir, { recursive: true });
  const f = path.join(dir, name);
  fs.writeFileSync(f, data);
  written.push(f);
}

async function writePlot(dir: string, name: string, spec: Record<string, unknown>, png: boolean, written: string[]) {
  const svg = await renderSvg(spec);
  writeOut(dir, `${name}.svg`, svg, written);
  if (png) {
    if (fontSetup().warning) console.error(`warning: ${fontSetup().warning}`);
    writeOut(dir, `${name}.png`, svgToPng(svg), written);
  }
}

function loadVectors(file: string, width: number): VectorFile {
  if (!fs.existsSync(file))
    throw new Error(`--vector ${file}: file not found (write one with npm run steer -- extract)`);
  const vf = decodeVectorFile(fs.readFileSync(file), file);
  if (vf.meta.width !== width)
    throw new Error(`--vector ${file}: vectors have width ${vf.meta.width}, the checkpoint's model has ${width}`);
  return vf;
}

const f3 = (x: number | null | undefined) =>
  x === null || x === undefined || Number.isNaN(x) ? "  -  " : x.toFixed(3);
const ci = (e: ShareEstimate | null) => (e ? `${f3(e.value)} [${f3(e.lo)}, ${f3(e.hi)}]` : "-");

// ---------------------------------------------------------------------------------------------

async function extract(flags: Flags, log: (s: string) => void): Promise<void> {
  const ck = checkpointOf(flags, "checkpoint", "data/models/base");
  const { labeller, keywords } = labellerOf(flags, ck, log);
  const behaviours = flags.behaviours ? String(flags.behaviours).split(",") : [...labeller.behaviours];
  checkBehaviours(labeller, behaviours);
  const n = numberFlag(flags, "n", 16, { integer: true, min: 1 });
  const limit = numberFlag(flags, "limit", 0, { integer: true, min: 0 });
  const temperature = numberFlag(flags, "temperature", 1, { min: 0 });
  const topP = numberFlag(flags, "top-p", 1, { min: 1e-9, max: 1 });
  const seed = numberFlag(flags, "seed", 12345, { integer: true });
  const maxNewTokens = maxNewTokensOf(flags, ck);
  const baseline = String(flags.baseline ?? "all") as Baseline;
  if (!BASELINES.includes(baseline))
    throw new Error(`--baseline: expected ${BASELINES.join(" or ")}, got ${JSON.stringify(flags.baseline)}`);
  const out = String(flags.out ?? "results/steering/vectors.safetensors");
  if (!out.endsWith(".safetensors")) throw new Error(`--out ${out}: the vector file must end in .safetensors`);
  const layers = flags.layers
    ? numberList(flags, "layers", "", { integer: true })
    : Array.from({ length: ck.shape.numLayers }, (_, i) => i);
  checkLayers(ck.shape, layers);
  const source = sourceName(flags, ck, log);
  const items = await sourceItems(source, limit, ck);
  await setupCompute(flags, log);
  decoderNote(ck, log);
  const { lm, task } = openModel(ck);
  try {
    const t0 = performance.now();
    const pairs = items.flatMap((it) => Array.from({ length: n }, () => it));
    const rows = rollout(lm, task, pairs, { temperature, topP, maxNewTokens }, makeRng(seed, "steer/extract"));
    log(`sampled ${rows.length} completions (${items.length} problems × ${n}) in ${s(t0)}`);
    const stats = collectActivationsOf(lm, task, rows, labeller, behaviours, layers);
    const { vectors, missing } = steeringVectors(stats, baseline, labeller.wholeCompletion);
    if (vectors.length === 0)
      throw new Error(
        `no behaviour of ${behaviours.join(", ")} occurs in the ${rows.length} completions; sample more (--n) or choose others`,
      );
    const shares = Object.fromEntries(behaviours.map((b) => [b, stats.present[b] / stats.completions]));
    const { safetensors, meta } = encodeVectorFile(vectors, stats, {
      checkpoint: ck.dir,
      blocks: ck.shape.numLayers,
      labeller: {
        kind: labeller.kind,
        definitions: Object.fromEntries(behaviours.map((b) => [b, labeller.definitions[b]])),
        ...(keywords ? { keywords: Object.fromEntries(behaviours.map((b) => [b, keywords[b]])) } : {}),
      },
      positions: POSITIONS_NOTE,
      baseline: { kind: baseline, startBehaviours: baseline === "starts" ? [...labeller.wholeCompletion] : [] },
      source: source === "pool" ? POOL_FILE : source,
      sampling: { n, temperature, topP, seed, problems: items.length },
      shares,
      missing,
    });
    const written: string[] = [];
    writeOut(path.dirname(out), path.basename(out), safetensors, written);
    writeOut(
      path.dirname(out),
      path.basename(out).replace(/\.safetensors$/, ".json"),
      JSON.stringify(meta, null, 2) + "\n",
      written,
    );
    const lines = [
      "behaviour   share  block  span tokens     |v|  rms |x|",
      ...meta.vectors.map(
        (v) =>
          `${v.behaviour.padEnd(10)} ${f3(shares[v.behaviour])}  ${String(v.layer).padStart(5)}  ${String(v.spanTokens).padStart(11)}  ${v.norm.toFixed(3).padStart(6)}  ${v.tokenNorm.toFixed(3).padStart(7)}`,
      ),
    ];
    for (const l of layers) {
      const vs = vectors.filter((v) => v.layer === l);
      lines.push(`cosines between the vectors of block ${l}:`);
      lines.push(
        table(
          ["", ...vs.map((v) => v.behaviour)],
          vs.map((a) => [a.behaviour, ...vs.map((b) => f3(cosine(a.vector, b.vector)))]),
        ),
      );
    }
    if (missing.length) lines.push(`no span of ${missing.join(", ")} in these completions: no vector written for them`);
    if (flags.json) process.stdout.write(JSON.stringify(meta) + "\n");
    else console.log(lines.join("\n"));
    log(`${meta.completionTokens} completion tokens; wrote ${written.join(", ")} (${s(t0)})`);
  } finally {
    lm.dispose();
  }
}

/** --max-new-tokens: the model's context by default (as `npm run eval`). */
function maxNewTokensOf(flags: Flags, ck: Checkpoint): number {
  return numberFlag(flags, "max-new-tokens", ck.shape.contextLength, { integer: true, min: 1 });
}

const s = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(0)}s`;

// ---------------------------------------------------------------------------------------------

interface EvalFlags {
  opts: EvalOptions;
  seed: number;
  names: string[] | null;
  limit: number;
}

/** Evaluation flags; apply's defaults are `npm run eval`'s (n 64, k 1,8,64, every problem, T 1, seed 12345),
 * except that default ks above n are dropped. */
function evalFlags(flags: Flags, nFlag = "n", nDefault = 64, kDefault = [1, 8, 64]): EvalFlags {
  const n = numberFlag(flags, nFlag, nDefault, { integer: true, min: 0 });
  const ks = n > 0 ? numberList(flags, "k", kDefault.filter((k) => k <= n).join(",") || "1", { integer: true }) : [];
  if (ks.some((k) => k < 1 || k > n))
    throw new Error(`--k: pass@k needs 1 <= k <= --${nFlag} (${n}); got ${ks.join(",")}`);
  return {
    opts: {
      n,
      ks,
      temperature: numberFlag(flags, "temperature", 1, { min: 0 }),
      topP: numberFlag(flags, "top-p", 1, { min: 1e-9, max: 1 }),
      maxNewTokens: 0, // set from the checkpoint
      keepExamples: 0,
    },
    seed: numberFlag(flags, "seed", 12345, { integer: true }),
    names: flags.benchmarks ? String(flags.benchmarks).split(",") : null,
    limit: numberFlag(flags, "limit", 0, { integer: true, min: 0 }),
  };
}

/** The --json shape of one scale (the keys the command promises first, then the rest). */
function resultJson(scale: number, r: SteeredEval) {
  const v = (e: ShareEstimate | null) => (e ? e.value : null);
  const iv = (e: ShareEstimate | null) => (e ? { value: e.value, lo: e.lo, hi: e.hi, se: e.se } : null);
  const map = (m: Record<string, ShareEstimate>, f: (e: ShareEstimate) => unknown) =>
    Object.fromEntries(Object.entries(m).map(([k, e]) => [k, f(e)]));
  return {
    scale,
    heldoutGreedy: r.heldoutGreedy.value,
    formatShare: r.formatShare.value,
    behaviours: map(r.behaviours, (e) => e.value),
    heldoutSampled: v(r.heldoutSampled),
    greedyFormatShare: r.greedyFormatShare.value,
    passAtK: map(r.passAtK, (e) => e.value),
    intervals: {
      heldoutGreedy: iv(r.heldoutGreedy),
      heldoutSampled: iv(r.heldoutSampled),
      formatShare: iv(r.formatShare),
      greedyFormatShare: iv(r.greedyFormatShare),
      behaviours: map(r.behaviours, iv),
      passAtK: map(r.passAtK, iv),
    },
    benchmarks: Object.fromEntries(
      Object.entries(r.benchmarks).map(([b, m]) => [
        b,
        {
          heldoutGreedy: m.heldoutGreedy.value,
          heldoutSampled: v(m.heldoutSampled),
          formatShare: m.formatShare.value,
          greedyFormatShare: m.greedyFormatShare.value,
          behaviours: map(m.behaviours, (e) => e.value),
          passAtK: map(m.passAtK, (e) => e.value),
        },
      ]),
    ),
    report: r.report,
  };
}

export function applyRows(results: { scale: number; r: SteeredEval }[]): ApplyRow[] {
  const rows: ApplyRow[] = [];
  const push = (panel: string, series: string, scale: number, e: ShareEstimate | null) => {
    if (e) rows.push({ panel, series, scale, value: e.value, lo: e.lo, hi: e.hi });
  };
  for (const { scale, r } of results) {
    push("held-out accuracy", "greedy", scale, r.heldoutGreedy);
    push("held-out accuracy", "sampled", scale, r.heldoutSampled);
    push("graded-form share", "greedy", scale, r.greedyFormatShare);
    if (r.heldoutSampled) push("graded-form share", "samples", scale, r.formatShare);
    for (const [k, e] of Object.entries(r.passAtK)) push("pass@k", k, scale, e);
    for (const [b, e] of Object.entries(r.behaviours)) push("behaviour shares", b, scale, e);
  }
  return rows;
}

async function apply(flags: Flags, log: (s: string) => void): Promise<void> {
  const ck = checkpointOf(flags, "checkpoint", "data/models/base");
  const ckpt = ck.dir;
  const file = requireFlag(flags, "vector", "results/steering/vectors.safetensors");
  const layer = numberFlag(flags, "layer", NaN, { integer: true });
  if (flags.layer === undefined) throw new Error("steer apply: --layer L is required (the block after which to add)");
  const scales = numberList(flags, "scale", "");
  if (!flags.scale) throw new Error("steer apply: --scale s1,s2,... is required (0 = plain evaluation)");
  const ef = evalFlags(flags);
  const benches = await loadBenchmarkList(ef.names, ef.limit > 0 ? ef.limit : null);
  checkLayers(ck.shape, [layer], "--layer");
  const vf = loadVectors(file, ck.shape.hiddenSize);
  const behaviour = (flags.behaviour as string | undefined) ?? vf.behaviours[0];
  if (flags.behaviour === undefined && vf.behaviours.length > 1)
    throw new Error(`steer apply: --behaviour is required; ${file} holds ${vf.behaviours.join(", ")}`);
  const vector = vf.vector(behaviour, layer);
  const labeller = sharesLabeller(ck, vf, log);
  const maxNewTokens = maxNewTokensOf(flags, ck);
  const { backend } = await setupCompute(flags, log);
  decoderNote(ck, log);
  const { lm, task } = openModel(ck);
  try {
    const opts = { ...ef.opts, maxNewTokens };
    const t0 = performance.now();
    const results: { scale: number; r: SteeredEval }[] = [];
    for (const scale of scales) {
      const addition: ResidualAddition | null = scale === 0 ? null : { layer, vector, scale };
      const r = evaluateSteeredOf(lm, task, benches, opts, ef.seed, addition, labeller);
      results.push({ scale, r });
      log(
        `  scale ${scale}: held-out greedy ${ci(r.heldoutGreedy)}  sampled ${ci(r.heldoutSampled)}  graded form ${ci(r.formatShare)}  ${behaviour} ${ci(r.behaviours[behaviour])}  (${s(t0)})`,
      );
    }
    const json = {
      layer,
      behaviour,
      vector: file,
      checkpoint: ckpt,
      ...labelsJson(ck, labeller),
      backend: backend.name,
      options: { ...opts, seed: ef.seed, benchmarks: benches.map((b) => `${b.name}(${b.items.length})`) },
      intervals: INTERVAL_METHOD,
      results: results.map(({ scale, r }) => resultJson(scale, r)),
    };
    const written: string[] = [];
    const out = flags.out as string | undefined;
    if (out) {
      writeOut(out, "apply.json", JSON.stringify(json, null, 2) + "\n", written);
      await writePlot(
        out,
        "apply",
        applySpec(applyRows(results), { behaviour, layer, checkpoint: ckpt }),
        flags.png !== false,
        written,
      );
    }
    if (flags.json) process.stdout.write(JSON.stringify(json) + "\n");
    else {
      const head = [
        "scale",
        "greedy",
        "sampled",
        "fmt(g)",
        "fmt(s)",
        ...Object.keys(results[0].r.passAtK),
        ...labeller.behaviours,
      ];
      const rows = results.map(({ scale, r }) => [
        String(scale),
        f3(r.heldoutGreedy.value),
        f3(r.heldoutSampled?.value),
        f3(r.greedyFormatShare.value),
        f3(r.heldoutSampled ? r.formatShare.value : null),
        ...Object.values(r.passAtK).map((e) => f3(e.value)),
        ...labeller.behaviours.map((b) => f3(r.behaviours[b].value)),
      ]);
      console.log(table(head, rows));
      console.log(`vector ${behaviour} @ block ${layer} (|v| ${norm(vector).toFixed(3)}); ${INTERVAL_METHOD}`);
    }
    if (written.length) log(`wrote ${written.join(", ")}`);
  } finally {
    lm.dispose();
  }
}

/** For a non-organism family, the family and the labels the shares use (the organism's JSON is as it was). */
function labelsJson(ck: Checkpoint, labeller: Labeller) {
  return ck.organism
    ? {}
    : {
        family: ck.shape.family,
        labels: { kind: labeller.kind, definitions: labeller.definitions, gradedForm: "the task's answer format" },
      };
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join("  ");
  return [line(head), ...rows.map(line)].join("\n");
}

// ---------------------------------------------------------------------------------------------

function vectorChoice(flags: Flags, vf: VectorFile, ck: Checkpoint, labeller: Labeller) {
  const behaviours = flags.behaviours ? String(flags.behaviours).split(",") : vf.behaviours;
  checkBehaviours(labeller, behaviours);
  for (const b of behaviours) vf.vector(b, vf.meta.layers[0]);
  const layers = flags.layers ? numberList(flags, "layers", "", { integer: true }) : vf.meta.layers;
  checkLayers(ck.shape, layers);
  for (const l of layers) for (const b of behaviours) vf.vector(b, l);
  return { behaviours, layers };
}

async function layersCommand(flags: Flags, log: (s: string) => void): Promise<void> {
  const ck = checkpointOf(flags, "checkpoint", "data/models/base");
  const ckpt = ck.dir;
  const file = requireFlag(flags, "vector", "results/steering/vectors.safetensors");
  const scales = numberList(flags, "scales", "-0.5,-0.25,0,0.25,0.5");
  const n = numberFlag(flags, "n", 8, { integer: true, min: 1 });
  const limit = numberFlag(flags, "limit", 0, { integer: true, min: 0 });
  const temperature = numberFlag(flags, "temperature", 1, { min: 0 });
  const seed = numberFlag(flags, "seed", 12345, { integer: true });
  const maxNewTokens = maxNewTokensOf(flags, ck);
  const vf = loadVectors(file, ck.shape.hiddenSize);
  const labeller = sharesLabeller(ck, vf, log);
  const { behaviours, layers } = vectorChoice(flags, vf, ck, labeller);
  const source = sourceName(flags, ck, log);
  const items = await sourceItems(source, limit, ck);
  await setupCompute(flags, log);
  decoderNote(ck, log);
  const { lm, task } = openModel(ck);
  try {
    const t0 = performance.now();
    const vectors = behaviours.flatMap((behaviour) =>
      layers.map((layer) => ({ behaviour, layer, vector: vf.vector(behaviour, layer) })),
    );
    const effects = layerEffectsOf(
      lm,
      task,
      items,
      vectors,
      scales,
      { n, temperature, topP: 1, maxNewTokens, seed },
      labeller,
      (b, l, sc) => log(`  ${b} @ block ${l}, scale ${sc} (${s(t0)})`),
    );
    const json = {
      checkpoint: ckpt,
      ...labelsJson(ck, labeller),
      vector: file,
      source,
      sampling: { n, temperature, seed, problems: items.length },
      scales,
      intervals: INTERVAL_METHOD,
      kl: "mean over the completion tokens of the unsteered samples of KL(steered ‖ unsteered) next-token distribution, nats",
      effects: effects.map((e) => ({
        behaviour: e.behaviour,
        layer: e.layer,
        vectorNorm: e.vectorNorm,
        slope: e.slope,
        points: e.points.map((p) => ({
          scale: p.scale,
          share: p.share.value,
          lo: p.share.lo,
          hi: p.share.hi,
          kl: p.kl,
          shares: p.shares,
          ...(ck.organism ? {} : { formatShare: p.formatShare }),
        })),
      })),
    };
    const written: string[] = [];
    const out = flags.out as string | undefined;
    if (out) {
      writeOut(out, "layers.json", JSON.stringify(json, null, 2) + "\n", written);
      await writePlot(out, "layers", layersSpec(effects, ckpt), flags.png !== false, written);
    }
    if (flags.json) process.stdout.write(JSON.stringify(json) + "\n");
    else console.log(formatEffects(effects, scales, !ck.organism));
    if (written.length) log(`wrote ${written.join(", ")}`);
  } finally {
    lm.dispose();
  }
}

/** `graded`: columns of the graded-form share per scale (the organism's is its `format` behaviour) */
function formatEffects(effects: LayerEffect[], scales: number[], graded = false): string {
  const head = [
    "behaviour",
    "block",
    "slope/scale",
    "95% CI",
    "|v|",
    "slope/norm",
    ...scales.map((x) => `share@${x}`),
    ...scales.filter((x) => x !== 0).map((x) => `KL@${x}`),
    ...(graded ? scales.map((x) => `graded@${x}`) : []),
  ];
  const rows = effects.map((e) => [
    e.behaviour,
    String(e.layer),
    e.slope.slope.toFixed(4),
    `[${e.slope.lo.toFixed(4)}, ${e.slope.hi.toFixed(4)}]`,
    e.vectorNorm.toFixed(3),
    (e.slope.slope / e.vectorNorm).toFixed(4),
    ...e.points.map((p) => f3(p.share.value)),
    ...e.points.filter((p) => p.scale !== 0).map((p) => p.kl.toFixed(4)),
    ...(graded ? e.points.map((p) => f3(p.formatShare)) : []),
  ]);
  return table(head, rows);
}

// ---------------------------------------------------------------------------------------------

async function rlCommand(flags: Flags, log: (s: string) => void): Promise<void> {
  const baseCk = checkpointOf(flags, "base", "data/models/base");
  const rlCk = checkpointOf(flags, "rl", "results/default/seed-1/checkpoint");
  const baseDir = baseCk.dir;
  const rlDir = rlCk.dir;
  const file = requireFlag(flags, "vector", "results/steering/vectors.safetensors");
  const norms = numberList(flags, "norms", "2,4,8,16");
  if (norms.some((x) => x <= 0))
    throw new Error(`--norms: give positive sizes of the added vector (the base gets +, RL −); got ${norms.join(",")}`);
  const randoms = numberFlag(flags, "random", 2, { integer: true, min: 0 });
  const n = numberFlag(flags, "n", 8, { integer: true, min: 1 });
  const seed = numberFlag(flags, "seed", 12345, { integer: true });
  const maxNewTokens = maxNewTokensOf(flags, baseCk);
  const ef = evalFlags(flags, "eval-n", 16, [1, 4, 16]);
  const benches = await loadBenchmarkList(ef.names, ef.limit > 0 ? ef.limit : null);
  if (JSON.stringify(baseCk.shape.config) !== JSON.stringify(rlCk.shape.config))
    throw new Error(`--base ${baseDir} and --rl ${rlDir}: the two checkpoints have different model configs`);
  const width = baseCk.shape.hiddenSize;
  const vf = loadVectors(file, width);
  const labeller = sharesLabeller(baseCk, vf, log);
  const { behaviours, layers } = vectorChoice(flags, vf, baseCk, labeller);
  const source = sourceName(flags, baseCk, log);
  const items = await sourceItems(source, 0, baseCk);
  if (benches.some((b) => b.name === path.basename(source).replace(/\.[^.]+$/, "")))
    log(
      `warning: --source ${source} is also held out (--benchmarks): the base setting is then chosen on problems it is reported on`,
    );
  await setupCompute(flags, log);
  decoderNote(baseCk, log);
  // one task for both (the RL checkpoint is the base's model, trained)
  const { lm: base, task } = openModel(baseCk);
  const rl = loadModel(rlDir);
  try {
    const t0 = performance.now();

    // (a) RL's shift of the mean activation, on the same sequences (each model's own samples, pooled)
    const pairs = items.flatMap((it) => Array.from({ length: n }, () => it));
    const gen = { temperature: 1, topP: 1, maxNewTokens };
    const samples: Scored[] = [
      ...rollout(base, task, pairs, gen, makeRng(seed, "steer/rl/base")),
      ...rollout(rl, task, pairs, gen, makeRng(seed, "steer/rl/rl")),
    ];
    const shift = activationShiftOf(base, rl, task.padId, samples, layers);
    const tokenNorm = (l: number) => vf.meta.vectors.find((v) => v.layer === l)?.tokenNorm ?? NaN;
    const shiftRows = shift.flatMap((sh) =>
      behaviours.map((b) => {
        const v = vf.vector(b, sh.layer);
        return {
          layer: sh.layer,
          behaviour: b,
          cosine: cosine(sh.delta, v),
          cosineStart: cosine(sh.deltaStart, v),
          coefficient: projectionCoefficient(sh.delta, v),
          deltaNorm: norm(sh.delta),
          deltaStartNorm: norm(sh.deltaStart),
          vectorNorm: norm(v),
          tokenNorm: tokenNorm(sh.layer),
        };
      }),
    );
    log(`activation shift on ${samples.length} completions (${s(t0)})`);

    // (b) greedy held-out grid: base + norm, RL − norm, along each behaviour vector, RL's own mean shift
    // and random directions (the control for "any push of that size")
    const candidates: Candidate[] = [
      ...behaviours.flatMap((b) =>
        layers.map((layer) => ({ name: b, kind: "behaviour" as const, layer, vector: vf.vector(b, layer) })),
      ),
      ...shift.map((sh) => ({
        name: RL_SHIFT,
        kind: "rl-shift" as const,
        layer: sh.layer,
        vector: Float32Array.from(sh.delta),
      })),
      ...Array.from({ length: randoms }, (_, i) =>
        layers.map((layer) => ({
          name: `random-${i + 1}`,
          kind: "random" as const,
          layer,
          vector: randomDirection(width, seed, `steer/random/${i + 1}`),
        })),
      ).flat(),
    ];
    const opts = { ...ef.opts, maxNewTokens };
    const plain = {
      base: evaluateSteeredOf(base, task, benches, opts, ef.seed, null, labeller),
      rl: evaluateSteeredOf(rl, task, benches, opts, ef.seed, null, labeller),
    };
    let done = 0;
    const grid = againstRlGrid(
      { base, rl },
      task,
      benches,
      [{ name: source, items }],
      opts,
      ef.seed,
      candidates,
      norms,
      labeller,
      () => {
        if (++done % 10 === 0) log(`  grid ${done}/${candidates.length * norms.length * 2} (${s(t0)})`);
      },
    );
    const summary = summariseAgainstRl(grid, plain.base.heldoutGreedy.value, plain.rl.heldoutGreedy.value);

    // (c) the chosen base setting in full (samples, pass@k)
    const chosen = summary.bestBaseBySelection;
    const chosenCandidate = candidates.find((c) => c.name === chosen.candidate && c.layer === chosen.layer)!;
    const baseSteered = evaluateSteeredOf(
      base,
      task,
      benches,
      opts,
      ef.seed,
      normAddition(chosenCandidate, chosen.norm, 1),
      labeller,
    );
    log(`grid and full evaluations done (${s(t0)})`);

    const json = {
      base: baseDir,
      rl: rlDir,
      ...labelsJson(baseCk, labeller),
      vector: file,
      source,
      sampling: { n, seed, problems: items.length, completions: samples.length },
      evaluation: { ...opts, seed: ef.seed, benchmarks: benches.map((b) => `${b.name}(${b.items.length})`) },
      norms,
      intervals: INTERVAL_METHOD,
      shift: shiftRows,
      grid: grid.map((g) => ({ ...g, heldout: g.heldout.value, lo: g.heldout.lo, hi: g.heldout.hi })),
      summary,
      full: {
        base: resultJson(0, plain.base),
        rl: resultJson(0, plain.rl),
        baseSteered: resultJson(chosen.norm, baseSteered),
      },
    };
    const written: string[] = [];
    const out = flags.out as string | undefined;
    if (out) {
      writeOut(out, "rl.json", JSON.stringify(json, null, 2) + "\n", written);
      await writePlot(
        out,
        "rl",
        rlSpec(shiftRows, json.grid, { base: summary.heldoutBase, rl: summary.heldoutRl }),
        flags.png !== false,
        written,
      );
    }
    if (flags.json) process.stdout.write(JSON.stringify(json) + "\n");
    else {
      console.log("RL's shift of the mean activation (RL − base, same sequences) against each vector:");
      console.log(
        table(
          [
            "block",
            "behaviour",
            "cos(all rows)",
            "cos(start rows)",
            "coef (units of v)",
            "|Δ all|",
            "|Δ start|",
            "|v|",
            "rms |x|",
          ],
          shiftRows.map((r) => [
            String(r.layer),
            r.behaviour,
            f3(r.cosine),
            f3(r.cosineStart),
            f3(r.coefficient),
            f3(r.deltaNorm),
            f3(r.deltaStartNorm),
            f3(r.vectorNorm),
            f3(r.tokenNorm),
          ]),
        ),
      );
      console.log("\nheld-out greedy under steering (base +norm, RL −norm):");
      const key = (g: RlGridRow) => `${g.candidate}@${g.layer}`;
      const lines = [...new Set(grid.map(key))];
      console.log(
        table(
          ["direction", ...norms.flatMap((x) => [`base+${x}`, `RL−${x}`])],
          lines.map((k) => [
            k,
            ...norms.flatMap((x) =>
              (["base", "rl"] as const).map((m) =>
                f3(grid.find((g) => key(g) === k && g.norm === x && g.model === m)!.heldout.value),
              ),
            ),
          ]),
        ),
      );
      const fmt = (g: RlGridRow) => `${g.candidate} @ block ${g.layer}, norm ${g.norm}: ${ci(g.heldout)}`;
      console.log(`\nplain: base ${ci(plain.base.heldoutGreedy)}, RL ${ci(plain.rl.heldoutGreedy)}`);
      console.log(
        `best steering of the base, chosen on ${source}: ${fmt(chosen)}; recovers ${f3(chosen.recovered)} of RL's gain`,
      );
      console.log(
        `best on held-out itself (optimistic): ${fmt(summary.bestBaseOnHeldout)}; recovers ${f3(summary.bestBaseOnHeldout.recovered)}`,
      );
      const top = [...summary.undo].sort((a, b) => (b.beyondRandom ?? -9) - (a.beyondRandom ?? -9)).slice(0, 3);
      for (const u of top)
        console.log(
          `RL − ${u.candidate} @ block ${u.layer}, norm ${u.norm}: held-out ${f3(u.heldout)} (random directions ${f3(u.randomHeldout)}); removes ${f3(u.removed)} of RL's gain, ${f3(u.beyondRandom)} beyond random`,
        );
      console.log(
        `full evaluation of the chosen base setting (n=${opts.n}): greedy ${ci(baseSteered.heldoutGreedy)}, sampled ${ci(baseSteered.heldoutSampled)}`,
      );
    }
    if (written.length) log(`wrote ${written.join(", ")}`);
  } finally {
    base.dispose();
    rl.dispose();
  }
}

runMain(async () => {
  const [sub, ...rest] = process.argv.slice(2);
  if (sub === "--help" || sub === "-h" || sub === undefined) {
    console.log(USAGE);
    if (sub === undefined) process.exit(1);
    return;
  }
  if (!(SUBCOMMANDS as readonly string[]).includes(sub)) {
    const near = nearest(sub, SUBCOMMANDS);
    throw new Error(
      `steer: unknown command ${JSON.stringify(sub)}${near ? ` — did you mean ${near}?` : ""}; use one of ${SUBCOMMANDS.join(", ")}`,
    );
  }
  const names = [...COMMAND_FLAGS[sub as (typeof SUBCOMMANDS)[number]], ...Object.keys(COMPUTE_FLAGS)];
  const spec = Object.fromEntries(names.map((k) => [k, ALL_FLAGS[k as keyof typeof ALL_FLAGS]]));
  const { flags, positional } = parseArgs(rest, spec, `steer ${sub}`, USAGE);
  if (positional.length) throw new Error(`steer ${sub}: unexpected argument ${JSON.stringify(positional[0])}`);
  const log = (line: string) => (flags.json ? process.stderr : process.stdout).write(line + "\n");
  if (sub === "extract") await extract(flags, log);
  else if (sub === "apply") await apply(flags, log);
  else if (sub === "layers") await layersCommand(flags, log);
  else await rlCommand(flags, log);
});
