// Which training examples each GRPO step sees when an experiment trains on several: the examples
// form a stream of epochs, each epoch the whole list in an order shuffled by the seeded stream
// `examples/epoch-<e>` (Fisher–Yates), and step s (from 1) takes the next `copies` entries of that
// stream, one group each — sampling without replacement, epoch by epoch, as a shuffled data loader
// does. With one example every group is that example, as in 1-shot RLVR. A pure function of
// (count, copies, step, seed), so a resumed run needs no saved sampler state.
import { makeRng } from "../engine/rng.js";

/** The seeded order of one epoch: a permutation of 0 … count−1. */
export function epochOrder(count: number, epoch: number, seed: number): number[] {
  const order = Array.from({ length: count }, (_, i) => i);
  const rng = makeRng(seed, `examples/epoch-${epoch}`);
  for (let i = count - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/** The example indices of step `step`'s `copies` groups. */
export function stepExamples(count: number, copies: number, step: number, seed: number): number[] {
  if (!Number.isInteger(count) || count < 1) throw new Error(`stepExamples: need at least one example, got ${count}`);
  if (!Number.isInteger(step) || step < 1) throw new Error(`stepExamples: steps count from 1, got ${step}`);
  const out: number[] = [];
  const orders = new Map<number, number[]>();
  for (let g = (step - 1) * copies; g < step * copies; g++) {
    const epoch = Math.floor(g / count);
    if (!orders.has(epoch)) orders.set(epoch, epochOrder(count, epoch, seed));
    out.push(orders.get(epoch)![g % count]);
  }
  return out;
}
