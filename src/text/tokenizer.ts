// Character-level tokenizer in the Hugging Face `tokenizer.json` format (a BPE model with no
// merges over single characters, split one character per pre-token: one digit per token),
// loaded with @huggingface/tokenizers. Text with characters outside the vocabulary is rejected.
import fs from "node:fs";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";

export const SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<unk>"] as const;
export const PAD_ID = 0;
export const BOS_ID = 1;
export const EOS_ID = 2;
/** The world's alphabet, one token each. */
export const ALPHABET = [..."0123456789+-*/=()?;:#.,\\{}^ abcdefghijklmnopqrstuvwxyz"];

export function tokenizerJson(alphabet: string[] = ALPHABET): object {
  const vocab: Record<string, number> = {};
  [...SPECIAL_TOKENS, ...alphabet].forEach((c, i) => (vocab[c] = i));
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIAL_TOKENS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: "Split", pattern: { Regex: "." }, behavior: "Isolated", invert: false },
    post_processor: null,
    decoder: { type: "Fuse" },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: "<unk>",
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

export const TOKENIZER_CONFIG = {
  tokenizer_class: "PreTrainedTokenizerFast",
  bos_token: "<bos>",
  eos_token: "<eos>",
  pad_token: "<pad>",
  unk_token: "<unk>",
  model_max_length: 96,
  clean_up_tokenization_spaces: false,
};

export class CharTokenizer {
  readonly vocabSize: number;
  private readonly known: Set<string>;
  private readonly idToChar: string[];

  constructor(
    private readonly hf: Tokenizer,
    readonly source: string,
  ) {
    const vocab = hf.get_vocab(true);
    this.vocabSize = Math.max(...vocab.values()) + 1;
    this.idToChar = new Array(this.vocabSize).fill("");
    this.known = new Set();
    for (const [tok, id] of vocab) {
      this.idToChar[id] = tok;
      if (!(SPECIAL_TOKENS as readonly string[]).includes(tok)) this.known.add(tok);
    }
  }

  /** characters of `text` that the vocabulary does not cover, in order of first appearance */
  unknownChars(text: string): string[] {
    return [...new Set([...text].filter((c) => !this.known.has(c)))];
  }

  /** Encodes text (no special tokens added); throws naming characters outside the vocabulary. */
  encode(text: string): number[] {
    const bad = this.unknownChars(text);
    if (bad.length > 0) {
      throw new Error(
        `text ${JSON.stringify(text.slice(0, 60))} has characters outside the tokenizer's vocabulary (${this.source}): ` +
          `${bad.map((c) => JSON.stringify(c)).join(", ")}; allowed: ${JSON.stringify([...this.known].join(""))}`,
      );
    }
    return this.hf.encode(text, { add_special_tokens: false }).ids;
  }

  /** Decodes ids, dropping special tokens. Fast path: the vocabulary is one character per id. */
  decode(ids: ArrayLike<number>): string {
    let s = "";
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id < SPECIAL_TOKENS.length) continue;
      s += this.idToChar[id] ?? "";
    }
    return s;
  }

  /** Decoding through @huggingface/tokenizers (for tests that check both agree). */
  decodeHf(ids: number[]): string {
    return this.hf.decode(ids, { skip_special_tokens: true });
  }
}

export function loadTokenizer(dir: string): CharTokenizer {
  const tj = path.join(dir, "tokenizer.json");
  const tc = path.join(dir, "tokenizer_config.json");
  for (const f of [tj, tc])
    if (!fs.existsSync(f)) throw new Error(`${f}: tokenizer file not found (run \`npm run data\` to write it)`);
  const hf = new Tokenizer(JSON.parse(fs.readFileSync(tj, "utf8")), JSON.parse(fs.readFileSync(tc, "utf8")));
  const tok = new CharTokenizer(hf, dir);
  for (const [i, s] of SPECIAL_TOKENS.entries()) {
    if (hf.token_to_id(s) !== i) throw new Error(`${tj}: special token ${s} must have id ${i}`);
  }
  return tok;
}

export const TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json"] as const;
export const DEFAULT_TOKENIZER_DIR = "data/tokenizer";

/** The directory holding a checkpoint's tokenizer: the checkpoint itself if it carries one, else data/tokenizer. */
export function tokenizerDirFor(checkpointDir: string): string {
  return fs.existsSync(path.join(checkpointDir, "tokenizer.json")) ? checkpointDir : DEFAULT_TOKENIZER_DIR;
}

/** Loads the tokenizer that goes with a checkpoint directory. */
export function loadTokenizerFor(checkpointDir: string): CharTokenizer {
  return loadTokenizer(tokenizerDirFor(checkpointDir));
}

/** Copies a checkpoint's tokenizer files into another checkpoint directory. */
export function copyTokenizer(fromCheckpointDir: string, toDir: string): void {
  const src = tokenizerDirFor(fromCheckpointDir);
  for (const f of TOKENIZER_FILES) fs.copyFileSync(path.join(src, f), path.join(toDir, f));
}

export function writeTokenizer(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizerJson(), null, 2) + "\n");
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(TOKENIZER_CONFIG, null, 2) + "\n");
}
