// In-place single-threaded kernel calls (matmul-heap.wasm in tfjs's heap) vs copying in and out:
// GRPO update seconds of two trainers on the same start (8 copies x 8 rollouts of 12*2, fast
// kernels, data/models/base), one with in-place calls allowed and one without, steps alternating;
// median update time of 8 steps each after a warm-up, and the median paired ratio.
//   npx tsx bench/inplace.ts [threads]   (default 1)
import { GptLM } from "../src/model/gptLM.js";
import { organismTask } from "../src/task/task.js";
import * as tf from "@tensorflow/tfjs";
import * as wasmPackage from "@tensorflow/tfjs-backend-wasm";
import { makeRng } from "../src/engine/rng.js";
import { GrpoSchema } from "../src/experiment/schema.js";
import { matmulThreadsReady, setMatmulInPlace, setMatmulThreads } from "../src/kernels/matmul.js";
import { loadCheckpoint } from "../src/model/checkpoint.js";
import type { Params } from "../src/model/gpt.js";
import { selectKernels } from "../src/model/generate.js";
import { GrpoTrainer } from "../src/rl/trainer.js";
import { loadTokenizer } from "../src/text/tokenizer.js";
import { shareTfjsWasmHeap } from "../src/engine/wasmHeap.js";

// before the wasm backend starts: its heap shared, so that threaded matmuls run in it (no copies)
const heapNotShared = shareTfjsWasmHeap(wasmPackage);
if (heapNotShared) console.error(heapNotShared);

const threads = Number(process.argv[2] ?? 1);
if (!Number.isInteger(threads) || threads < 1)
  throw new Error(`threads: use a positive integer, got ${process.argv[2]}`);
await tf.setBackend("wasm");
await tf.ready();
setMatmulThreads(threads);
await matmulThreadsReady(threads);
selectKernels("fast");
const tok = loadTokenizer("data/tokenizer");
const ck = loadCheckpoint("data/models/base");
const grpo = GrpoSchema.parse({ copies: 8, rollouts: 8 });
const cfg = { ...grpo, maxNewTokens: Math.min(grpo.maxNewTokens, ck.cfg.contextLength) };
const clone = (p: Params): Params =>
  Object.fromEntries(Object.entries(p).map(([k, v]) => [k, tf.variable(v.clone(), true)]));
const runs = [true, false].map((inPlace) => ({
  inPlace,
  trainer: new GrpoTrainer(
    new GptLM(clone(ck.params), ck.cfg),
    new GptLM(clone(ck.params), ck.cfg),
    organismTask(tok),
    cfg,
    {
      prompt: "12*2",
      answer: "24",
    },
  ),
  rng: makeRng(3, "bench-inplace"),
  update: [] as number[],
}));
for (let i = 0; i < 9; i++) {
  for (const r of i % 2 ? runs : [...runs].reverse()) {
    setMatmulInPlace(r.inPlace);
    const st = r.trainer.step(r.rng);
    if (i > 0) r.update.push(st.updateSeconds); // step 0 warms up
  }
}
setMatmulInPlace(true);
const med = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
const [inPlace, copying] = runs.map((r) => r.update);
console.log(
  `${threads} thread(s): GRPO update median ${med(inPlace).toFixed(3)} s in place vs ${med(copying).toFixed(3)} s copying; ` +
    `median paired ratio copying / in place ${med(inPlace.map((v, i) => copying[i] / v)).toFixed(3)}`,
);
