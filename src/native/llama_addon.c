// Node-API exports of the Llama family's fused forward and backward (llama.c), registered by
// addon.c's init through rlvr_register_llama. Every array is checked against the sizes the config
// implies, and every token id against the vocabulary, before a kernel runs. Used by
// src/model/llamaFused.ts.
#include <node_api.h>
#include "napi_util.h"
#include <stdio.h>
#include <stdlib.h>
#include "llama.h"

/** the config Int32Array [B, T, C, L, V, I, nh, nkv, hd, qkvBias, oBias, qkNorm, tied, keepLogits], checked */
static int read_cfg(napi_env env, napi_value v, RlvrLlamaCfg *c) {
  void *d;
  size_t n;
  if (!typed(env, v, napi_int32_array, &d, &n) || n != 14) return 0;
  const int32_t *x = d;
  *c = (RlvrLlamaCfg){x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12], x[13]};
  for (int i = 9; i < 14; i++)
    if (x[i] != 0 && x[i] != 1) return 0;
  return rlvr_llama_check(c) == 0 && rlvr_llama_acts_size(c) < ((int64_t)1 << 40);
}

static int f32(napi_env env, napi_value v, float **p, size_t want) {
  size_t n;
  return typed(env, v, napi_float32_array, (void **)p, &n) && n >= want;
}

static int ids(napi_env env, napi_value v, const RlvrLlamaCfg *c, int32_t **p) {
  size_t n;
  if (!typed(env, v, napi_int32_array, (void **)p, &n) || n != (size_t)c->B * c->T) return 0;
  for (size_t i = 0; i < n; i++)
    if ((*p)[i] < 0 || (*p)[i] >= c->V) return 0;
  return 1;
}

// the tables of parameter and gradient pointers (slots 0 and 1) and the expected sizes, grown as needed
static float **tables[2];
static int64_t *expected;
static int table_cap;

/** a JS array of Float32Arrays, one per parameter tensor of the config, each of exactly its size:
 * their data pointers into the table of `slot` */
static const char *tensor_table(napi_env env, napi_value v, const RlvrLlamaCfg *c, int slot, float ***out) {
  const int n = rlvr_llama_tensor_count(c);
  if (n > table_cap) {
    float **a = realloc(tables[0], sizeof(float *) * n), **b = a ? realloc(tables[1], sizeof(float *) * n) : 0;
    if (a) tables[0] = a;
    if (b) tables[1] = b;
    int64_t *e = b ? realloc(expected, sizeof(int64_t) * n) : 0;
    if (!e) return "out of memory";
    expected = e;
    table_cap = n;
  }
  bool is = false;
  uint32_t len = 0;
  if (napi_is_array(env, v, &is) != napi_ok || !is || napi_get_array_length(env, v, &len) != napi_ok ||
      len != (uint32_t)n)
    return "expected an array of one Float32Array per parameter tensor (llamaParamShapes order)";
  rlvr_llama_tensor_sizes(c, expected);
  for (int i = 0; i < n; i++) {
    napi_value e;
    void *d;
    size_t m;
    if (napi_get_element(env, v, (uint32_t)i, &e) != napi_ok || !typed(env, e, napi_float32_array, &d, &m) ||
        (int64_t)m != expected[i])
      return "a parameter tensor is not a Float32Array of its shape's size";
    tables[slot][i] = d;
  }
  *out = tables[slot];
  return 0;
}

static int num(napi_env env, napi_value v, double *out) { return napi_get_value_double(env, v, out) == napi_ok; }

#define BAD_CFG                                                                                        \
  "config must be an Int32Array [B, T, C, L, V, I, nh, nkv, hd, qkvBias, oBias, qkNorm, tied, keepLogits] of "  \
  "positive sizes (nkv divides nh, hd even) and 0/1 flags"

/** llamaSizes(cfg) → [parameter tensors, activation floats] */
static napi_value sizes(napi_env env, napi_callback_info cb) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  RlvrLlamaCfg c;
  CHECK(napi_get_cb_info(env, cb, &argc, argv, 0, 0));
  if (argc != 1 || !read_cfg(env, argv[0], &c)) return fail(env, "llamaSizes: " BAD_CFG);
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_create_double(env, (double)rlvr_llama_tensor_count(&c), &v));
  CHECK(napi_set_element(env, out, 0, v));
  CHECK(napi_create_double(env, (double)rlvr_llama_acts_size(&c), &v));
  CHECK(napi_set_element(env, out, 1, v));
  return out;
}

/** the arguments both calls share: cfg, params, inputs, targets, cos, sin, eps, temperature, acts */
static const char *common(napi_env env, napi_value *argv, RlvrLlamaCfg *c, float ***params, int32_t **inputs,
                          int32_t **targets, float **cos, float **sin, double *eps, double *tau, float **acts) {
  if (!read_cfg(env, argv[0], c)) return BAD_CFG;
  const char *err = tensor_table(env, argv[1], c, 0, params);
  if (err) return err;
  if (!ids(env, argv[2], c, inputs) || !ids(env, argv[3], c, targets))
    return "inputs and targets must be Int32Arrays of B*T ids below the vocabulary size";
  const size_t rope = (size_t)c->T * c->hd;
  if (!f32(env, argv[4], cos, rope) || !f32(env, argv[5], sin, rope))
    return "cos and sin must be Float32Arrays of T*head_dim floats";
  if (!num(env, argv[6], eps) || !(*eps > 0)) return "eps must be > 0";
  if (!num(env, argv[7], tau) || !(*tau > 0)) return "temperature must be > 0";
  if (!f32(env, argv[8], acts, (size_t)rlvr_llama_acts_size(c)))
    return "acts must be a Float32Array of llamaSizes(cfg)[1] floats";
  return 0;
}

static napi_value failed(napi_env env, const char *fn, const char *err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", fn, err);
  return fail(env, msg);
}

/** llamaForward(cfg, params, inputs, targets, cos, sin, eps, temperature, acts, logp, entropy | null,
 * addLayer, addVector | null, threads) */
static napi_value forward(napi_env env, napi_callback_info cb) {
  size_t argc = 14;
  napi_value argv[14];
  CHECK(napi_get_cb_info(env, cb, &argc, argv, 0, 0));
  if (argc != 14) return fail(env, "llamaForward: expected 14 arguments");
  RlvrLlamaCfg c;
  float **params, *cos, *sin, *acts, *logp, *entropy = 0, *add = 0;
  int32_t *inputs, *targets;
  double eps, tau, add_layer, threads;
  const char *err = common(env, argv, &c, &params, &inputs, &targets, &cos, &sin, &eps, &tau, &acts);
  if (err) return failed(env, "llamaForward", err);
  const size_t N = (size_t)c.B * c.T;
  if (!f32(env, argv[9], &logp, N)) return fail(env, "llamaForward: logp must be a Float32Array of B*T floats");
  if (!is_null(env, argv[10]) && !f32(env, argv[10], &entropy, N))
    return fail(env, "llamaForward: entropy must be null or a Float32Array of B*T floats");
  if (!num(env, argv[11], &add_layer) || add_layer >= c.L || add_layer != (int)add_layer)
    return fail(env, "llamaForward: addLayer must be -1 or a layer index");
  if (add_layer >= 0 && !f32(env, argv[12], &add, (size_t)c.C))
    return fail(env, "llamaForward: addVector must be a Float32Array of hidden_size floats");
  if (!num(env, argv[13], &threads) || threads < 1) return fail(env, "llamaForward: threads must be >= 1");
  err = rlvr_llama_forward(&c, params, inputs, targets, cos, sin, (float)eps, (float)tau, acts, logp, entropy,
                           add_layer >= 0 ? (int)add_layer : -1, add, (int)threads);
  return err ? failed(env, "llamaForward", err) : 0;
}

/** llamaBackward(cfg, params, inputs, targets, cos, sin, eps, temperature, acts, dlogp, dentropy | null,
 * grads, threads) */
static napi_value backward(napi_env env, napi_callback_info cb) {
  size_t argc = 13;
  napi_value argv[13];
  CHECK(napi_get_cb_info(env, cb, &argc, argv, 0, 0));
  if (argc != 13) return fail(env, "llamaBackward: expected 13 arguments");
  RlvrLlamaCfg c;
  float **params, **grads, *cos, *sin, *acts, *dlogp, *dent = 0;
  int32_t *inputs, *targets;
  double eps, tau, threads;
  const char *err = common(env, argv, &c, &params, &inputs, &targets, &cos, &sin, &eps, &tau, &acts);
  if (err) return failed(env, "llamaBackward", err);
  const size_t N = (size_t)c.B * c.T;
  if (!f32(env, argv[9], &dlogp, N)) return fail(env, "llamaBackward: dlogp must be a Float32Array of B*T floats");
  if (!is_null(env, argv[10]) && !f32(env, argv[10], &dent, N))
    return fail(env, "llamaBackward: dentropy must be null or a Float32Array of B*T floats");
  err = tensor_table(env, argv[11], &c, 1, &grads);
  if (err) return failed(env, "llamaBackward: grads", err);
  if (!num(env, argv[12], &threads) || threads < 1) return fail(env, "llamaBackward: threads must be >= 1");
  err = rlvr_llama_backward(&c, params, inputs, targets, cos, sin, (float)eps, (float)tau, acts, dlogp, dent,
                            grads, (int)threads);
  return err ? failed(env, "llamaBackward", err) : 0;
}

napi_value rlvr_register_llama(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"llamaSizes", 0, sizes, 0, 0, 0, napi_default, 0},
      {"llamaForward", 0, forward, 0, 0, 0, napi_default, 0},
      {"llamaBackward", 0, backward, 0, 0, 0, napi_default, 0},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}
