// Speed and memory of a Llama-family model on the active tfjs backend, fast kernels vs stock, on a
// random checkpoint shaped like a real one (default: SmolLM2-135M, written once to the temp
// directory by src/model/llamaRandom.ts; no real weights are needed to time the arithmetic):
//  - sampling tokens/s: `sequences` prompts of ~`promptTokens` ids decoded for `newTokens` tokens at
//    temperature 1 (no stop ids: every sequence runs to the end), KV cache, batched;
//  - seconds for one forward + backward of tokenLogProbs (log-probs and entropy) over a
//    [updateBatch, updateLength] batch in micro-batches of `microBatch` sequences with the gradients
//    summed — the policy update of one GRPO step — and for one forward without gradient (the old or
//    reference policy's log-probs); `updateMicroBatches` < all measures that many micro-batches and
//    scales (every micro-batch is the same work);
//  - one whole GRPO step through GrpoTrainer (`grpoStep`: copies × rollouts sampled from one prompt
//    of ~`promptTokens` ids for `newTokens` tokens, the policy and reference log-probs and the update
//    in micro-batches of `microBatch`, AdamW applied), as `npm run experiment` runs it: the rollouts
//    never stop early (no stop ids), so it is the step's longest case;
//  - peak resident memory of the process (maxRSS) after each part.
// Kernels `fused` sample as `fast` does; its update and forward run through the native Llama-family
// forward/backward (src/model/llamaFused.ts).
// Call benchHfModel() after the backend is set (bench/bench.ts), or run this file:
//   npx tsx bench/hfModel.ts [--json] [--backend wasm|cpu] [--kernels fast,stock,fused] [--preset smollm2-135m]
//     [--checkpoint DIR] [--sequences 64] [--new-tokens 128] [--prompt-tokens 32] [--update-batch 64]
//     [--update-length 160] [--micro-batch 8] [--update-micro-batches N] [--grpo-step] [--parts false]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { selectBackend, wasmHeapMB, type BackendName } from "../src/engine/backend.js";
import { makeRng } from "../src/engine/rng.js";
import { readJsonObject } from "../src/model/hfCheckpoint.js";
import { countLlamaParams, LlamaModel } from "../src/model/llama.js";
import { HF_PRESETS, writeRandomCheckpoint } from "../src/model/llamaRandom.js";
import { selectKernels } from "../src/model/generate.js";
import { GrpoSchema } from "../src/experiment/schema.js";
import { GrpoTrainer } from "../src/rl/trainer.js";
import type { Task } from "../src/task/task.js";

export interface HfModelBenchOptions {
  /** a checkpoint directory; default: a random one of `preset`, made once in the temp directory */
  checkpoint?: string;
  preset?: string;
  kernels?: ("fast" | "stock" | "fused")[];
  sequences?: number;
  newTokens?: number;
  promptTokens?: number;
  updateBatch?: number;
  updateLength?: number;
  microBatch?: number;
  /** micro-batches actually run per update (default: all of them) */
  updateMicroBatches?: number;
  /** also time one whole GRPO step (copies × rollouts = `sequences`, default false: it takes minutes) */
  grpoStep?: boolean;
  /** time the parts (sampling, update, forward); default true */
  parts?: boolean;
  log?: (line: string) => void;
}

/** The parts' fields are absent when only the GRPO step was asked for (`parts: false`). */
export interface HfModelKernelResult {
  kernels: "fast" | "stock" | "fused";
  samplingSeconds?: number;
  samplingTokens?: number;
  samplingTokensPerSecond?: number;
  /** forward + backward over the whole [updateBatch, updateLength] batch, in seconds */
  updateSeconds?: number;
  /** micro-batches timed (the rest scaled from them) */
  updateMicroBatchesTimed?: number;
  /** forward without gradient over the same batch, in seconds */
  forwardSeconds?: number;
  /** CPU time of the process (all threads) during sampling / the update / the forward, in seconds:
   * on a machine shared with other work, wall time measures the load; CPU time much less so */
  samplingCpuSeconds?: number;
  updateCpuSeconds?: number;
  forwardCpuSeconds?: number;
  /** process peak resident memory after this variant's parts, in MB */
  peakRssMB: number;
  /** one whole GRPO step, when asked for */
  grpoStep?: GrpoStepResult;
}

export interface GrpoStepResult {
  copies: number;
  rollouts: number;
  newTokens: number;
  microBatch: number;
  klCoef: number;
  seconds: number;
  cpuSeconds: number;
  rolloutSeconds: number;
  updateSeconds: number;
  rolloutTokens: number;
  /** process peak resident memory after the step (policy, reference, gradients, AdamW), in MB */
  peakRssMB: number;
  /** the tfjs-wasm heap after the step, in MB (its limit: 4096); null on other backends */
  wasmHeapMB: number | null;
}

export interface HfModelBenchResult {
  checkpoint: string;
  family: string;
  parameters: number;
  backend: string;
  threads: string;
  shape: {
    sequences: number;
    newTokens: number;
    promptTokens: number;
    updateBatch: number;
    updateLength: number;
    microBatch: number;
  };
  results: HfModelKernelResult[];
  /** convenience: the first variant's (fast's, by default) numbers */
  samplingTokensPerSecond: number | null;
  updateSeconds: number | null;
  /** the first variant's whole GRPO step in seconds, when measured */
  grpoStepSeconds: number | null;
  peakRssMB: number;
}

const peakRssMB = () => Math.round(process.resourceUsage().maxRSS / 1024);
/** CPU seconds (user + system, every thread) since `from` */
const cpuSince = (from: NodeJS.CpuUsage) => {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1e6;
};

/** The preset's random checkpoint in the temp directory (BF16, as the real ones ship), made if missing. */
export function presetCheckpoint(preset: string, log: (s: string) => void = () => {}): string {
  const config = HF_PRESETS[preset];
  if (!config)
    throw new Error(`unknown preset ${JSON.stringify(preset)}; use one of ${Object.keys(HF_PRESETS).join(", ")}`);
  const dir = path.join(os.tmpdir(), "oneshot-rlvr", `hf-random-${preset}-bf16-seed1`);
  const cfgFile = path.join(dir, "config.json");
  const ok =
    fs.existsSync(cfgFile) &&
    fs.existsSync(path.join(dir, "model.safetensors")) &&
    JSON.stringify({ ...readJsonObject(cfgFile), torch_dtype: undefined }) ===
      JSON.stringify({ ...config, torch_dtype: undefined });
  if (!ok) {
    log(`writing a random ${preset} checkpoint to ${dir}`);
    writeRandomCheckpoint(dir, config, { seed: 1 }, { dtype: "BF16" });
  }
  return dir;
}

/** The bench's task: one prompt of random ids; the rollouts run to `newTokens` (no stop ids); the
 * reward is the parity of the first sampled id, so that groups have both rewards and the update has
 * work to do (a timing device, not a measure of anything the model learns). */
function benchTask(vocabSize: number, promptTokens: number): Task {
  const rng = makeRng(1, "bench-hf-grpo-prompt");
  const prompt = Array.from({ length: promptTokens }, () => rng.int(0, vocabSize - 1));
  return {
    promptIds: () => prompt,
    decode: (ids) => ids.join(" "),
    stopIds: [],
    padId: 0,
    reward: (completion) => {
      const first = Number(completion.split(" ")[0]);
      const r = Number.isFinite(first) && first % 2 === 0 ? 1 : 0;
      return { reward: r, extracted: String(r), parts: { format: 1, answer: r } };
    },
    answerFormat: "boxed",
  };
}

/** One GrpoTrainer step on the checkpoint with the default loss (KL to a reference included). */
function timeGrpoStep(
  dir: string,
  shape: { sequences: number; newTokens: number; promptTokens: number; microBatch: number },
  log: (s: string) => void,
): GrpoStepResult {
  const rollouts = 8;
  const copies = Math.max(1, Math.round(shape.sequences / rollouts));
  const grpo = GrpoSchema.parse({
    copies,
    rollouts,
    maxNewTokens: shape.newTokens,
    microBatch: shape.microBatch,
    learningRate: 1e-6,
  });
  const policy = LlamaModel.load(dir);
  const reference = LlamaModel.load(dir);
  const trainer = new GrpoTrainer(policy, reference, benchTask(policy.vocabSize, shape.promptTokens), grpo, {
    prompt: "bench",
    answer: "0",
  });
  const t0 = performance.now();
  trainer.onProgress = (p) =>
    log(
      p.phase === "rollouts"
        ? `  grpo step: ${p.tokens} rollout tokens in ${p.seconds.toFixed(1)} s`
        : `  grpo step: micro-batch ${p.done}/${p.of} at ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  const c0 = process.cpuUsage();
  const stats = trainer.step(makeRng(1, "bench-hf-grpo"));
  const seconds = (performance.now() - t0) / 1000;
  const cpuSeconds = cpuSince(c0);
  const result: GrpoStepResult = {
    copies,
    rollouts,
    newTokens: shape.newTokens,
    microBatch: shape.microBatch,
    klCoef: grpo.loss.klCoef,
    seconds: round(seconds),
    cpuSeconds: round(cpuSeconds),
    rolloutSeconds: round(stats.rolloutSeconds),
    updateSeconds: round(stats.updateSeconds),
    rolloutTokens: Math.round(stats.responseLength * copies * rollouts),
    peakRssMB: peakRssMB(),
    wasmHeapMB: wasmHeapMB(),
  };
  log(
    `  grpo step ${copies} x ${rollouts}, ${shape.newTokens} new tokens, micro-batches of ${shape.microBatch}: ${seconds.toFixed(1)} s (CPU ${cpuSeconds.toFixed(1)} s; rollouts ${stats.rolloutSeconds.toFixed(1)} s, update ${stats.updateSeconds.toFixed(1)} s); peak RSS ${result.peakRssMB} MB, wasm heap ${result.wasmHeapMB ?? "-"} MB`,
  );
  trainer.optimizer.dispose();
  policy.dispose();
  reference.dispose();
  return result;
}

export async function benchHfModel(opts: HfModelBenchOptions = {}): Promise<HfModelBenchResult> {
  const log = opts.log ?? (() => {});
  const sequences = opts.sequences ?? 64;
  const newTokens = opts.newTokens ?? 128;
  const promptTokens = opts.promptTokens ?? 32;
  const updateBatch = opts.updateBatch ?? 64;
  const updateLength = opts.updateLength ?? 160;
  const microBatch = Math.min(opts.microBatch ?? 8, updateBatch);
  const nMicro = Math.ceil(updateBatch / microBatch);
  const timedMicro = Math.min(nMicro, opts.updateMicroBatches ?? nMicro);
  const dir = opts.checkpoint ?? presetCheckpoint(opts.preset ?? "smollm2-135m", log);
  const results: HfModelKernelResult[] = [];
  let info: Pick<HfModelBenchResult, "family" | "parameters" | "threads"> | null = null;
  for (const kernels of opts.kernels ?? ["fast", "stock"]) {
    const sel = selectKernels(kernels);
    log(sel.message);
    const model = LlamaModel.load(dir);
    info ??= {
      family: model.family,
      parameters: countLlamaParams(model.config),
      threads: sel.matmul ? `${process.env.RLVR_THREADS ?? "default"} (RLVR_THREADS)` : "tfjs stock",
    };
    const { prompts, ids, adv } = hfBenchData(model.vocabSize, { sequences, promptTokens, updateBatch, updateLength });
    const timeParts = (model: LlamaModel) => {
      let t0 = performance.now();
      let c0 = process.cpuUsage();
      const { completions } = model.generate(
        prompts,
        { temperature: 1, topP: 1, maxNewTokens: newTokens, stopIds: [] },
        makeRng(1, "bench-hf-sample"),
      );
      const samplingSeconds = (performance.now() - t0) / 1000;
      const samplingCpuSeconds = cpuSince(c0);
      const samplingTokens = completions.reduce((a, c) => a + c.length, 0);
      log(
        `  sampling ${sequences} x ${newTokens}: ${samplingSeconds.toFixed(1)} s (CPU ${samplingCpuSeconds.toFixed(1)} s), ${(samplingTokens / samplingSeconds).toFixed(1)} tokens/s; peak RSS ${peakRssMB()} MB`,
      );
      // one GRPO-like update: Σ advantage · log p + 0.001 · entropy over every token, gradients summed
      let grads: Record<string, tf.Tensor> | null = null;
      t0 = performance.now();
      c0 = process.cpuUsage();
      for (let m = 0; m < timedMicro; m++) {
        const rows = ids.slice(m * microBatch, (m + 1) * microBatch);
        const [inputs, targets] = shifted(rows);
        const a = tf.tensor2d(adv.slice(m * microBatch, (m + 1) * microBatch), [rows.length, 1]);
        const { value, grads: g } = tf.variableGrads(() => {
          const { logp, entropy } = model.tokenLogProbs(inputs, targets, { temperature: 1, entropy: true });
          return logp
            .mul(a)
            .sum()
            .add(entropy!.sum().mul(0.001))
            .div(updateBatch * updateLength) as tf.Scalar;
        });
        value.dataSync();
        if (grads === null) grads = g;
        else {
          const sum: Record<string, tf.Tensor> = {};
          for (const k of Object.keys(g)) sum[k] = grads[k].add(g[k]);
          tf.dispose([...Object.values(grads), ...Object.values(g)]);
          grads = sum;
        }
        tf.dispose([value, inputs, targets, a]);
        log(
          `  update micro-batch ${m + 1}/${timedMicro} of ${nMicro}: ${((performance.now() - t0) / 1000).toFixed(1)} s`,
        );
      }
      Object.values(grads ?? {}).forEach((g) => g.dataSync());
      const updateSeconds = (((performance.now() - t0) / 1000) * nMicro) / timedMicro;
      const updateCpuSeconds = (cpuSince(c0) * nMicro) / timedMicro;
      tf.dispose(Object.values(grads ?? {}));
      t0 = performance.now();
      c0 = process.cpuUsage();
      for (let m = 0; m < timedMicro; m++) {
        const rows = ids.slice(m * microBatch, (m + 1) * microBatch);
        tf.tidy(() => {
          const [inputs, targets] = shifted(rows);
          model.tokenLogProbs(inputs, targets, { temperature: 1, entropy: false }).logp.dataSync();
        });
      }
      const forwardSeconds = (((performance.now() - t0) / 1000) * nMicro) / timedMicro;
      const forwardCpuSeconds = (cpuSince(c0) * nMicro) / timedMicro;
      log(
        `  update [${updateBatch}, ${updateLength}] in micro-batches of ${microBatch}: ${updateSeconds.toFixed(1)} s forward+backward (CPU ${updateCpuSeconds.toFixed(1)} s), ${forwardSeconds.toFixed(1)} s forward only${timedMicro < nMicro ? ` (${timedMicro} of ${nMicro} micro-batches timed, scaled)` : ""}; peak RSS ${peakRssMB()} MB`,
      );
      return {
        samplingSeconds: round(samplingSeconds),
        samplingTokens,
        samplingTokensPerSecond: round(samplingTokens / samplingSeconds),
        updateSeconds: round(updateSeconds),
        updateMicroBatchesTimed: timedMicro,
        forwardSeconds: round(forwardSeconds),
        samplingCpuSeconds: round(samplingCpuSeconds),
        updateCpuSeconds: round(updateCpuSeconds),
        forwardCpuSeconds: round(forwardCpuSeconds),
      };
    };
    const part = opts.parts === false ? null : timeParts(model);
    model.dispose();
    const grpoStep = opts.grpoStep
      ? timeGrpoStep(dir, { sequences, newTokens, promptTokens, microBatch }, log)
      : undefined;
    results.push({ kernels, ...(part ?? {}), peakRssMB: peakRssMB(), ...(grpoStep ? { grpoStep } : {}) });
  }
  return {
    checkpoint: dir,
    ...info!,
    backend: tf.getBackend(),
    shape: { sequences, newTokens, promptTokens, updateBatch, updateLength, microBatch },
    results,
    samplingTokensPerSecond: results[0].samplingTokensPerSecond ?? null,
    updateSeconds: results[0].updateSeconds ?? null,
    grpoStepSeconds: results[0].grpoStep?.seconds ?? null,
    peakRssMB: Math.max(...results.map((r) => r.peakRssMB)),
  };
}

const round = (x: number) => Math.round(x * 100) / 100;

/** Rows of ids as a next-token batch: inputs = each row but its last id, targets = each row but its first. */
function shifted(rows: number[][]): [tf.Tensor2D, tf.Tensor2D] {
  const ids = (f: (r: number[]) => number[]) => tf.tensor2d(rows.map(f), undefined, "int32");
  return [ids((r) => r.slice(0, -1)), ids((r) => r.slice(1))];
}

/** The bench's inputs, the same for every variant (and for the PyTorch peer, bench/peers.ts): prompts
 * of promptTokens ± 25% random ids (so that left padding is exercised as in a real batch), and the
 * update's [updateBatch, updateLength + 1] ids and one advantage per row. */
export function hfBenchData(
  V: number,
  s: { sequences: number; promptTokens: number; updateBatch: number; updateLength: number },
): { prompts: number[][]; ids: number[][]; adv: number[] } {
  const rng = makeRng(1, "bench-hf-ids");
  const prompts = Array.from({ length: s.sequences }, () =>
    Array.from({ length: Math.max(1, s.promptTokens + rng.int(-s.promptTokens >> 2, s.promptTokens >> 2)) }, () =>
      rng.int(0, V - 1),
    ),
  );
  const ids = Array.from({ length: s.updateBatch }, () =>
    Array.from({ length: s.updateLength + 1 }, () => rng.int(0, V - 1)),
  );
  const adv = Array.from({ length: s.updateBatch }, () => rng.next() * 2 - 1);
  return { prompts, ids, adv };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (name: string): number | undefined => (arg(name) === undefined ? undefined : Number(arg(name)));
  const asJson = argv.includes("--json");
  const log = (s: string) => (asJson ? process.stderr : process.stdout).write(s + "\n");
  const backend = await selectBackend((arg("backend") ?? "wasm") as BackendName);
  log(
    `backend ${backend.name}; ${os.cpus().length} cores, load average ${os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(" ")}`,
  );
  const result = await benchHfModel({
    checkpoint: arg("checkpoint"),
    preset: arg("preset"),
    kernels: arg("kernels")?.split(",") as ("fast" | "stock" | "fused")[] | undefined,
    sequences: num("sequences"),
    newTokens: num("new-tokens"),
    promptTokens: num("prompt-tokens"),
    updateBatch: num("update-batch"),
    updateLength: num("update-length"),
    microBatch: num("micro-batch"),
    updateMicroBatches: num("update-micro-batches"),
    grpoStep: argv.includes("--grpo-step"),
    parts: arg("parts") !== "false",
    log,
  });
  if (asJson) process.stdout.write(JSON.stringify(result) + "\n");
}
