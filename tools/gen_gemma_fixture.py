"""Engine reference for Gemma 1, Gemma 2 and Gemma 3 (text): three tiny random
models, each written as an HF folder (config.json + BF16 model.safetensors) and as
the GGUF F16 file llama.cpp's converter would make (norm weights stored as
1 + w in F32, no Q/K row permutation, no output.weight: tied), with an
independent float64 numpy forward pass of the stored weights:

  gemma-tiny   Gemma 1: 3 layers, all global, one KV head (multi-query, as
               gemma-2b), only the two pre-norms of a layer (input,
               post_attention = before the MLP, as in Llama), no soft-caps,
               scale head_dim^-0.5; config.json as the published gemma-2b
               writes it (hidden_act "gelu", no hidden_activation: HF's
               GemmaConfig then uses gelu_pytorch_tanh)
  gemma2-tiny  4 layers (local, global, local, global), window 4, attention
               logit soft-cap and final logit soft-cap
  gemma3-tiny  6 layers (5 local, then 1 global), window 4, QK-norm, local
               layers on rope_local_base_freq 10000, the global layer on
               rope_theta 100 with linear rope_scaling factor 2

All: hidden 32, 4 query heads of head_dim 12 (!= 32 / 4), GeGLU MLP of
width 24, embeddings scaled by sqrt(32), every RMSNorm x*(1+w), vocabulary
128 (token ids only, no tokenizer). Gemma 2/3: 2 KV heads, the four norms
of a layer (input, post_attention, pre_feedforward, post_feedforward),
query_pre_attn_scalar 12. The weights are BF16 values that F16 also holds
exactly, so the HF and GGUF files describe the same model.

reference_logits.json holds, for a few id sequences longer than the window,
the full logits of the last position, the first 32 logits and the argmax of
every position; a greedy continuation (every step's top-1/top-2 gap >= 1e-3);
and, to show the tests can tell, the logits computed without the sliding
window, without the soft-caps (Gemma 2), and with query_pre_attn_scalar 8
(Gemma 2, for a config that states it); for Gemma 1, without the embedding
scale, with x*w norms (no 1 +) and with exact (erf) gelu.

Needs only numpy (Debian python3-numpy); dev-only.
Run: /usr/bin/python3 tools/gen_gemma_fixture.py --out testdata/engine [--only gemma-tiny]"""

import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures import gguf  # noqa: E402  (numpy-only GGUF writer)
from fixtures.numpy_io import bf16_round, write_gguf_checked, write_safetensors_bf16  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB = 128
HEAD_IDS = 32
MIN_GAP = 1e-3
SEQUENCES = [
    [2, 17, 100, 45, 88, 123, 9, 31, 77, 120, 6, 110, 64, 99],
    [2, 3, 3, 3, 125, 18, 7, 7, 19],
    [2, 101],
]
GREEDY_PROMPT = [2, 40, 41, 42, 43]
GREEDY_STEPS = 12

GEMMA1 = {"name": "gemma-tiny", "family": "gemma", "hidden": 32, "heads": 4, "kv_heads": 1, "head_dim": 12, "ffn": 24,
          "window": None, "eps": 1e-6, "qpas": None, "layers": 3, "theta": 10000.0, "local_theta": None,
          "scaling": None, "attn_cap": None, "final_cap": None, "qk_norm": False, "pattern": None}
COMMON = {"hidden": 32, "heads": 4, "kv_heads": 2, "head_dim": 12, "ffn": 24, "window": 4, "eps": 1e-6, "qpas": 12.0}
GEMMA2 = {**COMMON, "name": "gemma2-tiny", "family": "gemma2", "layers": 4, "theta": 10000.0, "local_theta": None,
          "scaling": None, "attn_cap": 2.0, "final_cap": 10.0, "qk_norm": False, "pattern": 2}
GEMMA3 = {**COMMON, "name": "gemma3-tiny", "family": "gemma3", "layers": 6, "theta": 100.0, "local_theta": 10000.0,
          "scaling": 2.0, "attn_cap": None, "final_cap": None, "qk_norm": True, "pattern": 6}


def bf16_f16_exact(a):
    """Nearest BF16 values, with magnitudes below F16's normal range set to 0,
    so that BF16 and F16 both store them exactly."""
    b = bf16_round(a).copy()
    b[np.abs(b) < 2.0 ** -14] = 0
    assert np.array_equal(b.astype(np.float16).astype(np.float32), b)
    return b


def make_weights(cfg, rng):
    H, HD, NH, NKV, F = cfg["hidden"], cfg["head_dim"], cfg["heads"], cfg["kv_heads"], cfg["ffn"]
    lin = lambda out, inp, gain=1.0: rng.normal(0, gain / np.sqrt(inp), (out, inp))
    norm = lambda n: 0.2 * rng.normal(size=n)  # HF Gemma stores w of x * (1 + w)
    w = {"model.embed_tokens.weight": rng.normal(0, 1, (VOCAB, H)), "model.norm.weight": norm(H)}
    for l in range(cfg["layers"]):
        p = f"model.layers.{l}."
        for n in ("input_layernorm", "post_attention_layernorm") + sandwich_norms(cfg):
            w[p + n + ".weight"] = norm(H)
        w[p + "self_attn.q_proj.weight"] = lin(NH * HD, H, 2.0)
        w[p + "self_attn.k_proj.weight"] = lin(NKV * HD, H, 2.0)
        w[p + "self_attn.v_proj.weight"] = lin(NKV * HD, H)
        w[p + "self_attn.o_proj.weight"] = lin(H, NH * HD)
        if cfg["qk_norm"]:
            w[p + "self_attn.q_norm.weight"] = norm(HD)
            w[p + "self_attn.k_norm.weight"] = norm(HD)
        w[p + "mlp.gate_proj.weight"] = lin(F, H, 2.0)
        w[p + "mlp.up_proj.weight"] = lin(F, H)
        w[p + "mlp.down_proj.weight"] = lin(H, F)
    return {k: bf16_f16_exact(v).astype(np.float64) for k, v in w.items()}


def sandwich_norms(cfg):
    """Gemma 2/3's extra norms; Gemma 1's post_attention_layernorm is the pre-MLP norm."""
    return () if cfg["family"] == "gemma" else ("pre_feedforward_layernorm", "post_feedforward_layernorm")


def rms(x, w, eps, one=1.0):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * (one + w)


def rope(x, pos, theta, factor):
    """x [T, heads, hd], rotate-half layout; linear scaling divides the frequencies."""
    hd = x.shape[-1]
    inv = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd) / factor
    ang = np.asarray(pos, dtype=np.float64)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, -1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, -1)[:, None, :]
    rot = np.concatenate([-x[..., hd // 2:], x[..., :hd // 2]], -1)
    return x * cos + rot * sin


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def gelu_erf(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / np.sqrt(2.0)))


def is_sliding(cfg, l):
    return cfg["pattern"] is not None and (l + 1) % cfg["pattern"] != 0


def forward(cfg, w, ids, window=True, caps=True, qpas=None, embed_scale=True, one=1.0, gelu=gelu_tanh):
    """Float64 logits [T, vocab] of a fresh sequence."""
    H, HD, NH, NKV, eps, T = cfg["hidden"], cfg["head_dim"], cfg["heads"], cfg["kv_heads"], cfg["eps"], len(ids)
    scale = (qpas or cfg["qpas"] or HD) ** -0.5  # Gemma 1: head_dim^-0.5
    attn_cap = cfg["attn_cap"] if caps else None
    final_cap = cfg["final_cap"] if caps else None
    gemma1 = cfg["family"] == "gemma"
    x = w["model.embed_tokens.weight"][ids] * (np.sqrt(H) if embed_scale else 1.0)
    pos = np.arange(T)
    qi, kj = np.meshgrid(pos, pos, indexing="ij")
    for l in range(cfg["layers"]):
        p = f"model.layers.{l}."
        local = is_sliding(cfg, l)
        visible = kj <= qi
        if local and window:
            visible &= qi - kj < cfg["window"]
        mask = np.where(visible, 0.0, -np.inf)
        if local and cfg["local_theta"]:
            theta, factor = cfg["local_theta"], 1.0
        else:
            theta, factor = cfg["theta"], cfg["scaling"] or 1.0
        h = rms(x, w[p + "input_layernorm.weight"], eps, one)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(T, NH, HD)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(T, NKV, HD)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(T, NKV, HD)
        if cfg["qk_norm"]:
            q = rms(q, w[p + "self_attn.q_norm.weight"], eps, one)
            k = rms(k, w[p + "self_attn.k_norm.weight"], eps, one)
        q, k = rope(q, pos, theta, factor), rope(k, pos, theta, factor)
        att = np.zeros((T, NH, HD))
        for hh in range(NH):
            kv = hh // (NH // NKV)
            s = q[:, hh, :] @ k[:, kv, :].T * scale
            if attn_cap:
                s = attn_cap * np.tanh(s / attn_cap)
            s = s + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            att[:, hh, :] = s @ v[:, kv, :]
        a = att.reshape(T, NH * HD) @ w[p + "self_attn.o_proj.weight"].T
        if gemma1:  # pre-norm only, like Llama
            x = x + a
            h = rms(x, w[p + "post_attention_layernorm.weight"], eps, one)
        else:
            x = x + rms(a, w[p + "post_attention_layernorm.weight"], eps, one)
            h = rms(x, w[p + "pre_feedforward_layernorm.weight"], eps, one)
        m = (gelu(h @ w[p + "mlp.gate_proj.weight"].T) * (h @ w[p + "mlp.up_proj.weight"].T)) @ \
            w[p + "mlp.down_proj.weight"].T
        x = x + (m if gemma1 else rms(m, w[p + "post_feedforward_layernorm.weight"], eps, one))
    x = rms(x, w["model.norm.weight"], eps, one)
    logits = x @ w["model.embed_tokens.weight"].T
    if final_cap:
        logits = final_cap * np.tanh(logits / final_cap)
    return logits


def top_gap(row):
    s = np.sort(row)
    return s[-1] - s[-2]


def greedy(cfg, w, prompt, steps):
    ids, gaps = list(prompt), []
    for _ in range(steps):
        row = forward(cfg, w, ids)[-1]
        gaps.append(top_gap(row))
        ids.append(int(np.argmax(row)))
    return ids[len(prompt):], min(gaps)


def config_json(cfg):
    if cfg["family"] == "gemma":  # as the published gemma-2b config.json
        return {
            "architectures": ["GemmaForCausalLM"], "model_type": "gemma", "attention_bias": False,
            "attention_dropout": 0.0, "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
            "head_dim": cfg["head_dim"], "hidden_act": "gelu", "hidden_size": cfg["hidden"],
            "intermediate_size": cfg["ffn"], "max_position_embeddings": 256, "num_attention_heads": cfg["heads"],
            "num_hidden_layers": cfg["layers"], "num_key_value_heads": cfg["kv_heads"], "rms_norm_eps": cfg["eps"],
            "rope_scaling": None, "rope_theta": cfg["theta"], "torch_dtype": "bfloat16", "vocab_size": VOCAB,
        }
    c = {
        "architectures": ["Gemma2ForCausalLM" if cfg["family"] == "gemma2" else "Gemma3ForCausalLM"],
        "model_type": "gemma2" if cfg["family"] == "gemma2" else "gemma3_text",
        "hidden_size": cfg["hidden"], "intermediate_size": cfg["ffn"], "num_hidden_layers": cfg["layers"],
        "num_attention_heads": cfg["heads"], "num_key_value_heads": cfg["kv_heads"], "head_dim": cfg["head_dim"],
        "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh",
        "max_position_embeddings": 256, "rms_norm_eps": cfg["eps"], "rope_theta": cfg["theta"],
        "query_pre_attn_scalar": cfg["qpas"], "sliding_window": cfg["window"],
        "attn_logit_softcapping": cfg["attn_cap"], "final_logit_softcapping": cfg["final_cap"],
        "vocab_size": VOCAB, "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
        "attention_bias": False, "torch_dtype": "bfloat16",
    }
    if cfg["family"] == "gemma3":
        c.update({"rope_local_base_freq": cfg["local_theta"], "sliding_window_pattern": cfg["pattern"],
                  "rope_scaling": {"rope_type": "linear", "factor": cfg["scaling"]}})
    return c


# HF name suffix -> llama.cpp GGUF name (per layer)
GGUF_LAYER = [
    ("input_layernorm", "attn_norm"), ("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"), ("self_attn.q_norm", "attn_q_norm"), ("self_attn.k_norm", "attn_k_norm"),
    ("self_attn.o_proj", "attn_output"), ("post_attention_layernorm", "post_attention_norm"),
    ("pre_feedforward_layernorm", "ffn_norm"), ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"), ("post_feedforward_layernorm", "post_ffw_norm"),
]


# Gemma 1 (llama.cpp's "gemma"): post_attention_layernorm is the pre-MLP norm
GGUF_LAYER_GEMMA1 = [
    ("input_layernorm", "attn_norm"), ("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"), ("self_attn.o_proj", "attn_output"), ("post_attention_layernorm", "ffn_norm"),
    ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"), ("mlp.down_proj", "ffn_down"),
]


def write_gguf(cfg, w, path):
    arch = cfg["family"]
    kv = [
        ("general.architecture", gguf.STR, arch),
        ("general.name", gguf.STR, cfg["name"]),
        (f"{arch}.context_length", gguf.U32, 256),
        (f"{arch}.embedding_length", gguf.U32, cfg["hidden"]),
        (f"{arch}.block_count", gguf.U32, cfg["layers"]),
        (f"{arch}.feed_forward_length", gguf.U32, cfg["ffn"]),
        (f"{arch}.attention.head_count", gguf.U32, cfg["heads"]),
        (f"{arch}.attention.head_count_kv", gguf.U32, cfg["kv_heads"]),
        (f"{arch}.attention.layer_norm_rms_epsilon", gguf.F32V, cfg["eps"]),
        (f"{arch}.attention.key_length", gguf.U32, cfg["head_dim"]),
        (f"{arch}.attention.value_length", gguf.U32, cfg["head_dim"]),
        ("general.file_type", gguf.U32, 1),
    ]
    if cfg["window"]:
        kv.insert(-1, (f"{arch}.attention.sliding_window", gguf.U32, cfg["window"]))
    if arch == "gemma":  # llama.cpp's Gemma converter: no rope keys (theta 10000)
        pass
    elif arch == "gemma2":  # llama.cpp's Gemma2 converter: no rope keys (theta 10000)
        kv += [(f"{arch}.attn_logit_softcapping", gguf.F32V, cfg["attn_cap"]),
               (f"{arch}.final_logit_softcapping", gguf.F32V, cfg["final_cap"])]
    else:
        kv += [(f"{arch}.rope.freq_base", gguf.F32V, cfg["theta"]),
               (f"{arch}.rope.scaling.type", gguf.STR, "linear"),
               (f"{arch}.rope.scaling.factor", gguf.F32V, cfg["scaling"])]
    tensors = [("token_embd.weight", w["model.embed_tokens.weight"], gguf.GGML_F16)]
    for l in range(cfg["layers"]):
        for hf, g in (GGUF_LAYER_GEMMA1 if arch == "gemma" else GGUF_LAYER):
            name = f"model.layers.{l}.{hf}.weight"
            if name not in w:
                continue
            a = w[name]
            if hf.endswith("norm"):  # llama.cpp adds Gemma's 1 to every *norm.weight
                tensors.append((f"blk.{l}.{g}.weight", (a + 1.0).astype(np.float32), gguf.GGML_F32))
            else:
                tensors.append((f"blk.{l}.{g}.weight", a.astype(np.float32), gguf.GGML_F16))
    tensors.append(("output_norm.weight", (w["model.norm.weight"] + 1.0).astype(np.float32), gguf.GGML_F32))
    write_gguf_checked(path, kv, tensors)  # F16 holds these BF16 values exactly: the same model


def build(cfg, out_root):
    for seed in range(200):
        rng = np.random.default_rng(seed)
        w = make_weights(cfg, rng)
        refs = [forward(cfg, w, ids) for ids in SEQUENCES]
        cont, gap = greedy(cfg, w, GREEDY_PROMPT, GREEDY_STEPS)
        if gap >= MIN_GAP and min(top_gap(row) for r in refs for row in r) >= MIN_GAP:
            break
    else:
        raise SystemExit(f"{cfg['name']}: no seed gives top-1 gaps >= {MIN_GAP}")
    folder = os.path.join(out_root, cfg["name"])
    os.makedirs(folder, exist_ok=True)
    write_safetensors_bf16(os.path.join(folder, "model.safetensors"), {k: v.astype(np.float32) for k, v in w.items()})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config_json(cfg), f, indent=2)
        f.write("\n")
    write_gguf(cfg, w, os.path.join(folder, cfg["name"] + "-f16.gguf"))

    r6 = lambda a: [round(float(v), 6) for v in a]
    seq0 = SEQUENCES[0]
    ablations = {"no_sliding_window": forward(cfg, w, seq0, window=False)[-1]}
    if cfg["attn_cap"]:
        ablations["no_softcapping"] = forward(cfg, w, seq0, caps=False)[-1]
        ablations["query_pre_attn_scalar_8"] = forward(cfg, w, seq0, qpas=8.0)[-1]
    if cfg["family"] == "gemma":
        del ablations["no_sliding_window"]  # no local layers
        ablations["no_embed_scale"] = forward(cfg, w, seq0, embed_scale=False)[-1]
        ablations["norm_without_one"] = forward(cfg, w, seq0, one=0.0)[-1]
        ablations["exact_gelu"] = forward(cfg, w, seq0, gelu=gelu_erf)[-1]
    ref = {
        "computation": "numpy float64 forward of the stored BF16 (= F16) weights; tools/gen_gemma_fixture.py",
        "seed": seed,
        "sequences": [{"token_ids": ids, "last_logits": r6(lg[-1]),
                       "head_logits": [r6(row[:HEAD_IDS]) for row in lg],
                       "argmax": [int(np.argmax(row)) for row in lg]}
                      for ids, lg in zip(SEQUENCES, refs)],
        "greedy": {"prompt": GREEDY_PROMPT, "continuation": cont, "min_top_gap": round(float(gap), 6)},
        "ablations": {"token_ids": seq0, **{k: r6(v) for k, v in ablations.items()}},
    }
    with open(os.path.join(folder, "reference_logits.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
        f.write("\n")
    last = refs[0][-1]
    print(f"{cfg['name']}: seed {seed}, greedy min gap {gap:.4f}, logit range "
          f"[{min(r.min() for r in refs):.2f}, {max(r.max() for r in refs):.2f}], ablation max |diff|: " +
          ", ".join(f"{k} {np.abs(v - last).max():.3f}" for k, v in ablations.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "testdata", "engine"))
    ap.add_argument("--only", help="build this model only (gemma-tiny, gemma2-tiny, gemma3-tiny)")
    args = ap.parse_args()
    for cfg in (GEMMA1, GEMMA2, GEMMA3):
        if not args.only or cfg["name"] == args.only:
            build(cfg, args.out)


if __name__ == "__main__":
    main()
