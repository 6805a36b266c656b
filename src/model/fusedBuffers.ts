// What the fused native paths (gptFused.ts, llamaFused.ts) share: whether a gradient tape records, and
// the spare activation buffer each keeps between calls (a call outside a tape hands its buffer back at
// once, a call on a tape once its backward ran).
import * as tf from "@tensorflow/tfjs";

/** Whether a gradient tape records (tf.grad / variableGrads in progress). tfjs keeps this on its
 * engine's state, not in its public API; where that is missing, assume it does (the safe side: the
 * buffer is then never handed back early). */
export function tapeRecording(): boolean {
  const depth = (tf.engine() as unknown as { state?: { gradientDepth?: number } }).state?.gradientDepth;
  return typeof depth === "number" ? depth > 0 : true;
}

/** One activation buffer kept for the next call. */
export class SpareBuffer {
  private spare: Float32Array | null = null;

  /** at least n floats: the spare if it is large enough, else a new buffer of `alloc` (>= n) floats */
  take(n: number, alloc = n): Float32Array {
    const s = this.spare;
    if (s && s.length >= n) {
      this.spare = null;
      return s;
    }
    return new Float32Array(alloc);
  }

  /** keeps `a` for the next take() */
  give(a: Float32Array): void {
    this.spare = a;
  }
}
