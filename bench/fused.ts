// The GRPO update alone (forward with gradient, GRPO loss, backward; no optimizer) of the organism on a
// [64, 40] batch: the tfjs graph with the fast kernels vs the fused native forward/backward
// (src/model/gptFused.ts), alternating, median of the repetitions. `npx tsx bench/fused.ts [reps]`.
import os from "node:os";
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../src/engine/backend.js";
import { makeRng } from "../src/engine/rng.js";
import { matmulThreads } from "../src/kernels/matmul.js";
import { initParams, resolveModelConfig, tokenLogProbs } from "../src/model/gpt.js";
import { fusedAvailable, fusedUnavailableReason, tokenLogProbsFused } from "../src/model/gptFused.js";
import { selectKernels } from "../src/model/generate.js";
import { grpoLossTf, type LossConfig } from "../src/rl/loss.js";
import { ALPHABET, SPECIAL_TOKENS } from "../src/text/tokenizer.js";

const reps = Number(process.argv[2] ?? 20);
if (!fusedAvailable()) throw new Error(`bench/fused: ${fusedUnavailableReason()}`);
await selectBackend("wasm");
console.log(selectKernels("fast").message);
const cfg = resolveModelConfig("gpt-nano", SPECIAL_TOKENS.length + ALPHABET.length);
const params = initParams(cfg, 1);
const B = 64;
const T = 40;
const rng = makeRng(7, "bench");
const ids = Int32Array.from({ length: B * T }, () => 1 + Math.floor(rng.next() * (cfg.vocabSize - 1)));
const inputs = tf.tensor2d(ids, [B, T], "int32");
const targets = tf.tensor2d(
  Int32Array.from(ids, (_, i) => ids[(i + 1) % ids.length]),
  [B, T],
  "int32",
);
const mask = tf.tensor2d(
  Float32Array.from({ length: B * T }, (_, i) => (i % T < 30 ? 1 : 0)),
  [B, T],
);
const adv = tf.tensor1d(Float32Array.from({ length: B }, (_, b) => (b % 2 ? 1 : -1)));
const lossCfg: LossConfig = {
  pgCoef: 1,
  clipEps: 0.2,
  klCoef: 0,
  entropyCoef: 0,
  aggregation: "token-mean",
  constantLength: 1,
  klClamp: null,
};
const impls = { tfjs: tokenLogProbs, fused: tokenLogProbsFused };
type Impl = keyof typeof impls;

function update(impl: Impl): number {
  const t0 = performance.now();
  const { value, grads } = tf.variableGrads(() => {
    const { logp, entropy } = impls[impl](params, cfg, inputs, targets, true, 1);
    const old = tf.tensor2d(logp.dataSync(), logp.shape);
    return grpoLossTf({ logp, oldLogp: old, refLogp: old, entropy: entropy!, adv, mask }, lossCfg).loss;
  });
  for (const g of Object.values(grads)) g.dataSync();
  value.dataSync();
  tf.dispose([value, ...Object.values(grads)]);
  return (performance.now() - t0) / 1000;
}

// other processes on the machine slow the two-thread numbers most (a worker waits for a core): say how busy it was
const load = () => os.loadavg()[0].toFixed(2);
const loadBefore = load();
const secs: Record<Impl, number[]> = { tfjs: [], fused: [] };
for (const k of ["tfjs", "fused"] as Impl[]) for (let i = 0; i < 3; i++) update(k); // warm-up
for (let r = 0; r < reps; r++)
  for (const k of (r % 2 ? ["tfjs", "fused"] : ["fused", "tfjs"]) as Impl[]) secs[k].push(update(k));
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(
  `update on [${B}, ${T}], gpt-nano, ${matmulThreads()} threads, median of ${reps}: ` +
    (["tfjs", "fused"] as Impl[]).map((k) => `${k} ${median(secs[k]).toFixed(4)} s`).join(", ") +
    ` (1-minute load average ${loadBefore} before, ${load()} after, ${os.cpus().length} cores)`,
);
