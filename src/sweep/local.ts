// Runs a sweep's runs on this machine: up to `jobs` experiment processes at a time, each with
// RLVR_THREADS chosen so that processes × threads ≤ cores. A run is taken only under its lock
// (./lock.ts): a run that another sweep process is running is left to it and checked again later, so
// two sweep commands on the same file share the work and never run one run twice. Complete runs are
// skipped without starting a process; interrupted ones resume from their saved state (the experiment
// CLI's --resume); a failing run is recorded with its error and the others go on.
import { failureMessage, spawnExperiment, threadsPerWorker, type ChildRun } from "./child.js";
import type { SweepRun } from "./expand.js";
import { clearFailure, isComplete, readFailure, runPaths, writeFailure } from "./layout.js";
import { isLock, tryLock, type LockInfo } from "./lock.js";
import { Progress } from "./progress.js";

export type OutcomeStatus = "done" | "skipped" | "failed" | "stopped";

export interface RunOutcome {
  run: SweepRun;
  status: OutcomeStatus;
  seconds?: number;
  error?: string;
}

export interface LocalOptions {
  out: string;
  jobs: number;
  backend?: string;
  /** progress lines */
  log: (line: string) => void;
  /** how often a line is printed while nothing changes */
  heartbeatSeconds?: number;
}

const label = (r: SweepRun) => `${r.name} seed ${r.seed}`;
const key = (r: SweepRun) => `${r.name}/${r.seed}`;
const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

export class LocalSweep {
  private stopping = false;
  private readonly children = new Map<string, ChildRun>();

  constructor(private readonly opts: LocalOptions) {}

  /** Stops taking runs and asks every running child to save its state and exit. */
  stop(): void {
    this.stopping = true;
    for (const c of this.children.values()) c.stop();
  }

  get stopped(): boolean {
    return this.stopping;
  }

  async run(runs: SweepRun[]): Promise<RunOutcome[]> {
    const { out } = this.opts;
    const startedAt = Date.now();
    const progress = new Progress(runs.length, startedAt);
    const outcomes = new Map<string, RunOutcome>();
    const say = (what: string) => this.opts.log(`[${progress.line(Date.now())}] ${what}`);

    const pending: SweepRun[] = [];
    for (const r of runs) {
      if (isComplete(runPaths(out, r))) {
        progress.skip();
        outcomes.set(key(r), { run: r, status: "skipped" });
      } else pending.push(r);
    }
    const skipped = runs.length - pending.length;
    const workers = Math.max(1, Math.min(this.opts.jobs, pending.length));
    const threads = threadsPerWorker(workers);
    this.opts.log(
      `${runs.length} run${runs.length === 1 ? "" : "s"}: ${skipped} already complete, ${pending.length} to run on ${workers} process${workers === 1 ? "" : "es"} × ${threads} thread${threads === 1 ? "" : "s"}`,
    );
    if (pending.length === 0) return runs.map((r) => outcomes.get(key(r))!);

    const running = new Map<string, Promise<void>>();
    const announcedBusy = new Set<string>();
    const heartbeat = setInterval(
      () => {
        if (running.size) say("running");
      },
      (this.opts.heartbeatSeconds ?? 30) * 1000,
    );
    heartbeat.unref();

    const startRun = (r: SweepRun): "started" | "finished" | LockInfo => {
      const p = runPaths(out, r);
      const lock = tryLock(p.lock);
      if (!isLock(lock)) return lock;
      if (isComplete(p)) {
        lock.release();
        progress.done(key(r));
        outcomes.set(key(r), { run: r, status: "done" });
        say(`done ${label(r)} (by another sweep process)`);
        return "finished";
      }
      const f = readFailure(p);
      if (f && Date.parse(f.at) >= startedAt) {
        lock.release();
        progress.fail(key(r));
        outcomes.set(key(r), { run: r, status: "failed", error: f.error });
        say(`failed ${label(r)} (in another sweep process): ${f.error}`);
        return "finished";
      }
      let child: ChildRun;
      try {
        child = spawnExperiment({
          runFile: p.file,
          out,
          threads,
          backend: this.opts.backend,
          logFile: p.log,
          onStep: (s, n) => progress.step(key(r), s, n),
        });
        lock.setChild(child.pid);
      } catch (e) {
        lock.release();
        throw e;
      }
      this.children.set(key(r), child);
      progress.start(key(r));
      say(`started ${label(r)} (log ${p.log})`);
      const task = child.done.then((x) => {
        this.children.delete(key(r));
        running.delete(key(r));
        try {
          if (x.code === 0 && isComplete(p)) {
            progress.done(key(r));
            outcomes.set(key(r), { run: r, status: "done", seconds: x.seconds });
            clearFailure(p);
            say(`done ${label(r)} in ${x.seconds.toFixed(1)}s`);
          } else if (this.stopping) {
            progress.release(key(r));
            outcomes.set(key(r), { run: r, status: "stopped" });
            say(`stopped ${label(r)}; its state is saved`);
          } else {
            const error =
              x.code === 0 ? "the experiment process exited without writing summary.json" : failureMessage(x);
            writeFailure(p, { error, tail: x.tail, exitCode: x.code, signal: x.signal });
            progress.fail(key(r));
            outcomes.set(key(r), { run: r, status: "failed", seconds: x.seconds, error });
            say(`FAILED ${label(r)}: ${error} (see ${p.failed} and ${p.log})`);
          }
        } finally {
          lock.release();
        }
      });
      running.set(key(r), task);
      return "started";
    };

    try {
      while (pending.length || running.size) {
        if (!this.stopping) {
          for (let i = 0; i < pending.length && running.size < workers;) {
            const r = pending[i];
            const got = startRun(r);
            if (got === "started" || got === "finished") pending.splice(i, 1);
            else {
              if (!announcedBusy.has(key(r))) {
                announcedBusy.add(key(r));
                say(`${label(r)} is being run by ${got.host} pid ${got.child ?? got.pid}; coming back to it`);
              }
              i++;
            }
          }
        } else if (running.size === 0) break;
        // wake when a run ends, or after a second to look at runs other processes hold
        await Promise.race([...running.values(), sleep(1000)]);
      }
    } finally {
      clearInterval(heartbeat);
    }
    for (const r of pending) outcomes.set(key(r), { run: r, status: "stopped" });
    return runs.map((r) => outcomes.get(key(r))!);
  }
}
