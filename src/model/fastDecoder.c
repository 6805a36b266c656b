// Fused KV-cache decode step of the GPT in src/model/gpt.ts, for WebAssembly with SIMD (128-bit).
// One call runs a whole token step (all layers, and the final LayerNorm + lm_head for the rows that
// want logits) for a batch of sequences decoded in lockstep at the same position. The matmuls are
// batched across those sequences ([nb, K] x [K, O]) with a register-tiled SIMD kernel, so every
// weight loaded is reused for several sequences.
//
// No libc: expf/tanhf are implemented below. Everything is float32 except the LayerNorm
// statistics (float64, as cheap as float32 at these widths). No fused multiply-add, no relaxed
// SIMD, no reassociation: results are bit-identical from run to run, and a sequence's numbers do
// not depend on which other sequences share the batch (every output lane is computed by the same
// sequence of float operations whatever the row tile).
//
// Memory layout (set up by fastDecoder.ts, all float32 unless noted; strides padded to 8 floats):
//   linear weights W [K][Op] row-major (the tfjs [in, out] layout, columns zero-padded to Op)
//   biases [Op] zero-padded; wte [V][C], wpe [T][C] (unpadded)
//   KV cache k, v: [L][B][T][C]
//   activations: x, h, y [B][Cp]; qkv [B][C3p]; mlp [B][Hp]; logits [B][Vp]; att [Tp]
//   rows: rows_b[nb] (int32 batch index), rows_tok[nb] (int32 token), rows_want[nb] (int32 0/1)
//   add [C] (optional): the steering vector added to the residual stream after block add_layer
// Build: scripts/build-kernels.sh (clang --target=wasm32 -O3 -msimd128).
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(#name)))

typedef struct {
  const float *ln1_g, *ln1_b, *attn_w, *attn_b, *proj_w, *proj_b;
  const float *ln2_g, *ln2_b, *fc_w, *fc_b, *mproj_w, *mproj_b;
} Layer;

typedef struct {
  int V, T, L, C, nh, H, B;
  int Cp, C3p, Hp, Vp;
  const float *wte, *wpe, *lnf_g, *lnf_b, *lm_head;
  float *kc, *vc;
  float *x, *h, *qkv, *y, *mlp, *att, *logits;
  const int *rows_b, *rows_tok, *rows_want;
  const Layer *layers;
  // steering: add[0..C) is added to every row's residual stream after block add_layer (add = 0: none)
  int add_layer;
  const float *add;
} Desc;

/** sizeof(Desc) and sizeof(Layer), for the host to check its layout against. */
EXPORT(desc_size) int desc_size(void) { return (int)sizeof(Desc); }
EXPORT(layer_size) int layer_size(void) { return (int)sizeof(Layer); }

#include "../kernels/vmath.h"

/** Test hooks: out[i] = f(in[i]) for n (multiple of 4) floats; f: 0 exp, 1 tanh, 2 gelu. */
EXPORT(vec_math) void vec_math(int f, const float *in, float *out, int n) {
  for (int i = 0; i < n; i += 4) {
    v128_t v = wasm_v128_load(in + i);
    v = f == 0 ? vexp(v) : f == 1 ? vtanh(v) : vgelu(v);
    wasm_v128_store(out + i, v);
  }
}

// ---------------------------------------------------------------------------------------------
// out[r][j] (= or +=) bias[j] + sum_k A[r][k] W[k][j], r < M, j < N (N a multiple of 8).
// Register tile: MR rows x 4*NV columns, default 4 x 8 (8 accumulators; on a 2-core EPYC under
// V8 it beat 6x8, 8x8, 5x8, 3x8, 4x12, 3x16 and 2x16). The column panel W[:, j..j+NR] stays in L1
// while every row tile passes over it. Each lane: acc = bias; acc = acc + a*w for k = 0..K-1 in
// order; then out = acc or out = out + acc. Remainder rows and columns do the same operations,
// so a row's result does not depend on M or on its position in the batch.

#define LD(p) wasm_v128_load(p)
#define ST(p, v) wasm_v128_store(p, v)
#define FMA(c, a, b) c = wasm_f32x4_add(c, wasm_f32x4_mul(a, b))

#ifndef MR
#define MR 4
#endif
#ifndef NV
#define NV 2
#endif
#define NR (4 * NV)

// One tile: rows r..r+R of A, columns j..j+NR (R <= MR, a compile-time constant after inlining).
static inline __attribute__((always_inline)) void mm_tile(const float *A, int lda, int R, int K, const float *W, int ldw,
                                                          const v128_t *bv, float *out, int ldo, int accumulate) {
  v128_t c[MR][NV];
#pragma clang loop unroll(full)
  for (int i = 0; i < MR; i++)
#pragma clang loop unroll(full)
    for (int v = 0; v < NV; v++) c[i][v] = bv[v];
  const float *w = W;
  for (int k = 0; k < K; k++, w += ldw) {
    v128_t wv[NV];
#pragma clang loop unroll(full)
    for (int v = 0; v < NV; v++) wv[v] = LD(w + 4 * v);
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
      if (i < R) {
        const v128_t x = wasm_f32x4_splat(A[i * lda + k]);
#pragma clang loop unroll(full)
        for (int v = 0; v < NV; v++) FMA(c[i][v], x, wv[v]);
      }
    }
  }
#pragma clang loop unroll(full)
  for (int i = 0; i < MR; i++) {
    if (i < R) {
      float *o = out + i * ldo;
#pragma clang loop unroll(full)
      for (int v = 0; v < NV; v++) ST(o + 4 * v, accumulate ? wasm_f32x4_add(LD(o + 4 * v), c[i][v]) : c[i][v]);
    }
  }
}

static void mm(const float *A, int lda, int M, int K, const float *W, int ldw, int N, const float *bias,
               float *out, int ldo, int accumulate) {
  for (int j = 0; j < N; j += NR) {
    const int nv = (N - j) / 4 < NV ? (N - j) / 4 : NV;
    v128_t bv[NV];
#pragma clang loop unroll(full)
    for (int v = 0; v < NV; v++) bv[v] = bias && v < nv ? LD(bias + j + 4 * v) : wasm_f32x4_splat(0.0f);
    int r = 0;
    if (nv == NV) {
      for (; r + MR <= M; r += MR) mm_tile(A + r * lda, lda, MR, K, W + j, ldw, bv, out + r * ldo + j, ldo, accumulate);
      for (; r < M; r++) mm_tile(A + r * lda, lda, 1, K, W + j, ldw, bv, out + r * ldo + j, ldo, accumulate);
    } else {
      // last, narrower column panel: one 4-wide vector at a time, one row at a time
      for (; r < M; r++)
        for (int v = 0; v < nv; v++) {
          v128_t c = bias ? LD(bias + j + 4 * v) : wasm_f32x4_splat(0.0f); // = bv[v], without indexing bv at run time
          const float *a = A + r * lda, *w = W + j + 4 * v;
          for (int k = 0; k < K; k++, w += ldw) FMA(c, wasm_f32x4_splat(a[k]), LD(w));
          float *o = out + r * ldo + j + 4 * v;
          ST(o, accumulate ? wasm_f32x4_add(LD(o), c) : c);
        }
    }
  }
}

// ---------------------------------------------------------------------------------------------

// LayerNorm over C values (eps 1e-5, biased variance); statistics in float64.
static void layernorm(const float *x, const float *g, const float *b, int C, float *out) {
  double mean = 0;
  for (int i = 0; i < C; i++) mean += x[i];
  mean /= C;
  double v = 0;
  for (int i = 0; i < C; i++) {
    double d = x[i] - mean;
    v += d * d;
  }
  double rs = 1.0 / __builtin_sqrt(v / C + 1e-5);
  for (int i = 0; i < C; i++) out[i] = (float)((x[i] - mean) * rs * g[i] + b[i]);
}

// Sum of the lanes of v as (v0 + v2) + (v1 + v3).
static inline float hsum(v128_t v) {
  const v128_t t = wasm_f32x4_add(v, wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
  return wasm_f32x4_extract_lane(t, 0) + wasm_f32x4_extract_lane(t, 1);
}

// Lane sums of four vectors, as one vector [hsum(a), hsum(b), hsum(c), hsum(d)] (same order).
static inline v128_t hsum4(v128_t a, v128_t b, v128_t c, v128_t d) {
  const v128_t ab = wasm_f32x4_add(wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), wasm_i32x4_shuffle(a, b, 2, 6, 3, 7));
  const v128_t cd = wasm_f32x4_add(wasm_i32x4_shuffle(c, d, 0, 4, 1, 5), wasm_i32x4_shuffle(c, d, 2, 6, 3, 7));
  // ab = [a0+a2, b0+b2, a1+a3, b1+b3]
  return wasm_f32x4_add(wasm_i32x4_shuffle(ab, cd, 0, 1, 4, 5), wasm_i32x4_shuffle(ab, cd, 2, 3, 6, 7));
}

// dot(a, b) over n: lane-wise partial sums over 4-chunks, hsum, then the scalar tail in order.
static inline float dot(const float *a, const float *b, int n) {
  int d = 0;
  float s = 0.0f;
  if (n >= 4) {
    v128_t acc = wasm_f32x4_mul(LD(a), LD(b));
    for (d = 4; d + 4 <= n; d += 4) FMA(acc, LD(a + d), LD(b + d));
    s = hsum(acc);
  }
  for (; d < n; d++) s += a[d] * b[d];
  return s;
}

// Causal attention for one row (sequence b at position pos): q = qkv[0..C), the cache holds
// k, v for positions 0..pos. y[C] = concat over heads of softmax(q k^T * scale) v.
static void attention(const Desc *d, const float *q, const float *kc, const float *vc, int pos, float *y) {
  const int C = d->C, nh = d->nh, hd = C / nh;
  const float scale = (float)(1.0 / __builtin_sqrt((double)hd));
  const v128_t vscale = wasm_f32x4_splat(scale);
  float *att = d->att;
  const int n = pos + 1, n4 = (n + 3) & ~3;
  for (int hh = 0; hh < nh; hh++) {
    const int off = hh * hd;
    const float *qh = q + off;
    // scores, four keys at a time when hd is a multiple of 4 (the same sums as dot())
    int j = 0;
    v128_t vmax = wasm_f32x4_splat(-3.4e38f);
    if ((hd & 3) == 0) {
      for (; j + 4 <= n; j += 4) {
        const float *k0 = kc + j * C + off, *k1 = k0 + C, *k2 = k1 + C, *k3 = k2 + C;
        v128_t qv = LD(qh);
        v128_t a0 = wasm_f32x4_mul(qv, LD(k0)), a1 = wasm_f32x4_mul(qv, LD(k1));
        v128_t a2 = wasm_f32x4_mul(qv, LD(k2)), a3 = wasm_f32x4_mul(qv, LD(k3));
        for (int e = 4; e < hd; e += 4) {
          qv = LD(qh + e);
          FMA(a0, qv, LD(k0 + e)); FMA(a1, qv, LD(k1 + e)); FMA(a2, qv, LD(k2 + e)); FMA(a3, qv, LD(k3 + e));
        }
        const v128_t s = wasm_f32x4_mul(hsum4(a0, a1, a2, a3), vscale);
        ST(att + j, s);
        vmax = wasm_f32x4_pmax(vmax, s);
      }
    }
    float max = wasm_f32x4_extract_lane(vmax, 0);
    for (int i = 1; i < 4; i++) {
      const float m = i == 1 ? wasm_f32x4_extract_lane(vmax, 1) : i == 2 ? wasm_f32x4_extract_lane(vmax, 2) : wasm_f32x4_extract_lane(vmax, 3);
      if (m > max) max = m;
    }
    for (; j < n; j++) {
      const float s = dot(qh, kc + j * C + off, hd) * scale;
      att[j] = s;
      if (s > max) max = s;
    }
    // softmax (the padding lanes n..n4 are computed and ignored)
    for (j = n; j < n4; j++) att[j] = max;
    const v128_t vm = wasm_f32x4_splat(max);
    v128_t vsum = wasm_f32x4_splat(0.0f);
    for (j = 0; j < n4; j += 4) {
      v128_t e = vexp(wasm_f32x4_sub(LD(att + j), vm));
      if (j + 4 > n) e = wasm_v128_and(e, wasm_i32x4_gt(wasm_i32x4_splat(n - j), wasm_i32x4_make(0, 1, 2, 3)));
      ST(att + j, e);
      vsum = wasm_f32x4_add(vsum, e);
    }
    const v128_t vinv = wasm_f32x4_div(wasm_f32x4_splat(1.0f), wasm_f32x4_splat(hsum(vsum)));
    // y_h = (sum_j e_j v_j) / sum_j e_j, accumulated over j in order for every element
    float *yh = y + off;
    const float *vh = vc + off;
    int e = 0;
    for (; e + 16 <= hd; e += 16) {
      v128_t c0 = wasm_f32x4_splat(0.0f), c1 = c0, c2 = c0, c3 = c0;
      const float *vr = vh + e;
      for (j = 0; j < n; j++, vr += C) {
        const v128_t a = wasm_f32x4_splat(att[j]);
        FMA(c0, a, LD(vr)); FMA(c1, a, LD(vr + 4)); FMA(c2, a, LD(vr + 8)); FMA(c3, a, LD(vr + 12));
      }
      ST(yh + e, wasm_f32x4_mul(c0, vinv)); ST(yh + e + 4, wasm_f32x4_mul(c1, vinv));
      ST(yh + e + 8, wasm_f32x4_mul(c2, vinv)); ST(yh + e + 12, wasm_f32x4_mul(c3, vinv));
    }
    for (; e + 4 <= hd; e += 4) {
      v128_t c0 = wasm_f32x4_splat(0.0f);
      const float *vr = vh + e;
      for (j = 0; j < n; j++, vr += C) FMA(c0, wasm_f32x4_splat(att[j]), LD(vr));
      ST(yh + e, wasm_f32x4_mul(c0, vinv));
    }
    for (; e < hd; e++) {
      float c = 0.0f;
      const float *vr = vh + e;
      for (j = 0; j < n; j++, vr += C) c += att[j] * *vr;
      yh[e] = c * wasm_f32x4_extract_lane(vinv, 0);
    }
  }
}

/**
 * One decode step for nb rows: row r feeds token rows_tok[r] of sequence rows_b[r] at position
 * pos. Writes k, v into the cache at pos. For the rows with rows_want[r] != 0, in row order,
 * writes the next-token logits into logits[i][0..V) (i counts the wanting rows). Returns that count.
 */
EXPORT(decode_step) int decode_step(const Desc *d, int nb, int pos) {
  const int C = d->C, T = d->T, B = d->B, H = d->H, Cp = d->Cp, C3p = d->C3p, Hp = d->Hp;
  float *x = d->x, *h = d->h, *qkv = d->qkv, *y = d->y, *mlp = d->mlp;
  // embedding
  const float *pe = d->wpe + pos * C;
  for (int r = 0; r < nb; r++) {
    const float *te = d->wte + d->rows_tok[r] * C;
    float *xr = x + r * Cp;
    for (int i = 0; i < C; i++) xr[i] = te[i] + pe[i];
    for (int i = C; i < Cp; i++) xr[i] = 0.0f;
  }
  for (int l = 0; l < d->L; l++) {
    const Layer *w = &d->layers[l];
    for (int r = 0; r < nb; r++) layernorm(x + r * Cp, w->ln1_g, w->ln1_b, C, h + r * Cp);
    mm(h, Cp, nb, C, w->attn_w, C3p, C3p, w->attn_b, qkv, C3p, 0);
    for (int r = 0; r < nb; r++) {
      const int b = d->rows_b[r];
      const long base = ((long)(l * B + b) * T) * C;
      float *kc = d->kc + base, *vc = d->vc + base;
      const float *qr = qkv + r * C3p;
      for (int i = 0; i < C; i++) {
        kc[pos * C + i] = qr[C + i];
        vc[pos * C + i] = qr[2 * C + i];
      }
      attention(d, qr, kc, vc, pos, y + r * Cp);
    }
    mm(y, Cp, nb, C, w->proj_w, Cp, Cp, w->proj_b, x, Cp, 1);
    for (int r = 0; r < nb; r++) layernorm(x + r * Cp, w->ln2_g, w->ln2_b, C, h + r * Cp);
    mm(h, Cp, nb, C, w->fc_w, Hp, Hp, w->fc_b, mlp, Hp, 0);
    for (int r = 0; r < nb; r++) {
      float *m = mlp + r * Hp;
      for (int i = 0; i < Hp; i += 4) ST(m + i, vgelu(LD(m + i)));
    }
    mm(mlp, Hp, nb, H, w->mproj_w, Cp, Cp, w->mproj_b, x, Cp, 1);
    if (d->add && l == d->add_layer)
      for (int r = 0; r < nb; r++) {
        float *xr = x + r * Cp;
        for (int i = 0; i < C; i++) xr[i] += d->add[i];
      }
  }
  int nw = 0;
  for (int r = 0; r < nb; r++) {
    if (!d->rows_want[r]) continue;
    layernorm(x + r * Cp, d->lnf_g, d->lnf_b, C, h + nw * Cp);
    nw++;
  }
  if (nw > 0) mm(h, Cp, nw, C, d->lm_head, d->Vp, d->Vp, 0, d->logits, d->Vp, 0);
  return nw;
}

// ---------------------------------------------------------------------------------------------
// Threads (fastDecoder.ts with threads.ts's WorkerPool: every worker runs its own instance of this
// module over the one shared memory). A step's rows are independent, so they are cut into chunks of
// `chunk` rows taken from an atomic counter by every thread; thread t runs decode_step on its own
// copy ts[t] of the Desc, pointed at the chunk's rows, activations and logits (rows before r0 that
// want logits: want_before[r0]) and at its own attention buffer att[t]. Each row goes through the
// same operations as on one thread: results do not depend on the thread count or the split.
#define MAXT 16

typedef struct {
  const Desc *d;
  int nb, pos, chunk, nchunks;
  int next; // next chunk to take (atomic)
  const int *want_before;
  float *att[MAXT];
  Desc ts[MAXT];
} Job;

EXPORT(job_size) int job_size(void) { return (int)sizeof(Job); }
EXPORT(max_threads) int max_threads(void) { return MAXT; }

/** Thread t (0 = the caller's own) takes chunks of the step until none are left. */
EXPORT(run_job) void run_job(Job *j, int t) {
  Desc *ld = &j->ts[t];
  for (;;) {
    const int c = __atomic_fetch_add(&j->next, 1, __ATOMIC_SEQ_CST);
    if (c >= j->nchunks) break;
    const Desc *d = j->d;
    const int r0 = c * j->chunk, n = j->nb - r0 < j->chunk ? j->nb - r0 : j->chunk;
    *ld = *d;
    ld->x = d->x + r0 * d->Cp;
    ld->h = d->h + r0 * d->Cp;
    ld->y = d->y + r0 * d->Cp;
    ld->qkv = d->qkv + r0 * d->C3p;
    ld->mlp = d->mlp + r0 * d->Hp;
    ld->rows_b = d->rows_b + r0;
    ld->rows_tok = d->rows_tok + r0;
    ld->rows_want = d->rows_want + r0;
    ld->logits = d->logits + j->want_before[r0] * d->Vp;
    ld->att = j->att[t];
    decode_step(ld, n, j->pos);
  }
}
