// Helpers every Node-API file of the addon shares: a checked call, a thrown error, and reading a
// typed array or an integer argument. Static inline: each file gets its own copy, no symbols exported.
#ifndef RLVR_NAPI_UTIL_H
#define RLVR_NAPI_UTIL_H
#include <node_api.h>
#include <stdint.h>

/** returns 0 from the calling function, with a JavaScript error thrown, if the call fails */
#define CHECK(call)                                                                                    \
  do {                                                                                                 \
    if ((call) != napi_ok) {                                                                           \
      napi_throw_error(env, 0, "rlvr_native: Node-API call failed: " #call);                           \
      return 0;                                                                                        \
    }                                                                                                  \
  } while (0)

static inline napi_value fail(napi_env env, const char *msg) {
  napi_throw_error(env, 0, msg);
  return 0;
}

/** a typed array argument of the given type: its data and length (in elements) */
static inline int typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, v, &type, len, data, 0, 0) != napi_ok) return 0;
  return type == want;
}

static inline int int_arg(napi_env env, napi_value v, int64_t *out) {
  return napi_get_value_int64(env, v, out) == napi_ok;
}

static inline int is_null(napi_env env, napi_value v) {
  napi_valuetype t;
  return napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined);
}
#endif
