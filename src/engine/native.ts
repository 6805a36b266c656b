// The native addon (src/native/, built at install by scripts/build-native.sh into
// build/rlvr_native.node): loaded once, on first use. Where it is absent or cannot load (no compiler
// at install, another CPU architecture, RLVR_NATIVE=0), nativeAddon() returns null and
// nativeUnavailableReason() says why, so that callers fall back to the WebAssembly kernels and say so.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

export const NATIVE_ENV = "RLVR_NATIVE";

/** build/rlvr_native.node, from the repository root */
export const NATIVE_PATH = fileURLToPath(new URL("../../build/rlvr_native.node", import.meta.url));

export type NativeIsa = "avx512" | "avx2" | "none";

/** What the addon exports (src/native/addon.c; further exports where other files of it add them). */
export interface NativeAddon {
  info(): { isa: NativeIsa; maxThreads: number };
  /** use a lower instruction set than the CPU's best ("best": the best again); returns the one in use */
  setIsa(isa: "avx2" | "avx512" | "best"): NativeIsa;
  /** microseconds a pool thread spins for the next call before it sleeps */
  setSpin(us: number): void;
  /** C[cIndex + bi·M·N …] = op(A[aIndex + aoff[bi] …]) op(B[bIndex + boff[bi] …]); fma: fused multiply-add */
  gemm(
    a: Float32Array,
    aIndex: number,
    b: Float32Array,
    bIndex: number,
    c: Float32Array,
    cIndex: number,
    aoff: Int32Array,
    boff: Int32Array,
    batch: number,
    M: number,
    K: number,
    N: number,
    ta: number,
    tb: number,
    fma: number,
    threads: number,
  ): void;
  /** GFLOP/s of register-only fused multiply-add chains on `threads` threads at once (the ceiling) */
  fmaPeak(threads: number, iters: number): { gflops: number; threads: number };
  [more: string]: unknown;
}

let loaded: { addon: NativeAddon | null; reason: string } | null = null;

function load(): { addon: NativeAddon | null; reason: string } {
  if (process.env[NATIVE_ENV] === "0") return { addon: null, reason: `${NATIVE_ENV}=0` };
  if (!existsSync(NATIVE_PATH))
    return {
      addon: null,
      reason: `${NATIVE_PATH} is not built (npm run build:native needs a C compiler and x86-64; npm ci runs it)`,
    };
  try {
    const addon = createRequire(import.meta.url)(NATIVE_PATH) as NativeAddon;
    const { isa } = addon.info();
    if (isa === "none") return { addon: null, reason: "this CPU has neither AVX2 with FMA nor AVX-512" };
    return { addon, reason: "" };
  } catch (e) {
    return { addon: null, reason: `${NATIVE_PATH} did not load: ${String((e as Error).message ?? e).split("\n")[0]}` };
  }
}

/** The addon, or null (nativeUnavailableReason() says why). */
export function nativeAddon(): NativeAddon | null {
  loaded ??= load();
  return loaded.addon;
}

export function nativeUnavailableReason(): string {
  loaded ??= load();
  return loaded.reason;
}
