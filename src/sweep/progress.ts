// Overall progress of a sweep: how many runs are done, running, failed and waiting, and an ETA from the
// work finished so far. A running run counts as the fraction of its steps done, so the estimate moves
// before the first run ends. Runs that were already complete when the sweep started are not work.
// Pure: the caller passes the clock.

export interface ProgressCounts {
  total: number;
  done: number;
  failed: number;
  running: number;
  waiting: number;
}

export class Progress {
  private readonly fractions = new Map<string, number>();
  private finished = 0;
  private skipped = 0;
  private failedN = 0;
  private doneN = 0;

  constructor(
    readonly total: number,
    readonly startedAt: number,
  ) {}

  /** a run that was complete before this sweep started */
  skip(): void {
    this.skipped++;
    this.doneN++;
  }
  start(key: string): void {
    this.fractions.set(key, 0);
  }
  step(key: string, step: number, steps: number): void {
    if (this.fractions.has(key) && steps > 0) this.fractions.set(key, Math.min(1, step / steps));
  }
  /** a run that left the running set without finishing (stopped, or handed back to a queue) */
  release(key: string): void {
    this.fractions.delete(key);
  }
  done(key: string): void {
    this.fractions.delete(key);
    this.finished++;
    this.doneN++;
  }
  fail(key: string): void {
    this.fractions.delete(key);
    this.finished++;
    this.failedN++;
  }

  counts(): ProgressCounts {
    const running = this.fractions.size;
    return {
      total: this.total,
      done: this.doneN,
      failed: this.failedN,
      running,
      waiting: this.total - this.doneN - this.failedN - running,
    };
  }

  /** seconds left, or null until some work is measured */
  eta(now: number): number | null {
    return estimateSeconds(
      (now - this.startedAt) / 1000,
      this.finished + [...this.fractions.values()].reduce((a, b) => a + b, 0),
      this.total - this.skipped,
    );
  }

  line(now: number): string {
    const c = this.counts();
    const e = this.eta(now);
    const parts = [`${c.done}/${c.total} done`, `${c.running} running`, `${c.failed} failed`];
    if (c.waiting > 0) parts.push(`${c.waiting} waiting`);
    if (c.running + c.waiting > 0) parts.push(`ETA ${e === null ? "?" : formatSeconds(e)}`);
    return parts.join(" · ");
  }
}

/** Time left at the rate so far: elapsed × (work − workDone) / workDone; null before any work is done. */
export function estimateSeconds(elapsed: number, workDone: number, work: number): number | null {
  if (workDone <= 0 || elapsed <= 0) return null;
  return Math.max(0, (elapsed * (work - workDone)) / workDone);
}

export function formatSeconds(s: number): string {
  const r = Math.round(s);
  if (r < 60) return `${r}s`;
  if (r < 3600) return `${Math.floor(r / 60)}m${String(r % 60).padStart(2, "0")}s`;
  return `${Math.floor(r / 3600)}h${String(Math.floor((r % 3600) / 60)).padStart(2, "0")}m`;
}
