// End-to-end tests of `npm run experiment`, each a process: the smoke run and its outputs,
// determinism, refusal to overwrite, kill-and-resume, SIGTERM, numerical faults, --dry-run, and one
// bad command line for the exit code and the shape of the error. Every other bad input is checked
// in process, through the functions the command calls before any work (parseExperiment,
// validateExperiment, preflight, parseArgs).
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseArgs } from "../src/cli/args.js";
import { preflight, resolveBenchmarks } from "../src/cli/experiment.js";
import { ConfigError, parseExperiment } from "../src/experiment/schema.js";
import { describeStepProgress } from "../src/experiment/progress.js";

// src/cli/experiment.ts runs its command when imported; here only its exported checks are used
vi.mock("../src/cli/args.js", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../src/cli/args.js")>()),
  runMain: () => {},
}));

// the CLI runs in this node process's child directly (not through the tsx wrapper), so that
// signals reach the process that trains
const NODE = process.execPath;
const CLI_ARGS = ["--import", "tsx", "src/cli/experiment.ts"];

let root = "";
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "experiment-test-"));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const tmp = (p: string) => fs.mkdtempSync(path.join(root, p));

function run(args: string[]): { code: number | null; out: string; stdout: string; stderr: string } {
  const r = spawnSync(NODE, [...CLI_ARGS, ...args], { encoding: "utf8", env: { ...process.env, CI: "true" } });
  return { code: r.status, out: `${r.stdout}${r.stderr}`, stdout: r.stdout, stderr: r.stderr };
}

function writeExperiment(dir: string, patch: Record<string, unknown> = {}, raw?: string): string {
  const base = JSON.parse(fs.readFileSync("experiments/smoke.json", "utf8"));
  const file = path.join(dir, "exp.json");
  fs.writeFileSync(file, raw ?? JSON.stringify({ ...base, ...patch }, null, 2));
  return file;
}

const files = (d: string) =>
  ["metrics.csv", "summary.json"].map((f) => fs.readFileSync(path.join(d, "smoke", "seed-1", f), "utf8"));

describe("experiment runner (smoke)", () => {
  it("runs experiments/smoke.json and writes every output file; refuses to overwrite it (suggesting --resume or --force); --force reruns it byte-identically", () => {
    const a = tmp("smoke-");
    const ra = run(["experiments/smoke.json", "--out", a, "--backend", "wasm"]);
    expect(ra.out).toMatch(/summary: saturationStep/);
    expect(ra.code).toBe(0);
    const d = path.join(a, "smoke", "seed-1");
    for (const f of [
      "metrics.csv",
      "summary.json",
      "samples.jsonl",
      "config.resolved.json",
      "timing.json",
      "checkpoint/model.safetensors",
      "checkpoint/optimizer.safetensors",
      "checkpoint/config.json",
    ]) {
      expect(fs.existsSync(path.join(d, f)), f).toBe(true);
    }
    const csv = fs.readFileSync(path.join(d, "metrics.csv"), "utf8").trim().split("\n");
    expect(csv[0].split(",").slice(0, 3)).toEqual(["step", "train_accuracy", "mean_reward"]);
    expect(csv).toHaveLength(1 + 5); // header + steps 0..4
    const summary = JSON.parse(fs.readFileSync(path.join(d, "summary.json"), "utf8"));
    for (const k of [
      "saturationStep",
      "heldoutAtStart",
      "heldoutAtSaturation",
      "heldoutFinal",
      "heldoutMax",
      "postSaturationGain",
    ])
      expect(summary).toHaveProperty(k);
    const resolved = JSON.parse(fs.readFileSync(path.join(d, "config.resolved.json"), "utf8"));
    expect(resolved.backend.name).toBe("wasm");
    expect(resolved.versions["@tensorflow/tfjs"]).toMatch(/^4\./);
    const first = files(a);

    const again = run(["experiments/smoke.json", "--out", a, "--backend", "wasm"]);
    expect(again.code).toBe(1);
    expect(again.out).toMatch(/--resume/);
    expect(again.out).toMatch(/--force/);
    expect(files(a)).toEqual(first);

    // --force deletes the run and starts it over: the same bytes again
    fs.writeFileSync(path.join(d, "metrics.csv"), "not the run's\n");
    expect(run(["experiments/smoke.json", "--out", a, "--backend", "wasm", "--force"]).code).toBe(0);
    expect(files(a)).toEqual(first);
  });
});

describe("interrupted runs resume to the same bytes as an uninterrupted one", () => {
  let file = "";
  let full = "";
  beforeAll(() => {
    const dir = tmp("resume-");
    file = writeExperiment(dir, {
      steps: 40,
      checkpointEvery: 5,
      eval: { every: 10, n: 2, ks: [1, 2], limit: 8, samples: 1 },
    });
    full = path.join(dir, "full");
    expect(run([file, "--out", full]).code).toBe(0);
  });

  it("a SIGKILLed run resumes from its last checkpoint to byte-identical metrics.csv and summary.json", async () => {
    const cut = tmp("kill-");
    // start, wait until step 12 is logged (checkpoints at 5 and 10 exist), then SIGKILL
    const child = spawn(NODE, [...CLI_ARGS, file, "--out", cut], { stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    await new Promise<void>((resolve) => {
      child.stdout.on("data", (d) => {
        log += d;
        if (/step 12\/40/.test(log) && !child.killed) child.kill("SIGKILL");
      });
      child.on("exit", () => resolve());
    });
    const pointer = JSON.parse(fs.readFileSync(path.join(cut, "smoke", "seed-1", "resume.json"), "utf8"));
    expect([10, 15]).toContain(pointer.step);
    const resumed = run([file, "--out", cut, "--resume"]);
    expect(resumed.out).toMatch(new RegExp(`resuming .* after step ${pointer.step}`));
    expect(resumed.code).toBe(0);
    expect(files(cut)).toEqual(files(full));
    expect(fs.existsSync(path.join(cut, "smoke", "seed-1", "resume.json"))).toBe(false);
  });

  it("SIGTERM saves a resumable state, exits non-zero with the resume command, and the resumed run matches", async () => {
    const cut = tmp("term-");
    const child = spawn(NODE, [...CLI_ARGS, file, "--out", cut], { stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    let sent = false;
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on("data", (d) => {
        log += d;
        // one signal only: a second one (e.g. sent on the next step's output, before the first was
        // acknowledged) means "abort at once", which skips the save
        if (/step 3\/40/.test(log) && !sent) {
          sent = true;
          child.kill("SIGTERM");
        }
      });
      child.on("exit", (c) => resolve(c));
    });
    expect(code).toBe(130);
    expect(log).toMatch(/continue with: npm run experiment -- .* --resume/);
    const pointer = JSON.parse(fs.readFileSync(path.join(cut, "smoke", "seed-1", "resume.json"), "utf8"));
    expect(pointer.step).toBeGreaterThanOrEqual(3);
    const resumed = run([file, "--out", cut, "--resume"]);
    expect(resumed.out).toMatch(new RegExp(`resuming .* after step ${pointer.step}`));
    expect(resumed.code).toBe(0);
    expect(files(cut)).toEqual(files(full));
  });
});

describe("numerical faults", () => {
  it("NaN in the loss stops the run with the step number and keeps the last good state", () => {
    const dir = tmp("exp-nan-");
    const ck = path.join(dir, "nan-model");
    fs.cpSync("data/models/base", ck, { recursive: true });
    // poison one weight of the checkpoint: the first forward pass gives NaN
    const buf = fs.readFileSync(path.join(ck, "model.safetensors"));
    const n = Number(buf.readBigUInt64LE(0));
    buf.writeFloatLE(NaN, 8 + n + 4 * 10);
    fs.writeFileSync(path.join(ck, "model.safetensors"), buf);
    const file = writeExperiment(dir, { checkpoint: ck, steps: 3, eval: { every: 3, n: 0, ks: [1], limit: 2 } });
    const r = run([file, "--out", path.join(dir, "out")]);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/numerical fault at step 1/);
    expect(r.out).toMatch(/last good checkpoint \(step 0\)/);
    expect(JSON.parse(fs.readFileSync(path.join(dir, "out", "smoke", "seed-1", "resume.json"), "utf8")).step).toBe(0);
  });
});

describe("bad input is refused before any work, naming the file, field, value and fix", () => {
  /** the checks the command makes of an experiment file, in its order, before anything is written */
  const check = async (file: string) => {
    const exp = parseExperiment(fs.readFileSync(file, "utf8"), file);
    const r = await preflight(exp, file);
    return { ...r, benchmarks: r.benchmarks ?? (await resolveBenchmarks(exp, file)) };
  };
  const errorOf = async (f: () => Promise<unknown>): Promise<Error> => {
    try {
      await f();
    } catch (e) {
      return e as Error;
    }
    throw new Error("expected an error, got none");
  };

  const cases: {
    name: string;
    patch?: Record<string, unknown>;
    raw?: string;
    setup?: (dir: string) => Record<string, unknown>;
    expect: RegExp[];
  }[] = [
    {
      name: "malformed JSON (line and column)",
      raw: '{\n  "name": "smoke",\n  "steps": 3,,\n}',
      expect: [/malformed JSON at line 3, column/],
    },
    {
      name: "unknown key with the nearest valid key",
      patch: { grpo: { lerning_rate: 0.1 } },
      expect: [/unknown key `grpo.lerning_rate` — did you mean `grpo.learningRate`\?/],
    },
    { name: "wrong type names field and value", patch: { steps: "ten" }, expect: [/field `steps`/, /"ten"/] },
    {
      name: "negative learning rate",
      patch: { grpo: { learningRate: -0.001 } },
      expect: [/grpo.learningRate/, /-0.001/],
    },
    { name: "zero rollouts", patch: { grpo: { rollouts: 0 } }, expect: [/grpo.rollouts/, /got 0/] },
    {
      name: "k larger than the number of samples",
      patch: { eval: { n: 2, ks: [1, 8] } },
      expect: [/eval.ks/, /\[8\]/, /eval.n = 2/],
    },
    {
      name: "missing checkpoint",
      patch: { checkpoint: "data/models/nope" },
      expect: [/data\/models\/nope/, /not a checkpoint directory/, /npm run pretrain/],
    },
    {
      name: "missing benchmark file",
      patch: { benchmarks: ["add", "geometry"] },
      expect: [/geometry\.jsonl: file not found/],
    },
    {
      name: "benchmark JSONL with a bad line (line number)",
      setup: (dir) => {
        const f = path.join(dir, "bad.jsonl");
        fs.writeFileSync(f, '{"prompt":"1+1","answer":"2"}\n{"prompt": 3}\n');
        return { benchmarks: [f] };
      },
      expect: [/bad\.jsonl: line 2/, /its fields: prompt/],
    },
    {
      name: "prompt outside the vocabulary",
      patch: { example: { prompt: "12×2", answer: "24" } },
      expect: [/example.prompt/, /"×"/],
    },
    {
      name: "label the verifier cannot parse",
      patch: { example: { prompt: "12*2", answer: "twenty four" } },
      expect: [/example.answer/, /twenty four/, /npm run -s verify/],
    },
    {
      name: "example file that does not exist",
      patch: { example: "data/examples/nope.json" },
      expect: [/field `example`/, /nope\.json/, /not found/],
    },
    {
      name: "examples dataset with a record missing the question",
      setup: (dir) => {
        const f = path.join(dir, "train.jsonl");
        fs.writeFileSync(f, '{"prompt":"1+1","answer":"2"}\n{"answer":"3"}\n');
        return { example: undefined, examples: f };
      },
      expect: [/field `examples`/, /train\.jsonl: line 2/, /its fields: answer/],
    },
    {
      name: "examples dataset file that does not exist",
      patch: { example: undefined, examples: "data/pool/nope.parquet" },
      expect: [/field `examples`/, /nope\.parquet/, /not found/],
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const dir = tmp("bad-");
      const file = writeExperiment(dir, c.setup ? c.setup(dir) : c.patch, c.raw);
      const e = await errorOf(() => check(file));
      expect(e).toBeInstanceOf(ConfigError);
      for (const re of c.expect) expect(e.message).toMatch(re);
      expect(e.message).toContain(file);
    });
  }

  it("examples come from any dataset file with a field mapping, as benchmarks do", async () => {
    const dir = tmp("examples-");
    const f = path.join(dir, "train.json");
    fs.writeFileSync(
      f,
      JSON.stringify([
        { q: "12*2", sol: "so 24 ####24" },
        { q: "3+4", sol: "so 7 ####7" },
      ]),
    );
    const file = writeExperiment(dir, {
      example: undefined,
      examples: { file: f, question: "q", answer: { field: "sol", extract: "gsm8k" } },
    });
    const { examples } = await check(file);
    expect(examples).toEqual([
      { prompt: "12*2", answer: "24", source: `${f}:1` },
      { prompt: "3+4", answer: "7", source: `${f}:2` },
    ]);
    // the pool as before: the JSONL lines' prompt and answer, in file order
    const pool = await check(writeExperiment(dir, { example: undefined, examples: "data/pool/pool.jsonl" }));
    const lines = fs
      .readFileSync("data/pool/pool.jsonl", "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(pool.examples!.map((e) => [e.prompt, e.answer])).toEqual(lines.map((l) => [l.prompt, l.answer]));
    expect(pool.examples![3].source).toBe("data/pool/pool.jsonl:4");
  });

  it("the smoke experiment itself passes the same checks", async () => {
    const { example, benchmarks, model } = await check("experiments/smoke.json");
    expect(example).toEqual({ prompt: "12*2", answer: "24", source: "inline" });
    expect(benchmarks!.map((b) => [b.name, b.items.length])).toEqual([
      ["add", 8],
      ["lin", 8],
      ["mul", 8],
      ["word", 8],
    ]);
    expect((model as { contextLength: number }).contextLength).toBe(96);
  });

  it("an unknown command-line option names the nearest one", () => {
    expect(() => parseArgs(["--sed", "3"], { seed: "string", steps: "string" }, "experiment")).toThrow(
      /experiment: unknown option --sed — did you mean --seed\?/,
    );
  });

  it("the command exits 1 with `error: ...` on stderr and creates nothing (--prompt without --answer)", () => {
    const out = path.join(tmp("bad-cli-"), "out");
    const r = run(["experiments/smoke.json", "--prompt", "12*2", "--out", out]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("error: experiment: --prompt and --answer go together\n");
    expect(fs.existsSync(out)).toBe(false);
  });

  it("every committed experiment file validates; each control differs from the default in one grpo setting", () => {
    const read = (f: string) => parseExperiment(fs.readFileSync(f, "utf8"), f);
    for (const f of fs.readdirSync("experiments").filter((n) => n.endsWith(".json") && n !== "experiment.schema.json"))
      read(path.join("experiments", f));
    // the real-model files validate too (their checkpoints are downloaded by users)
    const hf = fs.readdirSync("experiments/hf").filter((n) => n.endsWith(".json"));
    expect(hf.length).toBeGreaterThan(0);
    for (const f of hf) expect(read(path.join("experiments/hf", f)).checkpoint).toMatch(/^models\//);
    const base = read("experiments/default.json");
    /** leaf paths where two resolved configs differ */
    const diff = (a: unknown, b: unknown, at = ""): string[] => {
      if (a && b && typeof a === "object" && typeof b === "object") {
        const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
        return [...keys].flatMap((k) =>
          diff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${at}.${k}`),
        );
      }
      return a === b ? [] : [at];
    };
    const controls = fs.readdirSync("experiments/controls").filter((n) => n.endsWith(".json"));
    expect(controls.sort()).toEqual(["drgrpo.json", "ent.json", "kl.json", "legacy.json", "nomom.json", "t1.json"]);
    for (const f of controls) {
      const c = read(path.join("experiments/controls", f));
      expect(c.seeds, f).toEqual([1, 2, 3]);
      const changed = diff(
        { ...c, name: 0, description: 0, seeds: 0 },
        { ...base, name: 0, description: 0, seeds: 0 },
      ).filter((k) => k !== ".$schema");
      expect(changed.length, `${f}: ${changed}`).toBeGreaterThan(0);
      // Dr. GRPO changes two; legacy the three settings of the earlier algorithm
      expect(changed.length, `${f}: ${changed}`).toBeLessThanOrEqual(f === "legacy.json" ? 3 : 2);
      for (const k of changed) expect(k, f).toMatch(/^\.grpo\./);
    }
  });

  it("--dry-run validates and prints the resolved config without training", () => {
    const dir = tmp("exp-dry-");
    const r = run(["experiments/default.json", "--dry-run", "--out", path.join(dir, "out")]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/"learningRate"/);
    expect(r.out).toMatch(/valid \(dry run, nothing trained\)/);
    expect(fs.existsSync(path.join(dir, "out"))).toBe(false);
  });
});

describe("progress inside a long step", () => {
  it("gives the rollouts' rate and each micro-batch's ETA from the time so far", () => {
    expect(describeStepProgress({ phase: "rollouts", seconds: 80, tokens: 8192 })).toBe(
      "rollouts: 8192 tokens in 1m20s (102.4 tokens/s)",
    );
    // 2 of 8 micro-batches in 60 s: 6 more at 30 s each
    expect(describeStepProgress({ phase: "micro-batch", done: 2, of: 8, seconds: 60 })).toBe(
      "update: micro-batch 2/8 in 1m00s, ETA 3m00s",
    );
  });
});
