// The organism's teacher-forced forward (embeddings, blocks, ln_f, lm_head, log-softmax at a
// temperature, target log-probs, entropy) and its whole backward, one call each (gpt.h). Layout of
// the parameters: paramShapes() of src/model/gpt.ts, concatenated. Matmuls go to rlvr_gemm; LayerNorm,
// attention, GELU and the softmax head are split over rows, (sequence, head) pairs or chunks on the
// pool. LayerNorm statistics, bias and gain gradients and the entropy sum in double; softmax
// denominators in float lanes.
// Nothing here allocates per call: the scratch arena grows to the largest batch seen, and each thread
// keeps one attention buffer.
#include "gpt.h"
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
#endif

#define LN_EPS 1e-5f
// loops the compiler vectorises get 256-bit vectors where the addon is built for x86-64 (the addon
// runs only where AVX2 is present: engine/native.ts)
#if defined(__x86_64__)
#define VEC __attribute__((target("avx2")))
#else
#define VEC
#endif
#define GELU_C 0.7978845608028654f
#define GELU_A 0.044715f

// ---- layouts ------------------------------------------------------------------------------------

typedef struct {
  int64_t ln1g, ln1b, aw, ab, pw, pb, ln2g, ln2b, fw, fb, fpw, fpb, size;
} LayerParams;

typedef struct {
  int64_t wte, wpe, layer0, lnfg, lnfb, lmw, total;
  LayerParams lp;
} ParamLayout;

static ParamLayout param_layout(const RlvrGptCfg *c) {
  const int64_t C = c->C, H = c->H;
  ParamLayout p;
  LayerParams *l = &p.lp;
  int64_t o = 0;
  l->ln1g = o, o += C;
  l->ln1b = o, o += C;
  l->aw = o, o += C * 3 * C;
  l->ab = o, o += 3 * C;
  l->pw = o, o += C * C;
  l->pb = o, o += C;
  l->ln2g = o, o += C;
  l->ln2b = o, o += C;
  l->fw = o, o += C * H;
  l->fb = o, o += H;
  l->fpw = o, o += H * C;
  l->fpb = o, o += C;
  l->size = o;
  p.wte = 0;
  p.wpe = (int64_t)c->V * C;
  p.layer0 = p.wpe + (int64_t)c->ctx * C;
  p.lnfg = p.layer0 + c->L * l->size;
  p.lnfb = p.lnfg + C;
  p.lmw = p.lnfb + C;
  p.total = p.lmw + C * c->V;
  return p;
}

// Per block: xin (the block's input), ln1 (+ mean, rstd), qkv, att (probabilities [B, NH, T, T]),
// atty (heads concatenated), xmid (after attention), ln2 (+ mean, rstd), fch (before GELU), fcg.
typedef struct {
  int64_t xin, ln1, ln1m, ln1r, qkv, att, atty, xmid, ln2, ln2m, ln2r, fch, fcg, size;
} LayerActs;

typedef struct {
  int64_t xL, lnf, lnfm, lnfr, lp, ent, total;
  LayerActs la;
} ActLayout;

static ActLayout act_layout(const RlvrGptCfg *c) {
  const int64_t N = (int64_t)c->B * c->T, C = c->C, H = c->H, T = c->T;
  ActLayout a;
  LayerActs *l = &a.la;
  int64_t o = 0;
  l->xin = o, o += N * C;
  l->ln1 = o, o += N * C;
  l->ln1m = o, o += N;
  l->ln1r = o, o += N;
  l->qkv = o, o += N * 3 * C;
  l->att = o, o += (int64_t)c->B * c->NH * T * T;
  l->atty = o, o += N * C;
  l->xmid = o, o += N * C;
  l->ln2 = o, o += N * C;
  l->ln2m = o, o += N;
  l->ln2r = o, o += N;
  l->fch = o, o += N * H;
  l->fcg = o, o += N * H;
  l->size = o;
  o = c->L * l->size;
  a.xL = o, o += N * C;
  a.lnf = o, o += N * C;
  a.lnfm = o, o += N;
  a.lnfr = o, o += N;
  a.lp = o, o += N * c->V;
  a.ent = o, o += N;
  a.total = o;
  return a;
}

int64_t rlvr_gpt_param_count(const RlvrGptCfg *c) { return param_layout(c).total; }
int64_t rlvr_gpt_acts_size(const RlvrGptCfg *c) { return act_layout(c).total; }

// ---- GELU (tanh approximation, as src/kernels/vmath.h) ----------------------------------------------

static inline float gelu_tanh1(float u) {
  return tanhf(GELU_C * (u + GELU_A * (u * u * u)));
}

#if defined(__x86_64__)

__attribute__((target("avx2"))) static inline __m256 vgelu_tanh8(__m256 u) {
  const __m256 u3 = _mm256_mul_ps(_mm256_mul_ps(u, u), u);
  const __m256 y =
      _mm256_mul_ps(_mm256_set1_ps(GELU_C), _mm256_add_ps(u, _mm256_mul_ps(_mm256_set1_ps(GELU_A), u3)));
  const __m256 sign = _mm256_and_ps(y, _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000)));
  const __m256 a = _mm256_andnot_ps(_mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000)), y);
  const __m256 e = rlvr_vexp8(_mm256_mul_ps(a, _mm256_set1_ps(-2.0f)));
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_or_ps(_mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e)), sign);
}

/** g[i] = gelu(h[i] += bias[i % H]) over rows [lo, hi) of [*, H] */
__attribute__((target("avx2"))) static void bias_gelu_avx2(float *h, float *g, const float *bias, int H, int lo,
                                                           int hi) {
  for (int r = lo; r < hi; r++) {
    float *hr = h + (size_t)r * H, *gr = g + (size_t)r * H;
    int i = 0;
    for (; i + 8 <= H; i += 8) {
      const __m256 u = _mm256_add_ps(_mm256_loadu_ps(hr + i), _mm256_loadu_ps(bias + i));
      _mm256_storeu_ps(hr + i, u);
      const __m256 t = vgelu_tanh8(u);
      _mm256_storeu_ps(gr + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), u),
                                             _mm256_add_ps(_mm256_set1_ps(1.0f), t)));
    }
    for (; i < H; i++) {
      const float u = hr[i] + bias[i];
      hr[i] = u;
      gr[i] = 0.5f * u * (1.0f + gelu_tanh1(u));
    }
  }
}

/** d[i] *= gelu'(h[i]) over rows [lo, hi) of [*, H] */
__attribute__((target("avx2"))) static void gelu_back_avx2(float *d, const float *h, int H, int lo, int hi) {
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  for (int r = lo; r < hi; r++) {
    float *dr = d + (size_t)r * H;
    const float *hr = h + (size_t)r * H;
    int i = 0;
    for (; i + 8 <= H; i += 8) {
      const __m256 u = _mm256_loadu_ps(hr + i);
      const __m256 t = vgelu_tanh8(u);
      const __m256 left = _mm256_mul_ps(half, _mm256_add_ps(one, t));
      const __m256 dinner = _mm256_mul_ps(
          _mm256_set1_ps(GELU_C),
          _mm256_add_ps(one, _mm256_mul_ps(_mm256_set1_ps(3.0f * GELU_A), _mm256_mul_ps(u, u))));
      const __m256 right =
          _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(half, u), _mm256_sub_ps(one, _mm256_mul_ps(t, t))), dinner);
      _mm256_storeu_ps(dr + i, _mm256_mul_ps(_mm256_loadu_ps(dr + i), _mm256_add_ps(left, right)));
    }
    for (; i < H; i++) {
      const float u = hr[i], t = gelu_tanh1(u);
      dr[i] *= 0.5f * (1.0f + t) + 0.5f * u * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_A * u * u);
    }
  }
}
#endif

// ---- forward pieces -----------------------------------------------------------------------------

typedef struct {
  const RlvrGptCfg *c;
  const float *x, *g, *b, *bias, *add, *dout;
  float *y, *mean, *rstd, *out, *dx, *dg, *db;
  const float *res;
  const float *qkv;
  float *att, *atty, *dqkv;
  const float *att_c, *datty;
  float *h, *hg, *d;
  const int32_t *targets;
  const float *dlogp, *dent;
  float *lp, *ent, *logp, *entropy;
  float tau, scale;
  int width;
} Job;

/** Σ x[i] and Σ (x[i] − m)² in double, four partial sums (for latency, not precision) */
static double sum4(const float *x, int n) {
  double a[4] = {0, 0, 0, 0};
  int i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; k++) a[k] += x[i + k];
  for (; i < n; i++) a[0] += x[i];
  return (a[0] + a[1]) + (a[2] + a[3]);
}

static double sqdev4(const float *x, int n, float m) {
  double a[4] = {0, 0, 0, 0};
  int i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; k++) {
      const double d = x[i + k] - m;
      a[k] += d * d;
    }
  for (; i < n; i++) {
    const double d = x[i] - m;
    a[0] += d * d;
  }
  return (a[0] + a[1]) + (a[2] + a[3]);
}

/** LayerNorm rows [lo, hi): y = (x − mean) · rstd · g + b, with mean and rstd kept */
VEC static void ln_rows(void *p, int lo, int hi) {
  const Job *j = p;
  const int C = j->c->C;
  for (int r = lo; r < hi; r++) {
    const float *x = j->x + (size_t)r * C;
    const float m = (float)(sum4(x, C) / C);
    const float rs = (float)(1.0 / sqrt((double)(float)(sqdev4(x, C, m) / C) + (double)LN_EPS));
    float *y = j->y + (size_t)r * C;
    for (int i = 0; i < C; i++) y[i] = (x[i] - m) * rs * j->g[i] + j->b[i];
    j->mean[r] = m;
    j->rstd[r] = rs;
  }
}

/** rows [lo, hi) of [*, width]: y += bias */
static void bias_rows(void *p, int lo, int hi) {
  const Job *j = p;
  const int W = j->width;
  for (int r = lo; r < hi; r++) {
    float *y = j->y + (size_t)r * W;
    for (int i = 0; i < W; i++) y[i] += j->bias[i];
  }
}

/** rows [lo, hi): out = res + y + bias (+ add) */
static void residual_rows(void *p, int lo, int hi) {
  const Job *j = p;
  const int C = j->c->C;
  for (int r = lo; r < hi; r++) {
    const float *res = j->res + (size_t)r * C, *y = j->y + (size_t)r * C;
    float *out = j->out + (size_t)r * C;
    for (int i = 0; i < C; i++) out[i] = res[i] + (y[i] + j->bias[i]);
    if (j->add)
      for (int i = 0; i < C; i++) out[i] += j->add[i];
  }
}

static void bias_gelu_rows(void *p, int lo, int hi) {
  const Job *j = p;
#if defined(__x86_64__)
  bias_gelu_avx2(j->h, j->hg, j->bias, j->width, lo, hi);
#else
  for (int r = lo; r < hi; r++)
    for (int i = 0; i < j->width; i++) {
      const float u = j->h[(size_t)r * j->width + i] += j->bias[i];
      j->hg[(size_t)r * j->width + i] = 0.5f * u * (1.0f + gelu_tanh1(u));
    }
#endif
}

// Attention's small products keep their running sums in registers (8 lanes of `acc`), never in
// memory from one step to the next: a sum stored and reloaded every step waits on the store.

/** s[t] = Σ_e q[e] · xt[e][t] for t < n rounded up to 8 (xt transposed [hd][T8], zero-padded) */
VEC static inline void dots(int n, int hd, int T8, const float *restrict q, const float *restrict xt,
                            float *restrict s) {
  for (int t0 = 0; t0 < n; t0 += 8) {
#if defined(__x86_64__)
    __m256 acc = _mm256_setzero_ps();
    for (int e = 0; e < hd; e++)
      acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(q[e]), _mm256_loadu_ps(xt + (size_t)e * T8 + t0)));
    _mm256_storeu_ps(s + t0, acc);
#else
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int e = 0; e < hd; e++)
      for (int k = 0; k < 8; k++) acc[k] += q[e] * xt[(size_t)e * T8 + t0 + k];
    for (int k = 0; k < 8; k++) s[t0 + k] = acc[k];
#endif
  }
}

/** y[e] += Σ_{t < n} w[t · ws] · x[t · stride + e] for e < hd */
VEC static inline void wsum(int n, int hd, const float *restrict w, size_t ws, const float *restrict x,
                            size_t stride, float *restrict y) {
  int e0 = 0;
#if defined(__x86_64__)
  for (; e0 + 8 <= hd; e0 += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (int t = 0; t < n; t++)
      acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(w[t * ws]), _mm256_loadu_ps(x + t * stride + e0)));
    _mm256_storeu_ps(y + e0, _mm256_add_ps(_mm256_loadu_ps(y + e0), acc));
  }
#endif
  for (; e0 < hd; e0++) {
    float acc = 0;
    for (int t = 0; t < n; t++) acc += w[t * ws] * x[t * stride + e0];
    y[e0] += acc;
  }
}

/** set when an attention task could not allocate its buffer */
static atomic_int attn_oom;

/** causal attention of (sequence, head) pairs [lo, hi). Keys are copied transposed ([hd, T]) so that
 * every loop runs along contiguous memory without a reduction (the compiler vectorises them). */
VEC static void attn_fwd(void *p, int lo, int hi) {
  const Job *j = p;
  const int T = j->c->T, C = j->c->C, NH = j->c->NH, hd = C / NH, C3 = 3 * C, T8 = (T + 7) / 8 * 8;
  float *kt = rlvr_thread_buffer((size_t)hd * T8 + T8, &attn_oom);
  if (!kt) return;
  float *s = kt + (size_t)hd * T8;
  for (int bh = lo; bh < hi; bh++) {
    const int b = bh / NH, h = bh % NH;
    const float *base = j->qkv + (size_t)b * T * C3;
    float *att = j->att + (size_t)bh * T * T;
    for (int t = 0; t < T; t++)
      for (int e = 0; e < hd; e++) kt[(size_t)e * T8 + t] = base[(size_t)t * C3 + C + h * hd + e];
    for (int i = 0; i < T; i++) {
      const float *q = base + (size_t)i * C3 + h * hd;
      float *a = att + (size_t)i * T;
      const int n = i + 1; // positions 0 … i: the causal mask
      dots(n, hd, T8, q, kt, s);
      float mx = -INFINITY;
      for (int t = 0; t < n; t++) {
        s[t] *= j->scale;
        mx = s[t] > mx ? s[t] : mx;
      }
      const float inv = 1.0f / rlvr_exp_shifted(s, n, mx);
      for (int t = 0; t < n; t++) a[t] = s[t] * inv;
      for (int t = n; t < T; t++) a[t] = 0;
      float *y = j->atty + ((size_t)b * T + i) * C + h * hd;
      for (int e = 0; e < hd; e++) y[e] = 0;
      wsum(n, hd, a, 1, base + 2 * C + h * hd, C3, y);
    }
  }
}

/** rows [lo, hi) of the logits (in j->d, overwritten): log-softmax of logits / temperature, target
 * log-prob, entropy −Σ p · logp with p = exp(shifted) / Σ exp(shifted), one exponential per entry */
VEC static void head_fwd(void *p, int lo, int hi) {
  const Job *j = p;
  const int V = j->c->V;
  const float tau = j->tau;
  for (int r = lo; r < hi; r++) {
    float *e = j->d + (size_t)r * V;
    float *lp = j->lp + (size_t)r * V;
    float mx = -INFINITY;
    for (int v = 0; v < V; v++) {
      lp[v] = e[v] / tau;
      mx = lp[v] > mx ? lp[v] : mx;
    }
    for (int v = 0; v < V; v++) e[v] = lp[v];
    const double s = rlvr_exp_shifted(e, V, mx); // e[v] = exp(lp[v] − mx)
    const float lse = (float)log(s);
    double h = 0;
    for (int v = 0; v < V; v++) {
      lp[v] = (lp[v] - mx) - lse;
      h -= (double)e[v] * lp[v];
    }
    h /= s;
    j->ent[r] = (float)h;
    j->logp[r] = lp[j->targets[r]];
    if (j->entropy) j->entropy[r] = (float)h;
  }
}

// ---- backward pieces ----------------------------------------------------------------------------

/** rows [lo, hi) of dlogits (into j->d): (dlogp (onehot − p) − dent p (lp + H)) / temperature */
VEC static void head_bwd(void *p, int lo, int hi) {
  const Job *j = p;
  const int V = j->c->V;
  const float tau = j->tau;
  for (int r = lo; r < hi; r++) {
    const float *lp = j->lp + (size_t)r * V;
    float *d = j->d + (size_t)r * V;
    const float gl = j->dlogp[r], ge = j->dent ? j->dent[r] : 0.0f, H = j->ent[r];
    const int tg = j->targets[r];
    memcpy(d, lp, sizeof(float) * V);
    rlvr_exp_shifted(d, V, 0.0f); // d[v] = p[v]
    for (int v = 0; v < V; v++) {
      const float pv = d[v];
      const float dz = gl * ((v == tg ? 1.0f : 0.0f) - pv) - ge * pv * (lp[v] + H);
      d[v] = dz / tau;
    }
  }
}

/** rows [lo, hi): dx += LayerNorm backward of dout (x, mean, rstd, g of the forward) */
static void ln_back_rows(void *p, int lo, int hi) {
  const Job *j = p;
  const int C = j->c->C;
  for (int r = lo; r < hi; r++) {
    const float *x = j->x + (size_t)r * C, *dy = j->dout + (size_t)r * C;
    float *dx = j->dx + (size_t)r * C;
    const float m = j->mean[r], rs = j->rstd[r];
    double s1 = 0, s2 = 0;
    for (int i = 0; i < C; i++) {
      const float n = (x[i] - m) * rs, dn = dy[i] * j->g[i];
      s1 += dn;
      s2 += (double)dn * n;
    }
    const float m1 = (float)(s1 / C), m2 = (float)(s2 / C);
    for (int i = 0; i < C; i++) {
      const float n = (x[i] - m) * rs, dn = dy[i] * j->g[i];
      dx[i] += rs * (dn - m1 - n * m2);
    }
  }
}

/** columns [lo, hi): dg = Σ dout · norm, db = Σ dout over the N rows */
static void ln_back_cols(void *p, int lo, int hi) {
  const Job *j = p;
  const int C = j->c->C, N = j->c->B * j->c->T;
  double sg[16], sb[16];
  for (int c0 = lo; c0 < hi; c0 += 16) {
    const int w = hi - c0 < 16 ? hi - c0 : 16;
    for (int k = 0; k < w; k++) sg[k] = sb[k] = 0;
    for (int r = 0; r < N; r++) {
      const float *x = j->x + (size_t)r * C + c0, *dy = j->dout + (size_t)r * C + c0;
      const float m = j->mean[r], rs = j->rstd[r];
      for (int k = 0; k < w; k++) {
        sg[k] += (double)dy[k] * ((x[k] - m) * rs);
        sb[k] += dy[k];
      }
    }
    for (int k = 0; k < w; k++) j->dg[c0 + k] = (float)sg[k], j->db[c0 + k] = (float)sb[k];
  }
}

/** columns [lo, hi) of [N, width]: db = Σ rows of dout */
static void colsum_cols(void *p, int lo, int hi) {
  const Job *j = p;
  const int W = j->width, N = j->c->B * j->c->T;
  double s[16];
  for (int c0 = lo; c0 < hi; c0 += 16) {
    const int w = hi - c0 < 16 ? hi - c0 : 16;
    for (int k = 0; k < w; k++) s[k] = 0;
    for (int r = 0; r < N; r++) {
      const float *dy = j->dout + (size_t)r * W + c0;
      for (int k = 0; k < w; k++) s[k] += dy[k];
    }
    for (int k = 0; k < w; k++) j->db[c0 + k] = (float)s[k];
  }
}

static void gelu_back_rows(void *p, int lo, int hi) {
  const Job *j = p;
#if defined(__x86_64__)
  gelu_back_avx2(j->d, j->h, j->width, lo, hi);
#else
  for (int r = lo; r < hi; r++)
    for (int i = 0; i < j->width; i++) {
      const float u = j->h[(size_t)r * j->width + i], t = gelu_tanh1(u);
      j->d[(size_t)r * j->width + i] *=
          0.5f * (1.0f + t) + 0.5f * u * (1.0f - t * t) * GELU_C * (1.0f + 3.0f * GELU_A * u * u);
    }
#endif
}

/** attention backward of (sequence, head) pairs [lo, hi): dqkv (its slices of the pair, overwritten).
 * Row by row the score gradients ds (kept [T, T]) and dq; then key by key dk and dv as sums over the
 * rows that attend to that key, so that every sum runs in registers. */
VEC static void attn_bwd(void *p, int lo, int hi) {
  const Job *j = p;
  const int T = j->c->T, C = j->c->C, NH = j->c->NH, hd = C / NH, C3 = 3 * C, T8 = (T + 7) / 8 * 8;
  float *vt = rlvr_thread_buffer((size_t)hd * T8 + T8 + (size_t)T * T, &attn_oom);
  if (!vt) return;
  float *dp = vt + (size_t)hd * T8, *ds = dp + T8;
  for (int bh = lo; bh < hi; bh++) {
    const int b = bh / NH, h = bh % NH;
    const float *base = j->qkv + (size_t)b * T * C3;
    float *dbase = j->dqkv + (size_t)b * T * C3;
    const float *att = j->att_c + (size_t)bh * T * T;
    const float *dy0 = j->datty + (size_t)b * T * C + h * hd;
    for (int t = 0; t < T; t++) {
      for (int e = 0; e < hd; e++) vt[(size_t)e * T8 + t] = base[(size_t)t * C3 + 2 * C + h * hd + e];
      for (int k = 0; k < 3; k++) memset(dbase + (size_t)t * C3 + k * C + h * hd, 0, sizeof(float) * hd);
    }
    for (int i = 0; i < T; i++) {
      const int n = i + 1;
      const float *a = att + (size_t)i * T;
      float *dsi = ds + (size_t)i * T;
      dots(n, hd, T8, dy0 + (size_t)i * C, vt, dp); // dp[t] = dy_i · v_t
      float sa = 0;
      for (int t = 0; t < n; t++) sa += a[t] * dp[t];
      for (int t = 0; t < n; t++) dsi[t] = a[t] * (dp[t] - sa) * j->scale;
      wsum(n, hd, dsi, 1, base + C + h * hd, C3, dbase + (size_t)i * C3 + h * hd); // dq_i = Σ_t ds[i][t] k_t
    }
    for (int t = 0; t < T; t++) {
      float *dk = dbase + (size_t)t * C3 + C + h * hd;
      wsum(T - t, hd, ds + (size_t)t * T + t, T, base + (size_t)t * C3 + h * hd, C3, dk); // Σ_i ds[i][t] q_i
      wsum(T - t, hd, att + (size_t)t * T + t, T, dy0 + (size_t)t * C, C, dk + C);        // Σ_i a[i][t] dy_i
    }
  }
}

// ---- the whole forward and backward ---------------------------------------------------------------

#define ROWS 64

static const char *check_cfg(const RlvrGptCfg *c) {
  if (c->B <= 0 || c->T <= 0 || c->C <= 0 || c->NH <= 0 || c->L <= 0 || c->V <= 0 || c->H <= 0 || c->ctx <= 0)
    return "sizes must be positive";
  if (c->C % c->NH) return "width must be divisible by heads";
  if (c->T > c->ctx) return "sequence longer than the context";
  return 0;
}

const char *rlvr_gpt_forward(const RlvrGptCfg *c, const float *params, const int32_t *inputs, const int32_t *targets,
                             float temperature, float *acts, float *logp, float *entropy, int add_layer,
                             const float *add_vec, int threads) {
  TRY(check_cfg(c));
  const ParamLayout P = param_layout(c);
  const ActLayout A = act_layout(c);
  const int B = c->B, T = c->T, C = c->C, N = B * T, H = c->H, V = c->V;
  float *tmp = rlvr_scratch(&scratch, (size_t)N * (C > V ? C : V));
  if (!tmp) return "out of memory for the scratch";
  // embeddings
  float *x0 = acts + A.la.xin;
  for (int n = 0; n < N; n++) {
    const float *te = params + P.wte + (size_t)inputs[n] * C, *pe = params + P.wpe + (size_t)(n % T) * C;
    for (int i = 0; i < C; i++) x0[(size_t)n * C + i] = te[i] + pe[i];
  }
  Job j = {.c = c, .scale = (float)(1.0 / sqrt((double)(C / c->NH))), .tau = temperature};
  for (int l = 0; l < c->L; l++) {
    const float *w = params + P.layer0 + l * P.lp.size;
    float *a = acts + l * A.la.size;
    float *xout = l + 1 < c->L ? acts + (l + 1) * A.la.size + A.la.xin : acts + A.xL;
    // ln_1, c_attn
    j.x = a + A.la.xin, j.g = w + P.lp.ln1g, j.b = w + P.lp.ln1b, j.y = a + A.la.ln1, j.mean = a + A.la.ln1m,
    j.rstd = a + A.la.ln1r;
    rlvr_pfor(threads, N, ROWS, ln_rows, &j);
    TRY(rlvr_mm(a + A.la.ln1, w + P.lp.aw, a + A.la.qkv, N, C, 3 * C, 0, 0, threads));
    j.y = a + A.la.qkv, j.bias = w + P.lp.ab, j.width = 3 * C;
    rlvr_pfor(threads, N, ROWS, bias_rows, &j);
    // attention, c_proj, residual
    j.qkv = a + A.la.qkv, j.att = a + A.la.att, j.atty = a + A.la.atty;
    rlvr_pfor(threads, B * c->NH, 4, attn_fwd, &j);
    if (atomic_exchange(&attn_oom, 0)) return "out of memory in attention";
    TRY(rlvr_mm(a + A.la.atty, w + P.lp.pw, tmp, N, C, C, 0, 0, threads));
    j.res = a + A.la.xin, j.y = tmp, j.bias = w + P.lp.pb, j.out = a + A.la.xmid, j.add = 0;
    rlvr_pfor(threads, N, ROWS, residual_rows, &j);
    // ln_2, MLP, residual
    j.x = a + A.la.xmid, j.g = w + P.lp.ln2g, j.b = w + P.lp.ln2b, j.y = a + A.la.ln2, j.mean = a + A.la.ln2m,
    j.rstd = a + A.la.ln2r;
    rlvr_pfor(threads, N, ROWS, ln_rows, &j);
    TRY(rlvr_mm(a + A.la.ln2, w + P.lp.fw, a + A.la.fch, N, C, H, 0, 0, threads));
    j.h = a + A.la.fch, j.hg = a + A.la.fcg, j.bias = w + P.lp.fb, j.width = H;
    rlvr_pfor(threads, N, ROWS, bias_gelu_rows, &j);
    TRY(rlvr_mm(a + A.la.fcg, w + P.lp.fpw, tmp, N, H, C, 0, 0, threads));
    j.res = a + A.la.xmid, j.y = tmp, j.bias = w + P.lp.fpb, j.out = xout, j.add = l == add_layer ? add_vec : 0;
    rlvr_pfor(threads, N, ROWS, residual_rows, &j);
  }
  // ln_f, lm_head, log-softmax
  j.x = acts + A.xL, j.g = params + P.lnfg, j.b = params + P.lnfb, j.y = acts + A.lnf, j.mean = acts + A.lnfm,
  j.rstd = acts + A.lnfr;
  rlvr_pfor(threads, N, ROWS, ln_rows, &j);
  TRY(rlvr_mm(acts + A.lnf, params + P.lmw, tmp, N, C, V, 0, 0, threads));
  j.d = tmp, j.lp = acts + A.lp, j.ent = acts + A.ent, j.targets = targets, j.logp = logp, j.entropy = entropy;
  rlvr_pfor(threads, N, ROWS, head_fwd, &j);
  return 0;
}

const char *rlvr_gpt_backward(const RlvrGptCfg *c, const float *params, const int32_t *inputs,
                              const int32_t *targets, float temperature, const float *acts, const float *dlogp,
                              const float *dentropy, float *grads, int threads) {
  TRY(check_cfg(c));
  const ParamLayout P = param_layout(c);
  const ActLayout A = act_layout(c);
  const int B = c->B, T = c->T, C = c->C, N = B * T, H = c->H, V = c->V;
  const size_t n = (size_t)N;
  float *s = rlvr_scratch(&scratch, n * (V + C + C + H + C + 3 * C));
  if (!s) return "out of memory for the scratch";
  float *dlogits = s, *dx = dlogits + n * V, *dln = dx + n * C, *dh = dln + n * C, *datty = dh + n * H,
        *dqkv = datty + n * C;
  memset(grads, 0, sizeof(float) * P.total);
  Job j = {.c = c, .scale = (float)(1.0 / sqrt((double)(C / c->NH))), .tau = temperature};
  // head
  j.lp = (float *)(acts + A.lp), j.ent = (float *)(acts + A.ent), j.targets = targets, j.dlogp = dlogp,
  j.dent = dentropy, j.d = dlogits;
  rlvr_pfor(threads, N, ROWS, head_bwd, &j);
  TRY(rlvr_mm(acts + A.lnf, dlogits, grads + P.lmw, C, N, V, 1, 0, threads));
  TRY(rlvr_mm(dlogits, params + P.lmw, dln, N, V, C, 0, 1, threads));
  memset(dx, 0, sizeof(float) * n * C);
  j.x = acts + A.xL, j.mean = (float *)(acts + A.lnfm), j.rstd = (float *)(acts + A.lnfr), j.g = params + P.lnfg,
  j.dout = dln, j.dx = dx, j.dg = grads + P.lnfg, j.db = grads + P.lnfb;
  rlvr_pfor(threads, N, ROWS, ln_back_rows, &j);
  rlvr_pfor(threads, C, 16, ln_back_cols, &j);
  for (int l = c->L - 1; l >= 0; l--) {
    const float *w = params + P.layer0 + l * P.lp.size;
    float *gw = grads + P.layer0 + l * P.lp.size;
    const float *a = acts + l * A.la.size;
    // MLP: dx is the gradient of the block's output
    TRY(rlvr_mm(dx, w + P.lp.fpw, dh, N, C, H, 0, 1, threads));
    TRY(rlvr_mm(a + A.la.fcg, dx, gw + P.lp.fpw, H, N, C, 1, 0, threads));
    j.dout = dx, j.db = gw + P.lp.fpb, j.width = C;
    rlvr_pfor(threads, C, 16, colsum_cols, &j);
    j.d = dh, j.h = (float *)(a + A.la.fch), j.width = H;
    rlvr_pfor(threads, N, ROWS, gelu_back_rows, &j);
    j.dout = dh, j.db = gw + P.lp.fb, j.width = H;
    rlvr_pfor(threads, H, 16, colsum_cols, &j);
    TRY(rlvr_mm(a + A.la.ln2, dh, gw + P.lp.fw, C, N, H, 1, 0, threads));
    TRY(rlvr_mm(dh, w + P.lp.fw, dln, N, H, C, 0, 1, threads));
    j.x = a + A.la.xmid, j.mean = (float *)(a + A.la.ln2m), j.rstd = (float *)(a + A.la.ln2r), j.g = w + P.lp.ln2g,
    j.dout = dln, j.dx = dx, j.dg = gw + P.lp.ln2g, j.db = gw + P.lp.ln2b;
    rlvr_pfor(threads, N, ROWS, ln_back_rows, &j);
    rlvr_pfor(threads, C, 16, ln_back_cols, &j);
    // attention: dx is now the gradient of xmid
    TRY(rlvr_mm(dx, w + P.lp.pw, datty, N, C, C, 0, 1, threads));
    TRY(rlvr_mm(a + A.la.atty, dx, gw + P.lp.pw, C, N, C, 1, 0, threads));
    j.dout = dx, j.db = gw + P.lp.pb, j.width = C;
    rlvr_pfor(threads, C, 16, colsum_cols, &j);
    j.qkv = a + A.la.qkv, j.att_c = a + A.la.att, j.datty = datty, j.dqkv = dqkv;
    rlvr_pfor(threads, B * c->NH, 4, attn_bwd, &j);
    if (atomic_exchange(&attn_oom, 0)) return "out of memory in attention";
    j.dout = dqkv, j.db = gw + P.lp.ab, j.width = 3 * C;
    rlvr_pfor(threads, 3 * C, 16, colsum_cols, &j);
    TRY(rlvr_mm(a + A.la.ln1, dqkv, gw + P.lp.aw, C, N, 3 * C, 1, 0, threads));
    TRY(rlvr_mm(dqkv, w + P.lp.aw, dln, N, 3 * C, C, 0, 1, threads));
    j.x = a + A.la.xin, j.mean = (float *)(a + A.la.ln1m), j.rstd = (float *)(a + A.la.ln1r), j.g = w + P.lp.ln1g,
    j.dout = dln, j.dx = dx, j.dg = gw + P.lp.ln1g, j.db = gw + P.lp.ln1b;
    rlvr_pfor(threads, N, ROWS, ln_back_rows, &j);
    rlvr_pfor(threads, C, 16, ln_back_cols, &j);
  }
  // embeddings
  for (int r = 0; r < N; r++) {
    float *te = grads + P.wte + (size_t)inputs[r] * C, *pe = grads + P.wpe + (size_t)(r % T) * C;
    const float *d = dx + (size_t)r * C;
    for (int i = 0; i < C; i++) te[i] += d[i], pe[i] += d[i];
  }
  return 0;
}
