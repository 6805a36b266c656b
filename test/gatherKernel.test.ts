// Our GatherV2 on the wasm backend (whole rows copied heap to heap) against tfjs-wasm's own: the same
// bytes for float32 and int32, 1-D to 3-D inputs, 0-D to 2-D indices, repeated indices; other axes and
// batch dims go to the stock kernel.
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../src/engine/backend.js";
import { makeRng } from "../src/engine/rng.js";
import { installFastKernels, uninstallFastKernels } from "../src/kernels/tfjs/register.js";
import { matmulAvailable, matmulUnavailableReason } from "../src/kernels/matmul.js";
import { availableOrFailInCI } from "./ci.js";

const ok = availableOrFailInCI(
  "test/gatherKernel.test.ts: src/kernels/matmul.wasm",
  matmulAvailable(),
  () => `${matmulUnavailableReason()} (build it with npm run build:kernels)`,
);

describe.skipIf(!ok)("GatherV2 on wasm", () => {
  beforeAll(async () => {
    await selectBackend("wasm");
  });
  afterAll(() => uninstallFastKernels());

  it("copies the same bytes as the stock kernel", () => {
    const rng = makeRng(4, "gather");
    const cases: { shape: number[]; idx: number[]; idxShape: number[]; axis?: number; batchDims?: number }[] = [
      { shape: [7], idx: [3, 0, 6, 3], idxShape: [4] },
      { shape: [9, 5], idx: [8, 1, 1, 0], idxShape: [2, 2] },
      { shape: [6, 3, 4], idx: [5], idxShape: [1] },
      { shape: [6, 3, 4], idx: [2], idxShape: [] },
      { shape: [5, 4], idx: [3, 1, 0], idxShape: [3], axis: 1 },
      { shape: [2, 5, 3], idx: [4, 0, 1, 2], idxShape: [2, 2], axis: 1, batchDims: 1 },
    ];
    const datas = cases.map(({ shape }) => {
      const n = shape.reduce((a, b) => a * b, 1);
      return {
        f: Array.from({ length: n }, () => rng.next() - 0.5),
        i: Array.from({ length: n }, () => Math.floor(rng.next() * 1e6)),
      };
    });
    const run = () =>
      cases.flatMap(({ shape, idx, idxShape, axis, batchDims }, c) =>
        (["float32", "int32"] as const).map((dtype) => {
          const data = dtype === "int32" ? datas[c].i : datas[c].f;
          return tf.tidy(() => {
            const x = tf.tensor(data, shape, dtype);
            const y = tf.gather(x, tf.tensor(idx, idxShape, "int32"), axis ?? 0, batchDims ?? 0);
            return { shape: y.shape, bytes: Buffer.from(y.dataSync().buffer).toString("base64") };
          });
        }),
      );
    uninstallFastKernels();
    const want = run();
    expect(installFastKernels("wasm")).toBe(true);
    const before = tf.memory().numTensors;
    const got = run();
    expect(tf.memory().numTensors).toBe(before);
    expect(got).toEqual(want);
  });
});
