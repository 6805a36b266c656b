// The native thread pool (pool.h). Workers wait for a new generation of work: they spin for a
// while (back-to-back kernel calls of one training step follow each other within microseconds),
// then sleep on a condition variable. A call does not wait for workers that were slow to wake:
// the caller runs its own share (a kernel's tasks come from a shared counter, so it takes whatever
// no worker has taken), then closes the call; a worker that wakes after that skips it, and the
// caller waits only for the workers that joined before. So a worker descheduled by another process
// costs nothing unless it holds a task.
#include "pool.h"
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define CLOSED (1 << 30)

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int started = 0;            // workers running (their t = 1 … started)
static atomic_int generation = 0;  // (call number << 8) | workers invited to it
static atomic_int joined = 0;      // workers that joined the current call, | CLOSED once it is closed
static atomic_int finished = 0;    // joined workers that have returned
static rlvr_pool_fn job_fn;
static void *job_ctx;
static atomic_int spin_us = 200;
static int start_seen[RLVR_MAX_THREADS]; // the generation before a worker's first call

void rlvr_pool_set_spin(int us) { atomic_store(&spin_us, us < 0 ? 0 : us); }

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int start_seen[RLVR_MAX_THREADS]; // the generation before a worker's first call

static void *worker(void *arg) {
  const int t = (int)(long)arg;
  int seen = start_seen[t];
  for (;;) {
    const double until = now_us() + atomic_load(&spin_us);
    int g;
    int n = 0;
    while ((g = atomic_load_explicit(&generation, memory_order_acquire)) == seen) {
      CPU_RELAX();
      if (++n % 64 == 0 && now_us() > until) {
        pthread_mutex_lock(&mu);
        while ((g = atomic_load(&generation)) == seen) pthread_cond_wait(&wake, &mu);
        pthread_mutex_unlock(&mu);
        break;
      }
    }
    seen = g;
    if (t > (g & 0xff)) continue;
    int s = atomic_load(&joined);
    for (;;) {
      if (s & CLOSED) break;
      if (atomic_compare_exchange_weak(&joined, &s, s + 1)) {
        job_fn(job_ctx, t);
        atomic_fetch_add_explicit(&finished, 1, memory_order_acq_rel);
        break;
      }
    }
  }
  return 0;
}

void rlvr_pool_run(int threads, rlvr_pool_fn fn, void *ctx) {
  if (threads > RLVR_MAX_THREADS) threads = RLVR_MAX_THREADS;
  if (threads <= 1) {
    fn(ctx, 0);
    return;
  }
  pthread_mutex_lock(&mu);
  while (started < threads - 1) {
    pthread_t th;
    start_seen[started + 1] = atomic_load(&generation);
    if (pthread_create(&th, 0, worker, (void *)(long)(started + 1)) != 0) break;
    pthread_detach(th);
    started++;
  }
  const int workers = started < threads - 1 ? started : threads - 1;
  job_fn = fn;
  job_ctx = ctx;
  atomic_store(&finished, 0);
  atomic_store_explicit(&joined, 0, memory_order_release);
  const int next = ((atomic_load(&generation) >> 8) + 1) & 0xffffff;
  atomic_store_explicit(&generation, (next << 8) | workers, memory_order_release);
  pthread_cond_broadcast(&wake);
  pthread_mutex_unlock(&mu);
  fn(ctx, 0);
  const int j = atomic_fetch_or(&joined, CLOSED) & ~CLOSED;
  while (atomic_load_explicit(&finished, memory_order_acquire) < j) CPU_RELAX();
}
