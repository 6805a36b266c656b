// The Llama family's teacher-forced forward (embedding gather, blocks, final norm, output layer,
// log-softmax at a temperature, target log-probs, entropy) and its whole backward, one call each
// (llama.h). Parameters and gradients: tables of pointers, one tensor each, in llamaParamShapes()
// order (src/model/llama.ts). Matmuls go to rlvr_gemm (weights are [out, in]: x Wᵀ is a product
// with a transposed B); RMSNorm, RoPE, attention, SwiGLU and the softmax head are split over rows,
// (sequence, key-value head) pairs or columns on the pool. The output layer runs over vocabulary
// slices: the forward keeps per row a running maximum, Σ exp and Σ exp · shifted logit (in double);
// the backward takes each slice's logits from the activations where the caller asked to keep them
// (keep_logits: the caller bounds that memory), else computes them again. The backward also
// recomputes the normed inputs of the projections, the SwiGLU product and the attention
// probabilities from what the forward kept. The small helpers (exp, the register-held attention
// sums, the parallel loop) are the ones of gpt.c, repeated here as statics.
#include "llama.h"
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "native.h"
#include "pool.h"
#include "fused.h"

/** the forward's and backward's working memory, kept between calls */
static RlvrScratch scratch;

#if defined(__x86_64__)
#include <immintrin.h>
// (fma: only where an intrinsic asks for it; -ffp-contract=off keeps the compiler from fusing others)
#define VEC __attribute__((target("avx2,fma")))
#else
#define VEC
#endif

// ---- layouts ------------------------------------------------------------------------------------

/** one layer's weights (or their gradients); absent ones (biases, q/k norms) null */
typedef struct {
  float *in_norm, *qw, *qb, *kw, *kb, *vw, *vb, *ow, *ob, *qn, *kn, *post_norm, *gw, *uw, *dw;
} LayerW;

/** the sizes of the parameter tensors, in llamaParamShapes() order, into sizes (may be null);
 * returns how many there are */
static int tensor_sizes(const RlvrLlamaCfg *c, int64_t *sizes) {
  const int64_t C = c->C, I = c->I, Q = (int64_t)c->nh * c->hd, KV = (int64_t)c->nkv * c->hd;
  int n = 0;
#define PUT(x)                                                                                         \
  do {                                                                                                 \
    if (sizes) sizes[n] = (x);                                                                         \
    n++;                                                                                               \
  } while (0)
  PUT((int64_t)c->V * C);
  for (int l = 0; l < c->L; l++) {
    PUT(C);
    PUT(Q * C);
    if (c->qkv_bias) PUT(Q);
    PUT(KV * C);
    if (c->qkv_bias) PUT(KV);
    PUT(KV * C);
    if (c->qkv_bias) PUT(KV);
    PUT(C * Q);
    if (c->o_bias) PUT(C);
    if (c->qk_norm) {
      PUT(c->hd);
      PUT(c->hd);
    }
    PUT(C);
    PUT(I * C);
    PUT(I * C);
    PUT(C * I);
  }
  PUT(C);
  if (!c->tied) PUT((int64_t)c->V * C);
#undef PUT
  return n;
}

int rlvr_llama_tensor_count(const RlvrLlamaCfg *c) { return tensor_sizes(c, 0); }
void rlvr_llama_tensor_sizes(const RlvrLlamaCfg *c, int64_t *sizes) { tensor_sizes(c, sizes); }

/** the tensors of a table, by role: layers (L of them), embedding, final norm, output layer */
typedef struct {
  LayerW *layers;
  float *emb, *norm, *lm;
} Weights;

// the layer tables of the parameters (slot 0) and the gradients (slot 1), grown as needed
static LayerW *layer_tables[2];
static int layer_caps[2];

static const char *weights_of(const RlvrLlamaCfg *c, float *const *t, Weights *w, int slot) {
  if (c->L > layer_caps[slot]) {
    LayerW *p = realloc(layer_tables[slot], sizeof(LayerW) * (size_t)c->L);
    if (!p) return "out of memory";
    layer_tables[slot] = p;
    layer_caps[slot] = c->L;
  }
  w->layers = layer_tables[slot];
  memset(w->layers, 0, sizeof(LayerW) * (size_t)c->L);
  int n = 0;
  w->emb = t[n++];
  for (int l = 0; l < c->L; l++) {
    LayerW *x = &w->layers[l];
    x->in_norm = t[n++];
    x->qw = t[n++];
    if (c->qkv_bias) x->qb = t[n++];
    x->kw = t[n++];
    if (c->qkv_bias) x->kb = t[n++];
    x->vw = t[n++];
    if (c->qkv_bias) x->vb = t[n++];
    x->ow = t[n++];
    if (c->o_bias) x->ob = t[n++];
    if (c->qk_norm) x->qn = t[n++], x->kn = t[n++];
    x->post_norm = t[n++];
    x->gw = t[n++];
    x->uw = t[n++];
    x->dw = t[n++];
  }
  w->norm = t[n++];
  w->lm = c->tied ? w->emb : t[n++];
  return 0;
}

// Per layer: xin (the layer's input) and its RMS factor r1; qraw, kraw (projections before the
// q/k norm, qwen3 only); q, k (after norm and RoPE), v; atty (heads concatenated); xmid (after
// attention) and r2; gate, up (before SwiGLU).
typedef struct {
  int64_t xin, r1, qraw, kraw, q, k, v, atty, xmid, r2, gate, up, size;
} LayerActs;

typedef struct {
  int64_t xL, rf, hn, lse, ent, z, zsize, total;
  LayerActs la;
} ActLayout;

static ActLayout act_layout(const RlvrLlamaCfg *c) {
  const int64_t N = (int64_t)c->B * c->T, C = c->C, I = c->I, Q = (int64_t)c->nh * c->hd,
                KV = (int64_t)c->nkv * c->hd;
  ActLayout a;
  LayerActs *l = &a.la;
  int64_t o = 0;
  l->xin = o, o += N * C;
  l->r1 = o, o += N;
  l->qraw = o, o += c->qk_norm ? N * Q : 0;
  l->kraw = o, o += c->qk_norm ? N * KV : 0;
  l->q = o, o += N * Q;
  l->k = o, o += N * KV;
  l->v = o, o += N * KV;
  l->atty = o, o += N * Q;
  l->xmid = o, o += N * C;
  l->r2 = o, o += N;
  l->gate = o, o += N * I;
  l->up = o, o += N * I;
  l->size = o;
  o = c->L * l->size;
  a.xL = o, o += N * C;
  a.rf = o, o += N;
  a.hn = o, o += N * C;
  a.lse = o, o += N;
  a.ent = o, o += N;
  a.zsize = c->keep_logits ? N * c->V : 0;
  a.z = o, o += a.zsize;
  a.total = o;
  return a;
}

int64_t rlvr_llama_acts_size(const RlvrLlamaCfg *c) { return act_layout(c).total; }

const char *rlvr_llama_check(const RlvrLlamaCfg *c) {
  if (c->B <= 0 || c->T <= 0 || c->C <= 0 || c->L <= 0 || c->V <= 0 || c->I <= 0 || c->nh <= 0 || c->nkv <= 0 ||
      c->hd <= 0)
    return "sizes must be positive";
  if (c->nh % c->nkv) return "key-value heads must divide the query heads";
  if (c->hd % 2) return "head_dim must be even";
  const int64_t N = (int64_t)c->B * c->T;
  if (N * c->I >= INT32_MAX || N * c->C >= INT32_MAX || N * (int64_t)c->nh * c->hd >= INT32_MAX)
    return "batch too large";
  return 0;
}

// ---- the job shared by the row, column and pair loops ----------------------------------------------

typedef struct {
  const RlvrLlamaCfg *c;
  int width, rows, threads;
  float eps, tau, scale;
  // RMSNorm
  const float *x, *w, *dy;
  float *y, *r, *dx, *dw;
  int accumulate;
  // bias, residual
  const float *bias, *res, *add;
  float *out;
  // RoPE
  const float *cos, *sin;
  float *rot;
  int heads;
  // attention
  const float *q, *k, *v, *datty;
  float *atty, *dq, *dk, *dv;
  // SwiGLU
  const float *gate, *up;
  float *act, *dgate, *dup;
  // head
  const float *z;
  float *dz;
  const int32_t *targets;
  int v0, vs;
  double *hm, *hs, *hq;
  float *st;
  const float *lse, *ent, *dlogp, *dent;
} Job;

/** RMSNorm rows [lo, hi) of [*, width]: y = x · r · w with r = 1 / sqrt(mean(x²) + eps), r kept */
VEC static void rms_rows(void *p, int lo, int hi) {
  const Job *j = p;
  const int W = j->width;
  for (int row = lo; row < hi; row++) {
    const float *x = j->x + (size_t)row * W;
    double a[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= W; i += 4)
      for (int k = 0; k < 4; k++) a[k] += (double)x[i + k] * x[i + k];
    for (; i < W; i++) a[0] += (double)x[i] * x[i];
    const float ms = (float)(((a[0] + a[1]) + (a[2] + a[3])) / W);
    const float r = (float)(1.0 / sqrt((double)(ms + j->eps)));
    float *y = j->y + (size_t)row * W;
    for (i = 0; i < W; i++) y[i] = x[i] * r * j->w[i];
    if (j->r) j->r[row] = r;
  }
}

/** RMSNorm backward rows [lo, hi): dx (=, or += with accumulate) = r (dn − n · mean(dn · n)),
 * n = x · r, dn = dy · w */
VEC static void rms_back_rows(void *p, int lo, int hi) {
  const Job *j = p;
  const int W = j->width;
  for (int row = lo; row < hi; row++) {
    const float *x = j->x + (size_t)row * W, *dy = j->dy + (size_t)row * W;
    float *dx = j->dx + (size_t)row * W;
    const float r = j->r[row];
    double s = 0;
    for (int i = 0; i < W; i++) s += (double)(dy[i] * j->w[i]) * (x[i] * r);
    const float m = (float)(s / W);
    if (j->accumulate)
      for (int i = 0; i < W; i++) dx[i] += r * (dy[i] * j->w[i] - (x[i] * r) * m);
    else
      for (int i = 0; i < W; i++) dx[i] = r * (dy[i] * j->w[i] - (x[i] * r) * m);
  }
}

/** columns [lo, hi) of [rows, width]: dw = Σ_rows dy · x · r */
static void rms_back_cols(void *p, int lo, int hi) {
  const Job *j = p;
  const int W = j->width, R = j->rows;
  double s[16];
  for (int c0 = lo; c0 < hi; c0 += 16) {
    const int w = hi - c0 < 16 ? hi - c0 : 16;
    for (int k = 0; k < w; k++) s[k] = 0;
    for (int row = 0; row < R; row++) {
      const float *x = j->x + (size_t)row * W + c0, *dy = j->dy + (size_t)row * W + c0;
      const float r = j->r[row];
      for (int k = 0; k < w; k++) s[k] += (double)dy[k] * (x[k] * r);
    }
    for (int k = 0; k < w; k++) j->dw[c0 + k] = (float)s[k];
  }
}

/** columns [lo, hi) of [rows, width]: dw = Σ rows of dy (a bias gradient) */
static void colsum_cols(void *p, int lo, int hi) {
  const Job *j = p;
  const int W = j->width, R = j->rows;
  double s[16];
  for (int c0 = lo; c0 < hi; c0 += 16) {
    const int w = hi - c0 < 16 ? hi - c0 : 16;
    for (int k = 0; k < w; k++) s[k] = 0;
    for (int row = 0; row < R; row++) {
      const float *dy = j->dy + (size_t)row * W + c0;
      for (int k = 0; k < w; k++) s[k] += dy[k];
    }
    for (int k = 0; k < w; k++) j->dw[c0 + k] = (float)s[k];
  }
}

/** rows [lo, hi) of [*, width]: y += bias */
VEC static void bias_rows(void *p, int lo, int hi) {
  const Job *j = p;
  const int W = j->width;
  for (int row = lo; row < hi; row++) {
    float *y = j->y + (size_t)row * W;
    for (int i = 0; i < W; i++) y[i] += j->bias[i];
  }
}

/** rows [lo, hi) of [*, width]: out = res + (y (+ bias)) (+ add) */
VEC static void residual_rows(void *p, int lo, int hi) {
  const Job *j = p;
  const int W = j->width;
  for (int row = lo; row < hi; row++) {
    const float *res = j->res + (size_t)row * W, *y = j->y + (size_t)row * W;
    float *out = j->out + (size_t)row * W;
    if (j->bias)
      for (int i = 0; i < W; i++) out[i] = res[i] + (y[i] + j->bias[i]);
    else
      for (int i = 0; i < W; i++) out[i] = res[i] + y[i];
    if (j->add)
      for (int i = 0; i < W; i++) out[i] += j->add[i];
  }
}

/** rows [lo, hi) of [*, width]: out += y */
VEC static void add_rows(void *p, int lo, int hi) {
  const Job *j = p;
  const int W = j->width;
  for (int row = lo; row < hi; row++) {
    const float *y = j->y + (size_t)row * W;
    float *out = j->out + (size_t)row * W;
    for (int i = 0; i < W; i++) out[i] += y[i];
  }
}

/** RoPE, in place, on rows [lo, hi) of rot [N, heads · hd] (position: row % T); backward: the
 * transposed rotation (the same tables, sin's sign swapped between halves) */
VEC static void rope_rows_dir(const Job *j, int lo, int hi, int back) {
  const int hd = j->c->hd, half = hd / 2, T = j->c->T, W = j->heads * hd;
  for (int row = lo; row < hi; row++) {
    const float *cs = j->cos + (size_t)(row % T) * hd, *sn = j->sin + (size_t)(row % T) * hd;
    for (int h = 0; h < j->heads; h++) {
      float *x = j->rot + (size_t)row * W + h * hd;
      for (int i = 0; i < half; i++) {
        const float a = x[i], b = x[i + half];
        if (!back) {
          x[i] = a * cs[i] + b * sn[i];
          x[i + half] = b * cs[i + half] + a * sn[i + half];
        } else {
          x[i] = a * cs[i] + b * sn[i + half];
          x[i + half] = b * cs[i + half] + a * sn[i];
        }
      }
    }
  }
}

static void rope_rows(void *p, int lo, int hi) { rope_rows_dir(p, lo, hi, 0); }
static void rope_back_rows(void *p, int lo, int hi) { rope_rows_dir(p, lo, hi, 1); }

/** s[i] = sigmoid(g[i]) = 1 / (1 + exp(−g[i])) for i < n (n <= 256), the exponentials vectorised */
VEC static inline void sigmoid_block(const float *g, float *s, int n) {
  for (int i = 0; i < n; i++) s[i] = -g[i];
  rlvr_exp_shifted(s, n, 0.0f);
  for (int i = 0; i < n; i++) s[i] = 1.0f / (1.0f + s[i]);
}

/** rows [lo, hi) of [N, I]: act = silu(gate) · up */
VEC static void swiglu_rows(void *p, int lo, int hi) {
  const Job *j = p;
  const int I = j->c->I;
  float s[256];
  for (int row = lo; row < hi; row++) {
    const float *g = j->gate + (size_t)row * I, *u = j->up + (size_t)row * I;
    float *a = j->act + (size_t)row * I;
    for (int i0 = 0; i0 < I; i0 += 256) {
      const int n = I - i0 < 256 ? I - i0 : 256;
      sigmoid_block(g + i0, s, n);
      for (int i = 0; i < n; i++) a[i0 + i] = g[i0 + i] * s[i] * u[i0 + i];
    }
  }
}

/** rows [lo, hi): dgate (in place over dact, read from j->dgate) and dup of act = silu(gate) · up */
VEC static void swiglu_back_rows(void *p, int lo, int hi) {
  const Job *j = p;
  const int I = j->c->I;
  float s[256];
  for (int row = lo; row < hi; row++) {
    const float *g = j->gate + (size_t)row * I, *u = j->up + (size_t)row * I;
    float *dg = j->dgate + (size_t)row * I, *du = j->dup + (size_t)row * I;
    for (int i0 = 0; i0 < I; i0 += 256) {
      const int n = I - i0 < 256 ? I - i0 : 256;
      sigmoid_block(g + i0, s, n);
      for (int i = 0; i < n; i++) {
        const float gi = g[i0 + i], si = s[i], d = dg[i0 + i];
        du[i0 + i] = d * (gi * si);
        dg[i0 + i] = d * u[i0 + i] * (si * (1.0f + gi * (1.0f - si)));
      }
    }
  }
}

// ---- attention ----------------------------------------------------------------------------------

// Attention's small products keep their running sums in registers, several independent ones at a
// time (one broadcast feeds them all), with fused multiply-adds.

/** s[t] = Σ_e q[e] · xt[e][t] for t < n rounded up to 8 (xt transposed [hd][T8], zero-padded) */
VEC static inline void dots(int n, int hd, int T8, const float *restrict q, const float *restrict xt,
                            float *restrict s) {
  int t0 = 0;
#if defined(__x86_64__)
  for (; t0 + 24 < n; t0 += 32) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int e = 0; e < hd; e++) {
      const __m256 qb = _mm256_set1_ps(q[e]);
      const float *x = xt + (size_t)e * T8 + t0;
      a0 = _mm256_fmadd_ps(qb, _mm256_loadu_ps(x), a0);
      a1 = _mm256_fmadd_ps(qb, _mm256_loadu_ps(x + 8), a1);
      a2 = _mm256_fmadd_ps(qb, _mm256_loadu_ps(x + 16), a2);
      a3 = _mm256_fmadd_ps(qb, _mm256_loadu_ps(x + 24), a3);
    }
    _mm256_storeu_ps(s + t0, a0);
    _mm256_storeu_ps(s + t0 + 8, a1);
    _mm256_storeu_ps(s + t0 + 16, a2);
    _mm256_storeu_ps(s + t0 + 24, a3);
  }
  for (; t0 < n; t0 += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (int e = 0; e < hd; e++)
      acc = _mm256_fmadd_ps(_mm256_set1_ps(q[e]), _mm256_loadu_ps(xt + (size_t)e * T8 + t0), acc);
    _mm256_storeu_ps(s + t0, acc);
  }
#else
  for (; t0 < n; t0 += 8) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int e = 0; e < hd; e++)
      for (int k = 0; k < 8; k++) acc[k] += q[e] * xt[(size_t)e * T8 + t0 + k];
    for (int k = 0; k < 8; k++) s[t0 + k] = acc[k];
  }
#endif
}

/** y[e] += Σ_{t < n} w[t · ws] · x[t · stride + e] for e < hd */
VEC static inline void wsum(int n, int hd, const float *restrict w, size_t ws, const float *restrict x,
                            size_t stride, float *restrict y) {
  int e0 = 0;
#if defined(__x86_64__)
  for (; e0 + 32 <= hd; e0 += 32) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int t = 0; t < n; t++) {
      const __m256 wb = _mm256_set1_ps(w[t * ws]);
      const float *xr = x + t * stride + e0;
      a0 = _mm256_fmadd_ps(wb, _mm256_loadu_ps(xr), a0);
      a1 = _mm256_fmadd_ps(wb, _mm256_loadu_ps(xr + 8), a1);
      a2 = _mm256_fmadd_ps(wb, _mm256_loadu_ps(xr + 16), a2);
      a3 = _mm256_fmadd_ps(wb, _mm256_loadu_ps(xr + 24), a3);
    }
    _mm256_storeu_ps(y + e0, _mm256_add_ps(_mm256_loadu_ps(y + e0), a0));
    _mm256_storeu_ps(y + e0 + 8, _mm256_add_ps(_mm256_loadu_ps(y + e0 + 8), a1));
    _mm256_storeu_ps(y + e0 + 16, _mm256_add_ps(_mm256_loadu_ps(y + e0 + 16), a2));
    _mm256_storeu_ps(y + e0 + 24, _mm256_add_ps(_mm256_loadu_ps(y + e0 + 24), a3));
  }
  for (; e0 + 8 <= hd; e0 += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (int t = 0; t < n; t++)
      acc = _mm256_fmadd_ps(_mm256_set1_ps(w[t * ws]), _mm256_loadu_ps(x + t * stride + e0), acc);
    _mm256_storeu_ps(y + e0, _mm256_add_ps(_mm256_loadu_ps(y + e0), acc));
  }
#endif
  for (; e0 < hd; e0++) {
    float acc = 0;
    for (int t = 0; t < n; t++) acc += w[t * ws] * x[t * stride + e0];
    y[e0] += acc;
  }
}

static atomic_int attn_oom;

/** probabilities a [T, T] (row i: positions 0 … i, zeros after) of query head h of sequence b */
VEC static void attn_probs(const Job *j, int b, int h, const float *kt, int T8, float *a) {
  const int T = j->c->T, hd = j->c->hd, Q = j->c->nh * hd;
  for (int i = 0; i < T; i++) {
    const float *q = j->q + ((size_t)b * T + i) * Q + h * hd;
    float *s = a + (size_t)i * T8;
    const int n = i + 1; // the causal mask
    dots(n, hd, T8, q, kt, s);
    float mx = -INFINITY;
    for (int t = 0; t < n; t++) {
      s[t] *= j->scale;
      mx = s[t] > mx ? s[t] : mx;
    }
    const float inv = 1.0f / rlvr_exp_shifted(s, n, mx);
    for (int t = 0; t < n; t++) s[t] *= inv;
    for (int t = n; t < T8; t++) s[t] = 0;
  }
}

/** causal attention of (sequence, key-value head) pairs [lo, hi), each with its nh / nkv query heads */
VEC static void attn_fwd(void *p, int lo, int hi) {
  const Job *j = p;
  const int T = j->c->T, hd = j->c->hd, nkv = j->c->nkv, r = j->c->nh / nkv, T8 = (T + 7) / 8 * 8;
  const int Q = j->c->nh * hd, KV = nkv * hd;
  float *kt = rlvr_thread_buffer((size_t)hd * T8 + (size_t)T * T8, &attn_oom);
  if (!kt) return;
  float *a = kt + (size_t)hd * T8;
  for (int bg = lo; bg < hi; bg++) {
    const int b = bg / nkv, g = bg % nkv;
    for (int t = 0; t < T; t++)
      for (int e = 0; e < hd; e++) kt[(size_t)e * T8 + t] = j->k[((size_t)b * T + t) * KV + g * hd + e];
    for (int h = g * r; h < (g + 1) * r; h++) {
      attn_probs(j, b, h, kt, T8, a);
      for (int i = 0; i < T; i++) {
        float *y = j->atty + ((size_t)b * T + i) * Q + h * hd;
        for (int e = 0; e < hd; e++) y[e] = 0;
        wsum(i + 1, hd, a + (size_t)i * T8, 1, j->v + (size_t)b * T * KV + g * hd, KV, y);
      }
    }
  }
}

/** attention backward of (sequence, key-value head) pairs [lo, hi): dq of their query heads, dk and
 * dv of the pair (overwritten). Probabilities recomputed; row by row the score gradients ds and dq,
 * then key by key dk and dv as sums over the rows that attend to that key. */
VEC static void attn_bwd(void *p, int lo, int hi) {
  const Job *j = p;
  const int T = j->c->T, hd = j->c->hd, nkv = j->c->nkv, r = j->c->nh / nkv, T8 = (T + 7) / 8 * 8;
  const int Q = j->c->nh * hd, KV = nkv * hd;
  float *kt = rlvr_thread_buffer(2 * (size_t)hd * T8 + 2 * (size_t)T * T8 + T8, &attn_oom);
  if (!kt) return;
  float *vt = kt + (size_t)hd * T8, *a = vt + (size_t)hd * T8, *ds = a + (size_t)T * T8, *dp = ds + (size_t)T * T8;
  for (int bg = lo; bg < hi; bg++) {
    const int b = bg / nkv, g = bg % nkv;
    const float *k0 = j->k + (size_t)b * T * KV + g * hd, *v0 = j->v + (size_t)b * T * KV + g * hd;
    float *dk0 = j->dk + (size_t)b * T * KV + g * hd, *dv0 = j->dv + (size_t)b * T * KV + g * hd;
    for (int t = 0; t < T; t++) {
      for (int e = 0; e < hd; e++) {
        kt[(size_t)e * T8 + t] = k0[(size_t)t * KV + e];
        vt[(size_t)e * T8 + t] = v0[(size_t)t * KV + e];
      }
      memset(dk0 + (size_t)t * KV, 0, sizeof(float) * hd);
      memset(dv0 + (size_t)t * KV, 0, sizeof(float) * hd);
    }
    for (int h = g * r; h < (g + 1) * r; h++) {
      attn_probs(j, b, h, kt, T8, a);
      const float *q0 = j->q + (size_t)b * T * Q + h * hd, *dy0 = j->datty + (size_t)b * T * Q + h * hd;
      float *dq0 = j->dq + (size_t)b * T * Q + h * hd;
      for (int i = 0; i < T; i++) {
        const int n = i + 1;
        const float *ai = a + (size_t)i * T8;
        float *dsi = ds + (size_t)i * T8;
        dots(n, hd, T8, dy0 + (size_t)i * Q, vt, dp); // dp[t] = dy_i · v_t
        float sa = 0;
        for (int t = 0; t < n; t++) sa += ai[t] * dp[t];
        for (int t = 0; t < n; t++) dsi[t] = ai[t] * (dp[t] - sa) * j->scale;
        float *dq = dq0 + (size_t)i * Q;
        memset(dq, 0, sizeof(float) * hd);
        wsum(n, hd, dsi, 1, k0, KV, dq); // dq_i = Σ_t ds[i][t] k_t
      }
      for (int t = 0; t < T; t++) {
        wsum(T - t, hd, ds + (size_t)t * T8 + t, T8, q0 + (size_t)t * Q, Q, dk0 + (size_t)t * KV); // Σ_i ds[i][t] q_i
        wsum(T - t, hd, a + (size_t)t * T8 + t, T8, dy0 + (size_t)t * Q, Q, dv0 + (size_t)t * KV);  // Σ_i a[i][t] dy_i
      }
    }
  }
}

// ---- the output layer ---------------------------------------------------------------------------

/** rows [lo, hi) of a vocabulary slice z [N, vs] of logits (read only): merges the slice into each
 * row's running max m, Σ exp(s − m) and Σ exp(s − m)(s − m), s = z / τ; notes the target's s */
VEC static void head_fwd_rows(void *p, int lo, int hi) {
  const Job *j = p;
  const int vs = j->vs;
  float buf[256], sh[256];
  for (int row = lo; row < hi; row++) {
    const float *z = j->z + (size_t)row * vs;
    float mx = -INFINITY;
    for (int v = 0; v < vs; v++) {
      const float s = z[v] / j->tau;
      mx = s > mx ? s : mx;
    }
    const int tg = j->targets[row] - j->v0;
    if (tg >= 0 && tg < vs) j->st[row] = z[tg] / j->tau;
    double sum = 0, q = 0;
    for (int v0 = 0; v0 < vs; v0 += 256) {
      const int n = vs - v0 < 256 ? vs - v0 : 256;
      for (int v = 0; v < n; v++) sh[v] = buf[v] = z[v0 + v] / j->tau - mx;
      sum += rlvr_exp_shifted(buf, n, 0.0f);
      for (int v = 0; v < n; v++) q += (double)buf[v] * sh[v];
    }
    const double m0 = j->hm[row];
    if (m0 == -INFINITY) {
      j->hm[row] = mx, j->hs[row] = sum, j->hq[row] = q;
    } else {
      const double m1 = m0 > mx ? m0 : mx, a = exp(m0 - m1), b = exp(mx - m1);
      j->hq[row] = a * (j->hq[row] + j->hs[row] * (m0 - m1)) + b * (q + sum * (mx - m1));
      j->hs[row] = a * j->hs[row] + b * sum;
      j->hm[row] = m1;
    }
  }
}

/** rows [lo, hi) of a slice: dz = (dlogp (onehot − p) − dent p (log p + H)) / τ from the logits z
 * (log p = z / τ − lse); z and dz may be the same array */
VEC static void head_bwd_rows(void *p, int lo, int hi) {
  const Job *j = p;
  const int vs = j->vs;
  float buf[256], lp[256];
  for (int row = lo; row < hi; row++) {
    const float *z = j->z + (size_t)row * vs;
    float *d = j->dz + (size_t)row * vs;
    const float lse = j->lse[row], H = j->ent[row], gl = j->dlogp[row], ge = j->dent ? j->dent[row] : 0.0f;
    for (int v0 = 0; v0 < vs; v0 += 256) {
      const int n = vs - v0 < 256 ? vs - v0 : 256;
      for (int v = 0; v < n; v++) buf[v] = lp[v] = z[v0 + v] / j->tau - lse;
      rlvr_exp_shifted(buf, n, 0.0f); // p
      for (int v = 0; v < n; v++) d[v0 + v] = -buf[v] * (gl + ge * (lp[v] + H)) / j->tau;
    }
    const int tg = j->targets[row] - j->v0;
    if (tg >= 0 && tg < vs) d[tg] += gl / j->tau;
  }
}

/** vocabulary columns per slice: about 4M floats of logits at a time */
static int head_slice(const RlvrLlamaCfg *c) {
  const int64_t N = (int64_t)c->B * c->T;
  int64_t vs = ((int64_t)1 << 22) / (N > 0 ? N : 1);
  vs = vs < 256 ? 256 : vs;
  return (int)(vs < c->V ? vs : c->V);
}

// ---- the whole forward and backward ---------------------------------------------------------------

#define ROWS 32

const char *rlvr_llama_forward(const RlvrLlamaCfg *c, float *const *params, const int32_t *inputs,
                               const int32_t *targets, const float *cos, const float *sin, float eps,
                               float temperature, float *acts, float *logp, float *entropy, int add_layer,
                               const float *add_vec, int threads) {
  TRY(rlvr_llama_check(c));
  Weights PW;
  TRY(weights_of(c, params, &PW, 0));
  const ActLayout A = act_layout(c);
  const int B = c->B, T = c->T, C = c->C, N = B * T, I = c->I, V = c->V, hd = c->hd;
  const int Q = c->nh * hd, KV = c->nkv * hd, VS = head_slice(c);
  const size_t n = (size_t)N;
  // h [N, C], tmp [N, C], act [N, I], then the head's slice and its per-row statistics
  const size_t need = n * C * 2 + n * I + n * VS + n * 7 + 2;
  float *s = rlvr_scratch(&scratch, need);
  if (!s) return "out of memory for the scratch";
  float *h = s, *tmp = h + n * C, *act = tmp + n * C, *zs = act + n * I, *st = zs + n * VS;
  double *hm = (double *)(s + ((size_t)(st - s) + n + 1) / 2 * 2), *hs = hm + n, *hq = hs + n;
  float *x0 = acts + A.la.xin;
  for (int r = 0; r < N; r++) memcpy(x0 + (size_t)r * C, PW.emb + (size_t)inputs[r] * C, sizeof(float) * C);
  Job j = {.c = c, .eps = eps, .tau = temperature, .scale = (float)(1.0 / sqrt((double)hd)), .threads = threads};
  j.cos = cos, j.sin = sin;
  for (int l = 0; l < c->L; l++) {
    const LayerW *w = &PW.layers[l];
    float *a = acts + l * A.la.size;
    float *xout = l + 1 < c->L ? acts + (l + 1) * A.la.size + A.la.xin : acts + A.xL;
    // input norm, q/k/v
    j.x = a + A.la.xin, j.w = w->in_norm, j.y = h, j.r = a + A.la.r1, j.width = C;
    rlvr_pfor(threads, N, ROWS, rms_rows, &j);
    float *qp = c->qk_norm ? a + A.la.qraw : a + A.la.q, *kp = c->qk_norm ? a + A.la.kraw : a + A.la.k;
    TRY(rlvr_mm(h, w->qw, qp, N, C, Q, 0, 1, threads));
    TRY(rlvr_mm(h, w->kw, kp, N, C, KV, 0, 1, threads));
    TRY(rlvr_mm(h, w->vw, a + A.la.v, N, C, KV, 0, 1, threads));
    if (c->qkv_bias) {
      j.y = qp, j.bias = w->qb, j.width = Q;
      rlvr_pfor(threads, N, ROWS, bias_rows, &j);
      j.y = kp, j.bias = w->kb, j.width = KV;
      rlvr_pfor(threads, N, ROWS, bias_rows, &j);
      j.y = a + A.la.v, j.bias = w->vb, j.width = KV;
      rlvr_pfor(threads, N, ROWS, bias_rows, &j);
    }
    if (c->qk_norm) {
      j.x = qp, j.w = w->qn, j.y = a + A.la.q, j.r = 0, j.width = hd;
      rlvr_pfor(threads, N * c->nh, ROWS, rms_rows, &j);
      j.x = kp, j.w = w->kn, j.y = a + A.la.k;
      rlvr_pfor(threads, N * c->nkv, ROWS, rms_rows, &j);
    }
    j.rot = a + A.la.q, j.heads = c->nh;
    rlvr_pfor(threads, N, ROWS, rope_rows, &j);
    j.rot = a + A.la.k, j.heads = c->nkv;
    rlvr_pfor(threads, N, ROWS, rope_rows, &j);
    // attention, o_proj, residual
    j.q = a + A.la.q, j.k = a + A.la.k, j.v = a + A.la.v, j.atty = a + A.la.atty;
    rlvr_pfor(threads, B * c->nkv, 1, attn_fwd, &j);
    if (atomic_exchange(&attn_oom, 0)) return "out of memory in attention";
    TRY(rlvr_mm(a + A.la.atty, w->ow, tmp, N, Q, C, 0, 1, threads));
    j.res = a + A.la.xin, j.y = tmp, j.bias = c->o_bias ? w->ob : 0, j.out = a + A.la.xmid, j.add = 0,
    j.width = C;
    rlvr_pfor(threads, N, ROWS, residual_rows, &j);
    // post-attention norm, SwiGLU MLP, residual
    j.x = a + A.la.xmid, j.w = w->post_norm, j.y = h, j.r = a + A.la.r2, j.width = C;
    rlvr_pfor(threads, N, ROWS, rms_rows, &j);
    TRY(rlvr_mm(h, w->gw, a + A.la.gate, N, C, I, 0, 1, threads));
    TRY(rlvr_mm(h, w->uw, a + A.la.up, N, C, I, 0, 1, threads));
    j.gate = a + A.la.gate, j.up = a + A.la.up, j.act = act;
    rlvr_pfor(threads, N, ROWS, swiglu_rows, &j);
    TRY(rlvr_mm(act, w->dw, tmp, N, I, C, 0, 1, threads));
    j.res = a + A.la.xmid, j.y = tmp, j.bias = 0, j.out = xout, j.add = l == add_layer ? add_vec : 0, j.width = C;
    rlvr_pfor(threads, N, ROWS, residual_rows, &j);
  }
  // final norm, the output layer in vocabulary slices
  j.x = acts + A.xL, j.w = PW.norm, j.y = acts + A.hn, j.r = acts + A.rf, j.width = C;
  rlvr_pfor(threads, N, ROWS, rms_rows, &j);
  for (int r = 0; r < N; r++) hm[r] = -INFINITY, hs[r] = 0, hq[r] = 0, st[r] = 0;
  j.targets = targets, j.hm = hm, j.hs = hs, j.hq = hq, j.st = st;
  for (int v0 = 0; v0 < V; v0 += VS) {
    const int vs = V - v0 < VS ? V - v0 : VS;
    float *z = A.zsize ? acts + A.z + n * v0 : zs;
    TRY(rlvr_mm(acts + A.hn, PW.lm + (size_t)v0 * C, z, N, C, vs, 0, 1, threads));
    j.z = z;
    j.v0 = v0, j.vs = vs;
    rlvr_pfor(threads, N, 16, head_fwd_rows, &j);
  }
  float *lse = acts + A.lse, *ent = acts + A.ent;
  for (int r = 0; r < N; r++) {
    const double ls = log(hs[r]);
    lse[r] = (float)(hm[r] + ls);
    ent[r] = (float)(ls - hq[r] / hs[r]);
    logp[r] = st[r] - lse[r];
    if (entropy) entropy[r] = ent[r];
  }
  return 0;
}

const char *rlvr_llama_backward(const RlvrLlamaCfg *c, float *const *params, const int32_t *inputs,
                                const int32_t *targets, const float *cos, const float *sin, float eps,
                                float temperature, const float *acts, const float *dlogp, const float *dentropy,
                                float *const *grads, int threads) {
  TRY(rlvr_llama_check(c));
  Weights PW, GW;
  TRY(weights_of(c, params, &PW, 0));
  TRY(weights_of(c, grads, &GW, 1));
  const ActLayout A = act_layout(c);
  const int B = c->B, C = c->C, N = B * c->T, I = c->I, V = c->V, hd = c->hd;
  const int Q = c->nh * hd, KV = c->nkv * hd, VS = head_slice(c);
  const size_t n = (size_t)N;
  // dx, dh, h, tmp [N, C]; act, dact, dup [N, I]; datty, dq [N, Q]; dk, dv [N, KV]; rq [N · nh];
  // then the head's slice
  const size_t need = n * C * 4 + n * I * 3 + n * Q * 2 + n * KV * 2 + n * c->nh + n * VS;
  float *s = rlvr_scratch(&scratch, need);
  if (!s) return "out of memory for the scratch";
  float *dx = s, *dh = dx + n * C, *h = dh + n * C, *tmp = h + n * C, *act = tmp + n * C, *dact = act + n * I,
        *dup = dact + n * I, *datty = dup + n * I, *dq = datty + n * Q, *dk = dq + n * Q, *dv = dk + n * KV,
        *rq = dv + n * KV, *zs = rq + n * c->nh;
  if (!c->tied) memset(GW.emb, 0, sizeof(float) * (size_t)V * C); // the only gradient added to, not written
  Job j = {.c = c, .eps = eps, .tau = temperature, .scale = (float)(1.0 / sqrt((double)hd)), .threads = threads};
  j.cos = cos, j.sin = sin;
  // the output layer, slice by slice: dW rows of the slice, dh accumulated
  const float *hn = acts + A.hn;
  memset(dh, 0, sizeof(float) * n * C);
  j.targets = targets, j.lse = acts + A.lse, j.ent = acts + A.ent, j.dlogp = dlogp, j.dent = dentropy, j.dz = zs;
  for (int v0 = 0; v0 < V; v0 += VS) {
    const int vs = V - v0 < VS ? V - v0 : VS;
    const float *wv = PW.lm + (size_t)v0 * C;
    if (A.zsize)
      j.z = acts + A.z + n * v0; // kept by the forward
    else {
      TRY(rlvr_mm(hn, wv, zs, N, C, vs, 0, 1, threads));
      j.z = zs;
    }
    j.v0 = v0, j.vs = vs;
    rlvr_pfor(threads, N, 16, head_bwd_rows, &j);
    TRY(rlvr_mm(zs, hn, GW.lm + (size_t)v0 * C, vs, N, C, 1, 0, threads));
    TRY(rlvr_mm(zs, wv, tmp, N, vs, C, 0, 0, threads));
    j.y = tmp, j.out = dh, j.width = C;
    rlvr_pfor(threads, N, ROWS, add_rows, &j);
  }
  // final norm: dx = the gradient of the last layer's output
  j.x = acts + A.xL, j.w = PW.norm, j.r = (float *)(acts + A.rf), j.dy = dh, j.dx = dx, j.accumulate = 0,
  j.width = C, j.rows = N, j.dw = GW.norm;
  rlvr_pfor(threads, N, ROWS, rms_back_rows, &j);
  rlvr_pfor(threads, C, 16, rms_back_cols, &j);
  for (int l = c->L - 1; l >= 0; l--) {
    const LayerW *w = &PW.layers[l];
    const LayerW *gw = &GW.layers[l];
    const float *a = acts + l * A.la.size;
    // MLP (dx: the gradient of the layer's output)
    j.x = a + A.la.xmid, j.w = w->post_norm, j.y = h, j.r = 0, j.width = C;
    rlvr_pfor(threads, N, ROWS, rms_rows, &j);
    j.gate = a + A.la.gate, j.up = a + A.la.up, j.act = act;
    rlvr_pfor(threads, N, ROWS, swiglu_rows, &j);
    TRY(rlvr_mm(dx, act, gw->dw, C, N, I, 1, 0, threads));
    TRY(rlvr_mm(dx, w->dw, dact, N, C, I, 0, 0, threads));
    j.dgate = dact, j.dup = dup;
    rlvr_pfor(threads, N, ROWS, swiglu_back_rows, &j);
    TRY(rlvr_mm(dact, h, gw->gw, I, N, C, 1, 0, threads));
    TRY(rlvr_mm(dup, h, gw->uw, I, N, C, 1, 0, threads));
    TRY(rlvr_mm(dact, w->gw, dh, N, I, C, 0, 0, threads));
    TRY(rlvr_mm(dup, w->uw, tmp, N, I, C, 0, 0, threads));
    j.y = tmp, j.out = dh, j.width = C;
    rlvr_pfor(threads, N, ROWS, add_rows, &j);
    j.x = a + A.la.xmid, j.w = w->post_norm, j.r = (float *)(a + A.la.r2), j.dy = dh, j.dx = dx,
    j.accumulate = 1, j.width = C, j.rows = N, j.dw = gw->post_norm;
    rlvr_pfor(threads, N, ROWS, rms_back_rows, &j);
    rlvr_pfor(threads, C, 16, rms_back_cols, &j);
    // attention (dx: the gradient of xmid)
    TRY(rlvr_mm(dx, a + A.la.atty, gw->ow, C, N, Q, 1, 0, threads));
    if (c->o_bias) {
      j.dy = dx, j.dw = gw->ob, j.width = C, j.rows = N;
      rlvr_pfor(threads, C, 16, colsum_cols, &j);
    }
    TRY(rlvr_mm(dx, w->ow, datty, N, C, Q, 0, 0, threads));
    j.q = a + A.la.q, j.k = a + A.la.k, j.v = a + A.la.v, j.datty = datty, j.dq = dq, j.dk = dk, j.dv = dv;
    rlvr_pfor(threads, B * c->nkv, 1, attn_bwd, &j);
    if (atomic_exchange(&attn_oom, 0)) return "out of memory in attention";
    j.rot = dq, j.heads = c->nh;
    rlvr_pfor(threads, N, ROWS, rope_back_rows, &j);
    j.rot = dk, j.heads = c->nkv;
    rlvr_pfor(threads, N, ROWS, rope_back_rows, &j);
    if (c->qk_norm) {
      // per-head RMSNorm backward, in place: dq, dk become the gradients of the raw projections
      for (int which = 0; which < 2; which++) {
        const int heads = which ? c->nkv : c->nh;
        float *d = which ? dk : dq;
        // the RMS factors into rq; the normed values into datty (free now: [N, Q] holds [N · heads, hd])
        j.x = which ? a + A.la.kraw : a + A.la.qraw, j.w = (which ? w->kn : w->qn), j.y = datty, j.r = rq,
        j.width = hd;
        rlvr_pfor(threads, N * heads, ROWS, rms_rows, &j);
        j.dy = d, j.dw = (which ? gw->kn : gw->qn), j.rows = N * heads;
        rlvr_pfor(threads, hd, 16, rms_back_cols, &j);
        j.dx = d, j.accumulate = 0;
        rlvr_pfor(threads, N * heads, ROWS, rms_back_rows, &j);
      }
    }
    if (c->qkv_bias) {
      j.rows = N;
      j.dy = dq, j.dw = gw->qb, j.width = Q;
      rlvr_pfor(threads, Q, 16, colsum_cols, &j);
      j.dy = dk, j.dw = gw->kb, j.width = KV;
      rlvr_pfor(threads, KV, 16, colsum_cols, &j);
      j.dy = dv, j.dw = gw->vb, j.width = KV;
      rlvr_pfor(threads, KV, 16, colsum_cols, &j);
    }
    j.x = a + A.la.xin, j.w = w->in_norm, j.y = h, j.r = 0, j.width = C;
    rlvr_pfor(threads, N, ROWS, rms_rows, &j);
    TRY(rlvr_mm(dq, h, gw->qw, Q, N, C, 1, 0, threads));
    TRY(rlvr_mm(dk, h, gw->kw, KV, N, C, 1, 0, threads));
    TRY(rlvr_mm(dv, h, gw->vw, KV, N, C, 1, 0, threads));
    TRY(rlvr_mm(dq, w->qw, dh, N, Q, C, 0, 0, threads));
    j.y = tmp, j.out = dh, j.width = C;
    TRY(rlvr_mm(dk, w->kw, tmp, N, KV, C, 0, 0, threads));
    rlvr_pfor(threads, N, ROWS, add_rows, &j);
    TRY(rlvr_mm(dv, w->vw, tmp, N, KV, C, 0, 0, threads));
    rlvr_pfor(threads, N, ROWS, add_rows, &j);
    j.x = a + A.la.xin, j.w = w->in_norm, j.r = (float *)(a + A.la.r1), j.dy = dh, j.dx = dx,
    j.accumulate = 1, j.width = C, j.rows = N, j.dw = gw->in_norm;
    rlvr_pfor(threads, N, ROWS, rms_back_rows, &j);
    rlvr_pfor(threads, C, 16, rms_back_cols, &j);
  }
  // the embedding: a scatter-add (after the tied output layer's rows were written)
  for (int r = 0; r < N; r++) {
    float *e = GW.emb + (size_t)inputs[r] * C;
    const float *d = dx + (size_t)r * C;
    for (int i = 0; i < C; i++) e[i] += d[i];
  }
  return 0;
}
