// `npm run sweep -- FILE [--jobs N] [--out DIR] [--dry-run] [--status] [--redis URL] [--queue NAME]
//                   [--backend B] [--compare=false]`
// Expands a sweep file into runs and runs them: on this machine on N experiment processes, or, with
// --redis, as BullMQ jobs that `npm run worker` processes take on any machine. Complete runs are
// skipped, interrupted ones resume, failed ones are retried; at the end `npm run compare` runs over
// the sweep's complete runs. The logic is in src/sweep/; this file is the command line's edge.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO_ROOT } from "../sweep/child.js";
import { expandSweep, type SweepRun } from "../sweep/expand.js";
import { checkConflicts, describeDiskState, diskState, isComplete, runPaths, writeRunFiles } from "../sweep/layout.js";
import { LocalSweep, type RunOutcome } from "../sweep/local.js";
import {
  checkRedis,
  DEFAULT_QUEUE,
  openQueue,
  queueStatus,
  submitRuns,
  watchJobs,
  type SubmitAction,
} from "../sweep/queue.js";
import { parseSweep } from "../sweep/schema.js";
import { numberFlag, parseArgs, runMain } from "./args.js";

const USAGE = `usage: npm run sweep -- FILE [--jobs N] [--out DIR] [--dry-run] [--status] [--backend B] [--compare=false]
       npm run sweep -- FILE --redis redis://HOST:PORT [--queue NAME] [--out DIR] [--status]
Runs every run of the sweep file (experiments/sweeps/*.json) on N local processes (default: one per
core), or as jobs on a BullMQ queue for \`npm run worker -- --redis URL\` processes on any machine.
Results go to --out (default results/sweeps/<sweep name>); with --redis that directory must be at
the same path on every worker machine. See docs/sweeps.md.`;

function table(rows: string[][]): string {
  const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  return rows
    .map((r) =>
      r
        .map((c, j) => c.padEnd(widths[j]))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

const valuesText = (r: SweepRun) =>
  Object.entries(r.values)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(" ");

function runCompare(out: string, runs: SweepRun[], title: string): void {
  const dirs = runs.map((r) => runPaths(out, r).dir).filter((d) => fs.existsSync(path.join(d, "summary.json")));
  if (dirs.length === 0) {
    console.log("no complete runs to compare");
    return;
  }
  console.log(`\n$ npm run compare -- <${dirs.length} runs of ${out}> --out ${path.join(out, "compare")}`);
  const r = spawnSync(
    process.execPath,
    [
      "--import",
      "tsx",
      path.join(REPO_ROOT, "src/cli/compare.ts"),
      ...dirs,
      "--out",
      path.join(out, "compare"),
      "--title",
      title,
    ],
    { stdio: "inherit", cwd: REPO_ROOT },
  );
  if (r.status !== 0) throw new Error(`npm run compare over ${out} failed (exit ${r.status ?? r.signal})`);
}

function finish(outcomes: RunOutcome[], file: string, out: string, compare: boolean, title: string, runs: SweepRun[]) {
  const failed = outcomes.filter((o) => o.status === "failed");
  const stopped = outcomes.filter((o) => o.status === "stopped");
  const by = (s: string) => outcomes.filter((o) => o.status === s).length;
  console.log(
    `\nsweep: ${by("done")} run${by("done") === 1 ? "" : "s"} done now, ${by("skipped")} already complete, ${failed.length} failed, ${stopped.length} not finished; results in ${out}`,
  );
  for (const f of failed)
    console.log(`  FAILED ${f.run.name} seed ${f.run.seed}: ${f.error} (${runPaths(out, f.run).failed})`);
  const unseen = outcomes.filter((o) => o.status === "done" && !isComplete(runPaths(out, o.run)));
  if (unseen.length)
    console.log(
      `warning: ${unseen.length} run(s) finished on a worker but their results are not in ${out} on this machine; the results directory must be at the same path on every machine (a shared mount)`,
    );
  if (stopped.length) {
    console.log(`stopped: interrupted runs saved their state; run the same command again to continue`);
    process.exit(130);
  }
  if (compare) runCompare(out, runs, title);
  if (failed.length) {
    console.error(
      `error: ${failed.length} run${failed.length === 1 ? "" : "s"} of ${file} failed; fix the cause and run the same command again (it retries failed and missing runs only)`,
    );
    process.exit(1);
  }
}

runMain(async () => {
  const { positional, flags } = parseArgs(
    process.argv.slice(2),
    {
      jobs: "string",
      out: "string",
      "dry-run": "boolean",
      status: "boolean",
      redis: "string",
      queue: "string",
      backend: "string",
      compare: "boolean",
      help: "boolean",
    },
    "sweep",
  );
  if (flags.help) {
    console.log(USAGE);
    return;
  }
  if (positional.length !== 1)
    throw new Error(`sweep: give one sweep file, got ${positional.length ? positional.join(" ") : "none"}\n${USAGE}`);
  const file = positional[0];
  if (!fs.existsSync(file)) throw new Error(`${file}: sweep file not found (sweep files are in experiments/sweeps/)`);
  const text = fs.readFileSync(file, "utf8");
  const sweep = parseSweep(text, file);
  const runs = expandSweep(sweep, file);
  const out = path.resolve((flags.out as string | undefined) ?? path.join("results", "sweeps", sweep.name));
  const jobs = numberFlag(flags, "jobs", os.availableParallelism(), { integer: true, min: 1 });
  const url = flags.redis as string | undefined;
  const queueName = (flags.queue as string | undefined) ?? DEFAULT_QUEUE;
  const backend = flags.backend as string | undefined;
  if (url !== undefined && flags.jobs !== undefined)
    throw new Error("sweep: --jobs is for local sweeps; with --redis, give each `npm run worker` its --jobs");
  const log = (l: string) => console.log(l);
  const title = `Sweep ${sweep.name}`;

  if (flags["dry-run"]) {
    const rows = [["run", "seed", "example", "grid values", "id", "state"]];
    for (const r of runs)
      rows.push([r.name, String(r.seed), r.example, valuesText(r), r.id, describeDiskState(diskState(out, r))]);
    console.log(table(rows));
    console.log(
      `${file}: ${runs.length} run${runs.length === 1 ? "" : "s"} into ${out} (dry run: nothing written, nothing run)`,
    );
    return;
  }

  if (flags.status) {
    if (url === undefined) {
      const rows = [["run", "seed", "state"]];
      for (const r of runs) rows.push([r.name, String(r.seed), describeDiskState(diskState(out, r))]);
      console.log(table(rows));
      return;
    }
    await checkRedis(url);
    const q = openQueue(url, queueName, log);
    try {
      const st = await queueStatus(q.queue, runs, out);
      console.log(
        `queue ${queueName} at ${url}: ${Object.entries(st.counts)
          .map(([k, v]) => `${v} ${k}`)
          .join(", ")}`,
      );
      console.log(
        `workers: ${st.workers.length ? st.workers.map((w) => `${w.name.split(":w:").pop()} (${w.addr})`).join(", ") : "none connected"}`,
      );
      const rows = [["run", "seed", "job", "on disk", "worker / reason"]];
      for (const j of st.jobs)
        rows.push([
          j.run.name,
          String(j.run.seed),
          j.state,
          describeDiskState(diskState(out, j.run)),
          j.failedReason ?? j.processedBy ?? "",
        ]);
      console.log(table(rows));
    } finally {
      await q.close();
    }
    return;
  }

  if (url !== undefined) {
    // before anything is written: an unreachable queue stops the sweep here
    await checkRedis(url);
    checkConflicts(out, runs);
    writeRunFiles(out, path.relative(REPO_ROOT, path.resolve(file)), text, runs);
    const q = openQueue(url, queueName, log);
    let stop = false;
    const onSignal = () => {
      if (stop) process.exit(130);
      stop = true;
      console.log(
        "\nstopped watching; the jobs stay on the queue and the workers go on (run the same command to watch again)",
      );
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    let outcomes: RunOutcome[];
    try {
      const submitted = await submitRuns(q.queue, runs, { out, backend, sweep: sweep.name });
      const n = (a: SubmitAction) => submitted.filter((s) => s.action === a).length;
      console.log(
        `sweep ${sweep.name}: ${runs.length} run${runs.length === 1 ? "" : "s"} → queue ${queueName} at ${url}: ${n("added") + n("re-added")} added, ${n("retried")} failed ones retried, ${n("queued")} already queued, ${n("complete")} complete on disk; results in ${out}`,
      );
      outcomes = await watchJobs(q.queue, submitted, { log, shouldStop: () => stop });
    } finally {
      await q.close();
    }
    if (stop) process.exit(130);
    finish(outcomes, file, out, flags.compare !== false, title, runs);
    return;
  }

  checkConflicts(out, runs);
  writeRunFiles(out, path.relative(REPO_ROOT, path.resolve(file)), text, runs);
  console.log(`sweep ${sweep.name}: results in ${out}`);
  const pool = new LocalSweep({ out, jobs, backend, log });
  const onSignal = (sig: string) => {
    if (pool.stopped) process.exit(130);
    console.log(`\n${sig}: the running runs save a resumable state and stop (press again to abort at once)`);
    pool.stop();
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  const outcomes = await pool.run(runs);
  finish(outcomes, file, out, flags.compare !== false, title, runs);
});
