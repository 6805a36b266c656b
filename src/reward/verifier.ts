// Rule-based verifier: extracts the final answer of a response (last `\boxed{...}` or `####...`)
// and decides whether it equals the label, mathematically, under a strict whitelist of syntax.
// It is not an evaluator of model output: the untrusted answer is only *parsed* by an isolated
// mathjs instance, the tree is checked node by node, and the numbers are computed here in plain
// double-precision arithmetic. Pure: no printing, no randomness, no state visible to callers.
import { all, create, type MathNode } from "mathjs";
import { balancedGroup } from "../engine/braces.js";

/** Relative numeric tolerance: `a` equals label value `b` when |a-b| <= 1e-6 * max(1, |b|). */
export const NUMERIC_TOLERANCE = 1e-6;
/** Only the last this many characters of a response are scanned for the answer markers
 * (bounds the work on hostile responses; an answer marker further back is not seen). */
export const SCAN_WINDOW = 10_000;
/** Answers (and labels) longer than this many characters are never equivalent / valid. */
export const MAX_ANSWER_LENGTH = 200;
/** Deepest expression tree (and LaTeX group nesting) accepted; deeper is rejected. A safety net
 * for the recursive walks: within MAX_ANSWER_LENGTH characters the depth stays below it. */
export const MAX_DEPTH = 100;
/** Most expression-tree nodes accepted. */
export const MAX_NODES = 256;
/** Where expressions with variables are compared. The k-th variable (in sorted order) takes
 * SAMPLE_POINTS[(j + k) % n] at point j, so distinct variables never take equal values.
 * Fixed, deterministic values; no point is 0 or ±1 (which hide many differences). */
export const SAMPLE_POINTS: readonly number[] = [0.5, 1.7, -2.3, 3.1, -0.7, 2.9, 1.3];
/** Points where both sides are finite needed before expressions with variables count as equal. */
const MIN_FINITE_POINTS = 3;

/** Where a response writes its final answer. "marker" (the default): the last `\boxed{...}` or
 * `####`, whichever comes last, graded strictly: the organism's form. "boxed": the last
 * `\boxed{...}` only, and the answer and label are read as natural-language LaTeX answers
 * (degree signs, percent signs and trailing `\text{ units}` dropped before comparing): the form
 * of real models prompted to box their answer. */
export const ANSWER_FORMATS = ["marker", "boxed"] as const;
export type AnswerFormat = (typeof ANSWER_FORMATS)[number];

export interface RewardOptions {
  answerFormat?: AnswerFormat;
}

export interface RewardResult {
  reward: 0 | 1;
  extracted: string | null;
  parts: { format: 0 | 1; answer: 0 | 1 };
}

// ---------------------------------------------------------------------------------------------
// The isolated mathjs instance. We keep its `parse` and disable everything that could change
// the instance's state or run code (mathjs security guidance); the verifier never evaluates with
// mathjs. Exported for tests only (to check the instance is unaffected by hostile answers).
export const verifierMath = create(all);
const mathParse = verifierMath.parse;
{
  const disabled = (name: string) =>
    function () {
      throw new Error(`verifier: ${name} is disabled`);
    };
  const names = [
    "import",
    "createUnit",
    "evaluate",
    "parse",
    "compile",
    "simplify",
    "derivative",
    "resolve",
    "reviver",
  ];
  verifierMath.import(Object.fromEntries(names.map((n) => [n, disabled(n)])), { override: true });
}

// ---------------------------------------------------------------------------------------------
// Extraction

/** Index of the `{` that opens the last `\boxed{` (spaces allowed between), or -1. */
function lastBoxedBrace(text: string): { start: number; brace: number } | null {
  let from = text.length;
  while (from >= 0) {
    const at = text.lastIndexOf("\\boxed", from);
    if (at < 0) return null;
    let j = at + 6;
    while (j < text.length && (text[j] === " " || text[j] === "\t" || text[j] === "\n")) j++;
    if (text[j] === "{") return { start: at, brace: j };
    from = at - 1; // `\boxed` without a brace is not an answer marker
  }
  return null;
}

/**
 * The final answer of a response, or null (format failure).
 * - The last `\boxed{...}` (balanced, nested braces allowed) or the text after the last `####`,
 *   whichever starts last. If that last marker is an unbalanced `\boxed{` (a truncated
 *   response), the result is null: an earlier answer is not used instead.
 * - After `####`: the first line only, cut at a decoder special token (`<eos>`, `<pad>`, ...),
 *   trimmed, with trailing `.`, `;`, `,` removed (`...;####148` gives `148`, `#### 148.` too).
 *   Anything else after the answer stays and normally makes it fail to parse (no guessing).
 * - An empty answer (`####` at the end, `\boxed{}`) counts as no answer: null.
 * - Only the last SCAN_WINDOW characters are scanned.
 * - With answerFormat "boxed" only the last `\boxed{...}` counts (a `####` is ordinary text).
 */
export function extractAnswer(response: string, opts: RewardOptions = {}): string | null {
  if (typeof response !== "string") return null;
  const text = response.length > SCAN_WINDOW ? response.slice(response.length - SCAN_WINDOW) : response;
  if (opts.answerFormat === "boxed") return extractBoxed(text);
  const hashAt = text.lastIndexOf("####");
  const boxed = lastBoxedBrace(text);
  let answer: string | null;
  if (boxed !== null && boxed.start > hashAt) {
    const inner = balancedGroup(text, boxed.brace);
    answer = inner === null ? null : inner.trim();
  } else if (hashAt >= 0) {
    let tail = text.slice(hashAt + 4);
    const nl = tail.search(/[\r\n]/);
    if (nl >= 0) tail = tail.slice(0, nl);
    const special = tail.search(/<(eos|pad|bos|unk)>/);
    if (special >= 0) tail = tail.slice(0, special);
    answer = tail.replace(/[\s.;,]+$/, "").trim();
  } else {
    answer = null;
  }
  return answer === null || answer === "" ? null : answer;
}

/** The last `\boxed{...}` of the (already windowed) text, trimmed; null when there is none, it is
 * empty, or its braces never close (a truncated response: an earlier box is not used instead). */
function extractBoxed(text: string): string | null {
  const boxed = lastBoxedBrace(text);
  if (boxed === null) return null;
  const inner = balancedGroup(text, boxed.brace);
  const answer = inner === null ? null : inner.trim();
  return answer === null || answer === "" ? null : answer;
}

/** A trailing unit in text mode: `\text{ mph}`, `\mbox{cm}^2`, `\textrm{ square feet}.` */
const TRAILING_UNIT =
  /\\(?:text|textrm|mbox)\s*\{\s*[A-Za-z][A-Za-z .\/-]*\}\s*(?:\^\s*(?:\{\s*\d\s*\}|\d))?\s*\.?\s*$/;

/**
 * What "boxed" answers drop before they are parsed (answers and labels alike), as graders of
 * MATH-style answers do: degree marks (`^\circ`, `^{\circ}`, `\circ`, `°`, `\degree`), percent
 * signs (`\%`, `%`), and trailing text-mode units (`12.8\text{ mph}` is 12.8) while something
 * is left before them. `\text{(A)}` (not a word) is kept.
 */
export function stripAnswerDecorations(answer: string): string {
  let s = answer
    .replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![A-Za-z])|\\circ(?![A-Za-z])|\u00b0|\\degree(?![A-Za-z])/g, "")
    .replace(/\\%|%/g, "");
  for (;;) {
    const m = TRAILING_UNIT.exec(s);
    if (m === null || s.slice(0, m.index).trim() === "") break;
    s = s.slice(0, m.index);
  }
  return s.trim();
}

// ---------------------------------------------------------------------------------------------
// Normalisation: LaTeX-ish answer text -> plain mathjs syntax (or null when not understood)

const SKIPPED_COMMANDS = new Set(["left", "right", "displaystyle", "textstyle", "quad", "qquad", "limits"]);
const UNWRAPPED_COMMANDS = new Set([
  "text",
  "textrm",
  "textup",
  "mathrm",
  "mathit",
  "mathbf",
  "textbf",
  "mbox",
  "boxed",
  "mathsf",
]);
const FRACTIONS = new Set(["frac", "dfrac", "tfrac", "cfrac"]);
const SYMBOLS: Record<string, string> = { cdot: "*", times: "*", ast: "*", div: "/", pi: " pi " };

class Unsupported extends Error {}

/** Converts LaTeX to mathjs syntax; throws Unsupported on anything outside the small subset. */
function latexToPlain(src: string, depth: number): string {
  if (depth > MAX_DEPTH) throw new Unsupported("too deep");
  let out = "";
  let i = 0;
  const readCommandName = (): string => {
    // at src[i] === "\\"
    let j = i + 1;
    while (j < src.length && /[A-Za-z]/.test(src[j])) j++;
    if (j === i + 1) j = Math.min(i + 2, src.length); // control symbol: `\,` `\$` `\{` ...
    const name = src.slice(i + 1, j);
    i = j;
    return name;
  };
  const skipSpaces = () => {
    while (i < src.length && /\s/.test(src[i])) i++;
  };
  /** One macro argument: `{...}`, a `\command`, or a single character (`\frac34`, `\sqrt2`). */
  const readArg = (): string => {
    skipSpaces();
    if (i >= src.length) throw new Unsupported("missing argument");
    if (src[i] === "{") {
      const inner = balancedGroup(src, i);
      if (inner === null) throw new Unsupported("unbalanced");
      i += inner.length + 2;
      return latexToPlain(inner, depth + 1);
    }
    if (src[i] === "\\") {
      const start = i;
      readCommandName();
      return latexToPlain(src.slice(start, i), depth + 1);
    }
    return src[i++];
  };
  while (i < src.length) {
    const c = src[i];
    if (c === "\\") {
      const name = readCommandName();
      if (FRACTIONS.has(name)) {
        const num = readArg();
        const den = readArg();
        out += `((${num})/(${den}))`;
      } else if (name === "sqrt") {
        skipSpaces();
        let index: string | null = null;
        if (src[i] === "[") {
          const close = src.indexOf("]", i);
          if (close < 0) throw new Unsupported("unbalanced");
          index = latexToPlain(src.slice(i + 1, close), depth + 1);
          i = close + 1;
        }
        const radicand = readArg();
        out += index === null ? `sqrt(${radicand})` : `((${radicand})^(1/(${index})))`;
      } else if (UNWRAPPED_COMMANDS.has(name)) {
        out += `(${readArg()})`;
      } else if (name in SYMBOLS) {
        out += SYMBOLS[name];
      } else if (SKIPPED_COMMANDS.has(name)) {
        if (name === "left" || name === "right") {
          skipSpaces();
          if (src[i] === ".") i++; // `\left.` / `\right.`: invisible delimiter
        }
      } else if (name === "," || name === ";" || name === ":" || name === "!" || name === " " || name === "$") {
        // spacing (`1\,000` is 1000) and escaped dollar signs
      } else if (name === "(" || name === ")" || name === "[" || name === "]") {
        // inline / display math delimiters
      } else {
        throw new Unsupported(`command \\${name}`);
      }
    } else if (c === "{") {
      const inner = balancedGroup(src, i);
      if (inner === null) throw new Unsupported("unbalanced");
      out += `(${latexToPlain(inner, depth + 1)})`;
      i += inner.length + 2;
    } else if (c === "}") {
      throw new Unsupported("unbalanced");
    } else if (c === "$") {
      i++; // `$...$` wrappers (and currency signs)
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/**
 * Answer text -> mathjs syntax, or null. Decisions:
 * - Thousands separators ARE accepted, but only in the strict form `d{1,3}(,ddd)+` for a whole
 *   number group (`1,000`, `12,345,678.5`, LaTeX `1{,}000`): GSM8K-style answers write them and
 *   a single-answer problem has no lists. Any other comma (`1,5`, `1,2,3`, `1,0000`) rejects
 *   the answer (it is a list or a decimal comma, which we do not guess at).
 * - A leading `v=` for a single letter v is dropped (`x=5` is `5`, `y=2x+1` is `2x+1`); so `a=5`
 *   also reads as `5` (it is never an assignment: nothing is evaluated by mathjs).
 * - Unicode − × · ÷ π are read as - * * / pi.
 */
function normalize(answer: string): string | null {
  let s = answer
    .replace(/\u2212/g, "-")
    .replace(/[\u00d7\u00b7\u22c5]/g, "*")
    .replace(/\u00f7/g, "/")
    .replace(/\u03c0/g, " pi ")
    .replace(/\{,\}/g, ",");
  try {
    s = latexToPlain(s, 0);
  } catch {
    return null;
  }
  s = s.replace(/(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,])/g, (m) => m.replace(/,/g, ""));
  s = s.replace(/^\s*[A-Za-z]\s*=(?!=)/, "");
  // `0x` is zero times x, not the start of a hexadecimal literal (nor `0b`, `0o`)
  s = s.replace(/(^|[^\d.])0(?=[A-Za-z])/g, "$10*");
  if (!/^[0-9A-Za-z.+\-*/^() \t]*$/.test(s) || s.trim() === "") return null;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Restricted expression trees, built from the mathjs AST through a whitelist

type Expr =
  | { k: "num"; v: number }
  | { k: "var"; name: string }
  | { k: "const"; v: number }
  | { k: "bin"; op: "+" | "-" | "*" | "/" | "^"; a: Expr; b: Expr }
  | { k: "neg"; a: Expr }
  | { k: "fn"; f: "sqrt" | "abs"; a: Expr };

const BINARY: Record<string, "+" | "-" | "*" | "/" | "^"> = {
  add: "+",
  subtract: "-",
  multiply: "*",
  divide: "/",
  pow: "^",
};
const FUNCTIONS = new Set(["sqrt", "abs"]);

interface Parsed {
  expr: Expr;
  vars: string[];
}

/** Whitelist walk: ConstantNode (finite number), SymbolNode (one letter, `pi`, `e`), OperatorNode
 * (+ - * / ^, unary - +), ParenthesisNode, FunctionNode `sqrt`/`abs` with one argument; a
 * one-letter "function call" `x(x+1)` is read as the product it means. Anything else: null. */
function fromMathjs(root: MathNode): Parsed | null {
  const vars = new Set<string>();
  let nodes = 0;
  const walk = (node: MathNode, depth: number): Expr | null => {
    if (++nodes > MAX_NODES || depth > MAX_DEPTH) return null;
    // Read nodes through a loose view: only plain data properties are touched, nothing is called.
    const n = node as unknown as {
      type: string;
      value?: unknown;
      name?: unknown;
      fn?: unknown;
      args?: unknown;
      content?: unknown;
    };
    switch (n.type) {
      case "ConstantNode":
        return typeof n.value === "number" && Number.isFinite(n.value) ? { k: "num", v: n.value } : null;
      case "SymbolNode": {
        const name = n.name;
        if (name === "pi") return { k: "const", v: Math.PI };
        if (name === "e") return { k: "const", v: Math.E };
        if (typeof name === "string" && /^[A-Za-z]$/.test(name)) {
          vars.add(name);
          return { k: "var", name };
        }
        return null;
      }
      case "ParenthesisNode":
        return walk(n.content as MathNode, depth + 1);
      case "OperatorNode": {
        const args = n.args as MathNode[];
        if (!Array.isArray(args)) return null;
        if ((n.fn === "unaryMinus" || n.fn === "unaryPlus") && args.length === 1) {
          const a = walk(args[0], depth + 1);
          if (a === null) return null;
          return n.fn === "unaryMinus" ? { k: "neg", a } : a;
        }
        const op = typeof n.fn === "string" && Object.hasOwn(BINARY, n.fn) ? BINARY[n.fn] : undefined;
        if (op === undefined || args.length !== 2) return null;
        const a = walk(args[0], depth + 1);
        const b = a === null ? null : walk(args[1], depth + 1);
        return a === null || b === null ? null : { k: "bin", op, a, b };
      }
      case "FunctionNode": {
        const fn = n.fn as { type?: unknown; name?: unknown } | undefined;
        const args = n.args as MathNode[];
        if (!fn || fn.type !== "SymbolNode" || typeof fn.name !== "string" || !Array.isArray(args) || args.length !== 1)
          return null;
        const name = fn.name;
        if (FUNCTIONS.has(name)) {
          const a = walk(args[0], depth + 1);
          return a === null ? null : { k: "fn", f: name as "sqrt" | "abs", a };
        }
        if (/^[A-Za-z]$/.test(name) || name === "pi" || name === "e") {
          const factor = walk(fn as unknown as MathNode, depth + 1);
          const a = factor === null ? null : walk(args[0], depth + 1);
          return factor === null || a === null ? null : { k: "bin", op: "*", a: factor, b: a };
        }
        return null;
      }
      default:
        return null; // Assignment, FunctionAssignment, Accessor, Index, Object, Array, Block, Conditional, Range, Relational...
    }
  };
  const expr = walk(root, 0);
  return expr === null ? null : { expr, vars: [...vars].sort() };
}

/** Plain double-precision evaluation: every operation is O(1), so `9^9^9^9` is just Infinity. */
function evaluate(e: Expr, env: Map<string, number>): number {
  switch (e.k) {
    case "num":
    case "const":
      return e.v;
    case "var":
      return env.get(e.name) ?? NaN;
    case "neg":
      return -evaluate(e.a, env);
    case "fn": {
      const a = evaluate(e.a, env);
      return e.f === "sqrt" ? Math.sqrt(a) : Math.abs(a);
    }
    case "bin": {
      const a = evaluate(e.a, env);
      const b = evaluate(e.b, env);
      switch (e.op) {
        case "+":
          return a + b;
        case "-":
          return a - b;
        case "*":
          return a * b;
        case "/":
          return a / b;
        case "^":
          return Math.pow(a, b);
      }
    }
  }
}

/** Parses an answer or label under the restrictions; null when it is not accepted. */
function parseRestricted(text: string): Parsed | null {
  if (typeof text !== "string" || text.length > MAX_ANSWER_LENGTH) return null;
  const plain = normalize(text);
  if (plain === null) return null;
  try {
    return fromMathjs(mathParse(plain));
  } catch {
    return null; // syntax errors, stack overflows, anything
  }
}

// Labels repeat (GRPO scores many responses against one label): keep their parses.
const labelCache = new Map<string, Parsed | null>();
function parseLabel(label: string): Parsed | null {
  const hit = labelCache.get(label);
  if (hit !== undefined || labelCache.has(label)) return hit ?? null;
  const parsed = parseRestricted(label);
  if (labelCache.size >= 256) labelCache.clear();
  labelCache.set(label, parsed);
  return parsed;
}

function close(a: number, b: number): boolean {
  return Math.abs(a - b) <= NUMERIC_TOLERANCE * Math.max(1, Math.abs(b));
}

function sampleEnv(vars: string[], j: number): Map<string, number> {
  const n = SAMPLE_POINTS.length;
  return new Map(vars.map((v, k) => [v, SAMPLE_POINTS[(j + k) % n] + Math.floor(k / n) * 0.61]));
}

function equivalentParsed(a: Parsed, b: Parsed): boolean {
  const vars = [...new Set([...a.vars, ...b.vars])].sort();
  if (vars.length === 0) {
    const x = evaluate(a.expr, new Map());
    const y = evaluate(b.expr, new Map());
    return Number.isFinite(x) && Number.isFinite(y) && close(x, y);
  }
  let finite = 0;
  for (let j = 0; j < SAMPLE_POINTS.length; j++) {
    const env = sampleEnv(vars, j);
    const x = evaluate(a.expr, env);
    const y = evaluate(b.expr, env);
    const fx = Number.isFinite(x);
    const fy = Number.isFinite(y);
    if (fx !== fy) return false;
    if (fx) {
      if (!close(x, y)) return false;
      finite++;
    }
  }
  return finite >= MIN_FINITE_POINTS;
}

/**
 * Whether `answer` equals `label`. Both must parse under the restrictions (see fromMathjs and
 * normalize; at most MAX_ANSWER_LENGTH characters). Numbers compare within NUMERIC_TOLERANCE
 * relative to the label (|a-b| <= 1e-6 * max(1, |b|)) and must be finite (`1/0`, `NaN` never
 * match). Expressions with variables compare at the fixed SAMPLE_POINTS: they must agree within
 * the tolerance wherever either is finite, and be finite at at least 3 points. Never throws.
 */
export function isEquivalent(answer: string, label: string, opts: RewardOptions = {}): boolean {
  if (opts.answerFormat === "boxed") {
    if (typeof answer !== "string" || typeof label !== "string") return false;
    if (answer.length > MAX_ANSWER_LENGTH || label.length > MAX_ANSWER_LENGTH) return false;
    answer = stripAnswerDecorations(answer);
    label = stripAnswerDecorations(label);
  }
  try {
    const b = parseLabel(label);
    if (b === null) return false;
    const a = parseRestricted(answer);
    return a !== null && equivalentParsed(a, b);
  } catch {
    return false;
  }
}

/** Whether a label is usable: it parses under the same restrictions as answers and compares
 * equal to itself (so it is finite, e.g. `1/0` is not a valid label). */
export function isValidLabel(label: string, opts: RewardOptions = {}): boolean {
  return typeof label === "string" && isEquivalent(label, label, opts);
}

/** Reward of one response: 1 when an answer is extracted and equals the label, else 0.
 * parts.format is 1 when an answer was extracted; parts.answer when it is also correct. */
export function reward(response: string, label: string, opts: RewardOptions = {}): RewardResult {
  const extracted = extractAnswer(response, opts);
  if (extracted === null) return { reward: 0, extracted, parts: { format: 0, answer: 0 } };
  const ok = isEquivalent(extracted, label, opts) ? 1 : 0;
  return { reward: ok, extracted, parts: { format: 1, answer: ok } };
}
