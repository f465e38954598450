"""Engine reference for features the trained fixtures lack: a tiny random
Qwen3-style model (per-head QK RMSNorm, tied embeddings, llama3 RoPE scaling,
head_dim != hidden/heads, GQA) written as F32 safetensors + config.json, and a
float64 torch forward of it (written independently of the C++ engine).

Run: /usr/bin/python3 tools/gen_engine_ref.py --out testdata/engine/qwen3-tiny
Outputs: config.json, model.safetensors, reference_logits.json (logits at
every position for a few fixed id sequences)."""

import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures.formats import write_safetensors  # noqa: E402

H, L, NH, NKV, HD, FFN, V, EPS, THETA = 48, 2, 4, 2, 24, 96, 97, 1e-6, 50000.0
ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32}


def inv_freq():
    inv = 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.float64) / HD))
    old, lo, hi, f = ROPE["original_max_position_embeddings"], ROPE["low_freq_factor"], ROPE["high_freq_factor"], ROPE["factor"]
    out = []
    for w in inv.tolist():
        wavelen = 2 * math.pi / w
        if wavelen < old / hi:
            out.append(w)
        elif wavelen > old / lo:
            out.append(w / f)
        else:
            s = (old / wavelen - lo) / (hi - lo)
            out.append((1 - s) * w / f + s * w)
    return torch.tensor(out, dtype=torch.float64)


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rot(x, cos, sin):
    h = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., h:], x[..., :h]], -1) * sin


def forward(W, ids):
    n = len(ids)
    x = W["model.embed_tokens.weight"][ids]
    ang = torch.arange(n, dtype=torch.float64)[:, None] * inv_freq()[None, :]
    ang = torch.cat([ang, ang], -1)
    cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
    mask = torch.full((n, n), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(L):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"])
        q = (h @ W[p + "self_attn.q_proj.weight"].T).view(n, NH, HD)
        k = (h @ W[p + "self_attn.k_proj.weight"].T).view(n, NKV, HD)
        v = (h @ W[p + "self_attn.v_proj.weight"].T).view(n, NKV, HD)
        q = rot(rms(q, W[p + "self_attn.q_norm.weight"]), cos, sin)
        k = rot(rms(k, W[p + "self_attn.k_norm.weight"]), cos, sin)
        k = k.repeat_interleave(NH // NKV, dim=1)
        v = v.repeat_interleave(NH // NKV, dim=1)
        att = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(HD) + mask
        o = torch.einsum("hqk,khd->qhd", att.softmax(-1), v).reshape(n, NH * HD)
        x = x + o @ W[p + "self_attn.o_proj.weight"].T
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        g = torch.nn.functional.silu(h @ W[p + "mlp.gate_proj.weight"].T) * (h @ W[p + "mlp.up_proj.weight"].T)
        x = x + g @ W[p + "mlp.down_proj.weight"].T
    x = rms(x, W["model.norm.weight"])
    return x @ W["model.embed_tokens.weight"].T  # tied head


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    out = ap.parse_args().out
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(20261125)

    def rnd(*shape, scale):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).float()

    def norm(dim):
        return (1 + 0.2 * torch.randn(dim, generator=g, dtype=torch.float64)).float()

    W = {"model.embed_tokens.weight": rnd(V, H, scale=1.0), "model.norm.weight": norm(H)}
    for l in range(L):
        p = f"model.layers.{l}."
        W[p + "input_layernorm.weight"] = norm(H)
        W[p + "post_attention_layernorm.weight"] = norm(H)
        W[p + "self_attn.q_norm.weight"] = norm(HD)
        W[p + "self_attn.k_norm.weight"] = norm(HD)
        W[p + "self_attn.q_proj.weight"] = rnd(NH * HD, H, scale=H ** -0.5)
        W[p + "self_attn.k_proj.weight"] = rnd(NKV * HD, H, scale=H ** -0.5)
        W[p + "self_attn.v_proj.weight"] = rnd(NKV * HD, H, scale=H ** -0.5)
        W[p + "self_attn.o_proj.weight"] = rnd(H, NH * HD, scale=(NH * HD) ** -0.5)
        W[p + "mlp.gate_proj.weight"] = rnd(FFN, H, scale=H ** -0.5)
        W[p + "mlp.up_proj.weight"] = rnd(FFN, H, scale=H ** -0.5)
        W[p + "mlp.down_proj.weight"] = rnd(H, FFN, scale=FFN ** -0.5)
    write_safetensors(os.path.join(out, "model.safetensors"), W)
    config = {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": H, "num_hidden_layers": L,
        "num_attention_heads": NH, "num_key_value_heads": NKV, "head_dim": HD, "intermediate_size": FFN,
        "vocab_size": V, "rms_norm_eps": EPS, "rope_theta": THETA, "rope_scaling": ROPE,
        "max_position_embeddings": 256, "tie_word_embeddings": True, "hidden_act": "silu",
        "attention_bias": False, "torch_dtype": "float32",
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    W64 = {k: v.double() for k, v in W.items()}
    seqs = [[1, 5, 9, 2, 96, 40, 33], list(range(0, 97, 2)) + list(range(95, 0, -3))]
    ref = {"computation": "torch float64 forward of the stored F32 weights; tools/gen_engine_ref.py",
           "sequences": [{"token_ids": s, "logits": [[round(v, 9) for v in row] for row in forward(W64, s).tolist()]}
                         for s in seqs]}
    with open(os.path.join(out, "reference_logits.json"), "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    main()
