// `npm run passk -- --checkpoint A [--checkpoint B …] [--n 256] [--limit P] [--benchmarks NAME|FILE,...]
//                   [--temperature T] [--top-p P] [--seed S] [--backend B] [--out DIR] [--png=false]`
// pass@k curves for base vs trained checkpoints: samples n completions per problem of each
// benchmark and writes, into --out (default results/passk/):
//   passk.csv         checkpoint, label, benchmark, k, pass_at_k for k = 1, 2, 4, … n
//                     (benchmark "mean" = unweighted mean over benchmarks)
//   passk_counts.csv  checkpoint, label, benchmark, id, n, correct (per problem, for re-analysis)
//   passk.svg/.png    pass@k over k on a log2 axis, one line per checkpoint (plot d)
// Sampling uses the random stream evaluateAll uses (makeRng(seed, "eval/<benchmark>")) and the
// same problem order, so at equal --seed, --n, --temperature and --top-p the samples are the ones
// `npm run eval` draws. Only the I/O edge; curves and CSV are in src/analysis/passk-curve.ts.
import fs from "node:fs";
import path from "node:path";
import { makeRng } from "../engine/rng.js";
import { readCheckpointConfig } from "../model/checkpoint.js";
import { loadBenchmarkList } from "../eval/benchmarks.js";
import { rollout } from "../task/rollout.js";
import { taskFor } from "../task/forModel.js";
import { isOrganismCheckpoint, loadModel } from "../model/load.js";
import {
  checkpointLabel,
  formatPasskText,
  passkCsv,
  passkRows,
  uniqueLabels,
  type PasskRow,
} from "../analysis/passk-curve.js";
import { fontSetup, passkSpec, renderSvg, svgToPng } from "../analysis/plots.js";
import { numberFlag, parseArgs, runMain } from "./args.js";
import { COMPUTE_FLAGS, COMPUTE_USAGE, setupCompute } from "./setup.js";

/** The experiment name of a results/<exp>/seed-N/checkpoint: the run's config name, else the checkpoint's meta. */
function experimentOf(ckpt: string, meta: Record<string, unknown>): string | null {
  const cfg = path.join(path.dirname(path.resolve(ckpt)), "config.resolved.json");
  if (path.basename(path.resolve(ckpt)) === "checkpoint" && fs.existsSync(cfg)) {
    try {
      const name = JSON.parse(fs.readFileSync(cfg, "utf8")).name;
      if (typeof name === "string" && name) return name;
    } catch {
      // fall through to the checkpoint's own metadata
    }
  }
  return typeof meta.experiment === "string" && meta.experiment ? meta.experiment : null;
}

const csvCell = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

const USAGE = `usage: npm run passk -- --checkpoint A [--checkpoint B ...] [--n 256] [--limit P] [--benchmarks NAME|FILE,...] [--temperature 1]
                     [--top-p 1] [--seed S] [--out results/passk] [--png false] ${COMPUTE_USAGE}
pass@k for k = 1, 2, 4, ... n per checkpoint and benchmark (CSV and plot).`;

runMain(async () => {
  const { flags } = parseArgs(
    process.argv.slice(2),
    {
      checkpoint: "multi",
      n: "string",
      limit: "string",
      benchmarks: "string",
      temperature: "string",
      "top-p": "string",
      seed: "string",
      ...COMPUTE_FLAGS,
      out: "string",
      png: "boolean",
    },
    "passk",
    USAGE,
  );
  const ckpts = (flags.checkpoint as string[] | undefined) ?? [];
  if (ckpts.length === 0)
    throw new Error(
      "passk: give at least one --checkpoint DIR (for example --checkpoint data/models/base --checkpoint results/default/seed-1/checkpoint)",
    );
  for (const c of ckpts)
    if (!fs.existsSync(path.join(c, "config.json")))
      throw new Error(`--checkpoint ${c}: not a checkpoint directory (no config.json)`);
  const n = numberFlag(flags, "n", 256, { integer: true, min: 1 });
  const limit = numberFlag(flags, "limit", 0, { integer: true, min: 0 });
  const temperature = numberFlag(flags, "temperature", 1, { min: 0 });
  const topP = numberFlag(flags, "top-p", 1, { min: 1e-9, max: 1 });
  const seed = numberFlag(flags, "seed", 12345, { integer: true });
  const out = (flags.out as string | undefined) ?? "results/passk";
  const png = flags.png !== false;
  if (temperature === 0 && n > 1)
    console.log("note: --temperature 0 is greedy; all n samples of a problem are identical, so pass@k is flat in k");
  const names = flags.benchmarks ? String(flags.benchmarks).split(",") : null;
  const benches = await loadBenchmarkList(names, limit > 0 ? limit : null);
  const { backend } = await setupCompute(flags);
  console.log(
    `n=${n} samples per problem, T=${temperature}, top-p=${topP}, seed ${seed}, benchmarks ${benches.map((b) => `${b.name}(${b.items.length})`).join(" ")}`,
  );

  const rows: PasskRow[] = [];
  const countLines: string[] = ["checkpoint,label,benchmark,id,n,correct"];
  const meta = (dir: string) => (isOrganismCheckpoint(dir) ? readCheckpointConfig(dir).meta : {});
  const labels = uniqueLabels(ckpts.map((dir) => checkpointLabel(dir, experimentOf(dir, meta(dir)))));
  const t0 = performance.now();
  for (const [i, dir] of ckpts.entries()) {
    const lm = loadModel(dir);
    const task = taskFor(dir);
    const counts: { benchmark: string; corrects: number[] }[] = [];
    for (const b of benches) {
      const rng = makeRng(seed, `eval/${b.name}`);
      const pairs = b.items.flatMap((it) => Array.from({ length: n }, () => it));
      const scored = rollout(lm, task, pairs, { temperature, topP, maxNewTokens: lm.contextLength }, rng);
      const corrects = b.items.map((_, j) => scored.slice(j * n, (j + 1) * n).filter((s) => s.reward === 1).length);
      counts.push({ benchmark: b.name, corrects });
      b.items.forEach((it, j) =>
        countLines.push([dir, labels[i], b.name, it.id, String(n), String(corrects[j])].map(csvCell).join(",")),
      );
      const solved = corrects.filter((c) => c > 0).length;
      console.log(
        `  ${labels[i]}  ${b.name}: ${solved}/${b.items.length} problems solved at least once, mean correct ${(corrects.reduce((a, c) => a + c, 0) / (b.items.length * n)).toFixed(3)}  (${((performance.now() - t0) / 1000).toFixed(0)}s)`,
      );
    }
    rows.push(...passkRows(dir, labels[i], n, counts));
    lm.dispose();
  }

  console.log("");
  console.log(formatPasskText(rows));
  fs.mkdirSync(out, { recursive: true });
  const written: string[] = [];
  const write = (name: string, data: string | Buffer) => {
    const f = path.join(out, name);
    fs.writeFileSync(f, data);
    written.push(f);
  };
  write("passk.csv", passkCsv(rows));
  write("passk_counts.csv", countLines.join("\n") + "\n");
  const svg = await renderSvg(passkSpec(rows));
  write("passk.svg", svg);
  if (png) {
    if (fontSetup().warning) console.log(`warning: ${fontSetup().warning}`);
    write("passk.png", svgToPng(svg));
  }
  console.log(
    `wrote ${written.join(", ")}  (${((performance.now() - t0) / 1000).toFixed(0)}s, backend ${backend.name})`,
  );
  console.log(`include it in a comparison with: npm run compare -- <results> --passk ${path.join(out, "passk.csv")}`);
});
