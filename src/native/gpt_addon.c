// Node-API exports of the organism's fused forward and backward (gpt.c), registered by addon.c's
// init through rlvr_register_gpt. Every array is checked against the sizes the config implies, and
// every token id against the vocabulary, before a kernel runs. Used by src/model/gptFused.ts.
#include <node_api.h>
#include "napi_util.h"
#include <stdio.h>
#include "gpt.h"

/** the config Int32Array [B, T, C, NH, L, V, H, ctx], checked */
static int read_cfg(napi_env env, napi_value v, RlvrGptCfg *c) {
  void *d;
  size_t n;
  if (!typed(env, v, napi_int32_array, &d, &n) || n != 8) return 0;
  const int32_t *x = d;
  *c = (RlvrGptCfg){x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]};
  for (int i = 0; i < 8; i++)
    if (x[i] <= 0) return 0;
  if (c->C % c->NH || c->T > c->ctx) return 0;
  const int64_t N = (int64_t)c->B * c->T;
  return N * c->V < INT32_MAX && N * c->H < INT32_MAX && rlvr_gpt_acts_size(c) < ((int64_t)1 << 40);
}

static int f32(napi_env env, napi_value v, float **p, size_t want) {
  size_t n;
  return typed(env, v, napi_float32_array, (void **)p, &n) && n >= want;
}

static int ids(napi_env env, napi_value v, const RlvrGptCfg *c, int32_t **p) {
  size_t n;
  if (!typed(env, v, napi_int32_array, (void **)p, &n) || n != (size_t)c->B * c->T) return 0;
  for (size_t i = 0; i < n; i++)
    if ((*p)[i] < 0 || (*p)[i] >= c->V) return 0;
  return 1;
}

static int num(napi_env env, napi_value v, double *out) { return napi_get_value_double(env, v, out) == napi_ok; }

#define BAD_CFG "config must be an Int32Array [B, T, C, NH, L, V, H, ctx] of positive sizes (C % NH = 0, T <= ctx)"

/** gptSizes(cfg) → [parameter floats, activation floats] */
static napi_value sizes(napi_env env, napi_callback_info cb) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  RlvrGptCfg c;
  CHECK(napi_get_cb_info(env, cb, &argc, argv, 0, 0));
  if (argc != 1 || !read_cfg(env, argv[0], &c)) return fail(env, "gptSizes: " BAD_CFG);
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_create_double(env, (double)rlvr_gpt_param_count(&c), &v));
  CHECK(napi_set_element(env, out, 0, v));
  CHECK(napi_create_double(env, (double)rlvr_gpt_acts_size(&c), &v));
  CHECK(napi_set_element(env, out, 1, v));
  return out;
}

/** gptForward(cfg, params, inputs, targets, temperature, acts, logp, entropy | null, addLayer,
 * addVector | null, threads) */
static napi_value forward(napi_env env, napi_callback_info cb) {
  size_t argc = 11;
  napi_value argv[11];
  CHECK(napi_get_cb_info(env, cb, &argc, argv, 0, 0));
  if (argc != 11) return fail(env, "gptForward: expected 11 arguments");
  RlvrGptCfg c;
  if (!read_cfg(env, argv[0], &c)) return fail(env, "gptForward: " BAD_CFG);
  const size_t N = (size_t)c.B * c.T;
  float *params, *acts, *logp, *entropy = 0, *add = 0;
  int32_t *inputs, *targets;
  double temperature, add_layer, threads;
  if (!f32(env, argv[1], &params, (size_t)rlvr_gpt_param_count(&c)))
    return fail(env, "gptForward: params must be a Float32Array of every parameter");
  if (!ids(env, argv[2], &c, &inputs) || !ids(env, argv[3], &c, &targets))
    return fail(env, "gptForward: inputs and targets must be Int32Arrays of B*T ids below the vocabulary size");
  if (!num(env, argv[4], &temperature) || !(temperature > 0))
    return fail(env, "gptForward: temperature must be > 0");
  if (!f32(env, argv[5], &acts, (size_t)rlvr_gpt_acts_size(&c)))
    return fail(env, "gptForward: acts must be a Float32Array of gptSizes(cfg)[1] floats");
  if (!f32(env, argv[6], &logp, N)) return fail(env, "gptForward: logp must be a Float32Array of B*T floats");
  if (!is_null(env, argv[7]) && !f32(env, argv[7], &entropy, N))
    return fail(env, "gptForward: entropy must be null or a Float32Array of B*T floats");
  if (!num(env, argv[8], &add_layer) || add_layer >= c.L || add_layer != (int)add_layer)
    return fail(env, "gptForward: addLayer must be -1 or a block index");
  if (add_layer >= 0 && !f32(env, argv[9], &add, (size_t)c.C))
    return fail(env, "gptForward: addVector must be a Float32Array of width floats");
  if (!num(env, argv[10], &threads) || threads < 1) return fail(env, "gptForward: threads must be >= 1");
  const char *err = rlvr_gpt_forward(&c, params, inputs, targets, (float)temperature, acts, logp, entropy,
                                     add_layer >= 0 ? (int)add_layer : -1, add, (int)threads);
  if (err) {
    char msg[160];
    snprintf(msg, sizeof msg, "gptForward: %s", err);
    return fail(env, msg);
  }
  return 0;
}

/** gptBackward(cfg, params, inputs, targets, temperature, acts, dlogp, dentropy | null, grads, threads) */
static napi_value backward(napi_env env, napi_callback_info cb) {
  size_t argc = 10;
  napi_value argv[10];
  CHECK(napi_get_cb_info(env, cb, &argc, argv, 0, 0));
  if (argc != 10) return fail(env, "gptBackward: expected 10 arguments");
  RlvrGptCfg c;
  if (!read_cfg(env, argv[0], &c)) return fail(env, "gptBackward: " BAD_CFG);
  const size_t N = (size_t)c.B * c.T, P = (size_t)rlvr_gpt_param_count(&c);
  float *params, *acts, *dlogp, *dent = 0, *grads;
  int32_t *inputs, *targets;
  double temperature, threads;
  if (!f32(env, argv[1], &params, P)) return fail(env, "gptBackward: params must be a Float32Array of every parameter");
  if (!ids(env, argv[2], &c, &inputs) || !ids(env, argv[3], &c, &targets))
    return fail(env, "gptBackward: inputs and targets must be Int32Arrays of B*T ids below the vocabulary size");
  if (!num(env, argv[4], &temperature) || !(temperature > 0))
    return fail(env, "gptBackward: temperature must be > 0");
  if (!f32(env, argv[5], &acts, (size_t)rlvr_gpt_acts_size(&c)))
    return fail(env, "gptBackward: acts must be the Float32Array the forward filled");
  if (!f32(env, argv[6], &dlogp, N)) return fail(env, "gptBackward: dlogp must be a Float32Array of B*T floats");
  if (!is_null(env, argv[7]) && !f32(env, argv[7], &dent, N))
    return fail(env, "gptBackward: dentropy must be null or a Float32Array of B*T floats");
  if (!f32(env, argv[8], &grads, P)) return fail(env, "gptBackward: grads must be a Float32Array of every parameter");
  if (!num(env, argv[9], &threads) || threads < 1) return fail(env, "gptBackward: threads must be >= 1");
  const char *err = rlvr_gpt_backward(&c, params, inputs, targets, (float)temperature, acts, dlogp, dent, grads,
                                      (int)threads);
  if (err) {
    char msg[160];
    snprintf(msg, sizeof msg, "gptBackward: %s", err);
    return fail(env, msg);
  }
  return 0;
}

napi_value rlvr_register_gpt(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"gptSizes", 0, sizes, 0, 0, 0, napi_default, 0},
      {"gptForward", 0, forward, 0, 0, 0, napi_default, 0},
      {"gptBackward", 0, backward, 0, 0, 0, napi_default, 0},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}
