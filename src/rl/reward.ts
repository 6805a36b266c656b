// The reward a rollout gets in GRPO, from the verifier's two parts: `outcome` is the verifier's
// reward (graded form and the right answer), `format` is 1 for any answer in the graded form,
// whatever its value (the paper's format-only reward).
export const REWARDS = ["outcome", "format"] as const;
export type RewardMode = (typeof REWARDS)[number];

export function rewardOf(parts: { format: 0 | 1; answer: 0 | 1 }, mode: RewardMode): 0 | 1 {
  if (mode === "outcome") return parts.answer;
  if (mode === "format") return parts.format;
  throw new Error(`unknown reward ${JSON.stringify(mode)}; use one of ${REWARDS.join(", ")}`);
}
