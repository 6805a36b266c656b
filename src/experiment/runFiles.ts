// The files of one run directory, <out>/<name>/seed-<seed>/: metrics.csv (one row per step, columns
// from metrics.ts), samples.jsonl (example completions), config.resolved.json, summary.json and
// timing.json. Appends only; on resume both logs are cut back to what the saved state covers.
import fs from "node:fs";
import path from "node:path";
import { writeAtomic } from "../model/checkpoint.js";
import { CsvFormatter } from "./metrics.js";

export function runDir(outDir: string, name: string, seed: number): string {
  return path.join(outDir, name, `seed-${seed}`);
}

export class RunFiles {
  readonly metricsFile: string;
  readonly samplesFile: string;
  private readonly csv: CsvFormatter;

  constructor(
    readonly dir: string,
    columns: string[],
  ) {
    fs.mkdirSync(dir, { recursive: true });
    this.metricsFile = path.join(dir, "metrics.csv");
    this.samplesFile = path.join(dir, "samples.jsonl");
    this.csv = new CsvFormatter(columns);
  }

  /** A fresh run: the resolved config, the CSV header, an empty samples log. */
  start(resolvedConfig: object): void {
    this.writeJson("config.resolved.json", resolvedConfig);
    fs.writeFileSync(this.metricsFile, this.csv.header());
    fs.writeFileSync(this.samplesFile, "");
  }

  /** A resumed run: drops anything written after the saved state (including a row cut by a kill). */
  truncate(bytes: { metricsBytes: number; samplesBytes: number }): void {
    truncateTo(this.metricsFile, bytes.metricsBytes);
    truncateTo(this.samplesFile, bytes.samplesBytes);
  }

  sizes(): { metricsBytes: number; samplesBytes: number } {
    return { metricsBytes: fs.statSync(this.metricsFile).size, samplesBytes: fs.statSync(this.samplesFile).size };
  }

  appendRow(row: Record<string, string>): void {
    fs.appendFileSync(this.metricsFile, this.csv.rows([row]));
  }

  appendSamples(records: object[]): void {
    if (records.length) fs.appendFileSync(this.samplesFile, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
  }

  writeJson(name: string, value: object): void {
    writeAtomic(path.join(this.dir, name), JSON.stringify(value, null, 2) + "\n");
  }
}

function truncateTo(file: string, bytes: number): void {
  const fd = fs.openSync(file, "r+");
  fs.ftruncateSync(fd, bytes);
  fs.closeSync(fd);
}
