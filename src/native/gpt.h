// The organism's whole teacher-forced forward and backward in one call each (gpt.c), in the llm.c
// manner: plain float pointers, the matmuls through rlvr_gemm, the rest split over the thread pool.
// The function is src/model/gpt.ts's tokenLogProbs (same LayerNorm, GELU, attention, temperature,
// entropy); the numbers agree with it to float rounding, not bit for bit.
#ifndef RLVR_GPT_H
#define RLVR_GPT_H
#include <stdint.h>

/** B sequences of T tokens; width C, NH heads, L blocks, vocabulary V, MLP hidden H, context ctx */
typedef struct {
  int B, T, C, NH, L, V, H, ctx;
} RlvrGptCfg;

/** floats of the parameters, concatenated in paramShapes() order (gpt.ts) */
int64_t rlvr_gpt_param_count(const RlvrGptCfg *c);
/** floats of the activations the forward keeps for the backward */
int64_t rlvr_gpt_acts_size(const RlvrGptCfg *c);

/** logp[n] = log softmax(logits / temperature)[n, targets[n]], entropy[n] (may be null) its entropy;
 * acts receives what the backward needs. add_layer >= 0: add_vec [C] joins the residual stream after
 * that block. Returns null, or why it could not run. */
const char *rlvr_gpt_forward(const RlvrGptCfg *c, const float *params, const int32_t *inputs, const int32_t *targets,
                             float temperature, float *acts, float *logp, float *entropy, int add_layer,
                             const float *add_vec, int threads);

/** grads (same layout as params, overwritten) of sum(dlogp · logp + dentropy · entropy), dentropy may
 * be null, from the acts of the forward with the same arguments. */
const char *rlvr_gpt_backward(const RlvrGptCfg *c, const float *params, const int32_t *inputs,
                              const int32_t *targets, float temperature, const float *acts, const float *dlogp,
                              const float *dentropy, float *grads, int threads);
#endif
