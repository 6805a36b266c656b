// How close the fast matmul comes to this machine's floating-point ceiling, paired in one process
// (the host's other tenants move timings within minutes, so each round times the
// probes and the kernel back to back and the ratios are taken per round):
//  - probes (bench/probes/fp.c, everything in L1, no copies, no tfjs): `micro`, the matmul
//    micro-kernel's own loop; `bregs`, the same with B in registers; `indep`, independent mul and
//    add chains (the most f32x4 arithmetic V8 gets through here without FMA); a dependent f64 add
//    chain for the clock (3-cycle latency assumed);
//  - tf.matMul 256^3 with the fast kernel's exact build (the loop the `micro` probe reproduces; the
//    default fma build needs half the instructions and is timed by `npm run bench`) on 1 thread (in
//    place in tfjs's heap) and on 2, each transpose combination; the `micro` probe on two threads at
//    once vs one.
//   bash bench/probes/build.sh && npx tsx bench/ceiling.ts [--rounds 10]
import fs from "node:fs";
import { Worker } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs";
import * as wasmPackage from "@tensorflow/tfjs-backend-wasm";
import { matmulThreadsReady, setMatmulThreads, setMatmulVariant } from "../src/kernels/matmul.js";
import { installFastKernels } from "../src/kernels/tfjs/register.js";
import { shareTfjsWasmHeap } from "../src/engine/wasmHeap.js";

// before the wasm backend starts: its heap shared, so that threaded matmuls run in it (no copies)
const heapNotShared = shareTfjsWasmHeap(wasmPackage);
if (heapNotShared) console.error(heapNotShared);

interface Probe {
  micro(pa: number, pb: number, kl: number, reps: number): number;
  bregs(pa: number, pb: number, kl: number, reps: number): number;
  indep(p: number, n: number): number;
  chain(n: number, x: number, y: number): number;
}
const bytes = fs.readFileSync(new URL("./probes/fp.wasm", import.meta.url));
const KL = 256;
// panels at 16 KiB (A, [KL][4]) and 32 KiB (B, [KL][8]): 4 + 8 KiB, in L1
const PA = 16384;
const PB = 32768;
function probe(): Probe {
  const memory = new WebAssembly.Memory({ initial: 4 });
  const ex = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports as unknown as Probe;
  const f = new Float32Array(memory.buffer);
  for (let i = 4096; i < 4 * 4096; i++) f[i] = ((i % 7) - 3) * 1e-3;
  return ex;
}
/** GFLOP/s of fn(reps) called with `chunk` reps at a time over ~ms milliseconds, `flops` per rep */
function rate(fn: (reps: number) => void, flops: number, chunk = 100, ms = 80): number {
  fn(chunk);
  let reps = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    fn(chunk);
    reps += chunk;
    t = performance.now();
  }
  return (flops * reps) / ((t - t0) / 1e3) / 1e9;
}
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const rounds = arg("rounds", 10);
const ex = probe();
const microRate = () => rate((r) => ex.micro(PA, PB, KL, r), 64 * KL);

// the micro probe in a worker, started on demand (eval'd CommonJS: no loader needed)
const WORKER = `
const { workerData, parentPort } = require("node:worker_threads");
const memory = new WebAssembly.Memory({ initial: 4 });
const ex = new WebAssembly.Instance(new WebAssembly.Module(workerData), { env: { memory } }).exports;
const f = new Float32Array(memory.buffer);
for (let i = 4096; i < 4 * 4096; i++) f[i] = ((i % 7) - 3) * 1e-3;
parentPort.on("message", () => {
  ex.micro(${PA}, ${PB}, ${KL}, 10);
  let reps = 0; const t0 = performance.now(); let t = t0;
  while (t - t0 < 80) { ex.micro(${PA}, ${PB}, ${KL}, 100); reps += 100; t = performance.now(); }
  parentPort.postMessage((64 * ${KL} * reps) / ((t - t0) / 1e3) / 1e9);
});
parentPort.postMessage("ready");
`;
const worker = new Worker(WORKER, { eval: true, workerData: bytes });
await new Promise((r) => worker.once("message", r));

await tf.setBackend("wasm");
await tf.ready();
installFastKernels("wasm");
setMatmulVariant("exact");
setMatmulThreads(2);
if ((await matmulThreadsReady(2)) < 2) throw new Error("the matmul worker did not start");
const n = 256;
const A = tf.tensor2d(
  Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5),
  [n, n],
);
const B = tf.tensor2d(
  Float32Array.from({ length: n * n }, (_, i) => ((i * 104729) % 1000) / 1000 - 0.5),
  [n, n],
);
const COMBOS: [string, boolean, boolean][] = [
  ["A·B", false, false],
  ["A·Bᵀ", false, true],
  ["Aᵀ·B", true, false],
  ["Aᵀ·Bᵀ", true, true],
];
const matmulRate = (threads: number, ta: boolean, tb: boolean) => {
  setMatmulThreads(threads);
  return rate(
    (r) => {
      for (let i = 0; i < r; i++) tf.matMul(A, B, ta, tb).dispose();
    },
    2 * n ** 3,
    1,
  );
};

const res: Record<string, number[]> = {};
const push = (k: string, v: number) => (res[k] ??= []).push(v);
const t0 = performance.now();
ex.chain(5e7, 1, 1e-9);
const ghz = (5e7 * 4 * 3) / ((performance.now() - t0) / 1e3) / 1e9;
for (let r = 0; r < rounds; r++) {
  const m = microRate();
  push("micro", m);
  push(
    "bregs",
    rate((k) => ex.bregs(PA, PB, KL, k), 64 * KL),
  );
  push(
    "indep",
    rate((k) => ex.indep(PA, k * 16), 12 * 4 * 16),
  );
  for (const [name, ta, tb] of COMBOS) {
    const one = matmulRate(1, ta, tb);
    const two = matmulRate(2, ta, tb);
    push(`${name} 1`, one);
    push(`${name} 2`, two);
    push(`${name} 1/micro`, one / m);
    push(`${name} 2/1`, two / one);
  }
  const got = new Promise<number>((resolve) => worker.once("message", resolve));
  worker.postMessage(0);
  const mine = microRate();
  push("micro 2/1", (mine + (await got)) / m);
}
await worker.terminate();
tf.dispose([A, B]);
const med = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1];
const show = (k: string, unit = "GFLOP/s") =>
  `${`${med(res[k]).toFixed(unit ? 1 : 2)} ${unit}`.trim()} (best ${Math.max(...res[k]).toFixed(unit ? 1 : 2)})`;
console.log(`${rounds} rounds, medians (best); clock ≈ ${ghz.toFixed(2)} GHz from a dependent f64 add chain`);
console.log(
  `probes, 1 thread: micro ${show("micro")}, bregs ${show("bregs")}, indep ${show("indep")}; ` +
    `no-FMA peak at that clock: ${(16 * ghz).toFixed(1)}`,
);
console.log(`micro probe, 2 threads at once / 1 alone: ${show("micro 2/1", "")}`);
for (const [name] of COMBOS) {
  console.log(
    `tf.matMul 256^3 ${name.padEnd(6)} 1 thread ${show(`${name} 1`)} = ${show(`${name} 1/micro`, "")} of micro; 2 threads ${show(`${name} 2`)}, ratio ${show(`${name} 2/1`, "")}`,
  );
}
