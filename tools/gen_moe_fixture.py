"""Engine reference for sparse mixture-of-experts layers: three tiny random
models written as BF16 safetensors + config.json (mixtral-tiny also gets
base-a's tokenizer files) and as the GGUF files llama.cpp makes, with experts
packed in one 3-D tensor per projection (blk.N.ffn_{gate,up,down}_exps), and
an independent float64 numpy forward of the stored (BF16-rounded) weights:

  mixtral-tiny   Mixtral: 4 experts, top-2, always renormalised, untied head,
                 base-a's 512-token vocabulary; mixtral-tiny-f16.gguf
                 (architecture "llama" with expert_count, Q/K rows permuted)
  qwen3moe-tiny  Qwen3-MoE: 6 experts, top-2, norm_topk_prob false, QK-norm,
                 tied embeddings, head_dim 16 != hidden / heads, layer 1 dense
                 (mlp_only_layers) of a different width than the experts,
                 512 tokens; qwen3moe-tiny-f16.gguf and -q8_0.gguf, whose
                 model renormalises (llama.cpp's qwen3moe always does), with
                 their own reference_gguf.json
  qwen2moe-tiny  Qwen2-MoE: 4 experts, top-2, Q/K/V biases, a shared expert of
                 width 32 gated by sigmoid(shared_expert_gate . x), tied,
                 hidden 16, 64 tokens (ids only); qwen2moe-tiny-f16.gguf

F16 holds these BF16 weights exactly (checked), so an F16 GGUF and its HF
folder are the same model.

Seeds are tried until every routing decision of the reference sequences has
a gap of at least 2e-3 between the k-th and (k+1)-th expert probability, so
float32 rounding in the engine cannot flip an expert choice.

Needs only numpy (Debian python3-numpy).
Run: /usr/bin/python3 tools/gen_moe_fixture.py --out testdata/engine
Outputs per model: config.json, model.safetensors, reference_logits.json with,
for a few fixed id sequences, the full logits of the last position, the first
32 logits of every position and the argmax of every position; the GGUF files."""

import argparse
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures import gguf  # noqa: E402  (numpy-only GGUF writer)
from fixtures.numpy_io import bf16_round, write_gguf_checked, write_safetensors_bf16  # noqa: E402

VOCAB = 512
HEAD_IDS = 32  # logits kept at every position
MIN_GAP = 2e-3
WINDOW = 4  # sliding_window of reference_window.json (mixtral-tiny)
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
# Qwen2-MoE: Q/K/V biases, a shared expert gated by sigmoid(shared_expert_gate . x);
# smaller still (vocabulary 64, token ids only).
QWEN2MOE = {
    "name": "qwen2moe-tiny", "hidden": 16, "layers": 2, "heads": 2, "kv_heads": 1, "head_dim": 8,
    "experts": 4, "top_k": 2, "expert_ffn": 16, "dense_ffn": 48, "shared_ffn": 32, "norm_topk": False,
    "qk_norm": False, "qkv_bias": True, "tied": True, "eps": 1e-6, "theta": 1e6, "dense_layers": [],
    "vocab": 64, "sequences": [[1, 17, 40, 33, 5, 60, 12, 9, 50], [3, 3, 3, 22, 41, 63, 8, 30, 2, 11, 57, 19], [44, 7]],
}


def family(cfg):
    return cfg["name"].split("-")[0]  # mixtral, qwen3moe, qwen2moe


def vocab(cfg):
    return cfg.get("vocab", VOCAB)


def sequences(cfg):
    return cfg.get("sequences", SEQUENCES)


def expert_names(cfg, p, e):
    """HF names of expert e's gate, up and down projections in layer prefix p."""
    if family(cfg) == "mixtral":
        q = p + f"block_sparse_moe.experts.{e}."
        return q + "w1.weight", q + "w3.weight", q + "w2.weight"
    q = p + f"mlp.experts.{e}."
    return q + "gate_proj.weight", q + "up_proj.weight", q + "down_proj.weight"


def router_name(cfg, p):
    return p + ("block_sparse_moe.gate.weight" if family(cfg) == "mixtral" else "mlp.gate.weight")


def make_weights(cfg, rng):
    H, HD, NH, NKV, E = cfg["hidden"], cfg["head_dim"], cfg["heads"], cfg["kv_heads"], cfg["experts"]
    lin = lambda out, inp, gain=1.0: rng.normal(0, gain / np.sqrt(inp), (out, inp)).astype(np.float32)
    norm = lambda n: (1.0 + 0.1 * rng.normal(size=n)).astype(np.float32)
    w = {"model.embed_tokens.weight": rng.normal(0, 1, (vocab(cfg), H)).astype(np.float32),
         "model.norm.weight": norm(H)}
    if not cfg["tied"]:
        w["lm_head.weight"] = lin(vocab(cfg), H, 2.0)
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
        if cfg.get("qkv_bias"):
            for n, rows in (("q", NH * HD), ("k", NKV * HD), ("v", NKV * HD)):
                w[p + f"self_attn.{n}_proj.bias"] = (0.5 * rng.normal(size=rows)).astype(np.float32)
        if l in cfg["dense_layers"]:
            F = cfg["dense_ffn"]
            w[p + "mlp.gate_proj.weight"] = lin(F, H)
            w[p + "mlp.up_proj.weight"] = lin(F, H)
            w[p + "mlp.down_proj.weight"] = lin(H, F)
            continue
        F = cfg["expert_ffn"]
        # A strong router: expert probabilities far from uniform.
        w[router_name(cfg, p)] = lin(E, H, 3.0)
        for e in range(E):
            gn, un, dn = expert_names(cfg, p, e)
            w[gn] = lin(F, H)
            w[un] = lin(F, H)
            w[dn] = lin(H, F)
        if cfg.get("shared_ffn"):
            S, q = cfg["shared_ffn"], p + "mlp.shared_expert."
            w[q + "gate_proj.weight"] = lin(S, H)
            w[q + "up_proj.weight"] = lin(S, H)
            w[q + "down_proj.weight"] = lin(H, S)
            w[p + "mlp.shared_expert_gate.weight"] = lin(1, H, 2.0)
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
    x = w["model.embed_tokens.weight"][ids]
    pos = np.arange(T)
    qi, kj = np.meshgrid(pos, pos, indexing="ij")
    visible = kj <= qi
    if cfg.get("window"):  # Mistral's sliding window: the last `window` positions, self included
        visible &= qi - kj < cfg["window"]
    mask = np.where(visible, 0.0, -np.inf)
    for l in range(cfg["layers"]):
        p = f"model.layers.{l}."
        h = rms(x, w[p + "input_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(T, NH, HD)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(T, NKV, HD)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(T, NKV, HD)
        if cfg.get("qkv_bias"):
            q = q + w[p + "self_attn.q_proj.bias"].reshape(NH, HD)
            k = k + w[p + "self_attn.k_proj.bias"].reshape(NKV, HD)
            v = v + w[p + "self_attn.v_proj.bias"].reshape(NKV, HD)
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
        router = w[router_name(cfg, p)]
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
                gn, un, dn = expert_names(cfg, p, e)
                y = (silu(w[gn] @ h[t]) * (w[un] @ h[t])) @ w[dn].T
                out[t] += wt * y
        if cfg.get("shared_ffn"):
            q_ = p + "mlp.shared_expert."
            y = (silu(h @ w[q_ + "gate_proj.weight"].T) * (h @ w[q_ + "up_proj.weight"].T)) @ w[q_ + "down_proj.weight"].T
            gate = 1.0 / (1.0 + np.exp(-(h @ w[p + "mlp.shared_expert_gate.weight"].T)))  # [T, 1]
            out += (gate if cfg.get("shared_gate", True) else 1.0) * y
        x = x + out
    x = rms(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg["tied"] else w["lm_head.weight"]
    return x @ head.T


# HF name suffix -> llama.cpp GGUF name, per layer (router and experts apart)
GGUF_LAYER = [
    ("input_layernorm", "attn_norm"), ("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"), ("self_attn.q_norm", "attn_q_norm"), ("self_attn.k_norm", "attn_k_norm"),
    ("self_attn.o_proj", "attn_output"), ("post_attention_layernorm", "ffn_norm"), ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"), ("mlp.down_proj", "ffn_down"), ("mlp.shared_expert_gate", "ffn_gate_inp_shexp"),
    ("mlp.shared_expert.gate_proj", "ffn_gate_shexp"), ("mlp.shared_expert.up_proj", "ffn_up_shexp"),
    ("mlp.shared_expert.down_proj", "ffn_down_shexp"),
]


def gguf_type(name, a, qtype):
    """llama.cpp's choices: norms and the router (ffn_gate_inp) stay F32; a
    Q8_0 file falls back to F16 where rows are not whole blocks of 32."""
    if a.ndim == 1 or name.endswith("ffn_gate_inp.weight") or name.endswith("ffn_gate_inp_shexp.weight"):
        return gguf.GGML_F32
    if qtype == gguf.GGML_Q8_0 and a.shape[-1] % 32 == 0:
        return gguf.GGML_Q8_0
    return gguf.GGML_F16


def write_gguf(cfg, w, path, qtype):
    """The GGUF llama.cpp's converter (F16) or llama-quantize (Q8_0) makes:
    Mixtral as architecture "llama" with expert_count and Q/K rows permuted,
    Qwen3-MoE as "qwen3moe", Qwen2-MoE as "qwen2moe" (shared expert as
    ffn_*_shexp, its gate ffn_gate_inp_shexp); experts stacked per projection and layer
    (blk.N.ffn_{gate,up,down}_exps, ne [in, out, experts]). Returns the stored
    weights (dequantized) under their HF names, in float64."""
    mixtral = family(cfg) == "mixtral"
    arch = "llama" if mixtral else family(cfg)
    E, HD = cfg["experts"], cfg["head_dim"]
    kv = [
        ("general.architecture", gguf.STR, arch),
        ("general.name", gguf.STR, cfg["name"]),
        (f"{arch}.context_length", gguf.U32, 256),
        (f"{arch}.embedding_length", gguf.U32, cfg["hidden"]),
        (f"{arch}.block_count", gguf.U32, cfg["layers"]),
        (f"{arch}.feed_forward_length", gguf.U32, cfg["expert_ffn"] if mixtral else cfg["dense_ffn"]),
        (f"{arch}.attention.head_count", gguf.U32, cfg["heads"]),
        (f"{arch}.attention.head_count_kv", gguf.U32, cfg["kv_heads"]),
        (f"{arch}.rope.freq_base", gguf.F32V, cfg["theta"]),
        (f"{arch}.attention.layer_norm_rms_epsilon", gguf.F32V, cfg["eps"]),
        (f"{arch}.expert_count", gguf.U32, E),
        (f"{arch}.expert_used_count", gguf.U32, cfg["top_k"]),
        (f"{arch}.vocab_size", gguf.U32, vocab(cfg)),
        ("general.file_type", gguf.U32, 7 if qtype == gguf.GGML_Q8_0 else 1),
    ]
    if mixtral:
        kv.append((f"{arch}.rope.dimension_count", gguf.U32, HD))
    else:
        kv += [(f"{arch}.attention.key_length", gguf.U32, HD), (f"{arch}.attention.value_length", gguf.U32, HD),
               (f"{arch}.expert_feed_forward_length", gguf.U32, cfg["expert_ffn"])]
    if cfg.get("shared_ffn"):
        kv.append((f"{arch}.expert_shared_feed_forward_length", gguf.U32, cfg["shared_ffn"]))
    # (gguf name, array, how to map the stored values back to HF names)
    entries = [("token_embd.weight", w["model.embed_tokens.weight"], ("plain", "model.embed_tokens.weight"))]
    for l in range(cfg["layers"]):
        p = f"model.layers.{l}."
        for hf, g in GGUF_LAYER:
            for part in ("weight", "bias"):
                name = f"{p}{hf}.{part}"
                if name not in w:
                    continue
                heads = {"attn_q": cfg["heads"], "attn_k": cfg["kv_heads"]}.get(g) if mixtral else None
                if heads:
                    entries.append((f"blk.{l}.{g}.{part}", gguf.permute_qk(w[name], heads), ("qk", name, heads)))
                else:
                    entries.append((f"blk.{l}.{g}.{part}", w[name], ("plain", name)))
        if l in cfg["dense_layers"]:
            continue
        router = router_name(cfg, p)
        entries.append((f"blk.{l}.ffn_gate_inp.weight", w[router], ("plain", router)))
        for i, g in enumerate(("gate", "up", "down")):
            names = [expert_names(cfg, p, e)[i] for e in range(E)]
            entries.append((f"blk.{l}.ffn_{g}_exps.weight", np.stack([w[n] for n in names]), ("stack", names)))
    entries.append(("output_norm.weight", w["model.norm.weight"], ("plain", "model.norm.weight")))
    if not cfg["tied"]:
        entries.append(("output.weight", w["lm_head.weight"], ("plain", "lm_head.weight")))
    tensors = [(n, a.astype(np.float32), gguf_type(n, a, qtype)) for n, a, _ in entries]
    stored = write_gguf_checked(path, kv, tensors)
    out = {}
    for n, _, back in entries:
        a = stored[n].astype(np.float64)
        if back[0] == "plain":
            out[back[1]] = a
        elif back[0] == "qk":
            out[back[1]] = gguf.unpermute_qk(a, back[2])
        else:
            for e, hf in enumerate(back[1]):
                out[hf] = a[e]
    assert sorted(out) == sorted(w), "GGUF mapping lost or invented tensors"
    return out


def config_json(cfg):
    common = {
        "hidden_size": cfg["hidden"], "num_hidden_layers": cfg["layers"], "num_attention_heads": cfg["heads"],
        "num_key_value_heads": cfg["kv_heads"], "head_dim": cfg["head_dim"], "hidden_act": "silu",
        "max_position_embeddings": 256, "rms_norm_eps": cfg["eps"], "rope_theta": cfg["theta"],
        "tie_word_embeddings": cfg["tied"], "vocab_size": vocab(cfg), "bos_token_id": 507, "eos_token_id": 508,
        "torch_dtype": "bfloat16", "num_experts_per_tok": cfg["top_k"],
    }
    if family(cfg) == "qwen2moe":
        return {"architectures": ["Qwen2MoeForCausalLM"], "model_type": "qwen2_moe",
                "intermediate_size": cfg["dense_ffn"], "moe_intermediate_size": cfg["expert_ffn"],
                "shared_expert_intermediate_size": cfg["shared_ffn"], "num_experts": cfg["experts"],
                "norm_topk_prob": cfg["norm_topk"], "decoder_sparse_step": 1, "mlp_only_layers": cfg["dense_layers"],
                "use_sliding_window": False, **common, "bos_token_id": 1, "eos_token_id": 2}
    if family(cfg) == "mixtral":
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
        refs = [forward(cfg, w, ids, gaps) for ids in sequences(cfg)]
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
    for name in ("tokenizer.json", "tokenizer_config.json") if family(cfg) == "mixtral" else ():
        shutil.copyfile(os.path.join(TOKENIZER_DIR, name), os.path.join(folder, name))
    r6 = lambda a: [round(float(v), 6) for v in a]
    ref = {
        "computation": "numpy float64 forward of the stored BF16 weights; tools/gen_moe_fixture.py",
        "seed": seed, "min_routing_gap": round(float(min(gaps)), 6),
        "sequences": [{"token_ids": ids, "last_logits": r6(lg[-1]),
                       "head_logits": [r6(row[:HEAD_IDS]) for row in lg],
                       "argmax": [int(np.argmax(row)) for row in lg]}
                      for ids, lg in zip(sequences(cfg), refs)],
    }
    with open(os.path.join(folder, "reference_logits.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    print(f"{cfg['name']}: seed {seed}, min routing gap {min(gaps):.4f}, "
          f"logit range [{min(r.min() for r in refs):.2f}, {max(r.max() for r in refs):.2f}]")
    if cfg.get("shared_ffn"):
        # The reference must tell a forward that drops the shared expert, or its gate.
        for what, c in (("without the shared expert", {**cfg, "shared_ffn": None}),
                        ("with the shared expert ungated", {**cfg, "shared_gate": False})):
            diff = max_diff([forward(c, w, ids, []) for ids in sequences(cfg)], refs)
            if diff < 0.1:
                raise SystemExit(f"{cfg['name']}: logits {what} differ by only {diff:.3g}")
            print(f"  max |logit diff| {what}: {diff:.3f}")
    if family(cfg) == "mixtral":
        build_window(cfg, w, refs, folder)
    build_gguf(cfg, w, refs, folder)


def max_diff(a, b):
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def build_window(cfg, w, refs, folder):
    """reference_window.json: the logits of the longest sequence with a
    sliding_window of WINDOW (what a config stating it must give; far from
    the full-attention reference)."""
    ids = max(sequences(cfg), key=len)
    gaps = []
    lg = forward({**cfg, "window": WINDOW}, w, ids, gaps)
    full = refs[sequences(cfg).index(ids)]
    apart = float(np.abs(lg - full).max())
    if min(gaps) < MIN_GAP or apart < 0.1:
        raise SystemExit(f"{cfg['name']}: window {WINDOW}: routing gap {min(gaps):.3g}, {apart:.3g} from full attention")
    ref = {"computation": "numpy float64 forward with sliding_window; tools/gen_moe_fixture.py",
           "sliding_window": WINDOW, "min_routing_gap": round(float(min(gaps)), 6),
           "max_abs_diff_from_full_attention": round(apart, 6), "token_ids": ids,
           "logits": [[round(float(v), 6) for v in row] for row in lg[:, :HEAD_IDS]],
           "last_logits": [round(float(v), 6) for v in lg[-1]], "argmax": [int(np.argmax(row)) for row in lg]}
    with open(os.path.join(folder, "reference_window.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    print(f"{cfg['name']} window {WINDOW}: min routing gap {min(gaps):.4f}, max |diff| from full attention {apart:.3f}")


def build_gguf(cfg, w, refs, folder):
    """GGUF files of the model with packed experts. Mixtral: F16, the same
    model as the HF folder (reference_logits.json applies). Qwen3-MoE: llama.cpp
    always renormalises its top-k weights (no GGUF key says otherwise), so its
    GGUF model is the HF one with norm_topk_prob true: F16 and Q8_0 files and
    reference_gguf.json, the float64 forward of the F16 file's weights."""
    name = cfg["name"]
    r6 = lambda a: [round(float(v), 6) for v in a]
    f16 = write_gguf(cfg, w, os.path.join(folder, f"{name}-f16.gguf"), gguf.GGML_F16)
    inexact = sum(int(np.count_nonzero(f16[k] != w[k])) for k in w)
    if family(cfg) != "qwen3moe":  # llama.cpp routes Mixtral and Qwen2-MoE as HF does
        diff = max_diff([forward(cfg, f16, ids, []) for ids in sequences(cfg)], refs)
        if diff > 1e-6:
            raise SystemExit(f"{name}: the F16 GGUF differs from the BF16 model by {diff:.3g}")
        print(f"{name}-f16.gguf: {inexact} weights not exact in F16, max |logit diff| vs the reference {diff:.3g}")
        return
    ncfg = {**cfg, "norm_topk": True}
    gaps = []
    grefs = [forward(ncfg, f16, ids, gaps) for ids in SEQUENCES]
    if min(gaps) < MIN_GAP:
        raise SystemExit(f"{name}: F16 GGUF routing gap {min(gaps):.3g} < {MIN_GAP}")
    q8 = write_gguf(cfg, w, os.path.join(folder, f"{name}-q8_0.gguf"), gguf.GGML_Q8_0)
    qgaps = []
    qrefs = [forward(ncfg, q8, ids, qgaps) for ids in SEQUENCES]
    qdiff = max_diff(qrefs, grefs)
    ref = {
        "computation": "numpy float64 forward of the F16 GGUF's weights with top-k renormalisation (llama.cpp's "
                       "qwen3moe); tools/gen_moe_fixture.py",
        "norm_topk": True, "min_routing_gap": round(float(min(gaps)), 6),
        "q8_0": {"max_abs_logit_diff_float64": round(qdiff, 6), "min_routing_gap": round(float(min(qgaps)), 6),
                 "top1_agreement": int(sum(int(np.argmax(a)) == int(np.argmax(b))
                                           for q, g in zip(qrefs, grefs) for a, b in zip(q, g))),
                 "positions": sum(len(ids) for ids in SEQUENCES)},
        "sequences": [{"token_ids": ids, "last_logits": r6(lg[-1]), "argmax": [int(np.argmax(row)) for row in lg]}
                      for ids, lg in zip(SEQUENCES, grefs)],
    }
    with open(os.path.join(folder, "reference_gguf.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    print(f"{name}-f16.gguf: {inexact} weights not exact in F16, min routing gap {min(gaps):.4f}; "
          f"q8_0: max |logit diff| vs F16 {qdiff:.4f} (float64), min routing gap {min(qgaps):.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "testdata", "engine"))
    args = ap.parse_args()
    for cfg in (MIXTRAL, QWEN3MOE, QWEN2MOE):
        build(cfg, args.out)


if __name__ == "__main__":
    main()
