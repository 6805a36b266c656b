// GELU forward and backward for the training graph, over a run of floats; part of the matmul
// module (included by matmul.c, whose run_job splits a long GELU into chunks for the threads), so it
// shares its memory, threads and in-place heap. Registered as tfjs ops by tfjs/RlvrGelu.ts.

/** GELU (tanh approximation, vmath.h) over n floats: out = gelu(x) (backward = 0) or
 * out = dy * gelu'(x) (backward = 1). The last n % 4 floats go through a zero-padded vector built
 * in registers (no stack: the module also runs inside the tfjs-wasm heap, see matmul.ts). */
EXPORT(gelu) void gelu(int backward, const float *x, const float *dy, float *out, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t u = LD(x + i);
    ST(out + i, backward ? wasm_f32x4_mul(LD(dy + i), vgelu_grad(u)) : vgelu(u));
  }
  if (i < n) {
    const int r = n - i; // 1..3
    const v128_t u = wasm_f32x4_make(x[i], r > 1 ? x[i + 1] : 0.0f, r > 2 ? x[i + 2] : 0.0f, 0.0f);
    v128_t o;
    if (backward) {
      const v128_t d = wasm_f32x4_make(dy[i], r > 1 ? dy[i + 1] : 0.0f, r > 2 ? dy[i + 2] : 0.0f, 0.0f);
      o = wasm_f32x4_mul(d, vgelu_grad(u));
    } else {
      o = vgelu(u);
    }
    out[i] = wasm_f32x4_extract_lane(o, 0);
    if (r > 1) out[i + 1] = wasm_f32x4_extract_lane(o, 1);
    if (r > 2) out[i + 2] = wasm_f32x4_extract_lane(o, 2);
  }
}
