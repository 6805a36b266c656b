// The eval command line on a small randomly initialised checkpoint: its JSON output, and one bad
// argument for the exit code and the shape of the error (a process each); a missing checkpoint is
// checked in process, through the loader the command calls.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../src/engine/backend.js";
import { initParams, resolveModelConfig, disposeParams } from "../src/model/gpt.js";
import { loadCheckpoint, saveCheckpoint } from "../src/model/checkpoint.js";

let root = "";
let ckpt = "";
const evalCli = (args: string[]) =>
  spawnSync(process.execPath, ["--import", "tsx", "src/cli/eval.ts", ...args], { encoding: "utf8" });

beforeAll(async () => {
  await selectBackend("cpu");
  root = fs.mkdtempSync(path.join(os.tmpdir(), "cli-test-"));
  ckpt = path.join(root, "checkpoint");
  const cfg = resolveModelConfig("gpt-nano", 58, { contextLength: 48, layers: 1, width: 32 });
  const params = initParams(cfg, 1);
  saveCheckpoint(ckpt, params, cfg, {});
  disposeParams(params);
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe("npm run eval", () => {
  it("--json prints one JSON object with per-benchmark greedy, sampled, pass@k and formatRate", () => {
    const r = evalCli(["--checkpoint", ckpt, "--limit", "2", "--n", "4", "--k", "1,4", "--json", "--backend", "cpu"]);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(1);
    const j = JSON.parse(lines[0]);
    expect(Object.keys(j.benchmarks).sort()).toEqual(["add", "lin", "mul", "word"]);
    for (const m of Object.values(j.benchmarks) as Record<string, number>[]) {
      for (const k of [
        "greedy",
        "sampled",
        "pass@1",
        "pass@4",
        "formatRate",
        "greedyFormat",
        "meanLength",
        "selfCheckRate",
      ])
        expect(typeof m[k], k).toBe("number");
      expect(m.problems).toBe(2);
    }
    expect(j.backend).toBe("cpu");
  });

  it("exits 1 with `error: ...` on stderr and nothing on stdout when k is larger than n", () => {
    const r = evalCli(["--checkpoint", ckpt, "--n", "4", "--k", "1,8"]);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^error: --k: pass@8 needs at least that many samples per problem; --n is 4/);
  });

  it("a missing checkpoint is named, with the fix", () => {
    const missing = path.join(root, "nonexistent");
    expect(() => loadCheckpoint(missing)).toThrow(
      new RegExp(`${missing}: not a checkpoint directory .*npm run pretrain`),
    );
  });
});
