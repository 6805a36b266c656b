// Fast kernels vs stock, measured back to back in one process (`npm run bench`):
//  - matmul GFLOP/s through tf.matMul — the fast BatchMatMul kernel on the wasm backend with 1 and
//    N threads (its default build: fma where it loads) and its exact build on 1 thread, stock tfjs
//    wasm, stock tfjs cpu — for the products of a gpt-nano training step (batch 32 x 50 tokens) and
//    256^3, each transpose combination; median (and, for fast, best) of --rounds rounds (after
//    --warmup unrecorded rounds, default 1, of one 256^3 window of each implementation and
//    transpose), the transpose combinations and implementations alternating within each round; timings
//    include the copies in and out (fast runs in place in tfjs's heap, made shared at start: none); the
//    N-thread / 1-thread ratio both of the medians and as the median of per-round ratios (fast1 and
//    fastN run back to back in each round, so that ratio is paired against the host's drift), the
//    share of the CPUs' time the host stole during the 1- and N-thread windows (a VM's "steal" in
//    Linux's /proc/stat; bench/cpuStat.ts);
//  - training tokens/s: pretraining steps (as in src/model/pretrain.ts: gpt-nano, batch 32,
//    length-bucketed corpus batches), each batch run 3 times with each kernel, alternating; the
//    median per batch counts (single steps swing widely when other processes share the cores);
//  - rollout tokens/s: 64 sequences of a 12-char prompt sampled at T=1, up to 60 new tokens
//    (--checkpoint, default data/models/base, if present, else initParams weights), fast decoder vs stock;
//  - seconds per GRPO step (GrpoTrainer on {"prompt":"12*2","answer":"24"}, 8 copies x 8 rollouts,
//    default GrpoSchema values), one trainer per kernel, steps alternating between them;
//  - with --experiments: wall time of `npm run experiment -- experiments/smoke.json --kernels fast|stock`
//    (and experiments/default.json with --default).
// "fast" / "stock" = selectKernels("fast" | "stock") (decoder and matmul kernel together).
//   npm run bench -- [--json] [--rounds 3] [--warmup 1] [--ms 80] [--backend wasm|cpu] [--skip-matmul]
//                    [--checkpoint data/models/base] [--experiments] [--default] [--hf] [--hf-step] [--peers]
//  - with --hf: `hfModel`, a random SmolLM2-135M-shaped Hugging Face checkpoint (bench/hfModel.ts):
//    sampling tokens/s, seconds of a GRPO update micro-batch and of a forward, peak RSS, fast vs stock;
//    with --hf-step also one whole GRPO step (8 × 8 rollouts, 128 new tokens), fast vs stock (~30 min).
//  - with --peers: the same rollouts and GRPO steps (and, with --hf, the hfModel shapes) in PyTorch
//    (bench/peers.ts, bench/peers/: a twin of each model on the same weights), each round alternating
//    with ours, torch on as many threads as ours; the log-prob agreement with ours is printed.
// --json prints one JSON object on stdout (progress goes to stderr). Threads: RLVR_THREADS (default
// min(2, cores)). On a machine busy with other work, the threaded numbers mostly measure the load.
import { benchHfModel, hfBenchData } from "./hfModel.js";
import { describeBuild, maxAbsDiff, TorchPeer, type TorchBuild } from "./peers.js";
import { LlamaModel } from "../src/model/llama.js";
import { responseBatch } from "../src/rl/trainer.js";
import { BOS_ID, EOS_ID, PAD_ID } from "../src/text/tokenizer.js";
import { GptLM } from "../src/model/gptLM.js";
import { organismTask } from "../src/task/task.js";
import * as tf from "@tensorflow/tfjs";
import * as wasmPackage from "@tensorflow/tfjs-backend-wasm";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { cpuDelta, readCpuTimes, stealShare } from "./cpuStat.js";
import { makeRng } from "../src/engine/rng.js";
import { GrpoSchema } from "../src/experiment/schema.js";
import {
  matmulAvailable,
  matmulThreads,
  matmulThreadStats,
  matmulThreadsReady,
  matmulUnavailableReason,
  matmulNative,
  matmulVariant,
  setMatmulThreads,
  setMatmulVariant,
} from "../src/kernels/matmul.js";
import { installFastKernels, uninstallFastKernels } from "../src/kernels/tfjs/register.js";
import { loadCheckpoint } from "../src/model/checkpoint.js";
import { hostWeights } from "../src/model/decode.js";
import {
  disposeParams,
  initParams,
  lmLoss,
  resolveModelConfig,
  tokenLogProbs,
  type ModelConfig,
  type Params,
} from "../src/model/gpt.js";
import { AdamW } from "../src/model/optim.js";
import { encodeBatch } from "../src/model/pretrain.js";
import { sample, selectKernels } from "../src/model/generate.js";
import { nativeAddon } from "../src/engine/native.js";
import { GrpoTrainer } from "../src/rl/trainer.js";
import { loadTokenizer } from "../src/text/tokenizer.js";
import { corpusStream, DEFAULT_CORPUS, promptText, type CorpusItem } from "../src/world/corpus.js";
import { shareTfjsWasmHeap } from "../src/engine/wasmHeap.js";

// before the wasm backend starts: its heap shared, so that threaded matmuls run in it (no copies)
const heapNotShared = shareTfjsWasmHeap(wasmPackage);
if (heapNotShared) console.error(heapNotShared);

const argv = process.argv.slice(2);
const has = (name: string) => argv.includes(`--${name}`);
function arg(name: string, dflt: string): string {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
}
const asJson = has("json");
const rounds = Math.max(1, Number(arg("rounds", "3")));
const budgetMs = Math.max(10, Number(arg("ms", "80")));
const warmupRounds = Math.max(0, Number(arg("warmup", "1")));
const backendName = arg("backend", "wasm");
if (!["wasm", "cpu"].includes(backendName)) throw new Error(`--backend: use wasm or cpu, got ${backendName}`);
const log = (s: string) => (asJson ? process.stderr : process.stdout).write(s + "\n");
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

if (!matmulAvailable()) {
  console.error(`matmul.wasm unavailable: ${matmulUnavailableReason()} (run npm run build:kernels)`);
  process.exit(1);
}

async function useBackend(name: string): Promise<void> {
  if (tf.getBackend() !== name) {
    await tf.setBackend(name);
    await tf.ready();
  }
}

await useBackend(backendName);
const N = matmulThreads();
/** the native matmul in use (null: the WebAssembly one) and this CPU's register-only FMA ceiling
 * on 1 and N threads (best of 3), the figure the native matmul is measured against */
const nativeInfo = (() => {
  const nat = matmulNative();
  const addon = nativeAddon();
  if (nat.isa === null || !addon) return { isa: null, reason: nat.reason };
  const best = (t: number) => Math.max(...[0, 1, 2].map(() => addon.fmaPeak(t, 20_000_000).gflops));
  return { isa: nat.isa, fmaPeakGflops: { one: round(best(1), 1), n: round(best(N), 1) } };
})();
log(
  nativeInfo.isa
    ? `native matmul: ${nativeInfo.isa}; this CPU's FMA ceiling ${nativeInfo.fmaPeakGflops!.one} GFLOP/s on 1 thread, ${nativeInfo.fmaPeakGflops!.n} on ${N}`
    : `native matmul: not used (${nativeInfo.reason}); the WebAssembly one runs`,
);
/** the fast kernel's default build (RLVR_MATMUL, else fma where it loads) */
const FAST_BUILD = matmulVariant()!.variant;
const readyThreads = await matmulThreadsReady(N);
const tok = loadTokenizer("data/tokenizer");
const V = tok.vocabSize;
log(
  `backend ${backendName}; matmul threads N = ${N} (${readyThreads} ready; ${os.cpus().length} cores; load average ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}); fast matmul build: ${FAST_BUILD}${matmulVariant()!.fused ? " (fused multiply-add on this CPU)" : ""}`,
);

// ---------------------------------------------------------------------------------------------
// matmul
interface Shape {
  name: string;
  batch: number;
  M: number;
  K: number;
  N: number;
}
// a gpt-nano training step, batch 32 x 50 tokens: 1600 rows, width 64, MLP 256, 4 heads of 16
const SHAPES: Shape[] = [
  { name: "256x256x256", batch: 1, M: 256, K: 256, N: 256 },
  { name: "qkv 1600x64x192", batch: 1, M: 1600, K: 64, N: 192 },
  { name: "attn-proj 1600x64x64", batch: 1, M: 1600, K: 64, N: 64 },
  { name: "mlp-fc 1600x64x256", batch: 1, M: 1600, K: 64, N: 256 },
  { name: "mlp-proj 1600x256x64", batch: 1, M: 1600, K: 256, N: 64 },
  { name: `lm-head 1600x64x${V}`, batch: 1, M: 1600, K: 64, N: V },
  { name: "weight-grad 64x1600x256", batch: 1, M: 64, K: 1600, N: 256 },
  { name: "attn-scores 32x(50x16x50)", batch: 32, M: 50, K: 16, N: 50 },
  { name: "attn-values 32x(50x50x16)", batch: 32, M: 50, K: 50, N: 16 },
];
const COMBOS: [string, boolean, boolean][] = [
  ["AB", false, false],
  ["ABt", false, true],
  ["AtB", true, false],
  ["AtBt", true, true],
];
/** fast1 / fastN: the fast kernel's default build (fma where it loads) on 1 / N threads; exact1: its
 * exact build on 1 thread (RLVR_MATMUL=exact); wasm, cpu: stock tfjs */
const IMPLS = ["fast1", "fastN", "exact1", "wasm", "cpu"] as const;

type Impl = (typeof IMPLS)[number];

/** seconds per call: repeats fn for ~budgetMs (at least twice) after one warm-up call */
function time(fn: () => void): number {
  fn();
  let reps = 0;
  const t0 = performance.now();
  let t = t0;
  while (reps < 2 || t - t0 < budgetMs) {
    fn();
    reps++;
    t = performance.now();
  }
  return (t - t0) / 1000 / reps;
}

async function matmulTimer(
  impl: Impl,
  s: Shape,
  ta: boolean,
  tb: boolean,
  data: [Float32Array, Float32Array],
): Promise<number> {
  uninstallFastKernels();
  await useBackend(impl === "cpu" ? "cpu" : "wasm");
  if (impl === "fast1" || impl === "fastN" || impl === "exact1") {
    setMatmulVariant(impl === "exact1" ? "exact" : FAST_BUILD);
    installFastKernels("wasm");
    setMatmulThreads(impl === "fastN" ? N : 1);
  }
  const aShape = ta ? [s.K, s.M] : [s.M, s.K];
  const bShape = tb ? [s.N, s.K] : [s.K, s.N];
  const A = tf.tensor(data[0], s.batch > 1 ? [s.batch, ...aShape] : aShape);
  const B = tf.tensor(data[1], s.batch > 1 ? [s.batch, ...bShape] : bShape);
  const sec = time(() => tf.matMul(A, B, ta, tb).dispose());
  tf.dispose([A, B]);
  uninstallFastKernels();
  return (2 * s.batch * s.M * s.K * s.N) / sec / 1e9;
}

const byTranspose: Record<string, Record<string, Record<Impl, number>>> = {};
/** best round of each (the machine's capability when nothing else competes for the core) */
const byTransposeBest: Record<string, Record<string, Record<Impl, number>>> = {};
/** fastN / fast1: the ratio of the medians, and the median of the per-round (paired) ratios */
const threadRatio: Record<string, Record<string, { ofMedians: number; paired: number }>> = {};
/** share of all CPUs' time the host stole during the fast1 and fastN windows (Linux /proc/stat; null elsewhere) */
const stolenShare: Record<string, Record<string, { fast1: number | null; fastN: number | null }>> = {};
if (!has("skip-matmul")) {
  log(`\nmatmul GFLOP/s through tf.matMul (median of ${rounds} rounds; fastN = ${N} threads)`);
  log(
    [
      "shape".padEnd(27),
      "op".padEnd(5),
      ...IMPLS.map((i) => i.padStart(7)),
      "  best",
      ...IMPLS.slice(0, 2).map((i) => i.padStart(7)),
    ].join(" "),
  );
  const rng = makeRng(1, "bench-matmul");
  // warm-up, not recorded: --warmup rounds (default 1) of one window of each implementation in each
  // transpose combination (V8 compiles our kernels in a baseline tier first, several times slower
  // than its optimised code, and the workers instantiate the tfjs-heap module on their first job)
  {
    const s = SHAPES[0];
    const warm: [Float32Array, Float32Array] = [
      new Float32Array(s.M * s.K).fill(0.5),
      new Float32Array(s.K * s.N).fill(0.25),
    ];
    for (let w = 0; w < warmupRounds; w++)
      for (const [, ta, tb] of COMBOS) for (const impl of IMPLS) await matmulTimer(impl, s, ta, tb, warm);
  }
  for (const s of SHAPES) {
    byTranspose[s.name] = {};
    byTransposeBest[s.name] = {};
    threadRatio[s.name] = {};
    stolenShare[s.name] = {};
    const data: [Float32Array, Float32Array] = [
      Float32Array.from({ length: s.batch * s.M * s.K }, () => rng.next() - 0.5),
      Float32Array.from({ length: s.batch * s.K * s.N }, () => rng.next() - 0.5),
    ];
    // rounds outermost: every transpose combination is sampled over the same stretch of time, so the
    // host's drift does not fall on whichever combination is measured first (docs/notebook.md)
    const res: Record<string, Record<Impl, number[]>> = {};
    const cpu: Record<string, Record<Impl, ReturnType<typeof cpuDelta>[]>> = {};
    for (const [op] of COMBOS) {
      res[op] = { fast1: [], fastN: [], exact1: [], wasm: [], cpu: [] };
      cpu[op] = { fast1: [], fastN: [], exact1: [], wasm: [], cpu: [] };
    }
    for (let r = 0; r < rounds; r++)
      for (const [op, ta, tb] of COMBOS)
        for (const impl of IMPLS) {
          const before = readCpuTimes();
          res[op][impl].push(await matmulTimer(impl, s, ta, tb, data));
          cpu[op][impl].push(cpuDelta(before, readCpuTimes()));
        }
    for (const [op] of COMBOS) {
      const stolen = { fast1: stealShare(cpu[op].fast1), fastN: stealShare(cpu[op].fastN) };
      const med = Object.fromEntries(IMPLS.map((i) => [i, round(median(res[op][i]))])) as Record<Impl, number>;
      byTranspose[s.name][op] = med;
      byTransposeBest[s.name][op] = Object.fromEntries(IMPLS.map((i) => [i, round(Math.max(...res[op][i]))])) as Record<
        Impl,
        number
      >;
      const tr = {
        ofMedians: round(med.fastN / med.fast1),
        paired: round(median(res[op].fastN.map((v, r) => v / res[op].fast1[r]))),
      };
      threadRatio[s.name][op] = tr;
      const share = (x: number | null) => (x === null ? null : round(x, 3));
      stolenShare[s.name][op] = { fast1: share(stolen.fast1), fastN: share(stolen.fastN) };
      const pct = (x: number | null) => (x === null ? "n/a" : `${(100 * x).toFixed(0)}%`);
      log(
        [
          s.name.padEnd(27),
          op.padEnd(5),
          ...IMPLS.map((i) => med[i].toFixed(2).padStart(7)),
          "  best",
          ...IMPLS.slice(0, 2).map((i) => byTransposeBest[s.name][op][i].toFixed(2).padStart(7)),
          `  N/1 ${tr.ofMedians.toFixed(2)} paired ${tr.paired.toFixed(2)}`,
          `stolen ${pct(stolen.fast1)}/${pct(stolen.fastN)}`,
        ].join(" "),
      );
    }
  }
  setMatmulThreads(N);
  setMatmulVariant(FAST_BUILD);
}
await useBackend(backendName);

// ---------------------------------------------------------------------------------------------
// model: --checkpoint (default data/models/base) if present, else init weights
const BASE = arg("checkpoint", "data/models/base");
let baseParams: Params;
let cfg: ModelConfig;
let weights: string;
if (fs.existsSync(path.join(BASE, "model.safetensors"))) {
  const ck = loadCheckpoint(BASE);
  baseParams = ck.params;
  cfg = ck.cfg;
  weights = BASE;
} else {
  cfg = resolveModelConfig("gpt-nano", V);
  baseParams = initParams(cfg, 1);
  weights = "initParams(gpt-nano, seed 1)";
}
const cloneParams = (p: Params): Params =>
  Object.fromEntries(Object.entries(p).map(([k, v]) => [k, tf.variable(v.clone(), true)]));
type Kernels = "fast" | "stock";
const KERNELS: Kernels[] = ["fast", "stock"];

// training: pretraining steps (as in src/model/pretrain.ts: lmLoss, AdamW) on gpt-nano, batch 32,
// on length-bucketed corpus batches; every batch runs with both kernels, in alternating order, each
// kernel with its own parameters and optimizer (so drift in the machine's load hits both alike)
const TRAIN_BATCHES = 2 + 2 * Math.min(rounds, 2);
const trainModel = resolveModelConfig("gpt-nano", V);
function trainBatches(n: number): ReturnType<typeof encodeBatch>[] {
  const stream = corpusStream(DEFAULT_CORPUS, new Set());
  const pool: CorpusItem[] = [];
  for (let i = 0; i < 32 * n; i++) pool.push(stream.next().value as CorpusItem);
  const len = (it: CorpusItem) => it.prompt.length + it.completion.length;
  pool.sort((a, b) => len(a) - len(b));
  const out = Array.from({ length: n }, (_, i) =>
    encodeBatch(pool.slice(i * 32, (i + 1) * 32), tok, trainModel.contextLength),
  );
  const r = makeRng(2, "bench-train-order");
  for (let i = out.length - 1; i > 0; i--) {
    const j = r.int(0, i);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
const trainState = Object.fromEntries(
  KERNELS.map((k) => {
    const params = initParams(trainModel, 1);
    return [
      k,
      {
        params,
        opt: new AdamW(params, { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, gradClip: 1 }),
        names: new Map(Object.entries(params).map(([n, v]) => [v.name, n])),
      },
    ];
  }),
) as Record<Kernels, { params: Params; opt: AdamW; names: Map<string, string> }>;
function trainStep(k: Kernels, batch: ReturnType<typeof encodeBatch>): number {
  selectKernels(k);
  const { params, opt, names } = trainState[k];
  const t0 = performance.now();
  const inputs = tf.tensor2d(batch.inputs, undefined, "int32");
  const targets = tf.tensor2d(batch.targets, undefined, "int32");
  const mask = tf.tensor2d(batch.mask, undefined, "float32");
  const { value, grads } = tf.variableGrads(() => lmLoss(params, trainModel, inputs, targets, mask));
  const named: Record<string, tf.Tensor> = {};
  for (const [vn, g] of Object.entries(grads)) named[names.get(vn)!] = g;
  opt.apply(named, 1e-3);
  value.dataSync();
  tf.dispose([value, inputs, targets, mask, ...Object.values(grads)]);
  return (performance.now() - t0) / 1000;
}
const train = { fast: { tokens: 0, seconds: 0 }, stock: { tokens: 0, seconds: 0 } };
const TRAIN_REPS = 3;
log(
  `\ntraining (pretraining steps, gpt-nano, batch 32; ${TRAIN_BATCHES} batches, each run ${TRAIN_REPS} times per kernel, alternating; median per batch), tokens/s`,
);
const batches = trainBatches(TRAIN_BATCHES);
for (const k of KERNELS) trainStep(k, batches[0]); // warm-up
batches.forEach((b, i) => {
  const secs: Record<Kernels, number[]> = { fast: [], stock: [] };
  for (let r = 0; r < TRAIN_REPS; r++)
    for (const k of r % 2 === 0 ? KERNELS : [...KERNELS].reverse()) secs[k].push(trainStep(k, b));
  for (const k of KERNELS) {
    train[k].seconds += median(secs[k]);
    train[k].tokens += b.inputs.length * b.T;
  }
  log(
    `  batch ${i + 1} (32 x ${b.T}): ${KERNELS.map((k) => `${k} ${(median(secs[k]) * 1000).toFixed(0)} ms`).join(", ")}`,
  );
});
for (const k of KERNELS) {
  trainState[k].opt.dispose();
  disposeParams(trainState[k].params);
}

// ---------------------------------------------------------------------------------------------
// --peers: PyTorch on the same weights (bench/peers.ts), started before the sections it joins
/** CPU seconds (user + system, every thread of this process) since `from` */
const cpuSince = (from: NodeJS.CpuUsage) => {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1e6;
};
let peer: TorchPeer | null = null;
let peerUnavailable: string | null = null;
/** a request to the peer; on failure the peer is dropped (said once) and the rest of the bench runs */
async function peerCall<T>(op: string, args: Record<string, unknown> = {}): Promise<T | null> {
  if (!peer) return null;
  try {
    return await peer.call<T>(op, args);
  } catch (e) {
    peerUnavailable = `failed during ${op}: ${(e as Error).message}`;
    log(`torch peer ${peerUnavailable}; the bench carries on without it`);
    peer.close();
    peer = null;
    return null;
  }
}
let peerBuild: TorchBuild | null = null;
interface Agreement {
  maxAbsLogp: number;
  maxAbsEntropy: number;
  shape: number[];
  /** both differences within AGREEMENT (else the twins compute different functions: the line says so) */
  agrees: boolean;
}
/** the largest |Δ log p| and |Δ entropy| accepted (test/torchPeer.test.ts checks the organism to it) */
const AGREEMENT = 1e-4;
function agreement(ours: { logp: number[][]; entropy: number[][] }, theirs: typeof ours): Agreement {
  const maxAbsLogp = maxAbsDiff(ours.logp, theirs.logp);
  const maxAbsEntropy = maxAbsDiff(ours.entropy, theirs.entropy);
  return {
    maxAbsLogp,
    maxAbsEntropy,
    shape: [ours.logp.length, ours.logp[0].length],
    agrees: maxAbsLogp <= AGREEMENT && maxAbsEntropy <= AGREEMENT,
  };
}
const describeAgreement = (a: Agreement) =>
  `max |Δ log p| ${a.maxAbsLogp.toExponential(2)}, max |Δ entropy| ${a.maxAbsEntropy.toExponential(2)} (${a.agrees ? `within ${AGREEMENT.toExponential(0)}` : `MORE THAN ${AGREEMENT.toExponential(0)}: torch's twin and ours compute different functions`})`;
const organismAgreement: Partial<Record<Kernels, Agreement>> = {};
if (has("peers")) {
  log(`\ntorch peer: looking in ${TorchPeer.candidates().join(", ")}`);
  const started = await TorchPeer.start(N, log);
  if (typeof started === "string") {
    peerUnavailable = started;
    log(`torch peer unavailable: ${started}; the rest of the bench runs without it`);
  } else {
    peer = started;
    peerBuild = started.build;
    log(`torch peer: ${describeBuild(started.build)}`);
    await peerCall("gpt.load", { dir: BASE });
    // log-prob agreement on a batch of our rollouts of 12*2 (every position, padding included)
    selectKernels("fast");
    const prefix = [BOS_ID, ...tok.encode(promptText("12*2"))];
    const out = sample(
      hostWeights(baseParams, cfg),
      Array.from({ length: 64 }, () => prefix.slice(1)),
      { temperature: 1, topP: 1, maxNewTokens: Math.min(80, cfg.contextLength) },
      makeRng(7, "bench-peer-agreement"),
    );
    const b = responseBatch(
      out.completions.map(() => prefix),
      out.completions,
      out.finished.map((f) => (f ? EOS_ID : null)),
      PAD_ID,
    );
    const theirs = await peerCall<{ logp: number[][]; entropy: number[][] }>("gpt.logprobs", {
      inputs: b.inputs,
      targets: b.targets,
    });
    for (const k of KERNELS) {
      if (!theirs) break;
      selectKernels(k);
      const ours = tf.tidy(() => {
        const r = tokenLogProbs(
          baseParams,
          cfg,
          tf.tensor2d(b.inputs, undefined, "int32"),
          tf.tensor2d(b.targets, undefined, "int32"),
          true,
        );
        return { logp: r.logp.arraySync(), entropy: r.entropy!.arraySync() };
      });
      organismAgreement[k] = agreement(ours, theirs);
      log(
        `  log-prob agreement with ours (${k} kernels), [${organismAgreement[k]!.shape}] batch of our rollouts of 12*2: ${describeAgreement(organismAgreement[k]!)}`,
      );
    }
  }
}

// rollouts: 64 sequences of a 12-char prompt, T = 1, up to 60 new tokens
const PROMPT = promptText("12*2+35*4-1"); // 12 characters
const prompts = Array.from({ length: 64 }, () => tok.encode(PROMPT));
type Run = { tokens: number; seconds: number; cpuSeconds: number };
function rolloutRun(k: Kernels, reps: number): Run {
  selectKernels(k);
  const hw = hostWeights(baseParams, cfg);
  let tokens = 0;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let i = 0; i < reps; i++) {
    const out = sample(hw, prompts, { temperature: 1, topP: 1, maxNewTokens: 60 }, makeRng(5 + i, "bench-rollout"));
    out.completions.forEach((c, b) => (tokens += c.length + (out.finished[b] ? 1 : 0)));
  }
  return { tokens, seconds: (performance.now() - t0) / 1000, cpuSeconds: cpuSince(c0) };
}
const rolloutRate = (k: Kernels, reps: number) => {
  const r = rolloutRun(k, reps);
  return r.tokens / r.seconds;
};
/** the same 64 rollouts in torch (`reps` batches, as ours) */
const torchRollouts = (reps: number, seed: number) =>
  peerCall<Run>("gpt.rollouts", {
    prompts: prompts.map((p) => [BOS_ID, ...p]),
    maxNewTokens: 60,
    temperature: 1,
    topP: 1,
    eosId: EOS_ID,
    reps,
    seed,
  });
const rollout: Record<Kernels, number[]> = { fast: [], stock: [] };
/** with --peers: tokens per CPU-second of fast, and torch's tokens/s and tokens per CPU-second, per round */
const rolloutPerCpu: number[] = [];
const torchRollout = { perSecond: [] as number[], perCpuSecond: [] as number[] };
log(`\nrollouts (64 x "${PROMPT}", T=1, <= 60 new tokens, ${weights}), generated tokens/s`);
rolloutRate("fast", 1);
await torchRollouts(1, 4); // warm-up
for (let r = 0; r < rounds; r++) {
  const fast = rolloutRun("fast", 5);
  rollout.fast.push(fast.tokens / fast.seconds);
  rolloutPerCpu.push(fast.tokens / fast.cpuSeconds);
  rollout.stock.push(rolloutRate("stock", 1));
  const t = await torchRollouts(5, 5 + r);
  if (t) {
    torchRollout.perSecond.push(t.tokens / t.seconds);
    torchRollout.perCpuSecond.push(t.tokens / t.cpuSeconds);
  }
  log(
    `  round ${r + 1}: fast ${rollout.fast[r].toFixed(0)}, stock ${rollout.stock[r].toFixed(0)}${t ? `, torch ${(t.tokens / t.seconds).toFixed(0)}; per CPU-second: fast ${rolloutPerCpu[r].toFixed(0)}, torch ${(t.tokens / t.cpuSeconds).toFixed(0)}` : ""}`,
  );
}

// GRPO steps: 8 copies x 8 rollouts on 12*2, default GrpoSchema values, fresh policy each time
const grpoCfg = GrpoSchema.parse({ copies: 8, rollouts: 8 });
const grpoCfgUsed = { ...grpoCfg, maxNewTokens: Math.min(grpoCfg.maxNewTokens, cfg.contextLength) };
const GRPO_STEPS = 2 * Math.min(rounds, 2);
/** the GRPO step also with `fused` (fast + the organism's native forward/backward) where the addon loads */
type GrpoKernels = Kernels | "fused";
const GRPO_KERNELS: GrpoKernels[] = nativeAddon() ? [...KERNELS, "fused"] : KERNELS;
const grpo = Object.fromEntries(GRPO_KERNELS.map((k) => [k, { total: 0, rollout: 0, update: 0 }])) as Record<
  GrpoKernels,
  { total: number; rollout: number; update: number }
>;
/** with --peers: CPU seconds and mean response length per step, fast, fused and torch; torch's wall seconds */
const grpoCpu = { fast: 0, fused: 0, torch: 0, torchUpdate: 0 };
const grpoResponseLength = { fast: 0, fused: 0, torch: 0 };
const torchGrpo = { total: 0, rollout: 0, update: 0, steps: 0 };
log(
  `\nGRPO step (8 copies x 8 rollouts of 12*2, maxNewTokens ${grpoCfgUsed.maxNewTokens}; ${GRPO_STEPS} steps per kernel after 1 warm-up, alternating), seconds/step`,
);
{
  const trainers = Object.fromEntries(
    GRPO_KERNELS.map((k) => [
      k,
      {
        trainer: new GrpoTrainer(
          new GptLM(cloneParams(baseParams), cfg),
          new GptLM(cloneParams(baseParams), cfg),
          organismTask(tok),
          grpoCfgUsed,
          { prompt: "12*2", answer: "24" },
        ),
        rng: makeRng(3, "bench-grpo"),
      },
    ]),
  ) as Record<GrpoKernels, { trainer: GrpoTrainer; rng: ReturnType<typeof makeRng> }>;
  const grpoStep = (k: GrpoKernels) => {
    selectKernels(k);
    const { trainer, rng } = trainers[k];
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const st = trainer.step(rng);
    return {
      total: (performance.now() - t0) / 1000,
      rollout: st.rolloutSeconds,
      update: st.updateSeconds,
      cpu: cpuSince(c0),
      responseLength: st.responseLength,
    };
  };
  interface TorchStep {
    seconds: number;
    cpuSeconds: number;
    rolloutSeconds: number;
    updateSeconds: number;
    updateCpuSeconds: number;
    responseLength: number;
    batch: number[];
  }
  // torch's step: the same example, prompt ids and resolved GRPO values, its own policy and AdamW
  await peerCall("gpt.grpo.start", {
    promptIds: [BOS_ID, ...tok.encode(promptText("12*2"))],
    answer: "24",
    vocab: Array.from({ length: V }, (_, i) => (i < 4 ? "" : tok.decode([i]))),
    grpo: grpoCfgUsed,
    seed: 3,
    eosId: EOS_ID,
    padId: PAD_ID,
  });
  for (const k of GRPO_KERNELS) grpoStep(k); // warm-up
  await peerCall("gpt.grpo.step");
  type Variant = GrpoKernels | "torch";
  const VARIANTS: Variant[] = [...GRPO_KERNELS, "torch"];
  for (let i = 0; i < GRPO_STEPS; i++) {
    const line: string[] = [];
    for (const k of i % 2 === 0 ? VARIANTS : [...VARIANTS].reverse()) {
      if (k === "torch") {
        const t = await peerCall<TorchStep>("gpt.grpo.step");
        if (!t) continue;
        torchGrpo.total += t.seconds / GRPO_STEPS;
        torchGrpo.rollout += t.rolloutSeconds / GRPO_STEPS;
        torchGrpo.update += t.updateSeconds / GRPO_STEPS;
        torchGrpo.steps++;
        grpoCpu.torch += t.cpuSeconds / GRPO_STEPS;
        grpoCpu.torchUpdate += t.updateCpuSeconds / GRPO_STEPS;
        grpoResponseLength.torch += t.responseLength / GRPO_STEPS;
        line.push(
          `torch ${t.seconds.toFixed(2)} s (rollout ${t.rolloutSeconds.toFixed(2)}, update ${t.updateSeconds.toFixed(2)} on [${t.batch}]; CPU ${t.cpuSeconds.toFixed(2)} s)`,
        );
        continue;
      }
      const r = grpoStep(k);
      grpo[k].total += r.total / GRPO_STEPS;
      grpo[k].rollout += r.rollout / GRPO_STEPS;
      grpo[k].update += r.update / GRPO_STEPS;
      if (k === "fast" || k === "fused") {
        grpoCpu[k] += r.cpu / GRPO_STEPS;
        grpoResponseLength[k] += r.responseLength / GRPO_STEPS;
      }
      line.push(
        `${k} ${r.total.toFixed(2)} s (rollout ${r.rollout.toFixed(2)}, update ${r.update.toFixed(2)}${peer ? `; CPU ${r.cpu.toFixed(2)} s` : ""})`,
      );
    }
    log(`  step ${i + 1}: ${line.join("; ")}`);
  }
  for (const k of GRPO_KERNELS) {
    trainers[k].trainer.optimizer.dispose();
    trainers[k].trainer.policy.dispose();
    trainers[k].trainer.reference?.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// experiments (wall time of the CLI, fast vs stock)
const experiments: Record<string, Record<Kernels, { seconds: number; exitCode: number | null }>> = {};
if (has("experiments")) {
  const files = ["experiments/smoke.json", ...(has("default") ? ["experiments/default.json"] : [])];
  for (const file of files) {
    experiments[file] = {} as Record<Kernels, { seconds: number; exitCode: number | null }>;
    for (const k of KERNELS) {
      const out = fs.mkdtempSync(path.join(os.tmpdir(), "bench-exp-"));
      const t0 = performance.now();
      const r = spawnSync("npm", ["run", "experiment", "--", file, "--out", out, "--kernels", k], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "pipe"],
      });
      const seconds = (performance.now() - t0) / 1000;
      experiments[file][k] = { seconds: round(seconds, 1), exitCode: r.status };
      log(
        `experiment ${file} --kernels ${k}: ${seconds.toFixed(1)} s, exit ${r.status}${r.status === 0 ? "" : `\n${(r.stderr || r.stdout).trim().split("\n").slice(-3).join("\n")}`}`,
      );
      fs.rmSync(out, { recursive: true, force: true });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// --hf: the SmolLM2-135M shape (bench/hfModel.ts), --hf-kernels (default fast,stock); with --peers,
// torch on the same checkpoint and inputs right after our first kernel set
type HfResult = Awaited<ReturnType<typeof benchHfModel>>;
let hfModel: HfResult | undefined;
let torchHf: Record<string, unknown> | undefined;
if (has("hf")) {
  const hfKernels = arg("hf-kernels", "fast,stock").split(",") as GrpoKernels[];
  for (const k of hfKernels)
    if (!["fast", "stock", "fused"].includes(k))
      throw new Error(`--hf-kernels: use fast, stock and/or fused, got ${JSON.stringify(k)}`);
  const hfOpts = { log, updateMicroBatches: 1 };
  for (const [i, k] of hfKernels.entries()) {
    const r = await benchHfModel({ ...hfOpts, kernels: [k] });
    hfModel = hfModel
      ? { ...hfModel, results: [...hfModel.results, ...r.results], peakRssMB: Math.max(hfModel.peakRssMB, r.peakRssMB) }
      : r;
    if (i === 0 && peer) torchHf = await torchHfModel(r);
  }
}

/** torch on hfModel's checkpoint and inputs: log-prob agreement with ours (fast kernels) on two rows,
 * sampling, and the update (the micro-batches ours timed, scaled to the whole batch as ours is) */
async function torchHfModel(ours: HfResult): Promise<Record<string, unknown> | undefined> {
  const dir = ours.checkpoint;
  log(`\ntorch peer on ${dir}`);
  if (!(await peerCall("llama.load", { dir }))) return undefined;
  const { shape } = ours;
  selectKernels("fast");
  const model = LlamaModel.load(dir);
  const data = hfBenchData(model.vocabSize, shape);
  const rows = data.ids.slice(0, 2);
  const inputs = rows.map((r) => r.slice(0, -1));
  const targets = rows.map((r) => r.slice(1));
  const mine = tf.tidy(() => {
    const r = model.tokenLogProbs(tf.tensor2d(inputs, undefined, "int32"), tf.tensor2d(targets, undefined, "int32"), {
      temperature: 1,
      entropy: true,
    });
    return { logp: r.logp.arraySync(), entropy: r.entropy!.arraySync() };
  });
  model.dispose();
  const theirs = await peerCall<{ logp: number[][]; entropy: number[][] }>("llama.logprobs", { inputs, targets });
  if (!theirs) return undefined;
  const agreed = agreement(mine, theirs);
  log(`  log-prob agreement with ours (fast kernels), [${agreed.shape}]: ${describeAgreement(agreed)}`);
  const s = await peerCall<Run>("llama.sample", { prompts: data.prompts, newTokens: shape.newTokens, seed: 1 });
  if (!s) return undefined;
  log(
    `  torch sampling ${shape.sequences} x ${shape.newTokens}: ${s.seconds.toFixed(1)} s (CPU ${s.cpuSeconds.toFixed(1)} s), ${(s.tokens / s.seconds).toFixed(1)} tokens/s`,
  );
  const nMicro = Math.ceil(shape.updateBatch / shape.microBatch);
  const timed = ours.results[0].updateMicroBatchesTimed ?? nMicro;
  const u = await peerCall<{
    updateSeconds: number;
    updateCpuSeconds: number;
    forwardSeconds: number;
    forwardCpuSeconds: number;
  }>("llama.update", {
    ids: data.ids,
    adv: data.adv,
    microBatch: shape.microBatch,
    microBatches: timed,
    recompute: true,
  });
  if (!u) return undefined;
  const scale = nMicro / timed;
  const res = {
    checkpoint: dir,
    shape,
    recompute: true,
    logprobAgreement: agreed,
    samplingSeconds: round(s.seconds),
    samplingCpuSeconds: round(s.cpuSeconds),
    samplingTokensPerSecond: round(s.tokens / s.seconds),
    updateSeconds: round(u.updateSeconds * scale),
    updateCpuSeconds: round(u.updateCpuSeconds * scale),
    forwardSeconds: round(u.forwardSeconds * scale),
    forwardCpuSeconds: round(u.forwardCpuSeconds * scale),
    updateMicroBatchesTimed: timed,
  };
  log(
    `  torch update [${shape.updateBatch}, ${shape.updateLength}] in micro-batches of ${shape.microBatch} (blocks recomputed, as ours): ${res.updateSeconds} s forward+backward (CPU ${res.updateCpuSeconds} s), ${res.forwardSeconds} s forward only${timed < nMicro ? ` (${timed} of ${nMicro} micro-batches timed, scaled)` : ""}`,
  );
  return res;
}
peer?.close();

// ---------------------------------------------------------------------------------------------
const plain = byTranspose["256x256x256"]?.AB;
const med = (xs: number[], d = 0) => round(median(xs), d);
const result = {
  backend: backendName,
  threads: N,
  cores: os.cpus().length,
  loadAverage: os.loadavg().map((x) => round(x)),
  weights,
  matmulBuild: matmulVariant(),
  native: nativeInfo,
  matmulGflops: plain
    ? { fast1: plain.fast1, fastN: plain.fastN, exact1: plain.exact1, wasm: plain.wasm, cpu: plain.cpu }
    : null,
  matmulGflopsBest: byTransposeBest["256x256x256"]?.AB ?? null,
  matmulGflopsByTranspose: byTranspose,
  matmulGflopsByTransposeBest: byTransposeBest,
  matmulThreadRatio: threadRatio,
  matmulStolenShare: stolenShare,
  trainTokensPerSecond: {
    fast: round(train.fast.tokens / train.fast.seconds, 0),
    stock: round(train.stock.tokens / train.stock.seconds, 0),
  },
  rolloutTokensPerSecond: { fast: med(rollout.fast), stock: med(rollout.stock) },
  grpoStepSeconds: Object.fromEntries(GRPO_KERNELS.map((k) => [k, round(grpo[k].total, 3)])) as Record<
    GrpoKernels,
    number
  >,
  grpoStepDetail: Object.fromEntries(
    GRPO_KERNELS.map((k) => [
      k,
      { rolloutSeconds: round(grpo[k].rollout, 3), updateSeconds: round(grpo[k].update, 3) },
    ]),
  ) as Record<GrpoKernels, { rolloutSeconds: number; updateSeconds: number }>,
  experimentSeconds: has("experiments") ? experiments : undefined,
  hfModel,
  hfModelStep: has("hf-step")
    ? await benchHfModel({ log, kernels: ["fast", "stock"], parts: false, grpoStep: true, microBatch: 8 })
    : undefined,
  peers: has("peers")
    ? {
        torch:
          peerBuild && !peerUnavailable
            ? {
                available: true,
                build: peerBuild,
                rolloutTokensPerSecond: med(torchRollout.perSecond),
                rolloutTokensPerCpuSecond: med(torchRollout.perCpuSecond),
                grpoStepSeconds: round(torchGrpo.total, 3),
                grpoStepCpuSeconds: round(grpoCpu.torch, 3),
                rolloutSeconds: round(torchGrpo.rollout, 3),
                updateSeconds: round(torchGrpo.update, 3),
                updateCpuSeconds: round(grpoCpu.torchUpdate, 3),
                responseLength: round(grpoResponseLength.torch, 1),
                logprobAgreement: organismAgreement,
                hfModel: torchHf,
              }
            : { available: false, reason: peerUnavailable },
        /** ours (fast kernels) in the same rounds, per CPU-second */
        fast: {
          rolloutTokensPerCpuSecond: med(rolloutPerCpu),
          grpoStepSeconds: round(grpo.fast.total, 3),
          grpoStepCpuSeconds: round(grpoCpu.fast, 3),
          updateSeconds: round(grpo.fast.update, 3),
          responseLength: round(grpoResponseLength.fast, 1),
        },
        /** ours with --kernels fused (null: the addon is unavailable) */
        fused: GRPO_KERNELS.includes("fused")
          ? {
              grpoStepSeconds: round(grpo.fused.total, 3),
              grpoStepCpuSeconds: round(grpoCpu.fused, 3),
              updateSeconds: round(grpo.fused.update, 3),
              responseLength: round(grpoResponseLength.fused, 1),
            }
          : null,
      }
    : undefined,
  threadStats: matmulThreadStats(),
};
selectKernels("stock");
if (asJson) {
  process.stdout.write(JSON.stringify(result) + "\n");
} else {
  log("\nsummary");
  if (plain) {
    log(
      `  matmul 256^3 plain GFLOP/s: fast (${FAST_BUILD} build) 1 thread ${plain.fast1}, ${N} threads ${plain.fastN}; exact build 1 thread ${plain.exact1}; stock wasm ${plain.wasm}, stock cpu ${plain.cpu}`,
    );
    for (const [op, m] of Object.entries(byTranspose["256x256x256"])) {
      const b = byTransposeBest["256x256x256"][op];
      const tr = threadRatio["256x256x256"][op];
      const st = stolenShare["256x256x256"][op];
      const stolen =
        st.fastN === null
          ? "host steal not measured here"
          : `host stole ${(100 * st.fast1!).toFixed(1)}% / ${(100 * st.fastN).toFixed(1)}% of the CPUs during the 1- / ${N}-thread windows`;
      log(
        `    ${op.padEnd(5)} fast1 median ${m.fast1} (best ${b.fast1}), fast${N} median ${m.fastN} (best ${b.fastN}), ${N} threads / 1: ${tr.ofMedians.toFixed(2)}x of medians, ${tr.paired.toFixed(2)}x paired per round, ${(b.fastN / b.fast1).toFixed(2)}x best; ${stolen}`,
      );
    }
  }
  log(
    `  training tokens/s: fast ${result.trainTokensPerSecond.fast}, stock ${result.trainTokensPerSecond.stock} (${(result.trainTokensPerSecond.fast / result.trainTokensPerSecond.stock).toFixed(2)}x)`,
  );
  log(
    `  rollout tokens/s: fast ${result.rolloutTokensPerSecond.fast}, stock ${result.rolloutTokensPerSecond.stock} (${(result.rolloutTokensPerSecond.fast / result.rolloutTokensPerSecond.stock).toFixed(1)}x)`,
  );
  log(
    `  GRPO step seconds: fast ${result.grpoStepSeconds.fast}, stock ${result.grpoStepSeconds.stock} (${(result.grpoStepSeconds.stock / result.grpoStepSeconds.fast).toFixed(2)}x)${result.grpoStepSeconds.fused !== undefined ? `, fused ${result.grpoStepSeconds.fused}` : ""}`,
  );
  const pt = result.peers?.torch;
  if (pt?.available) {
    const f = result.grpoStepDetail.fast;
    log(`  torch peer: ${describeBuild(pt.build!)}`);
    log(
      `    rollout tokens/s: fast ${result.rolloutTokensPerSecond.fast}, torch ${pt.rolloutTokensPerSecond} (fast / torch ${(result.rolloutTokensPerSecond.fast / pt.rolloutTokensPerSecond!).toFixed(2)}x); per CPU-second ${result.peers!.fast.rolloutTokensPerCpuSecond} vs ${pt.rolloutTokensPerCpuSecond}`,
    );
    log(
      `    GRPO step seconds: fast ${result.grpoStepSeconds.fast}, torch ${pt.grpoStepSeconds} (CPU ${result.peers!.fast.grpoStepCpuSeconds} vs ${pt.grpoStepCpuSeconds}); update fast ${f.updateSeconds}, torch ${pt.updateSeconds}`,
    );
    const fu = result.peers!.fused;
    if (fu)
      log(
        `    fused: GRPO step ${fu.grpoStepSeconds} s (CPU ${fu.grpoStepCpuSeconds}), update ${fu.updateSeconds} s; torch / fused: step ${(pt.grpoStepSeconds! / fu.grpoStepSeconds).toFixed(2)}x, update ${(pt.updateSeconds! / fu.updateSeconds).toFixed(2)}x`,
      );
  } else if (result.peers) log(`  torch peer: ${result.peers.torch.reason}`);
  const ts = result.threadStats;
  log(`  worker posts ${ts.posted}, cancelled (worker not awake in time) ${ts.cancelled}, stalls ${ts.stalls}`);
}
