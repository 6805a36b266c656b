// Column sums (tfjs's Sum over leading axes: bias gradients); part of the matmul module (included
// by matmul.c). Registered as tfjs's Sum on wasm by tfjs/Sum.ts.

/** out[c] = sum over r = 0..R-1, in order, of x[r * C + c] (from 0.0f): tfjs's Sum over leading
 * axes, without its transpose; the same float32 additions in the same order, so the same bits. */
EXPORT(colsum) void colsum(const float *x, int R, int C, float *out) {
  int c = 0;
  for (; c + 16 <= C; c += 16) {
    v128_t a0 = wasm_f32x4_splat(0.0f), a1 = a0, a2 = a0, a3 = a0;
    const float *p = x + c;
    for (int r = 0; r < R; r++, p += C) {
      a0 = wasm_f32x4_add(a0, LD(p));
      a1 = wasm_f32x4_add(a1, LD(p + 4));
      a2 = wasm_f32x4_add(a2, LD(p + 8));
      a3 = wasm_f32x4_add(a3, LD(p + 12));
    }
    ST(out + c, a0);
    ST(out + c + 4, a1);
    ST(out + c + 8, a2);
    ST(out + c + 12, a3);
  }
  for (; c + 4 <= C; c += 4) {
    v128_t a = wasm_f32x4_splat(0.0f);
    const float *p = x + c;
    for (int r = 0; r < R; r++, p += C) a = wasm_f32x4_add(a, LD(p));
    ST(out + c, a);
  }
  for (; c < C; c++) {
    float a = 0.0f;
    for (int r = 0; r < R; r++) a += x[r * C + c];
    out[c] = a;
  }
}
