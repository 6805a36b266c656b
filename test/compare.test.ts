// Tests of run comparison: statistics (t quantiles, mean and 95% interval) against hand-computed
// values, saturation recomputed from a metrics table, CSV parsing and its errors, pass@k curves and
// their CSV, plots rendered to valid SVG and PNG, and the compare CLI end to end on synthetic runs
// (two experiments × 2–3 seeds) including the error on a file that is not a results CSV.
// No model is run here.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { meanCI, sampleStd, studentTCdf, studentTQuantile } from "../src/analysis/stats.js";
import {
  compareRuns,
  formatText,
  identifyRun,
  parseCsvText,
  parseMetricsCsv,
  runMetrics,
  sharedColumns,
  toCsv,
  toMarkdown,
  type RunInfo,
} from "../src/analysis/compare.js";
import {
  checkpointLabel,
  curveKs,
  parsePasskCsv,
  passAtKCurve,
  passkCsv,
  passkRows,
  uniqueLabels,
} from "../src/analysis/passk-curve.js";
import {
  behaviourSpec,
  formatSpec,
  passkSpec,
  plotRuns,
  PNG_SIGNATURE,
  renderSvg,
  svgToPng,
  textWidth,
  trainingSpec,
} from "../src/analysis/plots.js";
import { reportHtml } from "../src/analysis/html.js";
import { metricsColumns } from "../src/experiment/metrics.js";

const BENCHES = ["add", "lin"];

/**
 * A synthetic metrics.csv: training accuracy 0.5 before `satAt`, 1 from it on (so with window 5
 * and threshold 0.95 the saturation step is satAt + 4); held-out greedy 0.1 + 0.01·step + offset
 * at evaluations every 5 steps; graded-form share rises to 1 at satAt; pass@k columns optional.
 */
function synthCsv(opts: { steps: number; satAt: number; offset: number; passk: boolean }): string {
  const cols = metricsColumns(BENCHES, opts.passk ? [1, 4] : [], opts.passk ? 4 : 0);
  const lines = [cols.join(",")];
  for (let step = 0; step <= opts.steps; step++) {
    const row: Record<string, string> = { step: String(step) };
    const fmtShare = Math.min(1, 0.5 + (0.5 * step) / opts.satAt);
    if (step > 0) {
      row.train_accuracy = (step >= opts.satAt ? 1 : 0.5).toFixed(6);
      row.train_format_rate = fmtShare.toFixed(6);
      row.proc_careful = "0.250000";
      row.proc_check = (0.25 * fmtShare).toFixed(6);
      row.proc_hasty = "0.250000";
      row.proc_nomarker = (0.5 - 0.25 * fmtShare).toFixed(6);
    }
    if (step % 5 === 0 || step === opts.steps) {
      const h = 0.1 + 0.01 * step + opts.offset;
      row.heldout_greedy = h.toFixed(6);
      row.heldout_format = fmtShare.toFixed(6);
      row.heldout_acc_given_format = (h / fmtShare).toFixed(6);
      for (const [i, b] of BENCHES.entries()) {
        row[`${b}_greedy`] = (h + (i === 0 ? -0.05 : 0.05)).toFixed(6);
        row[`${b}_greedy_format`] = fmtShare.toFixed(6);
        row[`${b}_greedy_acc_given_format`] = (h / fmtShare).toFixed(6);
        row[`${b}_recheck_rate`] = (0.02 * (step / 5)).toFixed(6);
        row[`${b}_length`] = "12.000000";
        for (const p of ["careful", "check", "hasty", "nomarker"]) row[`${b}_proc_${p}`] = "0.250000";
        if (opts.passk) {
          row[`${b}_sampled`] = h.toFixed(6);
          row[`${b}_pass@1`] = h.toFixed(6);
          row[`${b}_pass@4`] = Math.min(1, 2 * h).toFixed(6);
        }
      }
    }
    lines.push(cols.map((c) => row[c] ?? "").join(","));
  }
  return lines.join("\n") + "\n";
}

function writeRun(
  root: string,
  exp: string,
  seed: number,
  opts: { steps: number; satAt: number; offset: number; passk: boolean },
  config = true,
): string {
  const dir = path.join(root, exp, `seed-${seed}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "metrics.csv"), synthCsv(opts));
  if (config)
    fs.writeFileSync(
      path.join(dir, "config.resolved.json"),
      JSON.stringify({ name: exp, seeds: [seed], saturation: { threshold: 0.95, window: 5 } }),
    );
  return dir;
}

function runInfo(
  exp: string,
  seed: number,
  opts: { steps: number; satAt: number; offset: number; passk: boolean },
): RunInfo {
  const file = `/x/${exp}/seed-${seed}/metrics.csv`;
  return { file, table: parseMetricsCsv(synthCsv(opts), file), ...identifyRun(file, { name: exp, seeds: [seed] }) };
}

describe("stats", () => {
  it("t quantiles match the printed tables", () => {
    const table: [number, number][] = [
      [1, 12.7062],
      [2, 4.3027],
      [3, 3.1824],
      [4, 2.7764],
      [9, 2.2622],
      [30, 2.0423],
    ];
    for (const [df, t] of table) expect(studentTQuantile(0.975, df)).toBeCloseTo(t, 3);
    expect(studentTQuantile(0.95, 5)).toBeCloseTo(2.015, 3);
    expect(studentTQuantile(0.025, 4)).toBeCloseTo(-2.7764, 3);
    expect(studentTCdf(0, 7)).toBeCloseTo(0.5, 12);
    expect(studentTCdf(1, 1)).toBeCloseTo(0.75, 10); // Cauchy: 1/2 + atan(1)/π
  });

  it("mean and 95% interval by hand", () => {
    // 1, 2, 3: mean 2, s = 1, half-width = t(0.975, 2) / √3 = 4.302653 / 1.732051 = 2.484138
    const ci = meanCI([1, 2, 3]);
    expect(ci.mean).toBe(2);
    expect(ci.sd).toBeCloseTo(1, 12);
    expect(ci.halfWidth).toBeCloseTo(2.484138, 5);
    expect(ci.lo).toBeCloseTo(-0.484138, 5);
    // 0.4, 0.6: mean 0.5, s = 0.141421, half-width = 12.706205 · 0.141421 / √2 = 1.270620
    const two = meanCI([0.4, null, 0.6]);
    expect(two.n).toBe(2);
    expect(two.of).toBe(3);
    expect(two.mean).toBeCloseTo(0.5, 12);
    expect(two.halfWidth).toBeCloseTo(1.27062, 4);
    const one = meanCI([0.7, null]);
    expect(one.mean).toBe(0.7);
    expect(one.halfWidth).toBeNull();
    expect(meanCI([null, NaN]).mean).toBeNull();
    expect(sampleStd([2, 4, 4, 4, 5, 5, 7, 9])).toBeCloseTo(2.13809, 4);
  });
});

describe("saturation and per-run metrics from a metrics.csv", () => {
  it("recomputes saturation, held-out at saturation, gain and format numbers", () => {
    const t = parseMetricsCsv(synthCsv({ steps: 30, satAt: 10, offset: 0, passk: true }), "mem");
    const m = runMetrics(t, 0.95, 5);
    // train accuracy is 1 from step 10: the window 10..14 first averages 1 at step 14
    expect(m.saturation_step).toBe(14);
    // first evaluation at or after 14 is step 15: 0.1 + 0.15
    expect(m.heldout_at_saturation).toBeCloseTo(0.25, 6);
    expect(m.heldout_start).toBeCloseTo(0.1, 6);
    expect(m.heldout_final).toBeCloseTo(0.4, 6);
    expect(m.heldout_max).toBeCloseTo(0.4, 6);
    expect(m.post_saturation_gain).toBeCloseTo(0.15, 6);
    expect(m.format_start).toBeCloseTo(0.5, 6);
    expect(m.format_at_saturation).toBeCloseTo(1, 6);
    expect(m.acc_given_format_start).toBeCloseTo(0.2, 6);
    expect(m.final_train_accuracy).toBe(1);
    expect(m["add_pass@4"]).toBeCloseTo(0.8, 6); // min(1, 2 · 0.4) at the last evaluation
    // a stricter threshold than ever reached: no saturation, no gain
    const never = runMetrics(t, 1.01, 5);
    expect(never.saturation_step).toBeNull();
    expect(never.post_saturation_gain).toBeNull();
  });

  it("parses quoted CSV and rejects non-results files with the file name", () => {
    expect(parseCsvText('a,"b,c",d\r\n1,"x ""y""",\n')).toEqual([
      ["a", "b,c", "d"],
      ["1", 'x "y"', ""],
    ]);
    expect(() => parseMetricsCsv("name,value\nfoo,1\n", "/tmp/other.csv")).toThrow(
      /\/tmp\/other\.csv: not a results metrics\.csv/,
    );
    expect(() => parseMetricsCsv("step,loss\n1,2\n", "f.csv")).toThrow(/train_accuracy or heldout_greedy/);
    expect(() => parseMetricsCsv("step,train_accuracy\n1,abc\n", "f.csv")).toThrow(/line 2, column "train_accuracy"/);
    expect(() => parseMetricsCsv("", "empty.csv")).toThrow(/empty\.csv: empty file/);
  });

  it("names runs from config or directories", () => {
    expect(identifyRun("/r/default/seed-3/metrics.csv", null)).toMatchObject({
      experiment: "default",
      label: "default/seed-3",
      seed: 3,
      threshold: 0.95,
      window: 5,
    });
    expect(
      identifyRun("/r/x/seed-2/metrics.csv", { name: "lr-sweep", saturation: { threshold: 0.9, window: 10 } }),
    ).toMatchObject({ experiment: "lr-sweep", label: "lr-sweep/seed-2", threshold: 0.9, window: 10 });
    expect(identifyRun("/r/loose/metrics.csv", null)).toMatchObject({
      experiment: "loose",
      label: "loose/loose",
      seed: null,
    });
  });
});

describe("comparison table", () => {
  const runs = [
    runInfo("alpha", 1, { steps: 40, satAt: 10, offset: 0.0, passk: true }),
    runInfo("alpha", 2, { steps: 40, satAt: 12, offset: 0.01, passk: true }),
    runInfo("alpha", 3, { steps: 40, satAt: 14, offset: 0.02, passk: true }),
    runInfo("beta", 1, { steps: 40, satAt: 20, offset: 0.0, passk: false }),
    runInfo("beta", 2, { steps: 40, satAt: 24, offset: 0.0, passk: false }),
  ];

  it("aggregates seeds with the t interval and compares on shared columns", () => {
    const cmp = compareRuns(runs);
    expect(cmp.rows.map((r) => r.label)).toEqual([
      "alpha/seed-1",
      "alpha/seed-2",
      "alpha/seed-3",
      "beta/seed-1",
      "beta/seed-2",
      "alpha (mean of 3)",
      "beta (mean of 2)",
    ]);
    const alpha = cmp.rows.find((r) => r.label === "alpha (mean of 3)")!;
    // saturation steps 14, 16, 18: mean 16, s = 2, half-width 4.302653 · 2 / √3 = 4.968275
    expect(alpha.cells.saturation_step.value).toBeCloseTo(16, 9);
    expect(alpha.cells.saturation_step.halfWidth).toBeCloseTo(4.968275, 5);
    // final held-out 0.5, 0.51, 0.52: s = 0.01, half-width 0.024841
    expect(alpha.cells.heldout_final.value).toBeCloseTo(0.51, 9);
    expect(alpha.cells.heldout_final.halfWidth).toBeCloseTo(0.0248414, 6);
    const beta = cmp.rows.find((r) => r.label === "beta (mean of 2)")!;
    // 24 and 28: mean 26, s = 2.828427, half-width 12.706205 · 2 = 25.41241
    expect(beta.cells.saturation_step.value).toBeCloseTo(26, 9);
    expect(beta.cells.saturation_step.halfWidth).toBeCloseTo(25.41241, 4);
    // beta has no pass@k columns: they are not compared
    expect(cmp.metrics.some((m) => m.key.includes("pass@"))).toBe(false);
    expect(cmp.dropped).toContain("add_pass@1");
    expect(sharedColumns(runs.map((r) => r.table)).shared).not.toContain("add_sampled");
    const text = formatText(cmp);
    expect(text).toContain("16.0 ± 5.0");
    expect(text).toContain("26.0 ± 25.4");
    const csv = parseCsvText(toCsv(cmp));
    const head = csv[0];
    const row = csv.find((r) => r[2] === "alpha (mean of 3)")!;
    expect(Number(row[head.indexOf("saturation_step")])).toBeCloseTo(16, 6);
    expect(Number(row[head.indexOf("saturation_step_ci95")])).toBeCloseTo(4.968275, 5);
    expect(row[head.indexOf("saturation_step_n")]).toBe("3");
    expect(toMarkdown(cmp)).toMatch(/\| \*\*alpha \(mean of 3\)\*\* \| 16\.0 ± 5\.0 \|/);
  });

  it("counts runs that never saturate", () => {
    const cmp = compareRuns([runs[0], runInfo("alpha", 9, { steps: 40, satAt: 99, offset: 0, passk: true })]);
    const mean = cmp.rows.find((r) => r.kind === "mean")!;
    expect(mean.cells.saturation_step).toMatchObject({ value: 14, halfWidth: null, n: 1, of: 2 });
    expect(formatText(cmp)).toContain("14.0 (1/2)");
  });
});

describe("pass@k curves", () => {
  it("computes the curve from counts", () => {
    expect(curveKs(8)).toEqual([1, 2, 4, 8]);
    expect(curveKs(6)).toEqual([1, 2, 4, 6]);
    expect(curveKs(1)).toEqual([1]);
    // n = 4, correct counts 0, 2, 4: pass@1 = (0 + 1/2 + 1)/3; pass@2 = (0 + (1 − 1/6) + 1)/3; pass@4 = (0 + 1 + 1)/3
    const c = passAtKCurve(4, [0, 2, 4]);
    expect(c.map((p) => p.k)).toEqual([1, 2, 4]);
    expect(c[0].passAtK).toBeCloseTo(0.5, 12);
    expect(c[1].passAtK).toBeCloseTo((5 / 6 + 1) / 3, 12);
    expect(c[2].passAtK).toBeCloseTo(2 / 3, 12);
  });

  it("writes and reads the pass@k CSV, with a mean over benchmarks", () => {
    const rows = [
      ...passkRows("data/models/base", "base", 4, [
        { benchmark: "add", corrects: [0, 2, 4] },
        { benchmark: "lin", corrects: [4, 4, 4] },
      ]),
      ...passkRows("results/default/seed-1/checkpoint", "default/seed-1", 4, [
        { benchmark: "add", corrects: [1, 1, 1] },
        { benchmark: "lin", corrects: [4, 4, 0] },
      ]),
    ];
    const csv = passkCsv(rows);
    const lines = csv.trim().split("\n");
    expect(lines[0]).toBe("checkpoint,label,benchmark,k,pass_at_k");
    expect(lines).toContain("data/models/base,base,add,1,0.500000");
    expect(lines).toContain("data/models/base,base,mean,1,0.750000");
    expect(lines.length).toBe(1 + 2 * 3 * 3);
    const back = parsePasskCsv(csv, "mem");
    expect(back.length).toBe(rows.length);
    expect(back[0]).toEqual({ checkpoint: "data/models/base", label: "base", benchmark: "add", k: 1, passAtK: 0.5 });
    expect(() => parsePasskCsv("a,b\n1,2\n", "bad.csv")).toThrow(/bad\.csv: not a pass@k CSV/);
  });

  it("labels checkpoints by directory", () => {
    expect(checkpointLabel("data/models/base")).toBe("base");
    expect(checkpointLabel("results/default/seed-2/checkpoint")).toBe("default/seed-2");
    expect(checkpointLabel("results/x/seed-2/checkpoint", "lr-sweep")).toBe("lr-sweep/seed-2");
    expect(checkpointLabel("/tmp/run/checkpoint/")).toBe("run/checkpoint");
    expect(uniqueLabels(["base", "base", "a"])).toEqual(["base", "base (2)", "a"]);
  });
});

describe("plots", () => {
  const runs = [
    runInfo("alpha", 1, { steps: 40, satAt: 10, offset: 0.0, passk: true }),
    runInfo("alpha", 2, { steps: 40, satAt: 12, offset: 0.01, passk: true }),
    runInfo("beta", 1, { steps: 40, satAt: 20, offset: 0.0, passk: true }),
  ];

  it("renders the step plots to valid SVG and non-empty PNG", async () => {
    const pr = plotRuns(runs);
    expect(pr.map((r) => r.saturationStep)).toEqual([14, 16, 24]);
    for (const [spec, title] of [
      [trainingSpec(pr), "Training vs held-out accuracy"],
      [formatSpec(pr), "Format vs skill"],
      [behaviourSpec(pr), "Behaviour over GRPO steps"],
    ] as const) {
      const svg = await renderSvg(spec);
      expect(svg.startsWith("<svg")).toBe(true);
      expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
      expect(svg).toContain('xmlns="http://www.w3.org/2000/svg"');
      expect(svg).toContain(title);
      expect(svg).toContain("step (GRPO updates)");
      const png = svgToPng(svg);
      expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
      expect(png.length).toBeGreaterThan(20_000);
    }
  });

  it("renders the pass@k plot on a log2 axis", async () => {
    const rows = [
      ...passkRows("b", "base", 8, [{ benchmark: "add", corrects: [0, 1, 8, 3] }]),
      ...passkRows("t", "trained", 8, [{ benchmark: "add", corrects: [0, 0, 8, 8] }]),
    ];
    const spec = passkSpec(rows) as {
      spec: { layer: { encoding: { x: { scale: { type: string; base: number }; axis: { values: number[] } } } }[] };
    };
    expect(spec.spec.layer[0].encoding.x.scale).toMatchObject({ type: "log", base: 2 });
    expect(spec.spec.layer[0].encoding.x.axis.values).toEqual([1, 2, 4, 8]);
    const svg = await renderSvg(passkSpec(rows));
    expect(svg).toContain("pass@k over k");
    expect(svg).toContain("trained");
    const png = svgToPng(svg);
    expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
    expect(png.length).toBeGreaterThan(10_000);
  });

  it("measures text like DejaVu Sans", () => {
    expect(textWidth("0", 10)).toBeCloseTo(6.36, 2);
    expect(textWidth("ab", 10, true)).toBeGreaterThan(textWidth("ab", 10));
  });

  it("builds a self-contained HTML report", async () => {
    const cmp = compareRuns(runs);
    const svg = await renderSvg(trainingSpec(plotRuns(cmp.runs)));
    const html = reportHtml({ title: "T <&>", cmp, figures: [{ title: "(a)", svg }] });
    expect(html.startsWith("<!DOCTYPE html>")).toBe(true);
    expect(html).toContain("T &lt;&amp;&gt;");
    expect(html).toContain("<svg");
    expect(html).not.toMatch(/<script|<link|src="http|@import|url\(http/);
  });
});

describe("npm run compare (CLI)", () => {
  let root: string;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "compare-test-"));
    for (const [seed, satAt] of [
      [1, 10],
      [2, 12],
      [3, 14],
    ])
      writeRun(path.join(root, "res"), "alpha", seed, { steps: 40, satAt, offset: 0.01 * (seed - 1), passk: true });
    writeRun(path.join(root, "res"), "beta", 1, { steps: 40, satAt: 20, offset: 0, passk: true });
    writeRun(path.join(root, "res"), "beta", 2, { steps: 40, satAt: 24, offset: 0, passk: true }, false);
    fs.writeFileSync(path.join(root, "other.csv"), "name,value\nfoo,1\n");
    fs.writeFileSync(
      path.join(root, "passk.csv"),
      passkCsv([
        ...passkRows("b", "base", 4, [{ benchmark: "add", corrects: [0, 1, 4] }]),
        ...passkRows("t", "alpha/seed-1", 4, [{ benchmark: "add", corrects: [2, 2, 2] }]),
      ]),
    );
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  const cli = (args: string[]) =>
    spawnSync(process.execPath, ["--import", "tsx", "src/cli/compare.ts", ...args], {
      encoding: "utf8",
      cwd: path.resolve(__dirname, ".."),
    });

  it("compares two experiments and writes tables, plots and the report", () => {
    const out = path.join(root, "out");
    const r = cli([path.join(root, "res"), "--out", out, "--passk", path.join(root, "passk.csv")]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("compared 5 run(s) in 2 experiment(s)");
    expect(r.stdout).toMatch(/alpha \(mean of 3\)\s+16\.0 ± 5\.0/);
    expect(r.stdout).toMatch(/beta \(mean of 2\)\s+26\.0 ± 25\.4/);
    expect(r.stdout).toContain("t distribution with n−1 degrees of freedom");
    for (const f of [
      "compare.csv",
      "compare.md",
      "training.svg",
      "training.png",
      "format.svg",
      "format.png",
      "behaviour.svg",
      "behaviour.png",
      "passk.svg",
      "passk.png",
      "report.html",
    ]) {
      expect(fs.existsSync(path.join(out, f)), f).toBe(true);
    }
    const csv = parseCsvText(fs.readFileSync(path.join(out, "compare.csv"), "utf8"));
    expect(csv.map((row) => row[2])).toContain("beta/seed-2");
    const png = fs.readFileSync(path.join(out, "training.png"));
    expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
    expect(png.length).toBeGreaterThan(20_000);
    const html = fs.readFileSync(path.join(out, "report.html"), "utf8");
    expect((html.match(/<svg/g) ?? []).length).toBeGreaterThanOrEqual(4);
    expect(html).not.toMatch(/<script|<link|src="http/);
  }, 60_000);

  it("exits 1 naming a file that is not a results CSV", () => {
    const bad = path.join(root, "other.csv");
    const r = cli([path.join(root, "res", "alpha"), bad, "--out", path.join(root, "out2"), "--png=false"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`error: ${bad}: not a results metrics.csv`);
    expect(fs.existsSync(path.join(root, "out2"))).toBe(false);
  }, 30_000);

  it("takes a bare metrics.csv and reports a directory without any", () => {
    const bare = path.join(root, "bare");
    fs.mkdirSync(bare);
    fs.copyFileSync(path.join(root, "res", "alpha", "seed-1", "metrics.csv"), path.join(bare, "metrics.csv"));
    const r = cli([path.join(bare, "metrics.csv"), "--out", path.join(root, "out3"), "--png=false"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/bare\/bare\s+14\b/);
    const empty = path.join(root, "empty");
    fs.mkdirSync(empty);
    const e = cli([empty]);
    expect(e.status).toBe(1);
    expect(e.stderr).toContain("no metrics.csv found below this directory");
  }, 30_000);
});
