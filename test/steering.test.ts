// Steering: the residual addition in forward() and in both decoders (the same function, token for
// token), a planted direction recovered by the difference of means, scale 0 = plain evaluation to the
// bit, no tensors left behind, and refusals that list the valid behaviours and blocks.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { hostLM } from "../src/model/gptLM.js";
import { organismTask } from "../src/task/task.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../src/engine/backend.js";
import { makeRng } from "../src/engine/rng.js";
import {
  disposeParams,
  forward,
  initParams,
  resolveModelConfig,
  type ModelConfig,
  type Params,
} from "../src/model/gpt.js";
import {
  generate,
  hostWeights,
  KVDecoder,
  withResidualAddition,
  type GenerateOptions,
  type HostWeights,
} from "../src/model/decode.js";
import { FastKVDecoder, generateFast } from "../src/model/fastDecoder.js";
import { loadCheckpoint } from "../src/model/checkpoint.js";
import { loadTokenizer, loadTokenizerFor, BOS_ID } from "../src/text/tokenizer.js";
import { loadBenchmarks } from "../src/eval/benchmarks.js";
import { evaluateAll } from "../src/eval/report.js";
import { organismLabeller } from "../src/eval/spans.js";
import {
  activationShift,
  checkLayers,
  collectActivations,
  completionRows,
  decodeVectorFile,
  encodeVectorFile,
  evaluateSteered,
  layerEffects,
  normAddition,
  randomDirection,
  steeringVectors,
  summariseAgainstRl,
  type RlGridRow,
} from "../src/analysis/steering.js";
import { cosine } from "../src/analysis/steering-stats.js";

const TSX = path.resolve("node_modules/.bin/tsx");
const fastAvailable = FastKVDecoder.available();
if (!fastAvailable)
  console.warn(
    `test/steering.test.ts: fast-decoder cases skipped: ${FastKVDecoder.unavailableReason()} (npm run build:kernels)`,
  );
const tmp: string[] = [];

beforeAll(async () => {
  await selectBackend("cpu");
});

afterAll(() => {
  for (const d of tmp) fs.rmSync(d, { recursive: true, force: true });
});

/** Init weights scaled up (logits far from flat) plus seeded noise, as host arrays. */
function weights(cfg: ModelConfig, seed: number, scale = 12, noise = 0.02): HostWeights {
  const params = initParams(cfg, seed);
  const src = hostWeights(params, cfg);
  disposeParams(params);
  const rng = makeRng(seed, "perturb");
  const w: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(src.w)) {
    const a = Float32Array.from(v);
    for (let i = 0; i < a.length; i++) {
      const u = rng.next() - 0.5;
      a[i] = k.endsWith(".g") ? 1 + 4 * noise * u : k.endsWith(".b") ? 2 * noise * u : a[i] * scale + noise * u;
    }
    w[k] = a;
  }
  return { cfg, w };
}

function paramsOf(hw: HostWeights): Params {
  return Object.fromEntries(
    Object.entries(hw.w).map(([k, v]) => [k, tf.variable(tf.tensor(v, paramShape(hw.cfg, k)), false)]),
  );
}

function paramShape(cfg: ModelConfig, name: string): number[] {
  const p = initParamsShapes(cfg).get(name);
  if (!p) throw new Error(name);
  return p;
}

let shapeCache: Map<string, number[]> | null = null;
function initParamsShapes(cfg: ModelConfig): Map<string, number[]> {
  if (!shapeCache) {
    const params = initParams(cfg, 1);
    shapeCache = new Map(Object.entries(params).map(([k, v]) => [k, v.shape]));
    disposeParams(params);
  }
  return shapeCache;
}

function randomVector(C: number, seed: number, size: number): Float32Array {
  const rng = makeRng(seed, "vector");
  return Float32Array.from({ length: C }, () => (rng.next() - 0.5) * size);
}

const cfg = resolveModelConfig("gpt-nano", 58, { contextLength: 40 });

describe("residual addition", () => {
  it("forward with an addition matches the host decoder with it (1e-4), at every block", () => {
    const hw = weights(cfg, 5, 4);
    const params = paramsOf(hw);
    const seq = [BOS_ID, 5, 9, 13, 20, 7, 7, 30, 11, 4];
    for (const layer of [0, 1]) {
      const addition = { layer, vector: randomVector(cfg.width, layer, 2), scale: 1.5 };
      const ref = tf.tidy(() =>
        forward(params, cfg, tf.tensor2d([seq], undefined, "int32"), { addition }).dataSync(),
      ) as Float32Array;
      const plain = tf.tidy(() => forward(params, cfg, tf.tensor2d([seq], undefined, "int32")).dataSync());
      const dec = new KVDecoder(withResidualAddition(hw, addition), 1);
      const logits = new Float64Array(cfg.vocabSize);
      let maxDiff = 0;
      let moved = 0;
      seq.forEach((tok, pos) => {
        dec.step(0, tok, pos, logits);
        for (let v = 0; v < cfg.vocabSize; v++) {
          maxDiff = Math.max(maxDiff, Math.abs(logits[v] - ref[pos * cfg.vocabSize + v]));
          moved = Math.max(moved, Math.abs(plain[pos * cfg.vocabSize + v] - ref[pos * cfg.vocabSize + v]));
        }
      });
      expect(maxDiff).toBeLessThan(1e-4);
      expect(moved).toBeGreaterThan(0.1); // the addition changes the logits
    }
    disposeParams(params);
  });

  it("residual taps: the last block's residual through ln_f and lm_head gives the logits", () => {
    const hw = weights(cfg, 6, 4);
    const params = paramsOf(hw);
    const [taps, logits] = tf.tidy(() => {
      const residuals: tf.Tensor2D[] = [];
      const out = forward(params, cfg, tf.tensor2d([[BOS_ID, 4, 5, 6]], undefined, "int32"), { residuals });
      const { mean, variance } = tf.moments(residuals[1], -1, true);
      const xf = residuals[1]
        .sub(mean)
        .mul(tf.rsqrt(variance.add(1e-5)))
        .mul(params["ln_f.g"])
        .add(params["ln_f.b"]);
      return [residuals.length, tf.matMul(xf, params["lm_head.w"]).sub(out).abs().max().dataSync()[0]];
    }) as unknown as [number, number];
    expect(taps).toBe(cfg.layers);
    expect(logits).toBeLessThan(1e-4);
    disposeParams(params);
  });

  it("a zero vector (or scale 0) changes nothing, to the bit, on both decoders", () => {
    const hw = weights(cfg, 7);
    const prompts = [[5, 6, 7], [8], [9, 10, 11, 12]];
    const opts = { temperature: 1, topP: 1, maxNewTokens: 20 };
    const plain = generate(hw, prompts, opts, makeRng(1, "z"));
    for (const a of [
      { layer: 1, vector: new Float32Array(cfg.width), scale: 3 },
      { layer: 0, vector: randomVector(cfg.width, 1, 5), scale: 0 },
    ]) {
      expect(generate(withResidualAddition(hw, a), prompts, opts, makeRng(1, "z"))).toEqual(plain);
      if (fastAvailable) {
        const f0 = generateFast(hw, prompts, opts, makeRng(1, "z"));
        expect(generateFast(withResidualAddition(hw, a), prompts, opts, makeRng(1, "z"))).toEqual(f0);
      }
    }
  });

  describe.skipIf(!fastAvailable)("fast decoder == host decoder with a vector set", () => {
    const big = resolveModelConfig("gpt-nano", 58);
    const hw = weights(big, 21);
    const prompts = Array.from({ length: 24 }, (_, i) => {
      const r = makeRng(i, "steer-prompts");
      return Array.from({ length: r.int(0, 15) }, () => r.int(3, 57));
    });
    const cases: [string, GenerateOptions][] = [
      ["greedy", { temperature: 0, topP: 1, maxNewTokens: 60 }],
      ["temperature 1", { temperature: 1, topP: 1, maxNewTokens: 60 }],
      ["temperature 0.7, top-p 0.9", { temperature: 0.7, topP: 0.9, maxNewTokens: 40 }],
    ];
    for (const [name, opts] of cases)
      it(name, () => {
        let changed = 0;
        let tokens = 0;
        for (const layer of [0, 1]) {
          const steered = withResidualAddition(hw, { layer, vector: randomVector(big.width, 10 + layer, 1), scale: 4 });
          const rA = opts.temperature ? makeRng(layer, "steer-sample") : null;
          const rB = opts.temperature ? makeRng(layer, "steer-sample") : null;
          const a = generate(steered, prompts, opts, rA);
          const b = generateFast(steered, prompts, opts, rB);
          expect(b).toEqual(a);
          if (rA && rB) expect(rB.next()).toBe(rA.next());
          const plain = generate(hw, prompts, opts, opts.temperature ? makeRng(layer, "steer-sample") : null);
          changed += a.completions.filter((c, i) => c.join() !== plain.completions[i].join()).length;
          tokens += a.completions.reduce((s, c) => s + c.length, 0);
        }
        expect(tokens).toBeGreaterThan(300);
        expect(changed).toBeGreaterThan(prompts.length / 2); // the vector does change the generations
      });

    it("refuses an addition at a block the model does not have", () => {
      expect(() => withResidualAddition(hw, { layer: 2, vector: new Float32Array(big.width), scale: 1 })).toThrow(
        /layer 2 is out of range; this model has blocks 0, 1/,
      );
      expect(
        () => new FastKVDecoder({ ...hw, addition: { layer: 5, vector: new Float32Array(big.width) } }, 1),
      ).toThrow(/layer in \[0, 2\)/);
    });
  });
});

describe("steering vectors", () => {
  it("a direction planted in a tiny model is recovered by the difference of means (cos > 0.9)", () => {
    const tok = loadTokenizer("data/tokenizer");
    const tiny = resolveModelConfig("gpt-nano", tok.vocabSize, { contextLength: 48, layers: 2, width: 32 });
    const params = initParams(tiny, 3);
    // plant u in the embedding of "z", which only ever comes right before "####": the rows that
    // predict the marker's first "#" are the rows of "z"
    const u = randomVector(tiny.width, 99, 1);
    const un = Math.hypot(...u);
    const z = tok.encode("z")[0];
    const wte = params.wte.arraySync() as number[][];
    u.forEach((x, i) => (wte[z][i] += (2 * x) / un));
    params.wte.assign(tf.tensor2d(wte));
    const rng = makeRng(4, "planted");
    const letters = "abcdefgh0123456789";
    const seqs = Array.from({ length: 120 }, () => {
      let text = "";
      const len = rng.int(8, 30);
      while (text.length < len) text += rng.next() < 0.15 ? "z####" : letters[rng.int(0, letters.length - 1)];
      return { promptIds: tok.encode(`${rng.int(1, 99)}+${rng.int(1, 9)}?`), ids: tok.encode(text) };
    });
    const labeller = organismLabeller();
    const stats = collectActivations(params, tiny, (ids) => tok.decode(ids), seqs, labeller, ["format"], [0, 1]);
    const { vectors, missing } = steeringVectors(stats);
    expect(missing).toEqual([]);
    expect(vectors.map((v) => v.layer)).toEqual([0, 1]);
    for (const v of vectors) expect(cosine(v.vector, u)).toBeGreaterThan(0.9);
    // taken one position late (the rows whose input is the first "#"), the vector does not point along u
    // (it points against it: the mean over all rows holds the "z" rows)
    const lateLabeller = {
      ...labeller,
      label: (text: string, offsets: readonly number[]) => {
        const l = labeller.label(text, offsets);
        return { present: l.present, spans: { format: l.spans.format.map((i) => i + 1) } };
      },
    };
    const late = collectActivations(params, tiny, (ids) => tok.decode(ids), seqs, lateLabeller, ["format"], [0]);
    expect(cosine(steeringVectors(late).vectors[0].vector, u)).toBeLessThan(0.5);

    // the file round-trips; unknown behaviours and blocks are refused with the valid ones
    const { safetensors } = encodeVectorFile(vectors, stats, {
      checkpoint: "test",
      blocks: 2,
      labeller: { kind: labeller.kind, definitions: {} },
      positions: "",
      baseline: { kind: "all", startBehaviours: [] },
      source: "test",
      sampling: { n: 1, temperature: 1, topP: 1, seed: 1, problems: seqs.length },
      shares: {},
      missing: [],
    });
    const vf = decodeVectorFile(safetensors, "v.safetensors");
    expect(vf.vector("format", 1)).toEqual(vectors[1].vector);
    expect(() => vf.vector("careful", 0)).toThrow(/no vector for behaviour "careful"; valid: format/);
    expect(() => vf.vector("format", 3)).toThrow(/valid blocks: 0, 1/);
    expect(() => checkLayers(tiny, [0, 2])).toThrow(/block 2 is out of range; this model has 2 blocks, valid: 0, 1/);
    disposeParams(params);
  });

  it("no tensor leaks across steered forwards, generations, layer effects and activation shifts", () => {
    const tok = loadTokenizer("data/tokenizer");
    const tiny = resolveModelConfig("gpt-nano", tok.vocabSize, { contextLength: 48, layers: 2, width: 32 });
    const a = initParams(tiny, 1);
    const b = initParams(tiny, 2);
    const hw = hostWeights(a, tiny);
    const vector = randomVector(tiny.width, 3, 1);
    const items = [
      { id: "1", family: "add", prompt: "1+2", answer: "3" },
      { id: "2", family: "add", prompt: "4+4", answer: "8" },
    ];
    const seqs = [{ promptIds: tok.encode("1+2?"), ids: tok.encode("3####3") }];
    const run = () => {
      completionRows(
        a,
        tiny,
        seqs,
        { layers: [0, 1], logits: true, addition: { layer: 1, vector, scale: 2 } },
        () => {},
      );
      generate(
        withResidualAddition(hw, { layer: 0, vector, scale: 2 }),
        [[5, 6]],
        { temperature: 1, topP: 1, maxNewTokens: 6 },
        makeRng(1, "g"),
      );
      layerEffects(
        a,
        hw,
        tok,
        items,
        [{ behaviour: "format", layer: 1, vector }],
        [0, 1],
        { n: 2, temperature: 1, topP: 1, maxNewTokens: 10, seed: 1 },
        organismLabeller(),
      );
      activationShift(a, b, tiny, seqs, [0, 1]);
    };
    run(); // first call caches the causal masks
    const before = tf.memory().numTensors;
    run();
    expect(tf.memory().numTensors).toBe(before);
    disposeParams(a);
    disposeParams(b);
  });

  it("scale 0 is plain evaluation to the bit; a vector changes it; metrics agree with the report", () => {
    const ck = loadCheckpoint("data/models/base");
    const tok = loadTokenizerFor("data/models/base");
    const hw = hostWeights(ck.params, ck.cfg);
    const benches = loadBenchmarks(null, 6);
    const opts = { n: 4, ks: [1, 4], temperature: 1, topP: 1, maxNewTokens: ck.cfg.contextLength, keepExamples: 3 };
    const plain = evaluateAll(hostLM(hw), organismTask(tok), benches, opts, 7);
    const zero = evaluateSteered(hw, tok, benches, opts, 7, null, organismLabeller());
    expect(zero.report).toEqual(plain.report);
    const zeroVector = evaluateSteered(
      hw,
      tok,
      benches,
      opts,
      7,
      { layer: 1, vector: new Float32Array(64), scale: 1 },
      organismLabeller(),
    );
    expect(zeroVector.report).toEqual(plain.report);
    // the intervals' point estimates are the report's numbers
    expect(zero.heldoutGreedy.value).toBeCloseTo(plain.report.mean.greedy, 12);
    expect(zero.heldoutSampled!.value).toBeCloseTo(plain.report.mean.sampled!, 12);
    for (const [name, m] of Object.entries(plain.report.benchmarks)) {
      const s = zero.benchmarks[name];
      expect(s.formatShare.value).toBeCloseTo(m.formatRate!, 12);
      expect(s.greedyFormatShare.value).toBeCloseTo(m.greedyFormat, 12);
      expect(s.behaviours.recheck.value).toBeCloseTo(m.selfCheckRate, 12);
      for (const p of ["careful", "check", "hasty", "nomarker"] as const)
        expect(s.behaviours[p].value).toBeCloseTo(m.procedures[p], 12);
      expect(s.passAtK["pass@4"].value).toBeCloseTo(m.passAtK["pass@4"], 12);
    }
    const steered = evaluateSteered(
      hw,
      tok,
      benches,
      opts,
      7,
      { layer: 1, vector: randomVector(64, 5, 3), scale: 2 },
      organismLabeller(),
    );
    expect(steered.report).not.toEqual(plain.report);
    disposeParams(ck.params);
  });
});

describe("steering against RL: the grid's summary", () => {
  const est = (value: number) => ({ value, lo: value, hi: value, se: 0, nEff: 1 });
  const row = (
    candidate: string,
    kind: RlGridRow["kind"],
    layer: number,
    norm: number,
    model: "base" | "rl",
    heldout: number,
    selection: number | null = null,
  ): RlGridRow => ({
    candidate,
    kind,
    layer,
    norm,
    model,
    heldout: est(heldout),
    greedyFormat: 0,
    selection: model === "base" ? selection : null,
  });
  it("chooses the base setting on the selection set, and sets RL's drop against random directions", () => {
    const grid = [
      row("format", "behaviour", 1, 4, "base", 0.2, 0.5),
      row("format", "behaviour", 1, 8, "base", 0.3, 0.4), // best on held-out, not on selection
      row("careful", "behaviour", 1, 4, "base", 0.1, 0.5), // ties with format@4 on selection
      row("random-1", "random", 1, 4, "base", 0.0, 0.9), // random rows are never chosen
      row("format", "behaviour", 1, 4, "rl", 0.1),
      row("random-1", "random", 1, 4, "rl", 0.4),
      row("random-2", "random", 1, 4, "rl", 0.3),
    ];
    const s = summariseAgainstRl(grid, 0, 0.5);
    expect(s.bestBaseBySelection).toMatchObject({ candidate: "format", norm: 4 });
    expect(s.bestBaseBySelection.recovered).toBeCloseTo(0.4, 12);
    expect(s.bestBaseOnHeldout).toMatchObject({ candidate: "format", norm: 8 });
    expect(s.bestBaseOnHeldout.recovered).toBeCloseTo(0.6, 12);
    // RL 0.5 -> 0.1: removes 0.8 of the gain; random directions 0.35 on average remove 0.3
    expect(s.undo).toHaveLength(1);
    expect(s.undo[0].removed).toBeCloseTo(0.8, 12);
    expect(s.undo[0].randomHeldout).toBeCloseTo(0.35, 12);
    expect(s.undo[0].beyondRandom).toBeCloseTo(0.5, 12);
  });

  it("random directions are unit vectors, seeded; norm additions have the asked norm and sign", () => {
    const a = randomDirection(64, 1, "r");
    expect(Math.hypot(...a)).toBeCloseTo(1, 6);
    expect(randomDirection(64, 1, "r")).toEqual(a);
    expect(randomDirection(64, 2, "r")).not.toEqual(a);
    const add = normAddition({ name: "x", kind: "behaviour", layer: 1, vector: Float32Array.from([3, 4]) }, 10, -1);
    expect(add.scale).toBeCloseTo(-2, 12);
    expect(() => normAddition({ name: "x", kind: "behaviour", layer: 0, vector: new Float32Array(2) }, 1, 1)).toThrow(
      /zero/,
    );
  });
});

describe("npm run steer", () => {
  const run = (args: string[]) =>
    spawnSync(TSX, ["src/cli/steer.ts", ...args, "--backend", "cpu"], {
      encoding: "utf8",
      env: { ...process.env, RLVR_THREADS: "1" },
    });

  it("extract, then apply at scales 0 and 1: scale 0 is `npm run eval` to the bit; a bad block is refused", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "steer-cli-"));
    tmp.push(dir);
    const file = path.join(dir, "v.safetensors");
    const ex = run(["extract", "--checkpoint", "data/models/base", "--limit", "8", "--n", "4", "--out", file]);
    expect(ex.status, ex.stderr).toBe(0);
    const meta = JSON.parse(fs.readFileSync(path.join(dir, "v.json"), "utf8"));
    expect(meta.layers).toEqual([0, 1]);
    expect(meta.vectors.find((v: { behaviour: string }) => v.behaviour === "format").spanTokens).toBeGreaterThan(0);

    const args = ["--checkpoint", "data/models/base", "--limit", "3", "--n", "2", "--k", "1,2", "--seed", "3"];
    const ap = run([
      "apply",
      ...args,
      "--vector",
      file,
      "--behaviour",
      "format",
      "--layer",
      "1",
      "--scale",
      "0,1",
      "--json",
    ]);
    expect(ap.status, ap.stderr).toBe(0);
    const j = JSON.parse(ap.stdout);
    expect(j.layer).toBe(1);
    expect(j.results.map((r: { scale: number }) => r.scale)).toEqual([0, 1]);
    for (const r of j.results) {
      expect(typeof r.heldoutGreedy).toBe("number");
      expect(typeof r.formatShare).toBe("number");
      expect(Object.keys(r.behaviours)).toEqual(["careful", "check", "hasty", "nomarker", "format", "recheck"]);
    }
    const ev = spawnSync(TSX, ["src/cli/eval.ts", ...args, "--json", "--backend", "cpu"], { encoding: "utf8" });
    expect(ev.status, ev.stderr).toBe(0);
    const e = JSON.parse(ev.stdout);
    expect(j.results[0].report.benchmarks).toEqual(e.benchmarks);
    expect(j.results[0].report.mean).toEqual(e.mean);
    expect(j.results[1].report.benchmarks).not.toEqual(e.benchmarks);

    // (the other refusals are checked in process above and in steering-stats.test.ts)
    const badL = run(["apply", ...args, "--vector", file, "--behaviour", "format", "--layer", "2", "--scale", "1"]);
    expect(badL.status).toBe(1);
    expect(badL.stderr).toMatch(/--layer: block 2 is out of range; this model has 2 blocks, valid: 0, 1/);
  }, 120_000);
});
