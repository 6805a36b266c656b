// What our tfjs kernels share: tfjs's kernel calling convention, where a backend keeps a float32
// tensor's values (cpu: backend.data; wasm: the tfjs-wasm heap), and whether a call can run in place
// in that heap (matmul.ts InPlace). One FastKernel per file in this folder; register.ts installs
// and uninstalls them all.
import type { HostHeap, InPlace } from "../matmul.js";

export interface TensorInfo {
  dataId: object;
  shape: number[];
  dtype: string;
}

export type KernelFunc = (args: {
  inputs: Record<string, TensorInfo>;
  backend: unknown;
  attrs?: Record<string, unknown>;
}) => TensorInfo | TensorInfo[];

/** One replaced or added tfjs kernel: built per backend from the stock kernel it replaces (none for our own ops). */
export interface FastKernel {
  kernelName: string;
  backends: readonly string[];
  make(backendName: string, stock: KernelFunc | undefined): KernelFunc;
}

/** Where a float32 tensor's values are: a view of them, valid until the backend allocates again. */
type Reader = (t: TensorInfo) => Float32Array;
type Writer = (shape: number[], c: Float32Array) => TensorInfo;

/** Where a kernel can run in place (matmul.ts InPlace): x and y are its inputs, `result()` the
 * output tensor once `output()` has allocated it; undefined on the cpu backend. */
type Place = (
  x: TensorInfo,
  y: TensorInfo | undefined,
  shape: number[],
) => (InPlace & { result(): TensorInfo }) | undefined;

const hostHeaps = new WeakMap<object, HostHeap | null>();

/** The tfjs-wasm backend's heap (its exported memory and malloc/free), or null if not reachable. */
export function hostHeap(backend: any): HostHeap | null {
  let h = hostHeaps.get(backend);
  if (h === undefined) {
    const memory = backend.wasm?.asm?.memory;
    const ok =
      memory instanceof WebAssembly.Memory &&
      memory.buffer === backend.wasm.HEAPU8?.buffer &&
      typeof backend.wasm._malloc === "function" &&
      typeof backend.wasm._free === "function";
    h = ok
      ? // (`>>> 0`: malloc returns a signed i32, negative for addresses above 2 GiB, as tfjs-wasm notes)
        { memory, malloc: (n: number) => backend.wasm._malloc(n) >>> 0, free: (p: number) => backend.wasm._free(p) }
      : null;
    hostHeaps.set(backend, h);
  }
  return h;
}

export function io(backendName: string, backend: any): { read: Reader; write: Writer; place: Place } {
  if (backendName === "cpu") {
    return {
      read: (t) => backend.data.get(t.dataId).values as Float32Array,
      write: (shape, c) => backend.makeTensorInfo(shape, "float32", c.slice()),
      place: () => undefined,
    };
  }
  // wasm: tensors live in the tfjs-wasm heap at dataIdMap(dataId).memoryOffset
  const offset = (t: TensorInfo): number => backend.dataIdMap.get(t.dataId).memoryOffset;
  return {
    read: (t) => new Float32Array(backend.wasm.HEAPU8.buffer, offset(t), sizeOf(t.shape)),
    write: (shape, c) => {
      const out = backend.makeOutput(shape, "float32");
      new Float32Array(backend.wasm.HEAPU8.buffer, offset(out), c.length).set(c);
      return out;
    },
    place: (x, y, shape) => {
      const heap = hostHeap(backend);
      if (!heap) return undefined;
      let out: TensorInfo | undefined;
      return {
        heap,
        a: offset(x),
        b: y ? offset(y) : 0,
        output: () => {
          out = backend.makeOutput(shape, "float32");
          return offset(out!);
        },
        result: () => out!,
      };
    },
  };
}

export const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
