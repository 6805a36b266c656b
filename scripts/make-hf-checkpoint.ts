// Writes a random checkpoint in the Hugging Face layout, shaped like a real model, for benchmarks
// and memory measurements (no real weights are reachable from the machines this project is built on).
//   npx tsx scripts/make-hf-checkpoint.ts --preset smollm2-135m --out /tmp/smollm2 [--dtype BF16]
//       [--seed 1] [--std 0.02] [--max-shard-mb 5000]
//   npx tsx scripts/make-hf-checkpoint.ts --config path/to/config.json --out DIR ...
// Presets: smollm2-135m, qwen2.5-0.5b, qwen3-0.6b, llama-3.2-1b (src/model/llamaRandom.ts).
import { readJsonObject } from "../src/model/hfCheckpoint.js";
import { countLlamaParams, parseLlamaConfig } from "../src/model/llama.js";
import { HF_PRESETS, writeRandomCheckpoint } from "../src/model/llamaRandom.js";
import { WEIGHT_DTYPES, type WeightDType } from "../src/model/safetensors.js";

const argv = process.argv.slice(2);
const known = ["preset", "config", "out", "dtype", "seed", "std", "max-shard-mb"];
const args: Record<string, string> = {};
for (let i = 0; i < argv.length; i += 2) {
  const k = argv[i]?.replace(/^--/, "");
  if (!argv[i]?.startsWith("--") || !known.includes(k) || i + 1 >= argv.length) {
    console.error(
      `make-hf-checkpoint: unexpected argument ${JSON.stringify(argv[i])}; options: ${known.map((o) => `--${o}`).join(" ")}`,
    );
    process.exit(2);
  }
  args[k] = argv[i + 1];
}
function fail(msg: string): never {
  console.error(`make-hf-checkpoint: ${msg}`);
  process.exit(2);
}
if (!args.out) fail("--out DIR is required");
if (!!args.preset === !!args.config)
  fail(`pass one of --preset (${Object.keys(HF_PRESETS).join(", ")}) or --config FILE`);
const config = args.preset ? HF_PRESETS[args.preset] : readJsonObject(args.config);
if (!config) fail(`unknown preset ${JSON.stringify(args.preset)}; use one of ${Object.keys(HF_PRESETS).join(", ")}`);
const dtype = (args.dtype ?? "BF16").toUpperCase() as WeightDType;
if (!WEIGHT_DTYPES.includes(dtype)) fail(`--dtype ${args.dtype}: use one of ${WEIGHT_DTYPES.join(", ")}`);
const seed = Number(args.seed ?? "1");
const std = Number(args.std ?? "0.02");
const maxShardMb = Number(args["max-shard-mb"] ?? "5000");
if (!Number.isInteger(seed)) fail(`--seed must be an integer, got ${args.seed}`);
if (!(std >= 0)) fail(`--std must be >= 0, got ${args.std}`);
if (!(maxShardMb > 0)) fail(`--max-shard-mb must be > 0, got ${args["max-shard-mb"]}`);

let cfg;
try {
  cfg = parseLlamaConfig(config, args.config ?? `preset ${args.preset}`);
} catch (e) {
  fail((e as Error).message);
}
const total = cfg.numLayers;
const t0 = performance.now();
console.error(
  `writing ${cfg.family} (${(countLlamaParams(cfg) / 1e6).toFixed(1)}M parameters, ${dtype}) to ${args.out}`,
);
writeRandomCheckpoint(
  args.out,
  config,
  { seed, std },
  {
    dtype,
    maxShardBytes: maxShardMb * 1e6,
    onTensor: (name) => {
      const m = /^model\.layers\.(\d+)\.input_layernorm/.exec(name);
      if (m) process.stderr.write(`\r  layer ${Number(m[1]) + 1}/${total}`);
    },
  },
);
console.error(`\ndone in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
