// `npm run suite -- [--jobs N] [--only NAME[,NAME…]] [--out DIR] [--dry-run] [--report-only]
//                   [--suite DIR] [--results FILE] [--figures DIR] [--backend B]`
// Runs the findings suite (experiments/suite/*.json, src/sweep/suite.ts) through the sweep runner on N
// local processes — complete runs are skipped, interrupted ones resume — samples the pass@k curves the
// findings ask for (npm run passk, one process per checkpoint), then regenerates RESULTS.md and its
// figures from every result on disk (src/analysis/findings.ts). This file is the I/O edge.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  BASE_LABEL,
  evaluateClaims,
  findingTable,
  resultsMarkdown,
  type ArmData,
  type FindingReport,
  type SuiteData,
} from "../analysis/findings.js";
import { identifyRun, parseMetricsCsv } from "../analysis/compare.js";
import { parsePasskCsv, type PasskRow } from "../analysis/passk-curve.js";
import { renderSvg } from "../analysis/plots.js";
import { findingSpec } from "../analysis/suite-plots.js";
import { REPO_ROOT, threadsPerWorker } from "../sweep/child.js";
import {
  describeDiskState,
  diskState,
  isComplete,
  runPaths,
  writeAtomic,
  writeRunFiles,
  checkConflicts,
} from "../sweep/layout.js";
import { LocalSweep, type RunOutcome } from "../sweep/local.js";
import { armRunName, definingArm, loadSuite, missingCheckpoints, suiteRuns, type Finding } from "../sweep/suite.js";
import { numberFlag, parseArgs, runMain } from "./args.js";

const USAGE = `usage: npm run suite -- [--jobs N] [--only NAME[,NAME...]] [--out results/suite] [--dry-run] [--report-only]
                     [--suite experiments/suite] [--results RESULTS.md] [--figures docs/figures/suite] [--backend B]
Runs the findings of experiments/suite/ (all, or those named by --only) on N local processes
(default: one per core), skipping complete runs and resuming interrupted ones, samples their
pass@k curves, then rewrites RESULTS.md and its figures from every result in --out. --report-only
rewrites RESULTS.md without running anything; --dry-run lists the runs and their state. See docs/suite.md.`;

interface Invocation {
  started: string;
  ended: string | null;
  seconds: number;
  jobs: number;
  only: string[] | null;
  runsDone: number;
  passkDone: number;
  passkSeconds: number;
  host: string;
}

/** The base checkpoint of a finding (for its pass@k curve): the base file's checkpoint. */
function baseCheckpoint(f: Finding): string {
  const base = JSON.parse(fs.readFileSync(f.base, "utf8"));
  return (f.set.checkpoint ?? base.checkpoint ?? "data/models/base") as string;
}

interface PasskJob {
  finding: Finding;
  /** "base" or the arm label */
  arm: string;
  seed: number | null;
  checkpoint: string;
  dir: string;
}

function passkJobs(all: Finding[], f: Finding, out: string): PasskJob[] {
  if (!f.passk) return [];
  const jobs: PasskJob[] = [
    {
      finding: f,
      arm: BASE_LABEL,
      seed: null,
      checkpoint: baseCheckpoint(f),
      dir: path.join(out, "passk", f.name, BASE_LABEL),
    },
  ];
  for (const label of f.passk.arms) {
    const arm = f.arms.find((a) => a.label === label)!;
    const name = armRunName(definingArm(all, f, arm).finding, definingArm(all, f, arm).arm);
    for (const seed of f.seeds)
      jobs.push({
        finding: f,
        arm: label,
        seed,
        checkpoint: path.join(runPaths(out, { name, seed }).dir, "checkpoint"),
        dir: path.join(out, "passk", f.name, `${name}.seed-${seed}`),
      });
  }
  return jobs;
}

const passkDone = (j: PasskJob) => fs.existsSync(path.join(j.dir, "done.json"));

/** Runs `npm run passk` for each job whose checkpoint exists, `jobs` at a time. */
async function runPassk(list: PasskJob[], jobs: number, backend: string | undefined, log: (l: string) => void) {
  const todo = list.filter((j) => !passkDone(j) && fs.existsSync(path.join(j.checkpoint, "config.json")));
  if (todo.length === 0) return 0;
  const threads = threadsPerWorker(Math.min(jobs, todo.length));
  log(
    `pass@k: ${todo.length} checkpoint${todo.length === 1 ? "" : "s"} to sample on ${Math.min(jobs, todo.length)} process(es)`,
  );
  let done = 0;
  const one = (j: PasskJob) =>
    new Promise<void>((resolve, reject) => {
      const p = j.finding.passk!;
      fs.mkdirSync(j.dir, { recursive: true });
      const args = [
        "--import",
        "tsx",
        path.join(REPO_ROOT, "src/cli/passk.ts"),
        "--checkpoint",
        j.checkpoint,
        "--n",
        String(p.n),
        "--limit",
        String(p.limit),
        "--temperature",
        String(p.temperature),
        "--seed",
        String(p.seed),
        "--out",
        j.dir,
        "--png=false",
        ...(backend ? ["--backend", backend] : []),
      ];
      const logFile = fs.createWriteStream(path.join(j.dir, "passk.log"), { flags: "a" });
      const start = Date.now();
      const child = spawn(process.execPath, args, {
        cwd: REPO_ROOT,
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, RLVR_THREADS: String(threads) },
      });
      child.stdout.pipe(logFile);
      child.stderr.pipe(logFile);
      child.on("close", (code) => {
        const seconds = (Date.now() - start) / 1000;
        if (code === 0) {
          writeAtomic(
            path.join(j.dir, "done.json"),
            JSON.stringify({ checkpoint: j.checkpoint, seconds }, null, 2) + "\n",
          );
          done++;
          log(
            `pass@k: ${j.finding.name} ${j.arm}${j.seed === null ? "" : ` seed ${j.seed}`} done in ${seconds.toFixed(0)}s`,
          );
          resolve();
        } else
          reject(
            new Error(`npm run passk for ${j.checkpoint} failed (exit ${code}); see ${path.join(j.dir, "passk.log")}`),
          );
      });
    });
  const queue = [...todo];
  await Promise.all(
    Array.from({ length: Math.min(jobs, todo.length) }, async () => {
      for (let j = queue.shift(); j; j = queue.shift()) await one(j);
    }),
  );
  return done;
}

/** What is on disk for one finding: each arm's complete runs and pass@k curves. */
function loadFinding(
  all: Finding[],
  f: Finding,
  out: string,
): { data: SuiteData; missing: string[]; own: { n: number; seconds: number } } {
  const missing: string[] = [];
  const own = { n: 0, seconds: 0 };
  const arms: ArmData[] = f.arms.map((arm) => {
    const d = definingArm(all, f, arm);
    const name = armRunName(d.finding, d.arm);
    const runs: ArmData["runs"] = [];
    for (const seed of f.seeds) {
      const p = runPaths(out, { name, seed });
      if (!isComplete(p)) {
        missing.push(`${name} seed ${seed}`);
        continue;
      }
      const csv = path.join(p.dir, "metrics.csv");
      const cfgFile = path.join(p.dir, "config.resolved.json");
      const cfg = fs.existsSync(cfgFile) ? JSON.parse(fs.readFileSync(cfgFile, "utf8")) : null;
      const id = identifyRun(csv, cfg);
      runs.push({
        seed,
        table: parseMetricsCsv(fs.readFileSync(csv, "utf8"), csv),
        threshold: id.threshold,
        window: id.window,
      });
      if (!arm.from) {
        own.n++;
        const timing = path.join(p.dir, "timing.json");
        if (fs.existsSync(timing)) own.seconds += JSON.parse(fs.readFileSync(timing, "utf8")).seconds ?? 0;
      }
    }
    return { label: arm.label, runs };
  });
  const data: SuiteData = { arms };
  for (const j of passkJobs(all, f, out)) {
    const csv = path.join(j.dir, "passk.csv");
    if (!passkDone(j) || !fs.existsSync(csv)) {
      missing.push(`pass@k of ${j.arm}${j.seed === null ? "" : ` seed ${j.seed}`}`);
      continue;
    }
    const rows: PasskRow[] = parsePasskCsv(fs.readFileSync(csv, "utf8"), csv);
    if (j.seed === null) data.basePasskRows = rows;
    else {
      const a = arms.find((x) => x.label === j.arm)!;
      (a.passk ??= new Map()).set(j.seed, rows);
    }
  }
  return { data, missing, own };
}

function readInvocations(out: string): Invocation[] {
  const dir = path.join(out, "invocations");
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8")) as Invocation);
}

async function writeReport(opts: {
  all: Finding[];
  out: string;
  results: string;
  figures: string;
  log: (l: string) => void;
}): Promise<void> {
  const { all, out, results, figures } = opts;
  const reports: FindingReport[] = [];
  let runSeconds = 0;
  let runs = 0;
  fs.mkdirSync(figures, { recursive: true });
  for (const f of all) {
    const command = `npm run suite -- --only ${f.name}`;
    const gone = missingCheckpoints(all, f);
    if (gone.length) {
      reports.push({
        def: f,
        skipped: `the base checkpoint ${gone.join(", ")} is not there`,
        missingRuns: [],
        ownRuns: 0,
        ownRunSeconds: 0,
        table: null,
        claims: [],
        figure: null,
        command,
      });
      continue;
    }
    const { data, missing, own } = loadFinding(all, f, out);
    runSeconds += own.seconds;
    runs += own.n;
    const anyRuns = data.arms.some((a) => a.runs.length > 0);
    let figure: string | null = null;
    if (anyRuns) {
      const file = path.join(figures, `${f.name}.svg`);
      fs.writeFileSync(file, await renderSvg(findingSpec(f, data)));
      figure = path
        .relative(path.dirname(path.resolve(results)), path.resolve(file))
        .split(path.sep)
        .join("/");
    }
    reports.push({
      def: f,
      skipped: anyRuns ? null : "no run has finished yet",
      missingRuns: missing,
      ownRuns: own.n,
      ownRunSeconds: own.seconds,
      table: anyRuns ? findingTable(f, data) : null,
      claims: anyRuns ? evaluateClaims(f, data) : [],
      figure,
      command,
    });
  }
  const inv = readInvocations(out).filter((i) => i.runsDone + i.passkDone > 0);
  const text = resultsMarkdown(reports, {
    command: "npm run suite",
    out: path.relative(REPO_ROOT, path.resolve(out)) || out,
    wallSeconds: inv.reduce((a, i) => a + i.seconds, 0),
    invocations: inv.length,
    jobs: inv.map((i) => i.jobs),
    passkSeconds: inv.reduce((a, i) => a + i.passkSeconds, 0),
    runSeconds,
    runs,
    machine: `this project's development machine (${os.availableParallelism()} cores, shared)`,
  });
  fs.writeFileSync(results, text);
  opts.log(`wrote ${results} and ${reports.filter((r) => r.figure).length} figures in ${figures}`);
}

runMain(async () => {
  const { flags } = parseArgs(
    process.argv.slice(2),
    {
      jobs: "string",
      only: "multi",
      out: "string",
      suite: "string",
      results: "string",
      figures: "string",
      backend: "string",
      "dry-run": "boolean",
      "report-only": "boolean",
      help: "boolean",
    },
    "suite",
    USAGE,
  );
  if (flags.help) {
    console.log(USAGE);
    return;
  }
  const suiteDir = (flags.suite as string | undefined) ?? "experiments/suite";
  const out = path.resolve((flags.out as string | undefined) ?? "results/suite");
  const results = (flags.results as string | undefined) ?? "RESULTS.md";
  const figures = (flags.figures as string | undefined) ?? "docs/figures/suite";
  const jobs = numberFlag(flags, "jobs", os.availableParallelism(), { integer: true, min: 1 });
  const backend = flags.backend as string | undefined;
  const log = (l: string) => console.log(l);

  const all = loadSuite(suiteDir);
  const only = flags.only ? (flags.only as string[]).flatMap((s) => s.split(",")).filter(Boolean) : null;
  for (const n of only ?? [])
    if (!all.some((f) => f.name === n))
      throw new Error(`--only ${n}: no such finding in ${suiteDir} (findings: ${all.map((f) => f.name).join(", ")})`);
  const selected = only ? all.filter((f) => only.includes(f.name)) : all;
  const skipped = new Map(selected.map((f) => [f.name, missingCheckpoints(all, f)]));
  const runnable = selected.filter((f) => skipped.get(f.name)!.length === 0);
  const runs = suiteRuns(all, runnable);

  if (flags["dry-run"]) {
    for (const f of selected) {
      const gone = skipped.get(f.name)!;
      console.log(
        `${f.name}: ${f.title}${gone.length ? ` — skipped: the base checkpoint ${gone.join(", ")} is not there` : ""}`,
      );
      if (gone.length) continue;
      for (const r of suiteRuns(all, [f]))
        console.log(`  ${r.name} seed ${r.seed}  ${r.id}  ${describeDiskState(diskState(out, r))}`);
      for (const j of passkJobs(all, f, out))
        console.log(
          `  pass@k ${j.arm}${j.seed === null ? "" : ` seed ${j.seed}`}  ${passkDone(j) ? "done" : "not done"}`,
        );
    }
    console.log(
      `${runs.length} run${runs.length === 1 ? "" : "s"} into ${out} (dry run: nothing written, nothing run)`,
    );
    return;
  }

  for (const f of selected) {
    const gone = skipped.get(f.name)!;
    if (gone.length) log(`${f.name}: skipped — the base checkpoint ${gone.join(", ")} is not there`);
  }
  if (!flags["report-only"]) {
    checkConflicts(out, runs);
    writeRunFiles(out, suiteDir, JSON.stringify({ suite: suiteDir, findings: runnable.map((f) => f.name) }), runs);
    const inv: Invocation = {
      started: new Date().toISOString(),
      ended: null,
      seconds: 0,
      jobs,
      only,
      runsDone: 0,
      passkDone: 0,
      passkSeconds: 0,
      host: os.hostname(),
    };
    const invFile = path.join(out, "invocations", `${inv.started.replace(/[:.]/g, "-")}-${process.pid}.json`);
    fs.mkdirSync(path.dirname(invFile), { recursive: true });
    const t0 = Date.now();
    const save = () => {
      inv.seconds = (Date.now() - t0) / 1000;
      writeAtomic(invFile, JSON.stringify(inv, null, 2) + "\n");
    };
    save();
    // an invocation that is killed keeps the time up to its last save
    const tick = setInterval(save, 30_000);
    tick.unref();
    const pool = new LocalSweep({ out, jobs, backend, log });
    const onSignal = (sig: string) => {
      if (pool.stopped) process.exit(130);
      log(`\n${sig}: the running runs save a resumable state and stop (press again to abort at once)`);
      pool.stop();
    };
    process.on("SIGINT", () => onSignal("SIGINT"));
    process.on("SIGTERM", () => onSignal("SIGTERM"));
    log(`suite: ${runnable.length} finding(s), ${runs.length} runs; results in ${out}`);
    const outcomes: RunOutcome[] = await pool.run(runs);
    inv.runsDone = outcomes.filter((o) => o.status === "done").length;
    save();
    if (pool.stopped) {
      inv.ended = new Date().toISOString();
      save();
      log("stopped: run the same command again to continue");
      process.exit(130);
    }
    const tp = Date.now();
    inv.passkDone = await runPassk(
      runnable.flatMap((f) => passkJobs(all, f, out)),
      jobs,
      backend,
      log,
    );
    inv.passkSeconds = (Date.now() - tp) / 1000;
    inv.ended = new Date().toISOString();
    save();
    clearInterval(tick);
    const failed = outcomes.filter((o) => o.status === "failed");
    for (const o of failed) log(`FAILED ${o.run.name} seed ${o.run.seed}: ${o.error}`);
  }
  await writeReport({ all, out, results, figures, log });
});
