// Checkpoint format: a directory with
//   config.json        {"format": "oneshot-rlvr/gpt@1", "model": ModelConfig, "meta": {...}}
//   model.safetensors  float32 tensors named as in gpt.ts paramShapes (safetensors layout:
//                      u64 little-endian header length, JSON header, raw little-endian data)
//   optimizer.safetensors (optional) AdamW moments named "m.<param>" / "v.<param>", with the
//                      step count in the header's __metadata__
// Files are written to a temporary name and renamed, so a checkpoint is never half-written.
import fs from "node:fs";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { paramShapes, validateModelConfig, type ModelConfig, type Params } from "./gpt.js";

export const CHECKPOINT_FORMAT = "oneshot-rlvr/gpt@1";

export interface NamedArray {
  shape: number[];
  data: Float32Array;
}

export function encodeSafetensors(tensors: Record<string, NamedArray>, metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const names = Object.keys(tensors);
  for (const name of names) {
    const t = tensors[name];
    const bytes = t.data.length * 4;
    header[name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += " ";
  const hbuf = Buffer.from(json, "utf8");
  const out = Buffer.alloc(8 + hbuf.length + offset);
  out.writeBigUInt64LE(BigInt(hbuf.length), 0);
  hbuf.copy(out, 8);
  let pos = 8 + hbuf.length;
  for (const name of names) {
    const d = tensors[name].data;
    Buffer.from(d.buffer, d.byteOffset, d.byteLength).copy(out, pos);
    pos += d.byteLength;
  }
  return out;
}

export function decodeSafetensors(
  buf: Buffer,
  file = "safetensors",
): { tensors: Record<string, NamedArray>; metadata: Record<string, string> } {
  if (buf.length < 8) throw new Error(`${file}: too short to be a safetensors file`);
  const n = Number(buf.readBigUInt64LE(0));
  if (n > buf.length - 8) throw new Error(`${file}: header length ${n} exceeds file size`);
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, any>;
  const dataStart = 8 + n;
  const tensors: Record<string, NamedArray> = {};
  let metadata: Record<string, string> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = info;
      continue;
    }
    if (info.dtype !== "F32") throw new Error(`${file}: tensor ${name} has dtype ${info.dtype}; only F32 is supported`);
    const [a, b] = info.data_offsets as [number, number];
    const bytes = buf.subarray(dataStart + a, dataStart + b);
    const data = new Float32Array(bytes.byteLength / 4);
    Buffer.from(data.buffer).set(bytes);
    tensors[name] = { shape: info.shape, data };
  }
  return { tensors, metadata };
}

export function writeAtomic(file: string, data: string | Buffer): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

export function paramsToArrays(params: Params): Record<string, NamedArray> {
  const out: Record<string, NamedArray> = {};
  for (const [k, v] of Object.entries(params)) out[k] = { shape: v.shape, data: v.dataSync() as Float32Array };
  return out;
}

export function saveCheckpoint(
  dir: string,
  params: Params,
  cfg: ModelConfig,
  meta: Record<string, unknown> = {},
): void {
  fs.mkdirSync(dir, { recursive: true });
  writeAtomic(
    path.join(dir, "model.safetensors"),
    encodeSafetensors(paramsToArrays(params), { format: CHECKPOINT_FORMAT }),
  );
  writeAtomic(
    path.join(dir, "config.json"),
    JSON.stringify({ format: CHECKPOINT_FORMAT, model: cfg, meta }, null, 2) + "\n",
  );
}

export interface LoadedCheckpoint {
  cfg: ModelConfig;
  params: Params;
  meta: Record<string, unknown>;
}

export function readCheckpointConfig(dir: string): { cfg: ModelConfig; meta: Record<string, unknown> } {
  const cfgFile = path.join(dir, "config.json");
  if (!fs.existsSync(cfgFile))
    throw new Error(
      `${dir}: not a checkpoint directory (no config.json); pass a directory written by \`npm run pretrain\` or an experiment`,
    );
  let parsed: any;
  try {
    parsed = JSON.parse(fs.readFileSync(cfgFile, "utf8"));
  } catch (e) {
    throw new Error(`${cfgFile}: invalid JSON (${(e as Error).message})`);
  }
  if (parsed.format !== CHECKPOINT_FORMAT)
    throw new Error(`${cfgFile}: format is ${JSON.stringify(parsed.format)}, expected ${CHECKPOINT_FORMAT}`);
  validateModelConfig(parsed.model);
  return { cfg: parsed.model, meta: parsed.meta ?? {} };
}

/** Loads a checkpoint; every tensor's name and shape is checked against the config. */
export function loadCheckpoint(dir: string): LoadedCheckpoint {
  const { cfg, meta } = readCheckpointConfig(dir);
  const wfile = path.join(dir, "model.safetensors");
  if (!fs.existsSync(wfile)) throw new Error(`${wfile}: weights file not found`);
  const { tensors } = decodeSafetensors(fs.readFileSync(wfile), wfile);
  const params: Params = {};
  for (const [name, shape] of paramShapes(cfg)) {
    const t = tensors[name];
    if (!t) throw new Error(`${wfile}: missing tensor ${name}`);
    if (t.shape.join(",") !== shape.join(","))
      throw new Error(`${wfile}: tensor ${name} has shape [${t.shape}], config needs [${shape}]`);
    params[name] = tf.variable(tf.tensor(t.data, shape), true);
  }
  return { cfg, params, meta };
}
