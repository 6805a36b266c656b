// `npm run worker -- --redis redis://HOST:PORT [--jobs N] [--queue NAME] [--stalled-seconds S]`
// Takes sweep runs from the BullMQ queue and runs each as an experiment process on this machine, up
// to N at a time (default: one per core; threads per run so that runs × threads ≤ cores). Runs until
// Ctrl-C or SIGTERM: then the running runs save their state and go back on the queue for any worker.
// The logic is in src/sweep/queue.ts; this file is the command line's edge.
import os from "node:os";
import { threadsPerWorker } from "../sweep/child.js";
import { checkRedis, DEFAULT_QUEUE, startWorker } from "../sweep/queue.js";
import { numberFlag, parseArgs, runMain } from "./args.js";

const USAGE = `usage: npm run worker -- --redis redis://HOST:PORT [--jobs N] [--queue NAME] [--stalled-seconds S]
Runs sweep jobs from the queue (submitted with \`npm run sweep -- FILE --redis URL\`). Run it in a
checkout of the same commit as the submitter, with the sweep's results directory mounted at the same
path. A worker that dies loses its jobs to the others after about 2 × S seconds (default 30).`;

runMain(async () => {
  const { positional, flags } = parseArgs(
    process.argv.slice(2),
    { redis: "string", jobs: "string", queue: "string", "stalled-seconds": "string", help: "boolean" },
    "worker",
  );
  if (flags.help) {
    console.log(USAGE);
    return;
  }
  if (positional.length) throw new Error(`worker: unexpected argument ${positional[0]}\n${USAGE}`);
  const url = flags.redis as string | undefined;
  if (!url) throw new Error(`worker: --redis URL is required\n${USAGE}`);
  const jobs = numberFlag(flags, "jobs", os.availableParallelism(), { integer: true, min: 1 });
  const stalledSeconds = numberFlag(flags, "stalled-seconds", 30, { min: 0.5 });
  const queue = (flags.queue as string | undefined) ?? DEFAULT_QUEUE;
  await checkRedis(url);
  const log = (l: string) => console.log(`${new Date().toISOString().slice(11, 19)} ${l}`);
  const w = startWorker({ url, queue, jobs, stalledSeconds, log });
  log(
    `worker ${os.hostname()}:${process.pid} on queue ${queue} at ${url}: up to ${jobs} run${jobs === 1 ? "" : "s"} at a time × ${threadsPerWorker(jobs)} thread${threadsPerWorker(jobs) === 1 ? "" : "s"}; Ctrl-C stops it (running runs save their state and go back on the queue)`,
  );
  let closing: Promise<void> | null = null;
  const onSignal = (sig: string) => {
    if (closing) process.exit(130);
    log(`${sig}: stopping; running runs save their state and go back on the queue (press again to abort at once)`);
    closing = w.close().then(() => {
      log("stopped");
      process.exit(0);
    });
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));
});
