// Small-sample statistics for comparing runs across seeds: mean, sample standard deviation, the
// Student t quantile and a two-sided t confidence interval for the mean. Pure functions, no I/O.
// Not a general statistics library: no hypothesis tests, no bootstrap, no weighting.
//
// Method (also printed by `npm run compare`): for n values x₁…xₙ the interval is
//   mean ± t_{(1+level)/2, n−1} · s / √n,   s = sample standard deviation (divisor n − 1),
// i.e. the usual t interval, appropriate for the handful of seeds a run has; with n = 1 there is
// no interval (half-width null). Missing values (null / NaN) are dropped before computing.

/** log Γ(x) for x > 0 (Lanczos approximation, g = 7, 9 terms; ~15 significant digits). */
export function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const xx = x - 1;
  let a = c[0];
  const t = xx + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (xx + i);
  return 0.5 * Math.log(2 * Math.PI) + (xx + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Continued fraction for the incomplete beta function (modified Lentz). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return h;
}

/** Regularised incomplete beta I_x(a, b) for a, b > 0 and 0 <= x <= 1. */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const lnFront = logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x);
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(lnFront) * betaContinuedFraction(a, b, x)) / a;
  return 1 - (Math.exp(lnFront) * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** P(T <= t) for Student's t with df degrees of freedom (df > 0, not necessarily an integer). */
export function studentTCdf(t: number, df: number): number {
  if (!(df > 0)) throw new Error(`studentTCdf: df must be > 0, got ${df}`);
  const tail = 0.5 * incompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t >= 0 ? 1 - tail : tail;
}

/** The p-quantile of Student's t with df degrees of freedom (0 < p < 1), by bisection on the CDF. */
export function studentTQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new Error(`studentTQuantile: p must be in (0, 1), got ${p}`);
  if (!(df > 0)) throw new Error(`studentTQuantile: df must be > 0, got ${df}`);
  if (p === 0.5) return 0;
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  let lo = 0;
  let hi = 1;
  while (studentTCdf(hi, df) < p) hi *= 2;
  for (let i = 0; i < 200 && hi - lo > 1e-12 * Math.max(1, hi); i++) {
    const mid = (lo + hi) / 2;
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** The values that are real numbers (null, undefined and NaN dropped). */
export function present(xs: readonly (number | null | undefined)[]): number[] {
  return xs.filter((x): x is number => typeof x === "number" && !Number.isNaN(x));
}

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  return xs.reduce((a, x) => a + x, 0) / xs.length;
}

/** Sample standard deviation (divisor n − 1); NaN for fewer than 2 values. */
export function sampleStd(xs: readonly number[]): number {
  if (xs.length < 2) return NaN;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

export interface MeanCI {
  /** number of values used (after dropping missing ones) */
  n: number;
  /** number of values given, missing ones included */
  of: number;
  mean: number | null;
  sd: number | null;
  /** t_{(1+level)/2, n−1} (null for n < 2) */
  t: number | null;
  /** half-width of the interval (null for n < 2) */
  halfWidth: number | null;
  lo: number | null;
  hi: number | null;
  level: number;
}

/** Mean and two-sided t confidence interval of the present values in xs. */
export function meanCI(xs: readonly (number | null | undefined)[], level = 0.95): MeanCI {
  if (!(level > 0 && level < 1)) throw new Error(`meanCI: level must be in (0, 1), got ${level}`);
  const v = present(xs);
  const n = v.length;
  if (n === 0) return { n, of: xs.length, mean: null, sd: null, t: null, halfWidth: null, lo: null, hi: null, level };
  const m = mean(v);
  if (n === 1) return { n, of: xs.length, mean: m, sd: null, t: null, halfWidth: null, lo: null, hi: null, level };
  const sd = sampleStd(v);
  const t = studentTQuantile((1 + level) / 2, n - 1);
  const halfWidth = (t * sd) / Math.sqrt(n);
  return { n, of: xs.length, mean: m, sd, t, halfWidth, lo: m - halfWidth, hi: m + halfWidth, level };
}

export const CI_METHOD =
  "mean ± half-width of the 95% confidence interval over seeds, t distribution with n−1 degrees of freedom: " +
  "mean ± t(0.975, n−1)·s/√n with s the sample standard deviation; no interval for n = 1; " +
  "runs where a value is missing (e.g. never saturated) are left out and the count is shown as (n/of).";
