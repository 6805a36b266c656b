// `npm run select -- [--pool data/pool/pool.jsonl] [--epochs 6] [--per-step 8] [--seed 1] [--out data/pool/ranking.json]`
// Ranks the training pool by the historical variance score of 1-shot RLVR (Wang et al.): GRPO on
// the whole pool for a few epochs, recording each example's training accuracy (mean reward of its
// rollouts) every epoch; examples whose accuracy varied most over training rank first.
// Writes the ranking as JSON and Markdown; the default experiment's example is chosen from it.
import fs from "node:fs";
import { makeRng } from "../engine/rng.js";
import { loadModel } from "../model/load.js";
import { taskFor } from "../task/forModel.js";
import { GrpoTrainer } from "../rl/trainer.js";
import { readItems } from "../world/datasets.js";
import { historicalVariance } from "../analysis/variance.js";
import { GrpoSchema } from "../experiment/schema.js";
import { numberFlag, parseArgs, runMain } from "./args.js";
import { COMPUTE_FLAGS, COMPUTE_USAGE, setupCompute } from "./setup.js";

const USAGE = `usage: npm run select -- [--pool data/pool/pool.jsonl] [--checkpoint data/models/base] [--epochs 6] [--per-step 8]
                      [--rollouts 8] [--lr 1e-4] [--seed 1] [--out data/pool/ranking.json] ${COMPUTE_USAGE}
Ranks the training pool by the historical variance score (GRPO on the whole pool, variance of each
example's training accuracy over epochs).`;

runMain(async () => {
  const { flags } = parseArgs(
    process.argv.slice(2),
    {
      pool: "string",
      checkpoint: "string",
      epochs: "string",
      "per-step": "string",
      rollouts: "string",
      lr: "string",
      seed: "string",
      out: "string",
      ...COMPUTE_FLAGS,
    },
    "select",
    USAGE,
  );
  const poolFile = (flags.pool as string) ?? "data/pool/pool.jsonl";
  const ckpt = (flags.checkpoint as string) ?? "data/models/base";
  const epochs = numberFlag(flags, "epochs", 6, { integer: true, min: 2 });
  const perStep = numberFlag(flags, "per-step", 8, { integer: true, min: 1 });
  const rollouts = numberFlag(flags, "rollouts", 8, { integer: true, min: 2 });
  const lr = numberFlag(flags, "lr", 1e-4, { min: 0 });
  const seed = numberFlag(flags, "seed", 1, { integer: true });
  const out = (flags.out as string) ?? "data/pool/ranking.json";
  const pool = readItems(poolFile);
  const { backend } = await setupCompute(flags);
  const policy = loadModel(ckpt);
  const grpo = GrpoSchema.parse({ rollouts, learningRate: lr });
  const ref = grpo.loss.klCoef > 0 ? loadModel(ckpt) : null;
  const trainer = new GrpoTrainer(
    policy,
    ref,
    taskFor(ckpt),
    { ...grpo, maxNewTokens: Math.min(grpo.maxNewTokens, policy.contextLength) },
    null,
  );
  const rng = makeRng(seed, "select/rollout");
  const order = makeRng(seed, "select/order");
  // history[i][e] = training accuracy of pool item i in epoch e
  const history: number[][] = pool.map(() => []);
  const t0 = performance.now();
  const stepsPerEpoch = Math.ceil(pool.length / perStep);
  for (let e = 0; e < epochs; e++) {
    const idx = pool.map((_, i) => i);
    for (let i = idx.length - 1; i > 0; i--) {
      const j = order.int(0, i);
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    for (let s = 0; s < stepsPerEpoch; s++) {
      const chunk = idx.slice(s * perStep, (s + 1) * perStep);
      const stats = trainer.stepOn(
        chunk.map((i) => pool[i]),
        rng,
      );
      chunk.forEach((i, k) => history[i].push(stats.groupRewards[k]));
      const done = e * stepsPerEpoch + s + 1;
      const elapsed = (performance.now() - t0) / 1000;
      process.stdout.write(
        `epoch ${e + 1}/${epochs} step ${s + 1}/${stepsPerEpoch}  train_acc ${stats.trainAccuracy.toFixed(3)}  ${(elapsed / done).toFixed(2)} s/step  ETA ${((elapsed / done) * (epochs * stepsPerEpoch - done)).toFixed(0)}s\n`,
      );
    }
  }
  const ranking = historicalVariance(history).map((r) => ({
    rank: r.rank,
    ...pool[r.index],
    variance: r.variance,
    accuracies: history[r.index],
  }));
  const result = {
    command: `npm run select -- ${process.argv.slice(2).join(" ")}`.trim(),
    checkpoint: ckpt,
    pool: poolFile,
    epochs,
    perStep,
    rollouts,
    lr,
    seed,
    backend: backend.name,
    seconds: Math.round((performance.now() - t0) / 1000),
    ranking,
  };
  fs.writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
  const md = [
    `# Training pool ranked by historical variance`,
    ``,
    `Made by \`${result.command}\` (${result.seconds}s, backend ${backend.name}): GRPO on all ${pool.length} pool problems for ${epochs} epochs (${perStep} problems × ${rollouts} rollouts per step, lr ${lr}); each problem's training accuracy per epoch, ranked by its variance (population).`,
    ``,
    `| rank | id | prompt | answer | variance | accuracy per epoch |`,
    `|---:|---|---|---|---:|---|`,
    ...ranking.map(
      (r) =>
        `| ${r.rank} | ${r.id} | \`${r.prompt}\` | ${r.answer} | ${r.variance.toFixed(4)} | ${r.accuracies.map((a) => a.toFixed(2)).join(" ")} |`,
    ),
  ].join("\n");
  fs.writeFileSync(out.replace(/\.json$/, ".md"), md + "\n");
  console.log(`wrote ${out} and ${out.replace(/\.json$/, ".md")}; top 5:`);
  for (const r of ranking.slice(0, 5))
    console.log(
      `  ${r.rank}. ${r.prompt} = ${r.answer}  variance ${r.variance.toFixed(4)}  [${r.accuracies.map((a) => a.toFixed(2)).join(" ")}]`,
    );
  trainer.optimizer.dispose();
  policy.dispose();
  ref?.dispose();
});
