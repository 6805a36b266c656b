// The Llama family's teacher-forced forward and backward in one call each (llama.c), as gpt.h is
// for the organism: src/model/llama.ts's tokenLogProbs (RMSNorm, q/k/v projections with optional
// biases, per-head q/k RMSNorm for qwen3, rotate-half RoPE from tables the caller computes, causal
// grouped-query attention, SwiGLU MLP, final norm, output layer, log-softmax at a temperature,
// target log-probs and entropy). Matmuls through rlvr_gemm; the numbers agree with the tfjs graph
// to float rounding, not bit for bit.
#ifndef RLVR_LLAMA_H
#define RLVR_LLAMA_H
#include <stdint.h>

/** B sequences of T tokens; hidden C, L layers, vocabulary V, MLP intermediate I, nh query heads,
 * nkv key-value heads, head_dim hd; flags: qkv biases, o_proj bias, q/k norm, tied output layer, and
 * keep_logits: the forward keeps the output layer's logits (B·T·V floats, slice after slice) in the
 * activations for the backward, which otherwise computes them again */
typedef struct {
  int B, T, C, L, V, I, nh, nkv, hd, qkv_bias, o_bias, qk_norm, tied, keep_logits;
} RlvrLlamaCfg;

/** the parameter tensors, in llamaParamShapes() order (llama.ts; no MLP biases): how many, and the
 * floats of each (sizes: rlvr_llama_tensor_count(c) entries). The kernels take a table of pointers
 * to them (the tensors where they live, in the tfjs-wasm heap), and one of their gradients. */
int rlvr_llama_tensor_count(const RlvrLlamaCfg *c);
void rlvr_llama_tensor_sizes(const RlvrLlamaCfg *c, int64_t *sizes);
/** floats of the activations the forward keeps for the backward */
int64_t rlvr_llama_acts_size(const RlvrLlamaCfg *c);
/** null if the config is usable, else why not */
const char *rlvr_llama_check(const RlvrLlamaCfg *c);

/** logp[n] = log softmax(logits / temperature)[n, targets[n]], entropy[n] its entropy; cos and sin
 * [T, hd]: the RoPE tables (sin signed: −sin on the first half, +sin on the second); eps: the
 * RMSNorm epsilon. add_layer >= 0: add_vec [C] joins the residual stream after that layer. */
const char *rlvr_llama_forward(const RlvrLlamaCfg *c, float *const *params, const int32_t *inputs,
                               const int32_t *targets, const float *cos, const float *sin, float eps,
                               float temperature, float *acts, float *logp, float *entropy, int add_layer,
                               const float *add_vec, int threads);

/** grads (a table like params, every tensor overwritten) of sum(dlogp · logp + dentropy · entropy),
 * from the acts of the forward with the same arguments */
const char *rlvr_llama_backward(const RlvrLlamaCfg *c, float *const *params, const int32_t *inputs,
                                const int32_t *targets, const float *cos, const float *sin, float eps,
                                float temperature, const float *acts, const float *dlogp, const float *dentropy,
                                float *const *grads, int threads);
#endif
