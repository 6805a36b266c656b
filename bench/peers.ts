// The PyTorch peer of `npm run bench -- --peers`: finds a python3 that imports torch, starts
// bench/peers/torch_peer.py once, and sends it one JSON request per line (each answered by one line),
// so that its measurements alternate with ours in one bench run. It does not install anything:
// without an importable torch, start() says why and the bench runs without the peer.
// Where it looks: $RLVR_PYTHON alone if set; else `python3` on the PATH, then /usr/bin/python3
// (Debian's, where `apt-get install python3-torch` puts torch; a pyenv or venv python3 first on the
// PATH often lacks it). The build it found — torch's version and path, the BLAS/OpenMP libraries it loaded and
// their Debian packages, its threads — comes back in `build`.
// OpenMP's wait policy: PASSIVE unless OMP_WAIT_POLICY is set (set it empty for libgomp's default).
// libgomp's default spins at every barrier; on this 2-core machine shared with other work, the
// spinning thread takes the core the other one needs: at load 5–7, on 2 threads, torch's GRPO step
// took 3.74 s instead of 0.142 s and its rollouts ran at 541 tokens/s instead of 30,373
// (docs/performance.md). Our own workers poll for 1 ms and then sleep. On an idle machine the
// default suits torch's small ops on 2 threads better (rollouts 32k vs 17k tokens/s): compare both.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "peers", "torch_peer.py");

export interface TorchBuild {
  python: string;
  pythonVersion: string;
  torch: string;
  torchPath: string;
  /** torch's BLAS_INFO build setting: `generic` is libblas.so.3, whichever Debian alternative provides it */
  blasInfo: string | null;
  /** the BLAS, LAPACK, oneDNN and OpenMP libraries mapped into the process after a matmul */
  libraries: string[];
  /** "package version" of the Debian packages those (and torch) come from */
  debianPackages: string[];
  mkl: boolean;
  mkldnn: boolean;
  cpuCapability: string | null;
  threads: number;
  interopThreads: number;
  attention: string;
  /** OMP_WAIT_POLICY as the peer ran (null: libgomp's default) */
  ompWaitPolicy: string | null;
}

/** one line naming the build: version, BLAS, threads, where it was found */
export function describeBuild(b: TorchBuild): string {
  const blas =
    b.libraries.find((l) => /openblas|mkl|blis/.test(path.basename(l))) ?? b.libraries.find((l) => /blas/.test(l));
  const pkgs = b.debianPackages.filter((p) => /torch|blas|mkl|dnnl/.test(p));
  return `torch ${b.torch} (${b.torchPath}, ${b.python}${pkgs.length ? `; ${pkgs.join(", ")}` : ""}), BLAS ${blas ?? b.blasInfo ?? "?"}, oneDNN ${b.mkldnn ? "on" : "off"}, ${b.cpuCapability ?? "?"}, ${b.threads} threads, OMP_WAIT_POLICY ${b.ompWaitPolicy ?? "unset"}, attention: ${b.attention}`;
}

export class TorchPeer {
  private readonly lines: AsyncIterator<string>;
  private stderrTail: string[] = [];

  private constructor(
    private readonly proc: ChildProcessWithoutNullStreams,
    lines: AsyncIterator<string>,
    readonly build: TorchBuild,
  ) {
    this.lines = lines;
  }

  /** The python3 candidates, in the order they are tried. */
  static candidates(): string[] {
    const env = process.env.RLVR_PYTHON;
    return env ? [env] : ["python3", "/usr/bin/python3"];
  }

  /**
   * Starts the peer with the first candidate whose torch imports, torch on `threads` threads (and
   * OMP_NUM_THREADS, which OpenBLAS's OpenMP build follows). Returns it, or why none started (each
   * candidate's reason). `log` receives the peer's stderr lines.
   */
  static async start(threads: number, log: (s: string) => void = () => {}): Promise<TorchPeer | string> {
    const reasons: string[] = [];
    for (const py of TorchPeer.candidates()) {
      const r = await TorchPeer.tryStart(py, threads, log);
      if (typeof r !== "string") return r;
      reasons.push(`${py}: ${r}`);
    }
    return `no python3 imports torch (${reasons.join("; ")}); on Debian: apt-get install python3-torch libopenblas0-openmp`;
  }

  private static tryStart(py: string, threads: number, log: (s: string) => void): Promise<TorchPeer | string> {
    return new Promise((resolve) => {
      let proc: ChildProcessWithoutNullStreams;
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        OMP_NUM_THREADS: String(threads),
        OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? "PASSIVE",
        PYTHONUNBUFFERED: "1",
      };
      if (env.OMP_WAIT_POLICY === "") delete env.OMP_WAIT_POLICY; // libgomp's default (it rejects "")
      try {
        proc = spawn(py, [SCRIPT, "--threads", String(threads)], { env });
      } catch (e) {
        resolve((e as Error).message);
        return;
      }
      const errTail: string[] = [];
      let settled = false;
      proc.on("error", (e) => {
        if (!settled) {
          settled = true;
          resolve(e.message);
        }
      });
      readline.createInterface({ input: proc.stderr }).on("line", (l) => {
        errTail.push(l);
        if (errTail.length > 20) errTail.shift();
        if (settled) log(`  [torch] ${l}`);
      });
      const lines = readline.createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
      lines.next().then(
        ({ value, done }) => {
          if (settled) return;
          settled = true;
          if (done) {
            const why = () => resolve(lastError(errTail) ?? "exited before it started");
            if (proc.exitCode !== null || proc.signalCode !== null) why();
            else proc.once("close", why);
            return;
          }
          const first = JSON.parse(value) as { build?: TorchBuild };
          if (!first.build) {
            proc.kill();
            resolve(`unexpected first line ${value.slice(0, 200)}`);
            return;
          }
          const peer = new TorchPeer(proc, lines, first.build);
          peer.stderrTail = errTail;
          resolve(peer);
        },
        (e: Error) => {
          if (!settled) {
            settled = true;
            resolve(e.message);
          }
        },
      );
    });
  }

  /** One request; its answer, or an error naming the op and the peer's message. */
  async call<T = Record<string, unknown>>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    this.proc.stdin.write(JSON.stringify({ op, ...args }) + "\n");
    const { value, done } = await this.lines.next();
    if (done) throw new Error(`torch peer exited during ${op}: ${lastError(this.stderrTail) ?? "no message"}`);
    const r = JSON.parse(value) as T & { error?: string; traceback?: string };
    if (r.error) throw new Error(`torch peer, ${op}: ${r.error}\n${r.traceback ?? ""}`);
    return r;
  }

  close(): void {
    this.proc.stdin.end();
  }
}

/** the last line of a Python traceback or message */
function lastError(lines: string[]): string | null {
  const l = lines.filter((x) => x.trim()).pop();
  return l ? l.trim() : null;
}

/** the largest |a − b| over two equally shaped [B][T] arrays */
export function maxAbsDiff(a: number[][], b: number[][]): number {
  let m = 0;
  a.forEach((row, i) => row.forEach((x, j) => (m = Math.max(m, Math.abs(x - b[i][j])))));
  return m;
}
