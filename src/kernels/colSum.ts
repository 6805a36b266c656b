// Column sums (src/kernels/colsum.c) in the matmul module, on the caller's thread: tfjs's Sum over
// leading axes without its transpose. The tfjs kernel that uses it is tfjs/Sum.ts.
import { align, ensureMemory, type InPlace, inPlaceExports, mustLoad } from "./matmul.js";

/**
 * Column sums of x [R, C] on the caller's thread: out[c] = x[0][c] + x[1][c] + ... in order, from 0
 * (tfjs's Sum over leading axes, the same float32 additions: the same bits, without its transpose).
 * `fill(heap, xIndex)` copies x in; returns a view of out valid until the next call — or, with
 * `inPlace` (x at `inPlace.a`), writes straight into `inPlace.output()` and returns null.
 */
export function runColSum(
  R: number,
  C: number,
  fill: (heap: Float32Array, xIndex: number) => void,
  inPlace?: InPlace,
): Float32Array | null {
  const e = mustLoad("colsum");
  const ex = inPlaceExports(e, inPlace);
  if (ex) {
    ex.colsum(inPlace!.a, R, C, inPlace!.output());
    return null;
  }
  const px = e.dyn;
  const pout = align(px + 4 * R * C);
  ensureMemory(e, align(pout + 4 * C));
  fill(e.f32, px / 4);
  e.ex.colsum(px, R, C, pout);
  return e.f32.subarray(pout / 4, pout / 4 + C);
}
