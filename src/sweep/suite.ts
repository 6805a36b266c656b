// The findings suite: one file per finding under experiments/suite/, each a base experiment file,
// arms (named variants of it: fields set by dotted path, another training example or several) and
// the claims that decide whether the finding reproduces. Arms expand into sweep runs (one per
// seed) that the sweep runner (./local.ts) runs; an arm may instead name another finding's arm
// (`from`), whose runs it shares, so that the default experiment is trained once for every
// finding that compares against it. The analysis of the results is src/analysis/findings.ts.
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { ConfigError, ExampleSchema, validateExperiment } from "../experiment/schema.js";
import { nearest } from "../engine/nearest.js";
import { CLAIM_EXPECT, parseValueRef, PLOT_KINDS, TABLE_KINDS } from "../analysis/findings.js";
import { runId, type SweepRun } from "./expand.js";
import { gridKeyProblem } from "./schema.js";

const NAME_RE = /^[A-Za-z0-9._-]+$/;
export const DEFAULT_RANKING = "data/pool/ranking.json";
/** the reference checkpoint of pass@k curves */
export const BASE_ARM = "base";

const SuiteExampleSchema = z.union([
  ExampleSchema,
  z.string().min(1).describe("an example file {prompt, answer}, e.g. data/examples/default.json"),
  z
    .object({ rank: z.number().int().positive().describe("rank in the historical-variance ranking (1 = top)") })
    .strict(),
]);

export const ArmSchema = z
  .object({
    label: z
      .string()
      .regex(NAME_RE, "use letters, digits, '.', '_' or '-'")
      .describe("the arm's name in tables, claims and run names (<finding>-<label>)"),
    description: z.string().optional().describe("what the arm changes, in words"),
    from: z
      .string()
      .regex(/^[A-Za-z0-9._-]+\/[A-Za-z0-9._-]+$/)
      .optional()
      .describe("<finding>/<label>: use that finding's arm (its runs) instead of defining one here"),
    set: z
      .record(z.string(), z.unknown())
      .default({})
      .describe('experiment fields by dotted path → value, e.g. {"grpo.loss.pgCoef": 0}'),
    example: SuiteExampleSchema.optional().describe(
      "the single training example: {prompt, answer}, an example file, or {rank: N} from the ranking",
    ),
    examples: z
      .union([z.array(SuiteExampleSchema).min(1), z.string().min(1)])
      .optional()
      .describe("several training examples: a list (as `example`), or a JSONL file such as data/pool/pool.jsonl"),
    paper: z
      .union([z.number(), z.string()])
      .optional()
      .describe("the paper's number (or words) for this arm, shown beside ours"),
  })
  .strict();

export const ClaimSchema = z
  .object({
    text: z.string().min(1).describe("the paper's statement this claim tests, in words"),
    a: z.string().min(1).describe("<arm>:<metric>, see docs/suite.md"),
    b: z
      .union([z.string().min(1), z.number()])
      .describe("<arm>:<metric>, or a number; the claim is about a − b paired by seed"),
    expect: z.enum(CLAIM_EXPECT).describe('">" or "<": the sign of a − b in the paper; "≈": no difference'),
    paper: z.string().optional().describe("the paper's numbers for a and b"),
  })
  .strict();

export const ColumnSchema = z
  .object({
    metric: z.string().min(1).describe("a metric as in claims, without the arm"),
    header: z.string().min(1),
  })
  .strict();

export const FindingSchema = z
  .object({
    $schema: z.string().optional(),
    name: z.string().regex(NAME_RE).describe("the file's name without .json"),
    title: z.string().min(1),
    question: z.string().min(1).describe("what the finding asks, in one sentence"),
    paper: z
      .object({
        source: z.string().min(1).describe("where in the paper"),
        direction: z.string().min(1).describe("what the paper found, with its numbers"),
      })
      .strict(),
    notes: z.string().optional().describe("how the arms are chosen here and why"),
    base: z.string().min(1).describe("the experiment file every arm starts from"),
    seeds: z.array(z.number().int().min(0)).min(3).describe("at least three seeds"),
    set: z.record(z.string(), z.unknown()).default({}).describe("fields set in every arm of this file"),
    arms: z.array(ArmSchema).min(1),
    claims: z.array(ClaimSchema).min(1),
    table: z.enum(TABLE_KINDS).default("arms").describe("arms: one row per arm; transfer: gains per benchmark"),
    columns: z.array(ColumnSchema).default([]).describe("the arms table's columns (default: start, final, gain)"),
    plot: z.enum(PLOT_KINDS).default("training"),
    passk: z
      .object({
        n: z.number().int().positive().default(256),
        limit: z.number().int().min(0).default(50).describe("problems per benchmark (0 = all)"),
        temperature: z.number().positive().default(0.6),
        seed: z.number().int().default(12345).describe("the sampling seed (the same for every checkpoint)"),
        arms: z.array(z.string()).min(1).describe("arms whose final checkpoints get curves (besides the base)"),
      })
      .strict()
      .optional(),
  })
  .strict();

export type Finding = z.output<typeof FindingSchema>;
export type Arm = z.output<typeof ArmSchema>;
export type PasskSpec = NonNullable<Finding["passk"]>;

function issues(e: z.ZodError, raw: unknown): string[] {
  return e.issues.map((iss) => {
    const field = iss.path.map(String).join(".") || "(top level)";
    if (iss.code === "unrecognized_keys") {
      const keys = iss.path.length === 0 ? Object.keys(FindingSchema.shape) : [];
      return iss.keys
        .map((k) => {
          const near = nearest(k, keys);
          return `\`${field === "(top level)" ? k : `${field}.${k}`}\`: unknown key${near ? ` — did you mean \`${near}\`?` : ""}`;
        })
        .join("\n  ");
    }
    let value: any = raw;
    for (const k of iss.path) value = value?.[k as any];
    return `field \`${field}\`: ${iss.message}; got ${value === undefined ? "nothing" : JSON.stringify(value)}`;
  });
}

/** Parses one finding file; checks what can be checked without the others (see checkSuite). */
export function parseFinding(text: string, file: string): Finding {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${file}: malformed JSON: ${(e as Error).message}`);
  }
  const r = FindingSchema.safeParse(raw);
  if (!r.success) throw new ConfigError(`${file}: invalid finding:\n  ${issues(r.error, raw).join("\n  ")}`);
  const f = r.data;
  const problems: string[] = [];
  const stem = path.basename(file).replace(/\.json$/, "");
  if (f.name !== stem) problems.push(`field \`name\`: ${JSON.stringify(f.name)} should be the file's name, "${stem}"`);
  const labels = f.arms.map((a) => a.label);
  const dup = labels.find((l, i) => labels.indexOf(l) !== i);
  if (dup) problems.push(`field \`arms\`: two arms are labelled ${JSON.stringify(dup)}`);
  if (labels.includes(BASE_ARM))
    problems.push(`field \`arms\`: "${BASE_ARM}" is reserved for the base checkpoint of pass@k curves`);
  f.arms.forEach((a, i) => {
    const where = `arms.${i} (${a.label})`;
    if (a.from && (Object.keys(a.set).length || a.example !== undefined || a.examples !== undefined))
      problems.push(`\`${where}\`: an arm with \`from\` uses that arm as it is; drop set/example/examples`);
    if (a.example !== undefined && a.examples !== undefined)
      problems.push(`\`${where}\`: give \`example\` or \`examples\`, not both`);
    for (const k of Object.keys(a.set)) {
      const p = gridKeyProblem(k);
      if (p) problems.push(`\`${where}.set\`: ${p.replace(/^grid key/, "key")}`);
    }
  });
  for (const k of Object.keys(f.set)) {
    const p = gridKeyProblem(k);
    if (p) problems.push(`\`set\`: ${p.replace(/^grid key/, "key")}`);
  }
  const known = [...labels, ...(f.passk ? [BASE_ARM] : [])];
  f.claims.forEach((c, i) => {
    for (const side of ["a", "b"] as const) {
      const v = c[side];
      if (typeof v === "number") continue;
      try {
        const ref = parseValueRef(v);
        if (!known.includes(ref.arm))
          problems.push(
            `\`claims.${i}.${side}\`: unknown arm ${JSON.stringify(ref.arm)}${nearest(ref.arm, known) ? ` — did you mean "${nearest(ref.arm, known)}"?` : ""} (arms: ${known.join(", ")})`,
          );
      } catch (e) {
        problems.push(`\`claims.${i}.${side}\`: ${(e as Error).message}`);
      }
    }
  });
  for (const c of [...f.columns.map((c) => c.metric)]) {
    try {
      parseValueRef(`x:${c}`);
    } catch (e) {
      problems.push(`\`columns\`: ${(e as Error).message}`);
    }
  }
  for (const a of f.passk?.arms ?? [])
    if (!labels.includes(a)) problems.push(`\`passk.arms\`: unknown arm ${JSON.stringify(a)}`);
  if (problems.length) throw new ConfigError(`${file}: invalid finding:\n  ${problems.join("\n  ")}`);
  return f;
}

/** Checks references between findings (`from`): the finding and its arm exist and are defined there. */
export function checkSuite(findings: Finding[], dir: string): void {
  const byName = new Map(findings.map((f) => [f.name, f]));
  const problems: string[] = [];
  for (const f of findings)
    f.arms.forEach((a, i) => {
      if (!a.from) return;
      const [fn, label] = a.from.split("/");
      const target = byName.get(fn);
      const arm = target?.arms.find((x) => x.label === label);
      if (!target) problems.push(`${f.name}.json: arms.${i}.from: no finding ${JSON.stringify(fn)} in ${dir}`);
      else if (!arm) problems.push(`${f.name}.json: arms.${i}.from: ${fn} has no arm ${JSON.stringify(label)}`);
      else if (arm.from)
        problems.push(`${f.name}.json: arms.${i}.from: ${a.from} itself comes from ${arm.from}; point at that`);
      else if (JSON.stringify(target.seeds) !== JSON.stringify(f.seeds))
        problems.push(
          `${f.name}.json: arms.${i}.from: ${a.from} runs seeds ${target.seeds.join(",")}, this finding ${f.seeds.join(",")}; use the same seeds`,
        );
    });
  if (problems.length) throw new ConfigError(`invalid suite:\n  ${problems.join("\n  ")}`);
}

/** Reads every finding file of a directory, sorted by name. */
export function loadSuite(dir: string): Finding[] {
  if (!fs.existsSync(dir)) throw new ConfigError(`${dir}: no such directory (the suite's finding files live there)`);
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".json") && !f.endsWith(".schema.json"))
    .sort();
  const findings = files.map((f) => parseFinding(fs.readFileSync(path.join(dir, f), "utf8"), path.join(dir, f)));
  checkSuite(findings, dir);
  return findings;
}

/** The arm's run name: <finding>-<label> of the finding that defines it. */
export function armRunName(f: Finding, arm: Arm): string {
  return arm.from ? arm.from.replace("/", "-") : `${f.name}-${arm.label}`;
}

/** The finding and arm that define an arm (itself, or the target of `from`). */
export function definingArm(findings: Finding[], f: Finding, arm: Arm): { finding: Finding; arm: Arm } {
  if (!arm.from) return { finding: f, arm };
  const [fn, label] = arm.from.split("/");
  const finding = findings.find((x) => x.name === fn);
  const target = finding?.arms.find((x) => x.label === label);
  if (!finding || !target) throw new ConfigError(`${f.name}: arm ${arm.label}: ${arm.from} not found`);
  return { finding, arm: target };
}

export interface RankedExample {
  rank: number;
  prompt: string;
  answer: string;
  family?: string;
  id?: string;
}

export function readRanking(file = DEFAULT_RANKING): RankedExample[] {
  if (!fs.existsSync(file))
    throw new ConfigError(`${file}: not found; \`npm run select\` writes the ranking that {rank: N} examples refer to`);
  const raw = JSON.parse(fs.readFileSync(file, "utf8"));
  if (!Array.isArray(raw?.ranking)) throw new ConfigError(`${file}: no "ranking" list`);
  return raw.ranking as RankedExample[];
}

type SuiteExample = z.output<typeof SuiteExampleSchema>;

function resolveOne(
  e: SuiteExample,
  where: string,
  ranking: () => RankedExample[],
): { prompt: string; answer: string } {
  if (typeof e === "string") {
    if (!fs.existsSync(e)) throw new ConfigError(`${where}: example file ${JSON.stringify(e)} not found`);
    const r = ExampleSchema.safeParse(JSON.parse(fs.readFileSync(e, "utf8")));
    if (!r.success) throw new ConfigError(`${e} (${where}): an example file is {"prompt", "answer"}`);
    return r.data;
  }
  if ("rank" in e) {
    const list = ranking();
    const hit = list.find((x) => x.rank === e.rank);
    if (!hit) throw new ConfigError(`${where}: rank ${e.rank} is not in the ranking (ranks 1–${list.length})`);
    return { prompt: hit.prompt, answer: hit.answer };
  }
  return { prompt: e.prompt, answer: e.answer };
}

function readJsonl(file: string, where: string): { prompt: string; answer: string }[] {
  if (!fs.existsSync(file)) throw new ConfigError(`${where}: file ${JSON.stringify(file)} not found`);
  return fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim())
    .map((l, i) => {
      const r = JSON.parse(l);
      if (typeof r?.prompt !== "string" || typeof r?.answer !== "string")
        throw new ConfigError(`${file}: line ${i + 1}: needs string fields "prompt" and "answer" (${where})`);
      return { prompt: r.prompt, answer: r.answer };
    });
}

function setPath(obj: Record<string, any>, dotted: string, value: unknown): void {
  const keys = dotted.split(".");
  let cur = obj;
  for (const k of keys.slice(0, -1)) {
    if (cur[k] === null || typeof cur[k] !== "object" || Array.isArray(cur[k])) cur[k] = {};
    cur = cur[k];
  }
  cur[keys[keys.length - 1]] = structuredClone(value);
}

/**
 * The runs of one arm defined in `f` (not a `from` arm): the base file with the finding's and the
 * arm's settings, the training data inline (so that a run's identity covers it), one run per seed.
 */
export function expandArm(f: Finding, arm: Arm, rankingFile = DEFAULT_RANKING): SweepRun[] {
  if (arm.from) throw new Error(`expandArm: ${f.name}/${arm.label} comes from ${arm.from}`);
  const where = `experiments/suite/${f.name}.json: arm ${arm.label}`;
  if (!fs.existsSync(f.base))
    throw new ConfigError(`${where}: base experiment file ${JSON.stringify(f.base)} not found`);
  const raw: Record<string, any> = JSON.parse(fs.readFileSync(f.base, "utf8"));
  delete raw.$schema;
  for (const [k, v] of Object.entries(f.set)) setPath(raw, k, v);
  for (const [k, v] of Object.entries(arm.set)) setPath(raw, k, v);
  let cache: RankedExample[] | null = null;
  const ranking = () => (cache ??= readRanking(rankingFile));
  if (arm.example !== undefined) {
    delete raw.examples;
    raw.example = resolveOne(arm.example, where, ranking);
  } else if (arm.examples !== undefined) {
    delete raw.example;
    raw.examples =
      typeof arm.examples === "string"
        ? readJsonl(arm.examples, where)
        : arm.examples.map((e, i) => resolveOne(e, `${where}, examples.${i}`, ranking));
  } else if (typeof raw.example === "string") raw.example = resolveOne(raw.example, `${f.base}: example`, ranking);
  const name = armRunName(f, arm);
  return f.seeds.map((seed) => {
    const config = validateExperiment(
      {
        ...raw,
        name,
        seeds: [seed],
        description: `${f.title}: arm ${arm.label}${arm.description ? ` (${arm.description})` : ""}; seed ${seed} (experiments/suite/${f.name}.json)`,
      },
      where,
    );
    return {
      id: runId(config),
      name,
      seed,
      example: arm.label,
      values: { ...f.set, ...arm.set },
      config,
    };
  });
}

/**
 * Every run the given findings need (their own arms and the arms they take from others), once each:
 * first the arms that most findings use (so that an interrupted suite has finished the runs that
 * count most), then in file order.
 */
export function suiteRuns(all: Finding[], selected: Finding[], rankingFile = DEFAULT_RANKING): SweepRun[] {
  const arms: { key: string; finding: Finding; arm: Arm; order: number }[] = [];
  for (const f of selected)
    for (const a of f.arms) {
      const d = definingArm(all, f, a);
      const key = `${d.finding.name}/${d.arm.label}`;
      if (!arms.some((x) => x.key === key)) arms.push({ key, ...d, order: arms.length });
    }
  const uses = (key: string) =>
    all.filter((f) => f.arms.some((a) => a.from === key || `${f.name}/${a.label}` === key)).length;
  arms.sort((x, y) => uses(y.key) - uses(x.key) || x.order - y.order);
  return arms.flatMap((x) => expandArm(x.finding, x.arm, rankingFile));
}

/** Checkpoint directories a finding's runs start from that are not on disk (the finding is skipped). */
export function missingCheckpoints(all: Finding[], f: Finding): string[] {
  const dirs = new Set<string>();
  for (const a of f.arms) {
    const d = definingArm(all, f, a);
    const base = JSON.parse(fs.readFileSync(d.finding.base, "utf8"));
    const ck = (d.arm.set.checkpoint ?? d.finding.set.checkpoint ?? base.checkpoint ?? "data/models/base") as string;
    dirs.add(ck);
  }
  return [...dirs].filter((d) => !fs.existsSync(path.join(d, "config.json")));
}

/** The JSON Schema of finding files, for editor completion. */
export function findingJsonSchema(): object {
  return z.toJSONSchema(FindingSchema, { io: "input", unrepresentable: "any" });
}
