import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../src/engine/backend.js";
import { selectFastKernels } from "../src/kernels/select.js";
import { loadModel } from "../src/model/load.js";
await selectBackend("wasm");
console.log(selectFastKernels("fast").message);
const m: any = await (loadModel as any)("/tmp/oneshot-rlvr/hf-random-smollm2-135m-bf16-seed1");
const model = m.model ?? m;
const B = 8,
  T = 160;
const ids = Array.from({ length: B * T }, (_, i) => 1 + ((i * 7919) % 40000));
const inputs = tf.tensor2d(ids, [B, T], "int32"),
  targets = tf.tensor2d(
    ids.map((x) => (x * 3) % 40000),
    [B, T],
    "int32",
  );
const run = () => {
  const { value, grads } = tf.variableGrads(() => {
    const { logp, entropy } = model.tokenLogProbs(inputs, targets, { temperature: 1, entropy: true });
    return logp.sum().add(entropy.sum().mul(0.001)) as tf.Scalar;
  });
  value.dataSync();
  tf.dispose([value, ...Object.values(grads)]);
};
run();
(globalThis as any).__prof = new Map();
const t0 = performance.now();
const prof = await tf.profile(() => {
  run();
  return tf.scalar(0);
});
const total = performance.now() - t0;
for (const [k, [ms, n, fl]] of [...((globalThis as any).__prof as Map<string, [number, number, number]>)]
  .sort((a, b) => b[1][0] - a[1][0])
  .slice(0, 14))
  console.log(k.padEnd(34), ms.toFixed(0), "ms", n, "calls", (fl / ms / 1e6).toFixed(1), "GFLOP/s");
const by = new Map<string, number>();
for (const k of prof.kernels) by.set(k.name, (by.get(k.name) ?? 0) + (k.kernelTimeMs as number));
const rows = [...by].sort((a, b) => b[1] - a[1]);
console.log(`wall ${total.toFixed(0)} ms, kernels ${prof.kernels.length}`);
for (const [n, ms] of rows.slice(0, 22)) console.log(n.padEnd(24), ms.toFixed(1));
process.exit(0);
