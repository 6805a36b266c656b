import { describe, expect, it } from "vitest";
import { loadTokenizer, BOS_ID, EOS_ID } from "../src/text/tokenizer.js";

const tok = loadTokenizer("data/tokenizer");

describe("tokenizer (Hugging Face tokenizer.json, one character per token)", () => {
  const table: { text: string; ids?: number[]; decoded: string }[] = [
    { text: "12", ids: [5, 6], decoded: "12" },
    { text: "37*4?", decoded: "37*4?" },
    { text: "30*4=120;7*4=28;120+28=148;####148", decoded: "30*4=120;7*4=28;120+28=148;####148" },
    // spaces are tokens of their own and must survive the round trip (not be merged or dropped)
    { text: "3 boxes of 12 eat 5", decoded: "3 boxes of 12 eat 5" },
    { text: "a  b", decoded: "a  b" },
    { text: "\\boxed{3/4}", decoded: "\\boxed{3/4}" },
  ];
  for (const row of table) {
    it(`round-trips ${JSON.stringify(row.text)}`, () => {
      const ids = tok.encode(row.text);
      if (row.ids) expect(ids).toEqual(row.ids);
      expect(ids.length).toBe([...row.text].length); // one digit (character) per token
      expect(tok.decode(ids)).toBe(row.decoded);
      expect(tok.decodeHf(ids)).toBe(row.decoded);
    });
  }

  it("drops special tokens when decoding", () => {
    expect(tok.decode([BOS_ID, ...tok.encode("42"), EOS_ID])).toBe("42");
  });

  it("rejects characters outside the vocabulary, naming them", () => {
    expect(() => tok.encode("12×3")).toThrow(/"×"/);
    expect(() => tok.encode("Hello")).toThrow(/"H"/);
    expect(tok.unknownChars("x^2 + Y€")).toEqual(["Y", "€"]);
  });
});
