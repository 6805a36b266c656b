// Group-relative advantages (GRPO): each group holds the G rollouts of one copy of the prompt.
//   population: (r − mean) / (σ + ε), σ = sqrt(Σ(r − mean)² / G)
//   sample:     (r − mean) / (s + ε), s = sqrt(Σ(r − mean)² / (G − 1))
//   none:        r − mean            (Dr. GRPO: no division by the std)
// An all-equal group gives zeros in every mode.

export const STD_MODES = ["population", "sample", "none"] as const;
export type StdMode = (typeof STD_MODES)[number];

/** rewards: [numGroups * groupSize], group-major. Returns advantages of the same shape. */
export function groupAdvantages(rewards: readonly number[], groupSize: number, std: StdMode, eps: number): number[] {
  if (!Number.isInteger(groupSize) || groupSize < 1 || rewards.length % groupSize !== 0) {
    throw new Error(`groupAdvantages: ${rewards.length} rewards do not split into groups of ${groupSize}`);
  }
  if (!(STD_MODES as readonly string[]).includes(std))
    throw new Error(`groupAdvantages: unknown std mode ${JSON.stringify(std)}; use one of ${STD_MODES.join(", ")}`);
  const out = new Array<number>(rewards.length);
  for (let g = 0; g < rewards.length; g += groupSize) {
    const grp = rewards.slice(g, g + groupSize);
    const mean = grp.reduce((a, b) => a + b, 0) / groupSize;
    const ss = grp.reduce((a, r) => a + (r - mean) ** 2, 0);
    let scale = 1;
    if (std !== "none") {
      const denom = std === "population" ? groupSize : Math.max(1, groupSize - 1);
      scale = 1 / (Math.sqrt(ss / denom) + eps);
    }
    for (let i = 0; i < groupSize; i++) {
      const a = grp[i] - mean;
      out[g + i] = a === 0 ? 0 : a * scale;
    }
  }
  return out;
}

/** Share of groups whose rewards are not all equal (groups that still carry a learning signal). */
export function groupsWithSignal(rewards: readonly number[], groupSize: number): number {
  let n = 0;
  let total = 0;
  for (let g = 0; g < rewards.length; g += groupSize) {
    total++;
    const grp = rewards.slice(g, g + groupSize);
    if (grp.some((r) => r !== grp[0])) n++;
  }
  return total > 0 ? n / total : 0;
}
