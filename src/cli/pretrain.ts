// `npm run pretrain -- [--preset gpt-nano] [--corpus base|reflect] [--steps N] [--seed S] [--out DIR] [--backend B] ...`
// Pretrains the base model on the procedure corpus, shows progress, then measures the latent
// capability (greedy, sampled, pass@k at T = 1) and writes the checkpoint with its model card.
import fs from "node:fs";
import path from "node:path";
import { CORPUS_PRESETS, type CorpusPreset } from "../world/corpus.js";
import { copyTokenizer, DEFAULT_TOKENIZER_DIR, loadTokenizer } from "../text/tokenizer.js";
import { countParams, initParams, resolveModelConfig } from "../model/gpt.js";
import { pretrain, type PretrainConfig } from "../model/pretrain.js";
import { loadCheckpoint, saveCheckpoint } from "../model/checkpoint.js";
import { GptLM } from "../model/gptLM.js";
import { organismTask } from "../task/task.js";
import { loadBenchmarks } from "../eval/benchmarks.js";
import { evaluateAll, formatReport, type EvalReport } from "../eval/report.js";
import { readItems } from "../world/datasets.js";
import { numberFlag, parseArgs, runMain } from "./args.js";
import { COMPUTE_FLAGS, COMPUTE_USAGE, setupCompute } from "./setup.js";
import { packageVersions } from "./versions.js";

const USAGE = `usage: npm run pretrain -- [--preset gpt-nano | --init DIR] [--corpus base|reflect] [--token-weighting uniform|batch-mean] [--steps 1500] [--batch 32] [--lr 0.003] [--seed 1]
       [--out data/models/base] [--eval-every 250] [--card-n 64] [--card-limit 100] [--backend auto|tensorflow|wasm|cpu]`;

runMain(async () => {
  const { flags } = parseArgs(
    process.argv.slice(2),
    {
      preset: "string",
      init: "string",
      corpus: "string",
      "token-weighting": "string",
      steps: "string",
      batch: "string",
      lr: "string",
      warmup: "string",
      seed: "string",
      out: "string",
      "eval-every": "string",
      "card-n": "string",
      "card-limit": "string",
      ...COMPUTE_FLAGS,
    },
    "pretrain",
    USAGE,
  );
  const cfg: PretrainConfig = {
    seed: numberFlag(flags, "seed", 1, { integer: true }),
    steps: numberFlag(flags, "steps", 1500, { integer: true, min: 1 }),
    batchSize: numberFlag(flags, "batch", 32, { integer: true, min: 1 }),
    lr: numberFlag(flags, "lr", 3e-3, { min: 0 }),
    warmup: numberFlag(flags, "warmup", 50, { integer: true, min: 0 }),
    bucket: 8,
    weightDecay: 0,
    tokenWeighting: ((flags["token-weighting"] as string) ?? "uniform") as PretrainConfig["tokenWeighting"],
  };
  if (!["uniform", "batch-mean"].includes(cfg.tokenWeighting))
    throw new Error(`--token-weighting: use uniform or batch-mean, got ${JSON.stringify(cfg.tokenWeighting)}`);
  const out = (flags.out as string) ?? "data/models/base";
  const evalEvery = numberFlag(flags, "eval-every", 250, { integer: true, min: 0 });
  const cardN = numberFlag(flags, "card-n", 64, { integer: true, min: 1 });
  const cardLimit = numberFlag(flags, "card-limit", 100, { integer: true, min: 1 });
  const { backend } = await setupCompute(flags);

  const tok = loadTokenizer("data/tokenizer");
  const init = flags.init as string | undefined;
  const initCk = init ? loadCheckpoint(init) : null;
  if (initCk && flags.preset)
    throw new Error("pretrain: --init continues an existing checkpoint with its own architecture; drop --preset");
  const model = initCk ? initCk.cfg : resolveModelConfig((flags.preset as string) ?? "gpt-nano", tok.vocabSize);
  // named corpora: `reflect` differs from `base` only in how the check procedure checks (world/corpus.ts)
  const corpusName = ((flags.corpus as string) ?? "base") as CorpusPreset;
  if (!Object.hasOwn(CORPUS_PRESETS, corpusName))
    throw new Error(
      `--corpus: use one of ${Object.keys(CORPUS_PRESETS).join(", ")}, got ${JSON.stringify(corpusName)}`,
    );
  const preset = CORPUS_PRESETS[corpusName];
  const corpus = { ...preset, seed: preset.seed + cfg.seed - 1 };
  const benches = loadBenchmarks(null, null);
  const exclude = new Set([...benches.flatMap((b) => b.items.map((i) => i.prompt))]);
  const pool = readItems("data/pool/pool.jsonl");
  for (const p of pool) exclude.add(p.prompt);
  // --init continues from a checkpoint (its card's history is carried over); the corpus stream is
  // offset by the steps already done so the continuation sees new problems
  const prior = initCk
    ? (JSON.parse(fs.readFileSync(path.join(init!, "card.json"), "utf8")) as {
        command: string;
        pretrain: { steps: number };
        trainSeconds: number;
        stages?: unknown[];
      })
    : null;
  const params = initCk ? initCk.params : initParams(model, cfg.seed);
  if (prior) corpus.seed += prior.pretrain.steps;
  console.log(
    `model ${JSON.stringify(model)}: ${countParams(model)} parameters; corpus mixture ${JSON.stringify(corpus.mixture)}`,
  );

  const quick = loadBenchmarks(null, 32);
  const t0 = performance.now();
  let tokens = 0;
  const history: { step: number; loss: number; greedy: number; sampled: number | null }[] = [];
  let lossEma = NaN;
  await pretrain(params, model, tok, corpus, cfg, exclude, (r) => {
    tokens += r.tokens;
    lossEma = Number.isNaN(lossEma) ? r.loss : 0.95 * lossEma + 0.05 * r.loss;
    const elapsed = (performance.now() - t0) / 1000;
    if (r.step % 25 === 0 || r.step === cfg.steps) {
      const eta = (elapsed / r.step) * (cfg.steps - r.step);
      console.log(
        `step ${r.step}/${cfg.steps}  loss ${lossEma.toFixed(4)}  lr ${r.lr.toExponential(2)}  ${(tokens / elapsed).toFixed(0)} tok/s  ` +
          `elapsed ${elapsed.toFixed(0)}s  ETA ${eta.toFixed(0)}s`,
      );
    }
    if (evalEvery > 0 && (r.step % evalEvery === 0 || r.step === cfg.steps)) {
      const { report } = evaluateAll(
        new GptLM(params, model),
        organismTask(tok),
        quick,
        { n: 4, ks: [1], temperature: 1, topP: 1, maxNewTokens: model.contextLength, keepExamples: 0 },
        cfg.seed,
      );
      history.push({ step: r.step, loss: lossEma, greedy: report.mean.greedy, sampled: report.mean.sampled });
      console.log(
        `  held-out (32/benchmark): greedy ${report.mean.greedy.toFixed(3)}  sampled ${report.mean.sampled?.toFixed(3)}  greedy format ${report.mean.greedyFormat.toFixed(3)}`,
      );
    }
  });
  const trainSeconds = (performance.now() - t0) / 1000;
  const trainTokensPerSecond = tokens / trainSeconds;
  saveCheckpoint(out, params, model, { kind: "base", seed: cfg.seed, backend: backend.name });
  copyTokenizer(DEFAULT_TOKENIZER_DIR, out);
  console.log(
    `saved ${out} after ${trainSeconds.toFixed(0)}s; measuring latent capability (n=${cardN}, ${cardLimit} problems per benchmark, T=1)`,
  );

  const t1 = performance.now();
  const evalBenches = loadBenchmarks(null, cardLimit);
  const { report } = evaluateAll(
    new GptLM(params, model),
    organismTask(tok),
    evalBenches,
    {
      n: cardN,
      ks: [1, 8, 64].filter((k) => k <= cardN),
      temperature: 1,
      topP: 1,
      maxNewTokens: model.contextLength,
      keepExamples: 0,
    },
    12345,
    (name) => process.stdout.write(`  evaluated ${name} (${((performance.now() - t1) / 1000).toFixed(0)}s)\n`),
  );
  const evalSeconds = (performance.now() - t1) / 1000;
  const sampledTokens = Object.values(report.benchmarks).reduce(
    (a, m) => a + m.meanLength * m.problems * (cardN + 1),
    0,
  );
  console.log(formatReport(report));
  const command = `npm run pretrain -- ${process.argv.slice(2).join(" ")}`.trim();
  const stages = [
    ...((prior?.stages as Record<string, unknown>[] | undefined) ??
      (prior
        ? [
            {
              command: prior.command,
              steps: prior.pretrain.steps,
              trainSeconds: prior.trainSeconds,
              lr: (prior.pretrain as { lr?: number }).lr,
              tokenWeighting: (prior.pretrain as { tokenWeighting?: string }).tokenWeighting ?? "batch-mean",
            },
          ]
        : [])),
    {
      command,
      steps: cfg.steps,
      trainSeconds: Math.round(trainSeconds),
      corpusSeed: corpus.seed,
      lr: cfg.lr,
      ...(corpusName !== "base" ? { corpus: corpusName } : {}),
    },
  ];
  const card = {
    name: path.basename(out),
    command: stages.map((s) => s.command).join(" && "),
    stages,
    seed: cfg.seed,
    backend: backend.name,
    versions: packageVersions(),
    model,
    parameters: countParams(model),
    pretrain: cfg,
    ...(corpusName !== "base" ? { corpusPreset: corpusName } : {}),
    corpus,
    trainSeconds: Math.round(trainSeconds),
    trainTokensPerSecond: Math.round(trainTokensPerSecond),
    evalSeconds: Math.round(evalSeconds),
    sampledTokensPerSecond: Math.round(sampledTokens / evalSeconds),
    history,
    latent: report,
  };
  fs.writeFileSync(path.join(out, "card.json"), JSON.stringify(card, null, 2) + "\n");
  fs.writeFileSync(path.join(out, "README.md"), modelCard(card, report));
  console.log(`wrote ${out}/card.json and ${out}/README.md`);
});

function modelCard(card: Record<string, any>, report: EvalReport): string {
  return `# ${card.name}: base checkpoint of the oneshot-rlvr model organism

Made by \`${card.command}\` (seed ${card.seed}, backend ${card.backend}, tfjs ${card.versions["@tensorflow/tfjs"]}).
${card.parameters} parameters: ${JSON.stringify(card.model)}.

- Pretraining: ${card.stages.map((s: any) => `${s.steps} steps at lr ${s.lr} (${s.trainSeconds} s)`).join(", then ")}; batches of ${card.pretrain.batchSize} sequences, AdamW (warmup ${card.pretrain.warmup}, cosine to 10 %), loss on solution tokens only.
  Last stage: ${card.trainTokensPerSecond} padded tokens/s.
- Corpus${card.corpusPreset ? ` \`${card.corpusPreset}\` (last stage)` : ""}: procedure mixture ${JSON.stringify(card.corpus.mixture)}, slip rates ${JSON.stringify(card.corpus.slips)}${card.corpus.checkStyle ? `, check style \`${card.corpus.checkStyle}\`` : ""}${card.corpus.maxChars ? `, items over ${card.corpus.maxChars} characters skipped` : ""}${card.corpus.drills ? `, ${card.corpus.drills} of the items verification drills` : ""}, corpus seed ${card.corpus.seed}; benchmark and pool problems excluded.
- Sampling speed during the measurement below: ${card.sampledTokensPerSecond} tokens/s (host KV-cache decoder, prompt positions included).

## Latent capability (held-out, T = 1.0, n = ${report.options.n} samples per problem, unbiased pass@k)

\`\`\`
${formatReport(report)}
\`\`\`

Columns: greedy accuracy; fmt(g) share of greedy answers in the graded form \`####N\`; acc|fmt(g) accuracy among those;
sampled = mean accuracy of the samples (pass@1); fmt(s) graded-form share of samples; len = mean completion tokens;
recheck = share of samples with the self-check word; the last four = share of samples per procedure.

The gap between pass@1 and pass@64 is the latent capability that RL is meant to elicit.
Figures are also in \`card.json\` (\`latent\`).
`;
}
