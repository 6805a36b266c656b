// Backend selection: `auto` takes @tensorflow/tfjs-node-gpu, else @tensorflow/tfjs-node (both
// optional peer dependencies, used only when installed and loadable), else wasm, else cpu.
// The chosen backend is returned so that every output can record it.
import * as tf from "@tensorflow/tfjs";
import { shareTfjsWasmHeap } from "./wasmHeap.js";

export const BACKENDS = ["auto", "tensorflow", "wasm", "cpu"] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface BackendInfo {
  requested: BackendName;
  /** the tfjs backend actually running: tensorflow, wasm or cpu */
  name: string;
  /** which package provided it */
  package: string;
  /** why earlier candidates were skipped (auto only) */
  skipped: string[];
}

type Importer = (pkg: string) => Promise<unknown>;
const defaultImporter: Importer = (pkg) => import(pkg);

async function tryNative(importer: Importer): Promise<{ pkg: string } | { errors: string[] }> {
  const errors: string[] = [];
  for (const pkg of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
    try {
      await importer(pkg);
      if (tf.findBackend("tensorflow") && (await tf.setBackend("tensorflow"))) return { pkg };
      errors.push(`${pkg}: loaded but did not register the tensorflow backend`);
    } catch (e) {
      errors.push(`${pkg}: ${String((e as Error).message ?? e).split("\n")[0]}`);
    }
  }
  return { errors };
}

async function tryWasm(importer: Importer): Promise<string | null> {
  try {
    // its heap made shared first, so that the fast matmul's threads can work in it (src/engine/wasmHeap.ts)
    shareTfjsWasmHeap(await importer("@tensorflow/tfjs-backend-wasm"));
    if (await tf.setBackend("wasm")) return null;
    return "@tensorflow/tfjs-backend-wasm: setBackend returned false";
  } catch (e) {
    return `@tensorflow/tfjs-backend-wasm: ${String((e as Error).message ?? e).split("\n")[0]}`;
  }
}

/** Selects and initialises a backend. `importer` is injectable so tests can simulate absent packages. */
export async function selectBackend(
  requested: BackendName = "auto",
  importer: Importer = defaultImporter,
): Promise<BackendInfo> {
  if (!(BACKENDS as readonly string[]).includes(requested)) {
    throw new Error(`--backend: unknown backend ${JSON.stringify(requested)}; use one of ${BACKENDS.join(", ")}`);
  }
  const skipped: string[] = [];
  if (requested === "tensorflow" || requested === "auto") {
    const r = await tryNative(importer);
    if ("pkg" in r) {
      await tf.ready();
      return { requested, name: "tensorflow", package: r.pkg, skipped };
    }
    if (requested === "tensorflow") {
      throw new Error(
        `--backend tensorflow: neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node could be loaded (${r.errors.join("; ")}). ` +
          `Install one (npm install @tensorflow/tfjs-node-gpu@4.22.0) or use --backend wasm`,
      );
    }
    skipped.push(...r.errors);
  }
  if (requested === "wasm" || requested === "auto") {
    const err = await tryWasm(importer);
    if (err === null) {
      await tf.ready();
      return { requested, name: "wasm", package: "@tensorflow/tfjs-backend-wasm", skipped };
    }
    if (requested === "wasm") throw new Error(`--backend wasm: ${err}; use --backend cpu`);
    skipped.push(err);
  }
  await tf.setBackend("cpu");
  await tf.ready();
  return { requested, name: "cpu", package: "@tensorflow/tfjs (cpu)", skipped };
}

export function describeBackend(b: BackendInfo): string {
  return `backend: ${b.name} (${b.package}${b.requested === "auto" ? ", chosen by --backend auto" : ""})`;
}

/** The tfjs-wasm heap's size in MB (it grows and never shrinks, so this is its peak; 4096 at most),
 * or null on another backend. */
export function wasmHeapMB(): number | null {
  const bytes = (tf.backend() as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.buffer.byteLength;
  return bytes === undefined ? null : Math.round(bytes / 2 ** 20);
}

/** Whether an error is what the tfjs-wasm heap running out looks like (an Emscripten abort, a trap or
 * an out-of-bounds access in the backend or in a kernel working in its heap). */
export function looksLikeWasmOutOfMemory(e: unknown): boolean {
  return (
    tf.getBackend() === "wasm" &&
    e instanceof Error &&
    /Aborted\(|memory access out of bounds|wasm trap|Cannot enlarge memory|out of memory/i.test(e.message)
  );
}
