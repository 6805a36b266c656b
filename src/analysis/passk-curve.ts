// pass@k curves (k = 1, 2, 4, … n) from per-problem correct counts, their CSV form (columns
// checkpoint, label, benchmark, k, pass_at_k) and the label of a checkpoint directory. Pure
// functions: sampling lives in src/cli/passk.ts, the estimator itself in src/eval/passk.ts.
import path from "node:path";
import { meanPassAtK } from "../eval/passk.js";
import { parseCsvText } from "./compare.js";

export const PASSK_COLUMNS = ["checkpoint", "label", "benchmark", "k", "pass_at_k"] as const;
/** the benchmark name of the rows averaged over benchmarks */
export const MEAN_BENCHMARK = "mean";

export interface PasskRow {
  checkpoint: string;
  label: string;
  benchmark: string;
  k: number;
  passAtK: number;
}

/** 1, 2, 4, … up to n, with n itself appended when it is not a power of two. */
export function curveKs(n: number): number[] {
  if (!Number.isInteger(n) || n < 1) throw new Error(`curveKs: n must be a positive integer, got ${n}`);
  const ks: number[] = [];
  for (let k = 1; k <= n; k *= 2) ks.push(k);
  if (ks[ks.length - 1] !== n) ks.push(n);
  return ks;
}

/** Mean unbiased pass@k over problems for each k, given each problem's correct count out of n. */
export function passAtKCurve(
  n: number,
  corrects: readonly number[],
  ks: readonly number[] = curveKs(n),
): { k: number; passAtK: number }[] {
  if (corrects.length === 0) throw new Error("passAtKCurve: no problems");
  return ks.map((k) => ({ k, passAtK: meanPassAtK(n, [...corrects], k) }));
}

/**
 * Rows for one checkpoint: a curve per benchmark plus, with several benchmarks, the unweighted
 * mean over benchmarks (benchmark "mean"), matching how held-out means are taken elsewhere.
 */
export function passkRows(
  checkpoint: string,
  label: string,
  n: number,
  counts: { benchmark: string; corrects: number[] }[],
): PasskRow[] {
  const ks = curveKs(n);
  const rows: PasskRow[] = [];
  const curves = counts.map((c) => ({ benchmark: c.benchmark, curve: passAtKCurve(n, c.corrects, ks) }));
  for (const c of curves)
    for (const p of c.curve) rows.push({ checkpoint, label, benchmark: c.benchmark, k: p.k, passAtK: p.passAtK });
  if (curves.length > 1) {
    ks.forEach((k, i) =>
      rows.push({
        checkpoint,
        label,
        benchmark: MEAN_BENCHMARK,
        k,
        passAtK: curves.reduce((a, c) => a + c.curve[i].passAtK, 0) / curves.length,
      }),
    );
  }
  return rows;
}

const csvCell = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

export function passkCsv(rows: readonly PasskRow[]): string {
  return (
    [
      PASSK_COLUMNS.join(","),
      ...rows.map((r) =>
        [r.checkpoint, r.label, r.benchmark, String(r.k), r.passAtK.toFixed(6)].map(csvCell).join(","),
      ),
    ].join("\n") + "\n"
  );
}

export function parsePasskCsv(text: string, name: string): PasskRow[] {
  const rows = parseCsvText(text);
  const head = rows[0]?.map((c) => c.trim()) ?? [];
  const idx = PASSK_COLUMNS.map((c) => head.indexOf(c));
  if (idx.some((i) => i < 0))
    throw new Error(
      `${name}: not a pass@k CSV (needs columns ${PASSK_COLUMNS.join(", ")}; header is ${JSON.stringify(head.join(","))})`,
    );
  return rows.slice(1).map((r, i) => {
    const k = Number(r[idx[3]]);
    const p = Number(r[idx[4]]);
    if (!Number.isInteger(k) || k < 1 || !Number.isFinite(p))
      throw new Error(
        `${name}: line ${i + 2}: bad k or pass_at_k (${JSON.stringify(r[idx[3]])}, ${JSON.stringify(r[idx[4]])})`,
      );
    return { checkpoint: r[idx[0]], label: r[idx[1]], benchmark: r[idx[2]], k, passAtK: p };
  });
}

/**
 * A short label for a checkpoint directory: `<experiment>/seed-N` for
 * results/<experiment>/seed-N/checkpoint (experiment from the run's config name when given),
 * `<parent>/<dir>` for other directories named `checkpoint`, else the directory name (`base`).
 */
export function checkpointLabel(dir: string, experimentName?: string | null): string {
  const abs = path.resolve(dir);
  const base = path.basename(abs);
  const parent = path.dirname(abs);
  if (base === "checkpoint" || /^step-\d+$/.test(base)) {
    const p = path.basename(parent);
    const suffix = base === "checkpoint" ? "" : `/${base}`;
    if (/^seed-\d+$/.test(p)) return `${experimentName || path.basename(path.dirname(parent))}/${p}${suffix}`;
    return `${p}/${base}`;
  }
  if (/^seed-\d+$/.test(base)) return `${experimentName || path.basename(parent)}/${base}`;
  return base;
}

/** Makes labels unique by appending " (2)", " (3)", … to repeats. */
export function uniqueLabels(labels: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return labels.map((l) => {
    const k = (seen.get(l) ?? 0) + 1;
    seen.set(l, k);
    return k === 1 ? l : `${l} (${k})`;
  });
}

/** The rows as a grid: one line per (benchmark, label), one column per k. */
export function passkGrid(rows: readonly PasskRow[]): {
  ks: number[];
  lines: { benchmark: string; label: string; values: (number | null)[] }[];
} {
  const ks = [...new Set(rows.map((r) => r.k))].sort((a, b) => a - b);
  const benches = [...new Set(rows.map((r) => r.benchmark))];
  const labels = [...new Set(rows.map((r) => r.label))];
  const lines: { benchmark: string; label: string; values: (number | null)[] }[] = [];
  for (const b of benches) {
    for (const l of labels) {
      const rs = rows.filter((r) => r.benchmark === b && r.label === l);
      if (rs.length)
        lines.push({ benchmark: b, label: l, values: ks.map((k) => rs.find((r) => r.k === k)?.passAtK ?? null) });
    }
  }
  return { ks, lines };
}

/** An aligned text table of pass@k (rows: benchmark × checkpoint, columns: k). */
export function formatPasskText(rows: readonly PasskRow[]): string {
  const { ks, lines } = passkGrid(rows);
  const head = ["benchmark", "checkpoint", ...ks.map((k) => `k=${k}`)];
  const body = lines.map((l) => [l.benchmark, l.label, ...l.values.map((v) => (v === null ? "-" : v.toFixed(3)))]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(head), ...body.map(line)].join("\n");
}
