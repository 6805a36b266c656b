// Single-precision matrix multiply for WebAssembly with SIMD (128-bit): C = op(A) op(B), op = identity
// or transpose, batched. Both operands are packed first (A into 4-row panels [K][4], B into
// 8-column panels [K][8], zero-padded), so the micro-kernel (4 x 8 register tile, 8 accumulators)
// reads both contiguously whatever the transposes; K is blocked by KC so a B panel block stays in
// L1. Every C element is summed over k = 0..K-1 in order (acc = acc + a*b, no FMA, no
// reassociation): results are bit-identical from run to run and across transpose combinations.
// Build: scripts/build-kernels.sh (clang --target=wasm32 -O3 -msimd128). Host side: matmul.ts.
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))
#define LD(p) wasm_v128_load(p)
#define ST(p, v) wasm_v128_store(p, v)
#define FMA(c, a, b) c = wasm_f32x4_add(c, wasm_f32x4_mul(a, b))
#define KC 256

// pa[(i / 4) * K * 4 + k * 4 + i % 4] = op(A)[i][k], rows M..Mp zero. A is [M][K], or [K][M] if ta.
static void pack_a(const float *a, int M, int K, int ta, float *pa) {
  for (int i0 = 0; i0 < M; i0 += 4) {
    const int rows = M - i0 < 4 ? M - i0 : 4;
    float *p = pa + i0 * K;
    if (ta && rows == 4) {
      for (int k = 0; k < K; k++) ST(p + 4 * k, LD(a + k * M + i0));
    } else {
      for (int k = 0; k < K; k++)
        for (int r = 0; r < 4; r++) p[4 * k + r] = r < rows ? (ta ? a[k * M + i0 + r] : a[(i0 + r) * K + k]) : 0.0f;
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
      const float *b0 = b + j0 * K;
      for (int k = 0; k < K; k++)
        for (int c = 0; c < 8; c++) p[8 * k + c] = b0[c * K + k];
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
    const v128_t av = LD(pa), b0 = LD(pb), b1 = LD(pb + 4);
    v128_t x;
    x = wasm_i32x4_shuffle(av, av, 0, 0, 0, 0); FMA(c00, x, b0); FMA(c01, x, b1);
    x = wasm_i32x4_shuffle(av, av, 1, 1, 1, 1); FMA(c10, x, b0); FMA(c11, x, b1);
    x = wasm_i32x4_shuffle(av, av, 2, 2, 2, 2); FMA(c20, x, b0); FMA(c21, x, b1);
    x = wasm_i32x4_shuffle(av, av, 3, 3, 3, 3); FMA(c30, x, b0); FMA(c31, x, b1);
  }
  ST(c, c00); ST(c + 4, c01);
  ST(c + ldc, c10); ST(c + ldc + 4, c11);
  ST(c + 2 * ldc, c20); ST(c + 2 * ldc + 4, c21);
  ST(c + 3 * ldc, c30); ST(c + 3 * ldc + 4, c31);
}

/**
 * For each of `batch` items: C[M][N] = op(A) op(B), op(A) [M][K], op(B) [K][N]; A is [M][K] ([K][M]
 * if ta), B is [K][N] ([N][K] if tb). Items are strideA / strideB / M*N floats apart (strideB 0:
 * one B for every item, packed once). Scratch: pa >= pad4(M)*K, pb >= pad8(N)*K,
 * cp >= pad4(M)*pad8(N) floats.
 */
EXPORT(matmul) void matmul(const float *A, const float *B, float *C, int batch, int M, int K, int N, int ta, int tb,
                           int strideA, int strideB, float *pa, float *pb, float *cp) {
  const int Mp = (M + 3) & ~3, Np = (N + 7) & ~7;
  for (int bi = 0; bi < batch; bi++) {
    float *c = C + bi * M * N;
    if (K == 0) {
      for (int i = 0; i < M * N; i++) c[i] = 0.0f;
      continue;
    }
    pack_a(A + bi * strideA, M, K, ta, pa);
    if (bi == 0 || strideB != 0) pack_b(B + bi * strideB, K, N, tb, pb);
    for (int kb = 0; kb < K; kb += KC) {
      const int kl = K - kb < KC ? K - kb : KC;
      for (int j = 0; j < Np; j += 8)
        for (int i = 0; i < Mp; i += 4) micro(pa + i * K + kb * 4, pb + j * K + kb * 8, kl, cp + i * Np + j, Np, kb > 0);
    }
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) c[i * N + j] = cp[i * Np + j];
  }
}
