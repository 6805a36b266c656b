// Checkpoints in the Hugging Face layout (src/model/hfCheckpoint.ts, safetensors.ts): dtype
// conversions pinned to hand values (and, for F16, to numpy's rounding), save → load round trips,
// sharding, and the refusals a user meets with a wrong directory.
import fs from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../src/engine/backend.js";
import { eosTokenIds, INDEX_FILE, readHfDirectory, WEIGHTS_FILE } from "../src/model/hfCheckpoint.js";
import { LlamaModel, llamaParamShapes, parseLlamaConfig } from "../src/model/llama.js";
import { randomTensor } from "../src/model/llamaRandom.js";
import {
  bf16ToF32,
  f16ToF32,
  f32Bits,
  f32ToBf16,
  f32ToF16,
  readSafetensorsHeader,
  writeSafetensors,
} from "../src/model/safetensors.js";
import { numpyMissing, numpyRef, TINY, TINY_INIT, tinyCheckpoint, tmpDir } from "./fixtures/hfTiny.js";

beforeAll(async () => {
  await selectBackend("wasm");
});

const floatOfBits = (b: number) => new Float32Array(new Uint32Array([b]).buffer)[0];

function paramBits(m: LlamaModel): Record<string, number[]> {
  return Object.fromEntries(
    Object.entries(m.params).map(([k, v]) => [
      k,
      Array.from(new Uint32Array((v.dataSync() as Float32Array).slice().buffer)),
    ]),
  );
}

describe("dtype conversions", () => {
  it("BF16 → float32 is the upper half of the bits", () => {
    const out = bf16ToF32(Uint16Array.from([0x3f80, 0x4049, 0xc000, 0x0000, 0x8000, 0x7f80, 0xff80, 0x0001]));
    expect(Array.from(out.slice(0, 5))).toEqual([1, 3.140625, -2, 0, -0]);
    expect(out[5]).toBe(Infinity);
    expect(out[6]).toBe(-Infinity);
    expect(out[7]).toBe(floatOfBits(0x00010000)); // a subnormal float32
  });

  it("float32 → BF16 rounds to nearest even; NaN stays NaN", () => {
    const f = (bits: number[]) => Array.from(f32ToBf16(new Float32Array(new Uint32Array(bits).buffer)));
    expect(f([f32Bits(1), f32Bits(-2), f32Bits(3.140625)])).toEqual([0x3f80, 0xc000, 0x4049]);
    expect(f([0x3f808000])).toEqual([0x3f80]); // halfway, even stays
    expect(f([0x3f818000])).toEqual([0x3f82]); // halfway, odd rounds up to even
    expect(f([0x3f808001])).toEqual([0x3f81]); // above halfway
    expect(f([0x3f807fff])).toEqual([0x3f80]); // below halfway
    expect(f([0x7f7fffff])).toEqual([0x7f80]); // the largest float32 rounds to infinity
    expect(f([0x80000000, 0x7f800000])).toEqual([0x8000, 0x7f80]);
    const nan = f([0x7f800001])[0];
    expect((nan & 0x7f80) === 0x7f80 && (nan & 0x7f) !== 0).toBe(true);
  });

  it("F16 ↔ float32 on hand values: normals, subnormals, overflow, ties", () => {
    expect(
      Array.from(f16ToF32(Uint16Array.from([0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x3555, 0x7c00, 0x8000]))),
    ).toEqual([1, -2, 65504, 2 ** -24, 2 ** -14, 0.333251953125, Infinity, -0]);
    expect(Number.isNaN(f16ToF32(Uint16Array.from([0x7e00]))[0])).toBe(true);
    const h = (xs: number[]) => Array.from(f32ToF16(Float32Array.from(xs)));
    expect(h([1, -2, 65504, 0.1, 2 ** -24, 2 ** -14])).toEqual([0x3c00, 0xc000, 0x7bff, 0x2e66, 0x0001, 0x0400]);
    expect(h([65520, 65519, 1e6, -Infinity])).toEqual([0x7c00, 0x7bff, 0x7c00, 0xfc00]); // 65520 is the tie to 2^16
    expect(h([2 ** -25, 1.5 * 2 ** -25, 3 * 2 ** -25])).toEqual([0x0000, 0x0001, 0x0002]); // subnormal ties to even
    expect(h([1 + 2 ** -11, 1 + 3 * 2 ** -11])).toEqual([0x3c00, 0x3c02]); // normal ties to even
  });

  const itNumpy = numpyMissing() && !process.env.CI ? it.skip : it;
  itNumpy("float32 → F16 agrees with numpy's astype(float16) bit for bit", () => {
    const why = numpyMissing();
    if (why) throw new Error(`the numpy reference cannot run: ${why}`);
    const bits: number[] = [];
    // every exponent around half's range, with mantissas at and around the rounding points
    for (let e = 90; e <= 160; e++)
      for (const m of [0, 1, 0x1000, 0x1001, 0x0fff, 0x2000, 0x3000, 0x7fffff, 0x400000, 0x401000, 0x3ff000])
        for (const s of [0, 0x80000000]) bits.push((s | (e << 23) | m) >>> 0);
    let x = 12345;
    for (let i = 0; i < 4000; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      bits.push(x);
    }
    bits.push(0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0, 0x80000000);
    const ours = Array.from(f32ToF16(new Float32Array(new Uint32Array(bits).buffer)));
    const { half } = numpyRef<{ half: number[] }>({ mode: "f16", bits });
    expect(ours).toEqual(half);
  });
});

describe("Hugging Face checkpoint directories", () => {
  it("save → load round trip is bit-exact in F32; config.json, generation_config.json and tokenizer files go along", () => {
    const src = tinyCheckpoint("qwen2-tied");
    fs.writeFileSync(path.join(src, "tokenizer.json"), '{"model": {}}');
    const m = LlamaModel.load(src);
    const out = tmpDir("hf-save");
    m.save(out);
    const back = LlamaModel.load(out);
    expect(paramBits(back)).toEqual(paramBits(m));
    const cfg = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
    expect(cfg).toMatchObject({ model_type: "qwen2", architectures: ["Qwen2ForCausalLM"], torch_dtype: "float32" });
    expect(cfg.hidden_size).toBe(TINY["qwen2-tied"].hidden_size);
    expect(fs.readFileSync(path.join(out, "tokenizer.json"), "utf8")).toBe('{"model": {}}');
    expect(back.eosTokenIds).toEqual([7]);
    // what transformers checks: metadata format "pt", the names and shapes of the architecture
    const header = readSafetensorsHeader(path.join(out, WEIGHTS_FILE));
    expect(header.metadata.format).toBe("pt");
    expect([...header.entries.values()].map((e) => [e.name, e.shape])).toEqual(llamaParamShapes(m.config));
    m.dispose();
    back.dispose();
  });

  it("a trained (changed) model saves what it holds, and a BF16 save of BF16 values is exact", () => {
    const src = tinyCheckpoint("llama3-untied", { dtype: "BF16" });
    const m = LlamaModel.load(src);
    const out = tmpDir("hf-bf16");
    m.save(out, { dtype: "BF16" });
    const a = readSafetensorsHeader(path.join(src, WEIGHTS_FILE));
    const b = readSafetensorsHeader(path.join(out, WEIGHTS_FILE));
    const bytes = (f: string, e: { begin: number; end: number }) => fs.readFileSync(f).subarray(e.begin, e.end);
    for (const [name, e] of a.entries) {
      expect(b.entries.get(name)!.dtype).toBe("BF16");
      expect(
        bytes(path.join(out, WEIGHTS_FILE), b.entries.get(name)!).equals(bytes(path.join(src, WEIGHTS_FILE), e)),
      ).toBe(true);
    }
    expect(JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8")).torch_dtype).toBe("bfloat16");
    // change a weight, save F16, reload: the F16 rounding of the new value
    const w = m.params["model.norm.weight"];
    w.assign(tf.fill(w.shape, 1.0009765625 + 2 ** -12)); // 1 + 2^-10 + 2^-12: F16 rounds to 1 + 2^-10
    m.save(out, { dtype: "F16" });
    const back = LlamaModel.load(out);
    expect(Array.from(back.params["model.norm.weight"].dataSync())).toEqual(new Array(w.shape[0]).fill(1 + 2 ** -10));
    m.dispose();
    back.dispose();
  });

  it("sharded: model.safetensors.index.json with its shards loads as the single file does, and a resave replaces it", () => {
    const single = tinyCheckpoint("qwen3-untied");
    const sharded = tinyCheckpoint("qwen3-untied", { maxShardBytes: 20_000 });
    const files = fs.readdirSync(sharded).sort();
    expect(files).toContain(INDEX_FILE);
    expect(files).not.toContain(WEIGHTS_FILE);
    const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    expect(shards.length).toBeGreaterThan(2);
    const index = JSON.parse(fs.readFileSync(path.join(sharded, INDEX_FILE), "utf8"));
    const cfg = parseLlamaConfig(TINY["qwen3-untied"]);
    expect(Object.keys(index.weight_map).sort()).toEqual(
      llamaParamShapes(cfg)
        .map(([n]) => n)
        .sort(),
    );
    expect(index.metadata.total_size).toBe(
      llamaParamShapes(cfg).reduce((a, [, s]) => a + 4 * s.reduce((x, y) => x * y, 1), 0),
    );
    const a = LlamaModel.load(single);
    const b = LlamaModel.load(sharded);
    expect(paramBits(b)).toEqual(paramBits(a));
    // saving the sharded model into its own directory as one file removes the shards and the index
    b.save(sharded);
    expect(fs.readdirSync(sharded).filter((f) => f.endsWith(".safetensors") || f === INDEX_FILE)).toEqual([
      WEIGHTS_FILE,
    ]);
    const c = LlamaModel.load(sharded);
    expect(paramBits(c)).toEqual(paramBits(a));
    [a, b, c].forEach((m) => m.dispose());
  });

  it("generation_config.json's eos_token_id (a list) wins over config.json's", () => {
    const dir = tinyCheckpoint("llama3-untied");
    fs.writeFileSync(path.join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: [2, 9] }));
    const src = readHfDirectory(dir);
    expect(eosTokenIds(src.config, src.generationConfig)).toEqual([2, 9]);
    expect(eosTokenIds({ eos_token_id: 5 }, null)).toEqual([5]);
    expect(eosTokenIds({}, null)).toEqual([]);
    const m = LlamaModel.load(dir);
    expect(m.eosTokenIds).toEqual([2, 9]);
    m.dispose();
  });
});

describe("refused checkpoints name the file, the field or tensor, and what was expected", () => {
  it("a missing or invalid config.json", () => {
    const dir = tmpDir("hf-bad");
    expect(() => LlamaModel.load(dir)).toThrow(/no config.json/);
    fs.writeFileSync(path.join(dir, "config.json"), "{ not json");
    expect(() => LlamaModel.load(dir)).toThrow(new RegExp(`${dir}/config.json: invalid JSON`));
    fs.writeFileSync(
      path.join(dir, "config.json"),
      JSON.stringify({ ...TINY["qwen2-tied"], num_hidden_layers: "two" }),
    );
    expect(() => LlamaModel.load(dir)).toThrow(/config.json: field num_hidden_layers: .*"two"/);
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...TINY["qwen2-tied"], model_type: "gpt_neox" }));
    expect(() => LlamaModel.load(dir)).toThrow(
      /model_type "gpt_neox" is not supported; supported: llama, qwen2, qwen3/,
    );
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(TINY["qwen2-tied"]));
    expect(() => LlamaModel.load(dir)).toThrow(/no model.safetensors or model.safetensors.index.json/);
  });

  function writeWeights(dir: string, drop: string | null, reshape: [string, number[]] | null, extra = false): void {
    const cfg = parseLlamaConfig(TINY["llama3-untied"]);
    const tensors = llamaParamShapes(cfg)
      .filter(([n]) => n !== drop)
      .map(([name, shape]) => {
        const s = reshape && reshape[0] === name ? reshape[1] : shape;
        return { name, shape: s, data: () => randomTensor(name, s, TINY_INIT) };
      });
    if (extra)
      tensors.push({ name: "model.layers.9.mlp.up_proj.weight", shape: [2, 2], data: () => new Float32Array(4) });
    writeSafetensors(path.join(dir, WEIGHTS_FILE), tensors, "F32");
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(TINY["llama3-untied"]));
  }

  it("a missing tensor", () => {
    const dir = tmpDir("hf-missing");
    writeWeights(dir, "model.layers.1.self_attn.k_proj.weight", null);
    expect(() => LlamaModel.load(dir)).toThrow(
      new RegExp(
        `${dir}/model.safetensors: missing tensor model\\.layers\\.1\\.self_attn\\.k_proj\\.weight \\(shape \\[16,32\\]\\)`,
      ),
    );
  });

  it("a wrong shape, with both shapes", () => {
    const dir = tmpDir("hf-shape");
    writeWeights(dir, null, ["model.layers.0.mlp.gate_proj.weight", [32, 48]]);
    expect(() => LlamaModel.load(dir)).toThrow(
      /model.safetensors: tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[32,48\], config.json needs \[48,32\]/,
    );
  });

  it("a tensor the architecture does not use; a truncated file; a missing shard", () => {
    const dir = tmpDir("hf-extra");
    writeWeights(dir, null, null, true);
    expect(() => LlamaModel.load(dir)).toThrow(
      /1 tensor\(s\) the architecture in config.json does not use: model\.layers\.9/,
    );
    writeWeights(dir, null, null);
    const f = path.join(dir, WEIGHTS_FILE);
    fs.truncateSync(f, fs.statSync(f).size - 100);
    expect(() => LlamaModel.load(dir)).toThrow(
      /model.safetensors: tensor lm_head.weight: data_offsets .* run past the end of the file/,
    );
    const sharded = tinyCheckpoint("qwen2-tied", { maxShardBytes: 20_000 });
    const shard = fs.readdirSync(sharded).find((n) => n.startsWith("model-00002"))!;
    fs.rmSync(path.join(sharded, shard));
    expect(() => LlamaModel.load(sharded)).toThrow(new RegExp(`lists shard ${shard}, which is missing`));
  });

  it("an unsupported dtype in the file", () => {
    const dir = tmpDir("hf-dtype");
    const header = JSON.stringify({ "model.norm.weight": { dtype: "F64", shape: [1], data_offsets: [0, 8] } });
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    fs.writeFileSync(path.join(dir, WEIGHTS_FILE), Buffer.concat([len, Buffer.from(header), Buffer.alloc(8)]));
    expect(() => readSafetensorsHeader(path.join(dir, WEIGHTS_FILE))).toThrow(
      /tensor model.norm.weight has dtype "F64"; supported: F32, BF16, F16/,
    );
  });
});
