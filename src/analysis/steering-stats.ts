// Statistics of steering vectors: difference of means, cosine, shares with 95 % intervals, the
// slope of a share over the steering scale, the KL divergence between two next-token distributions,
// and the share of a gain that steering recovers. Pure functions, no I/O.
//
// Intervals (also written into every steering output as INTERVAL_METHOD):
//  - a share is a mean over problems of per-problem values v_i in [0, 1] (one greedy answer: 0/1;
//    n samples: the share of them). Its standard error is the plug-in se² = Σ(v_i − v̄)² / P², which
//    treats problems as independent and the samples of one problem as possibly alike; the interval
//    is Wilson's score interval at the effective sample size n_eff = v̄(1 − v̄) / se² (clamped to
//    [1, all samples]; all samples when se = 0). With one outcome per problem this is exactly the
//    Wilson interval over problems.
//  - a mean over benchmarks (as `npm run eval` reports) combines the benchmarks' standard errors:
//    se² = Σ se_b² / B², then the same Wilson step;
//  - a slope over scales is the least-squares slope with a normal interval, from the shares'
//    standard errors taken as independent (the same seed at every scale makes them positively
//    correlated, so this overstates the slope's uncertainty rather than understating it).

export const Z95 = 1.959963984540054;

export const INTERVAL_METHOD =
  "95% intervals: shares are means over problems of per-problem values; se² = Σ(v−v̄)²/P² (problems independent, " +
  "samples of one problem possibly alike); Wilson score interval at the effective sample size v̄(1−v̄)/se² " +
  "(= Wilson over problems for one answer per problem); means over benchmarks: se² = Σse_b²/B², same Wilson step; " +
  "slopes: least squares over scales, normal interval with the shares' se taken as independent (conservative).";

export interface Interval {
  value: number;
  lo: number;
  hi: number;
}

export interface ShareEstimate extends Interval {
  se: number;
  /** effective sample size used for the Wilson interval */
  nEff: number;
}

/** Wilson score interval for a share p observed over n (possibly effective, non-integer) trials. */
export function wilson(p: number, n: number, z = Z95): { lo: number; hi: number } {
  if (!(p >= 0 && p <= 1)) throw new Error(`wilson: share must be in [0, 1], got ${p}`);
  if (!(n > 0)) return { lo: 0, hi: 1 };
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  // at p = 0 (1) the lower (upper) bound is exactly 0 (1); computed, it would be off by rounding
  return { lo: p === 0 ? 0 : Math.max(0, centre - half), hi: p === 1 ? 1 : Math.min(1, centre + half) };
}

/** The Wilson step shared by every share: p with standard error se, at most `maxN` samples behind it. */
export function wilsonAtSe(p: number, se: number, maxN: number): ShareEstimate {
  const nEff = se > 0 ? Math.min(maxN, Math.max(1, (p * (1 - p)) / (se * se))) : maxN;
  return { value: p, se, nEff, ...wilson(Math.min(1, Math.max(0, p)), nEff) };
}

/** A share over problems from per-problem values in [0, 1], each from `unitsPerProblem` outcomes. */
export function shareOverProblems(values: readonly number[], unitsPerProblem = 1): ShareEstimate {
  const P = values.length;
  if (P === 0) return { value: NaN, se: NaN, nEff: 0, lo: 0, hi: 1 };
  const m = values.reduce((a, v) => a + v, 0) / P;
  const ss = values.reduce((a, v) => a + (v - m) * (v - m), 0);
  return wilsonAtSe(m, Math.sqrt(ss) / P, P * unitsPerProblem);
}

/** Unweighted mean of several estimates (benchmarks), with se² = Σ se² / B². */
export function meanOfShares(parts: readonly ShareEstimate[], maxN: number): ShareEstimate {
  const B = parts.length;
  if (B === 0) return { value: NaN, se: NaN, nEff: 0, lo: 0, hi: 1 };
  const m = parts.reduce((a, p) => a + p.value, 0) / B;
  const se = Math.sqrt(parts.reduce((a, p) => a + p.se * p.se, 0)) / B;
  return wilsonAtSe(m, se, maxN);
}

/** Least-squares slope of ys over xs with a normal 95 % interval from each y's standard error. */
export function slopeWithCI(
  xs: readonly number[],
  ys: readonly number[],
  ses: readonly number[],
  z = Z95,
): { slope: number; se: number; lo: number; hi: number } {
  if (xs.length !== ys.length || xs.length !== ses.length) throw new Error("slopeWithCI: xs, ys, ses differ in length");
  const n = xs.length;
  const mx = xs.reduce((a, x) => a + x, 0) / n;
  const my = ys.reduce((a, y) => a + y, 0) / n;
  let sxx = 0;
  let sxy = 0;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const dx = xs[i] - mx;
    sxx += dx * dx;
    sxy += dx * (ys[i] - my);
    v += dx * dx * ses[i] * ses[i];
  }
  if (!(sxx > 0)) throw new Error("slopeWithCI: needs at least two different scales");
  const slope = sxy / sxx;
  const se = Math.sqrt(v) / sxx;
  return { slope, se, lo: slope - z * se, hi: slope + z * se };
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`dot: lengths ${a.length} and ${b.length} differ`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

export function norm(a: ArrayLike<number>): number {
  return Math.sqrt(dot(a, a));
}

/** cos(a, b); NaN when either is the zero vector. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const d = norm(a) * norm(b);
  return d > 0 ? dot(a, b) / d : NaN;
}

/** The coefficient c minimising |a − c·v|: how many units of v the vector a holds. */
export function projectionCoefficient(a: ArrayLike<number>, v: ArrayLike<number>): number {
  const vv = dot(v, v);
  return vv > 0 ? dot(a, v) / vv : NaN;
}

/** Running sums of vectors: add rows, read the mean (and the rows' root-mean-square norm). */
export class MeanAccumulator {
  readonly sum: Float64Array;
  count = 0;
  sumSquares = 0;
  constructor(readonly width: number) {
    this.sum = new Float64Array(width);
  }
  /** adds row `row` of a row-major [*, width] array */
  addRow(data: ArrayLike<number>, row: number): void {
    const o = row * this.width;
    for (let i = 0; i < this.width; i++) {
      this.sum[i] += data[o + i];
      this.sumSquares += data[o + i] * data[o + i];
    }
    this.count++;
  }
  /** sqrt(mean over rows of |row|²) */
  rmsNorm(): number {
    return this.count > 0 ? Math.sqrt(this.sumSquares / this.count) : NaN;
  }
  mean(): Float64Array {
    const m = new Float64Array(this.width);
    if (this.count > 0) for (let i = 0; i < this.width; i++) m[i] = this.sum[i] / this.count;
    else m.fill(NaN);
    return m;
  }
}

/** Difference of means: mean(span-start rows) − mean(all rows). NaN entries when there are no span starts. */
export function differenceOfMeans(spans: MeanAccumulator, all: MeanAccumulator): Float64Array {
  const a = spans.mean();
  const b = all.mean();
  return a.map((x, i) => x - b[i]);
}

/** Mean over rows of KL(softmax(p) ‖ softmax(q)) for row-major logits [rows, V], in nats (float64). */
export function meanKlFromLogits(p: ArrayLike<number>, q: ArrayLike<number>, V: number): number {
  const acc = { total: 0, rows: 0 };
  addKlRows(p, q, V, acc);
  return acc.rows > 0 ? acc.total / acc.rows : NaN;
}

/** Adds each row's KL(softmax(p) ‖ softmax(q)) (row-major logits [rows, V]) to `acc.total`, row by
 * row in order, and the rows to `acc.rows`: batches added in turn sum exactly as one array would. */
export function addKlRows(
  p: ArrayLike<number>,
  q: ArrayLike<number>,
  V: number,
  acc: { total: number; rows: number },
): void {
  if (p.length !== q.length || p.length % V !== 0) throw new Error("meanKlFromLogits: logits differ in shape");
  const rows = p.length / V;
  for (let r = 0; r < rows; r++) {
    const o = r * V;
    let mp = -Infinity;
    let mq = -Infinity;
    for (let i = 0; i < V; i++) {
      mp = Math.max(mp, p[o + i]);
      mq = Math.max(mq, q[o + i]);
    }
    let zp = 0;
    let zq = 0;
    for (let i = 0; i < V; i++) {
      zp += Math.exp(p[o + i] - mp);
      zq += Math.exp(q[o + i] - mq);
    }
    const lzp = mp + Math.log(zp);
    const lzq = mq + Math.log(zq);
    let kl = 0;
    for (let i = 0; i < V; i++) {
      const lp = p[o + i] - lzp;
      kl += Math.exp(lp) * (lp - (q[o + i] - lzq));
    }
    acc.total += Math.max(0, kl);
  }
  acc.rows += rows;
}

/** Share of a gain (from `base` to `target`) that `reached` recovers: (reached − base) / (target − base); null without a gain. */
export function recoveredShare(base: number, target: number, reached: number): number | null {
  const gain = target - base;
  return gain !== 0 ? (reached - base) / gain : null;
}
