// Saturation and post-saturation gain, as pure functions of a run's per-step numbers.
//   saturationStep: the first step s (>= window) at which the mean training accuracy over the
//     trailing window (steps s−window+1 … s) reaches the threshold; null if never.
//   heldoutAtSaturation: mean held-out greedy accuracy at the first evaluation at or after the
//     saturation step (so any gain reported after it happened strictly after saturation).
//   postSaturationGain = heldoutFinal − heldoutAtSaturation (null without saturation).

export function saturationStep(
  trainAccuracy: { step: number; value: number }[],
  threshold: number,
  window: number,
): number | null {
  const rows = [...trainAccuracy].sort((a, b) => a.step - b.step);
  for (let i = window - 1; i < rows.length; i++) {
    let s = 0;
    for (let j = i - window + 1; j <= i; j++) s += rows[j].value;
    if (s / window >= threshold - 1e-12) return rows[i].step;
  }
  return null;
}

export interface EvalPoint {
  step: number;
  /** mean greedy held-out accuracy over benchmarks */
  heldout: number;
  /** mean share of greedy answers in the graded form */
  format: number;
  /** mean greedy accuracy among graded-form answers (null where no benchmark has any) */
  accGivenFormat: number | null;
  /** mean sampled accuracy (null when eval.n = 0) */
  sampled: number | null;
  /** per-benchmark greedy accuracy and graded-form share, for the format/skill split of the gain */
  perBenchmark?: Record<string, { greedy: number; format: number }>;
}

/**
 * Splits a change in mean held-out accuracy between two evaluations into a format part and a
 * skill part, exactly: per benchmark, accuracy = f · a with f the graded-form share and a the
 * accuracy among graded answers (0 when f = 0), so Δacc = a₀·Δf + f₁·Δa; both parts are then
 * averaged over benchmarks. Returns null without per-benchmark data.
 */
export function splitGain(from: EvalPoint, to: EvalPoint): { format: number; skill: number } | null {
  if (!from.perBenchmark || !to.perBenchmark) return null;
  const names = Object.keys(from.perBenchmark).filter((n) => to.perBenchmark![n]);
  if (names.length === 0) return null;
  let format = 0;
  let skill = 0;
  for (const n of names) {
    const a = from.perBenchmark[n];
    const b = to.perBenchmark[n];
    const a0 = a.format > 0 ? a.greedy / a.format : 0;
    const a1 = b.format > 0 ? b.greedy / b.format : 0;
    format += a0 * (b.format - a.format);
    skill += b.format * (a1 - a0);
  }
  return { format: format / names.length, skill: skill / names.length };
}

export interface Summary {
  saturationStep: number | null;
  saturationEvalStep: number | null;
  heldoutAtStart: number;
  heldoutAtSaturation: number | null;
  heldoutFinal: number;
  heldoutMax: number;
  heldoutMaxStep: number;
  postSaturationGain: number | null;
  /** the part of postSaturationGain due to more answers in the graded form (see splitGain) */
  postSaturationGainFromFormat: number | null;
  /** the part due to higher accuracy among graded-form answers */
  postSaturationGainFromAccuracyGivenFormat: number | null;
  /** binomial standard error of a held-out accuracy near heldoutFinal, over all problems */
  heldoutStandardError: number;
  heldoutProblems: number;
  formatAtStart: number;
  formatAtSaturation: number | null;
  formatFinal: number;
  accGivenFormatAtStart: number | null;
  accGivenFormatAtSaturation: number | null;
  accGivenFormatFinal: number | null;
  sampledAtStart: number | null;
  sampledAtSaturation: number | null;
  sampledFinal: number | null;
  finalTrainAccuracy: number | null;
}

export function summarise(
  trainAccuracy: { step: number; value: number }[],
  evals: EvalPoint[],
  threshold: number,
  window: number,
  heldoutProblems: number,
): Summary {
  if (evals.length === 0) throw new Error("summarise: no evaluations");
  const ev = [...evals].sort((a, b) => a.step - b.step);
  const sat = saturationStep(trainAccuracy, threshold, window);
  const atSat = sat === null ? null : (ev.find((e) => e.step >= sat) ?? null);
  const first = ev[0];
  const last = ev[ev.length - 1];
  const max = ev.reduce((a, e) => (e.heldout > a.heldout ? e : a), ev[0]);
  const se = heldoutProblems > 0 ? Math.sqrt((last.heldout * (1 - last.heldout)) / heldoutProblems) : NaN;
  const split = atSat ? splitGain(atSat, last) : null;
  const lastTrain = trainAccuracy.length ? [...trainAccuracy].sort((a, b) => a.step - b.step).slice(-window) : [];
  return {
    saturationStep: sat,
    saturationEvalStep: atSat ? atSat.step : null,
    heldoutAtStart: first.heldout,
    heldoutAtSaturation: atSat ? atSat.heldout : null,
    heldoutFinal: last.heldout,
    heldoutMax: max.heldout,
    heldoutMaxStep: max.step,
    postSaturationGain: atSat ? last.heldout - atSat.heldout : null,
    postSaturationGainFromFormat: split?.format ?? null,
    postSaturationGainFromAccuracyGivenFormat: split?.skill ?? null,
    heldoutStandardError: se,
    heldoutProblems,
    formatAtStart: first.format,
    formatAtSaturation: atSat ? atSat.format : null,
    formatFinal: last.format,
    accGivenFormatAtStart: first.accGivenFormat,
    accGivenFormatAtSaturation: atSat ? atSat.accGivenFormat : null,
    accGivenFormatFinal: last.accGivenFormat,
    sampledAtStart: first.sampled,
    sampledAtSaturation: atSat ? atSat.sampled : null,
    sampledFinal: last.sampled,
    finalTrainAccuracy: lastTrain.length ? lastTrain.reduce((a, r) => a + r.value, 0) / lastTrain.length : null,
  };
}
