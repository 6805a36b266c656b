// The CPU's multiply-add ceiling as the native kernels see it: independent chains of fused
// multiply-adds on registers only (no memory traffic), on 1 … T threads at once, for the bench's
// ceiling figures (what the native matmul is measured against).
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include "native.h"
#include "pool.h"

#if defined(__x86_64__)
#include <immintrin.h>

// 12 independent accumulators: enough to cover the FMA latency on both pipes
#define PEAK_BODY(T, SET1, FMA, ADD)                                                                 \
  T acc[12];                                                                                                \
  for (int j = 0; j < 12; j++) acc[j] = SET1(1.0f + j * 1e-3f);                                             \
  const T m = SET1(0.999999f), a = SET1(1e-7f);                                                             \
  for (long i = 0; i < iters; i++)                                                                          \
    for (int j = 0; j < 12; j++) acc[j] = FMA(acc[j], m, a);                                                \
  T s = acc[0];                                                                                             \
  for (int j = 1; j < 12; j++) s = ADD(s, acc[j]);                                                          \
  float f[sizeof(T) / sizeof(float)];                                                                       \
  memcpy(f, &s, sizeof f);                                                                                  \
  return f[0];

__attribute__((target("avx512f"))) static float loop512(long iters) {
  PEAK_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps)
}
__attribute__((target("avx2,fma"))) static float loop256(long iters) {
  PEAK_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps)
}

typedef struct {
  long iters;
  atomic_int ran;
  volatile float sink;
} Peak;

static void peak_thread(void *ctx, int t) {
  (void)t;
  Peak *p = ctx;
  p->sink += rlvr_gemm_isa() == RLVR_ISA_AVX512 ? loop512(p->iters) : loop256(p->iters);
  atomic_fetch_add(&p->ran, 1);
}
#endif

double rlvr_fma_peak(int threads, long iters, int *ran) {
  *ran = 0;
#if defined(__x86_64__)
  if (rlvr_gemm_isa() == RLVR_ISA_NONE) return 0;
  Peak p = {.iters = iters, .sink = 0};
  atomic_store(&p.ran, 0);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  rlvr_pool_run(threads, peak_thread, &p);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  *ran = atomic_load(&p.ran);
  const double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
  const int lanes = rlvr_gemm_isa() == RLVR_ISA_AVX512 ? 16 : 8;
  return (double)*ran * iters * 12 * lanes * 2 / s / 1e9;
#else
  (void)threads, (void)iters;
  return 0;
#endif
}
