// The eval and select command lines on a small randomly initialised checkpoint.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { selectBackend } from "../src/engine/backend.js";
import { initParams, resolveModelConfig, disposeParams } from "../src/model/gpt.js";
import { saveCheckpoint } from "../src/model/checkpoint.js";

const TSX = path.resolve("node_modules/.bin/tsx");
let ckpt = "";

beforeAll(async () => {
  await selectBackend("cpu");
  ckpt = fs.mkdtempSync(path.join(os.tmpdir(), "cli-ck-"));
  const cfg = resolveModelConfig("gpt-nano", 58, { contextLength: 48, layers: 1, width: 32 });
  const params = initParams(cfg, 1);
  saveCheckpoint(ckpt, params, cfg, {});
  disposeParams(params);
});

describe("npm run eval", () => {
  it("--json prints one JSON object with per-benchmark greedy, sampled, pass@k and formatRate", () => {
    const r = spawnSync(
      TSX,
      ["src/cli/eval.ts", "--checkpoint", ckpt, "--limit", "2", "--n", "4", "--k", "1,4", "--json", "--backend", "cpu"],
      { encoding: "utf8" },
    );
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

  it("rejects k larger than n and a missing checkpoint", () => {
    const a = spawnSync(TSX, ["src/cli/eval.ts", "--checkpoint", ckpt, "--n", "4", "--k", "1,8"], { encoding: "utf8" });
    expect(a.status).not.toBe(0);
    expect(a.stderr).toMatch(/pass@8 needs at least that many samples/);
    const b = spawnSync(TSX, ["src/cli/eval.ts", "--checkpoint", "/nonexistent"], { encoding: "utf8" });
    expect(b.status).not.toBe(0);
    expect(b.stderr).toMatch(/not a checkpoint directory/);
  });
});
