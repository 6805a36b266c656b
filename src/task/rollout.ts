// Rollouts: completions of (question, label) pairs sampled from any model family and scored by the
// task's verifier, in chunks to bound memory. Used by GRPO (rl/) and by evaluation (eval/).
import type { Rng } from "../engine/rng.js";
import type { CausalLM } from "../model/family.js";
import type { Task } from "./task.js";

export interface Scored {
  completion: string;
  reward: 0 | 1;
  format: 0 | 1;
  extracted: string | null;
  /** completion length in tokens, without the stop token */
  length: number;
  /** the model's input prefix (BOS included where the model has one) */
  promptIds: number[];
  /** completion token ids, without the stop token, and whether the model ended it with one */
  ids: number[];
  finished: boolean;
  /** the stop token that ended it (null: not finished) */
  stopId: number | null;
}

export function rollout(
  lm: CausalLM,
  task: Task,
  pairs: { prompt: string; answer: string }[],
  opts: { temperature: number; topP: number; maxNewTokens: number },
  rng: Rng | null,
  chunk = 512,
): Scored[] {
  const out: Scored[] = [];
  for (let s = 0; s < pairs.length; s += chunk) {
    const part = pairs.slice(s, s + chunk);
    const prompts = part.map((p) => task.promptIds(p.prompt));
    const { completions, finished } = lm.generate(prompts, { ...opts, stopIds: task.stopIds }, rng);
    completions.forEach((all, i) => {
      const ids = finished[i] ? all.slice(0, -1) : all;
      const completion = task.decode(ids);
      const r = task.reward(completion, part[i].answer);
      out.push({
        completion,
        reward: r.reward,
        format: r.parts.format,
        extracted: r.extracted,
        length: ids.length,
        promptIds: prompts[i],
        ids,
        finished: finished[i],
        stopId: finished[i] ? all[all.length - 1] : null,
      });
    });
  }
  return out;
}
