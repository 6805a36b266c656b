// Checkpoint directories in the Hugging Face layout, as `transformers` saves and loads them:
//   config.json                     the architecture (model_type, sizes, rope, torch_dtype, ...)
//   model.safetensors               all weights, or, sharded:
//   model.safetensors.index.json    {"metadata": {"total_size": bytes}, "weight_map": {tensor: shard file}}
//   model-00001-of-0000N.safetensors
//   generation_config.json          (optional) eos_token_id (a number or a list), sampling defaults
//   tokenizer.json, tokenizer_config.json, ...  (read by src/text/; copied along on save)
// Tensors are streamed: each is read into its own array and converted to float32 (safetensors.ts),
// so loading never holds a file in one buffer nor a second copy of the weights.
import fs from "node:fs";
import path from "node:path";
import {
  readSafetensorsHeader,
  readTensorF32,
  tensorBytes,
  writeSafetensors,
  type SafetensorsEntry,
  type TensorSource,
  type WeightDType,
} from "./safetensors.js";

export const CONFIG_FILE = "config.json";
export const GENERATION_CONFIG_FILE = "generation_config.json";
export const WEIGHTS_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";
/** files beside the weights that describe tokenization and generation, copied when a model is saved elsewhere */
export const COMPANION_FILES = [
  GENERATION_CONFIG_FILE,
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "merges.txt",
  "tokenizer.model",
  "chat_template.jinja",
  "chat_template.json",
];
/** transformers' save_pretrained default max_shard_size */
export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;
/** torch_dtype names in config.json */
export const TORCH_DTYPE: Record<WeightDType, string> = { F32: "float32", BF16: "bfloat16", F16: "float16" };

/** Reads a JSON object from a file; errors name the file. */
export function readJsonObject(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: invalid JSON (${(e as Error).message})`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v))
    throw new Error(`${file}: expected a JSON object, got ${Array.isArray(v) ? "an array" : typeof v}`);
  return v as Record<string, unknown>;
}

export interface HfDirectory {
  dir: string;
  /** config.json as written */
  config: Record<string, unknown>;
  /** generation_config.json as written, or null */
  generationConfig: Record<string, unknown> | null;
}

/** Reads config.json (required) and generation_config.json (when present). */
export function readHfDirectory(dir: string): HfDirectory {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory())
    throw new Error(`${dir}: not a directory; pass a checkpoint directory with config.json and model.safetensors`);
  const cfgFile = path.join(dir, CONFIG_FILE);
  if (!fs.existsSync(cfgFile))
    throw new Error(
      `${dir}: no ${CONFIG_FILE}; a Hugging Face checkpoint directory has config.json and model.safetensors`,
    );
  const genFile = path.join(dir, GENERATION_CONFIG_FILE);
  return {
    dir,
    config: readJsonObject(cfgFile),
    generationConfig: fs.existsSync(genFile) ? readJsonObject(genFile) : null,
  };
}

/** The ids that end generation: generation_config.json's eos_token_id (a number or a list), else config.json's. */
export function eosTokenIds(
  config: Record<string, unknown>,
  generationConfig: Record<string, unknown> | null,
): number[] {
  const raw = generationConfig?.eos_token_id ?? config.eos_token_id;
  const list = Array.isArray(raw) ? raw : raw === undefined || raw === null ? [] : [raw];
  return list.filter((x): x is number => Number.isInteger(x));
}

/** Where each tensor of a checkpoint is: one file or the shards of an index. */
export function weightEntries(dir: string): {
  files: string[];
  entries: Map<string, { file: string; entry: SafetensorsEntry }>;
} {
  const single = path.join(dir, WEIGHTS_FILE);
  const indexFile = path.join(dir, INDEX_FILE);
  const entries = new Map<string, { file: string; entry: SafetensorsEntry }>();
  let files: string[];
  if (fs.existsSync(single)) files = [single];
  else if (fs.existsSync(indexFile)) {
    const index = readJsonObject(indexFile);
    const map = index.weight_map as Record<string, unknown> | undefined;
    if (!map || typeof map !== "object" || Array.isArray(map))
      throw new Error(`${indexFile}: no "weight_map" object (tensor name -> shard file)`);
    const shards = new Set<string>();
    for (const [name, f] of Object.entries(map)) {
      if (typeof f !== "string" || f.includes("/") || f.includes("\\"))
        throw new Error(
          `${indexFile}: weight_map[${JSON.stringify(name)}] = ${JSON.stringify(f)} is not a file name in ${dir}`,
        );
      shards.add(f);
    }
    files = [...shards].sort().map((f) => path.join(dir, f));
    for (const f of files)
      if (!fs.existsSync(f))
        throw new Error(`${indexFile}: lists shard ${path.basename(f)}, which is missing from ${dir}`);
    for (const f of files) {
      for (const [name, entry] of readSafetensorsHeader(f).entries) {
        if (map[name] !== path.basename(f)) continue; // the index decides which shard holds a tensor
        entries.set(name, { file: f, entry });
      }
    }
    for (const [name, f] of Object.entries(map))
      if (!entries.has(name))
        throw new Error(`${path.join(dir, f as string)}: missing tensor ${name} (listed in ${INDEX_FILE})`);
    return { files, entries };
  } else throw new Error(`${dir}: no ${WEIGHTS_FILE} or ${INDEX_FILE}; the checkpoint has no weights`);
  for (const [name, entry] of readSafetensorsHeader(single).entries) entries.set(name, { file: single, entry });
  return { files, entries };
}

/**
 * Streams the tensors `expected` (name → shape) out of a checkpoint directory, calling `onTensor`
 * with each one's float32 values as soon as it is read (files in order, tensors by offset).
 * A missing tensor or a wrong shape is refused, naming the file, the tensor and both shapes; a
 * tensor the model does not use is refused too, unless `ignore(name)` says it may be dropped.
 */
export function loadHfTensors(
  dir: string,
  expected: [string, number[]][],
  onTensor: (name: string, data: Float32Array, shape: number[]) => void,
  ignore: (name: string) => boolean = () => false,
): void {
  const { files, entries } = weightEntries(dir);
  const where = files.length === 1 ? files[0] : path.join(dir, INDEX_FILE);
  const want = new Map(expected);
  for (const [name, shape] of expected) {
    const e = entries.get(name);
    if (!e)
      throw new Error(`${where}: missing tensor ${name} (shape [${shape}]), which config.json's architecture needs`);
    if (e.entry.shape.join(",") !== shape.join(","))
      throw new Error(`${e.file}: tensor ${name} has shape [${e.entry.shape}], config.json needs [${shape}]`);
  }
  const extra = [...entries.keys()].filter((n) => !want.has(n) && !ignore(n));
  if (extra.length > 0)
    throw new Error(
      `${where}: ${extra.length} tensor(s) the architecture in config.json does not use: ${extra.slice(0, 5).join(", ")}${extra.length > 5 ? ", ..." : ""}; is config.json the one saved with these weights?`,
    );
  for (const file of files) {
    const mine = [...entries.values()].filter((e) => e.file === file && want.has(e.entry.name));
    mine.sort((a, b) => a.entry.begin - b.entry.begin);
    if (mine.length === 0) continue;
    const fd = fs.openSync(file, "r");
    try {
      for (const { entry } of mine) onTensor(entry.name, readTensorF32(fd, file, entry), entry.shape);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/**
 * Writes the weights as model.safetensors, or, above `maxShardBytes`, as model-0000i-of-0000N.safetensors
 * shards with model.safetensors.index.json (tensors in the order given, a shard closed before it
 * would pass the limit). Weight files from an earlier save in `dir` that this one does not
 * rewrite are removed afterwards, so the directory never holds two sets of weights.
 */
export function saveHfTensors(
  dir: string,
  tensors: TensorSource[],
  opts: { dtype: WeightDType; maxShardBytes?: number },
): string[] {
  const limit = opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!(limit > 0)) throw new Error(`maxShardBytes must be positive, got ${limit}`);
  fs.mkdirSync(dir, { recursive: true });
  const shards: TensorSource[][] = [[]];
  let bytes = 0;
  let total = 0;
  for (const t of tensors) {
    const b = tensorBytes(t.shape, opts.dtype);
    if (bytes > 0 && bytes + b > limit) {
      shards.push([]);
      bytes = 0;
    }
    shards[shards.length - 1].push(t);
    bytes += b;
    total += b;
  }
  const metadata = { format: "pt" }; // transformers refuses safetensors files without it
  let written: string[];
  if (shards.length === 1) {
    written = [WEIGHTS_FILE];
    writeSafetensors(path.join(dir, WEIGHTS_FILE), shards[0], opts.dtype, metadata);
  } else {
    const n = shards.length;
    const pad = (i: number) => String(i).padStart(5, "0");
    written = shards.map((_, i) => `model-${pad(i + 1)}-of-${pad(n)}.safetensors`);
    const weightMap: Record<string, string> = {};
    shards.forEach((s, i) => {
      writeSafetensors(path.join(dir, written[i]), s, opts.dtype, metadata);
      for (const t of s) weightMap[t.name] = written[i];
    });
    writeJsonAtomic(path.join(dir, INDEX_FILE), { metadata: { total_size: total }, weight_map: weightMap });
    written.push(INDEX_FILE);
  }
  for (const f of fs.readdirSync(dir)) {
    const stale = f === WEIGHTS_FILE || f === INDEX_FILE || /^model-\d{5}-of-\d{5}\.safetensors$/.test(f);
    if (stale && !written.includes(f)) fs.rmSync(path.join(dir, f));
  }
  return written;
}

export function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + "\n");
  fs.renameSync(tmp, file);
}

/** Copies the tokenizer and generation files of `from` into `to` (those that exist; none onto themselves). */
export function copyCompanionFiles(from: string, to: string): string[] {
  if (path.resolve(from) === path.resolve(to)) return [];
  const copied: string[] = [];
  for (const f of COMPANION_FILES) {
    const src = path.join(from, f);
    if (fs.existsSync(src)) {
      fs.copyFileSync(src, path.join(to, f));
      copied.push(f);
    }
  }
  return copied;
}
