// Steering on the Llama-style families (llama, qwen2, qwen3) through the model seam, on tiny random
// checkpoints: the residual read (CausalLM.activations) is the residual stream the logits come from and
// carries the addition from its block on; a direction planted in a tiny Llama and a tiny Qwen2 is
// recovered by the difference of means (cos > 0.9, and not one position late); greedy generation
// sees the vector; no tensor growth across a steered generation and residual reads; and `npm run
// steer` on a Hugging Face checkpoint: keyword labels, `apply` at scale 0 = `npm run eval` to the bit,
// refusals that list the valid behaviours, blocks and sources.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../src/engine/backend.js";
import { makeRng } from "../src/engine/rng.js";
import { LlamaModel } from "../src/model/llama.js";
import { loadModel } from "../src/model/load.js";
import { writeRandomCheckpoint } from "../src/model/llamaRandom.js";
import { taskFor } from "../src/task/forModel.js";
import { rollout } from "../src/task/rollout.js";
import { keywordLabeller } from "../src/eval/spans.js";
import {
  activationShiftOf,
  collectActivationsOf,
  completionRowsOf,
  layerEffectsOf,
  meanKlOf,
  steeringVectors,
  type ModelSequence,
} from "../src/analysis/steering.js";
import { cosine } from "../src/analysis/steering-stats.js";
import { TINY, TINY_INIT, tmpDir } from "./fixtures/hfTiny.js";
import { writeLlamaStyleTokenizer } from "./fixtures/hfTokenizers.js";

const NODE = process.execPath;
const cli = (script: string, args: string[]) =>
  spawnSync(NODE, ["--import", "tsx", `src/cli/${script}.ts`, ...args, "--backend", "cpu"], {
    encoding: "utf8",
    env: { ...process.env, RLVR_THREADS: "1" },
  });

/** the same, not waiting: several commands at once */
const cliAsync = (script: string, args: string[]) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const p = spawn(NODE, ["--import", "tsx", `src/cli/${script}.ts`, ...args, "--backend", "cpu"], {
      env: { ...process.env, RLVR_THREADS: "1" },
    });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("close", (status) => resolve({ status, stdout, stderr }));
  });

const tmp: string[] = [];
/** a tiny Llama with the Llama-style byte-level tokenizer (ids 0-255 bytes, 265 <|begin_of_text|>, 266
 * <|end_of_text|>, 269 <|eot_id|>) and its chat template: a checkpoint taskFor and npm run eval take */
let withTokenizer = "";
beforeAll(async () => {
  await selectBackend("cpu");
  const root = tmpDir("steer-llama");
  tmp.push(root);
  withTokenizer = path.join(root, "tiny-llama");
  writeRandomCheckpoint(
    withTokenizer,
    {
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      vocab_size: 272,
      hidden_size: 32,
      intermediate_size: 48,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 128,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: true,
      bos_token_id: 265,
      eos_token_id: [266, 269],
    },
    TINY_INIT,
  );
  writeLlamaStyleTokenizer(withTokenizer);
});
afterAll(() => {
  for (const d of tmp) fs.rmSync(d, { recursive: true, force: true });
});

function tiny(name: string, std = TINY_INIT.std): LlamaModel {
  const dir = tmpDir(`steer-${name}`);
  tmp.push(dir);
  writeRandomCheckpoint(dir, TINY[name], { ...TINY_INIT, std });
  return LlamaModel.load(dir);
}

/** reads activations of one right-padded batch back: residuals per layer and logits, as arrays */
function read(lm: LlamaModel, ids: number[][], layers: number[], logits = true) {
  const input = tf.tensor2d(ids, undefined, "int32");
  const out = lm.activations(input, { layers, logits });
  const res = {
    residuals: out.residuals.map((t) => t.dataSync() as Float32Array),
    logits: out.logits ? (out.logits.dataSync() as Float32Array) : null,
  };
  tf.dispose([input, ...out.residuals, ...(out.logits ? [out.logits] : [])]);
  return res;
}

const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
};

describe("the residual read of the Llama family (CausalLM.activations)", () => {
  it("the last block's residual through the final norm and output layer gives the logits; they are tokenLogProbs'", () => {
    for (const name of ["llama3-untied", "qwen2-tied"]) {
      const lm = tiny(name);
      const rng = makeRng(1, "ids");
      const ids = [0, 1].map(() => Array.from({ length: 7 }, () => rng.int(0, lm.vocabSize - 1)));
      const L = lm.numLayers - 1;
      const { residuals, logits } = read(lm, ids, [L]);
      const C = lm.hiddenSize;
      const V = lm.vocabSize;
      expect(residuals[0].length).toBe(2 * 7 * C);
      const cfg = lm.config;
      const byHand = tf.tidy(() => {
        const x = tf.tensor2d(residuals[0], [14, C]);
        const h = x.mul(x.square().mean(-1, true).add(cfg.rmsNormEps).rsqrt()).mul(lm.params["model.norm.weight"]);
        const w = cfg.tieWordEmbeddings ? lm.params["model.embed_tokens.weight"] : lm.params["lm_head.weight"];
        return tf.matMul(h, w, false, true).dataSync();
      });
      expect(maxAbs(byHand, logits!)).toBeLessThan(1e-4);
      // log-softmax at the next tokens = the training forward's log-probs (row b*T + t predicts t + 1)
      const targets = ids.map((row) => [...row.slice(1), 0]);
      const r = lm.tokenLogProbs(tf.tensor2d(ids, undefined, "int32"), tf.tensor2d(targets, undefined, "int32"), {
        temperature: 1,
        entropy: false,
      });
      const logp = r.logp.arraySync();
      r.logp.dispose();
      for (let b = 0; b < 2; b++)
        for (let t = 0; t < 7; t++) {
          const row = logits!.subarray((b * 7 + t) * V, (b * 7 + t + 1) * V);
          const m = Math.max(...row);
          const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
          expect(Math.abs(row[targets[b][t]] - lse - logp[b][t])).toBeLessThan(1e-4);
        }
      lm.dispose();
    }
  });

  it("the addition: blocks before it unchanged to the bit, its block moved by exactly vector × scale; bad blocks refused", () => {
    const lm = tiny("qwen3-untied"); // 3 blocks
    const ids = [[3, 9, 27, 81 % lm.vocabSize, 5]];
    const plain = read(lm, ids, [0, 1, 2], false).residuals;
    const vector = Float32Array.from({ length: lm.hiddenSize }, (_, i) => Math.sin(i + 1));
    lm.setResidualAddition({ layer: 1, vector, scale: 2.5 });
    const steered = read(lm, ids, [0, 1, 2], false).residuals;
    lm.setResidualAddition(null);
    expect(steered[0]).toEqual(plain[0]);
    const moved = Float32Array.from(steered[1], (x, i) => x - plain[1][i]);
    const want = Float32Array.from(moved, (_, i) => vector[i % lm.hiddenSize] * 2.5);
    expect(maxAbs(moved, want)).toBeLessThan(1e-5);
    expect(maxAbs(steered[2], plain[2])).toBeGreaterThan(0.1); // the later block sees it
    expect(() => read(lm, ids, [3])).toThrow(/block 3 is out of range; this model has 3 blocks, valid: 0, 1, 2/);
    lm.dispose();
  });

  it("greedy generation under the addition is the argmax of the steered forward (the decoder takes the vector)", () => {
    const lm = tiny("llama3-untied");
    const vector = Float32Array.from({ length: lm.hiddenSize }, (_, i) => Math.cos(i));
    const prompt = [5, 17, 3, 60];
    const opts = { temperature: 0, topP: 1, maxNewTokens: 6, stopIds: [] };
    const plain = lm.generate([prompt], opts, null).completions[0];
    lm.setResidualAddition({ layer: 0, vector, scale: 4 });
    const steered = lm.generate([prompt], opts, null).completions[0];
    const seq = [...prompt, ...steered];
    const { logits } = read(lm, [seq.slice(0, -1)], []);
    lm.setResidualAddition(null);
    const V = lm.vocabSize;
    steered.forEach((tok, i) => {
      const row = Array.from(logits!.subarray((prompt.length - 1 + i) * V, (prompt.length + i) * V));
      expect(tok).toBe(row.indexOf(Math.max(...row)));
    });
    expect(steered).not.toEqual(plain);
    lm.dispose();
  });
});

describe("a direction planted in a tiny Llama and a tiny Qwen2 is recovered (cos > 0.9)", () => {
  // Completions are made of filler tokens and the keyword WAIT, which always comes right after the
  // token Z; u is added to Z's embedding. The row that predicts the keyword's first token is Z's row,
  // so the difference of means at the span starts points along u; one position late it does not.
  const FILLER = "bcdfghjklmnopqrsuvxy0123456789";
  // init std 0.1 (TINY_INIT's 0.25 makes the blocks' own output at Z's rows, a fixed offset off u, as
  // large as u); |u| = 10, about twice a row's norm: cosines 0.98-0.996, and −0.68 to −0.84 one late
  const STD = 0.1;
  const PLANT = 10;
  for (const name of ["llama3-untied", "qwen2-tied"])
    it(name, () => {
      const lm = tiny(name, STD);
      const C = lm.hiddenSize;
      // ids 1..30 filler, 31 = z, 32..35 = w a i t; 36 a BOS-like prompt start
      const Z = 31;
      const chars: Record<number, string> = { [Z]: "z", 32: "w", 33: "a", 34: "i", 35: "t", 36: "" };
      for (let i = 0; i < FILLER.length; i++) chars[i + 1] = FILLER[i];
      const decode = (ids: number[]) => ids.map((i) => chars[i]).join("");
      const rng = makeRng(5, "planted");
      const u = Float32Array.from({ length: C }, () => rng.next() - 0.5);
      const un = Math.hypot(...u);
      const emb = lm.params["model.embed_tokens.weight"];
      const rows = emb.arraySync() as number[][];
      u.forEach((x, i) => (rows[Z][i] += (PLANT * x) / un));
      emb.assign(tf.tensor2d(rows));
      const seqs: ModelSequence[] = Array.from({ length: 80 }, () => {
        const ids: number[] = [];
        const len = rng.int(8, 24);
        while (ids.length < len) {
          if (rng.next() < 0.15) ids.push(Z, 32, 33, 34, 35);
          else ids.push(rng.int(1, FILLER.length));
        }
        return { promptIds: [36, ...Array.from({ length: rng.int(1, 5) }, () => rng.int(1, FILLER.length))], ids };
      });
      const labeller = keywordLabeller({ wait: "wait" });
      const layers = Array.from({ length: lm.numLayers }, (_, i) => i);
      const task = { decode, padId: 0 };
      const stats = collectActivationsOf(lm, task, seqs, labeller, ["wait"], layers);
      const { vectors, missing } = steeringVectors(stats);
      expect(missing).toEqual([]);
      expect(vectors.map((v) => v.layer)).toEqual(layers);
      for (const v of vectors) expect(cosine(v.vector, u)).toBeGreaterThan(0.9);
      const late = {
        ...labeller,
        label: (text: string, offsets: readonly number[]) => {
          const l = labeller.label(text, offsets);
          return { present: l.present, spans: { wait: l.spans.wait.map((i) => i + 1) } };
        },
      };
      const off = steeringVectors(collectActivationsOf(lm, task, seqs, late, ["wait"], layers)).vectors;
      for (const v of off) expect(cosine(v.vector, u)).toBeLessThan(0.5);
      lm.dispose();
    });
});

describe("memory", () => {
  it("no tensor growth across a steered generation, residual reads, layer effects and an activation shift", () => {
    const lm = loadModel(withTokenizer);
    const other = loadModel(withTokenizer);
    const task = taskFor(withTokenizer);
    const items = [
      { id: "1", family: "add", prompt: "1+2", answer: "3" },
      { id: "2", family: "add", prompt: "4+4", answer: "8" },
    ];
    const vector = Float32Array.from({ length: lm.hiddenSize }, (_, i) => Math.sin(i));
    const sampling = { n: 2, temperature: 1, topP: 1, maxNewTokens: 6, seed: 1 };
    const run = () => {
      lm.setResidualAddition({ layer: 1, vector, scale: 2 });
      const rows = rollout(lm, task, items, sampling, makeRng(1, "g"));
      completionRowsOf(lm, rows, { layers: [0, 1], logits: true, padId: task.padId }, () => {});
      lm.setResidualAddition(null);
      meanKlOf(lm, rows, { layer: 0, vector, scale: 1 }, task.padId);
      layerEffectsOf(
        lm,
        task,
        items,
        [{ behaviour: "e", layer: 1, vector }],
        [0, 1],
        sampling,
        keywordLabeller({ e: "e" }),
      );
      activationShiftOf(lm, other, task.padId, rows, [0, 1]);
    };
    run(); // first call caches what it caches
    const before = tf.memory().numTensors;
    run();
    expect(tf.memory().numTensors).toBe(before);
    lm.dispose();
    other.dispose();
  });
});

describe("npm run steer on a Hugging Face checkpoint", () => {
  it("extract with keyword labels; apply at scale 0 is `npm run eval` to the bit, at scale 2 not", async () => {
    const dir = tmpDir("steer-llama-cli");
    tmp.push(dir);
    const file = path.join(dir, "v.safetensors");
    const ex = cli("steer", [
      "extract",
      "--checkpoint",
      withTokenizer,
      "--limit",
      "6",
      "--n",
      "4",
      "--max-new-tokens",
      "16",
      "--keywords",
      "e=e,wait=wait",
      "--out",
      file,
    ]);
    expect(ex.status, ex.stderr).toBe(0);
    expect(ex.stdout).toMatch(/labels: keywords \(e, wait, any case\), the default for a llama checkpoint/);
    expect(ex.stdout).toMatch(
      /source: add \(the default for a llama checkpoint; the training pool is the organism's\)/,
    );
    const meta = JSON.parse(fs.readFileSync(path.join(dir, "v.json"), "utf8"));
    expect(meta.layers).toEqual([0, 1]);
    expect(meta.width).toBe(32);
    expect(meta.labeller.kind).toBe("keywords");
    expect(meta.labeller.keywords).toEqual({ e: "e", wait: "wait" });
    expect(meta.vectors.find((v: { behaviour: string }) => v.behaviour === "e").spanTokens).toBeGreaterThan(0);

    const args = ["--checkpoint", withTokenizer, "--limit", "3", "--n", "2", "--k", "1,2", "--seed", "3"];
    const short = ["--max-new-tokens", "12"];
    const [ap, ev] = await Promise.all([
      cliAsync("steer", [
        "apply",
        ...args,
        ...short,
        "--vector",
        file,
        "--behaviour",
        "e",
        "--layer",
        "1",
        "--scale",
        "0,2",
        "--json",
      ]),
      cliAsync("eval", [...args, ...short, "--json"]),
    ]);
    expect(ap.status, ap.stderr).toBe(0);
    const j = JSON.parse(ap.stdout);
    expect(j.family).toBe("llama");
    expect(j.labels.kind).toBe("keywords");
    expect(j.results.map((r: { scale: number }) => r.scale)).toEqual([0, 2]);
    for (const r of j.results) {
      expect(Object.keys(r.behaviours)).toEqual(["e", "wait"]);
      expect(typeof r.formatShare).toBe("number");
    }
    expect(ev.status, ev.stderr).toBe(0);
    const e = JSON.parse(ev.stdout);
    expect(j.results[0].report.benchmarks).toEqual(e.benchmarks);
    expect(j.results[0].report.mean).toEqual(e.mean);
    expect(j.results[1].report.benchmarks).not.toEqual(e.benchmarks);

    // refusals, each with the valid list, before any model is loaded
    const refusals: Promise<void>[] = [];
    const refused = (sub: string, extra: string[], message: RegExp) =>
      refusals.push(
        cliAsync("steer", [sub, ...extra]).then((r) => {
          expect(r.status, r.stdout).toBe(1);
          expect(r.stderr).toMatch(message);
        }),
      );
    const ck = ["--checkpoint", withTokenizer];
    refused(
      "extract",
      [...ck, "--behaviours", "wait,bogus"],
      /--behaviours: unknown behaviour "bogus"; valid \(keywords labels\): wait, recheck, verify/,
    );
    refused(
      "extract",
      [...ck, "--layers", "0,2"],
      /--layers: block 2 is out of range; this model has 2 blocks, valid: 0, 1/,
    );
    refused(
      "extract",
      [...ck, "--source", "pool"],
      /--source pool: the training pool is the organism's; for a llama checkpoint give one of add, lin, mul, word, or a dataset file/,
    );
    refused(
      "apply",
      [...ck, "--vector", file, "--behaviour", "e", "--layer", "2", "--scale", "1"],
      /--layer: block 2 is out of range; this model has 2 blocks, valid: 0, 1/,
    );
    await Promise.all(refusals);
  }, 120_000);
});
