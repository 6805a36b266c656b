// The folders of src/ form layers that only point down: a file may import from its own folder or
// from a folder of a lower layer, never upwards and never sideways into another folder of its own
// layer. The test parses every import (static and dynamic) of every .ts file under src/.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

/** top to bottom; folders in one inner list share a layer and may not import each other */
export const LAYERS: string[][] = [
  ["cli"],
  ["sweep"],
  ["experiment"],
  ["rl", "analysis"],
  ["eval"],
  ["task"],
  ["model"],
  ["kernels", "text", "reward", "world", "datasets"],
  ["engine"],
  ["native"], // C sources of the native addon (no TypeScript), loaded by engine/native.ts
];

const SRC = path.resolve("src");
const rank = new Map(LAYERS.flatMap((folders, i) => folders.map((f) => [f, i] as const)));

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? tsFiles(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** relative import specifiers of a source text */
export function importsOf(text: string): string[] {
  const out: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["'](\.{1,2}\/[^"']+)["']/g;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push(m[1]);
  return out;
}

const folderOf = (file: string) => path.relative(SRC, file).split(path.sep)[0];

describe("layers", () => {
  it("parses static, type-only, side-effect and dynamic imports", () => {
    const text = `import a from "../x/a.js";\nimport type { B } from "./b.js";\nimport "../y/c.js";\nconst d = await import("../z/d.js");\nimport fs from "node:fs";`;
    expect(importsOf(text)).toEqual(["../x/a.js", "./b.js", "../y/c.js", "../z/d.js"]);
  });

  it("every folder of src/ has a layer", () => {
    const folders = fs
      .readdirSync(SRC, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
    expect(folders.filter((f) => !rank.has(f))).toEqual([]);
  });

  it("no import points up or sideways", () => {
    const bad: string[] = [];
    for (const file of tsFiles(SRC)) {
      const from = folderOf(file);
      for (const spec of importsOf(fs.readFileSync(file, "utf8"))) {
        const target = path.resolve(path.dirname(file), spec);
        if (!target.startsWith(SRC + path.sep)) {
          bad.push(`${path.relative(".", file)} imports ${spec} (outside src/)`);
          continue;
        }
        const to = folderOf(target);
        if (to === from) continue;
        if (!(rank.get(to)! > rank.get(from)!))
          bad.push(`${path.relative(".", file)} (${from}) imports ${spec} (${to})`);
      }
    }
    expect(bad).toEqual([]);
  });
});
