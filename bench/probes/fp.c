// Probes of this machine's floating-point ceiling under V8's WebAssembly SIMD (no FMA), to judge the
// matmul kernel against: how fast can any f32x4 kernel go here, with no memory traffic beyond L1?
// Built by bench/probes/build.sh; run by bench/ceiling.ts (npm run bench:ceiling). Not used by the
// project's code.
#include <wasm_simd128.h>
#define EXPORT(name) __attribute__((export_name(#name)))
#define SP wasm_v128_load32_splat
#define FMA(c, a, b) c = wasm_f32x4_add(c, wasm_f32x4_mul(a, b))
#define SUM8(s) s = wasm_f32x4_add(s, wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_add(c0, c1), wasm_f32x4_add(c2, c3)), wasm_f32x4_add(wasm_f32x4_add(c4, c5), wasm_f32x4_add(c6, c7))))
#define ZERO8 v128_t c0 = wasm_f32x4_splat(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0

/** The matmul micro-kernel's loop (src/kernels/matmul.c): 4x8 tile, A splat from a [kl][4] panel,
 * B from a [kl][8] panel; `reps` times over the same panels (L1). 64 flops per k. */
EXPORT(micro) float micro(const float *pa, const float *pb, int kl, int reps) {
  v128_t s = wasm_f32x4_splat(0);
  for (int r = 0; r < reps; r++) {
    const float *a = pa, *b = pb;
    ZERO8;
    for (int k = 0; k < kl; k++, a += 4, b += 8) {
      const v128_t x0 = SP(a), x1 = SP(a + 1), x2 = SP(a + 2), x3 = SP(a + 3);
      const v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
      FMA(c0, x0, b0); FMA(c1, x1, b0); FMA(c2, x2, b0); FMA(c3, x3, b0);
      FMA(c4, x0, b1); FMA(c5, x1, b1); FMA(c6, x2, b1); FMA(c7, x3, b1);
    }
    SUM8(s);
  }
  return wasm_f32x4_extract_lane(s, 0);
}

/** The same with B held in registers (4 splat loads per k instead of 6 loads). */
EXPORT(bregs) float bregs(const float *pa, const float *pb, int kl, int reps) {
  v128_t s = wasm_f32x4_splat(0);
  const v128_t b0 = wasm_v128_load(pb), b1 = wasm_v128_load(pb + 4);
  for (int r = 0; r < reps; r++) {
    const float *a = pa;
    ZERO8;
    for (int k = 0; k < kl; k++, a += 4) {
      const v128_t x0 = SP(a), x1 = SP(a + 1), x2 = SP(a + 2), x3 = SP(a + 3);
      FMA(c0, x0, b0); FMA(c1, x1, b0); FMA(c2, x2, b0); FMA(c3, x3, b0);
      FMA(c4, x0, b1); FMA(c5, x1, b1); FMA(c6, x2, b1); FMA(c7, x3, b1);
    }
    SUM8(s);
  }
  return wasm_f32x4_extract_lane(s, 0);
}

/** 6 independent multiply chains and 6 independent add chains (no mul feeding an add): 12 SIMD
 * operations per iteration, one vector load. Reported as 4 flops per operation. */
EXPORT(indep) float indep(const float *p, int n) {
  v128_t c0 = wasm_f32x4_splat(1), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, d0 = c0, d1 = c0, d2 = c0, d3 = c0;
  for (int i = 0; i < n; i++) {
    const v128_t x = wasm_v128_load(p + (i & 255) * 4);
    c0 = wasm_f32x4_mul(c0, x); c1 = wasm_f32x4_mul(c1, x); c2 = wasm_f32x4_mul(c2, x);
    c3 = wasm_f32x4_mul(c3, x); d0 = wasm_f32x4_mul(d0, x); d1 = wasm_f32x4_mul(d1, x);
    c4 = wasm_f32x4_add(c4, x); c5 = wasm_f32x4_add(c5, x); c6 = wasm_f32x4_add(c6, x);
    c7 = wasm_f32x4_add(c7, x); d2 = wasm_f32x4_add(d2, x); d3 = wasm_f32x4_add(d3, x);
  }
  v128_t s = wasm_f32x4_add(wasm_f32x4_add(d0, d1), wasm_f32x4_add(d2, d3));
  SUM8(s);
  return wasm_f32x4_extract_lane(s, 0);
}

/** A dependent scalar f64 add chain (4 adds per iteration): its latency gives the clock. */
EXPORT(chain) double chain(int n, double x, double y) {
  for (int i = 0; i < n; i++) {
    x = x + y; x = x + y; x = x + y; x = x + y;
  }
  return x;
}
