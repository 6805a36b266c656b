import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { selectBackend } from "../src/engine/backend.js";
import { wasmHeapStatus } from "../src/kernels/wasmHeap.js";

const absentNative = async (pkg: string) => {
  if (pkg.includes("tfjs-node")) throw new Error(`Cannot find package '${pkg}'`);
  return import(pkg);
};

describe("backend selection", () => {
  it("auto falls back to wasm when the native packages are absent, and says why", async () => {
    const b = await selectBackend("auto", absentNative);
    expect(b.name).toBe("wasm");
    // its heap made shared for the fast matmul's threads (src/kernels/wasmHeap.ts)
    expect(wasmHeapStatus()).toBeNull();
    expect((tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(b.skipped.join(" ")).toMatch(/tfjs-node-gpu/);
    expect(b.skipped.join(" ")).toMatch(/tfjs-node:/);
  });

  it("auto falls back to cpu when wasm cannot load either", async () => {
    const b = await selectBackend("auto", async (pkg) => {
      throw new Error(`no ${pkg}`);
    });
    expect(b.name).toBe("cpu");
    expect(b.skipped).toHaveLength(3);
  });

  it("--backend tensorflow without the native packages is an error that says how to install them", async () => {
    await expect(selectBackend("tensorflow", absentNative)).rejects.toThrow(/npm install @tensorflow\/tfjs-node-gpu/);
  });

  it("an unknown backend name lists the valid ones", async () => {
    await expect(selectBackend("gpu" as never)).rejects.toThrow(/auto, tensorflow, wasm, cpu/);
  });
});
