// Streaming safetensors I/O for checkpoints too large to hold twice: the header is parsed on its
// own, each tensor's bytes are read with fs.readSync into an array of their own and converted to
// float32 (F32, F16, BF16), and writing converts and appends one tensor at a time. The layout:
// u64 little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__},
// then the raw little-endian data, offsets relative to the end of the header.
// The organism's whole-buffer encode/decodeSafetensors (checkpoint.ts) stay as they are: its
// checkpoints are small.
import fs from "node:fs";

export const WEIGHT_DTYPES = ["F32", "BF16", "F16"] as const;
export type WeightDType = (typeof WEIGHT_DTYPES)[number];
const BYTES: Record<WeightDType, number> = { F32: 4, BF16: 2, F16: 2 };

// ---------------------------------------------------------------------------------------------
// dtype conversions (pure)

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** BF16 bits → float32: the upper half of the float32's bits. */
export function bf16ToF32(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const o = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) o[i] = src[i] << 16;
  return out;
}

/** float32 → BF16 bits, rounding to nearest even (as torch's `.to(torch.bfloat16)`); NaN stays NaN. */
export function f32ToBf16(src: Float32Array, out = new Uint16Array(src.length)): Uint16Array {
  const s = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const b = s[i];
    if ((b & 0x7fffffff) > 0x7f800000) out[i] = (b >>> 16) | 0x0040;
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** One IEEE half's value (exact in float32). */
export function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man ? NaN : sign * Infinity;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

let halfTable: Float32Array | null = null;
/** F16 bits → float32, through a table of all 65536 halves (built once). */
export function f16ToF32(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToNumber(h);
  }
  const t = halfTable;
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]];
  return out;
}

/** One float32's bits → half bits, rounding to nearest even, overflow to ±Inf (numpy's
 * npy_floatbits_to_halfbits). */
export function f32BitsToHalf(f: number): number {
  const sign = (f >>> 16) & 0x8000;
  const fExp = f & 0x7f800000;
  if (fExp >= 0x47800000) {
    const fSig = f & 0x007fffff;
    if (fExp === 0x7f800000 && fSig !== 0) {
      let ret = 0x7c00 + (fSig >>> 13);
      if (ret === 0x7c00) ret++;
      return sign | ret;
    }
    return sign | 0x7c00;
  }
  if (fExp <= 0x38000000) {
    if (fExp < 0x33000000) return sign;
    const e = fExp >>> 23;
    let sig = 0x00800000 + (f & 0x007fffff);
    sig >>>= 113 - e;
    // halfway only if the bits shifted out (at most the low 11) were zero too
    if ((sig & 0x3fff) !== 0x1000 || (f & 0x7ff) !== 0) sig += 0x1000;
    return sign + (sig >>> 13);
  }
  const hExp = (fExp - 0x38000000) >>> 13;
  let sig = f & 0x007fffff;
  if ((sig & 0x3fff) !== 0x1000) sig += 0x1000;
  return sign + hExp + (sig >>> 13);
}

/** float32 → F16 bits (round to nearest even, as numpy's astype(float16)). */
export function f32ToF16(src: Float32Array, out = new Uint16Array(src.length)): Uint16Array {
  const s = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToHalf(s[i]);
  return out;
}

/** A number's float32 bits (for tests and hand checks). */
export function f32Bits(x: number): number {
  f32[0] = x;
  return u32[0];
}

// ---------------------------------------------------------------------------------------------
// reading

export interface SafetensorsEntry {
  name: string;
  dtype: WeightDType;
  shape: number[];
  /** absolute byte offsets in the file: [begin, end) */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  file: string;
  entries: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/** Reads and checks a safetensors file's header (8 + header bytes of the file, nothing more). */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = fs.openSync(file, "r");
  try {
    const size = fs.fstatSync(fd).size;
    const lenBuf = Buffer.alloc(8);
    if (size < 8 || fs.readSync(fd, lenBuf, 0, 8, 0) !== 8)
      throw new Error(`${file}: too short to be a safetensors file (${size} bytes)`);
    const n = Number(lenBuf.readBigUInt64LE(0));
    if (n > size - 8 || n > 100_000_000)
      throw new Error(`${file}: header length ${n} does not fit the file's ${size} bytes; not a safetensors file?`);
    const hbuf = Buffer.alloc(n);
    fs.readSync(fd, hbuf, 0, n, 8);
    let header: Record<string, any>;
    try {
      header = JSON.parse(hbuf.toString("utf8"));
    } catch (e) {
      throw new Error(`${file}: header is not valid JSON (${(e as Error).message})`);
    }
    const dataStart = 8 + n;
    const entries = new Map<string, SafetensorsEntry>();
    let metadata: Record<string, string> = {};
    for (const [name, info] of Object.entries(header)) {
      if (name === "__metadata__") {
        metadata = info ?? {};
        continue;
      }
      const where = `${file}: tensor ${name}`;
      if (!(WEIGHT_DTYPES as readonly string[]).includes(info?.dtype))
        throw new Error(`${where} has dtype ${JSON.stringify(info?.dtype)}; supported: ${WEIGHT_DTYPES.join(", ")}`);
      const shape = info.shape;
      if (!Array.isArray(shape) || !shape.every((d: unknown) => Number.isInteger(d) && (d as number) >= 0))
        throw new Error(`${where} has an invalid shape ${JSON.stringify(shape)}`);
      const off = info.data_offsets;
      if (!Array.isArray(off) || off.length !== 2 || !off.every((d: unknown) => Number.isInteger(d)))
        throw new Error(`${where} has invalid data_offsets ${JSON.stringify(off)}`);
      const [a, b] = off as [number, number];
      const dtype = info.dtype as WeightDType;
      if (b - a !== numel(shape) * BYTES[dtype])
        throw new Error(
          `${where}: data_offsets [${a}, ${b}] hold ${b - a} bytes, its ${dtype} shape [${shape}] needs ${numel(shape) * BYTES[dtype]}`,
        );
      if (a < 0 || dataStart + b > size)
        throw new Error(`${where}: data_offsets [${a}, ${b}] run past the end of the file (${size} bytes); truncated?`);
      entries.set(name, { name, dtype, shape, begin: dataStart + a, end: dataStart + b });
    }
    return { file, entries, metadata };
  } finally {
    fs.closeSync(fd);
  }
}

/** Largest single read: Node's fs.readSync takes at most 2 GiB - 1 bytes at a time. */
const MAX_READ = 1 << 30;

function readInto(fd: number, file: string, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.length) {
    const n = fs.readSync(fd, bytes, done, Math.min(MAX_READ, bytes.length - done), position + done);
    if (n <= 0) throw new Error(`${file}: unexpected end of file at byte ${position + done}`);
    done += n;
  }
}

/** Reads one tensor's bytes from an open file into an array of its own and converts it to float32
 * (F32 is read straight into the Float32Array: no second copy). */
export function readTensorF32(fd: number, file: string, e: SafetensorsEntry): Float32Array {
  const n = numel(e.shape);
  if (e.dtype === "F32") {
    const out = new Float32Array(n);
    readInto(fd, file, new Uint8Array(out.buffer), e.begin);
    return out;
  }
  const raw = new Uint16Array(n);
  readInto(fd, file, new Uint8Array(raw.buffer), e.begin);
  return e.dtype === "BF16" ? bf16ToF32(raw) : f16ToF32(raw);
}

// ---------------------------------------------------------------------------------------------
// writing

export interface TensorSource {
  name: string;
  shape: number[];
  /** called once, when the tensor is written: its float32 values */
  data(): Float32Array;
}

/** Bytes a tensor takes in `dtype`. */
export function tensorBytes(shape: number[], dtype: WeightDType): number {
  return numel(shape) * BYTES[dtype];
}

/**
 * Writes a safetensors file tensor by tensor (converted to `dtype`), through a temporary file
 * renamed at the end, so a file is never half-written. Only one tensor's values are in memory at a
 * time beyond what `data()` returns.
 */
export function writeSafetensors(
  file: string,
  tensors: TensorSource[],
  dtype: WeightDType,
  metadata: Record<string, string> = {},
): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of tensors) {
    const bytes = tensorBytes(t.shape, dtype);
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += " ";
  const hbuf = Buffer.from(json, "utf8");
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, "w");
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(hbuf.length), 0);
    writeAll(fd, len);
    writeAll(fd, hbuf);
    for (const t of tensors) {
      const data = t.data();
      if (data.length !== numel(t.shape))
        throw new Error(
          `${file}: tensor ${t.name} has ${data.length} values, its shape [${t.shape}] needs ${numel(t.shape)}`,
        );
      const out = dtype === "F32" ? data : dtype === "BF16" ? f32ToBf16(data) : f32ToF16(data);
      writeAll(fd, new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
    }
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, Math.min(MAX_READ, bytes.length - done));
}
