// The column names of metrics.csv, defined once: the experiment layer writes them
// (src/experiment/metrics.ts, with their descriptions) and the analyses read them.
// Per-benchmark columns are `<benchmark><suffix>`, e.g. `lin_greedy_format`.

export const COL = {
  step: "step",
  trainAccuracy: "train_accuracy",
  meanReward: "mean_reward",
  trainFormatRate: "train_format_rate",
  loss: "loss",
  pgLoss: "pg_loss",
  kl: "kl",
  entropy: "entropy",
  clipFrac: "clip_frac",
  gradNorm: "grad_norm",
  responseLength: "response_length",
  groupsWithSignal: "groups_with_signal",
  procCareful: "proc_careful",
  procCheck: "proc_check",
  procHasty: "proc_hasty",
  procNomarker: "proc_nomarker",
  heldoutGreedy: "heldout_greedy",
  heldoutFormat: "heldout_format",
  heldoutAccGivenFormat: "heldout_acc_given_format",
  heldoutSampled: "heldout_sampled",
} as const;

/** suffixes of the per-benchmark columns */
export const BENCH = {
  greedy: "_greedy",
  greedyFormat: "_greedy_format",
  greedyAccGivenFormat: "_greedy_acc_given_format",
  sampled: "_sampled",
  formatRate: "_format_rate",
  sampledAccGivenFormat: "_sampled_acc_given_format",
  passAt: (k: number) => `_pass@${k}`,
  length: "_length",
  recheckRate: "_recheck_rate",
  proc: (procedure: string) => `_proc_${procedure}`,
} as const;

/** training-rollout procedure share column */
export const procColumn = (procedure: string) => `proc_${procedure}`;
