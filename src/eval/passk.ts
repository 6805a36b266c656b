// The unbiased pass@k estimator (Chen et al. 2021): for one problem with n samples of which c
// are correct, pass@k = 1 − C(n−c, k) / C(n, k) = 1 − ∏_{j=n−c+1..n} (1 − k/j); 1 when n − c < k.

export function passAtK(n: number, c: number, k: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(c) || !Number.isInteger(k) || n < 1 || c < 0 || c > n || k < 1) {
    throw new Error(`passAtK: need integers n >= 1, 0 <= c <= n, k >= 1; got n=${n}, c=${c}, k=${k}`);
  }
  if (k > n) throw new Error(`passAtK: k=${k} is larger than the number of samples n=${n}`);
  if (n - c < k) return 1;
  let prod = 1;
  for (let j = n - c + 1; j <= n; j++) prod *= 1 - k / j;
  return 1 - prod;
}

/** Mean pass@k over problems, given each problem's correct count out of n. */
export function meanPassAtK(n: number, corrects: number[], k: number): number {
  if (corrects.length === 0) return NaN;
  return corrects.reduce((a, c) => a + passAtK(n, c, k), 0) / corrects.length;
}
