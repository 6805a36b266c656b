// One run at a time per run directory: an exclusive lock file, created with O_EXCL, holding the host,
// the pid of the process that runs the run and the pid of its experiment child. A lock is stale when
// it was taken on this host and neither process is alive; a stale lock is taken over under a second
// O_EXCL file, so two processes that find the same stale lock cannot both win.
import fs from "node:fs";
import os from "node:os";

export interface LockInfo {
  host: string;
  pid: number;
  /** the experiment child's pid, once started */
  child?: number;
  since: string;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function readLock(file: string): LockInfo | null {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as LockInfo;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    // a lock being written right now reads as empty or partial: it is held
    return { host: os.hostname(), pid: process.pid, since: "" };
  }
}

/**
 * Stale: taken on this host by processes that are all gone. A lock from another host cannot be
 * checked from here; `foreignIsStale` says whether to treat it as stale (a queue worker may: the
 * queue already guarantees that the job's previous holder stopped).
 */
export function isStale(info: LockInfo, foreignIsStale = false): boolean {
  if (info.host !== os.hostname()) return foreignIsStale;
  return !alive(info.pid) && (info.child === undefined || !alive(info.child));
}

function create(file: string, info: LockInfo): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, "wx");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  }
  fs.writeSync(fd, JSON.stringify(info) + "\n");
  fs.closeSync(fd);
  return true;
}

function removeIfSame(file: string, info: LockInfo): void {
  const now = readLock(file);
  if (now && now.host === info.host && now.pid === info.pid && now.since === info.since)
    fs.rmSync(file, { force: true });
}

export interface Lock {
  file: string;
  info: LockInfo;
  /** records the child's pid, so the lock stays live while the child outlives this process */
  setChild(pid: number): void;
  release(): void;
}

/** Takes the lock, or returns the live holder's info. */
export function tryLock(file: string, opts: { foreignIsStale?: boolean } = {}): Lock | LockInfo {
  const info: LockInfo = { host: os.hostname(), pid: process.pid, since: new Date().toISOString() };
  const lock: Lock = {
    file,
    info,
    setChild(pid) {
      info.child = pid;
      fs.writeFileSync(file, JSON.stringify(info) + "\n");
    },
    release() {
      removeIfSame(file, info);
    },
  };
  if (create(file, info)) return lock;
  const holder = readLock(file);
  if (holder === null) return create(file, info) ? lock : (readLock(file) ?? info);
  if (!isStale(holder, opts.foreignIsStale)) return holder;
  const guard = `${file}.takeover`;
  const me: LockInfo = { host: info.host, pid: process.pid, since: info.since };
  if (!create(guard, me)) {
    const g = readLock(guard);
    if (g && isStale(g)) removeIfSame(guard, g);
    return holder;
  }
  try {
    const again = readLock(file);
    if (again && !isStale(again, opts.foreignIsStale)) return again;
    fs.rmSync(file, { force: true });
    return create(file, info) ? lock : (readLock(file) ?? holder);
  } finally {
    removeIfSame(guard, me);
  }
}

export function isLock(x: Lock | LockInfo): x is Lock {
  return (x as Lock).release !== undefined;
}
