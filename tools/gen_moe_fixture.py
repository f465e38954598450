"""Engine reference for sparse mixture-of-experts layers: two tiny random
models with base-a's 512-token vocabulary, written as BF16 safetensors +
config.json (mixtral-tiny also gets base-a's tokenizer files), and an independent float64 numpy
forward of the stored (BF16-rounded) weights:

  mixtral-tiny   Mixtral: 4 experts, top-2, always renormalised, untied head
  qwen3moe-tiny  Qwen3-MoE: 6 experts, top-2, norm_topk_prob false, QK-norm,
                 tied embeddings, head_dim 16 != hidden / heads, layer 1 dense
                 (mlp_only_layers) of a different width than the experts

Seeds are tried until every routing decision of the reference sequences has
a gap of at least 2e-3 between the k-th and (k+1)-th expert probability, so
float32 rounding in the engine cannot flip an expert choice.

Needs only numpy (Debian python3-numpy).
Run: /usr/bin/python3 tools/gen_moe_fixture.py --out testdata/engine
Outputs per model: config.json, model.safetensors, reference_logits.json with,
for a few fixed id sequences, the full logits of the last position, the first
32 logits of every position and the argmax of every position."""

import argparse
import json
import os
import shutil
import struct

import numpy as np

VOCAB = 512
HEAD_IDS = 32  # logits kept at every position
MIN_GAP = 2e-3
SEQUENCES = [
    [507, 65, 289, 312, 298, 10, 270, 33, 401],
    [507, 3, 511, 17, 200, 200, 200, 45, 88, 123, 9, 310, 77],
    [12, 400, 5],
]
HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER_DIR = os.path.join(HERE, "..", "testdata", "models", "base-a")

MIXTRAL = {
    "name": "mixtral-tiny", "hidden": 32, "layers": 2, "heads": 4, "kv_heads": 2, "head_dim": 8,
    "experts": 4, "top_k": 2, "expert_ffn": 32, "dense_ffn": 32, "norm_topk": True, "qk_norm": False,
    "tied": False, "eps": 1e-5, "theta": 1e6, "dense_layers": [],
}
QWEN3MOE = {
    "name": "qwen3moe-tiny", "hidden": 32, "layers": 2, "heads": 4, "kv_heads": 2, "head_dim": 16,
    "experts": 6, "top_k": 2, "expert_ffn": 24, "dense_ffn": 48, "norm_topk": False, "qk_norm": True,
    "tied": True, "eps": 1e-6, "theta": 1e6, "dense_layers": [1],
}


def bf16_round(a):
    """float32 -> nearest-even bfloat16, returned as float32 values."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def write_safetensors_bf16(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = bf16_round(tensors[name])
        raw = (a.view(np.uint32) >> 16).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def make_weights(cfg, rng):
    H, HD, NH, NKV, E = cfg["hidden"], cfg["head_dim"], cfg["heads"], cfg["kv_heads"], cfg["experts"]
    lin = lambda out, inp, gain=1.0: rng.normal(0, gain / np.sqrt(inp), (out, inp)).astype(np.float32)
    norm = lambda n: (1.0 + 0.1 * rng.normal(size=n)).astype(np.float32)
    w = {"model.embed_tokens.weight": rng.normal(0, 1, (VOCAB, H)).astype(np.float32),
         "model.norm.weight": norm(H)}
    if not cfg["tied"]:
        w["lm_head.weight"] = lin(VOCAB, H, 2.0)
    mixtral = cfg["name"].startswith("mixtral")
    for l in range(cfg["layers"]):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = norm(H)
        w[p + "post_attention_layernorm.weight"] = norm(H)
        w[p + "self_attn.q_proj.weight"] = lin(NH * HD, H)
        w[p + "self_attn.k_proj.weight"] = lin(NKV * HD, H)
        w[p + "self_attn.v_proj.weight"] = lin(NKV * HD, H)
        w[p + "self_attn.o_proj.weight"] = lin(H, NH * HD)
        if cfg["qk_norm"]:
            w[p + "self_attn.q_norm.weight"] = norm(HD)
            w[p + "self_attn.k_norm.weight"] = norm(HD)
        if l in cfg["dense_layers"]:
            F = cfg["dense_ffn"]
            w[p + "mlp.gate_proj.weight"] = lin(F, H)
            w[p + "mlp.up_proj.weight"] = lin(F, H)
            w[p + "mlp.down_proj.weight"] = lin(H, F)
            continue
        F = cfg["expert_ffn"]
        # A strong router: expert probabilities far from uniform.
        if mixtral:
            w[p + "block_sparse_moe.gate.weight"] = lin(E, H, 3.0)
            for e in range(E):
                q = p + f"block_sparse_moe.experts.{e}."
                w[q + "w1.weight"] = lin(F, H)
                w[q + "w3.weight"] = lin(F, H)
                w[q + "w2.weight"] = lin(H, F)
        else:
            w[p + "mlp.gate.weight"] = lin(E, H, 3.0)
            for e in range(E):
                q = p + f"mlp.experts.{e}."
                w[q + "gate_proj.weight"] = lin(F, H)
                w[q + "up_proj.weight"] = lin(F, H)
                w[q + "down_proj.weight"] = lin(H, F)
    return {k: bf16_round(v).astype(np.float64) for k, v in w.items()}


def rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x, pos, theta):
    """x [T, heads, hd], rotate-half layout (HF)."""
    hd = x.shape[-1]
    inv = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = np.asarray(pos, dtype=np.float64)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, -1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, -1)[:, None, :]
    rot = np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1)
    return x * cos + rot * sin


def silu(x):
    return x / (1.0 + np.exp(-x))


def forward(cfg, w, ids, gaps):
    """Float64 logits [T, vocab]; appends each routing decision's top-k gap to gaps."""
    H, HD, NH, NKV, E, K = cfg["hidden"], cfg["head_dim"], cfg["heads"], cfg["kv_heads"], cfg["experts"], cfg["top_k"]
    eps, T = cfg["eps"], len(ids)
    mixtral = cfg["name"].startswith("mixtral")
    x = w["model.embed_tokens.weight"][ids]
    pos = np.arange(T)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(cfg["layers"]):
        p = f"model.layers.{l}."
        h = rms(x, w[p + "input_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(T, NH, HD)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(T, NKV, HD)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(T, NKV, HD)
        if cfg["qk_norm"]:
            q = rms(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = rope(q, pos, cfg["theta"]), rope(k, pos, cfg["theta"])
        att = np.zeros((T, NH, HD))
        for hh in range(NH):
            kv = hh // (NH // NKV)
            s = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(HD) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            att[:, hh, :] = s @ v[:, kv, :]
        x = x + att.reshape(T, NH * HD) @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"], eps)
        if l in cfg["dense_layers"]:
            g = h @ w[p + "mlp.gate_proj.weight"].T
            u = h @ w[p + "mlp.up_proj.weight"].T
            x = x + (silu(g) * u) @ w[p + "mlp.down_proj.weight"].T
            continue
        router = w[p + ("block_sparse_moe.gate.weight" if mixtral else "mlp.gate.weight")]
        logits = h @ router.T
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        out = np.zeros_like(h)
        for t in range(T):
            order = np.argsort(-probs[t], kind="stable")
            top = order[:K]
            if K < E:
                gaps.append(probs[t, order[K - 1]] - probs[t, order[K]])
            wts = probs[t, top]
            if cfg["norm_topk"]:
                wts = wts / wts.sum()
            for e, wt in zip(top, wts):
                if mixtral:
                    q_ = p + f"block_sparse_moe.experts.{e}."
                    gn, un, dn = q_ + "w1.weight", q_ + "w3.weight", q_ + "w2.weight"
                else:
                    q_ = p + f"mlp.experts.{e}."
                    gn, un, dn = q_ + "gate_proj.weight", q_ + "up_proj.weight", q_ + "down_proj.weight"
                y = (silu(w[gn] @ h[t]) * (w[un] @ h[t])) @ w[dn].T
                out[t] += wt * y
        x = x + out
    x = rms(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg["tied"] else w["lm_head.weight"]
    return x @ head.T


def config_json(cfg):
    common = {
        "hidden_size": cfg["hidden"], "num_hidden_layers": cfg["layers"], "num_attention_heads": cfg["heads"],
        "num_key_value_heads": cfg["kv_heads"], "head_dim": cfg["head_dim"], "hidden_act": "silu",
        "max_position_embeddings": 256, "rms_norm_eps": cfg["eps"], "rope_theta": cfg["theta"],
        "tie_word_embeddings": cfg["tied"], "vocab_size": VOCAB, "bos_token_id": 507, "eos_token_id": 508,
        "torch_dtype": "bfloat16", "num_experts_per_tok": cfg["top_k"],
    }
    if cfg["name"].startswith("mixtral"):
        return {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
                "intermediate_size": cfg["expert_ffn"], "num_local_experts": cfg["experts"], **common}
    return {"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
            "intermediate_size": cfg["dense_ffn"], "moe_intermediate_size": cfg["expert_ffn"],
            "num_experts": cfg["experts"], "norm_topk_prob": cfg["norm_topk"], "decoder_sparse_step": 1,
            "mlp_only_layers": cfg["dense_layers"], "attention_bias": False, **common}


def build(cfg, out_root):
    for seed in range(1000):
        rng = np.random.default_rng(seed)
        w = make_weights(cfg, rng)
        gaps = []
        refs = [forward(cfg, w, ids, gaps) for ids in SEQUENCES]
        if min(gaps) >= MIN_GAP:
            break
    else:
        raise SystemExit(f"{cfg['name']}: no seed gives routing gaps >= {MIN_GAP}")
    folder = os.path.join(out_root, cfg["name"])
    os.makedirs(folder, exist_ok=True)
    write_safetensors_bf16(os.path.join(folder, "model.safetensors"), {k: v.astype(np.float32) for k, v in w.items()})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config_json(cfg), f, indent=2)
        f.write("\n")
    for name in ("tokenizer.json", "tokenizer_config.json") if cfg["name"].startswith("mixtral") else ():
        shutil.copyfile(os.path.join(TOKENIZER_DIR, name), os.path.join(folder, name))
    r6 = lambda a: [round(float(v), 6) for v in a]
    ref = {
        "computation": "numpy float64 forward of the stored BF16 weights; tools/gen_moe_fixture.py",
        "seed": seed, "min_routing_gap": round(float(min(gaps)), 6),
        "sequences": [{"token_ids": ids, "last_logits": r6(lg[-1]),
                       "head_logits": [r6(row[:HEAD_IDS]) for row in lg],
                       "argmax": [int(np.argmax(row)) for row in lg]}
                      for ids, lg in zip(SEQUENCES, refs)],
    }
    with open(os.path.join(folder, "reference_logits.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    print(f"{cfg['name']}: seed {seed}, min routing gap {min(gaps):.4f}, "
          f"logit range [{min(r.min() for r in refs):.2f}, {max(r.max() for r in refs):.2f}]")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "testdata", "engine"))
    args = ap.parse_args()
    for cfg in (MIXTRAL, QWEN3MOE):
        build(cfg, args.out)


if __name__ == "__main__":
    main()
