// `npm run compare -- <result dirs or metrics.csv files…> [--out DIR] [--passk passk.csv …] [--title T] [--png=false]`
// Compares runs: finds every metrics.csv below the given directories (or takes the given CSV
// files), recomputes saturation and held-out summaries from the CSVs (threshold and window from
// config.resolved.json next to each CSV, else 0.95 / 5), aggregates seeds of an experiment (mean
// and 95% t interval), prints the tables and writes into --out (default results/compare/):
// compare.csv, compare.md, training/format/behaviour plots (.svg and .png), passk plot if --passk
// is given (CSV from `npm run passk`), and report.html (single file, plots inline).
// This file is only the I/O edge; the logic is in src/analysis/{compare,stats,plots,html}.ts.
import fs from "node:fs";
import path from "node:path";
import {
  compareRuns,
  formatText,
  identifyRun,
  legendLines,
  parseMetricsCsv,
  toCsv,
  toMarkdown,
  type RunConfig,
  type RunInfo,
} from "../analysis/compare.js";
import {
  behaviourSpec,
  fontSetup,
  formatSpec,
  passkSpec,
  plotRuns,
  renderSvg,
  svgToPng,
  trainingSpec,
  type Spec,
} from "../analysis/plots.js";
import { passkTableHtml, reportHtml, type Figure } from "../analysis/html.js";
import { formatPasskText, parsePasskCsv, type PasskRow } from "../analysis/passk-curve.js";
import { parseArgs, runMain } from "./args.js";

const SKIP_DIRS = new Set(["node_modules", ".git", "checkpoint"]);

/** Every metrics.csv below dir (sorted), not descending into checkpoints or node_modules. */
function findMetricsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() && !SKIP_DIRS.has(e.name)) out.push(...findMetricsFiles(p));
    else if (e.isFile() && e.name === "metrics.csv") out.push(p);
  }
  return out;
}

function readConfig(csvFile: string): RunConfig | null {
  const f = path.join(path.dirname(csvFile), "config.resolved.json");
  if (!fs.existsSync(f)) return null;
  try {
    return JSON.parse(fs.readFileSync(f, "utf8")) as RunConfig;
  } catch (e) {
    throw new Error(`${f}: invalid JSON (${(e as Error).message})`);
  }
}

function loadRuns(inputs: string[]): RunInfo[] {
  const files: string[] = [];
  for (const input of inputs) {
    if (!fs.existsSync(input)) throw new Error(`${input}: no such file or directory`);
    if (fs.statSync(input).isDirectory()) {
      const found = findMetricsFiles(input);
      if (found.length === 0) throw new Error(`${input}: no metrics.csv found below this directory`);
      files.push(...found);
    } else files.push(input);
  }
  const unique = [...new Set(files.map((f) => path.resolve(f)))].map(
    (abs) => files.find((f) => path.resolve(f) === abs) as string,
  );
  return unique.map((file) => {
    const table = parseMetricsCsv(fs.readFileSync(file, "utf8"), file);
    return { file, table, ...identifyRun(file, readConfig(file)) };
  });
}

const USAGE = `usage: npm run compare -- DIRS_OR_CSVS... [--out results/compare] [--passk CSV ...] [--title T] [--png false]
Per-run and per-experiment table (mean ± 95 % t interval over seeds), CSV, Markdown, plots and report.html.`;

runMain(async () => {
  const { positional, flags } = parseArgs(
    process.argv.slice(2),
    { out: "string", passk: "multi", title: "string", png: "boolean" },
    "compare",
    USAGE,
  );
  if (positional.length === 0)
    throw new Error(
      "compare: give result directories or metrics.csv files, for example `npm run compare -- results/default results/other`",
    );
  const out = (flags.out as string | undefined) ?? "results/compare";
  const png = flags.png !== false;
  const runs = loadRuns(positional);
  const cmp = compareRuns(runs);
  const passkRows: PasskRow[] = ((flags.passk as string[] | undefined) ?? []).flatMap((f) => {
    if (!fs.existsSync(f)) throw new Error(`--passk ${f}: no such file`);
    return parsePasskCsv(fs.readFileSync(f, "utf8"), f);
  });

  console.log(`compared ${cmp.runs.length} run(s) in ${new Set(cmp.runs.map((r) => r.experiment)).size} experiment(s)`);
  if (cmp.dropped.length)
    console.log(
      `note: compared on the ${cmp.shared.length} shared columns; ${cmp.dropped.length} column(s) not in every run left out: ${cmp.dropped.slice(0, 8).join(", ")}${cmp.dropped.length > 8 ? ", …" : ""}`,
    );
  console.log("");
  console.log(formatText(cmp));
  console.log("");
  console.log("columns:");
  for (const l of legendLines(cmp)) console.log(`  ${l}`);
  console.log(`aggregates: ${cmp.method}`);
  if (passkRows.length) {
    console.log("");
    console.log(formatPasskText(passkRows));
  }

  fs.mkdirSync(out, { recursive: true });
  const written: string[] = [];
  const write = (name: string, data: string | Buffer) => {
    const f = path.join(out, name);
    fs.writeFileSync(f, data);
    written.push(f);
  };
  const title =
    (flags.title as string | undefined) ??
    `Run comparison: ${[...new Set(cmp.runs.map((r) => r.experiment))].join(" vs ")}`;
  write("compare.csv", toCsv(cmp));
  write("compare.md", toMarkdown(cmp, title));

  const pr = plotRuns(cmp.runs);
  const plots: [string, string, Spec][] = [
    [
      "training",
      "(a) Training accuracy and held-out greedy accuracy per benchmark over steps, saturation steps marked",
      trainingSpec(pr),
    ],
    ["format", "(b) Format vs skill: graded-form share and accuracy among graded answers over steps", formatSpec(pr)],
    ["behaviour", '(c) Behaviour: "recheck" word rate and solution-procedure shares over steps', behaviourSpec(pr)],
  ];
  if (passkRows.length) plots.push(["passk", "(d) pass@k over k (log2 axis), base vs trained", passkSpec(passkRows)]);
  const figures: Figure[] = [];
  const notes: string[] = [];
  if (png && fontSetup().warning) {
    notes.push(fontSetup().warning as string);
    console.log(`warning: ${fontSetup().warning}`);
  }
  for (const [name, caption, spec] of plots) {
    const svg = await renderSvg(spec);
    write(`${name}.svg`, svg);
    if (png) write(`${name}.png`, svgToPng(svg));
    figures.push({ title: caption, svg, png: png ? `${name}.png` : undefined });
  }
  const passkHtml = passkRows.length
    ? passkTableHtml(passkRows, "pass@k (from " + ((flags.passk as string[]) ?? []).join(", ") + ")")
    : undefined;
  write("report.html", reportHtml({ title, cmp, figures, passkTables: passkHtml, notes }));
  console.log("");
  console.log(`wrote ${written.join(", ")}`);
});
