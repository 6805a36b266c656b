// Runs one run of a sweep as a child process of the experiment command line
// (`node --import tsx src/cli/experiment.ts RUNFILE --out OUT --resume`): a missing run starts, an
// interrupted one resumes from its saved state, a complete one is left alone. The process boundary is
// the interface: the sweep depends on the CLI's flags and exit status, not on the runner's internals.
//
// The child runs in its own session, so a Ctrl-C in the terminal reaches only the sweep, which passes
// one SIGTERM on (the CLI saves a resumable state on the first and aborts on the second). On Linux it
// is started through `setpriv --pdeathsig KILL`: if the sweep or worker process dies, even by SIGKILL,
// the kernel kills the child too, so a crashed worker never leaves a run training that another worker
// is about to resume.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const EXPERIMENT_CLI = path.join(REPO_ROOT, "src", "cli", "experiment.ts");

let pdeathsig: boolean | null = null;
/** Whether `setpriv --pdeathsig` works here (util-linux on Linux). */
export function hasPdeathsig(): boolean {
  if (pdeathsig === null) {
    const r = spawnSync("setpriv", ["--pdeathsig", "KILL", "--", "true"], { stdio: "ignore" });
    pdeathsig = r.status === 0;
  }
  return pdeathsig;
}

/** Threads per child so that workers × threads ≤ cores. */
export function threadsPerWorker(workers: number, cores = os.availableParallelism()): number {
  return Math.max(1, Math.floor(cores / Math.max(1, workers)));
}

export interface ChildExit {
  code: number | null;
  signal: string | null;
  seconds: number;
  /** the last lines the child printed (stderr first when it printed any) */
  tail: string;
  /** its error line (`error: …`), when it printed one */
  error: string | null;
}

export interface ChildRun {
  pid: number;
  done: Promise<ChildExit>;
  /** asks the child to save a resumable state and exit */
  stop(): void;
}

export interface ChildOptions {
  runFile: string;
  out: string;
  /** RLVR_THREADS for the child */
  threads: number;
  backend?: string;
  /** the child's output is appended here */
  logFile: string;
  /** called with (step, steps) for every step line the child prints */
  onStep?: (step: number, steps: number) => void;
}

const TAIL_LINES = 20;

function keepTail(lines: string[], chunk: string): void {
  for (const l of chunk.split("\n")) if (l.trim()) lines.push(l);
  if (lines.length > TAIL_LINES) lines.splice(0, lines.length - TAIL_LINES);
}

export function experimentArgs(o: Pick<ChildOptions, "runFile" | "out" | "backend">): string[] {
  return [
    process.execPath,
    "--import",
    "tsx",
    EXPERIMENT_CLI,
    o.runFile,
    "--out",
    o.out,
    "--resume",
    ...(o.backend ? ["--backend", o.backend] : []),
  ];
}

export function spawnExperiment(o: ChildOptions): ChildRun {
  const argv = experimentArgs(o);
  const cmd = hasPdeathsig() ? ["setpriv", "--pdeathsig", "KILL", "--", ...argv] : argv;
  fs.mkdirSync(path.dirname(o.logFile), { recursive: true });
  const log = fs.createWriteStream(o.logFile, { flags: "a" });
  log.write(
    `\n=== ${new Date().toISOString()} ${os.hostname()} pid ${process.pid}, RLVR_THREADS=${o.threads}: ${argv.slice(3).join(" ")}\n`,
  );
  const start = Date.now();
  const child = spawn(cmd[0], cmd.slice(1), {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RLVR_THREADS: String(o.threads) },
  });
  const out: string[] = [];
  const err: string[] = [];
  let partial = "";
  child.stdout!.on("data", (d: Buffer) => {
    const s = d.toString();
    log.write(s);
    keepTail(out, s);
    if (o.onStep) {
      const text = partial + s;
      const lines = text.split("\n");
      partial = lines.pop() ?? "";
      for (const l of lines) {
        const m = /\] step (\d+)\/(\d+) /.exec(l);
        if (m) o.onStep(Number(m[1]), Number(m[2]));
      }
    }
  });
  child.stderr!.on("data", (d: Buffer) => {
    const s = d.toString();
    log.write(s);
    keepTail(err, s);
  });
  const done = new Promise<ChildExit>((resolve) => {
    let finished = false;
    const finish = (code: number | null, signal: string | null) => {
      if (finished) return;
      finished = true;
      const seconds = (Date.now() - start) / 1000;
      log.end(`=== exit ${code ?? signal} after ${seconds.toFixed(1)}s\n`);
      const errorLine = [...err].reverse().find((l) => l.startsWith("error: "));
      resolve({
        code,
        signal,
        seconds,
        tail: (err.length ? err : out).join("\n"),
        error: errorLine ? errorLine.slice("error: ".length) : null,
      });
    };
    child.on("error", (e) => {
      err.push(`could not start ${cmd[0]}: ${e.message}`);
      finish(null, null);
    });
    child.on("close", (code, signal) => finish(code, signal));
  });
  return {
    pid: child.pid ?? -1,
    done,
    stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    },
  };
}

/** One line saying why a run failed, from its exit and output. */
export function failureMessage(x: ChildExit): string {
  if (x.error) return x.error;
  if (x.signal) return `the experiment process was killed by ${x.signal}`;
  const last = x.tail.split("\n").filter(Boolean).pop();
  return `the experiment process exited with status ${x.code}${last ? `: ${last}` : ""}`;
}
