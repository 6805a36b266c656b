// The native addon's kernels (built by scripts/build-native.sh into build/rlvr_native.node; loaded
// by src/engine/native.ts). Each takes plain pointers: the JavaScript side passes typed arrays, views
// of the tfjs-wasm heap or of its own memory.
#ifndef RLVR_NATIVE_H
#define RLVR_NATIVE_H
#include <stdint.h>
enum { RLVR_ISA_NONE = 0, RLVR_ISA_AVX2 = 1, RLVR_ISA_AVX512 = 2 };
/** the best instruction set this CPU supports, or the one set with rlvr_gemm_set_isa */
int rlvr_gemm_isa(void);
/** use `isa` (a lower one than the CPU's best, for tests), −1: the best again; −1 if unsupported */
int rlvr_gemm_set_isa(int isa);
/** C[bi] (M x N) = op(A + aoff[bi]) op(B + boff[bi]) for bi < batch; null, or why it could not run */
const char *rlvr_gemm(const float *A, const float *B, float *C, const int32_t *aoff, const int32_t *boff, int batch,
                      int M, int K, int N, int ta, int tb, int fma, int threads);
/** GFLOP/s of independent register-only fused multiply-add chains on `threads` threads at once, each
 * running `iters` rounds of 12 vector FMAs; *ran: the threads that took part */
double rlvr_fma_peak(int threads, long iters, int *ran);
#endif
