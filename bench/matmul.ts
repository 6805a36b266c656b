// GFLOP/s of the WebAssembly SIMD matmul (src/kernels/matmul.ts) vs tfjs tf.matMul on the wasm
// and cpu backends, for each transpose combination, at 256x256x256 (single thread each; tfjs
// wasm may use its own SIMD build). Includes copying inputs in / the result out (dataSync for
// tfjs). Rounds alternate the implementations back to back; medians are reported.
//   npx tsx bench/matmul.ts [--size 256] [--rounds 5]
import * as tf from "@tensorflow/tfjs";
import * as wasmPackage from "@tensorflow/tfjs-backend-wasm";
import { makeRng } from "../src/engine/rng.js";
import { matMul, matmulAvailable } from "../src/kernels/matmul.js";
import { shareTfjsWasmHeap } from "../src/engine/wasmHeap.js";

// before the wasm backend starts: its heap shared, so that threaded matmuls run in it (no copies)
const heapNotShared = shareTfjsWasmHeap(wasmPackage);
if (heapNotShared) console.error(heapNotShared);

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}
const n = Number(arg("size", "256"));
const rounds = Number(arg("rounds", "5"));
if (!matmulAvailable()) {
  console.error("matmul.wasm unavailable (run npm run build:kernels)");
  process.exit(1);
}
const rng = makeRng(1, "bench-matmul");
const a = Float32Array.from({ length: n * n }, () => rng.next() - 0.5);
const b = Float32Array.from({ length: n * n }, () => rng.next() - 0.5);
const flops = 2 * n * n * n;
const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

/** seconds per call: repeats fn until ~0.3 s have passed */
function time(fn: () => void): number {
  fn();
  let reps = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < 300) {
    fn();
    reps++;
    t = performance.now();
  }
  return (t - t0) / 1000 / reps;
}

async function tfTimer(backend: string, ta: boolean, tb: boolean): Promise<() => void> {
  await tf.setBackend(backend);
  await tf.ready();
  const A = tf.tensor2d(a, [n, n]);
  const B = tf.tensor2d(b, [n, n]);
  return () => {
    const c = tf.matMul(A, B, ta, tb);
    c.dataSync();
    c.dispose();
  };
}

const combos: [string, boolean, boolean][] = [
  ["A·B", false, false],
  ["A·Bᵀ", false, true],
  ["Aᵀ·B", true, false],
  ["Aᵀ·Bᵀ", true, true],
];
const out = new Float32Array(n * n);
console.log(`matmul ${n}x${n}x${n}, GFLOP/s (median of ${rounds} rounds)`);
console.log(["op", "kernels/matmul (wasm simd)", "tfjs wasm", "tfjs cpu"].join("\t"));
for (const [name, ta, tb] of combos) {
  const res: Record<string, number[]> = { ours: [], wasm: [], cpu: [] };
  for (let r = 0; r < rounds; r++) {
    res.ours.push(flops / time(() => matMul(a, b, n, n, n, { transposeA: ta, transposeB: tb, out })) / 1e9);
    res.wasm.push(flops / time(await tfTimer("wasm", ta, tb)) / 1e9);
    if (r < 2) res.cpu.push(flops / time(await tfTimer("cpu", ta, tb)) / 1e9);
  }
  console.log([name, median(res.ours).toFixed(2), median(res.wasm).toFixed(2), median(res.cpu).toFixed(2)].join("\t"));
}
