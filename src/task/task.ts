// A task turns a question into the model's input, a completion back into text, and scores it: the
// prompt form, the tokenizer and the verifier's answer format, beside the model rather than inside
// it. The organism's task writes `<problem>?` with its character tokenizer and grades `####N`; a
// Hugging Face model's writes the experiment's prompt (its chat template, a preset, or raw text)
// with the model's own tokenizer and grades the last `\boxed{}` (or `####`, per the prompt).
import { reward, type AnswerFormat, type RewardResult } from "../reward/verifier.js";
import type { TextTokenizer } from "../text/hfTokenizer.js";
import { renderPrompt, type PromptConfig } from "../text/prompt.js";
import { BOS_ID, EOS_ID, PAD_ID, type CharTokenizer } from "../text/tokenizer.js";
import { promptText } from "../world/corpus.js";

export interface Task {
  /** the model's whole input prefix for a question (BOS included where the model has one) */
  promptIds(question: string): number[];
  /** completion ids (without the stop token) → text */
  decode(ids: number[]): string;
  /** generation ends at any of these */
  stopIds: number[];
  /** filler of padded batches (masked out) */
  padId: number;
  reward(completion: string, label: string): RewardResult;
  /** where the verifier reads answers */
  answerFormat: AnswerFormat;
}

export function organismTask(tok: CharTokenizer): Task {
  return {
    promptIds: (q) => [BOS_ID, ...tok.encode(promptText(q))],
    decode: (ids) => tok.decode(ids),
    stopIds: [EOS_ID],
    padId: PAD_ID,
    reward: (c, label) => reward(c, label),
    answerFormat: "marker",
  };
}

export function textTask(tok: TextTokenizer, prompt: PromptConfig, answerFormat: AnswerFormat): Task {
  if (tok.eosIds.length === 0)
    throw new Error("the tokenizer names no EOS or end-of-turn token: generation could only stop at maxNewTokens");
  return {
    promptIds: (q) => renderPrompt(q, prompt, tok).ids,
    decode: (ids) => tok.decode(ids, { skipSpecialTokens: true }),
    stopIds: tok.eosIds,
    padId: tok.padId ?? tok.eosIds[0],
    reward: (c, label) => reward(c, label, { answerFormat }),
    answerFormat,
  };
}
