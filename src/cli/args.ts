// Minimal command-line parser: `--flag value`, `--flag=value`, boolean `--flag`, positionals.
// Unknown flags are errors that name the nearest known flag.
export interface FlagSpec {
  [name: string]: "string" | "boolean" | "multi";
}

export interface ParsedArgs {
  positional: string[];
  flags: Record<string, string | boolean | string[]>;
}

export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  return d[a.length][b.length];
}

export function nearest(name: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  const norm = (x: string) => x.toLowerCase().replace(/[_-]/g, "");
  for (const c of candidates) {
    const dd = Math.min(editDistance(name, c), editDistance(norm(name), norm(c)));
    if (dd < bestD) {
      bestD = dd;
      best = c;
    }
  }
  return best !== null && bestD <= Math.max(2, Math.floor(name.length / 2)) ? best : null;
}

export function parseArgs(argv: string[], spec: FlagSpec, command: string): ParsedArgs {
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
