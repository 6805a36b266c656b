// The GRPO step (src/rl/trainer.ts). responseBatch: inputs, targets and the response mask of a
// padded batch, written out by hand. stepOn: one step on a tiny GPT first taught to answer a prompt
// with `####3`, `####5` or `####8`, rewarded for `5` by the verifier: afterwards every rewarded
// completion is more likely and every penalised one less likely, every parameter tensor moved, the
// frozen reference did not, and no tensor is left behind.
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../src/engine/backend.js";
import { makeRng } from "../src/engine/rng.js";
import { GptLM } from "../src/model/gptLM.js";
import { rollout } from "../src/task/rollout.js";
import { organismTask } from "../src/task/task.js";
import {
  disposeParams,
  initParams,
  lmLoss,
  resolveModelConfig,
  tokenLogProbs,
  type ModelConfig,
  type Params,
} from "../src/model/gpt.js";
import { AdamW, DEFAULT_ADAMW } from "../src/model/optim.js";
import { GrpoTrainer, microBatches, responseBatch, type GrpoConfig } from "../src/rl/trainer.js";
import { BOS_ID, DEFAULT_TOKENIZER_DIR, EOS_ID, loadTokenizer, PAD_ID } from "../src/text/tokenizer.js";
import { promptText } from "../src/world/corpus.js";

describe("responseBatch", () => {
  // P, B, E: the pad, BOS and EOS ids; prompt tokens 10-15, completion tokens 20-24
  const [P, B, E] = [PAD_ID, BOS_ID, EOS_ID];

  it("prompts of different lengths, finished and unfinished, an empty completion: inputs, targets, mask", () => {
    const got = responseBatch(
      [
        [B, 10, 11],
        [B, 12],
        [B, 13, 14, 15],
        [B, 10],
      ],
      [[20, 21], [22, 23, 24], [], [20]],
      [E, null, E, null],
      P,
    );
    // sequences: B 10 11 20 21 E | B 12 22 23 24 | B 13 14 15 E | B 10 20; the longest has 6 tokens: T = 5
    expect(got.inputs).toEqual([
      [B, 10, 11, 20, 21],
      [B, 12, 22, 23, P],
      [B, 13, 14, 15, P],
      [B, 10, P, P, P],
    ]);
    expect(got.targets).toEqual([
      [10, 11, 20, 21, E],
      [12, 22, 23, 24, P],
      [13, 14, 15, E, P],
      [10, 20, P, P, P],
    ]);
    // 1 where the target is a response token or the EOS that ended it; prompt and padding 0
    expect(got.mask).toEqual([
      [0, 0, 1, 1, 1],
      [0, 1, 1, 1, 0],
      [0, 0, 0, 1, 0],
      [0, 1, 0, 0, 0],
    ]);
  });

  it("a model without BOS and with another stop token and pad id (a Hugging Face family)", () => {
    // prefix 7 8 (no BOS), completion 30 31 ended by stop token 99; pad 0
    expect(responseBatch([[7, 8], [7]], [[30, 31], [30]], [99, null], 0)).toEqual({
      inputs: [
        [7, 8, 30, 31],
        [7, 0, 0, 0],
      ],
      targets: [
        [8, 30, 31, 99],
        [30, 0, 0, 0],
      ],
      mask: [
        [0, 1, 1, 1],
        [1, 0, 0, 0],
      ],
    });
  });

  it("without EOS the last response token is the last target; with EOS one more position counts", () => {
    const open = responseBatch([[B, 10, 11]], [[20, 21, 22]], [null], P);
    expect(open).toEqual({
      inputs: [[B, 10, 11, 20, 21]],
      targets: [[10, 11, 20, 21, 22]],
      mask: [[0, 0, 1, 1, 1]],
    });
    const closed = responseBatch([[B, 10, 11]], [[20, 21, 22]], [E], P);
    expect(closed).toEqual({
      inputs: [[B, 10, 11, 20, 21, 22]],
      targets: [[10, 11, 20, 21, 22, E]],
      mask: [[0, 0, 1, 1, 1, 1]],
    });
    // an unfinished empty completion contributes no token (B 10 | B 10 11 20 E: T = 4)
    expect(
      responseBatch(
        [
          [B, 10],
          [B, 10, 11],
        ],
        [[], [20]],
        [null, E],
        P,
      ).mask,
    ).toEqual([
      [0, 0, 0, 0],
      [0, 0, 1, 1],
    ]);
  });
});

describe("microBatches", () => {
  it("row ranges of at most `size` rows; 0 or a size ≥ n is one batch", () => {
    expect(microBatches(12, 5)).toEqual([
      [0, 5],
      [5, 10],
      [10, 12],
    ]);
    expect(microBatches(12, 0)).toEqual([[0, 12]]);
    expect(microBatches(12, 12)).toEqual([[0, 12]]);
  });
});

describe("GrpoTrainer.stepOn on a tiny GPT", () => {
  const tok = loadTokenizer(DEFAULT_TOKENIZER_DIR);
  const example = { prompt: "7-2", answer: "5" };
  const taught = ["####3", "####5", "####8"];
  const rollouts = 12;
  let cfg: ModelConfig;
  let start: Params;

  /** a copy of params, trainable or frozen */
  const copy = (params: Params, trainable: boolean): Params =>
    Object.fromEntries(Object.entries(params).map(([k, v]) => [k, tf.variable(v, trainable)]));
  const values = (params: Params) =>
    Object.fromEntries(Object.entries(params).map(([k, v]) => [k, v.dataSync().slice()]));

  beforeAll(async () => {
    await selectBackend("cpu");
    cfg = resolveModelConfig("gpt-nano", tok.vocabSize, { contextLength: 16, layers: 1, width: 32, heads: 2 });
    // teach a fresh model the three answers, equally often, by next-token loss on the responses
    start = initParams(cfg, 1);
    const prompt = [BOS_ID, ...tok.encode(promptText(example.prompt))];
    const b = responseBatch(
      taught.map(() => prompt),
      taught.map((t) => tok.encode(t)),
      taught.map(() => EOS_ID),
      PAD_ID,
    );
    const opt = new AdamW(start, DEFAULT_ADAMW);
    const names = new Map(Object.entries(start).map(([k, v]) => [v.name, k]));
    const [inputs, targets] = [b.inputs, b.targets].map((x) => tf.tensor2d(x, undefined, "int32"));
    const mask = tf.tensor2d(b.mask);
    for (let i = 0; i < 60; i++) {
      const { value, grads } = tf.variableGrads(() => lmLoss(start, cfg, inputs, targets, mask));
      opt.apply(Object.fromEntries(Object.entries(grads).map(([k, g]) => [names.get(k)!, g])), 1e-2);
      tf.dispose([value, ...Object.values(grads)]);
    }
    tf.dispose([inputs, targets, mask]);
    opt.dispose();
  });

  afterAll(() => disposeParams(start));

  it("micro-batches with accumulated gradients give the whole batch's update and statistics (every aggregation)", () => {
    for (const aggregation of ["token-mean", "seq-mean-token-mean", "constant"] as const) {
      const after: Record<string, ArrayLike<number>>[] = [];
      const losses: number[][] = [];
      for (const microBatch of [0, 5]) {
        const policy = copy(start, true);
        const reference = copy(start, false);
        const grpo: GrpoConfig = {
          copies: 1,
          rollouts,
          temperature: 1,
          topP: 1,
          maxNewTokens: 8,
          learningRate: 3e-3,
          weightDecay: 0.01,
          beta1: 0.9,
          beta2: 0.99,
          gradClip: 1,
          updatesPerBatch: 2,
          microBatch,
          reward: "outcome",
          advantage: { std: "sample", eps: 1e-6 },
          loss: {
            clipEps: 0.2,
            klCoef: 0.05,
            entropyCoef: 0.01,
            aggregation,
            constantLength: 8,
            logprobTemperature: "rollout",
            klClamp: 10,
            pgCoef: 1,
          },
        };
        const trainer = new GrpoTrainer(
          new GptLM(policy, cfg),
          new GptLM(reference, cfg),
          organismTask(tok),
          grpo,
          null,
        );
        const tensors = tf.memory().numTensors;
        const st = trainer.stepOn([example], makeRng(5, "micro"));
        expect(tf.memory().numTensors).toBe(tensors);
        losses.push([st.loss, st.pgLoss, st.kl, st.entropy, st.clipFrac, st.gradNorm]);
        after.push(values(policy));
        trainer.optimizer.dispose();
        disposeParams(policy);
        disposeParams(reference);
      }
      losses[0].forEach((v, i) =>
        expect(Math.abs(losses[1][i] - v), `${aggregation} stat ${i}`).toBeLessThan(1e-5 * Math.max(1, Math.abs(v))),
      );
      // two AdamW steps at lr 3e-3: parameters agree to within 1 % of one step (Adam amplifies the
      // rounding of near-zero gradients, so a looser bound than the statistics)
      for (const [k, v] of Object.entries(after[0]))
        Array.from(v).forEach((x, i) =>
          expect(Math.abs(after[1][k][i] - x), `${aggregation} ${k}[${i}]`).toBeLessThan(3e-5),
        );
    }
  });

  for (const updatesPerBatch of [1, 2]) {
    it(`${updatesPerBatch} update(s) per batch: rewarded completions rise, penalised ones fall, every parameter moves, the reference does not, no tensor is left`, () => {
      const policy = copy(start, true);
      const reference = copy(start, false);
      const grpo: GrpoConfig = {
        copies: 1,
        rollouts,
        temperature: 1,
        topP: 1,
        maxNewTokens: 8,
        learningRate: 3e-3,
        weightDecay: 0, // every change below comes from the gradient
        beta1: 0.9,
        beta2: 0.99,
        gradClip: 1,
        updatesPerBatch,
        microBatch: 0,
        reward: "outcome",
        advantage: { std: "population", eps: 1e-6 },
        loss: {
          clipEps: 0.2,
          klCoef: 0.001,
          entropyCoef: 0.001,
          aggregation: "token-mean",
          constantLength: 8,
          logprobTemperature: "rollout",
          klClamp: 10,
          pgCoef: 1,
        },
      };
      const task = organismTask(tok);
      const trainer = new GrpoTrainer(new GptLM(policy, cfg), new GptLM(reference, cfg), task, grpo, null);
      try {
        // the same draws as the step's own rollouts: the same decoder, weights and seeded stream
        const seed = 3;
        const scored = rollout(
          new GptLM(policy, cfg),
          task,
          Array.from({ length: rollouts }, () => example),
          { temperature: 1, topP: 1, maxNewTokens: 8 },
          makeRng(seed, "stepOn"),
        );
        const rewards = scored.map((s) => s.reward);
        expect(rewards, scored.map((s) => s.completion).join(" ")).toContain(1);
        expect(rewards).toContain(0);
        const batch = responseBatch(
          scored.map((s) => s.promptIds),
          scored.map((s) => s.ids),
          scored.map((s) => s.stopId),
          task.padId,
        );
        /** log-probability of each rollout's response (and its EOS) under params */
        const logProb = (params: Params): number[] =>
          tf.tidy(() => {
            const [inputs, targets] = [batch.inputs, batch.targets].map((x) => tf.tensor2d(x, undefined, "int32"));
            const { logp } = tokenLogProbs(params, cfg, inputs, targets);
            return Array.from(logp.mul(tf.tensor2d(batch.mask)).sum(1).dataSync());
          });
        const before = logProb(policy);
        const policyBefore = values(policy);
        const referenceBefore = values(reference);
        const tensors = tf.memory().numTensors;

        const stats = trainer.stepOn([example], makeRng(seed, "stepOn"));

        expect(tf.memory().numTensors).toBe(tensors);
        expect(stats.completions).toEqual(scored.map((s) => s.completion));
        expect(stats.meanReward).toBeCloseTo(rewards.filter((r) => r === 1).length / rollouts, 12);
        expect(stats.groupsWithSignal).toBe(1);
        const after = logProb(policy);
        scored.forEach((s, i) => {
          const what = `rollout ${i} ${JSON.stringify(s.completion)} (reward ${s.reward}): ${before[i]} -> ${after[i]}`;
          if (s.reward === 1) expect(after[i], what).toBeGreaterThan(before[i]);
          else expect(after[i], what).toBeLessThan(before[i]);
        });
        const policyAfter = values(policy);
        for (const [k, v] of Object.entries(policyBefore))
          expect(
            v.some((x, i) => x !== policyAfter[k][i]),
            `${k} moved`,
          ).toBe(true);
        const referenceAfter = values(reference);
        for (const [k, v] of Object.entries(referenceBefore)) expect(referenceAfter[k], k).toEqual(v);
      } finally {
        trainer.optimizer.dispose();
        disposeParams(policy);
        disposeParams(reference);
      }
    });
  }
});
