// Sweep files in-process: the schema and its errors, grid expansion, run names, run identity, the
// ETA arithmetic and the run lock. The end-to-end sweeps (local pool, BullMQ workers, crashes) are in
// sweep-run.test.ts.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError } from "../src/experiment/schema.js";
import { canonicalJson, expandSweep, nameValue, runId } from "../src/sweep/expand.js";
import { diskState, runPaths } from "../src/sweep/layout.js";
import { isLock, readLock, tryLock } from "../src/sweep/lock.js";
import { estimateSeconds, formatSeconds, Progress } from "../src/sweep/progress.js";
import { experimentFieldPaths, gridKeyProblem, parseSweep, sweepJsonSchema } from "../src/sweep/schema.js";
import { jobIdFor } from "../src/sweep/queue.js";
import { threadsPerWorker } from "../src/sweep/child.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "sweep-unit-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const SMOKE = "experiments/sweeps/smoke.json";
const parse = (obj: unknown, file = "s.json") => parseSweep(JSON.stringify(obj), file);
const expand = (obj: unknown, file = "s.json") => expandSweep(parse(obj, file), file);
const errorOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError");
};

describe("sweep schema", () => {
  it("accepts every shipped sweep file, and the generated JSON Schema is current", () => {
    const s = parseSweep(fs.readFileSync(SMOKE, "utf8"), SMOKE);
    expect(s.seeds).toEqual([1, 2, 3]);
    expect(s.examples).toHaveLength(2);
    const onDisk = JSON.parse(fs.readFileSync("experiments/sweeps/sweep.schema.json", "utf8"));
    expect(onDisk).toEqual(JSON.parse(JSON.stringify(sweepJsonSchema())));
    for (const f of fs
      .readdirSync("experiments/sweeps")
      .filter((n) => n.endsWith(".json") && !n.endsWith(".schema.json"))) {
      const file = path.join("experiments/sweeps", f);
      expect(expandSweep(parseSweep(fs.readFileSync(file, "utf8"), file), file).length, file).toBeGreaterThan(0);
    }
  });

  it("names the file, the unknown key and the nearest known one", () => {
    const msg = errorOf(() => parse({ name: "x", base: "experiments/smoke.json", sedes: [1] }, "sweeps/typo.json"));
    expect(msg).toMatch(/^sweeps\/typo\.json: invalid sweep/);
    expect(msg).toMatch(/unknown key `sedes` — did you mean `seeds`\?/);
  });

  it("reports a wrong value with the field and what was received", () => {
    const msg = errorOf(() => parse({ name: "x y", base: "experiments/smoke.json", seeds: [-1] }));
    expect(msg).toMatch(/field `name`: .*got "x y"/);
    expect(msg).toMatch(/field `seeds.0`: .*got -1/);
  });

  it("checks grid paths against the experiment schema", () => {
    expect(experimentFieldPaths()).toContain("grpo.loss.klCoef");
    expect(experimentFieldPaths()).not.toContain("grpo");
    expect(gridKeyProblem("grpo.learningRate")).toBeNull();
    expect(gridKeyProblem("grpo.lerningRate")).toMatch(/not an experiment field — did you mean `grpo.learningRate`\?/);
    expect(gridKeyProblem("grpo.loss")).toMatch(/is a group of fields; sweep one of them: .*`grpo.loss.klCoef`/);
    expect(gridKeyProblem("seeds")).toMatch(/top-level `seeds`/);
    expect(gridKeyProblem("example.prompt")).toMatch(/top-level `examples`/);
    const msg = errorOf(() =>
      parse({ name: "x", base: "experiments/smoke.json", grid: { "grpo.lerningRate": [1e-4] } }, "bad-grid.json"),
    );
    expect(msg).toMatch(
      /^bad-grid\.json: invalid sweep:\n {2}grid key `grpo\.lerningRate`.*did you mean `grpo\.learningRate`/,
    );
  });
});

describe("sweep expansion", () => {
  it("expands the smoke sweep into 6 runs: two examples × seeds 1–3, each a one-seed experiment", () => {
    const runs = expandSweep(parseSweep(fs.readFileSync(SMOKE, "utf8"), SMOKE), SMOKE);
    expect(runs.map((r) => `${r.name}/${r.seed}`)).toEqual([
      "smoke-mul/1",
      "smoke-mul/2",
      "smoke-mul/3",
      "smoke-default/1",
      "smoke-default/2",
      "smoke-default/3",
    ]);
    const base = JSON.parse(fs.readFileSync("experiments/smoke.json", "utf8"));
    for (const r of runs) {
      expect(r.config.seeds).toEqual([r.seed]);
      expect(r.config.steps).toBe(base.steps);
      expect(r.config.grpo.copies).toBe(base.grpo.copies);
      expect(r.config.checkpointEvery).toBe(25); // the schema default, filled in
    }
    expect(runs[0].config.example).toEqual({ prompt: "12*2", answer: "24" });
    expect(runs[3].config.example).toEqual(JSON.parse(fs.readFileSync("data/examples/default.json", "utf8")));
    expect(new Set(runs.map((r) => r.id)).size).toBe(6);
  });

  it("takes the cartesian product of grid values and names runs by the axes that vary", () => {
    const runs = expand({
      name: "lr",
      base: "experiments/smoke.json",
      seeds: [7],
      grid: { "grpo.learningRate": [0.0001, 0.0003], "grpo.loss.klCoef": [0, 0.01], steps: [3] },
    });
    expect(runs.map((r) => r.name)).toEqual([
      "lr-learningRate0.0001-klCoef0",
      "lr-learningRate0.0001-klCoef0.01",
      "lr-learningRate0.0003-klCoef0",
      "lr-learningRate0.0003-klCoef0.01",
    ]);
    expect(runs[3].config.grpo.learningRate).toBe(0.0003);
    expect(runs[3].config.grpo.loss.klCoef).toBe(0.01);
    // a grid value inside a group leaves the group's other fields as the base file has them
    expect(runs[3].config.grpo.loss.entropyCoef).toBe(0.001);
    expect(runs[3].config.grpo.maxNewTokens).toBe(64);
    expect(runs.every((r) => r.config.steps === 3)).toBe(true);
    expect(runs[1].values).toEqual({ "grpo.learningRate": 0.0001, "grpo.loss.klCoef": 0.01, steps: 3 });
  });

  it("follows a runName template and rejects names that collide or placeholders that do not exist", () => {
    const base = { name: "t", base: "experiments/smoke.json", seeds: [1, 2], grid: { steps: [2, 3] } };
    expect(expand({ ...base, runName: "{sweep}_s{steps}_{example}" }).map((r) => r.name)).toEqual([
      "t_s2_12_2",
      "t_s2_12_2",
      "t_s3_12_2",
      "t_s3_12_2",
    ]);
    expect(errorOf(() => expand({ ...base, runName: "{sweep}" }, "c.json"))).toMatch(
      /^c\.json: field `runName`: the grid points \(.*steps = 2\) and \(.*steps = 3\) are both named "t"; add the axis/,
    );
    expect(errorOf(() => expand({ ...base, runName: "{sweep}-{stpes}" }))).toMatch(/unknown placeholder \{stpes\}/);
  });

  it("rejects a grid value the experiment schema rejects, naming the grid point and field", () => {
    const msg = errorOf(() => expand({ name: "v", base: "experiments/smoke.json", grid: { "grpo.copies": [2, 0] } }));
    expect(msg).toMatch(/grid point example 12_2, grpo\.copies = 0\): invalid experiment:\n {2}field `grpo\.copies`/);
  });

  it("names a missing base file or example file and the fix", () => {
    expect(errorOf(() => expand({ name: "m", base: "experiments/nope.json" }, "m.json"))).toMatch(
      /^m\.json: field `base`: file "experiments\/nope\.json" not found; give an experiment file/,
    );
    expect(
      errorOf(() =>
        expand({ name: "m", base: "experiments/smoke.json", examples: ["data/examples/nope.json"] }, "m.json"),
      ),
    ).toMatch(/^m\.json: field `examples\.0`: file "data\/examples\/nope\.json" not found/);
  });

  it("run identity: equal configs hash equal whatever the key order; any setting or the seed changes it", () => {
    const [a] = expand({ name: "h", base: "experiments/smoke.json" });
    const reordered = JSON.parse(canonicalJson(a.config));
    expect(runId(reordered)).toBe(a.id);
    expect(runId({ ...a.config, description: "another text" })).toBe(a.id);
    expect(runId({ ...a.config, seeds: [2] })).not.toBe(a.id);
    expect(runId({ ...a.config, grpo: { ...a.config.grpo, temperature: 0.9 } })).not.toBe(a.id);
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] })).toBe('{"a":[{"c":3,"d":2}],"b":1}');
    expect(a.id).toMatch(/^[0-9a-f]{16}$/);
    // the queue job id: the run's identity and where it writes
    expect(jobIdFor(a.id, "/x/out")).toBe(jobIdFor(a.id, "/x/../x/out"));
    expect(jobIdFor(a.id, "/x/out")).not.toBe(jobIdFor(a.id, "/y/out"));
    expect(jobIdFor(a.id, "/x/out")).toMatch(new RegExp(`^run-${a.id}-[0-9a-f]{8}$`));
  });

  it("writes values into names with only letters, digits, '.', '_' and '-'", () => {
    expect(nameValue(0.0003)).toBe("0.0003");
    expect(nameValue("seq-mean-token-mean")).toBe("seq-mean-token-mean");
    expect(nameValue(["add", "lin"])).toBe("add_lin");
    expect(nameValue("8x-5=27")).toBe("8x-5_27");
    expect(nameValue(true)).toBe("true");
  });
});

describe("sweep progress and threads", () => {
  it("ETA = elapsed × remaining work / work done, by hand", () => {
    expect(estimateSeconds(10, 0, 6)).toBeNull();
    expect(estimateSeconds(10, 2, 6)).toBe(20);
    expect(estimateSeconds(30, 2.5, 5)).toBe(30);
    expect(formatSeconds(59.4)).toBe("59s");
    expect(formatSeconds(125)).toBe("2m05s");
    expect(formatSeconds(3 * 3600 + 7 * 60)).toBe("3h07m");
  });

  it("counts done, running, failed and waiting; skipped runs are not work", () => {
    const p = new Progress(5, 0);
    p.skip();
    p.start("a");
    p.start("b");
    p.step("a", 5, 10);
    expect(p.counts()).toEqual({ total: 5, done: 1, failed: 0, running: 2, waiting: 2 });
    expect(p.eta(10_000)).toBe((10 * (4 - 0.5)) / 0.5);
    p.done("a");
    p.fail("b");
    expect(p.counts()).toEqual({ total: 5, done: 2, failed: 1, running: 0, waiting: 2 });
    expect(p.eta(20_000)).toBe(20);
    expect(p.line(20_000)).toBe("2/5 done · 0 running · 1 failed · 2 waiting · ETA 20s");
  });

  it("chooses threads so that processes × threads ≤ cores", () => {
    expect(threadsPerWorker(1, 16)).toBe(16);
    expect(threadsPerWorker(3, 16)).toBe(5);
    expect(threadsPerWorker(16, 16)).toBe(1);
    expect(threadsPerWorker(32, 16)).toBe(1);
  });
});

describe("run lock", () => {
  it("is exclusive, reports its holder, and is taken over only when its processes are gone", async () => {
    const file = path.join(tmpRoot, "a.lock");
    const a = tryLock(file);
    expect(isLock(a)).toBe(true);
    const b = tryLock(file);
    expect(isLock(b)).toBe(false);
    expect((b as { pid: number }).pid).toBe(process.pid);
    if (isLock(a)) a.release();
    expect(fs.existsSync(file)).toBe(false);

    // a lock left by a process that died is stale; one whose child still lives is not
    const dead = spawn(process.execPath, ["-e", ""]);
    await new Promise((r) => dead.on("exit", r));
    const sleeper = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"]);
    try {
      const info = { host: os.hostname(), pid: dead.pid!, since: "t" };
      fs.writeFileSync(file, JSON.stringify({ ...info, child: sleeper.pid }));
      expect(isLock(tryLock(file))).toBe(false);
      fs.writeFileSync(file, JSON.stringify(info));
      const c = tryLock(file);
      expect(isLock(c)).toBe(true);
      expect(readLock(file)?.pid).toBe(process.pid);
      if (isLock(c)) c.release();
      // another host's lock cannot be checked from here: held, unless the caller says otherwise
      fs.writeFileSync(file, JSON.stringify({ ...info, host: "elsewhere" }));
      expect(isLock(tryLock(file))).toBe(false);
      const d = tryLock(file, { foreignIsStale: true });
      expect(isLock(d)).toBe(true);
      if (isLock(d)) d.release();
    } finally {
      sleeper.kill();
    }
  });

  it("reads a run's state from its files", () => {
    const out = path.join(tmpRoot, "state");
    const run = { name: "r", seed: 1 };
    const p = runPaths(out, run);
    expect(p.dir).toBe(path.join(out, "r", "seed-1"));
    expect(diskState(out, run).kind).toBe("missing");
    fs.mkdirSync(p.dir, { recursive: true });
    fs.writeFileSync(path.join(p.dir, "resume.json"), JSON.stringify({ state: "state-5", step: 5 }));
    expect(diskState(out, run)).toEqual({ kind: "partial", step: 5 });
    fs.mkdirSync(path.dirname(p.failed), { recursive: true });
    fs.writeFileSync(p.failed, JSON.stringify({ error: "boom" }));
    expect(diskState(out, run).kind).toBe("failed");
    fs.rmSync(path.join(p.dir, "resume.json"));
    fs.writeFileSync(path.join(p.dir, "summary.json"), "{}");
    expect(diskState(out, run).kind).toBe("done");
  });
});
