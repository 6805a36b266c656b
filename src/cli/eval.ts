// `npm run eval -- --checkpoint DIR [--n N] [--k 1,8,64] [--limit P] [--temperature T] [--top-p P]
//                  [--benchmarks NAME|FILE,...] [--seed S] [--backend B] [--json]`
// Evaluates any checkpoint on the held-out benchmarks. With --json (and `npm run -s`) stdout is one
// JSON object {"benchmarks": {"<family>": {"greedy", "sampled", "pass@k", "formatRate", ...}}, ...}.
import { loadModel } from "../model/load.js";
import { taskFor } from "../task/forModel.js";
import { loadBenchmarkList } from "../eval/benchmarks.js";
import { evaluateAll, formatReport } from "../eval/report.js";
import { numberFlag, parseArgs, runMain } from "./args.js";
import { COMPUTE_FLAGS, COMPUTE_USAGE, setupCompute } from "./setup.js";

const USAGE = `usage: npm run eval -- --checkpoint DIR [--n 64] [--k 1,8,64] [--limit P] [--temperature 1] [--top-p 1]
                    [--benchmarks NAME|FILE,...] [--seed S] [--max-new-tokens N] [--json] ${COMPUTE_USAGE}
Held-out evaluation of a checkpoint: greedy and sampled accuracy, pass@k, graded-form share, accuracy among
graded answers, length, self-check rate, procedure shares. With --json (npm run -s) stdout is one JSON object.`;

runMain(async () => {
  const { flags } = parseArgs(
    process.argv.slice(2),
    {
      checkpoint: "string",
      n: "string",
      k: "string",
      limit: "string",
      temperature: "string",
      "top-p": "string",
      benchmarks: "string",
      seed: "string",
      ...COMPUTE_FLAGS,
      json: "boolean",
      "max-new-tokens": "string",
    },
    "eval",
    USAGE,
  );
  const ckpt = flags.checkpoint as string | undefined;
  if (!ckpt) throw new Error("eval: --checkpoint DIR is required (for example --checkpoint data/models/base)");
  const n = numberFlag(flags, "n", 64, { integer: true, min: 0 });
  const ks = String(flags.k ?? "1,8,64")
    .split(",")
    .map((s) => {
      const k = Number(s);
      if (!Number.isInteger(k) || k < 1)
        throw new Error(`--k: expected a comma-separated list of positive integers, got ${JSON.stringify(flags.k)}`);
      return k;
    });
  if (n > 0 && ks.some((k) => k > n))
    throw new Error(
      `--k: pass@${Math.max(...ks)} needs at least that many samples per problem; --n is ${n} (raise --n or lower --k)`,
    );
  const limit = numberFlag(flags, "limit", 0, { integer: true, min: 0 });
  const temperature = numberFlag(flags, "temperature", 1, { min: 0 });
  const topP = numberFlag(flags, "top-p", 1, { min: 1e-9, max: 1 });
  const seed = numberFlag(flags, "seed", 12345, { integer: true });
  const names = flags.benchmarks ? String(flags.benchmarks).split(",") : null;
  const benches = await loadBenchmarkList(names, limit > 0 ? limit : null);
  const log = (s: string) => (flags.json ? process.stderr : process.stdout).write(s + "\n");
  const { backend } = await setupCompute(flags, log);
  const lm = loadModel(ckpt);
  const task = taskFor(ckpt);
  const maxNewTokens = numberFlag(flags, "max-new-tokens", lm.contextLength, { integer: true, min: 1 });
  const t0 = performance.now();
  const { report } = evaluateAll(
    lm,
    task,
    benches,
    { n, ks: n > 0 ? ks : [], temperature, topP, maxNewTokens, keepExamples: 0 },
    seed,
    (name) => log(`  ${name} done (${((performance.now() - t0) / 1000).toFixed(0)}s)`),
  );
  const seconds = (performance.now() - t0) / 1000;
  if (flags.json) {
    process.stdout.write(JSON.stringify({ checkpoint: ckpt, backend: backend.name, seconds, ...report }) + "\n");
  } else {
    console.log(formatReport(report));
    console.log(`checkpoint ${ckpt}, T=${temperature}, n=${n}, ${seconds.toFixed(0)}s, backend ${backend.name}`);
  }
});
