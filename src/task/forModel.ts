// The task that goes with a checkpoint: the organism's (its character tokenizer, `<problem>?`, `####N`)
// for an organism checkpoint; otherwise the checkpoint's own tokenizer with the given prompt setting
// (default: its chat template when it has one, else the raw question) and answer format (default: the
// prompt preset's, else `\boxed{}`).
import { isOrganismCheckpoint } from "../model/load.js";
import type { AnswerFormat } from "../reward/verifier.js";
import { loadTextTokenizer } from "../text/hfTokenizer.js";
import { defaultPrompt, presetAnswerFormat, type PromptConfig } from "../text/prompt.js";
import { loadTokenizerFor } from "../text/tokenizer.js";
import { organismTask, textTask, type Task } from "./task.js";

export interface TaskOptions {
  prompt?: PromptConfig;
  answerFormat?: AnswerFormat;
}

export function taskFor(checkpointDir: string, opts: TaskOptions = {}): Task {
  if (isOrganismCheckpoint(checkpointDir)) {
    if (opts.prompt !== undefined || (opts.answerFormat !== undefined && opts.answerFormat !== "marker"))
      throw new Error(
        `${checkpointDir}: an organism checkpoint uses its own prompt form (\`<problem>?\`) and graded form (\`####N\`); remove \`prompt\` / \`answerFormat\``,
      );
    return organismTask(loadTokenizerFor(checkpointDir));
  }
  const tok = loadTextTokenizer(checkpointDir);
  const prompt = opts.prompt ?? defaultPrompt(tok);
  return textTask(tok, prompt, opts.answerFormat ?? presetAnswerFormat(prompt) ?? "boxed");
}
