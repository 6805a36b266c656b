// Expands a sweep into runs: every example × every combination of grid values × every seed, each a
// complete experiment config (defaults filled in, the example inline, exactly one seed) with a name
// and an identity. The identity is a hash of that config, so two runs are the same run exactly when
// they would compute the same thing into the same place; a queue job's id is built from it.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { ConfigError, ExampleSchema, validateExperiment, type Experiment } from "../experiment/schema.js";
import { experimentFieldPaths, type Sweep } from "./schema.js";

export interface SweepRun {
  /** hash of the resolved config (seed included, description left out) */
  id: string;
  /** the experiment name: results go to <out>/<name>/seed-<seed>/ */
  name: string;
  seed: number;
  /** the example's label */
  example: string;
  /** this run's grid values, by dotted path */
  values: Record<string, unknown>;
  /** the resolved experiment, with seeds = [seed] and the example inline */
  config: Experiment;
}

export interface LabelledExample {
  label: string;
  prompt: string;
  answer: string;
}

/** A value as it appears in a run name: letters, digits, '.', '_' and '-' only. */
export function nameValue(v: unknown): string {
  const s = Array.isArray(v)
    ? v.map(nameValue).join("_")
    : typeof v === "string"
      ? v
      : typeof v === "object" && v !== null
        ? JSON.stringify(v)
        : String(v);
  return s.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^_+|_+$/g, "") || "_";
}

/** JSON with object keys sorted at every depth: equal values give equal text. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v !== null && typeof v === "object")
    return `{${Object.keys(v)
      .filter((k) => (v as any)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as any)[k])}`)
      .join(",")}}`;
  return JSON.stringify(v);
}

/** The run's identity: what it computes (every field but the description) and where it is named. */
export function runId(config: Experiment): string {
  const { description: _d, $schema: _s, ...rest } = config;
  return crypto.createHash("sha256").update(canonicalJson(rest)).digest("hex").slice(0, 16);
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

function getPath(obj: unknown, dotted: string): unknown {
  let cur: any = obj;
  for (const k of dotted.split(".")) cur = cur?.[k];
  return cur;
}

function readJson(file: string, what: string, fix: string): unknown {
  if (!fs.existsSync(file)) throw new ConfigError(`${what}: file ${JSON.stringify(file)} not found; ${fix}`);
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new ConfigError(`${file}: malformed JSON (${(e as Error).message})`);
  }
}

function loadExample(entry: unknown, where: string): LabelledExample {
  if (typeof entry === "string") {
    const raw = readJson(
      entry,
      where,
      'give a JSON file {"prompt", "answer"} like data/examples/default.json (paths are from the repository root), or an inline {"prompt", "answer"}',
    );
    const r = ExampleSchema.safeParse(raw);
    if (!r.success)
      throw new ConfigError(
        `${entry} (${where}): an example file is {"prompt": "...", "answer": "..."} with strings of 1–80 characters; got ${JSON.stringify(raw).slice(0, 120)}`,
      );
    return { label: nameValue(path.basename(entry).replace(/\.json$/, "")), ...r.data };
  }
  const e = entry as { label?: string; prompt: string; answer: string };
  return { label: e.label ?? nameValue(e.prompt), prompt: e.prompt, answer: e.answer };
}

function cartesian(axes: [string, unknown[]][]): Record<string, unknown>[] {
  let combos: Record<string, unknown>[] = [{}];
  for (const [key, values] of axes) combos = combos.flatMap((c) => values.map((v) => ({ ...c, [key]: v })));
  return combos;
}

/**
 * Expands a validated sweep (read from `file`) into its runs, in order: example, then grid values,
 * then seed. Reads the base experiment file and the example files; every problem is a ConfigError
 * naming the file, the field and the fix.
 */
export function expandSweep(sweep: Sweep, file: string): SweepRun[] {
  const baseRaw = readJson(
    sweep.base,
    `${file}: field \`base\``,
    "give an experiment file like experiments/smoke.json (paths are from the repository root)",
  ) as Record<string, unknown>;
  const base = validateExperiment(baseRaw, sweep.base);
  const examples = sweep.examples
    ? sweep.examples.map((e, i) => loadExample(e, `${file}: field \`examples.${i}\``))
    : [loadExample(base.example, `${sweep.base}: field \`example\``)];
  const labels = examples.map((e) => e.label);
  const dupLabel = labels.find((l, i) => labels.indexOf(l) !== i);
  if (dupLabel !== undefined)
    throw new ConfigError(
      `${file}: field \`examples\`: two examples are both labelled ${JSON.stringify(dupLabel)}; give one of them a distinct "label"`,
    );
  const seeds = sweep.seeds ?? base.seeds;
  const axes = Object.entries(sweep.grid);
  const template =
    sweep.runName ??
    [
      "{sweep}",
      ...(examples.length > 1 ? ["{example}"] : []),
      ...axes.filter(([, vs]) => vs.length > 1).map(([k]) => `${k.split(".").pop()}{${k}}`),
    ].join("-");
  const fields = experimentFieldPaths();
  for (const m of template.matchAll(/\{([^{}]*)\}/g)) {
    const key = m[1];
    if (key !== "sweep" && key !== "example" && !fields.includes(key))
      throw new ConfigError(
        `${file}: field \`runName\`: unknown placeholder {${key}}; use {sweep}, {example} or an experiment field such as ${axes.length ? axes.map(([k]) => `{${k}}`).join(", ") : "{steps}"}`,
      );
  }

  const runs: SweepRun[] = [];
  const byName = new Map<string, string>();
  for (const ex of examples) {
    for (const values of cartesian(axes)) {
      const raw: Record<string, any> = structuredClone(baseRaw);
      delete raw.$schema;
      for (const [k, v] of Object.entries(values)) setPath(raw, k, v);
      raw.example = { prompt: ex.prompt, answer: ex.answer };
      const point = [`example ${ex.label}`, ...Object.entries(values).map(([k, v]) => `${k} = ${JSON.stringify(v)}`)];
      raw.seeds = [seeds[0]];
      const checked = validateExperiment(raw, `${file} (grid point ${point.join(", ")})`);
      const name = template.replace(/\{([^{}]*)\}/g, (_, key: string) =>
        key === "sweep" ? sweep.name : key === "example" ? ex.label : nameValue(getPath(checked, key)),
      );
      if (!/^[A-Za-z0-9._-]+$/.test(name))
        throw new ConfigError(
          `${file}: field \`runName\`: ${JSON.stringify(template)} gives the name ${JSON.stringify(name)}; names use letters, digits, '.', '_' or '-'`,
        );
      const seen = byName.get(name);
      if (seen !== undefined)
        throw new ConfigError(
          `${file}: field \`runName\`: the grid points (${seen}) and (${point.join(", ")}) are both named ${JSON.stringify(name)}; add the axis that tells them apart to runName, e.g. "${template}-{${axes.find(([, vs]) => vs.length > 1)?.[0] ?? "example"}}"`,
        );
      byName.set(name, point.join(", "));
      for (const seed of seeds) {
        const config = validateExperiment(
          {
            ...raw,
            name,
            seeds: [seed],
            description: `run ${name}, seed ${seed}, of the sweep ${sweep.name} (${file})`,
          },
          `${file} (run ${name})`,
        );
        runs.push({ id: runId(config), name, seed, example: ex.label, values, config });
      }
    }
  }
  return runs;
}
