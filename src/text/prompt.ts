// How a question becomes the text a model continues: the experiment file's `prompt` setting and
// the named presets of the literature. A pure function of (question, setting, tokenizer); chat
// prompts go through the tokenizer's own chat template, raw prompts through its post-processor
// (so a BOS appears where the model's tokenizer adds one and nowhere else).
import { z } from "zod";
import type { ChatMessage, TextTokenizer } from "./hfTokenizer.js";

/** Where an answer is written in completions to a prompt: after `####` ("marker", the organism's
 * form) or in the last `\boxed{}` ("boxed"); what the verifier's answerFormat option selects. */
export type PresetAnswerFormat = "boxed" | "marker";

export const QUESTION_SLOT = "{question}";

export type PromptPreset =
  | {
      type: "chat";
      /** System message; omitted: whatever the model's template does without one. */
      system?: string;
      /** The user message, with {question}. */
      template: string;
      answerFormat: PresetAnswerFormat | null;
      description: string;
    }
  | { type: "raw"; template: string; answerFormat: PresetAnswerFormat | null; description: string };

const BOXED_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}.";

/** Named prompts, each as its source writes it. */
export const PROMPT_PRESETS = {
  "qwen25-math-boxed": {
    type: "chat",
    system: BOXED_SYSTEM,
    template: "{question}",
    answerFormat: "boxed",
    description:
      "Qwen2.5-Math's chain-of-thought prompt (the default system message of its chat template; the evaluation " +
      "prompt of 1-shot RLVR and of Qwen2.5-Math's own evaluation), through the model's chat template",
  },
  "one-shot-rlvr": {
    type: "chat",
    system: BOXED_SYSTEM,
    template: "{question} Let's think step by step and output the final answer within \\boxed{}.",
    answerFormat: "boxed",
    description:
      "1-shot RLVR's training prompt on Qwen2.5-Math: the DeepScaleR instruction appended to the question, " +
      "under Qwen2.5-Math's default system message (made explicit, so other chat models see the same text)",
  },
  deepscaler: {
    type: "chat",
    template: "{question} Let's think step by step and output the final answer within \\boxed{}.",
    answerFormat: "boxed",
    description:
      "the DeepScaleR / verl MATH data preparation: the instruction appended to the question as the only " +
      "user message, no system message (the template's default applies)",
  },
  "verl-gsm8k": {
    type: "chat",
    template: '{question} Let\'s think step by step and output the final answer after "####".',
    answerFormat: "marker",
    description: "verl's GSM8K data preparation: the answer after ####, no system message",
  },
  "qwen-boxed": {
    type: "chat",
    system: "You are a helpful assistant.",
    template: "{question}\nPlease reason step by step, and put your final answer within \\boxed{}.",
    answerFormat: "boxed",
    description: "Qwen2.5-Math evaluation's qwen-boxed prompt for general Qwen chat models",
  },
  "r1-zero": {
    type: "raw",
    template:
      "A conversation between User and Assistant. The User asks a question, and the Assistant solves it. " +
      "The Assistant first thinks about the reasoning process in the mind and then provides the User with the answer. " +
      "The reasoning process is enclosed within <think> </think> and answer is enclosed within <answer> </answer> " +
      "tags.\nUser: {question}\nAssistant: <think>",
    answerFormat: null,
    description:
      "the R1-Zero-style template (as in Dr. GRPO's code): no chat template, reasoning in <think>, " +
      "the answer in <answer> tags (not graded by the boxed or marker formats)",
  },
  "question-answer": {
    type: "raw",
    template: "Question: {question}\nAnswer: ",
    answerFormat: null,
    description: 'the plain few-shot-style prompt of Qwen2.5-Math evaluation ("direct" / "cot"), no chat template',
  },
} as const satisfies Record<string, PromptPreset>;

export type PresetName = keyof typeof PROMPT_PRESETS;
export const PRESET_NAMES = Object.keys(PROMPT_PRESETS) as PresetName[];

const templateString = (role: string) =>
  z.string().refine((s) => s.includes(QUESTION_SLOT), { message: `the ${role} must contain ${QUESTION_SLOT}` });

export const PromptObjectSchema = z.discriminatedUnion("type", [
  z
    .object({
      type: z.literal("chat"),
      system: z.string().optional().describe("system message (omitted: the template's default)"),
      template: templateString("user message template")
        .optional()
        .describe("the user message, with {question} (default: the question alone)"),
    })
    .strict(),
  z
    .object({
      type: z.literal("raw"),
      template: templateString("raw template").describe("the whole prompt text, with {question}"),
    })
    .strict(),
]);

function unknownPrompt(s: string): string {
  return (
    `unknown prompt ${JSON.stringify(s)}: use "chat" (the model's chat template), "raw" (the question as is), ` +
    `a template string containing ${QUESTION_SLOT}, or a preset: ${PRESET_NAMES.join(", ")}`
  );
}

/** The experiment file's `prompt` setting: "chat", "raw", a preset name, a raw template string
 * with {question}, or {type: "chat", system?, template?} / {type: "raw", template}. */
export const PromptSchema = z
  .union([z.string(), PromptObjectSchema])
  .superRefine((v, ctx) => {
    if (typeof v === "string" && !isKnownPromptString(v)) ctx.addIssue({ code: "custom", message: unknownPrompt(v) });
  })
  .describe(
    `how a question becomes the prompt: "chat", "raw", a preset (${PRESET_NAMES.join(", ")}), ` +
      `a template string with {question}, or {type: "chat", system?, template?} / {type: "raw", template}`,
  );

export type PromptConfig = z.infer<typeof PromptSchema>;

function isKnownPromptString(s: string): boolean {
  return s === "chat" || s === "raw" || s.includes(QUESTION_SLOT) || Object.hasOwn(PROMPT_PRESETS, s);
}

/** A prompt setting with presets and shorthands resolved. */
export type ResolvedPrompt =
  { type: "chat"; system: string | null; template: string } | { type: "raw"; template: string };

export function resolvePrompt(config: PromptConfig): ResolvedPrompt {
  if (typeof config !== "string") {
    return config.type === "chat"
      ? { type: "chat", system: config.system ?? null, template: config.template ?? QUESTION_SLOT }
      : { type: "raw", template: config.template };
  }
  if (config === "chat") return { type: "chat", system: null, template: QUESTION_SLOT };
  if (config === "raw") return { type: "raw", template: QUESTION_SLOT };
  if (Object.hasOwn(PROMPT_PRESETS, config)) {
    const p: PromptPreset = PROMPT_PRESETS[config as PresetName];
    return p.type === "chat"
      ? { type: "chat", system: p.system ?? null, template: p.template }
      : { type: "raw", template: p.template };
  }
  if (config.includes(QUESTION_SLOT)) return { type: "raw", template: config };
  throw new Error(unknownPrompt(config));
}

/** The answer format a preset asks for, or null (not a preset, or one without a graded format). */
export function presetAnswerFormat(config: PromptConfig): PresetAnswerFormat | null {
  if (typeof config === "string" && Object.hasOwn(PROMPT_PRESETS, config))
    return PROMPT_PRESETS[config as PresetName].answerFormat;
  return null;
}

/** The prompt used when an experiment sets none: the chat template when the tokenizer has one. */
export function defaultPrompt(tokenizer: Pick<TextTokenizer, "chatTemplate">): PromptConfig {
  return tokenizer.chatTemplate === null ? "raw" : "chat";
}

/** Puts the question into a template; the question's own text is never searched for the slot. */
export function fillTemplate(template: string, question: string): string {
  return template.split(QUESTION_SLOT).join(question);
}

export interface RenderedPrompt {
  text: string;
  ids: number[];
  /** The conversation given to the chat template (null for raw prompts). */
  messages: ChatMessage[] | null;
}

/**
 * The prompt text and token ids for one question. Chat: [system?, user] rendered with the
 * tokenizer's chat template and an assistant generation header, encoded without the
 * post-processor (the template writes its own BOS, as transformers' apply_chat_template does).
 * Raw: the template filled in, encoded with the post-processor (BOS where the tokenizer adds one).
 */
export function renderPrompt(question: string, config: PromptConfig, tokenizer: TextTokenizer): RenderedPrompt {
  const p = resolvePrompt(config);
  if (p.type === "raw") {
    const text = fillTemplate(p.template, question);
    return { text, ids: tokenizer.encode(text, { addSpecialTokens: true }), messages: null };
  }
  const messages: ChatMessage[] = [];
  if (p.system !== null) messages.push({ role: "system", content: p.system });
  messages.push({ role: "user", content: fillTemplate(p.template, question) });
  const text = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
  return { text, ids: tokenizer.encode(text, { addSpecialTokens: false }), messages };
}
