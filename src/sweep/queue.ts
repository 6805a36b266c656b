// Sweeps across machines on BullMQ and Redis. The sweep command puts one job per run on the queue,
// with a job id built from the run's identity (so submitting a run twice makes one job), and watches
// the jobs; `npm run worker` on any machine takes jobs and runs each as an experiment child process
// (./child.ts). Results are not sent through Redis: every worker writes into the sweep's results
// directory, a path every machine sees (a shared mount). That directory is also where a run keeps its
// resumable state, so when a worker dies, BullMQ's stalled-job check puts its job back on the queue
// and whichever worker takes it next resumes the run from its last saved state.
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Queue, UnrecoverableError, WaitingError, Worker, type Job } from "bullmq";
import { Redis } from "ioredis";
import { failureMessage, spawnExperiment, threadsPerWorker, type ChildRun } from "./child.js";
import { runId, type SweepRun } from "./expand.js";
import { clearFailure, isComplete, runPaths, writeFailure } from "./layout.js";
import { isLock, tryLock, type Lock } from "./lock.js";
import type { RunOutcome } from "./local.js";
import { Progress } from "./progress.js";

export const DEFAULT_QUEUE = "rlvr-sweep";

/** What a job carries: where the run file is and where its results go (absolute paths on the shared mount). */
export interface RunJobData {
  id: string;
  name: string;
  seed: number;
  out: string;
  runFile: string;
  backend?: string;
  sweep: string;
}

export interface RunJobResult {
  seconds: number;
  host: string;
  /** true when the run was already complete when the job started */
  skipped: boolean;
}

export class RedisUnreachable extends Error {}

/** The queue job id of a run: its identity and the results directory it writes to. */
export function jobIdFor(id: string, out: string): string {
  const where = crypto.createHash("sha256").update(path.resolve(out)).digest("hex").slice(0, 8);
  return `run-${id}-${where}`;
}

export function checkRedisUrl(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new RedisUnreachable(`--redis ${JSON.stringify(url)}: not a URL; give one like redis://HOST:6379`);
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:")
    throw new RedisUnreachable(`--redis ${url}: the scheme must be redis:// (or rediss:// for TLS)`);
}

/** Fails with one clear error naming the URL when Redis does not answer. */
export async function checkRedis(url: string, timeoutMs = 3000): Promise<void> {
  checkRedisUrl(url);
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  let first: NodeJS.ErrnoException | null = null;
  client.on("error", (e: NodeJS.ErrnoException) => (first ??= e));
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    const err = first ?? (e as NodeJS.ErrnoException);
    throw new RedisUnreachable(
      `Redis at ${url} is unreachable (${err.code ?? err.message}); start it (e.g. \`redis-server --port ${new URL(url).port || 6379}\`) or fix --redis. Nothing was queued or written.`,
    );
  } finally {
    client.disconnect();
  }
}

export function redisConnection(url: string, log: (l: string) => void): Redis {
  const r = new Redis(url, { maxRetriesPerRequest: null });
  let last = "";
  r.on("error", (e: Error) => {
    if (e.message !== last) log(`Redis at ${url}: ${e.message} (retrying)`);
    last = e.message;
  });
  r.on("ready", () => {
    if (last) log(`Redis at ${url}: connected again`);
    last = "";
  });
  return r;
}

export interface OpenQueue {
  queue: Queue<RunJobData, RunJobResult>;
  close(): Promise<void>;
}

export function openQueue(url: string, name: string, log: (l: string) => void): OpenQueue {
  const connection = redisConnection(url, log);
  const queue = new Queue<RunJobData, RunJobResult>(name, { connection });
  return {
    queue,
    async close() {
      await queue.close();
      connection.disconnect();
    },
  };
}

export type SubmitAction = "complete" | "added" | "retried" | "queued" | "re-added";

export interface Submitted {
  run: SweepRun;
  jobId: string;
  action: SubmitAction;
}

/**
 * Puts every run that is not complete on disk on the queue: a new job, or the existing job if one with
 * the same id is waiting or running, or the failed job retried. A job that completed but whose results
 * are gone (deleted) is replaced.
 */
export async function submitRuns(
  queue: Queue<RunJobData, RunJobResult>,
  runs: SweepRun[],
  opts: { out: string; backend?: string; sweep: string },
): Promise<Submitted[]> {
  const out = path.resolve(opts.out);
  const result: Submitted[] = [];
  for (const run of runs) {
    const p = runPaths(out, run);
    const jobId = jobIdFor(run.id, out);
    if (isComplete(p)) {
      result.push({ run, jobId, action: "complete" });
      continue;
    }
    const data: RunJobData = {
      id: run.id,
      name: run.name,
      seed: run.seed,
      out,
      runFile: p.file,
      backend: opts.backend,
      sweep: opts.sweep,
    };
    const existing = await queue.getJob(jobId);
    let action: SubmitAction = "added";
    if (existing) {
      const state = await existing.getState();
      if (state === "failed") {
        // another sweep command may have retried it a moment ago: then it is queued already
        await existing.retry("failed").catch(() => undefined);
        action = "retried";
      } else if (state === "completed") {
        await existing.remove().catch(() => undefined);
        await queue.add(run.name, data, { jobId });
        action = "re-added";
      } else action = "queued";
    } else await queue.add(run.name, data, { jobId });
    result.push({ run, jobId, action });
  }
  return result;
}

const label = (r: { name: string; seed: number }) => `${r.name} seed ${r.seed}`;
const sleep = (ms: number) => new Promise<void>((res) => setTimeout(res, ms));

/** Watches the submitted jobs until each has completed or failed (or `shouldStop`), printing progress. */
export async function watchJobs(
  queue: Queue<RunJobData, RunJobResult>,
  submitted: Submitted[],
  opts: { log: (l: string) => void; shouldStop: () => boolean; pollMs?: number; heartbeatSeconds?: number },
): Promise<RunOutcome[]> {
  const progress = new Progress(submitted.length, Date.now());
  const outcomes = new Map<string, RunOutcome>();
  const say = (what: string) => opts.log(`[${progress.line(Date.now())}] ${what}`);
  for (const s of submitted)
    if (s.action === "complete") {
      progress.skip();
      outcomes.set(s.jobId, { run: s.run, status: "skipped" });
    }
  /** jobs seen running, with how many times each had been started then */
  const active = new Map<string, number>();
  let workers = -1;
  let lastLine = Date.now();
  let lastWorkerCheck = 0;
  while (outcomes.size < submitted.length && !opts.shouldStop()) {
    if (Date.now() - lastWorkerCheck > 5000) {
      lastWorkerCheck = Date.now();
      const n = await queue.getWorkersCount().catch(() => workers);
      if (n !== workers) {
        say(
          n === 0
            ? "no worker is connected to the queue; start one on any machine with `npm run worker -- --redis URL`"
            : `${n} worker${n === 1 ? "" : "s"} connected`,
        );
        workers = n;
      }
    }
    for (const s of submitted) {
      if (outcomes.has(s.jobId)) continue;
      const job = await queue.getJob(s.jobId);
      if (!job) {
        progress.fail(s.jobId);
        outcomes.set(s.jobId, { run: s.run, status: "failed", error: "the job was removed from the queue" });
        say(`FAILED ${label(s.run)}: the job was removed from the queue`);
        continue;
      }
      const state = await job.getState();
      if (state === "active") {
        const before = active.get(s.jobId);
        if (before === undefined || job.attemptsStarted > before) {
          progress.start(s.jobId);
          say(
            before === undefined
              ? `started ${label(s.run)}${job.processedBy ? ` on ${job.processedBy}` : ""}`
              : `${label(s.run)} went back on the queue (its worker stopped) and ${job.processedBy ?? "another worker"} resumes it`,
          );
        }
        active.set(s.jobId, job.attemptsStarted);
        const pr = job.progress as { step?: number; steps?: number } | number;
        if (typeof pr === "object" && pr.step !== undefined && pr.steps) progress.step(s.jobId, pr.step, pr.steps);
      } else if (state === "completed") {
        active.delete(s.jobId);
        progress.done(s.jobId);
        const r = job.returnvalue;
        outcomes.set(s.jobId, { run: s.run, status: "done", seconds: r?.seconds });
        say(`done ${label(s.run)}${r && !r.skipped ? ` in ${r.seconds.toFixed(1)}s on ${r.host}` : ""}`);
      } else if (state === "failed") {
        active.delete(s.jobId);
        progress.fail(s.jobId);
        const error = (job.failedReason ?? "failed").split("\n")[0];
        outcomes.set(s.jobId, { run: s.run, status: "failed", error });
        say(`FAILED ${label(s.run)}: ${error}`);
      } else if (active.has(s.jobId)) {
        // its worker stopped or died: the next worker to take it resumes it
        active.delete(s.jobId);
        progress.release(s.jobId);
        say(`${label(s.run)} went back on the queue (its worker stopped); the next worker resumes it`);
      }
    }
    if (Date.now() - lastLine > (opts.heartbeatSeconds ?? 30) * 1000 && active.size) {
      say("running");
      lastLine = Date.now();
    }
    if (outcomes.size < submitted.length) await sleep(opts.pollMs ?? 1000);
  }
  return submitted.map((s) => outcomes.get(s.jobId) ?? { run: s.run, status: "stopped" });
}

export interface QueueStatus {
  counts: Record<string, number>;
  workers: { name: string; addr: string }[];
  jobs: { run: SweepRun; jobId: string; state: string; processedBy?: string; failedReason?: string }[];
}

export async function queueStatus(
  queue: Queue<RunJobData, RunJobResult>,
  runs: SweepRun[],
  out: string,
): Promise<QueueStatus> {
  const counts = await queue.getJobCounts("waiting", "active", "delayed", "completed", "failed", "prioritized");
  const workers = (await queue.getWorkers()).map((w) => ({ name: String(w.name ?? ""), addr: String(w.addr ?? "") }));
  const jobs: QueueStatus["jobs"] = [];
  for (const run of runs) {
    const jobId = jobIdFor(run.id, out);
    const job = await queue.getJob(jobId);
    jobs.push({
      run,
      jobId,
      state: job ? await job.getState() : "not queued",
      processedBy: job?.processedBy,
      failedReason: job?.failedReason?.split("\n")[0],
    });
  }
  return { counts, workers, jobs };
}

export interface WorkerOptions {
  url: string;
  queue: string;
  /** runs at a time on this machine */
  jobs: number;
  /** lock duration and stalled-check interval: a dead worker's job is re-queued within about twice this */
  stalledSeconds: number;
  log: (line: string) => void;
}

export interface RunWorker {
  worker: Worker<RunJobData, RunJobResult>;
  /** stops taking jobs; running runs save their state and go back on the queue */
  close(): Promise<void>;
}

export function startWorker(o: WorkerOptions): RunWorker {
  const host = os.hostname();
  const threads = threadsPerWorker(o.jobs);
  const children = new Set<ChildRun>();
  let stopping = false;

  const handBack = async (job: Job<RunJobData, RunJobResult>, token: string | undefined, why: string) => {
    o.log(`${label(job.data)}: ${why}; back on the queue`);
    await job.moveToWait(token);
    throw new WaitingError();
  };

  const processor = async (job: Job<RunJobData, RunJobResult>, token?: string): Promise<RunJobResult> => {
    const d = job.data;
    const p = runPaths(d.out, d);
    if (!fs.existsSync(p.file))
      throw new UnrecoverableError(
        `${p.file}: not found on ${host}; the sweep's results directory must be at the same path on every worker machine (a shared mount)`,
      );
    if (runId(JSON.parse(fs.readFileSync(p.file, "utf8"))) !== d.id)
      throw new UnrecoverableError(
        `${p.file} no longer holds the run this job was queued for; submit the sweep again (it queues the file's run)`,
      );
    if (isComplete(p)) return { seconds: 0, host, skipped: true };
    let lock: Lock | null = null;
    let waiting = false;
    while (!lock) {
      const got = tryLock(p.lock, { foreignIsStale: true });
      if (isLock(got)) lock = got;
      else {
        if (stopping) return handBack(job, token, "stopping");
        if (!waiting) o.log(`${label(d)}: waiting for ${got.host} pid ${got.child ?? got.pid}, which runs it`);
        waiting = true;
        await sleep(1000);
      }
    }
    let child: ChildRun | null = null;
    try {
      if (isComplete(p)) return { seconds: 0, host, skipped: true };
      let lastReport = 0;
      child = spawnExperiment({
        runFile: p.file,
        out: d.out,
        threads,
        backend: d.backend,
        logFile: p.log,
        onStep: (step, steps) => {
          if (Date.now() - lastReport < 1000 && step < steps) return;
          lastReport = Date.now();
          job.updateProgress({ step, steps }).catch(() => undefined);
        },
      });
      lock.setChild(child.pid);
      children.add(child);
      o.log(`started ${label(d)} (job ${job.id}, log ${p.log})`);
      const x = await child.done;
      if (x.code === 0 && isComplete(p)) {
        clearFailure(p);
        o.log(`done ${label(d)} in ${x.seconds.toFixed(1)}s`);
        return { seconds: x.seconds, host, skipped: false };
      }
      if (stopping) return handBack(job, token, "stopped with its state saved");
      const error = x.code === 0 ? "the experiment process exited without writing summary.json" : failureMessage(x);
      writeFailure(p, { error, tail: x.tail, exitCode: x.code, signal: x.signal });
      o.log(`FAILED ${label(d)}: ${error}`);
      throw new UnrecoverableError(`${error}\n--- last output of the run (${p.log}) ---\n${x.tail}`);
    } finally {
      if (child) children.delete(child);
      lock.release();
    }
  };

  const connection = redisConnection(o.url, o.log);
  const worker = new Worker<RunJobData, RunJobResult>(o.queue, processor, {
    connection,
    concurrency: o.jobs,
    lockDuration: o.stalledSeconds * 1000,
    stalledInterval: o.stalledSeconds * 1000,
    maxStalledCount: 3,
    name: `${host}:${process.pid}`,
  });
  worker.on("error", (e) => o.log(`worker: ${e.message}`));
  return {
    worker,
    async close() {
      stopping = true;
      for (const c of children) c.stop();
      await worker.close();
      connection.disconnect();
    },
  };
}
