// The machine's CPU time by kind, from Linux's /proc/stat, for the benchmarks: above all "steal",
// the time a virtual machine's vCPUs were ready to run but the hypervisor ran something else (other
// tenants of the host). Stolen time slows threaded code more than single-threaded code (a threaded
// call waits for its slowest thread), so the bench reports it next to its thread ratios.
import fs from "node:fs";

/** Clock ticks (USER_HZ, usually 100 per second) summed over all CPUs since boot. */
export interface CpuTimes {
  /** every kind: user, nice, system, idle, iowait, irq, softirq, steal */
  total: number;
  idle: number;
  steal: number;
}

/** The aggregate `cpu` line of /proc/stat's text; null if there is none or it is malformed. */
export function parseProcStat(text: string): CpuTimes | null {
  const line = text.split("\n").find((l) => /^cpu\s/.test(l));
  if (!line) return null;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal [guest guest_nice: already counted in user/nice]
  if (f.length < 8 || f.slice(0, 8).some((x) => !Number.isFinite(x) || x < 0)) return null;
  return { total: f.slice(0, 8).reduce((a, b) => a + b, 0), idle: f[3] + f[4], steal: f[7] };
}

/** The current times, or null where /proc/stat cannot be read (not Linux). */
export function readCpuTimes(): CpuTimes | null {
  try {
    return parseProcStat(fs.readFileSync("/proc/stat", "utf8"));
  } catch {
    return null;
  }
}

/** What happened between two readings: ticks elapsed over all CPUs, and how many were stolen. */
export function cpuDelta(before: CpuTimes | null, after: CpuTimes | null): { ticks: number; steal: number } | null {
  if (!before || !after) return null;
  return { ticks: after.total - before.total, steal: after.steal - before.steal };
}

/** Stolen share of the ticks in a list of intervals (null where any reading is missing or no tick passed). */
export function stealShare(deltas: ({ ticks: number; steal: number } | null)[]): number | null {
  if (deltas.length === 0 || deltas.some((d) => d === null)) return null;
  const ticks = deltas.reduce((a, d) => a + d!.ticks, 0);
  return ticks > 0 ? deltas.reduce((a, d) => a + d!.steal, 0) / ticks : null;
}
