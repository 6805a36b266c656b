// Pretraining on the corpus: next-token loss on solution tokens only (the prompt is context),
// AdamW with linear warmup and cosine decay, length-bucketed batches (little padding), all
// draws from seeded streams so the same seed gives the same model on the same backend.
import * as tf from "@tensorflow/tfjs";
import { makeRng } from "../engine/rng.js";
import { corpusStream, type CorpusConfig, type CorpusItem } from "../world/corpus.js";
import { BOS_ID, EOS_ID, PAD_ID, type CharTokenizer } from "../text/tokenizer.js";
import { lmLoss, type ModelConfig, type Params } from "./gpt.js";
import { AdamW } from "./optim.js";

export interface PretrainConfig {
  seed: number;
  steps: number;
  batchSize: number;
  lr: number;
  warmup: number;
  /** batches drawn together and bucketed by length */
  bucket: number;
  weightDecay: number;
  /** `uniform`: every solution token weighs the same across batches (loss = sum / (batch × 32));
   * `batch-mean`: token mean within each batch — with length-bucketed batches this overweights
   * short (hasty) solutions; kept to reproduce checkpoints made with it */
  tokenWeighting: "uniform" | "batch-mean";
}

export interface StepReport {
  step: number;
  loss: number;
  lr: number;
  tokens: number;
  ms: number;
}

/** Encodes corpus items into a padded batch: inputs, targets and a mask over solution tokens. */
export function encodeBatch(
  items: CorpusItem[],
  tok: CharTokenizer,
  context: number,
): { inputs: number[][]; targets: number[][]; mask: number[][]; T: number } {
  const seqs = items.map((it) => {
    const p = tok.encode(it.prompt);
    const c = tok.encode(it.completion);
    return { ids: [BOS_ID, ...p, ...c, EOS_ID].slice(0, context + 1), start: p.length + 1 };
  });
  const T = Math.max(...seqs.map((s) => s.ids.length)) - 1;
  const inputs: number[][] = [];
  const targets: number[][] = [];
  const mask: number[][] = [];
  for (const s of seqs) {
    const inp = new Array(T).fill(PAD_ID);
    const tgt = new Array(T).fill(PAD_ID);
    const m = new Array(T).fill(0);
    for (let t = 0; t < s.ids.length - 1; t++) {
      inp[t] = s.ids[t];
      tgt[t] = s.ids[t + 1];
      m[t] = t + 1 >= s.start ? 1 : 0;
    }
    inputs.push(inp);
    targets.push(tgt);
    mask.push(m);
  }
  return { inputs, targets, mask, T };
}

export function learningRate(step: number, cfg: Pick<PretrainConfig, "lr" | "warmup" | "steps">): number {
  if (step < cfg.warmup) return (cfg.lr * (step + 1)) / cfg.warmup;
  const progress = (step - cfg.warmup) / Math.max(1, cfg.steps - cfg.warmup);
  return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
}

/** Runs pretraining; `onStep` is called after every step (for progress and periodic evaluation). */
export async function pretrain(
  params: Params,
  model: ModelConfig,
  tok: CharTokenizer,
  corpus: CorpusConfig,
  cfg: PretrainConfig,
  exclude: ReadonlySet<string>,
  onStep: (r: StepReport) => Promise<void> | void,
): Promise<void> {
  const stream = corpusStream(corpus, exclude);
  const rng = makeRng(cfg.seed, "pretrain/batches");
  const opt = new AdamW(params, { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: cfg.weightDecay, gradClip: 1 });
  const names = new Map(Object.entries(params).map(([k, v]) => [v.name, k]));
  let queue: CorpusItem[][] = [];
  for (let step = 0; step < cfg.steps; step++) {
    if (queue.length === 0) {
      const pool: CorpusItem[] = [];
      for (let i = 0; i < cfg.batchSize * cfg.bucket; i++) pool.push(stream.next().value as CorpusItem);
      const len = (it: CorpusItem) => it.prompt.length + it.completion.length;
      pool.sort((a, b) => len(a) - len(b));
      for (let i = 0; i < cfg.bucket; i++) queue.push(pool.slice(i * cfg.batchSize, (i + 1) * cfg.batchSize));
      for (let i = queue.length - 1; i > 0; i--) {
        const j = rng.int(0, i);
        [queue[i], queue[j]] = [queue[j], queue[i]];
      }
    }
    const batch = encodeBatch(queue.pop()!, tok, model.contextLength);
    const t0 = performance.now();
    const lr = learningRate(step, cfg);
    const inputs = tf.tensor2d(batch.inputs, undefined, "int32");
    const targets = tf.tensor2d(batch.targets, undefined, "int32");
    const mask = tf.tensor2d(batch.mask, undefined, "float32");
    const normaliser = cfg.tokenWeighting === "uniform" ? cfg.batchSize * 32 : undefined;
    const { value, grads } = tf.variableGrads(() => lmLoss(params, model, inputs, targets, mask, normaliser));
    const named: Record<string, tf.Tensor> = {};
    for (const [vn, g] of Object.entries(grads)) named[names.get(vn)!] = g;
    opt.apply(named, lr);
    const loss = normaliser
      ? (value.dataSync()[0] * normaliser) /
        Math.max(
          1,
          batch.mask.flat().reduce((a, b) => a + b, 0),
        )
      : value.dataSync()[0];
    tf.dispose([value, inputs, targets, mask, ...Object.values(grads)]);
    if (!Number.isFinite(loss)) throw new Error(`pretraining diverged at step ${step}: loss ${loss}`);
    await onStep({ step: step + 1, loss, lr, tokens: batch.inputs.length * batch.T, ms: performance.now() - t0 });
  }
  opt.dispose();
}
