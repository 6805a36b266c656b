// The experiment file's `prompt` setting (src/text/prompt.ts): presets rendered through the real
// Qwen chat template, raw templates with and without a BOS, and the schema's errors.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadTextTokenizer } from "../src/text/hfTokenizer.js";
import {
  defaultPrompt,
  PRESET_NAMES,
  presetAnswerFormat,
  PROMPT_PRESETS,
  PromptSchema,
  renderPrompt,
  resolvePrompt,
  type PromptConfig,
} from "../src/text/prompt.js";
import { LLAMA_STYLE_IDS, QWEN_TOKENIZER_DIR, writeLlamaStyleTokenizer } from "./fixtures/hfTokenizers.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "prompt-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const qwen = loadTextTokenizer(QWEN_TOKENIZER_DIR);
const llama = loadTextTokenizer(writeLlamaStyleTokenizer(path.join(tmpRoot, "llama")));
const organism = loadTextTokenizer("data/tokenizer");
const pi1 = JSON.parse(fs.readFileSync("data/examples/pi1.json", "utf8")) as { problem: string; answer: string };

const BOXED = "Please reason step by step, and put your final answer within \\boxed{}.";
const IM_START = 151644;

describe("presets through Qwen's chat template", () => {
  const rows: { config: PromptConfig; question: string; text: string }[] = [
    {
      // identical to the literal prompt Qwen2.5-Math's evaluation code writes out by hand
      config: "qwen25-math-boxed",
      question: "What is 7*6?",
      text: `<|im_start|>system\n${BOXED}<|im_end|>\n<|im_start|>user\nWhat is 7*6?<|im_end|>\n<|im_start|>assistant\n`,
    },
    {
      config: "one-shot-rlvr",
      question: pi1.problem,
      text:
        `<|im_start|>system\n${BOXED}<|im_end|>\n<|im_start|>user\n${pi1.problem} ` +
        "Let's think step by step and output the final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n",
    },
    {
      // no system message: Qwen3's template writes none by default
      config: "deepscaler",
      question: "1+1?",
      text:
        "<|im_start|>user\n1+1? Let's think step by step and output the final answer within \\boxed{}.<|im_end|>\n" +
        "<|im_start|>assistant\n",
    },
    {
      config: "verl-gsm8k",
      question: "1+1?",
      text:
        '<|im_start|>user\n1+1? Let\'s think step by step and output the final answer after "####".<|im_end|>\n' +
        "<|im_start|>assistant\n",
    },
    {
      config: "chat",
      question: "1+1?",
      text: "<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n",
    },
    {
      config: { type: "chat", system: "Be brief.", template: "Q: {question}" },
      question: "1+1?",
      text: "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ: 1+1?<|im_end|>\n<|im_start|>assistant\n",
    },
    {
      config: "question-answer",
      question: "1+1?",
      text: "Question: 1+1?\nAnswer: ",
    },
    {
      config: "r1-zero",
      question: "1+1?",
      text: PROMPT_PRESETS["r1-zero"].template.replace("{question}", "1+1?"),
    },
  ];
  it.each(rows.map((r) => [JSON.stringify(r.config), r] as const))("%s", (_n, row) => {
    const p = renderPrompt(row.question, row.config, qwen);
    expect(p.text).toBe(row.text);
    expect(p.ids).toEqual(qwen.encode(row.text, { addSpecialTokens: false }));
    expect(qwen.decode(p.ids)).toBe(row.text);
  });

  it("chat prompts start with <|im_start|> and carry no BOS", () => {
    const p = renderPrompt("x", "qwen25-math-boxed", qwen);
    expect(p.ids[0]).toBe(IM_START);
    expect(p.ids.filter((id) => id === IM_START)).toHaveLength(3);
    expect(p.messages).toEqual([
      { role: "system", content: BOXED },
      { role: "user", content: "x" },
    ]);
  });

  it("fills the slot once: a question that itself contains {question} is left as written", () => {
    expect(renderPrompt("say {question}", "Q: {question}\nA:", qwen).text).toBe("Q: say {question}\nA:");
  });
});

describe("BOS only where the tokenizer adds one", () => {
  const B = LLAMA_STYLE_IDS.bos;
  it("raw prompts get the post-processor's BOS on the Llama-style tokenizer, none on Qwen", () => {
    const l = renderPrompt("Hello world", "raw", llama);
    expect(l.text).toBe("Hello world");
    expect(l.ids).toEqual([B, LLAMA_STYLE_IDS.Hello, LLAMA_STYLE_IDS["Ġworld"]]);
    const q = renderPrompt("Hello world", "raw", qwen);
    expect(q.ids).toEqual(qwen.encode("Hello world", { addSpecialTokens: false }));
  });

  it("chat prompts on the Llama-style tokenizer have exactly one BOS (the template's)", () => {
    const p = renderPrompt("Hi", "chat", llama);
    expect(p.text).toBe(
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    expect(p.ids.filter((id) => id === B)).toHaveLength(1);
    expect(p.ids[0]).toBe(B);
  });

  it("a template string is a raw prompt", () => {
    const p = renderPrompt("Hi", "Question: {question}\nAnswer:", llama);
    expect(p.text).toBe("Question: Hi\nAnswer:");
    expect(p.ids[0]).toBe(B);
    expect(p.messages).toBeNull();
  });
});

describe("defaults and answer formats", () => {
  it("defaults to the chat template when the tokenizer has one, else raw", () => {
    expect(defaultPrompt(qwen)).toBe("chat");
    expect(defaultPrompt(organism)).toBe("raw");
    expect(renderPrompt("12+3", defaultPrompt(organism), organism).ids).toEqual([5, 6, 14, 7]);
  });

  it("presets say where their answers go", () => {
    expect(presetAnswerFormat("qwen25-math-boxed")).toBe("boxed");
    expect(presetAnswerFormat("verl-gsm8k")).toBe("marker");
    expect(presetAnswerFormat("r1-zero")).toBeNull();
    expect(presetAnswerFormat("chat")).toBeNull();
  });

  it("every preset resolves and renders on Qwen", () => {
    for (const name of PRESET_NAMES) {
      expect(PromptSchema.safeParse(name).success).toBe(true);
      expect(renderPrompt("2+2", name, qwen).text).toContain("2+2");
    }
  });
});

describe("errors", () => {
  const message = (v: unknown) => {
    const r = PromptSchema.safeParse(v);
    if (r.success) throw new Error(`accepted ${JSON.stringify(v)}`);
    return r.error.issues.map((i) => i.message).join("; ");
  };

  it("an unknown preset is refused with the list of presets", () => {
    for (const msg of [
      message("qwen-math"),
      (() => {
        try {
          resolvePrompt("qwen-math");
          return "";
        } catch (e) {
          return (e as Error).message;
        }
      })(),
    ]) {
      expect(msg).toContain('unknown prompt "qwen-math"');
      for (const name of PRESET_NAMES) expect(msg).toContain(name);
    }
  });

  it("templates must contain {question}; unknown keys are refused", () => {
    expect(message({ type: "raw", template: "Question:" })).toMatch(/must contain \{question\}/);
    expect(message({ type: "chat", template: "Q" })).toMatch(/must contain \{question\}/);
    expect(() => PromptSchema.parse({ type: "chat", sytem: "x" })).toThrow(/sytem/);
    expect(PromptSchema.safeParse({ type: "chat", system: "x" }).success).toBe(true);
  });

  it("a chat prompt on a tokenizer without a template is refused, naming the directory", () => {
    expect(() => renderPrompt("1+1", "qwen25-math-boxed", organism)).toThrow(
      /data\/tokenizer: the tokenizer has no chat template/,
    );
  });
});
