// "Did you mean …?": the candidate nearest to a misspelt name (edit distance, ignoring case, `_` and `-`),
// used by the command-line parser and the experiment schema.

export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

export function nearest(name: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  const norm = (x: string) => x.toLowerCase().replace(/[_-]/g, "");
  for (const c of candidates) {
    const dd = Math.min(editDistance(name, c), editDistance(norm(name), norm(c)));
    if (dd < bestD) {
      bestD = dd;
      best = c;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(name.length / 2)) ? best : null;
}
