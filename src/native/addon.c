// Node-API glue of the native addon: argument checks (every pointer and extent is checked against
// its typed array before a kernel runs) and the exports. Loaded by src/engine/native.ts.
#include <node_api.h>
#include "napi_util.h"
#include <stdio.h>
#include <string.h>
#include "native.h"
#include "pool.h"

static const char *isa_name(int isa) {
  return isa == RLVR_ISA_AVX512 ? "avx512" : isa == RLVR_ISA_AVX2 ? "avx2" : "none";
}

static napi_value info(napi_env env, napi_callback_info cb) {
  (void)cb;
  napi_value out, v;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_string_utf8(env, isa_name(rlvr_gemm_isa()), NAPI_AUTO_LENGTH, &v));
  CHECK(napi_set_named_property(env, out, "isa", v));
  CHECK(napi_create_int32(env, RLVR_MAX_THREADS, &v));
  CHECK(napi_set_named_property(env, out, "maxThreads", v));
  return out;
}

/** setIsa("avx2" | "avx512" | "best") → the instruction set now used */
static napi_value set_isa(napi_env env, napi_callback_info cb) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, cb, &argc, argv, 0, 0));
  char name[16] = {0};
  size_t n = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n) != napi_ok)
    return fail(env, "setIsa: expected \"avx2\", \"avx512\" or \"best\"");
  const int want = !strcmp(name, "avx512") ? RLVR_ISA_AVX512 : !strcmp(name, "avx2") ? RLVR_ISA_AVX2 : -1;
  if (want < 0 && strcmp(name, "best")) return fail(env, "setIsa: expected \"avx2\", \"avx512\" or \"best\"");
  const int got = rlvr_gemm_set_isa(want);
  if (got < 0) return fail(env, "setIsa: this CPU does not support that instruction set");
  napi_value v;
  CHECK(napi_create_string_utf8(env, isa_name(got), NAPI_AUTO_LENGTH, &v));
  return v;
}

static napi_value set_spin(napi_env env, napi_callback_info cb) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t us;
  CHECK(napi_get_cb_info(env, cb, &argc, argv, 0, 0));
  if (argc < 1 || !int_arg(env, argv[0], &us)) return fail(env, "setSpin: expected microseconds");
  rlvr_pool_set_spin((int)us);
  return 0;
}

/** gemm(A, aIndex, B, bIndex, C, cIndex, aoff, boff, batch, M, K, N, ta, tb, fma, threads):
 * A, B, C Float32Arrays (may be views of one memory), indices in floats, aoff/boff Int32Arrays of
 * per-item float offsets from aIndex / bIndex. */
static napi_value gemm(napi_env env, napi_callback_info cb) {
  size_t argc = 16;
  napi_value argv[16];
  CHECK(napi_get_cb_info(env, cb, &argc, argv, 0, 0));
  if (argc != 16) return fail(env, "gemm: expected 16 arguments");
  void *a, *b, *c, *ao, *bo;
  size_t la, lb, lc, lao, lbo;
  if (!typed(env, argv[0], napi_float32_array, &a, &la) || !typed(env, argv[2], napi_float32_array, &b, &lb) ||
      !typed(env, argv[4], napi_float32_array, &c, &lc))
    return fail(env, "gemm: A, B and C must be Float32Arrays");
  if (!typed(env, argv[6], napi_int32_array, &ao, &lao) || !typed(env, argv[7], napi_int32_array, &bo, &lbo))
    return fail(env, "gemm: aoff and boff must be Int32Arrays");
  int64_t x[11]; // aIndex, bIndex, cIndex, then batch … threads
  const int idx[11] = {1, 3, 5, 8, 9, 10, 11, 12, 13, 14, 15};
  for (int i = 0; i < 11; i++)
    if (!int_arg(env, argv[idx[i]], &x[i]) || x[i] < 0) return fail(env, "gemm: integer arguments must be >= 0");
  const int64_t ai = x[0], bi = x[1], ci = x[2], batch = x[3], M = x[4], K = x[5], N = x[6];
  if ((int64_t)lao < batch || (int64_t)lbo < batch) return fail(env, "gemm: aoff/boff shorter than batch");
  if (M > INT32_MAX || K > INT32_MAX || N > INT32_MAX || batch > INT32_MAX || batch * M * N > INT32_MAX)
    return fail(env, "gemm: sizes out of range");
  int64_t amax = 0, bmax = 0;
  for (int64_t i = 0; i < batch; i++) {
    const int32_t p = ((int32_t *)ao)[i], q = ((int32_t *)bo)[i];
    if (p < 0 || q < 0) return fail(env, "gemm: negative offset");
    if (p > amax) amax = p;
    if (q > bmax) bmax = q;
  }
  if (ai + amax + M * K > (int64_t)la || bi + bmax + K * N > (int64_t)lb || ci + batch * M * N > (int64_t)lc)
    return fail(env, "gemm: an operand extends past the end of its array");
  const char *err = rlvr_gemm((const float *)a + ai, (const float *)b + bi, (float *)c + ci, (const int32_t *)ao,
                              (const int32_t *)bo, (int)batch, (int)M, (int)K, (int)N, x[7] != 0, x[8] != 0, x[9] != 0,
                              (int)x[10]);
  if (err) {
    char msg[160];
    snprintf(msg, sizeof msg, "gemm: %s", err);
    return fail(env, msg);
  }
  return 0;
}

/** fmaPeak(threads, iters) → { gflops, threads }: the register-only FMA ceiling (peak.c) */
static napi_value fma_peak(napi_env env, napi_callback_info cb) {
  size_t argc = 2;
  napi_value argv[2];
  int64_t threads, iters;
  CHECK(napi_get_cb_info(env, cb, &argc, argv, 0, 0));
  if (argc < 2 || !int_arg(env, argv[0], &threads) || !int_arg(env, argv[1], &iters) || threads < 1 || iters < 1)
    return fail(env, "fmaPeak: expected threads >= 1 and iterations >= 1");
  int ran = 0;
  const double g = rlvr_fma_peak((int)threads, (long)iters, &ran);
  napi_value out, v;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_double(env, g, &v));
  CHECK(napi_set_named_property(env, out, "gflops", v));
  CHECK(napi_create_int32(env, ran, &v));
  CHECK(napi_set_named_property(env, out, "threads", v));
  return out;
}

/** more exports, defined in other files of the addon where they exist */
__attribute__((weak)) napi_value rlvr_register_gpt(napi_env env, napi_value exports);
__attribute__((weak)) napi_value rlvr_register_llama(napi_env env, napi_value exports);

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"info", 0, info, 0, 0, 0, napi_default, 0},
      {"setIsa", 0, set_isa, 0, 0, 0, napi_default, 0},
      {"setSpin", 0, set_spin, 0, 0, 0, napi_default, 0},
      {"gemm", 0, gemm, 0, 0, 0, napi_default, 0},
      {"fmaPeak", 0, fma_peak, 0, 0, 0, napi_default, 0},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  if (rlvr_register_gpt && !rlvr_register_gpt(env, exports)) return 0;
  if (rlvr_register_llama && !rlvr_register_llama(env, exports)) return 0;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
