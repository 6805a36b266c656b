// The run's console lines: one per step (training statistics, the latest held-out accuracy, rate
// and ETA) and one per evaluation (per-benchmark greedy accuracy and the means).
import type { EvalReport } from "../eval/report.js";
import type { StepProgress, StepStats } from "../rl/trainer.js";

export const fmtTime = (s: number) =>
  s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${s.toFixed(0)}s`;

export function describeEval(r: EvalReport): string {
  const m = r.mean;
  const perBenchmark = Object.entries(r.benchmarks)
    .map(([n, b]) => `${n} ${b.greedy.toFixed(3)}`)
    .join("  ");
  const sampled = m.sampled !== null ? `, sampled ${m.sampled.toFixed(3)}` : "";
  return `${perBenchmark}  | mean ${m.greedy.toFixed(3)} (format ${m.greedyFormat.toFixed(3)}, acc|format ${m.greedyAccGivenFormat?.toFixed(3) ?? "-"}${sampled})`;
}

export function describeStep(
  s: StepStats,
  latest: { lastHeldout: number; lastEvalStep: number },
  secondsPerStep: number,
  stepsLeft: number,
): string {
  return (
    `train_acc ${s.trainAccuracy.toFixed(3)}  fmt ${s.trainFormatRate.toFixed(2)}  kl ${s.kl.toExponential(1)}  ` +
    `ent ${s.entropy.toFixed(3)}  len ${s.responseLength.toFixed(1)}  signal ${s.groupsWithSignal.toFixed(2)}  ` +
    `held-out ${latest.lastHeldout.toFixed(3)} (@${latest.lastEvalStep})  ${secondsPerStep.toFixed(2)} s/step  ` +
    `ETA ${fmtTime(secondsPerStep * stepsLeft)}`
  );
}

/** A line inside a long step: the rollouts' rate, then each micro-batch of the update with an ETA. */
export function describeStepProgress(p: StepProgress): string {
  if (p.phase === "rollouts")
    return `rollouts: ${p.tokens} tokens in ${fmtTime(p.seconds)} (${(p.tokens / Math.max(p.seconds, 1e-9)).toFixed(1)} tokens/s)`;
  const eta = (p.seconds / p.done) * (p.of - p.done);
  return `update: micro-batch ${p.done}/${p.of} in ${fmtTime(p.seconds)}, ETA ${fmtTime(eta)}`;
}
