// Makes the tfjs-wasm backend's heap a shared WebAssembly.Memory, so that the fast matmul's worker
// threads can read the input tensors and write the output tensor where they are (matmul.ts,
// matmul-heap.wasm): no copies on any number of threads.
// The backend's SIMD binary (tfjs-backend-wasm-simd.wasm, the one Node 20 loads) defines its own
// memory, 16 MiB growing to at most 4 GiB. We load the same binary with one bit changed — the
// memory's "shared" flag — from a copy in the temp directory (setWasmPaths must be called before the
// backend initialises). Nothing else in the module changes: every tfjs op runs the same code, bit for
// bit. Where the binary does not look as expected, or the copy cannot be written, the heap stays
// unshared and the matmul copies its operands as it does on the cpu backend (wasmHeapStatus() says why).
import { createHash } from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { leb, sections } from "./wasmBinary.js";

const SIMD = "tfjs-backend-wasm-simd.wasm";
const BINARIES = ["tfjs-backend-wasm.wasm", SIMD, "tfjs-backend-wasm-threaded-simd.wasm"];

/**
 * A copy of a WebAssembly binary whose one memory, defined with a maximum, is declared shared (the
 * limits flag 0x01 becomes 0x03); the binary itself if it already is. Throws, saying why, for
 * anything else (no memory section, several memories, an imported memory, no maximum).
 */
export function withSharedMemory(bytes: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  for (const { id, body } of sections(bytes)) {
    if (id === 5) {
      const [count, at] = leb(bytes, body);
      if (count !== 1) throw new Error(`${count} memories defined; expected 1`);
      const flags = bytes[at];
      if (flags === 0x03) return bytes;
      if (flags !== 0x01)
        throw new Error(`memory limits flag 0x${flags.toString(16)}; expected 0x01 (unshared, with a maximum)`);
      const out = bytes.slice();
      out[at] = 0x03;
      return out;
    }
  }
  throw new Error("no memory section (imported memory?)");
}

let status: string | null = "shareTfjsWasmHeap() was not called before the backend started";

/**
 * Points the tfjs-wasm backend (the module object of "@tensorflow/tfjs-backend-wasm") at its SIMD
 * binary with a shared memory. Call before tf.setBackend("wasm"); later calls change nothing once
 * the backend has started. Returns null, or why the heap stays unshared.
 */
export function shareTfjsWasmHeap(wasmPackage: unknown): string | null {
  try {
    const setWasmPaths = (wasmPackage as { setWasmPaths?: unknown })?.setWasmPaths;
    if (typeof setWasmPaths !== "function") throw new Error("the package has no setWasmPaths");
    const dist = path.dirname(createRequire(import.meta.url).resolve("@tensorflow/tfjs-backend-wasm"));
    const shared = withSharedMemory(new Uint8Array(fs.readFileSync(path.join(dist, SIMD))));
    const dir = path.join(os.tmpdir(), "oneshot-rlvr");
    const file = path.join(
      dir,
      `${SIMD.replace(/\.wasm$/, "")}-shared-${createHash("sha256").update(shared).digest("hex").slice(0, 16)}.wasm`,
    );
    if (!fs.existsSync(file) || !fs.readFileSync(file).equals(shared)) {
      fs.mkdirSync(dir, { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, shared);
      fs.renameSync(tmp, file);
    }
    const map: Record<string, string> = Object.fromEntries(BINARIES.map((b) => [b, path.join(dist, b)]));
    map[SIMD] = file;
    (setWasmPaths as (m: Record<string, string>) => void)(map);
    status = null;
  } catch (e) {
    status = `could not make the tfjs-wasm heap shared: ${String((e as Error).message ?? e)}`;
  }
  return status;
}

/** null once shareTfjsWasmHeap() succeeded, else why the tfjs-wasm heap is not shared. */
export function wasmHeapStatus(): string | null {
  return status;
}
