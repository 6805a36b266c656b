// Minimal command-line parser: `--flag value`, `--flag=value`, boolean `--flag`, positionals.
// Unknown flags are errors that name the nearest known flag.
import { nearest } from "../engine/nearest.js";

export interface FlagSpec {
  [name: string]: "string" | "boolean" | "multi";
}

export interface ParsedArgs {
  positional: string[];
  flags: Record<string, string | boolean | string[]>;
}

/**
 * Parses argv against `spec`. `--help` / `-h` print `usage` (or one generated from the spec) and exit 0,
 * for every command.
 */
export function parseArgs(argv: string[], spec: FlagSpec, command: string, usage?: string): ParsedArgs {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(
      usage ??
        `usage: npm run ${command} -- ${Object.keys(spec)
          .map((k) => (spec[k] === "boolean" ? `[--${k}]` : `[--${k} X]`))
          .join(" ")}`,
    );
    process.exit(0);
  }
  const positional: string[] = [];
  const flags: ParsedArgs["flags"] = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) {
      positional.push(a);
      continue;
    }
    let name = a.slice(2);
    let value: string | undefined;
    const eq = name.indexOf("=");
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const kind = spec[name];
    if (!kind) {
      const near = nearest(name, Object.keys(spec));
      throw new Error(
        `${command}: unknown option --${name}${near ? ` — did you mean --${near}?` : ""} (options: ${Object.keys(spec)
          .map((k) => `--${k}`)
          .join(" ")})`,
      );
    }
    if (kind === "boolean") {
      flags[name] = value === undefined ? true : value !== "false";
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new Error(`${command}: option --${name} needs a value`);
    }
    if (kind === "multi") flags[name] = [...((flags[name] as string[]) ?? []), value];
    else flags[name] = value;
  }
  return { positional, flags };
}

export function numberFlag(
  flags: ParsedArgs["flags"],
  name: string,
  fallback: number,
  opts: { integer?: boolean; min?: number; max?: number } = {},
): number {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (
    !Number.isFinite(v) ||
    (opts.integer && !Number.isInteger(v)) ||
    (opts.min !== undefined && v < opts.min) ||
    (opts.max !== undefined && v > opts.max)
  ) {
    const want = `${opts.integer ? "an integer" : "a number"}${opts.min !== undefined ? ` >= ${opts.min}` : ""}${opts.max !== undefined ? ` <= ${opts.max}` : ""}`;
    throw new Error(`--${name}: expected ${want}, got ${JSON.stringify(raw)}`);
  }
  return v;
}

/** Runs a CLI main, printing errors without a stack trace and exiting non-zero. */
export function runMain(main: () => Promise<void>): void {
  main().catch((e) => {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    if (process.env.DEBUG) process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  });
}
