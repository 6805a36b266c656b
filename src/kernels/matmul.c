// Single-precision matrix multiply for WebAssembly with SIMD (128-bit): C = op(A) op(B), op = identity
// or transpose, batched (each batch item has its own A and B offsets, so any tfjs broadcast works).
// Both operands are packed first (A into 4-row panels [K][4], B into 8-column panels [K][8],
// zero-padded), so the micro-kernel (4 x 8 register tile, 8 accumulators) reads both contiguously
// whatever the transposes; K is blocked by KC so a B panel block stays in L1.
// Every C element is summed over k = 0..K-1 in order (acc = acc + a*b, no reassociation), and
// depends only on its row of op(A) and its column of op(B): results are bit-identical from run to
// run, across transpose combinations, and whatever the split of the work. Built two ways: exact
// (a*b rounded, then added: the same on every CPU) and, with -DRLVR_FMA, with relaxed-SIMD
// f32x4.relaxed_madd, which V8 compiles to a fused multiply-add where the CPU has one (x86-64 FMA3,
// arm64) and to mul + add elsewhere — the same choice in every tier and call on a given CPU
// (fma_probe() tells which). FMA needs half the floating-point instructions.
//
// Threads: the work of one call (a Job in the shared memory) is cut into chunks of up to
// `chunk_rows` output rows of one batch item; every thread (the main thread and the workers, each
// with its own instance of this module over one shared memory) calls run_job, which takes chunks
// from an atomic counter until none are left. Each thread packs into its own Scratch.
// Also in this module (included below): GELU forward/backward for the training graph (gelu.c; run_job splits a long one into
// chunks of floats for the threads), and column sums (colsum.c: tfjs's Sum over leading axes).
// Build: scripts/build-kernels.sh (clang --target=wasm32 -O3 -msimd128 -matomics, imported shared
// memory). Host side: matmul.ts (memory, jobs), threads.ts (workers), tfjs/ (tfjs kernels), gelu.ts and colSum.ts.
#include <wasm_simd128.h>
#include "vmath.h"

#define EXPORT(name) __attribute__((export_name(#name)))
#define LD(p) wasm_v128_load(p)
#define ST(p, v) wasm_v128_store(p, v)
#ifdef RLVR_FMA
#define FMA(c, a, b) c = wasm_f32x4_relaxed_madd(a, b, c)
#else
#define FMA(c, a, b) c = wasm_f32x4_add(c, wasm_f32x4_mul(a, b))
#endif
#define KC 256
#define MAXT 16

/** One thread's packing buffers (float pointers into the shared memory). */
typedef struct {
  float *pa;  // >= pad4(chunk_rows) * K floats
  float *pb;  // >= pad8(N) * K floats
  float *cp;  // >= pad4(chunk_rows) * pad8(N) floats
  int packed; // float offset (boff) of the B matrix now packed in pb; -1: none (reset per job)
} Scratch;

/** One matmul call: for bi < batch, C[bi] [M][N] = op(A + aoff[bi]) op(B + boff[bi]). */
typedef struct {
  const float *A;
  const float *B;
  float *C;
  const int *aoff;
  const int *boff;
  int batch, M, K, N, ta, tb;
  int chunk_rows; // a multiple of 4
  int nchunks;    // batch * ceil(M / chunk_rows)
  int next;       // next chunk to take (atomic)
  int kind;       // 0: matmul; 1, 2: GELU forward / backward over M floats, chunk_rows floats per chunk
  int pad;
  Scratch ts[MAXT];
} Job;

EXPORT(job_size) int job_size(void) { return sizeof(Job); }

/** The multiply-add of the micro-kernel on (1 + 2^-23)(1 - 2^-23) - 1: -2^-46 if fused (one
 * rounding), 0 if not (the product rounds to 1). */
EXPORT(fma_probe) float fma_probe(float a, float b, float c) {
  v128_t acc = wasm_f32x4_splat(c);
  FMA(acc, wasm_f32x4_splat(a), wasm_f32x4_splat(b));
  return wasm_f32x4_extract_lane(acc, 0);
}
EXPORT(max_threads) int max_threads(void) { return MAXT; }

// pa[(i / 4) * K * 4 + k * 4 + i % 4] = op(A)[r0 + i][k] for i < rows, padded with zero rows to a
// multiple of 4. A is [M][K], or [K][M] if ta.
static void pack_a(const float *a, int M, int K, int ta, int r0, int rows, float *pa) {
  if (ta) {
    // A is [K][M]: read each row k once, contiguously, and scatter its 4-float groups to the panels
    const int full = rows & ~3;
    for (int k = 0; k < K; k++) {
      const float *row = a + k * M + r0;
      for (int i0 = 0; i0 < full; i0 += 4) ST(pa + i0 * K + 4 * k, LD(row + i0));
    }
    if (full == rows) return;
    float *p = pa + full * K;
    for (int k = 0; k < K; k++)
      for (int r = 0; r < 4; r++) p[4 * k + r] = full + r < rows ? a[k * M + r0 + full + r] : 0.0f;
    return;
  }
  for (int i0 = 0; i0 < rows; i0 += 4) {
    const int n = rows - i0 < 4 ? rows - i0 : 4;
    const int g = r0 + i0;
    float *p = pa + i0 * K;
    if (n == 4) {
      const float *a0 = a + g * K, *a1 = a0 + K, *a2 = a1 + K, *a3 = a2 + K;
      int k = 0;
      for (; k + 4 <= K; k += 4) {
        // 4x4 transpose of rows g..g+3, columns k..k+3
        const v128_t r0v = LD(a0 + k), r1v = LD(a1 + k), r2v = LD(a2 + k), r3v = LD(a3 + k);
        const v128_t t0 = wasm_i32x4_shuffle(r0v, r1v, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(r2v, r3v, 0, 4, 1, 5);
        const v128_t t2 = wasm_i32x4_shuffle(r0v, r1v, 2, 6, 3, 7), t3 = wasm_i32x4_shuffle(r2v, r3v, 2, 6, 3, 7);
        ST(p + 4 * k, wasm_i32x4_shuffle(t0, t1, 0, 1, 4, 5));
        ST(p + 4 * k + 4, wasm_i32x4_shuffle(t0, t1, 2, 3, 6, 7));
        ST(p + 4 * k + 8, wasm_i32x4_shuffle(t2, t3, 0, 1, 4, 5));
        ST(p + 4 * k + 12, wasm_i32x4_shuffle(t2, t3, 2, 3, 6, 7));
      }
      for (; k < K; k++) {
        p[4 * k] = a0[k]; p[4 * k + 1] = a1[k]; p[4 * k + 2] = a2[k]; p[4 * k + 3] = a3[k];
      }
    } else {
      for (int k = 0; k < K; k++)
        for (int r = 0; r < 4; r++) p[4 * k + r] = r < n ? a[(g + r) * K + k] : 0.0f;
    }
  }
}

// pb[(j / 8) * K * 8 + k * 8 + j % 8] = op(B)[k][j], columns N..Np zero. B is [K][N], or [N][K] if tb.
static void pack_b(const float *b, int K, int N, int tb, float *pb) {
  for (int j0 = 0; j0 < N; j0 += 8) {
    const int cols = N - j0 < 8 ? N - j0 : 8;
    float *p = pb + j0 * K;
    if (!tb && cols == 8) {
      for (int k = 0; k < K; k++) {
        ST(p + 8 * k, LD(b + k * N + j0));
        ST(p + 8 * k + 4, LD(b + k * N + j0 + 4));
      }
    } else if (tb && cols == 8) {
      // rows j0..j0+7 of B [N][K]: 4x4 transposes of columns k..k+3, two row quads
      int k = 0;
      for (; k + 4 <= K; k += 4) {
        for (int h = 0; h < 2; h++) {
          const float *r = b + (j0 + 4 * h) * K + k;
          const v128_t r0v = LD(r), r1v = LD(r + K), r2v = LD(r + 2 * K), r3v = LD(r + 3 * K);
          const v128_t t0 = wasm_i32x4_shuffle(r0v, r1v, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(r2v, r3v, 0, 4, 1, 5);
          const v128_t t2 = wasm_i32x4_shuffle(r0v, r1v, 2, 6, 3, 7), t3 = wasm_i32x4_shuffle(r2v, r3v, 2, 6, 3, 7);
          float *q = p + 8 * k + 4 * h;
          ST(q, wasm_i32x4_shuffle(t0, t1, 0, 1, 4, 5));
          ST(q + 8, wasm_i32x4_shuffle(t0, t1, 2, 3, 6, 7));
          ST(q + 16, wasm_i32x4_shuffle(t2, t3, 0, 1, 4, 5));
          ST(q + 24, wasm_i32x4_shuffle(t2, t3, 2, 3, 6, 7));
        }
      }
      for (; k < K; k++)
        for (int c = 0; c < 8; c++) p[8 * k + c] = b[(j0 + c) * K + k];
    } else {
      for (int k = 0; k < K; k++)
        for (int c = 0; c < 8; c++) p[8 * k + c] = c < cols ? (tb ? b[(j0 + c) * K + k] : b[k * N + j0 + c]) : 0.0f;
    }
  }
}

// c[4][ldc] (+)= pa[kl][4]^T pb[kl][8]
static inline void micro(const float *pa, const float *pb, int kl, float *c, int ldc, int accumulate) {
  v128_t c00, c01, c10, c11, c20, c21, c30, c31;
  if (accumulate) {
    c00 = LD(c); c01 = LD(c + 4);
    c10 = LD(c + ldc); c11 = LD(c + ldc + 4);
    c20 = LD(c + 2 * ldc); c21 = LD(c + 2 * ldc + 4);
    c30 = LD(c + 3 * ldc); c31 = LD(c + 3 * ldc + 4);
  } else {
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = wasm_f32x4_splat(0.0f);
  }
  for (int k = 0; k < kl; k++, pa += 4, pb += 8) {
    const v128_t x0 = wasm_v128_load32_splat(pa), x1 = wasm_v128_load32_splat(pa + 1);
    const v128_t x2 = wasm_v128_load32_splat(pa + 2), x3 = wasm_v128_load32_splat(pa + 3);
    const v128_t b0 = LD(pb);
    FMA(c00, x0, b0); FMA(c10, x1, b0); FMA(c20, x2, b0); FMA(c30, x3, b0);
    const v128_t b1 = LD(pb + 4);
    FMA(c01, x0, b1); FMA(c11, x1, b1); FMA(c21, x2, b1); FMA(c31, x3, b1);
  }
  ST(c, c00); ST(c + 4, c01);
  ST(c + ldc, c10); ST(c + ldc + 4, c11);
  ST(c + 2 * ldc, c20); ST(c + 2 * ldc + 4, c21);
  ST(c + 3 * ldc, c30); ST(c + 3 * ldc + 4, c31);
}

// Rows [r0, r0 + rows) of batch item bi.
static void run_chunk(const Job *j, Scratch *s, int c) {
  const int M = j->M, K = j->K, N = j->N;
  const int nrb = (M + j->chunk_rows - 1) / j->chunk_rows;
  const int bi = c / nrb, r0 = (c % nrb) * j->chunk_rows;
  const int rows = M - r0 < j->chunk_rows ? M - r0 : j->chunk_rows;
  float *out = j->C + bi * M * N + r0 * N;
  if (K == 0) {
    for (int i = 0; i < rows * N; i++) out[i] = 0.0f;
    return;
  }
  const int Mp = (rows + 3) & ~3, Np = (N + 7) & ~7;
  const int bo = j->boff[bi];
  if (s->packed != bo) {
    pack_b(j->B + bo, K, N, j->tb, s->pb);
    s->packed = bo;
  }
  pack_a(j->A + j->aoff[bi], M, K, j->ta, r0, rows, s->pa);
  float *pa = s->pa, *pb = s->pb, *cp = s->cp;
  // Full 4 x 8 tiles are computed in place in `out`; edge tiles in cp (row stride Np), copied out at the end.
  for (int kb = 0; kb < K; kb += KC) {
    const int kl = K - kb < KC ? K - kb : KC;
    for (int jj = 0; jj < Np; jj += 8)
      for (int i = 0; i < Mp; i += 4) {
        const int full = i + 4 <= rows && jj + 8 <= N;
        float *c = full ? out + i * N + jj : cp + i * Np + jj;
        micro(pa + i * K + kb * 4, pb + jj * K + kb * 8, kl, c, full ? N : Np, kb > 0);
      }
  }
  if (rows % 4 == 0 && N % 8 == 0) return;
  for (int i = 0; i < rows; i++)
    for (int jj = 0; jj < N; jj++)
      if (!(i < (rows & ~3) && jj < (N & ~7))) out[i * N + jj] = cp[i * Np + jj];
}

EXPORT(gelu) void gelu(int backward, const float *x, const float *dy, float *out, int n);

/** Thread t (0 = the caller's own thread) takes chunks of the job until none are left. A GELU job
 * (kind 1 or 2) is cut at multiples of 4 floats: every element goes through the same vector
 * operations as in one gelu() call over all of them. */
EXPORT(run_job) void run_job(Job *j, int t) {
  Scratch *s = &j->ts[t];
  for (;;) {
    const int c = __atomic_fetch_add(&j->next, 1, __ATOMIC_SEQ_CST);
    if (c >= j->nchunks) break;
    if (j->kind == 0) {
      run_chunk(j, s, c);
    } else {
      const int i0 = c * j->chunk_rows, n = j->M - i0 < j->chunk_rows ? j->M - i0 : j->chunk_rows;
      gelu(j->kind == 2, j->A + i0, j->kind == 2 ? j->B + i0 : j->B, j->C + i0, n);
    }
  }
}

#include "gelu.c"

#include "colsum.c"
