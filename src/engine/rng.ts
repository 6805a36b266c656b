// Seeded randomness. Every host-side random draw in the project comes from a stream made here,
// derived from the experiment seed and a stream name, so that adding a draw in one place does
// not shift the numbers drawn in another. Math.random is never used.
import seedrandom from "seedrandom";

export interface Rng {
  /** uniform in [0, 1) */
  next(): number;
  /** integer in [lo, hi] inclusive */
  int(lo: number, hi: number): number;
  /** one element of a non-empty array */
  pick<T>(xs: readonly T[]): T;
  /** index drawn from unnormalised non-negative weights */
  weighted(weights: readonly number[]): number;
  /** the generator state, for checkpoints */
  state(): object;
}

function wrap(prng: seedrandom.PRNG): Rng {
  return {
    next: () => prng.quick(),
    int(lo, hi) {
      return lo + Math.floor(prng.quick() * (hi - lo + 1));
    },
    pick(xs) {
      if (xs.length === 0) throw new Error("rng.pick: empty array");
      return xs[Math.floor(prng.quick() * xs.length)];
    },
    weighted(weights) {
      let total = 0;
      for (const w of weights) total += w;
      let u = prng.quick() * total;
      for (let i = 0; i < weights.length; i++) {
        u -= weights[i];
        if (u < 0) return i;
      }
      return weights.length - 1;
    },
    state: () => (prng as unknown as { state(): object }).state(),
  };
}

/** A named stream derived from a seed: makeRng(1, "rollout") and makeRng(1, "eval") are independent. */
export function makeRng(seed: number | string, stream: string): Rng {
  return wrap(seedrandom(`${seed}/${stream}`, { state: true }));
}

/** Restores a stream from a state saved with rng.state(). */
export function restoreRng(state: object): Rng {
  return wrap(seedrandom("", { state: state as unknown as boolean }));
}
