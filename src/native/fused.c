// The shared helpers of the fused models (fused.h).
#include "fused.h"
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "native.h"
#include "pool.h"

float *rlvr_scratch(RlvrScratch *s, size_t n) {
  if (n <= s->cap) return s->p;
  float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
  if (!p) return 0;
  free(s->p);
  s->p = p;
  s->cap = n;
  return p;
}

typedef struct {
  rlvr_range_fn fn;
  void *ctx;
  int n, chunk;
  atomic_int next;
} PFor;

static void pfor_thread(void *p, int t) {
  (void)t;
  PFor *f = p;
  for (;;) {
    const int lo = atomic_fetch_add(&f->next, f->chunk);
    if (lo >= f->n) break;
    f->fn(f->ctx, lo, lo + f->chunk < f->n ? lo + f->chunk : f->n);
  }
}

void rlvr_pfor(int threads, int n, int chunk, rlvr_range_fn fn, void *ctx) {
  if (n <= 0) return;
  const int tasks = (n + chunk - 1) / chunk;
  if (threads <= 1 || tasks <= 1) {
    fn(ctx, 0, n);
    return;
  }
  PFor f = {.fn = fn, .ctx = ctx, .n = n, .chunk = chunk};
  atomic_store(&f.next, 0);
  rlvr_pool_run(threads < tasks ? threads : tasks, pfor_thread, &f);
}

static const int32_t ZERO_OFF[1] = {0};

const char *rlvr_mm(const float *A, const float *B, float *C, int M, int K, int N, int ta, int tb, int threads) {
  return rlvr_gemm(A, B, C, ZERO_OFF, ZERO_OFF, 1, M, K, N, ta, tb, 1, threads);
}

static _Thread_local float *tl_buf;
static _Thread_local size_t tl_cap;

float *rlvr_thread_buffer(size_t n, atomic_int *oom) {
  if (n > tl_cap) {
    free(tl_buf);
    tl_buf = malloc(sizeof(float) * n);
    tl_cap = tl_buf ? n : 0;
    if (!tl_buf) {
      atomic_store(oom, 1);
      return 0;
    }
  }
  memset(tl_buf, 0, sizeof(float) * n);
  return tl_buf;
}
