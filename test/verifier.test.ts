// Tests of the rule-based verifier (src/reward/verifier.ts) and its CLI (src/cli/verify.ts).
// They are not tests of training or of the model: only answer extraction and equivalence.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as mathjs from "mathjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  extractAnswer,
  isEquivalent,
  isValidLabel,
  MAX_ANSWER_LENGTH,
  NUMERIC_TOLERANCE,
  reward,
  SCAN_WINDOW,
  verifierMath,
} from "../src/reward/verifier.js";
import { readVerifyInput } from "../src/cli/verifyInput.js";

interface Row {
  response: string;
  label: string;
  reward: 0 | 1;
  extracted: string | null;
}

const row = (response: string, label: string, r: 0 | 1, extracted: string | null): Row => ({
  response,
  label,
  reward: r,
  extracted,
});

function check(t: Row) {
  const res = reward(t.response, t.label);
  expect(res.extracted).toBe(t.extracted);
  expect(res.reward).toBe(t.reward);
  expect(res.parts.format).toBe(t.extracted === null ? 0 : 1);
  expect(res.parts.answer).toBe(t.reward);
}

const show = (s: string) =>
  s.length > 60 ? `${JSON.stringify(s.slice(0, 40))}… (${s.length} chars)` : JSON.stringify(s);

describe("extraction", () => {
  const rows: Row[] = [
    row("3*4=12;12+136=148;####148", "148", 1, "148"),
    row("####148", "148", 1, "148"),
    row("#### 148 ", "148", 1, "148"),
    row("####148\nmore text ####", "148", 0, null), // the last #### has nothing after it
    row("####148\nnext line", "148", 1, "148"),
    row("####148.", "148", 1, "148"),
    row("####148;", "148", 1, "148"),
    row("####148<eos><pad><pad>", "148", 1, "148"),
    row("####147;####148", "148", 1, "148"),
    row("####148;so 5", "148", 0, "148;so 5"), // no guessing at what follows the answer
    row("The answer is \\boxed{42}.", "42", 1, "42"),
    row("\\boxed{1} then \\boxed{2}", "2", 1, "2"),
    row("\\boxed{\\frac{3}{4}}", "3/4", 1, "\\frac{3}{4}"),
    row("\\boxed {7}", "7", 1, "7"),
    row("\\boxed{ {1}+{2} }", "3", 1, "{1}+{2}"),
    row("####5 and finally \\boxed{6}", "6", 1, "6"),
    row("\\boxed{6} but ####5", "5", 1, "5"),
    row("\\boxed{6} but ####5", "6", 0, "5"),
    row("so 148", "148", 0, null), // the nomarker procedure: format failure
    row("", "1", 0, null),
    row("####", "1", 0, null),
    row("#### \n", "1", 0, null),
    row("\\boxed{}", "1", 0, null),
    row("\\boxed{", "1", 0, null),
    row("\\boxed{\\frac{1}{2}", "1", 0, null),
    row("\\boxed{5} then \\boxed{6", "5", 0, null), // the last marker is truncated
    row("\\boxed5", "5", 0, null), // \boxed without braces is not a marker
  ];
  it.each(rows.map((r) => [show(r.response), show(r.label), r] as const))("%s vs %s", (_a, _b, r) => check(r));

  it("scans only the last SCAN_WINDOW characters", () => {
    expect(SCAN_WINDOW).toBe(10_000);
    expect(extractAnswer("####5" + " ".repeat(SCAN_WINDOW))).toBeNull();
    expect(extractAnswer("x".repeat(50_000) + "####5")).toBe("5");
  });
});

describe("equivalence", () => {
  const rows: Row[] = [
    // integers, decimals, negatives
    row("####148", "148.0", 1, "148"),
    row("####-7", "-7", 1, "-7"),
    row("####−7", "-7", 1, "−7"),
    row("####- 7", "-7", 1, "- 7"),
    row("####7", "-7", 0, "7"),
    row("####0.5", ".5", 1, "0.5"),
    row("####2.50", "2.5", 1, "2.50"),
    row("####1e3", "1000", 1, "1e3"),
    row("####147", "148", 0, "147"),
    row("####0.1+0.2", "0.3", 1, "0.1+0.2"),
    // tolerance: relative 1e-6 against max(1, |label|)
    row("####1000000.5", "1000000", 1, "1000000.5"),
    row("####1000002", "1000000", 0, "1000002"),
    row("####0.0000005", "0", 1, "0.0000005"),
    row("####0.000002", "0", 0, "0.000002"),
    // fractions
    row("####3/4", "0.75", 1, "3/4"),
    row("####6/8", "3/4", 1, "6/8"),
    row("\\boxed{\\frac{3}{4}}", "0.75", 1, "\\frac{3}{4}"),
    row("\\boxed{\\dfrac{3}{4}}", "3/4", 1, "\\dfrac{3}{4}"),
    row("\\boxed{\\tfrac{3}{4}}", "3/4", 1, "\\tfrac{3}{4}"),
    row("\\boxed{\\frac34}", "3/4", 1, "\\frac34"),
    row("\\boxed{-\\frac{1}{3}}", "-1/3", 1, "-\\frac{1}{3}"),
    row("\\boxed{\\frac{1}{3}}", "0.333", 0, "\\frac{1}{3}"),
    row("\\boxed{\\frac{\\frac{1}{2}}{2}}", "1/4", 1, "\\frac{\\frac{1}{2}}{2}"),
    // roots, products, delimiters, wrappers
    row("\\boxed{\\sqrt{2}}", "1.41421356", 1, "\\sqrt{2}"),
    row("\\boxed{\\sqrt2}", "sqrt(2)", 1, "\\sqrt2"),
    row("\\boxed{2\\sqrt{2}}", "sqrt(8)", 1, "2\\sqrt{2}"),
    row("\\boxed{\\sqrt[3]{27}}", "3", 1, "\\sqrt[3]{27}"),
    row("####sqrt(16)", "4", 1, "sqrt(16)"),
    row("####abs(-3)", "3", 1, "abs(-3)"),
    row("\\boxed{3 \\cdot 4}", "12", 1, "3 \\cdot 4"),
    row("\\boxed{3\\times4}", "12", 1, "3\\times4"),
    row("\\boxed{\\left( 2+3 \\right) \\cdot 2}", "10", 1, "\\left( 2+3 \\right) \\cdot 2"),
    row("####$12$", "12", 1, "$12$"),
    row("\\boxed{$\\frac{1}{2}$}", "0.5", 1, "$\\frac{1}{2}$"),
    row("####\\$12", "12", 1, "\\$12"),
    row("\\boxed{\\text{5}}", "5", 1, "\\text{5}"),
    row("\\boxed{2\\pi}", "2pi", 1, "2\\pi"),
    row("####2^{10}", "1024", 1, "2^{10}"),
    // leading `x=`
    row("####x=5", "5", 1, "x=5"),
    row("\\boxed{x = 5}", "5", 1, "x = 5"),
    row("####x=5", "x=5", 1, "x=5"),
    row("####y=2x+1", "2x+1", 1, "y=2x+1"),
    row("####x=y=5", "5", 0, "x=y=5"),
    row("####x==5", "5", 0, "x==5"),
    // thousands separators: accepted only as d{1,3}(,ddd)+
    row("####1,000", "1000", 1, "1,000"),
    row("####12,345,678", "12345678", 1, "12,345,678"),
    row("####1,234.5", "1234.5", 1, "1,234.5"),
    row("\\boxed{1{,}000}", "1000", 1, "1{,}000"),
    row("####1\\,000", "1000", 1, "1\\,000"),
    row("####1,000", "1", 0, "1,000"),
    row("####1,5", "1.5", 0, "1,5"),
    row("####1,5", "15", 0, "1,5"),
    row("####1,0000", "10000", 0, "1,0000"),
    row("####1,2,3", "123", 0, "1,2,3"),
    // algebra, implicit multiplication
    row("####2x+1", "1+2x", 1, "2x+1"),
    row("####2*x+1", "1+2x", 1, "2*x+1"),
    row("####2(x+1)", "2x+2", 1, "2(x+1)"),
    row("####x(x+1)", "x^2+x", 1, "x(x+1)"),
    row("####(x+1)^2", "x^2+2x+1", 1, "(x+1)^2"),
    row("####(x+1)^2", "x^2+1", 0, "(x+1)^2"),
    row("####2x+1", "2y+1", 0, "2x+1"),
    row("####x y", "y*x", 1, "x y"),
    row("####x+y", "y+x", 1, "x+y"),
    row("####x-y", "y-x", 0, "x-y"),
    row("\\boxed{\\frac{x}{2}}", "x/2", 1, "\\frac{x}{2}"),
    row("\\boxed{\\sqrt{x^2}}", "abs(x)", 1, "\\sqrt{x^2}"),
    row("####x", "5", 0, "x"),
    row("####x-x+5", "5", 1, "x-x+5"),
    row("####1/x", "x^-1", 1, "1/x"),
    row("####0x", "0", 1, "0x"), // zero times x, not a hexadecimal literal
    row("####0x10", "16", 0, "0x10"),
  ];
  it.each(rows.map((r) => [show(r.response), show(r.label), r] as const))("%s vs %s", (_a, _b, r) => check(r));

  it("the exported tolerance is the one applied: just inside it equal, just outside it not", () => {
    expect(NUMERIC_TOLERANCE).toBe(1e-6);
    for (const label of [1, 5e6]) {
      const step = NUMERIC_TOLERANCE * Math.max(1, label);
      expect(isEquivalent(String(label + 0.9 * step), String(label))).toBe(true);
      expect(isEquivalent(String(label - 0.9 * step), String(label))).toBe(true);
      expect(isEquivalent(String(label + 1.1 * step), String(label))).toBe(false);
      expect(isEquivalent(String(label - 1.1 * step), String(label))).toBe(false);
    }
  });

  it("validates labels under the same restrictions", () => {
    for (const ok of ["148", "-3", "3/4", "\\frac{3}{4}", "2x+1", "sqrt(x)", "1,000", "x=5"])
      expect(isValidLabel(ok), ok).toBe(true);
    for (const bad of [
      "",
      "abc",
      "1/0",
      "NaN",
      "Infinity",
      "a=5;b=6",
      "f(x)=x",
      "evaluate(1)",
      "[1,2]",
      "1 2",
      "x".repeat(MAX_ANSWER_LENGTH + 1),
    ]) {
      expect(isValidLabel(bad), bad).toBe(false);
    }
  });
});

describe("malformed and hostile answers", () => {
  const nested = "(".repeat(10_000) + "1" + ")".repeat(10_000);
  const rows: Row[] = [
    row("\\boxed{", "1", 0, null),
    row("####", "1", 0, null),
    row("####1/0", "1", 0, "1/0"),
    row("####1/0", "Infinity", 0, "1/0"),
    row("####0/0", "0", 0, "0/0"),
    row("####abc", "1", 0, "abc"),
    row("####NaN", "1", 0, "NaN"),
    row("####Infinity", "1", 0, "Infinity"),
    row("####1e999", "1", 0, "1e999"),
    row("####sqrt(-1)", "1", 0, "sqrt(-1)"),
    row("####1+", "1", 0, "1+"),
    row("####)1(", "1", 0, ")1("),
    row("####2 3", "6", 0, "2 3"),
    row("####3!", "6", 0, "3!"),
    row("####50%", "0.5", 0, "50%"),
    row("####7 mod 4", "3", 0, "7 mod 4"),
    row("####\\infty", "1", 0, "\\infty"),
    row("####import({x:1})", "1", 0, "import({x:1})"),
    row("####import(x)", "1", 0, "import(x)"),
    row('####createUnit("foo")', "1", 0, 'createUnit("foo")'),
    row("####createUnit(x)", "1", 0, "createUnit(x)"),
    row("####f(x)=x", "x", 0, "f(x)=x"),
    row("####a=5", "a", 0, "a=5"), // a leading `a=` is dropped; `5` is not the variable a
    row("####a=5;b=6", "6", 0, "a=5;b=6"),
    row('####evaluate("1")', "1", 0, 'evaluate("1")'),
    row("####evaluate(1)", "1", 0, "evaluate(1)"),
    row("####sin(0)", "0", 0, "sin(0)"),
    row("####x.y", "1", 0, "x.y"),
    row("####x[1]", "1", 0, "x[1]"),
    row("####[1]", "1", 0, "[1]"),
    row("####1:3", "1", 0, "1:3"),
    row("####1 ? 1 : 0", "1", 0, "1 ? 1 : 0"),
    row("####true", "1", 0, "true"),
    row("####'1'", "1", 0, "'1'"),
    row("####5 cm", "5", 0, "5 cm"),
    row("####2 to 3", "1", 0, "2 to 3"),
    row("####x'", "x", 0, "x'"),
    row("####9^9^9^9", "1", 0, "9^9^9^9"),
    row("####9^9^9^9^9^9^9^9^9", "1", 0, "9^9^9^9^9^9^9^9^9"),
    row("####" + nested, "1", 0, null), // the marker is beyond SCAN_WINDOW
    row("####" + nested.slice(6_000, 14_001), "1", 0, nested.slice(6_000, 14_001)),
    row("\\boxed{" + "{".repeat(10_000) + "1" + "}".repeat(10_000) + "}", "1", 0, null), // beyond SCAN_WINDOW
    row("####" + "(".repeat(100) + "1" + ")".repeat(100), "1", 0, "(".repeat(100) + "1" + ")".repeat(100)), // 201 chars
    row("x".repeat(1_000_000) + "####5", "5", 1, "5"),
    row("####5" + "x".repeat(1_000_000), "5", 0, null),
    row("x".repeat(1_000_000) + "####" + "1".repeat(5_000), "1", 0, "1".repeat(5_000)),
    row("\\boxed{".repeat(200_000), "1", 0, null),
    row("####" + "1+".repeat(150) + "1", "151", 0, "1+".repeat(150) + "1"), // over MAX_ANSWER_LENGTH
  ];
  it.each(rows.map((r) => [show(r.response), show(r.label), r] as const))(
    "%s vs %s: reward 0 fast, no throw",
    (_a, _b, r) => {
      const t0 = performance.now();
      expect(() => check(r)).not.toThrow();
      expect(performance.now() - t0).toBeLessThan(1000);
    },
  );

  it("accepts moderately nested expressions", () => {
    expect(isEquivalent("(".repeat(99) + "1" + ")".repeat(99), "1")).toBe(true); // 199 chars
    expect(isEquivalent("1+".repeat(99) + "1", "100")).toBe(true);
    expect(isEquivalent("\\sqrt{".repeat(28) + "1" + "}".repeat(28), "1")).toBe(true);
    expect(isEquivalent(nested, "1")).toBe(false); // too long
  });

  it("never throws on odd inputs", () => {
    for (const s of [
      "\\",
      "{",
      "}",
      "\\frac",
      "\\frac{1}",
      "\\sqrt[",
      "\\left",
      "^",
      "((",
      "$",
      "\u0000",
      "constructor",
      "__proto__",
      "toString",
    ]) {
      expect(() => reward("####" + s, "1"), s).not.toThrow();
      expect(() => isEquivalent(s, s), s).not.toThrow();
      expect(isEquivalent(s, "1")).toBe(false);
    }
    expect(reward(undefined as unknown as string, "1").reward).toBe(0);
  });

  it("leaves mathjs unaffected", () => {
    for (const m of [verifierMath, mathjs]) {
      expect(m.Unit.isValuelessUnit("foo")).toBe(false);
      expect(() => m.unit("5 foo")).toThrow();
    }
    expect(mathjs.evaluate("a", { a: 3 })).toBe(3); // the default instance still works
    expect(() => mathjs.evaluate("a")).toThrow(); // and has no variable a
    // the verifier's own instance refuses the functions that change state or evaluate
    expect(() => verifierMath.import({ foo: 1 })).toThrow();
    expect(() => verifierMath.createUnit("foo")).toThrow();
    expect(() => verifierMath.evaluate("1")).toThrow();
  });

  it("is deterministic", () => {
    const inputs: [string, string][] = [
      ["####2x+1", "1+2x"],
      ["####x^2", "x*x"],
      ["\\boxed{\\sqrt{x^2}}", "abs(x)"],
    ];
    const first = inputs.map(([r, l]) => reward(r, l));
    for (let k = 0; k < 3; k++) expect(inputs.map(([r, l]) => reward(r, l))).toEqual(first);
  });
});

describe("CLI input (read and checked whole before anything is scored)", () => {
  let dir = "";
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "verify-test-"));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, lines: string[]) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, lines.join("\n"));
    return file;
  };
  const ok = JSON.stringify({ response: "####1", label: "1" });

  it("reads the non-blank lines in order", () => {
    const file = write("two.jsonl", ["", ok, "   ", JSON.stringify({ response: "so 5", label: "5" }), ""]);
    expect(readVerifyInput(file)).toEqual([
      { response: "####1", label: "1" },
      { response: "so 5", label: "5" },
    ]);
  });

  it("names the file and line of a line that is not JSON, not an object, or lacks a string field", () => {
    const notJson = write("bad.jsonl", [ok, "", "{not json", JSON.stringify({ response: "x" })]);
    expect(() => readVerifyInput(notJson)).toThrow(`verify: ${notJson}:3: not valid JSON`);
    const array = write("array.jsonl", [ok, "[1, 2]"]);
    expect(() => readVerifyInput(array)).toThrow(`verify: ${array}:2: expected a JSON object`);
    const missing = write("missing-field.jsonl", [ok, JSON.stringify({ response: "####1", label: 1 })]);
    expect(() => readVerifyInput(missing)).toThrow(`verify: ${missing}:2: field "label" missing or not a string`);
    const neither = write("neither.jsonl", ["{}"]);
    expect(() => readVerifyInput(neither)).toThrow(`field "response" and "label" missing`);
  });

  it("names a missing file", () => {
    const nofile = path.join(dir, "nope.jsonl");
    expect(() => readVerifyInput(nofile)).toThrow(`verify: file not found: ${nofile}`);
  });
});

describe("CLI (a process each)", () => {
  const run = (args: string[]) =>
    spawnSync(process.execPath, ["--import", "tsx", "src/cli/verify.ts", ...args], {
      encoding: "utf8",
      timeout: 60_000,
    });
  let dir = "";
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "verify-cli-test-"));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("scores each line in order, skipping blank lines", () => {
    const file = path.join(dir, "ok.jsonl");
    const lines = [
      { response: "3*4=12;####12", label: "12" },
      { response: "\\boxed{\\frac{3}{4}}", label: "0.75" },
      { response: "so 5", label: "5" },
      { response: "####7", label: "8" },
    ].map((x) => JSON.stringify(x));
    fs.writeFileSync(file, [lines[0], "", lines[1], "   ", lines[2], lines[3], ""].join("\n"));
    const r = run([file]);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(
      r.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l)),
    ).toEqual([
      { reward: 1, extracted: "12", format: 1, answer: 1 },
      { reward: 1, extracted: "\\frac{3}{4}", format: 1, answer: 1 },
      { reward: 0, extracted: null, format: 0, answer: 0 },
      { reward: 0, extracted: "7", format: 1, answer: 0 },
    ]);
  }, 90_000);

  it("a bad line exits 2 with the error on stderr before printing anything", () => {
    const file = path.join(dir, "bad.jsonl");
    fs.writeFileSync(file, [JSON.stringify({ response: "####1", label: "1" }), "", "{not json"].join("\n"));
    const r = run([file]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(new RegExp(`^verify: ${file}:3: not valid JSON .*\\n$`));
  }, 90_000);
});

describe('answerFormat "boxed": natural-language LaTeX answers of real models', () => {
  const boxed = { answerFormat: "boxed" } as const;
  // {response, label, reward, extracted}: extraction is the last \boxed{} only
  const rows: Row[] = [
    row("So $V = \\boxed{12.8}$ miles per hour.", "12.8", 1, "12.8"),
    row("\\boxed{12.80}", "12.8", 1, "12.80"),
    row("\\boxed{12.8 \\text{ mph}}", "12.8", 1, "12.8 \\text{ mph}"),
    row("\\boxed{12.8\\text{ miles per hour}}", "12.8", 1, "12.8\\text{ miles per hour}"),
    row("\\boxed{12.8\\,\\mbox{mph}.}", "12.8", 1, "12.8\\,\\mbox{mph}."),
    row("\\boxed{\\frac{64}{5}}", "12.8", 1, "\\frac{64}{5}"),
    row("\\boxed{\\dfrac{64}{5}}", "12.8", 1, "\\dfrac{64}{5}"),
    row("\\boxed{12.9}", "12.8", 0, "12.9"),
    row("\\boxed{30^\\circ}", "30", 1, "30^\\circ"),
    row("\\boxed{30^{\\circ}}", "30", 1, "30^{\\circ}"),
    row("\\boxed{30°}", "30^\\circ", 1, "30°"),
    row("\\boxed{50\\%}", "50", 1, "50\\%"),
    row("\\boxed{\\$12.50}", "12.5", 1, "\\$12.50"),
    row("\\boxed{1,000}", "1000", 1, "1,000"),
    row("\\boxed{2\\sqrt{3}}", "\\sqrt{12}", 1, "2\\sqrt{3}"),
    row("\\boxed{\\frac{\\sqrt3}{2}}", "\\frac{\\sqrt{3}}{2}", 1, "\\frac{\\sqrt3}{2}"),
    row("\\boxed{\\text{(C)}}", "\\text{(C)}", 1, "\\text{(C)}"), // a choice is not a unit
    row("\\boxed{\\text{mph}}", "12.8", 0, "\\text{mph}"), // nothing left before the unit: not dropped
    row("\\boxed{12.8 mph}", "12.8", 0, "12.8 mph"), // bare words are variables, not units
    row("\\boxed{12.8} and then #### 5", "12.8", 1, "12.8"), // #### is ordinary text here
    row("#### 12.8", "12.8", 0, null), // the organism's marker is no answer in this format
    row("\\boxed{5} then \\boxed{12.8", "12.8", 0, null), // truncated last box
    row("\\boxed{}", "12.8", 0, null),
  ];
  it.each(rows.map((r) => [show(r.response), show(r.label), r] as const))("%s vs %s", (_a, _b, r) => {
    const res = reward(r.response, r.label, boxed);
    expect(res.extracted).toBe(r.extracted);
    expect(res.reward).toBe(r.reward);
    expect(res.parts).toEqual({ format: r.extracted === null ? 0 : 1, answer: r.reward });
  });

  it("the default (marker) format is unchanged by these rules", () => {
    check(row("\\boxed{12.8 \\text{ mph}}", "12.8", 0, "12.8 \\text{ mph}"));
    check(row("\\boxed{30^\\circ}", "30", 0, "30^\\circ"));
    check(row("\\boxed{12.8} and then #### 5", "12.8", 0, "5"));
    expect(reward("\\boxed{12.8}", "12.8", { answerFormat: "marker" })).toEqual(reward("\\boxed{12.8}", "12.8"));
  });

  it("labels are read the same way", () => {
    expect(isValidLabel("12.8\\text{ mph}", boxed)).toBe(true);
    expect(isValidLabel("12.8\\text{ mph}")).toBe(false);
    expect(isEquivalent("12.8", "64/5", boxed)).toBe(true);
    expect(isEquivalent("x".repeat(MAX_ANSWER_LENGTH + 1), "1", boxed)).toBe(false);
  });
});
