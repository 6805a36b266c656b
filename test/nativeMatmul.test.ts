// The native matmul (src/native/gemm.c through the addon) against the WebAssembly kernel it stands in
// for: the same bits for every transpose, batch and broadcast, across its register-tile, K-block and
// column-block edges, with the fma and exact builds, on AVX2 and AVX-512, on 1-3 threads; and through
// tf.matMul in place in the tfjs-wasm heap, forward and gradient.
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../src/engine/backend.js";
import { nativeAddon, nativeUnavailableReason } from "../src/engine/native.js";
import { makeRng } from "../src/engine/rng.js";
import {
  matMul,
  matmulNative,
  matmulThreadStats,
  matmulVariant,
  setMatmulNative,
  setMatmulVariant,
} from "../src/kernels/matmul.js";
import { selectFastKernels } from "../src/kernels/select.js";
import { availableOrFailInCI } from "./ci.js";

const addon = nativeAddon();
const ok = availableOrFailInCI(
  "test/nativeMatmul.test.ts: build/rlvr_native.node",
  addon !== null,
  () => `${nativeUnavailableReason()} (build it with npm run build:native)`,
);

const SHAPES: [number, number, number, number][] = [
  [1, 1, 1, 1],
  [5, 7, 9, 2],
  [8, 16, 32, 1],
  [6, 300, 17, 3], // K over one K block (256)
  [97, 40, 33, 1], // M over one row block (96), N over one 32-column tile
  [13, 9, 600, 2], // N over one column block (512)
  [3, 0, 5, 2], // K = 0: zeros
  [200, 64, 256, 1], // an organism-sized product, split into row runs on threads
];

function run(
  a: Float32Array,
  b: Float32Array,
  s: [number, number, number, number],
  o: { ta: boolean; tb: boolean; broadcastB: boolean; threads: number },
): Float32Array {
  const [M, K, N, batch] = s;
  return matMul(a, b, M, K, N, {
    transposeA: o.ta,
    transposeB: o.tb,
    batch,
    broadcastB: o.broadcastB,
    threads: o.threads,
  });
}

describe.skipIf(!ok)("native matmul", () => {
  afterAll(() => {
    setMatmulNative(true);
    setMatmulVariant("fma");
    addon?.setIsa("best");
  });

  it("names its instruction set; switched off, it says so", () => {
    expect(["avx2", "avx512"]).toContain(matmulNative().isa);
    setMatmulNative(false);
    expect(matmulNative()).toEqual({ isa: null, reason: "switched off" });
    setMatmulNative(true);
  });

  const isas = addon?.info().isa === "avx512" ? (["avx512", "avx2"] as const) : (["avx2"] as const);
  for (const isa of isas) {
    for (const variant of ["fma", "exact"] as const) {
      it(`${isa}, ${variant} build: bit-identical to the WebAssembly kernel on 1-3 threads`, () => {
        addon!.setIsa(isa);
        setMatmulVariant(variant);
        const rng = makeRng(11, `native-${isa}-${variant}`);
        let calls = 0;
        for (const s of SHAPES) {
          const [M, K, N, batch] = s;
          for (const ta of [false, true])
            for (const tb of [false, true])
              for (const broadcastB of [false, true]) {
                const a = Float32Array.from({ length: batch * M * K }, () => rng.next() - 0.5);
                const b = Float32Array.from({ length: (broadcastB ? 1 : batch) * K * N }, () => rng.next() - 0.5);
                setMatmulNative(false);
                const want = run(a, b, s, { ta, tb, broadcastB, threads: 1 });
                setMatmulNative(true);
                const before = matmulThreadStats().native;
                for (const threads of [1, 2, 3]) {
                  const got = run(a, b, s, { ta, tb, broadcastB, threads });
                  expect(
                    Buffer.from(got.buffer).equals(Buffer.from(want.buffer)),
                    `${s} ta=${ta} tb=${tb} T=${threads}`,
                  ).toBe(true);
                }
                calls += matmulThreadStats().native - before;
              }
        }
        expect(calls).toBeGreaterThan(0);
      });
    }
  }

  it("a dropped multiply-add fusion would show: fma and exact differ on these products", () => {
    addon!.setIsa("best");
    const v = matmulVariant();
    if (!v?.fused) return; // V8 does not fuse here: both builds are exact, nothing to tell apart
    const rng = makeRng(5, "native-fused");
    const a = Float32Array.from({ length: 64 * 64 }, () => rng.next() - 0.5);
    const b = Float32Array.from({ length: 64 * 64 }, () => rng.next() - 0.5);
    setMatmulVariant("fma");
    const fused = matMul(a, b, 64, 64, 64);
    setMatmulVariant("exact");
    const exact = matMul(a, b, 64, 64, 64);
    setMatmulVariant("fma");
    expect(Buffer.from(fused.buffer).equals(Buffer.from(exact.buffer))).toBe(false);
  });

  describe("through tf.matMul on the wasm backend", () => {
    beforeAll(async () => {
      await selectBackend("wasm");
      selectFastKernels("fast");
    });
    afterAll(() => {
      selectFastKernels("stock");
    });

    it("in place in the tfjs-wasm heap: values and gradients bit-identical to the WebAssembly kernel", () => {
      const rng = makeRng(2, "native-tf");
      const x = tf.tensor3d(
        Float32Array.from({ length: 4 * 37 * 70 }, () => rng.next() - 0.5),
        [4, 37, 70],
      );
      const w = tf.tensor2d(
        Float32Array.from({ length: 70 * 45 }, () => rng.next() - 0.5),
        [70, 45],
      );
      const f = (x: tf.Tensor3D, w: tf.Tensor2D) =>
        tf
          .matMul(x, w.expandDims(0).tile([4, 1, 1]) as tf.Tensor3D)
          .square()
          .sum();
      const both = () => {
        const [y, ...g] = tf.tidy(() => [
          tf.matMul(x, w.expandDims(0).tile([4, 1, 1]) as tf.Tensor3D, false, false),
          ...tf.grads(f as (...a: tf.Tensor[]) => tf.Tensor)([x, w]),
        ]);
        const out = [y, ...g].map((t) => Buffer.from((t.dataSync() as Float32Array).buffer).toString("base64"));
        tf.dispose([y, ...g]);
        return out;
      };
      setMatmulNative(false);
      const want = both();
      setMatmulNative(true);
      const before = matmulThreadStats();
      const tensors = tf.memory().numTensors;
      const got = both();
      expect(tf.memory().numTensors).toBe(tensors);
      expect(matmulThreadStats().native).toBeGreaterThan(before.native);
      expect(matmulThreadStats().inPlace).toBeGreaterThan(before.inPlace);
      expect(got).toEqual(want);
      tf.dispose([x, w]);
    });
  });
});
