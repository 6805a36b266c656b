// `npm run procedures -- --checkpoint DIR [--n 16] [--limit 100] [--temperature 1] [--seed S] [--drills STYLE] [--json]`
// Which procedure pays on the model's own samples: samples n completions per held-out problem and
// reports each procedure's accuracy per benchmark and by difficulty, the check procedure's
// verifications (slips caught, false alarms, corrections) and the same for greedy completions.
// --drills STYLE also decodes verification drills of that check style greedily (the claim is wrong
// half the time): whether the model's check works where the corpus taught it.
import { loadCheckpoint } from "../model/checkpoint.js";
import { hostWeights } from "../model/decode.js";
import { sample } from "../model/generate.js";
import { hostLM } from "../model/gptLM.js";
import { rollout } from "../task/rollout.js";
import { organismTask } from "../task/task.js";
import { loadTokenizerFor } from "../text/tokenizer.js";
import { loadBenchmarks } from "../eval/benchmarks.js";
import {
  drillPrompts,
  formatBreakdown,
  procedureBreakdown,
  summariseDrills,
  type ProcedureBreakdown,
} from "../eval/procedures.js";
import type { VerificationSummary } from "../eval/behaviours.js";
import { CHECK_STYLES, type CheckStyle, type WrittenCheckStyle } from "../world/procedures.js";
import { makeRng } from "../engine/rng.js";
import { numberFlag, parseArgs, runMain } from "./args.js";
import { COMPUTE_FLAGS, COMPUTE_USAGE, setupCompute } from "./setup.js";

const USAGE = `usage: npm run procedures -- --checkpoint DIR [--n 16] [--limit 100] [--temperature 1] [--benchmarks a,b]
                          [--seed 12345] [--drills verify|units|digit] [--drill-count 800] [--json] ${COMPUTE_USAGE}
Accuracy per solution procedure on the model's own held-out samples, by benchmark and difficulty (hard steps),
and what the check procedure's verifications did. With --json (npm run -s) stdout is one JSON object.`;

runMain(async () => {
  const { flags } = parseArgs(
    process.argv.slice(2),
    {
      checkpoint: "string",
      n: "string",
      limit: "string",
      temperature: "string",
      benchmarks: "string",
      seed: "string",
      drills: "string",
      "drill-count": "string",
      ...COMPUTE_FLAGS,
      json: "boolean",
    },
    "procedures",
    USAGE,
  );
  const ckpt = flags.checkpoint as string | undefined;
  if (!ckpt) throw new Error("procedures: --checkpoint DIR is required (for example --checkpoint data/models/base)");
  const n = numberFlag(flags, "n", 16, { integer: true, min: 1 });
  const limit = numberFlag(flags, "limit", 100, { integer: true, min: 0 });
  const temperature = numberFlag(flags, "temperature", 1, { min: 1e-6 });
  const seed = numberFlag(flags, "seed", 12345, { integer: true });
  const drillStyle = flags.drills as WrittenCheckStyle | undefined;
  if (drillStyle !== undefined && !CHECK_STYLES.includes(drillStyle as CheckStyle))
    throw new Error(
      `--drills: use one of ${CHECK_STYLES.filter((s) => s !== "recompute").join(", ")}, got ${JSON.stringify(drillStyle)}`,
    );
  if (drillStyle === ("recompute" as string))
    throw new Error(
      "--drills: the recompute style writes no verification, so it has no drills; use verify, units or digit",
    );
  const drillCount = numberFlag(flags, "drill-count", 800, { integer: true, min: 1 });
  const names = flags.benchmarks ? String(flags.benchmarks).split(",") : null;
  const benches = loadBenchmarks(names, limit > 0 ? limit : null);
  const log = (s: string) => (flags.json ? process.stderr : process.stdout).write(s + "\n");
  await setupCompute(flags, log);
  const ck = loadCheckpoint(ckpt);
  const tok = loadTokenizerFor(ckpt);
  const hw = hostWeights(ck.params, ck.cfg);
  const t0 = performance.now();
  const sampled: Record<string, ProcedureBreakdown> = {};
  const greedy: Record<string, ProcedureBreakdown> = {};
  const allSampled: { prompt: string; completion: string; reward: number }[] = [];
  const allGreedy: typeof allSampled = [];
  for (const b of benches) {
    const pairs = b.items.flatMap((it) => Array.from({ length: n }, () => it));
    const opts = { temperature, topP: 1, maxNewTokens: ck.cfg.contextLength };
    const s = rollout(hostLM(hw), organismTask(tok), pairs, opts, makeRng(seed, `procedures/${b.name}`)).map(
      (r, i) => ({
        prompt: pairs[i].prompt,
        completion: r.completion,
        reward: r.reward,
      }),
    );
    const g = rollout(hostLM(hw), organismTask(tok), b.items, { ...opts, temperature: 0 }, null).map((r, i) => ({
      prompt: b.items[i].prompt,
      completion: r.completion,
      reward: r.reward,
    }));
    sampled[b.name] = procedureBreakdown(s);
    greedy[b.name] = procedureBreakdown(g);
    allSampled.push(...s);
    allGreedy.push(...g);
    log(`  ${b.name} done (${((performance.now() - t0) / 1000).toFixed(0)}s)`);
  }
  sampled.all = procedureBreakdown(allSampled);
  greedy.all = procedureBreakdown(allGreedy);
  let drills: VerificationSummary | null = null;
  if (drillStyle) {
    const prompts = drillPrompts(drillStyle, drillCount, makeRng(seed, "procedures/drills"));
    const { completions } = sample(
      hw,
      prompts.map((p) => tok.encode(p)),
      { temperature: 0, topP: 1, maxNewTokens: ck.cfg.contextLength },
      null,
    );
    drills = summariseDrills(prompts.map((prompt, i) => ({ prompt, completion: tok.decode(completions[i]) })));
  }
  const seconds = (performance.now() - t0) / 1000;
  if (flags.json) {
    process.stdout.write(
      JSON.stringify({ checkpoint: ckpt, n, limit, temperature, seed, seconds, sampled, greedy, drills }) + "\n",
    );
  } else {
    console.log(`samples at T = ${temperature}, n = ${n} per problem:\n${formatBreakdown(sampled)}`);
    console.log(`\ngreedy:\n${formatBreakdown(greedy)}`);
    if (drills)
      console.log(
        `\ndrills (${drillStyle}, ${drillCount}, greedy): ${drills.steps} read, claims wrong ${f3(drills.stepErrorRate)}, ` +
          `check arithmetic right ${f3(drills.verificationAccuracy)}, detection ${f3(drills.detectionRate)}, ` +
          `false alarm ${f3(drills.falseAlarmRate)}, redo right after a recheck ${f3(drills.correctionRate)}` +
          (drills.verdictConsistency === null ? "" : `, verdict consistent ${f3(drills.verdictConsistency)}`),
      );
    console.log(`checkpoint ${ckpt}, ${seconds.toFixed(0)}s`);
  }
});

const f3 = (x: number | null) => (x === null ? "-" : x.toFixed(3));
