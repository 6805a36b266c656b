import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { looksLikeWasmOutOfMemory, selectBackend, wasmHeapMB } from "../src/engine/backend.js";
import { cpuDelta, parseProcStat, readCpuTimes, stealShare } from "../bench/cpuStat.js";
import { wasmHeapStatus } from "../src/engine/wasmHeap.js";

const absentNative = async (pkg: string) => {
  if (pkg.includes("tfjs-node")) throw new Error(`Cannot find package '${pkg}'`);
  return import(pkg);
};

describe("backend selection", () => {
  it("auto falls back to wasm when the native packages are absent, and says why", async () => {
    const b = await selectBackend("auto", absentNative);
    expect(b.name).toBe("wasm");
    // its heap made shared for the fast matmul's threads (src/engine/wasmHeap.ts)
    expect(wasmHeapStatus()).toBeNull();
    expect((tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer).toBeInstanceOf(
      SharedArrayBuffer,
    );
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

  it("the wasm heap's size, and what its exhaustion looks like, on wasm only", async () => {
    await selectBackend("wasm");
    const mb = wasmHeapMB();
    expect(mb).toBeGreaterThan(0);
    expect(mb).toBeLessThanOrEqual(4096);
    expect(looksLikeWasmOutOfMemory(new Error("Aborted(). Build with -sASSERTIONS for more info."))).toBe(true);
    expect(looksLikeWasmOutOfMemory(new Error("matmul worker 1 failed: wasm trap"))).toBe(true);
    expect(looksLikeWasmOutOfMemory(new RangeError("memory access out of bounds"))).toBe(true);
    expect(looksLikeWasmOutOfMemory(new Error("gradient norm is NaN"))).toBe(false);
    await selectBackend("cpu");
    expect(wasmHeapMB()).toBeNull();
    expect(looksLikeWasmOutOfMemory(new Error("Aborted()"))).toBe(false);
  });

  it("an unknown backend name lists the valid ones", async () => {
    await expect(selectBackend("gpu" as never)).rejects.toThrow(/auto, tensorflow, wasm, cpu/);
  });
});

describe("host CPU time (/proc/stat) for the bench", () => {
  // two CPUs' worth of ticks: user nice system idle iowait irq softirq steal guest guest_nice
  const stat = (user: number, idle: number, steal: number) =>
    `cpu  ${user} 0 10 ${idle} 5 0 1 ${steal} 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 123\n`;

  it("reads the aggregate cpu line (guest time is already inside user)", () => {
    expect(parseProcStat(stat(100, 50, 4))).toEqual({ total: 100 + 10 + 50 + 5 + 1 + 4, idle: 55, steal: 4 });
  });

  it("rejects text without a well-formed cpu line", () => {
    expect(parseProcStat("cpu0 1 2 3 4 5 6 7 8\n")).toBeNull();
    expect(parseProcStat("cpu  1 2 3\n")).toBeNull();
    expect(parseProcStat("cpu  1 2 x 4 5 6 7 8\n")).toBeNull();
  });

  it("stolen share over several windows: stolen ticks over all ticks", () => {
    const a = parseProcStat(stat(100, 50, 4));
    const b = parseProcStat(stat(130, 60, 10)); // 30 + 10 + 6 = 46 ticks, 6 stolen
    const c = parseProcStat(stat(150, 60, 10)); // 20 ticks, none stolen
    expect(cpuDelta(a, b)).toEqual({ ticks: 46, steal: 6 });
    expect(stealShare([cpuDelta(a, b), cpuDelta(b, c)])).toBeCloseTo(6 / 66, 12);
    expect(stealShare([cpuDelta(b, c)])).toBe(0);
    expect(stealShare([cpuDelta(a, b), cpuDelta(null, c)])).toBeNull();
    expect(stealShare([cpuDelta(b, b)])).toBeNull();
    expect(stealShare([])).toBeNull();
  });

  it("reads this machine's times where /proc/stat exists", () => {
    const t = readCpuTimes();
    if (process.platform === "linux") {
      expect(t).not.toBeNull();
      expect(t!.total).toBeGreaterThan(t!.steal);
    } else expect(t).toBeNull();
  });
});
