// Where a sweep keeps its files in its results directory, and what the files on disk say about each run:
//   <out>/sweep.resolved.json          the sweep file and its expansion (id, name, seed of every run)
//   <out>/runs/<name>.seed-<s>.json    the run's resolved experiment file: what the experiment CLI runs
//   <out>/runs/<name>.seed-<s>.log     the experiment CLI's output, every attempt appended
//   <out>/runs/<name>.seed-<s>.lock    while a process runs it (./lock.ts)
//   <out>/runs/<name>.seed-<s>.failed.json   its last failure (error and output tail), until it succeeds
//   <out>/<name>/seed-<s>/             the run's results, as `npm run experiment -- --out <out>` writes them
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { ConfigError, validateExperiment } from "../experiment/schema.js";
import { readLock, isStale, type LockInfo } from "./lock.js";
import { runId, type SweepRun } from "./expand.js";

export interface RunPaths {
  file: string;
  log: string;
  lock: string;
  failed: string;
  /** the results directory of the run */
  dir: string;
}

export function runPaths(out: string, run: { name: string; seed: number }): RunPaths {
  const stem = path.join(out, "runs", `${run.name}.seed-${run.seed}`);
  return {
    file: `${stem}.json`,
    log: `${stem}.log`,
    lock: `${stem}.lock`,
    failed: `${stem}.failed.json`,
    dir: path.join(out, run.name, `seed-${run.seed}`),
  };
}

/** Writes through a temporary file and a rename, so a reader never sees half a file. */
export function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

export function runFileText(run: SweepRun): string {
  return JSON.stringify(run.config, null, 2) + "\n";
}

/**
 * Refuses (before anything is written) when a run of this sweep would land where a different
 * configuration of the same name already has results or is running.
 */
export function checkConflicts(out: string, runs: SweepRun[]): void {
  for (const run of runs) {
    const p = runPaths(out, run);
    if (!fs.existsSync(p.file)) continue;
    let old: string | null = null;
    try {
      // validated, so that fields added to the schema since the file was written take their defaults
      // (which are the old behaviour) instead of making every earlier run look different
      old = runId(validateExperiment(JSON.parse(fs.readFileSync(p.file, "utf8")), p.file));
    } catch {
      old = null;
    }
    if (old === run.id) continue;
    const lock = readLock(p.lock);
    if (fs.existsSync(p.dir) || (lock && !isStale(lock)))
      throw new ConfigError(
        `${p.dir}: run ${run.name} seed ${run.seed} there was made from a different configuration (${p.file}); give the sweep another --out, or delete ${p.dir} and ${p.file} to start that run over`,
      );
  }
}

/** Writes the run files and the expansion record; a run file is rewritten only when its content changes. */
export function writeRunFiles(out: string, sweepFile: string, sweepText: string, runs: SweepRun[]): void {
  fs.mkdirSync(path.join(out, "runs"), { recursive: true });
  for (const run of runs) {
    const p = runPaths(out, run);
    const text = runFileText(run);
    if (!fs.existsSync(p.file) || fs.readFileSync(p.file, "utf8") !== text) writeAtomic(p.file, text);
  }
  const record = {
    file: sweepFile,
    sweep: JSON.parse(sweepText),
    runs: runs.map((r) => ({
      id: r.id,
      name: r.name,
      seed: r.seed,
      example: r.example,
      values: r.values,
      file: path.relative(out, runPaths(out, r).file),
    })),
  };
  writeAtomic(path.join(out, "sweep.resolved.json"), JSON.stringify(record, null, 2) + "\n");
}

export interface FailureRecord {
  error: string;
  /** the last lines of the experiment CLI's output */
  tail: string;
  exitCode: number | null;
  signal: string | null;
  host: string;
  at: string;
}

export function writeFailure(p: RunPaths, f: Omit<FailureRecord, "host" | "at">): void {
  writeAtomic(p.failed, JSON.stringify({ ...f, host: os.hostname(), at: new Date().toISOString() }, null, 2) + "\n");
}

/** The run succeeded: its earlier failure no longer describes it. */
export function clearFailure(p: RunPaths): void {
  fs.rmSync(p.failed, { force: true });
}

export function readFailure(p: RunPaths): FailureRecord | null {
  try {
    return JSON.parse(fs.readFileSync(p.failed, "utf8")) as FailureRecord;
  } catch {
    return null;
  }
}

export function isComplete(p: RunPaths): boolean {
  return fs.existsSync(path.join(p.dir, "summary.json")) && !fs.existsSync(path.join(p.dir, "resume.json"));
}

export type DiskState =
  | { kind: "done" }
  | { kind: "failed"; failure: FailureRecord }
  | { kind: "running"; holder: LockInfo }
  | { kind: "partial"; step: number }
  | { kind: "missing" };

/** What the files say about one run. */
export function diskState(out: string, run: { name: string; seed: number }): DiskState {
  const p = runPaths(out, run);
  if (isComplete(p)) return { kind: "done" };
  const holder = readLock(p.lock);
  if (holder && !isStale(holder)) return { kind: "running", holder };
  const failure = readFailure(p);
  if (failure) return { kind: "failed", failure };
  try {
    const pointer = JSON.parse(fs.readFileSync(path.join(p.dir, "resume.json"), "utf8")) as { step: number };
    return { kind: "partial", step: pointer.step };
  } catch {
    return { kind: "missing" };
  }
}

export function describeDiskState(s: DiskState): string {
  switch (s.kind) {
    case "done":
      return "done";
    case "failed":
      return `failed: ${s.failure.error}`;
    case "running":
      return `running (${s.holder.host} pid ${s.holder.child ?? s.holder.pid})`;
    case "partial":
      return `interrupted, state saved after step ${s.step}`;
    case "missing":
      return "not started";
  }
}
