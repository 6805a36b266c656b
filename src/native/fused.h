// What the fused models (gpt.c, llama.c) share: error propagation, a kept scratch buffer, the
// parallel loop over index ranges on the pool, a one-matrix product, a per-thread zeroed buffer, and a
// vector exponential. fused.c holds the functions.
#ifndef RLVR_FUSED_H
#define RLVR_FUSED_H
#include <stdatomic.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>

/** returns the error string from the calling function if `call` gives one */
#define TRY(call)                                                                                      \
  do {                                                                                                 \
    const char *e_ = (call);                                                                           \
    if (e_) return e_;                                                                                 \
  } while (0)

/** a buffer kept between calls, grown as needed (64-byte aligned) */
typedef struct {
  float *p;
  size_t cap;
} RlvrScratch;
/** at least n floats of `s` (contents not kept when it grows), or null without memory */
float *rlvr_scratch(RlvrScratch *s, size_t n);

typedef void (*rlvr_range_fn)(void *ctx, int lo, int hi);
/** fn over [0, n) in chunks of `chunk`, on up to `threads` threads (chunks taken from a counter) */
void rlvr_pfor(int threads, int n, int chunk, rlvr_range_fn fn, void *ctx);

/** C[M, N] = op(A) op(B), one matrix, fused multiply-adds */
const char *rlvr_mm(const float *A, const float *B, float *C, int M, int K, int N, int ta, int tb, int threads);

/** this thread's buffer of at least n floats, zeroed, kept (pool threads live as long as the process);
 * null, with *oom set, without memory */
float *rlvr_thread_buffer(size_t n, atomic_int *oom);

#if defined(__x86_64__)
#include <immintrin.h>
/** e^x for 8 floats: range reduction by ln 2 in two parts, degree-7 polynomial, clamped to float's range */
__attribute__((target("avx2"))) static inline __m256 rlvr_vexp8(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
  x = _mm256_min_ps(x, _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693145751953125f)));
  r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(1.42860682030941723212e-6f)));
  __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 720.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(0.5f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
  p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}
#endif

/** s[t] = e^(s[t] − mx) for t < n (in place); returns their sum */
#if defined(__x86_64__)
__attribute__((target("avx2")))
#endif
static inline float rlvr_exp_shifted(float *s, int n, float mx) {
  float sum = 0;
  int t = 0;
#if defined(__x86_64__)
  __m256 acc = _mm256_setzero_ps();
  for (; t + 8 <= n; t += 8) {
    const __m256 e = rlvr_vexp8(_mm256_sub_ps(_mm256_loadu_ps(s + t), _mm256_set1_ps(mx)));
    _mm256_storeu_ps(s + t, e);
    acc = _mm256_add_ps(acc, e);
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, acc);
  for (int k = 0; k < 8; k++) sum += lanes[k];
#endif
  for (; t < n; t++) {
    s[t] = expf(s[t] - mx);
    sum += s[t];
  }
  return sum;
}
#endif
