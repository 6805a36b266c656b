// Decode throughput: generate (host JS, src/model/decode.ts) vs generateFast (WebAssembly SIMD,
// src/model/fastDecoder.ts) on gpt-nano with init weights, 64 prompts of 8-20 tokens x up to 60
// new tokens. Default greedy (temperature 0: init weights rarely pick EOS, so every sequence runs
// the full 60 tokens); --temperature 1 samples with the same seeded rng for both (the same tokens,
// so the same work, but EOS ends sequences early). Rounds alternate JS and WASM back to back;
// medians are reported.
//   npx tsx bench/decode.ts [--rounds 3] [--batch 64] [--new 60] [--temperature 0] [--preset gpt-nano]
import * as tf from "@tensorflow/tfjs";
import { makeRng } from "../src/engine/rng.js";
import { disposeParams, initParams, resolveModelConfig } from "../src/model/gpt.js";
import { generate, hostWeights, type GenerateOptions } from "../src/model/decode.js";
import { FastKVDecoder, generateFast } from "../src/model/fastDecoder.js";

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const rounds = Number(arg("rounds", "3"));
const batch = Number(arg("batch", "64"));
const maxNew = Number(arg("new", "60"));
const preset = arg("preset", "gpt-nano");
const temperature = Number(arg("temperature", "0"));

await tf.setBackend("cpu");
if (!FastKVDecoder.available()) {
  console.error(`fastDecoder.wasm unavailable: ${FastKVDecoder.unavailableReason()} (run npm run build:kernels)`);
  process.exit(1);
}
const cfg = resolveModelConfig(preset, 58);
const params = initParams(cfg, 1);
const hw = hostWeights(params, cfg);
const prng = makeRng(7, "bench-prompts");
const prompts = Array.from({ length: batch }, () => Array.from({ length: prng.int(8, 20) }, () => prng.int(4, 57)));
const opts: GenerateOptions = { temperature, topP: 1, maxNewTokens: maxNew };

type Gen = typeof generate;
function run(gen: Gen): { ms: number; positions: number; out: ReturnType<Gen> } {
  const t0 = performance.now();
  const out = gen(hw, prompts, opts, makeRng(11, "bench-sample"));
  const ms = performance.now() - t0;
  // positions fed: BOS + prompt + every sampled token except a last one that was not EOS
  let positions = 0;
  out.completions.forEach((c, b) => (positions += 1 + prompts[b].length + c.length - (out.finished[b] ? 0 : 1)));
  return { ms, positions, out };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
run(generateFast); // warm-up (compile, memory growth)
run(generate);
const jsRates: number[] = [];
const wasmRates: number[] = [];
let same = true;
let positions = 0;
for (let r = 0; r < rounds; r++) {
  const a = run(generate);
  // several WASM runs per round so its timing is not a single short sample
  const reps = 5;
  let ms = 0;
  let b = run(generateFast);
  ms += b.ms;
  for (let i = 1; i < reps; i++) {
    b = run(generateFast);
    ms += b.ms;
  }
  same &&= JSON.stringify(a.out) === JSON.stringify(b.out);
  positions = a.positions;
  jsRates.push(a.positions / (a.ms / 1000));
  wasmRates.push((reps * b.positions) / (ms / 1000));
  console.log(
    `round ${r + 1}: JS ${jsRates[r].toFixed(0)} pos/s (${a.ms.toFixed(0)} ms), WASM ${wasmRates[r].toFixed(0)} pos/s (${(ms / reps).toFixed(1)} ms)`,
  );
}
const js = median(jsRates);
const wasm = median(wasmRates);
console.log(`${preset}, ${batch} sequences, temperature ${temperature}, ${positions} token-positions per generate`);
console.log(`generate (JS)        ${js.toFixed(0)} token-positions/s`);
console.log(`generateFast (WASM)  ${wasm.toFixed(0)} token-positions/s`);
console.log(`ratio ${(wasm / js).toFixed(1)}x; same tokens: ${same}`);
disposeParams(params);
