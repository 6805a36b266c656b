"""The organism's GPT (src/model/gpt.ts) in eager PyTorch, for the bench's peer (torch_peer.py): the
same function on the same checkpoint (oneshot-rlvr/gpt@1: float32 safetensors with nanoGPT names,
weights [in, out], untied lm_head), written as a researcher would. Pre-LayerNorm blocks (eps 1e-5),
GELU with the tanh approximation, causal attention over all heads at once, learned positions.
Forward, token log-probs and entropies, and batched sampling with a KV cache; not a training library
(the GRPO update lives in torch_peer.py)."""

import torch
import torch.nn.functional as F

from tensors import attend, sample_rows


def param_shapes(cfg):
    """(name, shape) in checkpoint order, as paramShapes in gpt.ts"""
    C, V, H = cfg["width"], cfg["vocabSize"], cfg["mlpRatio"] * cfg["width"]
    out = [("wte", [V, C]), ("wpe", [cfg["contextLength"], C])]
    for l in range(cfg["layers"]):
        p = f"h.{l}."
        out += [
            (p + "ln_1.g", [C]),
            (p + "ln_1.b", [C]),
            (p + "attn.c_attn.w", [C, 3 * C]),
            (p + "attn.c_attn.b", [3 * C]),
            (p + "attn.c_proj.w", [C, C]),
            (p + "attn.c_proj.b", [C]),
            (p + "ln_2.g", [C]),
            (p + "ln_2.b", [C]),
            (p + "mlp.c_fc.w", [C, H]),
            (p + "mlp.c_fc.b", [H]),
            (p + "mlp.c_proj.w", [H, C]),
            (p + "mlp.c_proj.b", [C]),
        ]
    return out + [("ln_f.g", [C]), ("ln_f.b", [C]), ("lm_head.w", [C, V])]


class Gpt:
    def __init__(self, cfg, tensors, trainable=True):
        self.cfg = cfg
        self.params = {}
        for name, shape in param_shapes(cfg):
            t = tensors.get(name)
            if t is None:
                raise ValueError(f"gpt checkpoint: missing tensor {name}")
            if list(t.shape) != shape:
                raise ValueError(f"gpt checkpoint: {name} has shape {list(t.shape)}, the config needs {shape}")
            self.params[name] = t.clone().requires_grad_(trainable)

    @staticmethod
    def decayed(name):
        """biases (.b) and LayerNorm gains (.g) take no weight decay (model/optim.ts)"""
        return not (name.endswith(".b") or name.endswith(".g"))

    def block(self, l, x, cache=None, pos=0):
        """x [B, T, C] -> [B, T, C]; cache: (k, v) [B, nh, Tctx, hd], written at [pos, pos + T)"""
        p = lambda s: self.params[f"h.{l}.{s}"]
        B, T, C = x.shape
        nh = self.cfg["heads"]
        hd = C // nh
        h = F.layer_norm(x, (C,), p("ln_1.g"), p("ln_1.b"), 1e-5)
        qkv = F.linear(h, p("attn.c_attn.w").t(), p("attn.c_attn.b"))  # [B, T, 3C]
        q, k, v = (t.view(B, T, nh, hd).transpose(1, 2) for t in qkv.split(C, dim=2))  # [B, nh, T, hd]
        if cache is not None:
            kc, vc = cache
            kc[:, :, pos : pos + T] = k
            vc[:, :, pos : pos + T] = v
            k, v = kc[:, :, : pos + T], vc[:, :, : pos + T]
        # causal within the new positions; a decode step (T = 1) sees every cached one
        if T > 1 and pos != 0:
            raise ValueError("gpt twin: a multi-token step must start at position 0")
        y = attend(q, k, v, causal=T > 1)  # [B, nh, T, hd]
        y = y.transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, p("attn.c_proj.w").t(), p("attn.c_proj.b"))
        h2 = F.layer_norm(x, (C,), p("ln_2.g"), p("ln_2.b"), 1e-5)
        m = F.gelu(F.linear(h2, p("mlp.c_fc.w").t(), p("mlp.c_fc.b")), approximate="tanh")
        return x + F.linear(m, p("mlp.c_proj.w").t(), p("mlp.c_proj.b"))

    def forward(self, idx, caches=None, pos=0):
        """idx [B, T] int64 at positions [pos, pos + T) -> logits [B, T, V]"""
        P = self.params
        T = idx.shape[1]
        if pos + T > self.cfg["contextLength"]:
            raise ValueError(f"gpt twin: positions up to {pos + T} exceed the context {self.cfg['contextLength']}")
        x = F.embedding(idx, P["wte"]) + P["wpe"][pos : pos + T]
        for l in range(self.cfg["layers"]):
            x = self.block(l, x, caches[l] if caches is not None else None, pos)
        x = F.layer_norm(x, (x.shape[-1],), P["ln_f.g"], P["ln_f.b"], 1e-5)
        return x @ P["lm_head.w"]

    def token_logprobs(self, inputs, targets, temperature=1.0, entropy=False):
        """log p(targets | inputs) and the entropy of softmax(logits / temperature), [B, T] each"""
        logits = self.forward(inputs)
        if temperature != 1:
            logits = logits / temperature
        logprobs = F.log_softmax(logits, dim=-1)  # [B, T, V]
        logp = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        ent = -(logprobs.exp() * logprobs).sum(-1) if entropy else None
        return logp, ent

    @torch.inference_mode()
    def generate(self, prompts, max_new_tokens, temperature, top_p, eos_id, generator):
        """prompts: lists of ids, BOS included, all of one length (the bench's are). Sequences stop at
        EOS (not in the completion; finished), at max_new_tokens, or at the context's end, as decode.ts
        does. Finished rows leave the batch. Returns (completions, finished)."""
        B, P = len(prompts), len(prompts[0])
        if any(len(p) != P for p in prompts):
            raise ValueError("gpt twin: prompts must all have one length")
        C, nh, Tctx = self.cfg["width"], self.cfg["heads"], self.cfg["contextLength"]
        if P >= Tctx:
            raise ValueError(f"gpt twin: prompts of {P} tokens do not fit the context {Tctx}")
        caches = [
            (torch.zeros(B, nh, Tctx, C // nh), torch.zeros(B, nh, Tctx, C // nh)) for _ in range(self.cfg["layers"])
        ]
        logits = self.forward(torch.tensor(prompts), caches, 0)[:, -1]  # [B, V]
        rows = list(range(B))
        completions = [[] for _ in range(B)]
        finished = [False] * B
        pos = P
        while True:
            nxt = sample_rows(logits, temperature, top_p, generator)  # [n]
            keep = []
            for i, t in enumerate(nxt.tolist()):
                b = rows[i]
                if t == eos_id:
                    finished[b] = True
                    continue
                completions[b].append(t)
                if len(completions[b]) < max_new_tokens and pos + 1 < Tctx:
                    keep.append(i)
            if not keep:
                return completions, finished
            if len(keep) < len(rows):
                ki = torch.tensor(keep)
                caches = [(k[ki], v[ki]) for k, v in caches]
                rows = [rows[i] for i in keep]
                nxt = nxt[ki]
            logits = self.forward(nxt.view(-1, 1), caches, pos)[:, -1]
            pos += 1
