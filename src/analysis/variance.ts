// The historical variance score (Wang et al., 1-shot RLVR): for each example, the population
// variance of its training accuracy over epochs; examples are ranked by it, largest first
// (ties broken by index so the ranking is deterministic).

export function variance(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return xs.reduce((a, x) => a + (x - m) ** 2, 0) / xs.length;
}

export function historicalVariance(history: number[][]): { index: number; variance: number; rank: number }[] {
  return history
    .map((h, index) => ({ index, variance: variance(h) }))
    .sort((a, b) => b.variance - a.variance || a.index - b.index)
    .map((r, i) => ({ ...r, rank: i + 1 }));
}
