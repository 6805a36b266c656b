// Vector math shared by the kernels (included by fastDecoder.c and matmul.c): expf, tanhf, GELU (tanh
// approximation) and its derivative, 4 float lanes, no libc. No fused multiply-add, no relaxed
// SIMD, no reassociation: every lane is the same sequence of float32 operations, so results are
// bit-identical from run to run and whatever the surrounding batch.
#ifndef RLVR_VMATH_H
#define RLVR_VMATH_H
#include <wasm_simd128.h>

// expf / tanhf (SIMD, 4 lanes). exp(x) = 2^n * exp(r), n = round(x / ln2), r = x - n ln2 with a
// two-part ln2 (Cody-Waite; n ln2_hi is exact), |r| <= ln2/2, exp(r) by its degree-7 Taylor
// polynomial (truncation error < 7e-9 relative). Max relative error ~2 ulp over the clamped range.
// Inputs are clamped to [-87.3, 88.3]: exp underflows to ~1.2e-38 instead of 0 below.

static inline v128_t vexp(v128_t x) {
  x = wasm_f32x4_pmax(x, wasm_f32x4_splat(-87.3f));
  x = wasm_f32x4_pmin(x, wasm_f32x4_splat(88.3f));
  v128_t n = wasm_f32x4_nearest(wasm_f32x4_mul(x, wasm_f32x4_splat(1.44269504088896341f)));
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, wasm_f32x4_splat(0.693145751953125f)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, wasm_f32x4_splat(1.42860682030941723212e-6f)));
  v128_t p = wasm_f32x4_splat(1.0f / 5040.0f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f / 720.0f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f / 120.0f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f / 24.0f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f / 6.0f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(0.5f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.0f));
  // 2^n as a float: (n + 127) << 23, n in [-126, 127]
  v128_t e = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127)), 23);
  return wasm_f32x4_mul(p, e);
}

// tanh(y) = sign(y) (1 - e) / (1 + e), e = exp(-2|y|); absolute error ~1e-7.
static inline v128_t vtanh(v128_t y) {
  v128_t a = wasm_f32x4_abs(y);
  v128_t e = vexp(wasm_f32x4_mul(a, wasm_f32x4_splat(-2.0f)));
  v128_t t = wasm_f32x4_div(wasm_f32x4_sub(wasm_f32x4_splat(1.0f), e), wasm_f32x4_add(wasm_f32x4_splat(1.0f), e));
  v128_t sign = wasm_v128_and(y, wasm_i32x4_splat((int)0x80000000));
  return wasm_v128_or(t, sign);
}

// t = tanh(c (u + a u^3)), c = sqrt(2/pi), a = 0.044715: the tanh inside GELU and its derivative.
static inline v128_t vgelu_tanh(v128_t u) {
  v128_t u3 = wasm_f32x4_mul(wasm_f32x4_mul(u, u), u);
  return vtanh(wasm_f32x4_mul(wasm_f32x4_splat(0.7978845608028654f),
                              wasm_f32x4_add(u, wasm_f32x4_mul(wasm_f32x4_splat(0.044715f), u3))));
}

// GELU, tanh approximation: 0.5 u (1 + t)
static inline v128_t vgelu(v128_t u) {
  return wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_splat(0.5f), u), wasm_f32x4_add(wasm_f32x4_splat(1.0f), vgelu_tanh(u)));
}

// d GELU(u) / du = 0.5 (1 + t) + 0.5 u (1 - t^2) c (1 + 3 a u^2)
static inline v128_t vgelu_grad(v128_t u) {
  v128_t t = vgelu_tanh(u);
  v128_t half = wasm_f32x4_splat(0.5f), one = wasm_f32x4_splat(1.0f);
  v128_t left = wasm_f32x4_mul(half, wasm_f32x4_add(one, t));
  v128_t dinner = wasm_f32x4_mul(wasm_f32x4_splat(0.7978845608028654f),
                                 wasm_f32x4_add(one, wasm_f32x4_mul(wasm_f32x4_splat(3.0f * 0.044715f), wasm_f32x4_mul(u, u))));
  v128_t right = wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_mul(half, u), wasm_f32x4_sub(one, wasm_f32x4_mul(t, t))), dinner);
  return wasm_f32x4_add(left, right);
}
#endif
