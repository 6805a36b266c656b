// Worker polling (src/kernels/threads.ts) vs 2-thread matmul speed: n^3 products through matMul,
// 30 rounds; in each round every polling time (µs) runs ~60 ms on 2 threads, then 1 thread runs
// ~60 ms; the ratio 2 threads / 1 thread is taken per round (paired, so slow drifts of the host's
// load cancel) and its median printed.
//   npx tsx bench/spin.ts [--size 256] [--spins 0,1000]
import { matMul, matmulThreadsReady, setMatmulSpin, setMatmulThreads } from "../src/kernels/matmul.js";

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}
const n = Number(arg("size", "256"));
const spins = arg("spins", "0,1000").split(",").map(Number);
setMatmulThreads(2);
if ((await matmulThreadsReady(2)) < 2) throw new Error("the matmul worker did not start");
const a = Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
const b = Float32Array.from({ length: n * n }, (_, i) => ((i * 104729) % 1000) / 1000 - 0.5);
const out = new Float32Array(n * n);
/** GFLOP/s over ~60 ms of back-to-back calls */
function rate(threads: number): number {
  let reps = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < 60) {
    matMul(a, b, n, n, n, { out, threads });
    reps++;
    t = performance.now();
  }
  return (2 * n ** 3) / ((t - t0) / 1000 / reps) / 1e9;
}
const res: Record<number, number[]> = {};
const one: number[] = [];
for (let round = 0; round < 30; round++) {
  for (const sp of spins) {
    setMatmulSpin(sp);
    (res[sp] ??= []).push(rate(2));
  }
  one.push(rate(1));
}
const med = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1];
console.log(`${n}^3, 1 thread: median ${med(one).toFixed(1)} GFLOP/s (best ${Math.max(...one).toFixed(1)})`);
for (const sp of spins) {
  const v = res[sp];
  console.log(
    `2 threads, polling ${sp} µs: median ${med(v).toFixed(1)} GFLOP/s (best ${Math.max(...v).toFixed(1)}); median paired ratio to 1 thread ${med(v.map((x, i) => x / one[i])).toFixed(2)}`,
  );
}
