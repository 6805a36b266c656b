"""Pieces both twins (gpt_twin.py, llama_twin.py) share: reading safetensors without the safetensors
package (Debian's python3-torch does not bring it), attention, and drawing one token per row."""

import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

# torch >= 2.0 has a fused attention; 1.13 (Debian bookworm's python3-torch) does not
SDPA = hasattr(F, "scaled_dot_product_attention")


def read_safetensors(path):
    """name -> float32 tensor (F32, F16 and BF16 files, as the project reads them)"""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[a:b]
        if info["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4").copy()
        elif info["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        elif info["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}; F32, F16 and BF16 are read")
        out[name] = torch.from_numpy(arr.reshape(info["shape"]))
    return out


def read_checkpoint_tensors(dirname):
    """model.safetensors, or the shards named by model.safetensors.index.json"""
    single = os.path.join(dirname, "model.safetensors")
    if os.path.exists(single):
        return read_safetensors(single)
    with open(os.path.join(dirname, "model.safetensors.index.json")) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
    out = {}
    for shard in shards:
        out.update(read_safetensors(os.path.join(dirname, shard)))
    return out


def attend(q, k, v, causal=False, mask=None):
    """softmax(q kᵀ / √hd + mask) v over [B, h, T, hd] / [B, h, Tk, hd]; `causal` (T = Tk) or an
    additive `mask` broadcastable to [B, h, T, Tk]"""
    if SDPA:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal and mask is None)
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if causal:
        T = q.shape[-2]
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    if mask is not None:
        att = att + mask
    return F.softmax(att, dim=-1) @ v


def sample_rows(logits, temperature, top_p, generator):
    """one token per row of logits [n, V]: argmax at temperature 0, else a draw from
    softmax(logits / temperature), within the smallest set holding top_p of the mass when top_p < 1"""
    if temperature == 0:
        return logits.argmax(-1)
    probs = F.softmax(logits / temperature, dim=-1)
    if top_p < 1:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        cum = sorted_p.cumsum(-1)
        # keep each token whose preceding mass is below top_p (the first always)
        sorted_p = sorted_p.masked_fill(cum - sorted_p >= top_p, 0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
