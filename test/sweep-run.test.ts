// End-to-end sweeps: `npm run sweep` on the local pool and on BullMQ workers against a real Redis
// (Debian's redis-server, started here on a free loopback port and stopped after), checked against
// each experiment run alone: metrics.csv and summary.json must be byte-identical. Also: two sweep
// commands on one file run each run once, a SIGKILLed worker's run is finished by another worker from
// its saved state, a failing run is recorded and retried alone, and an unreachable Redis stops the
// sweep before it writes anything.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { checkRedis } from "../src/sweep/queue.js";

const NODE = process.execPath;
const root = fs.mkdtempSync(path.join(os.tmpdir(), "sweep-run-"));
const started = new Set<ChildProcess>();

interface Done {
  code: number | null;
  out: string;
}

/** Starts a CLI (src/cli/NAME.ts) in a node process of its own, so that signals reach it directly. */
function start(name: string, args: string[], env: Record<string, string> = {}) {
  const child = spawn(NODE, ["--import", "tsx", `src/cli/${name}.ts`, ...args], {
    env: { ...process.env, CI: "true", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  started.add(child);
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const done = new Promise<Done>((resolve) =>
    child.on("close", (code) => {
      started.delete(child);
      resolve({ code, out });
    }),
  );
  return { child, done, output: () => out };
}

const run = (name: string, args: string[], env?: Record<string, string>) => start(name, args, env).done;

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

async function waitFor(what: string, ok: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const SMOKE = JSON.parse(fs.readFileSync("experiments/smoke.json", "utf8"));
const files = (dir: string) => ["metrics.csv", "summary.json"].map((f) => fs.readFileSync(path.join(dir, f), "utf8"));
/** how many times the sweep started the experiment process for a run */
const attempts = (log: string) => (fs.readFileSync(log, "utf8").match(/^=== \d{4}-/gm) ?? []).length;

/** Runs one experiment file alone with `npm run experiment`, the reference a sweep must match. */
async function alone(name: string, patch: Record<string, unknown>): Promise<string> {
  const dir = path.join(root, "alone", name);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "exp.json");
  fs.writeFileSync(file, JSON.stringify({ ...SMOKE, $schema: undefined, name, ...patch }));
  const r = await run("experiment", [file, "--out", dir], { RLVR_THREADS: "1" });
  expect(r.code, r.out).toBe(0);
  return path.join(dir, name, `seed-${(patch.seeds as number[])[0]}`);
}

// the smoke sweep's six runs, each as its own experiment file: the smoke experiment with the seed and example set
const SMOKE_RUNS = [1, 2, 3].flatMap((seed) => [
  { name: "smoke-mul", seed, example: { prompt: "12*2", answer: "24" } },
  { name: "smoke-default", seed, example: "data/examples/default.json" },
]);
const reference = new Map<string, string>();

beforeAll(async () => {
  for (let i = 0; i < SMOKE_RUNS.length; i += 2)
    await Promise.all(
      SMOKE_RUNS.slice(i, i + 2).map(async (r) => {
        const dir = await alone(`${r.name}`, { seeds: [r.seed], example: r.example });
        const keep = path.join(root, "ref", r.name, `seed-${r.seed}`);
        fs.mkdirSync(path.dirname(keep), { recursive: true });
        fs.renameSync(dir, keep);
        reference.set(`${r.name}/${r.seed}`, keep);
      }),
    );
});

afterAll(() => {
  for (const c of started) c.kill("SIGKILL");
  fs.rmSync(root, { recursive: true, force: true });
});

function expectSmokeResults(out: string): void {
  for (const r of SMOKE_RUNS) {
    const got = path.join(out, r.name, `seed-${r.seed}`);
    expect(files(got), `${r.name} seed ${r.seed}`).toEqual(files(reference.get(`${r.name}/${r.seed}`)!));
    expect(attempts(path.join(out, "runs", `${r.name}.seed-${r.seed}.log`)), `${r.name} seed ${r.seed}`).toBe(1);
  }
}

describe("local sweeps", () => {
  it("two sweep commands on the smoke sweep share its 6 runs, run each once, match each run alone, and end with compare", async () => {
    const out = path.join(root, "local");
    const a = start("sweep", ["experiments/sweeps/smoke.json", "--jobs", "2", "--out", out]);
    const b = start("sweep", ["experiments/sweeps/smoke.json", "--jobs", "1", "--out", out, "--compare=false"]);
    const [ra, rb] = await Promise.all([a.done, b.done]);
    expect(ra.code, ra.out).toBe(0);
    expect(rb.code, rb.out).toBe(0);
    expect(ra.out).toMatch(/\d\/6 done · \d running · 0 failed/);
    expect(ra.out).toMatch(/\$ npm run compare/);
    expect(fs.existsSync(path.join(out, "compare", "report.html"))).toBe(true);
    expect(fs.readFileSync(path.join(out, "compare", "compare.csv"), "utf8")).toMatch(/smoke-default/);
    expectSmokeResults(out);
    // every run is complete: a third command starts no experiment process
    const c = await run("sweep", ["experiments/sweeps/smoke.json", "--out", out, "--compare=false"]);
    expect(c.code, c.out).toBe(0);
    expect(c.out).toMatch(/6 runs: 6 already complete, 0 to run/);
    expectSmokeResults(out);
    const status = await run("sweep", ["experiments/sweeps/smoke.json", "--out", out, "--status"]);
    expect(status.out.match(/ done$/gm)).toHaveLength(6);
  });

  it("a failing run is recorded with its error and the sweep goes on; the next command retries only it", async () => {
    const file = path.join(root, "fail.json");
    fs.writeFileSync(
      file,
      JSON.stringify({
        name: "fail",
        base: "experiments/smoke.json",
        seeds: [1],
        examples: [
          { label: "ok", prompt: "12*2", answer: "24" },
          { label: "bad", prompt: "12&2", answer: "24" },
        ],
        grid: { steps: [1] },
      }),
    );
    const out = path.join(root, "fail-out");
    const first = await run("sweep", [file, "--out", out, "--jobs", "2", "--compare=false"]);
    expect(first.code, first.out).toBe(1);
    expect(first.out).toMatch(/FAILED fail-bad seed 1: .*outside the tokenizer's vocabulary/);
    expect(first.out).toMatch(/1 failed/);
    const failure = JSON.parse(fs.readFileSync(path.join(out, "runs", "fail-bad.seed-1.failed.json"), "utf8"));
    expect(failure.error).toMatch(/"&"/);
    expect(failure.tail).toMatch(/error: /);
    expect(failure.exitCode).toBe(1);
    expect(fs.existsSync(path.join(out, "fail-ok", "seed-1", "summary.json"))).toBe(true);
    const again = await run("sweep", [file, "--out", out, "--compare=false"]);
    expect(again.code).toBe(1);
    expect(again.out).toMatch(/2 runs: 1 already complete, 1 to run/);
    expect(attempts(path.join(out, "runs", "fail-ok.seed-1.log"))).toBe(1);
    expect(attempts(path.join(out, "runs", "fail-bad.seed-1.log"))).toBe(2);
  });
});

describe("sweeps on BullMQ workers with a real Redis", () => {
  let redis: ChildProcess;
  let url = "";

  beforeAll(async () => {
    const port = await freePort();
    url = `redis://127.0.0.1:${port}`;
    const dir = path.join(root, "redis");
    fs.mkdirSync(dir);
    redis = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir], {
      stdio: "ignore",
    });
    const failed = new Promise<never>((_, reject) =>
      redis.on("error", (e) =>
        reject(new Error(`cannot start redis-server (${e.message}); install it: apt-get install redis-server`)),
      ),
    );
    await Promise.race([
      failed,
      waitFor(
        "redis-server to answer",
        () =>
          checkRedis(url, 500).then(
            () => true,
            () => false,
          ),
        10_000,
      ),
    ]);
  });

  afterAll(async () => {
    if (redis && redis.exitCode === null) {
      redis.kill("SIGTERM");
      await new Promise((r) => redis.on("exit", r));
    }
  });

  const worker = (stalled = "2") => start("worker", ["--redis", url, "--jobs", "1", "--stalled-seconds", stalled]);

  async function stop(w: ReturnType<typeof start>): Promise<void> {
    w.child.kill("SIGTERM");
    const r = await w.done;
    expect(r.code, r.out).toBe(0);
  }

  it("two workers finish the 6-run smoke sweep submitted twice at once: one job per run, results as each run alone", async () => {
    const out = path.join(root, "queued");
    const w1 = worker();
    const w2 = worker();
    // both take jobs only if both are listening before the runs are queued
    await waitFor("two workers", () => [w1, w2].every((w) => w.output().includes(" on queue ")));
    const args = ["experiments/sweeps/smoke.json", "--redis", url, "--out", out, "--compare=false"];
    const [s1, s2] = await Promise.all([run("sweep", args), run("sweep", args)]);
    expect(s1.code, s1.out).toBe(0);
    expect(s2.code, s2.out).toBe(0);
    expect(s1.out + s2.out).toMatch(/6 runs → queue rlvr-sweep/);
    expectSmokeResults(out);
    // both workers took jobs
    const logs = SMOKE_RUNS.map((r) => fs.readFileSync(path.join(out, "runs", `${r.name}.seed-${r.seed}.log`), "utf8"));
    const pids = new Set(logs.map((l) => /^=== \S+ \S+ pid (\d+)/m.exec(l)?.[1]));
    expect(pids).toEqual(new Set([String(w1.child.pid), String(w2.child.pid)]));
    const status = await run("sweep", ["experiments/sweeps/smoke.json", "--redis", url, "--out", out, "--status"]);
    expect(status.code, status.out).toBe(0);
    expect(status.out).toMatch(/6 completed/);
    expect(status.out).toMatch(/workers: .*, .*/);
    expect(status.out.match(/ completed +done/g)).toHaveLength(6);
    // resubmitting a finished sweep queues nothing
    const again = await run("sweep", args);
    expect(again.out).toMatch(/0 added, 0 failed ones retried, 0 already queued, 6 complete on disk/);
    await Promise.all([stop(w1), stop(w2)]);
  });

  it("a SIGKILLed worker's run goes back on the queue and another worker resumes it to identical files", async () => {
    const file = path.join(root, "kill.json");
    fs.writeFileSync(
      file,
      JSON.stringify({
        name: "kill",
        base: "experiments/smoke.json",
        seeds: [1],
        grid: { steps: [30], checkpointEvery: [5] },
      }),
    );
    const ref = await alone("kill", { seeds: [1], steps: 30, checkpointEvery: 5 });
    const out = path.join(root, "kill-out");
    const a = worker();
    const sweep = start("sweep", [file, "--redis", url, "--out", out, "--compare=false"]);
    const runDir = path.join(out, "kill", "seed-1");
    const step = () => {
      try {
        return JSON.parse(fs.readFileSync(path.join(runDir, "resume.json"), "utf8")).step as number;
      } catch {
        return -1;
      }
    };
    await waitFor("a saved state after step 5", () => step() >= 5, 180_000);
    const lock = JSON.parse(fs.readFileSync(path.join(out, "runs", "kill.seed-1.lock"), "utf8"));
    expect(lock.pid).toBe(a.child.pid);
    a.child.kill("SIGKILL");
    await a.done;
    // the experiment process dies with its worker (no run left training behind the queue's back)
    const alive = () => {
      try {
        process.kill(lock.child, 0);
        return true;
      } catch {
        return false;
      }
    };
    await waitFor("the killed worker's experiment process to end", () => !alive(), 5000);
    expect(fs.existsSync(path.join(runDir, "summary.json"))).toBe(false);
    const b = worker();
    const r = await sweep.done;
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/kill seed 1 went back on the queue \(its worker stopped\)/);
    expect(files(runDir)).toEqual(files(ref));
    const log = fs.readFileSync(path.join(out, "runs", "kill.seed-1.log"), "utf8");
    expect(attempts(path.join(out, "runs", "kill.seed-1.log"))).toBe(2);
    expect(log).toMatch(/resuming .* after step (5|10|15|20|25) of 30/);
    await stop(b);
  });

  it("a failed job is retried by the next submission, and only it", async () => {
    const file = path.join(root, "qfail.json");
    fs.writeFileSync(
      file,
      JSON.stringify({
        name: "qfail",
        base: "experiments/smoke.json",
        seeds: [1],
        examples: [
          { label: "ok", prompt: "12*2", answer: "24" },
          { label: "bad", prompt: "12&2", answer: "24" },
        ],
        grid: { steps: [1] },
      }),
    );
    const out = path.join(root, "qfail-out");
    const w = worker();
    const args = [file, "--redis", url, "--out", out, "--compare=false"];
    const first = await run("sweep", args);
    expect(first.code, first.out).toBe(1);
    expect(first.out).toMatch(/FAILED qfail-bad seed 1: .*outside the tokenizer's vocabulary/);
    expect(fs.existsSync(path.join(out, "runs", "qfail-bad.seed-1.failed.json"))).toBe(true);
    const status = await run("sweep", [...args, "--status"]);
    expect(status.out).toMatch(/qfail-bad +1 +failed .*outside the tokenizer's vocabulary/);
    const again = await run("sweep", args);
    expect(again.code).toBe(1);
    expect(again.out).toMatch(/0 added, 1 failed ones retried, 0 already queued, 1 complete on disk/);
    expect(attempts(path.join(out, "runs", "qfail-ok.seed-1.log"))).toBe(1);
    expect(attempts(path.join(out, "runs", "qfail-bad.seed-1.log"))).toBe(2);
    await stop(w);
  });

  it("Redis unreachable: one error naming the URL, before anything is written", async () => {
    const down = `redis://127.0.0.1:${await freePort()}`;
    const out = path.join(root, "down");
    const s = await run("sweep", ["experiments/sweeps/smoke.json", "--redis", down, "--out", out]);
    expect(s.code).toBe(1);
    expect(s.out).toMatch(new RegExp(`^error: Redis at ${down} is unreachable \\(ECONNREFUSED\\)`, "m"));
    expect(s.out.trim().split("\n")).toHaveLength(1);
    expect(fs.existsSync(out)).toBe(false);
    const w = await run("worker", ["--redis", down]);
    expect(w.code).toBe(1);
    expect(w.out).toMatch(new RegExp(`Redis at ${down} is unreachable`));
  });
});
