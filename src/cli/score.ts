// `npm run -s score -- --checkpoint DIR --text TEXT [--json]`: the token ids of TEXT (with the
// tokenizer's own special-token handling: the organism's BOS, a Hugging Face tokenizer's
// post-processor) and each token's log-probability under the model, logprobs[i] = log p(ids[i] | ids[<i])
// (null for the first token). For any model family; compare with another framework's numbers.
import * as tf from "@tensorflow/tfjs";
import { loadModel, isOrganismCheckpoint } from "../model/load.js";
import { loadTextTokenizer } from "../text/hfTokenizer.js";
import { BOS_ID, loadTokenizerFor } from "../text/tokenizer.js";
import { parseArgs, runMain } from "./args.js";
import { COMPUTE_FLAGS, COMPUTE_USAGE, setupCompute } from "./setup.js";

const USAGE = `usage: npm run -s score -- --checkpoint DIR --text TEXT [--json] ${COMPUTE_USAGE}
Token ids of TEXT and log p(ids[i] | ids[<i]) per token under the checkpoint's model.`;

runMain(async () => {
  const { flags } = parseArgs(
    process.argv.slice(2),
    { checkpoint: "string", text: "string", json: "boolean", ...COMPUTE_FLAGS },
    "score",
    USAGE,
  );
  const dir = flags.checkpoint as string | undefined;
  const text = flags.text as string | undefined;
  if (!dir || text === undefined) throw new Error(`score: --checkpoint DIR and --text TEXT are required\n${USAGE}`);
  const organism = isOrganismCheckpoint(dir);
  let ids: number[];
  if (organism) {
    const tok = loadTokenizerFor(dir);
    const bad = tok.unknownChars(text);
    if (bad.length) throw new Error(`--text: characters outside the organism's vocabulary: ${bad.join(" ")}`);
    ids = [BOS_ID, ...tok.encode(text)];
  } else ids = loadTextTokenizer(dir).encode(text, { addSpecialTokens: true });
  if (ids.length === 0) throw new Error("--text: no tokens");
  const log = (s: string) => (flags.json ? process.stderr : process.stdout).write(s + "\n");
  await setupCompute(flags, log);
  const lm = loadModel(dir);
  if (ids.length > lm.contextLength)
    throw new Error(`--text: ${ids.length} tokens, more than the model's context of ${lm.contextLength}`);
  const logprobs: (number | null)[] = [null];
  if (ids.length > 1) {
    const values = tf.tidy(() => {
      const inputs = tf.tensor2d([ids.slice(0, -1)], undefined, "int32");
      const targets = tf.tensor2d([ids.slice(1)], undefined, "int32");
      return Array.from(lm.tokenLogProbs(inputs, targets, { temperature: 1, entropy: false }).logp.dataSync());
    });
    logprobs.push(...values);
  }
  lm.dispose();
  if (flags.json) process.stdout.write(JSON.stringify({ ids, logprobs }) + "\n");
  else {
    ids.forEach((id, i) =>
      console.log(`${String(i).padStart(4)}  ${String(id).padStart(7)}  ${logprobs[i]?.toFixed(6) ?? "-"}`),
    );
    const total = logprobs.reduce<number>((a, x) => a + (x ?? 0), 0);
    console.log(`total log-probability ${total.toFixed(6)} over ${ids.length - 1} predicted tokens`);
  }
});
