// A persistent pool of native threads for the addon's kernels (pool.c): rlvr_pool_run(T, fn, ctx)
// calls fn(ctx, t) for t = 0 (the caller's thread) … T − 1 (workers, started on first use) and
// returns when every call has returned. Kernels split their work by taking task indices from an
// atomic counter inside fn, so the split never changes a result.
#ifndef RLVR_POOL_H
#define RLVR_POOL_H
#define RLVR_MAX_THREADS 64
typedef void (*rlvr_pool_fn)(void *ctx, int t);
void rlvr_pool_run(int threads, rlvr_pool_fn fn, void *ctx);
/** microseconds a worker spins for the next call before it sleeps (default 200) */
void rlvr_pool_set_spin(int us);
#endif
