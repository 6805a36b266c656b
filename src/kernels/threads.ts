// Worker threads for the WebAssembly kernels (matmul.ts: matmul and GELU; fastDecoder.ts: decode
// steps; any module that imports its memory and exports run_job(job, thread)): each worker runs its
// own instance of the module over the one shared WebAssembly.Memory and, after polling for a while
// (DEFAULT_SPIN_US), sleeps in Atomics.wait until a job is posted to its control block (16 int32 in
// the shared memory). The caller's thread always works on the job too; chunks of output rows are
// handed out by an atomic counter inside the wasm, so a worker that is slow to wake (or
// descheduled) just takes fewer chunks, and one that has not picked the job up by the time the
// caller is done is cancelled instead of waited for. Every output
// element is computed by exactly one thread in a fixed order: results do not depend on the split.
// Workers are unref'd (they never keep the process alive) and start asynchronously: until one has
// instantiated its module the caller simply works alone.
// A job can also run in a second memory, a host's heap (the tfjs-wasm backend's, once it is shared:
// src/engine/wasmHeap.ts), through another module (matmul-heap*.wasm): attachHeap() sends both to
// every worker over its own MessagePort, and a post names the memory it runs in (HEAP: 0 = the
// pool's own, g > 0 = the heap attached as generation g). A worker blocked in its job loop takes that
// message synchronously (receiveMessageOnPort) the first time a job needs it.
import { MessageChannel, type MessagePort, Worker } from "node:worker_threads";

/** int32 slots of a worker's control block */
export const CTRL_INTS = 16;
const SEQ = 0; // bumped by the caller for every post (the worker waits on it)
const STATE = 1; // IDLE / POSTED / TAKEN / DONE / CANCELLED
const JOB = 2; // byte offset of the Job struct
const READY = 3; // 1 once the worker has instantiated the module
const ERR = 4; // 1 when the last job threw in the worker
const STOP = 5; // 1: the worker exits its loop
const SPIN = 6; // microseconds the worker polls for the next job before it sleeps
const HEAP = 7; // the memory the posted job runs in: 0 = the pool's, g = the host heap of generation g

const IDLE = 0;
const POSTED = 1;
const TAKEN = 2;
const DONE = 3;
const CANCELLED = 4;

// CommonJS, evaluated in the worker (no loader, no TypeScript).
const WORKER_SOURCE = `
const { workerData, parentPort, receiveMessageOnPort } = require("node:worker_threads");
const { module, memory, ctrl, index, port } = workerData;
const c = new Int32Array(memory.buffer, ctrl, ${CTRL_INTS});
let run;
try {
  run = new WebAssembly.Instance(module, { env: { memory } }).exports.run_job;
} catch (e) {
  parentPort.postMessage({ error: String((e && e.message) || e) });
  throw e;
}
// the host heap's run_job, for generation heapGen (messages { gen, module, memory } on port)
let heapRun = null;
let heapGen = 0;
function runIn(gen) {
  if (gen === 0) return run;
  const t0 = Date.now();
  while (heapGen !== gen) {
    const m = receiveMessageOnPort(port);
    if (m) {
      heapGen = m.message.gen;
      heapRun = new WebAssembly.Instance(m.message.module, { env: { memory: m.message.memory } }).exports.run_job;
    } else if (Date.now() - t0 > 10000) throw new Error("no host heap of generation " + gen + " arrived");
  }
  return heapRun;
}
Atomics.store(c, ${READY}, 1);
let seen = Atomics.load(c, ${SEQ});
for (;;) {
  const spin = Atomics.load(c, ${SPIN}) / 1000;
  if (spin > 0) {
    const t0 = performance.now();
    while (Atomics.load(c, ${SEQ}) === seen && performance.now() - t0 < spin);
  }
  Atomics.wait(c, ${SEQ}, seen);
  seen = Atomics.load(c, ${SEQ});
  if (Atomics.load(c, ${STOP})) break;
  if (Atomics.compareExchange(c, ${STATE}, ${POSTED}, ${TAKEN}) !== ${POSTED}) continue;
  try {
    runIn(Atomics.load(c, ${HEAP}))(Atomics.load(c, ${JOB}), index);
    Atomics.store(c, ${ERR}, 0);
  } catch (e) {
    Atomics.store(c, ${ERR}, 1);
    parentPort.postMessage({ error: String((e && e.message) || e) });
  }
  Atomics.store(c, ${STATE}, ${DONE});
  Atomics.notify(c, ${STATE});
}
`;

interface Slot {
  worker: Worker;
  /** our end of the worker's heap channel */
  port: MessagePort;
  ctrl: Int32Array;
  /** thread index in the Job's scratch table (1-based; 0 is the caller) */
  index: number;
  posted: boolean;
  dead: boolean;
  error: string;
}

/**
 * Default polling time before sleeping (µs). Waking a thread from Atomics.wait appears to cost
 * tens to hundreds of microseconds on a VM — a large share of a ~1 ms matmul — so a worker polls
 * for the next job for up to 1 ms after each one (matmuls come in bursts), and the caller polls as
 * long for the worker's last chunk. Measured with bench/spin.ts (256^3, 2 threads vs 1, median of
 * 30 paired rounds, four runs): 1.25-1.49x without polling, 1.51-1.62x with 1000 µs. The cost is
 * up to 1 ms of the worker's core after each threaded call.
 */
export const DEFAULT_SPIN_US = 1000;

/** A kind of threaded call's run-alone state (matmul.ts afterThreadedCall): calls left to run on the
 * caller's thread alone, and the current strikes. */
export interface RunAlone {
  strikes: number;
  backoff: number;
}

/** The workers (thread indices) to post a job of `threads` threads to: none while `alone` says to
 * run alone (that call is counted), else the ready ones among the first threads - 1, which are
 * started if they are not yet. */
export function takeWorkers(pool: WorkerPool, threads: number, alone: RunAlone): number[] {
  pool.ensure(threads - 1);
  if (alone.backoff > 0) {
    alone.backoff--;
    return [];
  }
  return pool.ready(threads - 1);
}

/** How long join() waits for a worker that took a job before giving up (ms). */
const JOIN_TIMEOUT_MS = 120_000;

export class WorkerPool {
  private readonly slots: Slot[] = [];
  /** posts made, and posts cancelled because no worker picked them up before the caller finished */
  readonly stats = { posted: 0, cancelled: 0 };
  /** the host heap attached last (attachHeap), as generation `gen` */
  private heap: { gen: number; module: WebAssembly.Module; memory: WebAssembly.Memory } | null = null;

  /**
   * @param ctrlBase byte offset of CTRL_INTS * 4 * maxWorkers bytes reserved for control blocks
   */
  constructor(
    private readonly module: WebAssembly.Module,
    private readonly memory: WebAssembly.Memory,
    private readonly ctrlBase: number,
    readonly maxWorkers: number,
  ) {}

  /** Starts workers until there are n (asynchronously; see ready()). */
  ensure(n: number): void {
    n = Math.min(n, this.maxWorkers);
    for (let i = this.slots.length; i < n; i++) {
      const ctrlOffset = this.ctrlBase + i * CTRL_INTS * 4;
      const ctrl = new Int32Array(this.memory.buffer, ctrlOffset, CTRL_INTS);
      ctrl.fill(0);
      ctrl[SPIN] = this.spinMicros;
      const { port1, port2 } = new MessageChannel();
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        execArgv: [],
        workerData: { module: this.module, memory: this.memory, ctrl: ctrlOffset, index: i + 1, port: port2 },
        transferList: [port2],
      });
      const slot: Slot = { worker, port: port1, ctrl, index: i + 1, posted: false, dead: false, error: "" };
      port1.unref();
      if (this.heap) port1.postMessage(this.heap);
      worker.on("message", (m: { error?: string }) => {
        if (m?.error) slot.error = m.error;
      });
      worker.on("error", (e) => {
        slot.dead = true;
        slot.error = String((e as Error).message ?? e);
      });
      worker.on("exit", () => {
        slot.dead = true;
      });
      worker.unref();
      this.slots.push(slot);
    }
  }

  /** microseconds workers poll for the next job, and the caller for a worker's finish, before sleeping */
  spinMicros = DEFAULT_SPIN_US;

  setSpin(us: number): void {
    this.spinMicros = us;
    for (const s of this.slots) Atomics.store(s.ctrl, SPIN, us);
  }

  /** Thread indices (1-based) of the first n workers that are ready to take jobs now. */
  ready(n: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < Math.min(n, this.slots.length); i++) {
      const s = this.slots[i];
      if (!s.dead && Atomics.load(s.ctrl, READY) === 1) out.push(s.index);
    }
    return out;
  }

  /** Resolves once the first n workers are ready (or dead), or after timeoutMs. */
  async whenReady(n: number, timeoutMs = 10_000): Promise<number> {
    this.ensure(n);
    const t0 = Date.now();
    for (;;) {
      const pending = this.slots.slice(0, n).filter((s) => !s.dead && Atomics.load(s.ctrl, READY) !== 1);
      if (pending.length === 0 || Date.now() - t0 > timeoutMs) return this.ready(n).length;
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  /**
   * Makes `memory` (shared) the host heap that posts with `inHeap` run in, through `module`
   * (instantiated by each worker over it when a job first needs it); returns its generation. Only a
   * different memory is sent again.
   */
  attachHeap(module: WebAssembly.Module, memory: WebAssembly.Memory): number {
    if (this.heap?.memory !== memory || this.heap.module !== module) {
      this.heap = { gen: (this.heap?.gen ?? 0) + 1, module, memory };
      for (const s of this.slots) s.port.postMessage(this.heap);
    }
    return this.heap.gen;
  }

  /** Posts the job at byte offset `job` to the workers with these thread indices; with `inHeap`,
   * `job` is an offset in the attached host heap and runs there. */
  post(job: number, indices: number[], inHeap = false): void {
    if (inHeap && !this.heap) throw new Error("WorkerPool.post: no host heap attached");
    for (const idx of indices) {
      const s = this.slots[idx - 1];
      Atomics.store(s.ctrl, HEAP, inHeap ? this.heap!.gen : 0);
      Atomics.store(s.ctrl, JOB, job);
      Atomics.store(s.ctrl, STATE, POSTED);
      Atomics.add(s.ctrl, SEQ, 1);
      Atomics.notify(s.ctrl, SEQ);
      s.posted = true;
      this.stats.posted++;
    }
  }

  /**
   * Posts the job at byte `job` to `workers` (with `heap`: attached first, and the job runs in it),
   * runs the caller's own share (`caller()`: its run_job on thread 0), and joins. Returns how long
   * the caller worked and then waited for the workers (for the run-alone policy, afterThreadedCall).
   */
  runJob(
    job: number,
    workers: number[],
    caller: () => void,
    heap?: { module: WebAssembly.Module; memory: WebAssembly.Memory },
  ): { ownMs: number; waitedMs: number } {
    if (heap) this.attachHeap(heap.module, heap.memory);
    this.post(job, workers, !!heap);
    const t0 = performance.now();
    let t1 = t0;
    try {
      caller();
      t1 = performance.now();
    } finally {
      this.join();
    }
    return { ownMs: t1 - t0, waitedMs: performance.now() - t1 };
  }

  /**
   * After the caller's own run_job returned (so no chunks are left): cancels the posts no worker
   * has picked up and waits for those that did. Throws if a worker failed.
   */
  join(): void {
    let failure = "";
    for (const s of this.slots) {
      if (!s.posted) continue;
      s.posted = false;
      if (Atomics.compareExchange(s.ctrl, STATE, POSTED, CANCELLED) === POSTED) {
        this.stats.cancelled++;
        continue;
      }
      const t0 = Date.now();
      const spin0 = performance.now();
      while (Atomics.load(s.ctrl, STATE) === TAKEN && (performance.now() - spin0) * 1000 < this.spinMicros);
      while (Atomics.load(s.ctrl, STATE) === TAKEN) {
        Atomics.wait(s.ctrl, STATE, TAKEN, 1000);
        if (Date.now() - t0 > JOIN_TIMEOUT_MS) {
          s.dead = true;
          failure = `matmul worker ${s.index} did not finish within ${JOIN_TIMEOUT_MS / 1000} s`;
          break;
        }
      }
      if (Atomics.load(s.ctrl, ERR) === 1) {
        s.dead = true;
        failure = `matmul worker ${s.index} failed: ${s.error || "wasm trap"}`;
      }
      if (!s.dead) Atomics.store(s.ctrl, STATE, IDLE);
    }
    if (failure) throw new Error(failure);
  }

  /** Stops and terminates every worker. */
  async terminate(): Promise<void> {
    const slots = this.slots.splice(0);
    for (const s of slots) {
      Atomics.store(s.ctrl, STOP, 1);
      Atomics.add(s.ctrl, SEQ, 1);
      Atomics.notify(s.ctrl, SEQ);
    }
    for (const s of slots) s.port.close();
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  get size(): number {
    return this.slots.length;
  }
}
