#!/usr/bin/env python3
"""Reference ids for kaival's WordPiece tokenizer.json path on a real BERT vocab.

The BERT vocab comes from ../shared/data/gguf-vocab/ggml-vocab-bert-bge.gguf
(llama.cpp stores word-initial pieces as "▁piece" and continuation pieces
without "##"; this undoes that). The script writes the BERT tokenizer.json
that Hugging Face's BertTokenizerFast uses (BertNormalizer lowercase,
BertPreTokenizer, WordPiece "##", [CLS] $A [SEP], WordPiece decoder) to a
temporary folder, encodes the test texts with Hugging Face's tokenizers
(tools/npm/reference_tokenizer_json.js) and writes
testdata/tokenizer/bert-bge.ids.jsonl. kaival's test rebuilds the same
tokenizer.json from the GGUF (see bert_tokenizer_json in
tests/tokenizer/wordpiece_test.cpp), so the large vocab is not committed.

  python3 tools/gen_wordpiece_reference.py
"""
import json
import os
import struct
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGUF = os.path.join(ROOT, "..", "shared", "data", "gguf-vocab", "ggml-vocab-bert-bge.gguf")
OUT = os.path.join(ROOT, "testdata", "tokenizer", "bert-bge.ids.jsonl")


def gguf_tokens(path):
    """tokenizer.ggml.tokens of a GGUF v2/v3 file (metadata only)."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    def string():
        nonlocal pos
        (n,) = take("Q")
        s = data[pos:pos + n].decode("utf-8")
        pos += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("IQ")
            return [value(et) for _ in range(n)]
        return take(scalar[t])[0]

    assert data[:4] == b"GGUF"
    pos = 4
    _, _, n_kv = take("IQQ")
    for _ in range(n_kv):
        key = string()
        (t,) = take("I")
        v = value(t)
        if key == "tokenizer.ggml.tokens":
            return v
    raise ValueError("no tokenizer.ggml.tokens")


def bert_vocab(tokens):
    """Undo llama.cpp's phantom-space form: "▁x" -> "x", "[X]" -> "[X]", "x" -> "##x"."""
    out = []
    for t in tokens:
        if t.startswith("\u2581"):
            out.append(t[1:])
        elif t.startswith("[") and t.endswith("]"):
            out.append(t)
        else:
            out.append("##" + t)
    return out


def tokenizer_json(vocab):
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    ids = {t: i for i, t in enumerate(vocab)}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": ids[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for s in special],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                           "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                    {"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 1}},
                                    {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
                           "special_tokens": {s: {"id": s, "ids": [ids[s]], "tokens": [s]}
                                              for s in ("[CLS]", "[SEP]")}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": ids},
    }


def texts():
    with open(os.path.join(ROOT, "testdata", "tokenizer", "corpus.txt"), encoding="utf-8") as f:
        lines = [l for l in f.read().split("\n") if l]
    return lines + [
        "", " ", "Héllo WÖRLD Ça va?", "naïve café résumé", "don't stop [SEP] me [CLS] now [MASK]",
        "unaffable antidisestablishmentarianism", "x" * 99, "y" * 101, "中文字符和日本語のテキスト",
        "tab\tnew\nline\r\nend", "a\u0085b\u000bc\u000cd", "zero\u200bwidth\u200djoin", "İstanbul ΣΑΣ ß",
        "$100 + 5% = ~$105 <3 ^_^ | @home #tag", "e\u0301\u0301 o\u0308", "🦙🚀 emoji 😁!",
    ]


def main():
    vocab = bert_vocab(gguf_tokens(GGUF))
    with tempfile.TemporaryDirectory() as tmp:
        tj = os.path.join(tmp, "tokenizer.json")
        with open(tj, "w", encoding="utf-8") as f:
            json.dump(tokenizer_json(vocab), f, ensure_ascii=False)
        tx = os.path.join(tmp, "texts.json")
        with open(tx, "w", encoding="utf-8") as f:
            json.dump(texts(), f, ensure_ascii=False)
        out = subprocess.run(["node", os.path.join(ROOT, "tools", "npm", "reference_tokenizer_json.js"), tj, tx],
                             check=True, capture_output=True, text=True).stdout
    meta, *rest = out.split("\n")
    meta = json.loads(meta)
    meta["meta"]["tokenizer"] = "BERT tokenizer.json built from ggml-vocab-bert-bge.gguf (tools/gen_wordpiece_reference.py)"
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join([json.dumps(meta, ensure_ascii=False)] + rest))


if __name__ == "__main__":
    main()
