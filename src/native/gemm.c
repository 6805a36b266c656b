// Native single-precision batched matmul, C[bi] = op(A + aoff[bi]) op(B + boff[bi]), for x86-64 with
// AVX2+FMA or AVX-512 (chosen at run time). It computes every C element exactly as the WebAssembly
// kernel (src/kernels/matmul.c) does: summed over k = 0 … K−1 in order from zero, with one fused
// multiply-add per k (the fma build where V8 fuses, fma != 0) or a rounded product then an add (the
// exact build, fma == 0). Tile shapes, K blocks and the split over threads only decide when each
// element's running sum is stored and reloaded, which does not change a bit: results equal the
// WebAssembly kernel's bit for bit, on any number of threads.
// Blocking in the GotoBLAS manner: a task is (batch item, NC columns, a run of rows); for each KC
// block of K it packs its B columns into NR-wide panels (L2) and, MC rows at a time, its A rows
// into MR-high panels (L1), then runs the MR x NR register tile over them.
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "native.h"
#include "pool.h"

#define KC 256
#define MC 96  // a multiple of both MR (8 and 6)
#define NC 512 // a multiple of both NR (32 and 16)
#define MAXMR 8
#define MAXNR 32

typedef void (*micro_fn)(const float *pa, const float *pb, int kl, float *c, int ldc, int accumulate);
typedef void (*direct_fn)(const float *a, int lda, const float *pb, int kl, float *c, int ldc, int accumulate);

typedef struct {
  const float *A, *B;
  float *C;
  const int32_t *aoff, *boff;
  int batch, M, K, N, ta, tb;
  int MR, NR;
  micro_fn micro;
  direct_fn direct; // for an untransposed A: its full MR-row tiles read in place
  int nc; // columns per task (a multiple of NR, at most NC)
  int rows_per_task, nI, nJ, ntasks;
  atomic_int next;
} Gemm;

#if defined(__x86_64__)
#include <immintrin.h>

// The register tile: c[MR][ldc] (+)= Σ_k a(i, k) · b(k, 0 … NR−1), NR = two vectors of W floats, one
// accumulator per (row, vector). A_EL(i) is a(i, k): from the packed panel (pa[k·MR + i]) or, for an
// untransposed A read in place, from row i (ar[i][k]). Either way each element's sum is the same chain.
#define TILE(V, LOAD, STORE, ZERO, SPLAT, STEP, MR, W, A_EL)                                            \
  V c[MR][2];                                                                                          \
  if (accumulate) {                                                                                    \
    for (int i = 0; i < MR; i++) {                                                                     \
      c[i][0] = LOAD(cc + i * ldc);                                                                    \
      c[i][1] = LOAD(cc + i * ldc + W);                                                                \
    }                                                                                                  \
  } else {                                                                                             \
    for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = ZERO();                                           \
  }                                                                                                    \
  for (int k = 0; k < kl; k++, pb += 2 * W) {                                                          \
    const V b0 = LOAD(pb), b1 = LOAD(pb + W);                                                          \
    for (int i = 0; i < MR; i++) {                                                                     \
      const V a = SPLAT(A_EL(i));                                                                      \
      c[i][0] = STEP(a, b0, c[i][0]);                                                                  \
      c[i][1] = STEP(a, b1, c[i][1]);                                                                  \
    }                                                                                                  \
  }                                                                                                    \
  for (int i = 0; i < MR; i++) {                                                                       \
    STORE(cc + i * ldc, c[i][0]);                                                                      \
    STORE(cc + i * ldc + W, c[i][1]);                                                                  \
  }

#define FMA512(a, b, c) _mm512_fmadd_ps(a, b, c)
#define MULADD512(a, b, c) _mm512_add_ps(c, _mm512_mul_ps(a, b))
#define FMA256(a, b, c) _mm256_fmadd_ps(a, b, c)
#define MULADD256(a, b, c) _mm256_add_ps(c, _mm256_mul_ps(a, b))
#define PACKED_EL(i) pa[k * MR_ + i]
#define DIRECT_EL(i) ar[i][k]

// micro_NAME: A from its packed panel; direct_NAME: A read in place (rows lda apart)
#define DEFINE_TILES(NAME, TARGET, V, LOAD, STORE, ZERO, SPLAT, STEP, MR, W)                            \
  __attribute__((target(TARGET))) static void micro_##NAME(const float *pa, const float *pb, int kl,    \
                                                           float *cc, int ldc, int accumulate) {        \
    enum { MR_ = MR };                                                                                 \
    TILE(V, LOAD, STORE, ZERO, SPLAT, STEP, MR, W, PACKED_EL)                                          \
  }                                                                                                    \
  __attribute__((target(TARGET))) static void direct_##NAME(const float *pa, int lda, const float *pb, \
                                                            int kl, float *cc, int ldc, int accumulate) { \
    const float *ar[MR];                                                                               \
    for (int i = 0; i < MR; i++) ar[i] = pa + (size_t)i * lda;                                         \
    TILE(V, LOAD, STORE, ZERO, SPLAT, STEP, MR, W, DIRECT_EL)                                          \
  }

DEFINE_TILES(avx512_fma, "avx512f,fma", __m512, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_setzero_ps,
             _mm512_set1_ps, FMA512, 8, 16)
DEFINE_TILES(avx512_exact, "avx512f", __m512, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_setzero_ps,
             _mm512_set1_ps, MULADD512, 8, 16)
DEFINE_TILES(avx2_fma, "avx2,fma", __m256, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_setzero_ps, _mm256_set1_ps,
             FMA256, 6, 8)
DEFINE_TILES(avx2_exact, "avx2", __m256, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_setzero_ps, _mm256_set1_ps,
             MULADD256, 6, 8)

static int isa_override = -1;

int rlvr_gemm_isa(void) {
  if (isa_override >= 0) return isa_override;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) return RLVR_ISA_AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return RLVR_ISA_AVX2;
  return RLVR_ISA_NONE;
}

int rlvr_gemm_set_isa(int isa) {
  isa_override = -1;
  if (isa < 0) return rlvr_gemm_isa();
  if (isa > rlvr_gemm_isa()) return -1;
  isa_override = isa;
  return isa;
}
#else
int rlvr_gemm_isa(void) { return RLVR_ISA_NONE; }
int rlvr_gemm_set_isa(int isa) { return isa <= 0 ? RLVR_ISA_NONE : -1; }
#endif

// pa[(i / MR) * kl * MR + k * MR + i % MR] = op(A)[r0 + i][k0 + k], rows padded with zeros to MR.
static void pack_a(const float *a, int M, int K, int ta, int r0, int rows, int k0, int kl, int MR, float *pa) {
  for (int i0 = 0; i0 < rows; i0 += MR) {
    const int n = rows - i0 < MR ? rows - i0 : MR;
    float *p = pa + i0 * kl;
    if (ta) {
      for (int k = 0; k < kl; k++) {
        const float *src = a + (size_t)(k0 + k) * M + r0 + i0;
        int r = 0;
        for (; r < n; r++) p[k * MR + r] = src[r];
        for (; r < MR; r++) p[k * MR + r] = 0.0f;
      }
    } else {
      int k = 0;
      for (; k + 8 <= kl; k += 8) {
        for (int r = 0; r < n; r++) {
          const float *src = a + (size_t)(r0 + i0 + r) * K + k0 + k;
          for (int q = 0; q < 8; q++) p[(k + q) * MR + r] = src[q];
        }
        for (int r = n; r < MR; r++)
          for (int q = 0; q < 8; q++) p[(k + q) * MR + r] = 0.0f;
      }
      for (; k < kl; k++)
        for (int r = 0; r < MR; r++) p[k * MR + r] = r < n ? a[(size_t)(r0 + i0 + r) * K + k0 + k] : 0.0f;
    }
  }
}

// pb[(j / NR) * kl * NR + k * NR + j % NR] = op(B)[k0 + k][c0 + j], columns padded with zeros to NR.
static void pack_b(const float *b, int K, int N, int tb, int c0, int cols, int k0, int kl, int NR, float *pb) {
  for (int j0 = 0; j0 < cols; j0 += NR) {
    const int n = cols - j0 < NR ? cols - j0 : NR;
    float *p = pb + j0 * kl;
    if (tb) {
      // 8 k at a time: each of the panel's rows of B is read 8 contiguous floats at a time, and the
      // writes stay within 8 rows of the panel
      int k = 0;
      for (; k + 8 <= kl; k += 8) {
        for (int c = 0; c < n; c++) {
          const float *src = b + (size_t)(c0 + j0 + c) * K + k0 + k;
          for (int q = 0; q < 8; q++) p[(k + q) * NR + c] = src[q];
        }
        for (int c = n; c < NR; c++)
          for (int q = 0; q < 8; q++) p[(k + q) * NR + c] = 0.0f;
      }
      for (; k < kl; k++)
        for (int c = 0; c < NR; c++) p[k * NR + c] = c < n ? b[(size_t)(c0 + j0 + c) * K + k0 + k] : 0.0f;
    } else {
      for (int k = 0; k < kl; k++) {
        const float *src = b + (size_t)(k0 + k) * N + c0 + j0;
        int c = 0;
        for (; c < n; c++) p[k * NR + c] = src[c];
        for (; c < NR; c++) p[k * NR + c] = 0.0f;
      }
    }
  }
}

// One thread's packing buffers, allocated on its first task and kept.
static _Thread_local float *tl_pa, *tl_pb;

static int ensure_scratch(void) {
  if (tl_pa) return 1;
  tl_pa = aligned_alloc(64, sizeof(float) * MC * KC);
  tl_pb = aligned_alloc(64, sizeof(float) * KC * NC);
  if (!tl_pa || !tl_pb) {
    free(tl_pa);
    free(tl_pb);
    tl_pa = tl_pb = 0;
    return 0;
  }
  return 1;
}

static void run_task(Gemm *g, int id) {
  const int M = g->M, K = g->K, N = g->N, MR = g->MR, NR = g->NR;
  const int bi = id / (g->nJ * g->nI), rem = id % (g->nJ * g->nI);
  const int jb = rem / g->nI, ib = rem % g->nI;
  const int r0 = ib * g->rows_per_task, rows = M - r0 < g->rows_per_task ? M - r0 : g->rows_per_task;
  const int c0 = jb * g->nc, cols = N - c0 < g->nc ? N - c0 : g->nc;
  const float *A = g->A + g->aoff[bi], *B = g->B + g->boff[bi];
  float *C = g->C + (size_t)bi * M * N;
  if (K == 0) {
    for (int i = 0; i < rows; i++) memset(C + (size_t)(r0 + i) * N + c0, 0, sizeof(float) * cols);
    return;
  }
  float tile[MAXMR * MAXNR];
  // K in equal blocks of at most KC (576 = 3 x 192, not 256 + 256 + 64): no short last block
  const int kb = (K + KC - 1) / KC, kc = (K + kb - 1) / kb;
  for (int k0 = 0; k0 < K; k0 += kc) {
    const int kl = K - k0 < kc ? K - k0 : kc;
    pack_b(B, K, N, g->tb, c0, cols, k0, kl, NR, tl_pb);
    for (int i0 = 0; i0 < rows; i0 += MC) {
      const int ml = rows - i0 < MC ? rows - i0 : MC;
      // an untransposed A is read in place, but for its last partial tile of rows (packed, zero-padded)
      const int full = g->ta ? 0 : ml / MR * MR;
      if (full < ml) pack_a(A, M, K, g->ta, r0 + i0 + full, ml - full, k0, kl, MR, tl_pa);
      for (int j = 0; j < cols; j += NR) {
        for (int i = 0; i < ml; i += MR) {
          float *c = C + (size_t)(r0 + i0 + i) * N + c0 + j;
          const float *pa = tl_pa + (i - full) * kl, *pb = tl_pb + j * kl;
          if (i < full) {
            const float *a = A + (size_t)(r0 + i0 + i) * K + k0;
            if (j + NR <= cols) {
              g->direct(a, K, pb, kl, c, N, k0 > 0);
              continue;
            }
            const int nr = cols - j;
            if (k0 > 0)
              for (int r = 0; r < MR; r++) memcpy(tile + r * NR, c + (size_t)r * N, sizeof(float) * nr);
            g->direct(a, K, pb, kl, tile, NR, k0 > 0);
            for (int r = 0; r < MR; r++) memcpy(c + (size_t)r * N, tile + r * NR, sizeof(float) * nr);
            continue;
          }
          if (i + MR <= ml && j + NR <= cols) {
            g->micro(pa, pb, kl, c, N, k0 > 0);
            continue;
          }
          // an edge tile: through a full tile of scratch, only its valid part read and written
          const int mr = ml - i < MR ? ml - i : MR, nr = cols - j < NR ? cols - j : NR;
          if (k0 > 0)
            for (int r = 0; r < mr; r++) memcpy(tile + r * NR, c + (size_t)r * N, sizeof(float) * nr);
          g->micro(pa, pb, kl, tile, NR, k0 > 0);
          for (int r = 0; r < mr; r++) memcpy(c + (size_t)r * N, tile + r * NR, sizeof(float) * nr);
        }
      }
    }
  }
}

static void gemm_thread(void *ctx, int t) {
  (void)t;
  Gemm *g = ctx;
  if (!ensure_scratch()) return; // the caller's own thread checked first: others leave their tasks to it
  for (;;) {
    const int id = atomic_fetch_add(&g->next, 1);
    if (id >= g->ntasks) break;
    run_task(g, id);
  }
}

const char *rlvr_gemm(const float *A, const float *B, float *C, const int32_t *aoff, const int32_t *boff, int batch,
                      int M, int K, int N, int ta, int tb, int fma, int threads) {
  if (batch <= 0 || M <= 0 || N <= 0) return 0;
#if defined(__x86_64__)
  const int isa = rlvr_gemm_isa();
  Gemm g = {.A = A, .B = B, .C = C, .aoff = aoff, .boff = boff, .batch = batch, .M = M, .K = K, .N = N, .ta = ta, .tb = tb};
  if (isa == RLVR_ISA_AVX512) {
    g.MR = 8, g.NR = 32, g.micro = fma ? micro_avx512_fma : micro_avx512_exact;
    g.direct = fma ? direct_avx512_fma : direct_avx512_exact;
  } else if (isa == RLVR_ISA_AVX2) {
    g.MR = 6, g.NR = 16, g.micro = fma ? micro_avx2_fma : micro_avx2_exact;
    g.direct = fma ? direct_avx2_fma : direct_avx2_exact;
  } else {
    return "this CPU has neither AVX2 with FMA nor AVX-512";
  }
  if (!ensure_scratch()) return "out of memory for the packing buffers";
  if (threads < 1) threads = 1;
  // The split into tasks: column blocks of nc and runs of rows. A narrower block packs A once more per
  // block, a shorter run packs B once more per run; so among the splits into at least 2 tasks per
  // thread (or as many as the shape has), take the one with the least packing per flop
  // (1/nc + 1/rows), counting the threads left idle at the last round of tasks.
  g.nc = N < NC ? (N + g.NR - 1) / g.NR * g.NR : NC;
  g.nJ = (N + g.nc - 1) / g.nc;
  g.nI = 1;
  g.rows_per_task = M;
  if (threads > 1) {
    double best = 1e30;
    for (int nI = 1; nI <= 16; nI++) {
      int rows = (M + nI - 1) / nI;
      rows = rows >= MC ? (rows + MC - 1) / MC * MC : (rows + g.MR - 1) / g.MR * g.MR;
      const int ni = (M + rows - 1) / rows;
      for (int nJ = 1; nJ <= 64; nJ++) {
        int nc = (N + nJ - 1) / nJ;
        nc = (nc + g.NR - 1) / g.NR * g.NR;
        if (nc > NC) continue;
        const int nj = (N + nc - 1) / nc;
        const long tasks = (long)batch * nj * ni;
        const long rounds = (tasks + threads - 1) / threads;
        const double idle = (double)(rounds * threads) / tasks;
        const double cost = (1.0 / nc + 1.0 / rows) * idle + (tasks < 2 * threads ? 1.0 : 0.0);
        if (cost < best) {
          best = cost;
          g.nc = nc, g.nJ = nj, g.nI = ni, g.rows_per_task = rows;
        }
        if (nc <= g.NR) break;
      }
    }
  }
  g.ntasks = batch * g.nJ * g.nI;
  atomic_store(&g.next, 0);
  rlvr_pool_run(threads < g.ntasks ? threads : g.ntasks, gemm_thread, &g);
  return 0;
#else
  (void)A, (void)B, (void)C, (void)aoff, (void)boff, (void)batch, (void)M, (void)K, (void)N, (void)ta, (void)tb,
      (void)fma, (void)threads;
  return "native matmul is built for x86-64 only";
#endif
}
