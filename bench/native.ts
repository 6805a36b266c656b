// The native matmul (build/rlvr_native.node, src/native/gemm.c) against the WebAssembly one it stands
// in for, on the products of the two model shapes (the SmolLM2-135M shape's update micro-batch of
// [8, 160] and decode step of 64 rows; the organism's update on [64, 40]), on 1 and N threads, next to
// this CPU's register-only FMA ceiling. Same operands for both (the same bits come out); best of
// `--rounds` timings of ≥ 2 GFLOP each, the two alternating.
//   npx tsx bench/native.ts [--json] [--rounds 5]
import os from "node:os";
import { nativeAddon, nativeUnavailableReason } from "../src/engine/native.js";
import { makeRng } from "../src/engine/rng.js";
import { matMul, matmulNative, matmulThreads, matmulThreadsReady, setMatmulNative } from "../src/kernels/matmul.js";

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
};
const asJson = process.argv.includes("--json");
const rounds = Number(arg("rounds", "5"));
const log = (s: string) => (asJson ? process.stderr : process.stdout).write(s + "\n");
const addon = nativeAddon();
if (!addon) {
  console.error(`bench/native.ts: the native addon is unavailable (${nativeUnavailableReason()})`);
  process.exit(1);
}
const N = matmulThreads();
await matmulThreadsReady(N);

/** [name, M, K, N, transposeA, transposeB] */
const SHAPES: [string, number, number, number, boolean, boolean][] = [
  ["135M MLP up, x·Wᵀ", 1280, 576, 1536, false, true],
  ["135M MLP down, x·Wᵀ", 1280, 1536, 576, false, true],
  ["135M MLP down, dW = dYᵀ·x", 576, 1280, 1536, true, false],
  ["135M attention out, x·Wᵀ", 1280, 576, 576, false, true],
  ["135M decode, 64 rows, x·Wᵀ", 64, 576, 1536, false, true],
  ["organism MLP up, x·W", 2560, 64, 256, false, false],
  ["organism MLP down, dX = dY·Wᵀ", 2560, 256, 64, false, true],
  ["organism MLP up, dW = xᵀ·dY", 64, 2560, 256, true, false],
];

const rng = makeRng(1, "bench-native");
const best = (f: () => void, flops: number): number => {
  f();
  const reps = Math.max(1, Math.round(2e9 / flops));
  let t = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) f();
    t = Math.min(t, (performance.now() - t0) / reps);
  }
  return flops / t / 1e6;
};
const peak = (threads: number) => Math.max(...[0, 1, 2].map(() => addon.fmaPeak(threads, 20_000_000).gflops));
const ceiling = { one: peak(1), n: peak(N) };
log(
  `native ${matmulNative().isa}; FMA ceiling ${ceiling.one.toFixed(1)} GFLOP/s on 1 thread, ${ceiling.n.toFixed(1)} on ${N}; load average ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(" ")}`,
);
const rows = SHAPES.map(([name, M, K, Nn, ta, tb]) => {
  const a = Float32Array.from({ length: M * K }, () => rng.next() - 0.5);
  const b = Float32Array.from({ length: K * Nn }, () => rng.next() - 0.5);
  const out = new Float32Array(M * Nn);
  const flops = 2 * M * K * Nn;
  const g: Record<string, number> = {};
  for (const threads of [1, N])
    for (const native of [true, false]) {
      setMatmulNative(native);
      g[`${native ? "native" : "wasm"}${threads === 1 ? "1" : "N"}`] = best(
        () => matMul(a, b, M, K, Nn, { transposeA: ta, transposeB: tb, out, threads }),
        flops,
      );
    }
  setMatmulNative(true);
  const r = {
    name,
    M,
    K,
    N: Nn,
    ta,
    tb,
    gflops: Object.fromEntries(Object.entries(g).map(([k, v]) => [k, +v.toFixed(1)])),
  };
  log(
    `  ${name.padEnd(32)} ${M}x${K}x${Nn}: native ${r.gflops.native1} / ${r.gflops.nativeN} (${((100 * g.nativeN) / ceiling.n).toFixed(0)} % of the ceiling), WebAssembly ${r.gflops.wasm1} / ${r.gflops.wasmN} GFLOP/s on 1 / ${N} threads`,
  );
  return r;
});
if (asJson)
  process.stdout.write(
    JSON.stringify({
      isa: matmulNative().isa,
      threads: N,
      loadAverage: os.loadavg(),
      fmaPeakGflops: { one: +ceiling.one.toFixed(1), n: +ceiling.n.toFixed(1) },
      shapes: rows,
    }) + "\n",
  );
process.exit(0);
