// The WebAssembly SIMD matmul as tfjs's BatchMatMul (src/kernels/tfjs/) on the wasm and
// cpu backends: tf.matMul agrees with the stock kernel and with a float64 reference over odd
// shapes, every transpose combination, batches and broadcast batches (max abs diff <= 1e-4 x
// max(1, max |C|)); gradients of lmLoss through `forward` agree with stock; 1 and N threads give
// bit-identical results; uninstalling restores the stock kernel bit for bit; selectKernels
// installs / removes it. Our GELU op matches tfjs ops and float64 (value and gradient, odd sizes);
// all-heads attention equals per-head attention bit for bit under the fast matmul. Calls run in
// place in a shared host heap (matmul-heap.wasm, on 1 to 3 threads; the tfjs-wasm heap made shared
// by wasmHeap.ts) are bit-identical to the copying path, and write nothing outside their output and
// the scratch they allocated; an unshared heap is copied from instead. The native matmul, which gives
// the same bits (test/nativeMatmul.test.ts), is switched off here: these tests are of the WebAssembly one.
import * as tf from "@tensorflow/tfjs";
import * as wasmPackage from "@tensorflow/tfjs-backend-wasm";
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeRng } from "../src/engine/rng.js";
import {
  attentionAllHeads,
  attentionPerHead,
  disposeParams,
  gelu,
  initParams,
  lmLoss,
  resolveModelConfig,
  type Params,
} from "../src/model/gpt.js";
import {
  afterThreadedCall,
  hasDataSection,
  type HostHeap,
  matMul,
  matmulAvailable,
  matmulThreadStats,
  matmulUnavailableReason,
  matmulThreadsReady,
  MATMUL_VARIANTS,
  type MatmulVariant,
  matmulVariant,
  MAX_STRIKES,
  parseVariant,
  runMatMul,
  setMatmulInPlace,
  setMatmulNative,
  setMatmulThreads,
  setMatmulVariant,
} from "../src/kernels/matmul.js";
import { batchOffsets } from "../src/kernels/tfjs/BatchMatMul.js";
import { GELU } from "../src/kernels/tfjs/RlvrGelu.js";
import {
  fastKernelBackends,
  fastKernelsActive,
  installFastKernels,
  uninstallFastKernels,
} from "../src/kernels/tfjs/register.js";
import { runGelu } from "../src/kernels/gelu.js";
import { selectKernels } from "../src/model/generate.js";
import { shareTfjsWasmHeap, withSharedMemory } from "../src/engine/wasmHeap.js";
import { availableOrFailInCI } from "./ci.js";

// before the wasm backend starts (in its describe's beforeAll)
const heapNotShared = shareTfjsWasmHeap(wasmPackage);

const available = availableOrFailInCI(
  "test/tfjsKernels.test.ts: src/kernels/matmul.wasm",
  matmulAvailable(),
  () => `${matmulUnavailableReason()} (build it with npm run build:kernels)`,
);

const TOL = 1e-4;
const rng = makeRng(7, "tfjs-kernels-test");
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.next() - 0.5);
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** float64 reference of tf.matMul with NumPy broadcasting of batch dims */
function reference(
  a: Float32Array,
  as: number[],
  b: Float32Array,
  bs: number[],
  ta: boolean,
  tb: boolean,
): { shape: number[]; values: Float64Array } {
  const M = ta ? as[as.length - 1] : as[as.length - 2];
  const K = ta ? as[as.length - 2] : as[as.length - 1];
  const N = tb ? bs[bs.length - 2] : bs[bs.length - 1];
  const aOuter = as.slice(0, -2);
  const bOuter = bs.slice(0, -2);
  const rank = Math.max(aOuter.length, bOuter.length);
  const outer: number[] = [];
  for (let d = 0; d < rank; d++) {
    const x = aOuter[d - (rank - aOuter.length)] ?? 1;
    const y = bOuter[d - (rank - bOuter.length)] ?? 1;
    outer.push(Math.max(x, y));
  }
  const { aOffsets, bOffsets } = batchOffsets(outer, aOuter, bOuter, M * K, K * N);
  const batch = size(outer);
  const out = new Float64Array(batch * M * N);
  for (let q = 0; q < batch; q++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++)
          s += a[aOffsets[q] + (ta ? k * M + i : i * K + k)] * b[bOffsets[q] + (tb ? j * K + k : k * N + j)];
        out[(q * M + i) * N + j] = s;
      }
    }
  }
  return { shape: [...outer, M, N], values: out };
}

function maxAbsDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  expect(x.length).toBe(y.length);
  let d = 0;
  for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - y[i]));
  return d;
}
const maxAbs = (x: ArrayLike<number>) => Array.from(x).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** [a shape (untransposed [.., M, K]), b shape ([.., K, N])], stock tfjs right for this broadcast */
const CASES: [number[], number[], boolean][] = [
  [[1, 1], [1, 1], true],
  [[5, 7], [7, 9], true],
  [[4, 8], [8, 8], true],
  [[33, 300], [300, 17], true],
  [[3, 1], [1, 5], true],
  [[13, 19], [19, 2], true],
  [[2, 6, 600], [2, 600, 40], true],
  [[32, 11, 5], [32, 5, 11], true],
  [[3, 9, 10], [10, 6], true], // broadcast B
  [[9, 10], [4, 10, 6], true], // broadcast A
  [[2, 3, 5, 4], [3, 4, 7], true],
  [[1, 5, 4], [3, 4, 7], true],
  [[2, 1, 5, 4], [1, 3, 4, 7], false], // NumPy broadcast (tfjs's stock kernels index bi % batch)
];

const transposed = (s: number[], t: boolean) => (t ? [...s.slice(0, -2), s[s.length - 1], s[s.length - 2]] : s);

function smallModel() {
  return resolveModelConfig("gpt-nano", 30, { contextLength: 24, width: 32, heads: 4, layers: 2 });
}

function lossGrads(params: Params, cfg: ReturnType<typeof smallModel>): Record<string, Float32Array> {
  const r = makeRng(11, "grad-batch");
  const B = 5;
  const T = 17;
  const ids = Array.from({ length: B }, () => Array.from({ length: T + 1 }, () => r.int(0, cfg.vocabSize - 1)));
  const inputs = tf.tensor2d(
    ids.map((s) => s.slice(0, T)),
    undefined,
    "int32",
  );
  const targets = tf.tensor2d(
    ids.map((s) => s.slice(1)),
    undefined,
    "int32",
  );
  const mask = tf.tensor2d(
    ids.map((_, b) => Array.from({ length: T }, (_, t) => (t >= b ? 1 : 0))),
    undefined,
    "float32",
  );
  const { value, grads } = tf.variableGrads(() => lmLoss(params, cfg, inputs, targets, mask));
  const names = new Map(Object.entries(params).map(([k, v]) => [v.name, k]));
  const out: Record<string, Float32Array> = { loss: value.dataSync() as Float32Array };
  for (const [vn, g] of Object.entries(grads)) out[names.get(vn)!] = g.dataSync() as Float32Array;
  tf.dispose([value, inputs, targets, mask, ...Object.values(grads)]);
  return out;
}

beforeAll(() => {
  setMatmulNative(false);
});

afterAll(async () => {
  setMatmulNative(true);
  uninstallFastKernels();
  await tf.setBackend("cpu");
});

for (const variant of MATMUL_VARIANTS)
  describe.skipIf(!available)(`fast BatchMatMul kernel, ${variant} build`, () => {
    beforeAll(async () => {
      setMatmulVariant(variant);
      await matmulThreadsReady(2);
    });

    for (const backend of ["wasm", "cpu"]) {
      describe(`${backend} backend`, () => {
        beforeAll(async () => {
          uninstallFastKernels();
          await tf.setBackend(backend);
          await tf.ready();
        });

        it("tf.matMul matches stock and a float64 reference: odd shapes, transposes, batches, broadcasts", () => {
          let worstStock = 0;
          let worstRef = 0;
          let n = 0;
          for (const [as, bs, stockOk] of CASES) {
            for (const ta of [false, true]) {
              for (const tb of [false, true]) {
                const sa = transposed(as, ta);
                const sb = transposed(bs, tb);
                const a = rand(size(sa));
                const b = rand(size(sb));
                const A = tf.tensor(a, sa);
                const B = tf.tensor(b, sb);
                uninstallFastKernels();
                const stock = stockOk ? tf.matMul(A, B, ta, tb) : null;
                expect(installFastKernels(backend)).toBe(true);
                const fast = tf.matMul(A, B, ta, tb);
                const ref = reference(a, sa, b, sb, ta, tb);
                expect(fast.shape).toEqual(ref.shape);
                const fv = fast.dataSync();
                const scale = Math.max(1, maxAbs(ref.values));
                const dRef = maxAbsDiff(fv, ref.values) / scale;
                expect(dRef, `${sa} x ${sb} ta=${ta} tb=${tb}`).toBeLessThanOrEqual(TOL);
                worstRef = Math.max(worstRef, dRef);
                if (stock) {
                  expect(stock.shape).toEqual(fast.shape);
                  const dStock = maxAbsDiff(fv, stock.dataSync()) / scale;
                  expect(dStock, `${sa} x ${sb} ta=${ta} tb=${tb}`).toBeLessThanOrEqual(TOL);
                  worstStock = Math.max(worstStock, dStock);
                }
                tf.dispose([A, B, fast, ...(stock ? [stock] : [])]);
                n++;
              }
            }
          }
          console.log(
            `${backend}: ${n} products; max |fast - stock| ${worstStock.toExponential(2)}, max |fast - float64| ${worstRef.toExponential(2)} (relative to max(1, max |C|))`,
          );
        });

        it("non-float32 matmuls still go to the stock kernel", () => {
          expect(installFastKernels(backend)).toBe(true);
          if (backend === "cpu") {
            const c = tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2], "int32"), tf.tensor2d([5, 6, 7, 8], [2, 2], "int32"));
            expect(c.dtype).toBe("int32");
            expect(Array.from(c.dataSync())).toEqual([19, 22, 43, 50]);
          } else {
            expect(() =>
              tf.matMul(tf.tensor2d([1, 2, 3, 4], [2, 2], "int32"), tf.tensor2d([5, 6, 7, 8], [2, 2], "int32")),
            ).toThrow(/float32/);
          }
          // K = 0 gives zeros (the stock wasm kernel returns uninitialised memory here); empty outputs work
          const z = tf.matMul(tf.zeros([3, 0]), tf.zeros([0, 4]));
          expect(Array.from(z.dataSync())).toEqual(new Array(12).fill(0));
          expect(tf.matMul(tf.zeros([0, 5]), tf.zeros([5, 4])).shape).toEqual([0, 4]);
        });

        it("gradients of lmLoss through forward match stock", () => {
          const cfg = smallModel();
          const params = initParams(cfg, 5);
          try {
            uninstallFastKernels();
            const stock = lossGrads(params, cfg);
            expect(installFastKernels(backend)).toBe(true);
            const fast = lossGrads(params, cfg);
            let worst = 0;
            for (const [k, g] of Object.entries(stock)) {
              const d = maxAbsDiff(fast[k], g) / Math.max(1e-3, maxAbs(g));
              expect(d, k).toBeLessThan(1e-4);
              worst = Math.max(worst, d);
            }
            console.log(
              `${backend}: loss ${stock.loss[0].toFixed(6)} (stock) vs ${fast.loss[0].toFixed(6)} (fast); max grad diff / max |grad| ${worst.toExponential(2)}`,
            );
          } finally {
            disposeParams(params);
          }
        });

        it("1 thread and N threads are bit-identical (tf.matMul and gradients)", async () => {
          expect(installFastKernels(backend)).toBe(true);
          const shapes: [number[], number[], boolean, boolean][] = [
            [[300, 129], [129, 70], false, false],
            [[129, 300], [70, 129], true, true],
            [[17, 40, 33], [17, 40, 50], true, false],
            [[3, 200, 64], [64, 96], false, false],
          ];
          const run = () => {
            const out: Float32Array[] = [];
            const r = makeRng(3, "threads");
            for (const [sa, sb, ta, tb] of shapes) {
              const A = tf.tensor(
                Float32Array.from({ length: size(sa) }, () => r.next() - 0.5),
                sa,
              );
              const B = tf.tensor(
                Float32Array.from({ length: size(sb) }, () => r.next() - 0.5),
                sb,
              );
              const C = tf.matMul(A, B, ta, tb);
              out.push(C.dataSync() as Float32Array);
              tf.dispose([A, B, C]);
            }
            return out;
          };
          const cfg = smallModel();
          const params = initParams(cfg, 6);
          try {
            setMatmulThreads(1);
            const one = run();
            const g1 = lossGrads(params, cfg);
            for (const n of [2, 3]) {
              setMatmulThreads(n);
              expect(await matmulThreadsReady(n)).toBe(n);
              const s0 = matmulThreadStats();
              // repeat so that workers get to take part even on a busy machine
              for (let rep = 0; rep < 20; rep++) {
                const many = run();
                many.forEach((c, i) =>
                  expect(
                    Buffer.from(c.buffer, c.byteOffset, c.byteLength).equals(
                      Buffer.from(one[i].buffer, one[i].byteOffset, one[i].byteLength),
                    ),
                  ).toBe(true),
                );
              }
              const gn = lossGrads(params, cfg);
              for (const [k, g] of Object.entries(g1)) expect(Array.from(gn[k]), k).toEqual(Array.from(g));
              const s1 = matmulThreadStats();
              expect(s1.posted - s0.posted - (s1.cancelled - s0.cancelled), "jobs taken by workers").toBeGreaterThan(0);
            }
          } finally {
            setMatmulThreads(2);
            disposeParams(params);
          }
        });

        it("in place on the wasm heap (shared: on every thread), bit-identical to copying", async () => {
          expect(installFastKernels(backend)).toBe(true);
          if (backend === "wasm") {
            expect(heapNotShared).toBeNull();
            expect((tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer).toBeInstanceOf(
              SharedArrayBuffer,
            );
          }
          const A = tf.tensor(rand(3 * 70 * 45), [3, 70, 45]);
          const B = tf.tensor(rand(45 * 33), [45, 33]);
          const X = tf.tensor(rand(1001), [7, 143]);
          const run = () =>
            tf.tidy(() => {
              const c = tf.matMul(A, B);
              const g = tf.grad((t: tf.Tensor) => gelu(t).sum())(X);
              return [c.dataSync().slice(), gelu(X).dataSync().slice(), g.dataSync().slice()];
            });
          try {
            setMatmulThreads(1);
            setMatmulInPlace(false);
            const s0 = matmulThreadStats().inPlace;
            const copied = run();
            expect(matmulThreadStats().inPlace).toBe(s0);
            setMatmulInPlace(true);
            const before = tf.memory().numTensors;
            const placed = run();
            expect(tf.memory().numTensors).toBe(before);
            // wasm: the matmul, GELU and its gradient ran in the tfjs heap; cpu: never
            if (backend === "wasm") expect(matmulThreadStats().inPlace - s0).toBeGreaterThanOrEqual(3);
            else expect(matmulThreadStats().inPlace).toBe(s0);
            placed.forEach((v, i) =>
              expect(Buffer.from(v.buffer).equals(Buffer.from(copied[i].buffer)), `output ${i}`).toBe(true),
            );
            // two threads, both in the tfjs heap (transposed A too)
            setMatmulThreads(2);
            expect(await matmulThreadsReady(2)).toBe(2);
            const P = tf.tensor(rand(2 * 130 * 97), [2, 130, 97]);
            const Q = tf.tensor(rand(2 * 130 * 61), [2, 130, 61]);
            const both = () =>
              [tf.matMul(P, Q, true, false), tf.matMul(Q, P, true, false)].map((t) => {
                const v = t.dataSync().slice();
                t.dispose();
                return v;
              });
            setMatmulInPlace(false);
            const want = both();
            setMatmulInPlace(true);
            setMatmulThreads(2); // clears a run-alone pause left by a stall above (other test files share the cores)
            const s1 = matmulThreadStats();
            const taken = () => matmulThreadStats().posted - matmulThreadStats().cancelled - (s1.posted - s1.cancelled);
            // these products take ~0.1 ms: on a loaded machine the worker may miss many; repeat until it took one
            let reps = 0;
            for (; reps < 10 || (taken() === 0 && reps < 500); reps++)
              both().forEach((v, i) =>
                expect(Buffer.from(v.buffer).equals(Buffer.from(want[i].buffer)), `2 threads, output ${i}`).toBe(true),
              );
            const s2 = matmulThreadStats();
            if (backend === "wasm") expect(s2.inPlace - s1.inPlace).toBe(2 * reps);
            expect(taken(), "jobs taken by the worker").toBeGreaterThan(0);
            tf.dispose([P, Q]);
          } finally {
            setMatmulInPlace(true);
            setMatmulThreads(2);
            tf.dispose([A, B, X]);
          }
        });

        it("GELU op: value and gradient match tfjs ops and float64 (odd sizes); only while installed", () => {
          const c = Math.sqrt(2 / Math.PI);
          const ref = (u: number) => 0.5 * u * (1 + Math.tanh(c * (u + 0.044715 * u ** 3)));
          const dref = (u: number) => {
            const t = Math.tanh(c * (u + 0.044715 * u ** 3));
            return 0.5 * (1 + t) + 0.5 * u * (1 - t * t) * c * (1 + 3 * 0.044715 * u * u);
          };
          for (const n of [1, 3, 4, 5, 8, 1023]) {
            const xs = Float32Array.from(
              { length: n },
              (_, i) => (n === 1 ? 0.3 : -12 + (24 * i) / (n - 1)) + (rng.next() - 0.5) * 1e-3,
            );
            const w = rand(n);
            const x = tf.tensor1d(xs);
            const wt = tf.tensor1d(w);
            uninstallFastKernels();
            expect(fastKernelsActive()).toBe(false);
            const both = () =>
              tf.tidy(() => [
                gelu(x).dataSync(),
                tf
                  .grad((t: tf.Tensor) => gelu(t).mul(wt).sum())(x)
                  .dataSync(),
              ]);
            const [stockVal, stockGrad] = both();
            expect(installFastKernels(backend)).toBe(true);
            expect(fastKernelsActive()).toBe(true);
            const before = tf.memory().numTensors;
            const [fastVal, fastGrad] = both();
            expect(maxAbsDiff(fastVal, stockVal), `n=${n}`).toBeLessThan(1e-5);
            expect(maxAbsDiff(fastGrad, stockGrad), `n=${n}`).toBeLessThan(1e-5);
            for (let i = 0; i < n; i++) {
              expect(Math.abs(fastVal[i] - ref(xs[i]))).toBeLessThan(2e-6 * Math.max(1, Math.abs(xs[i])));
              expect(Math.abs(fastGrad[i] - w[i] * dref(xs[i]))).toBeLessThan(2e-6);
            }
            tf.dispose([x, wt]);
            expect(tf.memory().numTensors).toBe(before - 2);
          }
          // uninstalled: the op is gone from the backend (gelu() falls back to tfjs ops)
          uninstallFastKernels();
          expect(tf.getKernel(GELU, backend)).toBeUndefined();
        });

        it("all-heads attention equals per-head attention bit for bit (values and gradients)", () => {
          expect(installFastKernels(backend)).toBe(true);
          const [B, T, nh, hd] = [3, 11, 4, 5];
          const qkv = tf.tensor3d(rand(B * T * 3 * nh * hd), [B, T, 3 * nh * hd]);
          const maskData = new Float32Array(T * T);
          for (let i = 0; i < T; i++) for (let j = i + 1; j < T; j++) maskData[i * T + j] = -1e9;
          const mask = tf.tensor2d(maskData, [T, T]);
          const w = tf.tensor2d(rand(B * T * nh * hd), [B * T, nh * hd]);
          const run = (f: typeof attentionPerHead) => {
            const value = tf.tidy(() => f(qkv, B, T, nh, hd, mask, 0.37)).dataSync();
            const grad = tf
              .grad((t: tf.Tensor) => f(t, B, T, nh, hd, mask, 0.37).mul(w).sum())(qkv)
              .dataSync();
            return { value, grad };
          };
          const a = run(attentionPerHead);
          const b = run(attentionAllHeads);
          expect(Array.from(b.value)).toEqual(Array.from(a.value));
          expect(Array.from(b.grad)).toEqual(Array.from(a.grad));
          tf.dispose([qkv, mask, w]);
        });

        it.skipIf(backend !== "wasm")(
          "wasm: Sum over leading axes as column sums, SplitV and Identity as copies / shares: the same bits as stock; gradients equal; restored on uninstall",
          () => {
            uninstallFastKernels();
            const stockSplit = tf.getKernel("SplitV", backend)!.kernelFunc;
            const stockIdentity = tf.getKernel("Identity", backend)!.kernelFunc;
            const stockSum = tf.getKernel("Sum", backend)!.kernelFunc;
            // sums: leading axes (ours; C = 1, 3, 4, 16, 37, 64 for every tail of the column loop), others (stock)
            const sumCases: { shape: number[]; axis: number | number[]; keepDims?: boolean; dtype?: "int32" }[] = [
              { shape: [4224, 64], axis: 0 },
              { shape: [301, 37], axis: -2 },
              { shape: [5, 7, 16], axis: [0, 1] },
              { shape: [5, 7, 16], axis: [1, 0] },
              { shape: [9, 3], axis: 0, keepDims: true },
              { shape: [6, 1], axis: 0 },
              { shape: [2, 3, 4], axis: [0] },
              { shape: [33, 5], axis: 1 },
              { shape: [4, 5, 6], axis: [0, 2] },
              { shape: [4, 5], axis: [0, 1] },
              { shape: [11, 6], axis: 0, dtype: "int32" },
            ];
            const sumInputs = sumCases.map(({ shape, dtype }) =>
              dtype
                ? Int32Array.from(rand(size(shape)), (v) => Math.round(v * 1000))
                : rand(size(shape)).map((v) => v * 1e3),
            );
            const sumAll = () =>
              sumCases.map(({ shape, axis, keepDims, dtype }, i) => {
                const x = tf.tensor(sumInputs[i], shape, dtype);
                const y = tf.sum(x, axis, keepDims);
                const out = { shape: y.shape, values: Array.from(y.dataSync()) };
                tf.dispose([x, y]);
                return out;
              });
            const stockSums = sumAll();
            const cases: { shape: number[]; axis: number; splits: number | number[]; dtype?: "int32" }[] = [
              { shape: [5, 6, 7], axis: 1, splits: 3 },
              { shape: [4, 9, 3, 2], axis: 1, splits: [2, 4, 3] },
              { shape: [4, 9, 3, 2], axis: -1, splits: 2 },
              { shape: [3, 12, 5], axis: 0, splits: [1, -1] },
              { shape: [13], axis: 0, splits: [5, 0, 8] },
              { shape: [2, 6, 4], axis: 2, splits: [1, 3], dtype: "int32" },
              { shape: [3, 0, 4], axis: 2, splits: 2 },
            ];
            // the same inputs for stock and fast
            const inputs = cases.map(({ shape, dtype }) =>
              dtype ? Int32Array.from(rand(size(shape)), (v) => Math.round(v * 1000)) : rand(size(shape)),
            );
            const gradInput = rand(4 * 9 * 3);
            const splitAll = () =>
              cases.map(({ shape, axis, splits, dtype }, i) => {
                const x = tf.tensor(inputs[i], shape, dtype);
                const parts = tf.split(x, splits, axis);
                const out = parts.map((t) => ({ shape: t.shape, values: Array.from(t.dataSync()) }));
                tf.dispose([x, ...parts]);
                return out;
              });
            const gradOf = () => {
              const x = tf.tensor(gradInput, [4, 9, 3]);
              const g = tf.grad((t: tf.Tensor) =>
                tf.add(tf.split(t, [2, 4, 3], 1)[1].square().sum(), tf.split(t, 3, 2)[2].mul(3).sum()),
              )(x);
              const v = Array.from(g.dataSync());
              tf.dispose([x, g]);
              return v;
            };
            const stockSplits = splitAll();
            const stockGrad = gradOf();
            expect(installFastKernels(backend)).toBe(true);
            expect(tf.getKernel("SplitV", backend)!.kernelFunc).not.toBe(stockSplit);
            const before = tf.memory().numTensors;
            expect(tf.getKernel("Sum", backend)!.kernelFunc).not.toBe(stockSum);
            expect(splitAll()).toEqual(stockSplits);
            expect(gradOf()).toEqual(stockGrad);
            expect(sumAll()).toEqual(stockSums);
            // over no rows: zeros (stock wasm returns whatever its fresh output memory held)
            const empty = tf.tensor([], [0, 6]);
            const zeros = tf.sum(empty, 0);
            expect(Array.from(zeros.dataSync())).toEqual([0, 0, 0, 0, 0, 0]);
            tf.dispose([empty, zeros]);
            expect(tf.memory().numTensors).toBe(before);

            // a clone shares the data (reference-counted): it outlives the original, and freeing both frees it
            const bytes = tf.memory().numBytes;
            const x = tf.tensor([1.5, -2, 3.25, Number.NaN], [2, 2]);
            const y = tf.clone(x);
            expect((tf.backend() as unknown as { refCount(d: object): number }).refCount(x.dataId)).toBe(2);
            x.dispose();
            expect(Array.from(y.dataSync())).toEqual([1.5, -2, 3.25, Number.NaN]);
            y.dispose();
            expect(tf.memory().numBytes).toBe(bytes);
            expect(tf.memory().numTensors).toBe(before);

            uninstallFastKernels();
            expect(tf.getKernel("SplitV", backend)!.kernelFunc).toBe(stockSplit);
            expect(tf.getKernel("Identity", backend)!.kernelFunc).toBe(stockIdentity);
            expect(tf.getKernel("Sum", backend)!.kernelFunc).toBe(stockSum);
            installFastKernels(backend);
          },
        );

        it("uninstall restores the stock kernel, bit for bit", () => {
          uninstallFastKernels();
          const stockFunc = tf.getKernel("BatchMatMul", backend)!.kernelFunc;
          const A = tf.tensor(rand(3 * 37 * 29), [3, 37, 29]);
          const B = tf.tensor(rand(3 * 29 * 41), [3, 29, 41]);
          const before = tf.matMul(A, B, false, false).dataSync();
          expect(installFastKernels(backend)).toBe(true);
          expect(tf.getKernel("BatchMatMul", backend)!.kernelFunc).not.toBe(stockFunc);
          expect(fastKernelBackends()).toEqual([backend]);
          const fast = tf.matMul(A, B).dataSync();
          expect(maxAbsDiff(fast, before)).toBeLessThan(1e-5);
          uninstallFastKernels();
          expect(fastKernelBackends()).toEqual([]);
          expect(tf.getKernel("BatchMatMul", backend)!.kernelFunc).toBe(stockFunc);
          const after = tf.matMul(A, B).dataSync();
          expect(Array.from(after)).toEqual(Array.from(before));
          tf.dispose([A, B]);
        });

        it("selectKernels installs the fast matmul for the active backend (fast, auto) and removes it (stock)", () => {
          const fast = selectKernels("fast");
          expect(fast.matmul).toBe(backend);
          expect(fast.message).toMatch(new RegExp(`matmul: WebAssembly SIMD BatchMatMul .* on the ${backend} backend`));
          expect(fastKernelBackends()).toEqual([backend]);
          const stock = selectKernels("stock");
          expect(stock.matmul).toBeNull();
          expect(stock.message).toMatch(/matmul: stock/);
          expect(fastKernelBackends()).toEqual([]);
          expect(selectKernels("auto").matmul).toBe(backend);
          selectKernels("stock");
        });
      });
    }

    it("run-alone policy after a stalled threaded call: doubling pause, capped at 2^MAX_STRIKES calls", () => {
      // caller worked 1 ms: a wait over 0.55 ms is a stall
      expect(afterThreadedCall({ strikes: 0, backoff: 0 }, 1, 0.5)).toEqual({ strikes: 0, backoff: 0, stalled: false });
      expect(afterThreadedCall({ strikes: 0, backoff: 0 }, 1, 0.6)).toEqual({ strikes: 1, backoff: 2, stalled: true });
      expect(afterThreadedCall({ strikes: 3, backoff: 0 }, 1, 2)).toEqual({ strikes: 4, backoff: 16, stalled: true });
      expect(afterThreadedCall({ strikes: MAX_STRIKES, backoff: 0 }, 1, 2)).toEqual({
        strikes: MAX_STRIKES,
        backoff: 2 ** MAX_STRIKES,
        stalled: true,
      });
      expect(2 ** MAX_STRIKES).toBe(32);
      // a good call removes one strike and leaves the pause alone
      expect(afterThreadedCall({ strikes: 2, backoff: 3 }, 1, 0.1)).toEqual({ strikes: 1, backoff: 3, stalled: false });
    });

    it("batchOffsets broadcasts batch dims as NumPy does", () => {
      const { aOffsets, bOffsets } = batchOffsets([2, 3], [2, 1], [3], 10, 100);
      expect(Array.from(aOffsets)).toEqual([0, 0, 0, 10, 10, 10]);
      expect(Array.from(bOffsets)).toEqual([0, 100, 200, 0, 100, 200]);
    });

    it("shareTfjsWasmHeap's patch: the one memory's limits flag 0x01 becomes 0x03 (shared), anything else is refused", () => {
      // magic, version, then a memory section (id 5) with one memory {flags, min 1, max 2}
      const mod = (sections: number[][]) => new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, ...sections.flat()]);
      const type = [1, 4, 1, 0x60, 0, 0]; // a type section, skipped over
      const shared = withSharedMemory(mod([type, [5, 4, 1, 0x01, 1, 2]]));
      expect(Array.from(shared)).toEqual(Array.from(mod([type, [5, 4, 1, 0x03, 1, 2]])));
      expect(() => new WebAssembly.Module(shared)).not.toThrow();
      const already = mod([[5, 4, 1, 0x03, 1, 2]]);
      expect(withSharedMemory(already)).toBe(already);
      expect(() => withSharedMemory(mod([[5, 3, 1, 0x00, 1]]))).toThrow(/flag 0x0; expected 0x01/);
      expect(() => withSharedMemory(mod([[5, 7, 2, 0x01, 1, 2, 0x01, 1, 2]]))).toThrow(/2 memories/);
      expect(() => withSharedMemory(mod([type]))).toThrow(/no memory section/);
      expect(() => withSharedMemory(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))).toThrow(/not a WebAssembly binary/);
    });

    it("in place in a shared host heap, on 1-3 threads: bit-identical to the copying path, nothing written outside output and scratch; an unshared heap is copied from", async () => {
      // A bare memory filled with a canary byte, with a bump allocator from 1 MiB: matmul-heap.wasm
      // must not write below it (where its static data or stack would land) or into the inputs.
      expect(await matmulThreadsReady(3)).toBe(3);
      for (const threads of [1, 2, 3, 0]) {
        // threads 0: one thread in an unshared memory, which cannot be worked in (copied instead)
        const memory =
          threads > 0
            ? new WebAssembly.Memory({ initial: 128, maximum: 1024, shared: true })
            : new WebAssembly.Memory({ initial: 128 });
        const bytes = new Uint8Array(memory.buffer);
        const FLOOR = 1 << 20;
        let top = FLOOR;
        let live = 0;
        const heap: HostHeap = {
          memory,
          malloc: (n) => {
            const p = top + 8; // 8-byte aligned, like tfjs-wasm's tensors
            top = p + n;
            live++;
            return p;
          },
          free: () => void live--,
        };
        const put = (x: Float32Array) => {
          const p = heap.malloc(4 * x.length);
          new Float32Array(memory.buffer, p, x.length).set(x);
          return p;
        };
        const cases: [number, number, number, number, boolean, boolean, boolean][] = [
          [1, 1, 1, 1, false, false, false],
          [1, 5, 7, 9, false, true, false],
          [1, 33, 300, 17, true, false, false],
          [1, 130, 129, 70, true, true, false],
          [3, 13, 19, 10, false, false, true], // broadcast B
          [2, 6, 0, 5, false, false, false], // K = 0: zeros
          ...Array.from({ length: threads > 1 ? 4 : 0 }, (): (typeof cases)[number] => [
            2,
            200,
            64,
            96,
            true,
            false,
            false,
          ]),
        ];
        const s0 = matmulThreadStats();
        const taken = () => matmulThreadStats().posted - matmulThreadStats().cancelled - (s0.posted - s0.cancelled);
        expect(hasDataSection(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 11, 1, 0]))).toBe(true);
        const runCase = ([batch, M, K, N, ta, tb, bcast]: (typeof cases)[number]) => {
          bytes.fill(0xa5);
          top = FLOOR;
          const a = rand(batch * M * K);
          const b = rand((bcast ? 1 : batch) * K * N);
          const want = matMul(a, b, M, K, N, { batch, transposeA: ta, transposeB: tb, broadcastB: bcast, threads: 1 });
          const pa = put(a);
          const pb = put(b);
          let pc = 0;
          const job = {
            batch,
            M,
            K,
            N,
            transposeA: ta,
            transposeB: tb,
            aLength: a.length,
            bLength: b.length,
            bOffsets: bcast ? new Int32Array(batch) : undefined,
          };
          const place = { heap, a: pa, b: pb, output: () => (pc = heap.malloc(4 * want.length)) };
          const got = runMatMul(
            job,
            threads > 0 ? () => expect.unreachable("copied") : (h, ai, bi) => (h.set(a, ai), h.set(b, bi)),
            Math.max(threads, 1),
            place,
          );
          expect(got === null, "ran in place").toBe(threads > 0);
          const c = got ?? new Float32Array(memory.buffer, pc, want.length);
          expect(
            Buffer.from(c.buffer, c.byteOffset, c.byteLength).equals(Buffer.from(want.buffer)),
            `${batch}x${M}x${K}x${N} ${ta} ${tb}, ${threads} threads`,
          ).toBe(true);
          expect(
            bytes.subarray(0, FLOOR).every((v) => v === 0xa5),
            "bytes below the allocations",
          ).toBe(true);
          expect(Array.from(new Float32Array(memory.buffer, pa, a.length))).toEqual(Array.from(a));
          expect(Array.from(new Float32Array(memory.buffer, pb, b.length))).toEqual(Array.from(b));
          expect(live, "scratch freed").toBe(threads > 0 ? 3 : 2);
          live = 0;
        };
        cases.forEach(runCase);
        // each product takes ~0.2 ms: on a loaded machine the workers may miss them; repeat until one took part
        for (let extra = 0; threads > 1 && taken() === 0 && extra < 500; extra++) runCase(cases[cases.length - 1]);
        if (threads > 1) expect(taken(), "jobs taken by workers").toBeGreaterThan(0);
        if (threads === 0) continue;
        // GELU: 150001 floats run on every thread (chunks of 16384), the rest on the caller's
        const g0 = taken();
        const runGeluCase = (n: number, backward: boolean) => {
          bytes.fill(0xa5);
          top = FLOOR;
          const x = rand(n).map((v) => 8 * v);
          const dy = rand(n);
          const want = runGelu(
            n,
            backward,
            (h, xi, di) => {
              h.set(x, xi);
              if (backward) h.set(dy, di);
            },
            undefined,
            1,
          )!.slice();
          const px = put(x);
          const pd = put(dy);
          let po = 0;
          expect(
            runGelu(
              n,
              backward,
              () => expect.unreachable("copied"),
              { heap, a: px, b: backward ? pd : 0, output: () => (po = heap.malloc(4 * n)) },
              threads,
            ),
          ).toBeNull();
          expect(
            Buffer.from(new Uint8Array(memory.buffer, po, 4 * n)).equals(Buffer.from(want.buffer)),
            `gelu n=${n} backward=${backward}, ${threads} threads`,
          ).toBe(true);
          expect(bytes.subarray(0, FLOOR).every((v) => v === 0xa5)).toBe(true);
          expect(Array.from(new Float32Array(memory.buffer, px, n))).toEqual(Array.from(x));
        };
        for (const n of [1, 2, 3, 4, 7, 1001, 150001, 150001, 150001])
          for (const backward of [false, true]) runGeluCase(n, backward);
        // as with the products: on a loaded machine the workers may miss every chunk; repeat until one took part
        for (let extra = 0; threads > 1 && taken() === g0 && extra < 200; extra++) runGeluCase(150001, extra % 2 === 1);
        if (threads > 1) expect(taken(), "GELU chunks taken by workers").toBeGreaterThan(g0);
      }
    });

    it("raw matMul and GELU (copying): 1 thread and N threads are bit-identical", async () => {
      const a = rand(5 * 333 * 77);
      const b = rand(77 * 130);
      const one = matMul(a, b, 333, 77, 130, { batch: 5, broadcastB: true, threads: 1 });
      const x = rand(100003).map((v) => 10 * v);
      const dy = rand(x.length);
      const gelus = (threads: number) =>
        [false, true].map((backward) =>
          runGelu(x.length, backward, (h, xi, di) => (h.set(x, xi), h.set(dy, di)), undefined, threads)!.slice(),
        );
      const gelu1 = gelus(1);
      for (const n of [2, 4]) {
        expect(await matmulThreadsReady(n)).toBe(n);
        for (let rep = 0; rep < 10; rep++) {
          const many = matMul(a, b, 333, 77, 130, { batch: 5, broadcastB: true, threads: n });
          expect(Buffer.from(many.buffer).equals(Buffer.from(one.buffer))).toBe(true);
          gelus(n).forEach((g, i) => expect(Buffer.from(g.buffer).equals(Buffer.from(gelu1[i].buffer))).toBe(true));
        }
      }
    });
  });

describe.skipIf(!available)("the fma and exact builds", () => {
  it("exact never fuses; fma agrees with exact within the tolerance, bit for bit iff not fused here, GELU bit for bit; neither depends on V8's compiler tier", () => {
    const a = rand(3 * 61 * 200);
    const b = rand(3 * 200 * 47);
    const run = (v: MatmulVariant) => {
      setMatmulVariant(v);
      return { out: matMul(a, b, 61, 200, 47, { batch: 3, threads: 1 }).slice(), info: matmulVariant()! };
    };
    const exact = run("exact");
    const fma = run("fma");
    expect(exact.info).toEqual({ variant: "exact", fused: false });
    expect(fma.info.variant).toBe("fma");
    const scale = Math.max(1, ...Array.from(exact.out, Math.abs));
    expect(maxAbsDiff(fma.out, exact.out) / scale).toBeLessThanOrEqual(TOL);
    expect(Buffer.from(fma.out.buffer).equals(Buffer.from(exact.out.buffer))).toBe(!fma.info.fused);
    console.log(
      `fma build: ${fma.info.fused ? "fused" : "not fused"} on this CPU; max |fma - exact| ${(maxAbsDiff(fma.out, exact.out) / scale).toExponential(2)} (relative)`,
    );
    // GELU has no multiply-add to fuse: the same bits in both builds
    const x = rand(1003).map((v) => 8 * v);
    const dy = rand(1003);
    const gelus = MATMUL_VARIANTS.map((v) => {
      setMatmulVariant(v);
      return [false, true].map((backward) =>
        runGelu(x.length, backward, (h, xi, di) => (h.set(x, xi), h.set(dy, di)))!.slice(),
      );
    });
    gelus[1].forEach((g, i) =>
      expect(Buffer.from(g.buffer).equals(Buffer.from(gelus[0][i].buffer)), `gelu ${i ? "backward" : "forward"}`).toBe(
        true,
      ),
    );
    // each build's outputs (4 transposes x 2 shapes x 1 and 2 threads) hashed under Liftoff only and TurboFan only
    for (const v of MATMUL_VARIANTS) {
      const hashes = ["--liftoff-only", "--no-liftoff"].map((flag) =>
        execFileSync(process.execPath, [flag, "--import", "tsx", "test/fixtures/matmulHash.ts", v], {
          encoding: "utf8",
        }).trim(),
      );
      expect(hashes[0], `${v}: Liftoff vs TurboFan`).toMatch(/^[0-9a-f]{64}$/);
      expect(hashes[1], `${v}: Liftoff vs TurboFan`).toBe(hashes[0]);
    }
    setMatmulVariant("fma");
  });

  it("RLVR_MATMUL names a build; anything else is an error naming both", () => {
    expect(parseVariant("exact")).toBe("exact");
    expect(parseVariant("fma")).toBe("fma");
    expect(parseVariant(undefined)).toBeNull();
    expect(parseVariant("")).toBeNull();
    expect(() => parseVariant("fast")).toThrow(/RLVR_MATMUL="fast": use one of fma, exact/);
  });
});
