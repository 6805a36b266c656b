// Any Hugging Face tokenizer directory (`tokenizer.json`, `tokenizer_config.json`, optionally
// `generation_config.json`, `config.json`, `chat_template.jinja`) behind one small interface:
// encoding with the tokenizer's own post-processor (so BOS only where the model adds one),
// decoding, the special ids generation needs (BOS, every way a turn or sequence ends, padding),
// and the chat template rendered with @huggingface/jinja the way `transformers` renders it.
// Not the organism's character tokenizer (tokenizer.ts), which rejects text outside its
// alphabet; that tokenizer's files load here too, as a plain tokenizer without a template.
import fs from "node:fs";
import path from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";

export interface ChatMessage {
  role: string;
  content: string;
}

export interface ChatTemplateOptions {
  /** End with the header of an assistant turn (what a model continues from). Default false, as in transformers. */
  addGenerationPrompt?: boolean;
  /** Extra template variables (e.g. `enable_thinking: false` for Qwen3, `date_string` for Llama 3). */
  variables?: Record<string, unknown>;
}

export interface TextTokenizer {
  /** Token ids of `text`; the post-processor runs only with addSpecialTokens (default true, as in
   * transformers), so a BOS appears only where the tokenizer's own post-processor adds one. */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  /** Text of `ids`; special tokens kept unless skipSpecialTokens (default false, as in transformers).
   * Ids the tokenizer does not know (a model's padded embedding rows) decode to nothing. */
  decode(ids: ArrayLike<number>, opts?: { skipSpecialTokens?: boolean }): string;
  /** One more than the largest token id (the model's embedding may have more rows). */
  readonly vocabSize: number;
  readonly bosId: number | null;
  /** Every id that ends generation: the tokenizer's eos, generation_config.json's eos_token_id
   * (or config.json's when there is no generation_config.json) and the chat template's
   * end-of-turn token; distinct, in that order. */
  readonly eosIds: number[];
  readonly padId: number | null;
  readonly chatTemplate: string | null;
  /** Renders a conversation with the chat template; throws naming the directory when there is none. */
  applyChatTemplate(messages: ChatMessage[], opts?: ChatTemplateOptions): string;
  /** Id of a token string (special or not), or null. */
  tokenToId(token: string): number | null;
  /** The directory the tokenizer was loaded from (for messages). */
  readonly source: string;
}

/** The date Llama 3 templates fall back to when no `date_string` is passed. We pass it explicitly
 * so a prompt does not depend on the day a run happens (@huggingface/jinja, like transformers,
 * would otherwise fill in today's date through `strftime_now`). */
export const DEFAULT_DATE_STRING = "26 Jul 2024";

/** Reads and parses a JSON file; errors name the file and what to do. */
export function readJsonFile(file: string, fix: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${file}: ${code === "ENOENT" ? "not found" : (e as Error).message}; ${fix}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message}); ${fix}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new Error(`${file}: expected a JSON object, got ${Array.isArray(value) ? "an array" : typeof value}; ${fix}`);
  return value as Record<string, unknown>;
}

/** A special token in tokenizer_config.json: a string, or an AddedToken object `{content, ...}`. */
function tokenContent(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (typeof v === "object" && v !== null && typeof (v as { content?: unknown }).content === "string")
    return (v as { content: string }).content;
  return null;
}

function idList(v: unknown): number[] {
  if (typeof v === "number" && Number.isInteger(v)) return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number" && Number.isInteger(x));
  return [];
}

/** The chat template: chat_template.jinja, else chat_template.json, else tokenizer_config.json's
 * `chat_template` (a string, or a list of named templates of which we take "default"). */
function findChatTemplate(dir: string, config: Record<string, unknown>): string | null {
  const jinjaFile = path.join(dir, "chat_template.jinja");
  if (fs.existsSync(jinjaFile)) return fs.readFileSync(jinjaFile, "utf8");
  const jsonFile = path.join(dir, "chat_template.json");
  let t: unknown = config.chat_template;
  if (fs.existsSync(jsonFile)) t = readJsonFile(jsonFile, "re-download it with the model").chat_template;
  if (t === undefined || t === null) return null;
  if (typeof t === "string") return t;
  if (Array.isArray(t)) {
    const named = t as { name?: unknown; template?: unknown }[];
    const def = named.find((x) => x?.name === "default");
    if (def && typeof def.template === "string") return def.template;
    throw new Error(
      `${dir}/tokenizer_config.json: chat_template is a list without a "default" entry ` +
        `(names: ${named.map((x) => JSON.stringify(x?.name)).join(", ")})`,
    );
  }
  throw new Error(`${dir}/tokenizer_config.json: chat_template must be a string or a list, got ${typeof t}`);
}

const SPECIAL_TOKEN_KEYS = [
  "bos_token",
  "eos_token",
  "unk_token",
  "sep_token",
  "pad_token",
  "cls_token",
  "mask_token",
] as const;

class HfTextTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosIds: number[];
  readonly padId: number | null;
  readonly chatTemplate: string | null;
  private readonly template: Template | null;
  /** transformers' special_tokens_map: the special tokens a template sees as variables. */
  private readonly specialTokenVariables: Record<string, unknown>;
  private readonly known: (id: number) => boolean;

  constructor(
    private readonly hf: Tokenizer,
    config: Record<string, unknown>,
    generationEosIds: number[],
    chatTemplate: string | null,
    readonly source: string,
  ) {
    let maxId = -1;
    const ids = new Set<number>();
    for (const id of hf.get_vocab(true).values()) {
      ids.add(id);
      if (id > maxId) maxId = id;
    }
    this.vocabSize = maxId + 1;
    this.known = (id) => ids.has(id);

    this.specialTokenVariables = {};
    for (const key of SPECIAL_TOKEN_KEYS) {
      const c = tokenContent(config[key]);
      if (c !== null) this.specialTokenVariables[key] = c;
    }
    const extra = config.additional_special_tokens;
    if (Array.isArray(extra))
      this.specialTokenVariables.additional_special_tokens = extra.map(tokenContent).filter((c) => c !== null);

    const idOfConfigToken = (key: string): number | null => {
      const c = tokenContent(config[key]);
      if (c === null) return null;
      const id = hf.token_to_id(c);
      if (id === undefined)
        throw new Error(
          `${source}/tokenizer_config.json: ${key} ${JSON.stringify(c)} is not a token of tokenizer.json`,
        );
      return id;
    };
    this.bosId = idOfConfigToken("bos_token");
    this.padId = idOfConfigToken("pad_token");
    const eos = idOfConfigToken("eos_token");

    this.chatTemplate = chatTemplate;
    try {
      this.template = chatTemplate === null ? null : new Template(chatTemplate);
    } catch (e) {
      throw new Error(`${source}: the chat template does not parse as Jinja (${(e as Error).message})`);
    }
    const endOfTurn = this.endOfTurnId();
    this.eosIds = [
      ...new Set([...(eos === null ? [] : [eos]), ...generationEosIds, ...(endOfTurn === null ? [] : [endOfTurn])]),
    ];
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: ArrayLike<number>, opts: { skipSpecialTokens?: boolean } = {}): string {
    const kept: number[] = [];
    for (let i = 0; i < ids.length; i++) if (this.known(ids[i])) kept.push(ids[i]);
    if (kept.length === 0) return "";
    return this.hf.decode(kept, { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | null {
    return this.hf.token_to_id(token) ?? null;
  }

  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (this.template === null)
      throw new Error(
        `${this.source}: the tokenizer has no chat template (no chat_template in tokenizer_config.json, ` +
          `no chat_template.jinja); use the "raw" prompt or a template string with {question}`,
      );
    try {
      return this.template.render({
        date_string: DEFAULT_DATE_STRING,
        ...this.specialTokenVariables,
        ...opts.variables,
        messages,
        add_generation_prompt: opts.addGenerationPrompt ?? false,
      });
    } catch (e) {
      throw new Error(`${this.source}: the chat template failed to render: ${(e as Error).message}`);
    }
  }

  /** The token that closes an assistant turn in the template: the special token right after an
   * assistant message's content (<|im_end|> for Qwen and SmolLM2, <|eot_id|> for Llama 3). */
  private endOfTurnId(): number | null {
    if (this.template === null) return null;
    const probe = "ENDOFTURNPROBE";
    let rendered: string;
    try {
      rendered = this.applyChatTemplate([
        { role: "user", content: "Hi" },
        { role: "assistant", content: probe },
      ]);
    } catch {
      return null; // a template that cannot render this conversation has no end-of-turn we can find
    }
    const at = rendered.lastIndexOf(probe);
    if (at < 0) return null;
    const after = rendered.slice(at + probe.length);
    let best: { id: number; len: number } | null = null;
    for (const [id, tok] of this.hf.get_added_tokens_decoder()) {
      if (tok.special && after.startsWith(tok.content) && (best === null || tok.content.length > best.len))
        best = { id, len: tok.content.length };
    }
    return best?.id ?? null;
  }
}

/**
 * Loads the tokenizer of a Hugging Face checkpoint directory. Needs `tokenizer.json`; reads
 * `tokenizer_config.json` (special tokens, chat template) when present, `chat_template.jinja` /
 * `chat_template.json` when present, and `generation_config.json` (else `config.json`) for
 * `eos_token_id`. Errors name the file and the fix.
 */
export function loadTextTokenizer(dir: string): TextTokenizer {
  const fix =
    "download the model's tokenizer files into this directory (huggingface-cli download REPO --local-dir DIR)";
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory())
    throw new Error(`${dir}: not a directory; point at a Hugging Face checkpoint directory with tokenizer.json`);
  const tjFile = path.join(dir, "tokenizer.json");
  const tcFile = path.join(dir, "tokenizer_config.json");
  const tj = readJsonFile(tjFile, fix);
  const tc = fs.existsSync(tcFile) ? readJsonFile(tcFile, fix) : {};
  let hf: Tokenizer;
  try {
    hf = new Tokenizer(tj, tc);
  } catch (e) {
    throw new Error(`${tjFile}: not a tokenizer @huggingface/tokenizers can load (${(e as Error).message}); ${fix}`);
  }
  const gcFile = path.join(dir, "generation_config.json");
  const cfgFile = path.join(dir, "config.json");
  let generationEos: number[] = [];
  if (fs.existsSync(gcFile)) generationEos = idList(readJsonFile(gcFile, fix).eos_token_id);
  else if (fs.existsSync(cfgFile)) generationEos = idList(readJsonFile(cfgFile, fix).eos_token_id);
  return new HfTextTokenizer(hf, tc, generationEos, findChatTemplate(dir, tc), dir);
}
