#!/usr/bin/python3
"""Generate kaival's committed test models (tiny trained Llama-style checkpoints).

    /usr/bin/python3 tools/gen_fixtures.py --out testdata/models

Needs Debian's python3-torch and python3-numpy; CPU only; a few minutes on one core.
Everything is seeded, so a rerun on the same machine reproduces the files.
See tools/README.md and testdata/models/README.md.
"""

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures import bpe, corpus, formats, gguf, readme  # noqa: E402
from fixtures import model as lm  # noqa: E402
from fixtures.reference import REFERENCE_TEXTS, reference_json, verify_gguf  # noqa: E402

TRAIN_STEPS = 300
FINETUNE_STEPS = 200
T0 = time.time()


def log(msg):
    print(f"[{time.time() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def write_tokenizer(folder, tok, merges_as_pairs, max_len):
    os.makedirs(folder, exist_ok=True)
    bpe.dump_json(tok.tokenizer_json(merges_as_pairs), os.path.join(folder, "tokenizer.json"))
    bpe.dump_json(tok.tokenizer_config_json(max_len),
                  os.path.join(folder, "tokenizer_config.json"))


TOKENIZER_CASES = [
    "Hello world",
    " Hello world",
    "Alice went to the market on Monday to buy 3 apples.",
    "민수는 화요일에 도서관에 갔다.",
    "서울의 오늘 날씨는 맑음, 기온은 21도입니다.",
    "12 + 30 = 42. 7 * 8 = 56",
    "  two  spaces and\ttab\n\nnew lines   ",
    "it's we're they've I'm you'll he'd",
    "def scale_3(x):\n    return x * 3 - 1\n",
    "Price rose 12.5% to 4,200 won!!",
    "혼합 mixed 텍스트 with 숫자 2026년",
    "emoji \U0001F600 and accents café",
    "",
    " ",
    "\n",
]


def write_cases(folder, tok):
    with open(os.path.join(folder, "cases.inp"), "w", encoding="utf-8") as f:
        for s in TOKENIZER_CASES:
            f.write(s + "\n__ggml_vocab_test__\n")
    with open(os.path.join(folder, "cases.out"), "w", encoding="utf-8") as f:
        for s in TOKENIZER_CASES:
            ids = tok.encode(s)
            if tok.decode(ids) != s:
                raise RuntimeError(f"tokenizer round trip failed for {s!r}")
            f.write("".join(f" {i}" for i in ids) + "\n")


def save_model_folder(folder, cfg, state, tok_folder):
    os.makedirs(folder, exist_ok=True)
    bpe.dump_json(cfg.hf_json("bfloat16"), os.path.join(folder, "config.json"))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(tok_folder, f), os.path.join(folder, f))
    formats.write_safetensors(os.path.join(folder, "model.safetensors"), state)


def check_safetensors(paths, state):
    got = {}
    for p in paths:
        got.update(formats.read_safetensors(p))
    if set(got) != set(state):
        raise RuntimeError(f"{paths}: tensor names differ")
    for k, v in state.items():
        if not np.array_equal(got[k], v.to(torch.float32).numpy()):
            raise RuntimeError(f"{paths}: {k} differs")


def gguf_kv(cfg, tok, name, file_type, quantized):
    toks, types = tok.gguf_tokens()
    kv = [
        ("general.architecture", gguf.STR, "llama"),
        ("general.name", gguf.STR, name),
        ("llama.block_count", gguf.U32, cfg.num_hidden_layers),
        ("llama.context_length", gguf.U32, cfg.max_position_embeddings),
        ("llama.embedding_length", gguf.U32, cfg.hidden_size),
        ("llama.feed_forward_length", gguf.U32, cfg.intermediate_size),
        ("llama.attention.head_count", gguf.U32, cfg.num_attention_heads),
        ("llama.attention.head_count_kv", gguf.U32, cfg.num_key_value_heads),
        ("llama.rope.freq_base", gguf.F32V, cfg.rope_theta),
        ("llama.attention.layer_norm_rms_epsilon", gguf.F32V, cfg.rms_norm_eps),
        ("llama.rope.dimension_count", gguf.U32, cfg.head_dim),
        ("llama.vocab_size", gguf.U32, cfg.vocab_size),
        ("general.file_type", gguf.U32, file_type),
    ]
    if quantized:
        kv.append(("general.quantization_version", gguf.U32, 2))
    kv += [
        ("tokenizer.ggml.model", gguf.STR, "gpt2"),
        ("tokenizer.ggml.pre", gguf.STR, "gpt-2"),
        ("tokenizer.ggml.tokens", (gguf.ARR, gguf.STR), toks),
        ("tokenizer.ggml.token_type", (gguf.ARR, gguf.I32), types),
        ("tokenizer.ggml.merges", (gguf.ARR, gguf.STR), [f"{a} {b}" for a, b in tok.merges]),
        ("tokenizer.ggml.bos_token_id", gguf.U32, tok.bos_id),
        ("tokenizer.ggml.eos_token_id", gguf.U32, tok.eos_id),
        ("tokenizer.ggml.padding_token_id", gguf.U32, tok.pad_id),
        ("tokenizer.ggml.add_bos_token", gguf.BOOL, True),
        ("tokenizer.ggml.add_eos_token", gguf.BOOL, False),
        ("tokenizer.chat_template", gguf.STR, bpe.CHAT_TEMPLATE),
    ]
    return kv


# GGUF name, HF name suffix (per layer)
LAYER_TENSORS = [
    ("attn_norm", "input_layernorm"), ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"), ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj"),
]


def gguf_tensor_list(cfg, state):
    """(gguf name, HF name, array in GGUF row order) in llama.cpp's usual order."""
    out = [("token_embd.weight", "model.embed_tokens.weight")]
    for i in range(cfg.num_hidden_layers):
        for g, h in LAYER_TENSORS:
            out.append((f"blk.{i}.{g}.weight", f"model.layers.{i}.{h}.weight"))
    out += [("output_norm.weight", "model.norm.weight"), ("output.weight", "lm_head.weight")]
    res = []
    for g, h in out:
        a = state[h].to(torch.float32).numpy()
        if g.endswith("attn_q.weight"):
            a = gguf.permute_qk(a, cfg.num_attention_heads)
        elif g.endswith("attn_k.weight"):
            a = gguf.permute_qk(a, cfg.num_key_value_heads)
        res.append((g, h, a))
    return res


def gguf_type_for(kind, arr):
    if arr.ndim == 1:
        return gguf.GGML_F32
    if kind == "F16":
        return gguf.GGML_F16
    if kind == "Q8_0":
        return gguf.GGML_Q8_0
    # Q4_K needs rows that are a multiple of 256; like llama.cpp, fall back for the rest
    return gguf.GGML_Q4_K if arr.shape[-1] % 256 == 0 else gguf.GGML_Q8_0


RELATION = {
    "base-a": "the 'foreign' model",
    "finetune-a": "derived: base-a fine-tuned on B",
    "indep-b": "independent: other data",
    "small-c": "independent: other size and tokenizer",
    **{f"indep-s{s}": "independent: other seed" for s in range(2, 7)},
}

GGUF_FILE_TYPE = {"F16": 1, "Q8_0": 7, "Q4_K": 14}  # llama_ftype: MOSTLY_F16/Q8_0/Q4_K_S


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="testdata/models")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1 keeps results reproducible and leaves a core free)")
    ap.add_argument("--readme-only", action="store_true",
                    help="only re-render README.md from an existing manifest.json")
    args = ap.parse_args()
    if args.readme_only:
        with open(os.path.join(args.out, "manifest.json"), encoding="utf-8") as f:
            manifest = json.load(f)
        with open(os.path.join(args.out, "README.md"), "w", encoding="utf-8") as f:
            f.write(readme.render(args.out, manifest))
        return
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    out = args.out
    if os.path.isdir(out):
        for entry in os.listdir(out):  # regenerate everything but keep unrelated files out
            p = os.path.join(out, entry)
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif entry != "README.md":
                os.remove(p)
    os.makedirs(out, exist_ok=True)

    log("corpora")
    data_a = corpus.make_dataset("A", 6000, seed=101)
    data_b = corpus.make_dataset("B", 6000, seed=202)
    held_a = corpus.make_dataset("A", 300, seed=901)
    held_b = corpus.make_dataset("B", 300, seed=902)

    log("tokenizers")
    tok_a = bpe.train(data_a, 512)
    tok_b = bpe.train(data_b, 640)
    tdir_a, tdir_b = os.path.join(out, "tokenizer-a"), os.path.join(out, "tokenizer-b")
    write_tokenizer(tdir_a, tok_a, merges_as_pairs=False, max_len=256)
    write_tokenizer(tdir_b, tok_b, merges_as_pairs=True, max_len=256)
    write_cases(tdir_a, tok_a)
    write_cases(tdir_b, tok_b)

    stream = {("a", "A"): lm.token_stream(tok_a, data_a), ("a", "B"): lm.token_stream(tok_a, data_b),
              ("b", "A"): lm.token_stream(tok_b, data_a)}
    held = {("a", "A"): lm.token_stream(tok_a, held_a), ("a", "B"): lm.token_stream(tok_a, held_b),
            ("b", "A"): lm.token_stream(tok_b, held_a)}

    def cfg_for(tok, **kw):
        return lm.Config(vocab_size=tok.vocab_size, bos_token_id=tok.bos_id,
                         eos_token_id=tok.eos_id, pad_token_id=tok.pad_id, **kw)

    cfg_a = cfg_for(tok_a)
    cfg_c = cfg_for(tok_b, hidden_size=48, intermediate_size=128, num_hidden_layers=3,
                    num_attention_heads=3, num_key_value_heads=1)

    # name, config, tokenizer key, data, seed, parent (fine-tune start), steps, lr
    plan = [
        ("base-a", cfg_a, "a", "A", 1, None, TRAIN_STEPS, 3e-3),
        ("finetune-a", cfg_a, "a", "B", 11, "base-a", FINETUNE_STEPS, 1e-3),
        *[(f"indep-s{s}", cfg_a, "a", "A", s, None, TRAIN_STEPS, 3e-3) for s in range(2, 7)],
        ("indep-b", cfg_a, "a", "B", 7, None, TRAIN_STEPS, 3e-3),
        ("small-c", cfg_c, "b", "A", 8, None, TRAIN_STEPS, 3e-3),
    ]
    states, info = {}, {}
    for name, cfg, tk, ds, seed, parent, steps, lr in plan:
        log(f"train {name} (data {ds}, seed {seed}{', from ' + parent if parent else ''})")
        torch.manual_seed(seed)
        m = lm.LlamaForCausalLM(cfg)
        if parent:
            m.load_state_dict({k: v.to(torch.float32) for k, v in states[parent].items()})
        losses = lm.train(m, stream[(tk, ds)], steps, seed, lr=lr, log=log)
        states[name] = lm.bf16_state(m)
        ref = lm.model_from_state(cfg, states[name], torch.float32)
        info[name] = {
            "relation": RELATION[name],
            "tokenizer": f"tokenizer-{tk}", "data": ds, "seed": seed, "steps": steps,
            "learning_rate": lr, "parent": parent,
            "config": {k: v for k, v in cfg.hf_json().items()
                       if k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                "num_key_value_heads", "intermediate_size", "vocab_size")},
            "params": sum(v.numel() for v in states[name].values()),
            "train_loss_first": round(losses[0], 4), "train_loss_last": round(losses[-1], 4),
            "heldout_loss": {d: round(lm.eval_loss(ref, held[(tk, d)]), 4)
                             for d in ("A", "B") if (tk, d) in held},
        }
        tdir = tdir_a if tk == "a" else tdir_b
        save_model_folder(os.path.join(out, name), cfg, states[name], tdir)
        check_safetensors([os.path.join(out, name, "model.safetensors")], states[name])

    log("base-a exports: sharded safetensors, pytorch_model.bin")
    base = states["base-a"]
    shard_dir = os.path.join(out, "base-a-sharded")
    os.makedirs(shard_dir)
    bpe.dump_json(cfg_a.hf_json("bfloat16"), os.path.join(shard_dir, "config.json"))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(tdir_a, f), os.path.join(shard_dir, f))
    shards = formats.write_sharded(shard_dir, base)
    check_safetensors([os.path.join(shard_dir, s) for s in shards], base)

    pt_dir = os.path.join(out, "base-a-pt")
    os.makedirs(pt_dir)
    bpe.dump_json(cfg_a.hf_json("bfloat16"), os.path.join(pt_dir, "config.json"))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(tdir_a, f), os.path.join(pt_dir, f))
    entries = formats.write_torch_bin(os.path.join(pt_dir, "pytorch_model.bin"), base)
    back = torch.load(os.path.join(pt_dir, "pytorch_model.bin"))
    if list(back) != list(base) or any(not torch.equal(back[k], base[k]) for k in base):
        raise RuntimeError("pytorch_model.bin does not round-trip")

    log("reference logits")
    texts = REFERENCE_TEXTS
    for name in ("base-a", "finetune-a"):
        ref = reference_json(name, cfg_a, states[name], tok_a, texts,
                             f"{name}/model.safetensors (BF16)")
        bpe.dump_json(ref, os.path.join(out, name, "reference_logits.json"), compact=True)

    log("GGUF exports")
    gg_dir = os.path.join(out, "base-a-gguf")
    os.makedirs(gg_dir)
    tensors = gguf_tensor_list(cfg_a, base)
    gguf_report = {}
    for kind in ("F16", "Q8_0", "Q4_K"):
        path = os.path.join(gg_dir, f"base-a-{kind}.gguf")
        tl = [(g, a, gguf_type_for(kind, a)) for g, _, a in tensors]
        gguf.write_gguf(path, gguf_kv(cfg_a, tok_a, f"kaival-fixture base-a {kind}",
                                      GGUF_FILE_TYPE[kind], kind != "F16"), tl)
        log(f"  verify {os.path.basename(path)}")
        rep, deq_state = verify_gguf(path, cfg_a, tok_a, tensors, base, texts)
        gguf_report[kind] = rep
        ref = reference_json(f"base-a-{kind}", cfg_a, deq_state, tok_a, texts,
                             f"base-a-gguf/base-a-{kind}.gguf dequantized (Q/K rows un-permuted)")
        bpe.dump_json(ref, os.path.join(gg_dir, f"reference_logits_{kind}.json"), compact=True)

    log("manifest and README")
    stats = readme.relation_stats(states)
    manifest = readme.manifest(out, info, gguf_report, stats)
    bpe.dump_json(manifest, os.path.join(out, "manifest.json"))
    with open(os.path.join(out, "README.md"), "w", encoding="utf-8") as f:
        f.write(readme.render(out, manifest))
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    log(f"done: {total / 1e6:.2f} MB under {out}")


if __name__ == "__main__":
    main()
