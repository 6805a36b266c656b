// The bench's PyTorch peer (bench/peers.ts, bench/peers/) against the project on the organism
// checkpoint: log-probs and entropies to 1e-4, greedy KV-cache generation token for token, and the
// GRPO loss and its gradient's norm on the same batch, with the tfjs graph and with the fused native
// forward/backward (`--kernels fused`, where the addon is built). Runs wherever a python3 imports torch
// (Debian: apt-get install python3-torch); elsewhere, CI included, it is skipped with the reason
// (torch is too heavy for CI: .ci/run does not install it).
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { maxAbsDiff, TorchPeer } from "../bench/peers.js";
import { selectBackend } from "../src/engine/backend.js";
import { makeRng } from "../src/engine/rng.js";
import { GrpoSchema } from "../src/experiment/schema.js";
import { loadCheckpoint } from "../src/model/checkpoint.js";
import { hostWeights } from "../src/model/decode.js";
import { sample, selectKernels } from "../src/model/generate.js";
import { nativeAddon } from "../src/engine/native.js";
import { GptLM } from "../src/model/gptLM.js";
import { grpoLossTf } from "../src/rl/loss.js";
import { responseBatch } from "../src/rl/trainer.js";
import { BOS_ID, EOS_ID, loadTokenizer, PAD_ID } from "../src/text/tokenizer.js";
import { promptText } from "../src/world/corpus.js";

const BASE = "data/models/base";
const started = await TorchPeer.start(1);
const peer = typeof started === "string" ? null : started;
const skipped = typeof started === "string" ? `skipped: ${started}` : "";
if (skipped) console.warn(`test/torchPeer.test.ts ${skipped}`);

let ck: ReturnType<typeof loadCheckpoint>;
const tok = loadTokenizer("data/tokenizer");
const prefix = [BOS_ID, ...tok.encode(promptText("12*2"))];

beforeAll(async () => {
  await selectBackend("wasm");
  ck = loadCheckpoint(BASE);
  await peer?.call("gpt.load", { dir: BASE });
});
afterAll(() => {
  peer?.close();
  Object.values(ck.params).forEach((v) => v.dispose());
  selectKernels("auto");
});

/** 16 of our sampled rollouts of 12*2 as a padded batch, as the GRPO update sees them */
function rolloutBatch() {
  selectKernels("stock");
  const out = sample(
    hostWeights(ck.params, ck.cfg),
    Array.from({ length: 16 }, () => prefix.slice(1)),
    { temperature: 1, topP: 1, maxNewTokens: 80 },
    makeRng(11, "torch-peer-test"),
  );
  return responseBatch(
    out.completions.map(() => prefix),
    out.completions,
    out.finished.map((f) => (f ? EOS_ID : null)),
    PAD_ID,
  );
}

/** the kernel sets to check: the fused one where the native addon loads */
const KERNEL_SETS = nativeAddon() ? (["stock", "fast", "fused"] as const) : (["stock", "fast"] as const);

/** log-probs and entropies of the base checkpoint through the model seam (GptLM: the fused path under fused) */
function ourLogProbs(inputs: number[][], targets: number[][], temperature = 1) {
  return new GptLM(ck.params, ck.cfg).tokenLogProbs(
    tf.tensor2d(inputs, undefined, "int32"),
    tf.tensor2d(targets, undefined, "int32"),
    { temperature, entropy: true },
  );
}

describe.skipIf(!peer)(`PyTorch peer on the organism checkpoint ${skipped}`, () => {
  for (const kernels of KERNEL_SETS)
    for (const temperature of [1, 0.7])
      it(`log-probs and entropies agree to 1e-4 (${kernels} kernels, temperature ${temperature})`, async () => {
        const b = rolloutBatch();
        selectKernels(kernels);
        const ours = tf.tidy(() => {
          const r = ourLogProbs(b.inputs, b.targets, temperature);
          return { logp: r.logp.arraySync(), entropy: r.entropy!.arraySync() };
        });
        const theirs = await peer!.call<{ logp: number[][]; entropy: number[][] }>("gpt.logprobs", {
          inputs: b.inputs,
          targets: b.targets,
          temperature,
        });
        expect(maxAbsDiff(ours.logp, theirs.logp)).toBeLessThan(1e-4);
        expect(maxAbsDiff(ours.entropy, theirs.entropy)).toBeLessThan(1e-4);
      });

  it("greedy generation with the KV cache gives our tokens", async () => {
    selectKernels("stock");
    const prompts = ["12*2", "7+5", "3*4-2", "12*2+35*4-1"].map((q) => tok.encode(promptText(q)));
    for (const p of prompts) {
      const ours = sample(hostWeights(ck.params, ck.cfg), [p], { temperature: 0, topP: 1, maxNewTokens: 60 }, null);
      const theirs = await peer!.call<{ completions: number[][]; finished: boolean[] }>("gpt.generate", {
        prompts: [[BOS_ID, ...p]],
        maxNewTokens: 60,
        temperature: 0,
        topP: 1,
        eosId: EOS_ID,
        seed: 1,
      });
      expect(theirs.completions).toEqual(ours.completions);
      expect(theirs.finished).toEqual(ours.finished);
    }
  });

  for (const kernels of KERNEL_SETS.filter((k) => k !== "fast"))
    it(`the GRPO loss (default config) and its gradient's norm agree on the same batch (${kernels} kernels)`, async () => {
      const b = rolloutBatch();
      selectKernels(kernels);
      const loss = GrpoSchema.parse({}).loss;
      const adv = Array.from({ length: b.inputs.length }, (_, i) => ((i * 7) % 5) - 2);
      const { value, grads } = tf.variableGrads(() => {
        const r = ourLogProbs(b.inputs, b.targets);
        // the old and the reference log-probs are the policy's own (one update per batch, reference = base)
        const old = tf.tensor2d(r.logp.dataSync(), r.logp.shape);
        return grpoLossTf(
          {
            logp: r.logp,
            oldLogp: old,
            refLogp: old,
            entropy: r.entropy!,
            adv: tf.tensor1d(adv),
            mask: tf.tensor2d(b.mask),
          },
          loss,
        ).loss;
      });
      const ourLoss = value.dataSync()[0];
      const ourNorm = Math.sqrt(
        Object.values(grads).reduce((a, g) => a + (g.square().sum().dataSync()[0] as number), 0),
      );
      tf.dispose([value, ...Object.values(grads)]);
      const theirs = await peer!.call<{ loss: number; gradNorm: number }>("gpt.grpo.lossGrad", {
        inputs: b.inputs,
        targets: b.targets,
        mask: b.mask,
        adv,
        loss,
      });
      expect(Math.abs(theirs.loss - ourLoss)).toBeLessThan(1e-5);
      expect(Math.abs(theirs.gradNorm - ourNorm) / ourNorm).toBeLessThan(1e-4);
    });
});
