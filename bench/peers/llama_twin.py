"""Hugging Face's Llama decoder (src/model/llama.ts, family `llama` only) in eager PyTorch, for the
bench's peer (torch_peer.py), loaded from the same HF-layout safetensors (names are the checkpoint's;
linear weights [out, in]; F32/BF16/F16 read as float32). Pre-norm blocks: RMSNorm (float32,
rms_norm_eps), grouped-query attention with rotate-half RoPE (rope_theta, no scaling), SwiGLU MLP,
tied or untied output layer, written as transformers' modeling_llama writes them. Forward with
optional per-block recomputation (gradient checkpointing, as llama.ts does by default), token
log-probs and entropies, and batched sampling with left padding and a KV cache."""

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from tensors import attend, sample_rows

MASKED = -1e9  # additive mask value, as llama.ts uses


class Llama:
    def __init__(self, config, tensors):
        mt = config.get("model_type") or (config.get("architectures") or [None])[0]
        if mt not in ("llama", "LlamaForCausalLM"):
            raise ValueError(f"llama twin: model_type {mt!r}; this twin covers the llama family only")
        for key, ok in (
            ("rope_scaling", lambda v: v is None),
            ("attention_bias", lambda v: not v),
            ("mlp_bias", lambda v: not v),
            ("hidden_act", lambda v: v == "silu"),
        ):
            if key in config and not ok(config[key]):
                raise ValueError(f"llama twin: {key} = {config[key]!r} is not covered")
        self.V = config["vocab_size"]
        self.C = config["hidden_size"]
        self.L = config["num_hidden_layers"]
        self.nh = config["num_attention_heads"]
        self.nkv = config.get("num_key_value_heads") or self.nh
        self.hd = config.get("head_dim") or self.C // self.nh
        self.eps = config.get("rms_norm_eps", 1e-6)
        self.tied = config.get("tie_word_embeddings", False)
        self.max_positions = config.get("max_position_embeddings", 2048)
        theta = config.get("rope_theta", 10000.0)
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, self.hd, 2, dtype=torch.int64).float() / self.hd))
        self.recompute = True
        names = ["model.embed_tokens.weight", "model.norm.weight"] + ([] if self.tied else ["lm_head.weight"])
        for l in range(self.L):
            p = f"model.layers.{l}."
            names += [p + s + ".weight" for s in ("input_layernorm", "post_attention_layernorm")]
            names += [p + "self_attn." + s + ".weight" for s in ("q_proj", "k_proj", "v_proj", "o_proj")]
            names += [p + "mlp." + s + ".weight" for s in ("gate_proj", "up_proj", "down_proj")]
        missing = [n for n in names if n not in tensors]
        if missing:
            raise ValueError(f"llama twin: checkpoint lacks {missing[:3]}")
        self.params = {n: tensors[n].clone().requires_grad_(True) for n in names}

    @property
    def out_weight(self):
        return self.params["model.embed_tokens.weight" if self.tied else "lm_head.weight"]

    def rms_norm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, positions):
        """cos, sin [B, 1, T, hd] of int64 positions [B, T]"""
        freqs = positions[..., None].float() * self.inv_freq  # [B, T, hd/2]
        emb = torch.cat([freqs, freqs], dim=-1)
        return emb.cos()[:, None], emb.sin()[:, None]

    @staticmethod
    def rotate(x, cos, sin):
        x1, x2 = x.chunk(2, dim=-1)
        return x * cos + torch.cat([-x2, x1], dim=-1) * sin

    def block(self, l, x, cos, sin, mask, causal, cache=None, slot=0):
        """x [B, T, C]; mask additive [B, 1, T, Tk] or None (then `causal`); cache (k, v)
        [B, nkv, slots, hd] written at [slot, slot + T)"""
        w = lambda s: self.params[f"model.layers.{l}.{s}.weight"]
        B, T, _ = x.shape
        h = self.rms_norm(x, w("input_layernorm"))
        q = F.linear(h, w("self_attn.q_proj")).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = F.linear(h, w("self_attn.k_proj")).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = F.linear(h, w("self_attn.v_proj")).view(B, T, self.nkv, self.hd).transpose(1, 2)
        q, k = self.rotate(q, cos, sin), self.rotate(k, cos, sin)
        if cache is not None:
            kc, vc = cache
            kc[:, :, slot : slot + T] = k
            vc[:, :, slot : slot + T] = v
            k, v = kc[:, :, : slot + T], vc[:, :, : slot + T]
        r = self.nh // self.nkv
        if r > 1:  # transformers' repeat_kv
            Tk = k.shape[2]
            k = k[:, :, None].expand(B, self.nkv, r, Tk, self.hd).reshape(B, self.nh, Tk, self.hd)
            v = v[:, :, None].expand(B, self.nkv, r, Tk, self.hd).reshape(B, self.nh, Tk, self.hd)
        y = attend(q, k, v, causal=causal, mask=mask).transpose(1, 2).reshape(B, T, self.nh * self.hd)
        x = x + F.linear(y, w("self_attn.o_proj"))
        h2 = self.rms_norm(x, w("post_attention_layernorm"))
        act = F.silu(F.linear(h2, w("mlp.gate_proj"))) * F.linear(h2, w("mlp.up_proj"))
        return x + F.linear(act, w("mlp.down_proj"))

    def token_logprobs(self, inputs, targets, temperature=1.0, entropy=False):
        """log p(targets | inputs) and entropies of softmax(logits / temperature), [B, T] each; with
        `recompute`, every block keeps only its input for the backward pass"""
        B, T = inputs.shape
        cos, sin = self.rope(torch.arange(T)[None].expand(B, T))
        x = F.embedding(inputs, self.params["model.embed_tokens.weight"])
        for l in range(self.L):
            if self.recompute and torch.is_grad_enabled():
                x = checkpoint(self.block, l, x, cos, sin, None, True, use_reentrant=False)
            else:
                x = self.block(l, x, cos, sin, None, True)
        logits = F.linear(self.rms_norm(x, self.params["model.norm.weight"]), self.out_weight)  # [B, T, V]
        if temperature != 1:
            logits = logits / temperature
        logprobs = F.log_softmax(logits, dim=-1)
        logp = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        ent = -(logprobs.exp() * logprobs).sum(-1) if entropy else None
        return logp, ent

    @torch.inference_mode()
    def generate(self, prompts, max_new_tokens, temperature, top_p, stop_ids, generator):
        """prompts of any lengths, left-padded into one batch and prefilled together (positions count
        from each prompt's first token); then one token per row per step against the KV cache. Rows
        stop at a stop id (kept in the completion: the model-family seam's convention), at
        max_new_tokens or at max_position_embeddings, and leave the batch. Returns (completions,
        finished)."""
        B = len(prompts)
        P = max(len(p) for p in prompts)
        slots = P + max_new_tokens
        ids = torch.zeros(B, P, dtype=torch.int64)
        positions = torch.zeros(B, P, dtype=torch.int64)
        key_mask = torch.zeros(B, slots)
        for b, p in enumerate(prompts):
            pad = P - len(p)
            ids[b, pad:] = torch.tensor(p)
            positions[b, pad:] = torch.arange(len(p))
            key_mask[b, :pad] = MASKED
        caches = [
            (torch.zeros(B, self.nkv, slots, self.hd), torch.zeros(B, self.nkv, slots, self.hd)) for _ in range(self.L)
        ]
        causal = torch.full((P, P), MASKED).triu(1)
        mask = causal[None, None] + key_mask[:, None, None, :P]  # [B, 1, P, P]
        cos, sin = self.rope(positions)
        x = F.embedding(ids, self.params["model.embed_tokens.weight"])
        for l in range(self.L):
            x = self.block(l, x, cos, sin, mask, False, caches[l], 0)
        logits = F.linear(self.rms_norm(x[:, -1], self.params["model.norm.weight"]), self.out_weight)  # [B, V]
        rows = list(range(B))
        next_pos = torch.tensor([len(p) for p in prompts])
        completions = [[] for _ in range(B)]
        finished = [False] * B
        stop = set(stop_ids)
        slot = P
        while True:
            nxt = sample_rows(logits, temperature, top_p, generator)
            keep = []
            for i, t in enumerate(nxt.tolist()):
                b = rows[i]
                completions[b].append(t)
                if t in stop:
                    finished[b] = True
                elif len(completions[b]) < max_new_tokens and int(next_pos[i]) + 1 < self.max_positions:
                    keep.append(i)
            if not keep:
                return completions, finished
            if len(keep) < len(rows):
                ki = torch.tensor(keep)
                caches = [(k[ki], v[ki]) for k, v in caches]
                rows = [rows[i] for i in keep]
                nxt, next_pos, key_mask = nxt[ki], next_pos[ki], key_mask[ki]
            cos, sin = self.rope(next_pos[:, None])
            mask = key_mask[:, None, None, : slot + 1]  # [n, 1, 1, Tk]
            x = F.embedding(nxt[:, None], self.params["model.embed_tokens.weight"])
            for l in range(self.L):
                x = self.block(l, x, cos, sin, mask, False, caches[l], slot)
            logits = F.linear(self.rms_norm(x[:, -1], self.params["model.norm.weight"]), self.out_weight)
            next_pos = next_pos + 1
            slot += 1
