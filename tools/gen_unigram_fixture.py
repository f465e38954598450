#!/usr/bin/python3
"""Builds a real SentencePiece Unigram tokenizer for kaival's Unigram tests.

Trains a small unigram model with Debian's python3-sentencepiece on
testdata/tokenizer/corpus.txt (NFKC "nmt_nfkc" normalization, so the model
carries a real precompiled_charsmap), and writes it the way Hugging Face's
converter writes T5-style tokenizers:

  testdata/tokenizer/unigram-t5/tokenizer.json
      normalizer     Sequence[Precompiled(charsmap), Replace(/ {2,}/, " ")]
      pre_tokenizer  Metaspace("▁", prepend always)
      model          Unigram(pieces, scores, unk_id)
      post_processor TemplateProcessing($A </s>)
      decoder        Metaspace

then asks Hugging Face's tokenizers (npm @anush008/tokenizers, via
tools/npm/reference_tokenizer_json.js) for the reference ids of the test
texts: testdata/tokenizer/unigram-t5.ids.jsonl. Test-only; run with
/usr/bin/python3 (Debian's, which has the sentencepiece module):

  /usr/bin/python3 tools/gen_unigram_fixture.py
"""
import base64
import io
import json
import os
import struct
import subprocess
import sys

import sentencepiece as spm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "testdata", "tokenizer", "unigram-t5")
IDS = os.path.join(ROOT, "testdata", "tokenizer", "unigram-t5.ids.jsonl")


def varint(buf, pos):
    value, shift = 0, 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def fields(buf):
    """Yields (field number, wire type, value) of a protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield num, wire, value


def parse_model(proto):
    """ModelProto: pieces (1: piece, 2: score, 3: type) and normalizer_spec (3)."""
    pieces, norm = [], {}
    for num, _, value in fields(proto):
        if num == 1:
            p = {"piece": "", "score": 0.0, "type": 1}
            for n, _, v in fields(value):
                if n == 1:
                    p["piece"] = v.decode("utf-8")
                elif n == 2:
                    p["score"] = struct.unpack("<f", v)[0]
                elif n == 3:
                    p["type"] = v
            pieces.append(p)
        elif num == 3:
            for n, _, v in fields(value):
                if n == 1:
                    norm["name"] = v.decode()
                elif n == 2:
                    norm["precompiled_charsmap"] = bytes(v)
                elif n == 3:
                    norm["add_dummy_prefix"] = bool(v)
                elif n == 4:
                    norm["remove_extra_whitespaces"] = bool(v)
    return pieces, norm


def test_texts(corpus_lines):
    extra = [
        "", " ", "   ", "  multiple   spaces  here  ", "\ttab\tseparated\t", "line\nbreaks\n\nhere",
        "ﬁne ﬂow ﬀ", "①②③ ⑴ ㈱", "ｈｅｌｌｏ　ｗｏｒｌｄ！", "ＡＢＣ１２３", "Å Å", "e\u0301 é", "ｈ\u0303 x",
        "½ ¼ ™ ℃ №", "㍿ ㌔ ㎏", "x\u00a0y\u2009z", "zero\u200bwidth", "🦙👨\u200d👩\u200d👧 emoji",
        "Ⅻ ⅻ ǅ ß", "ｶﾀｶﾅ ﾊﾟ", "한국어 ＡＢＣ 테스트", "\u3000\u3000전각 공백", "control\u0001\u0007chars",
        "</s> <unk> <pad>", "mixed <s> tokens </s>", "x" * 300, "가" * 200,
    ]
    return corpus_lines + extra


def main():
    with open(os.path.join(ROOT, "testdata", "tokenizer", "corpus.txt"), encoding="utf-8") as f:
        lines = [l for l in f.read().split("\n") if l]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="unigram", vocab_size=1000,
        hard_vocab_limit=False, character_coverage=0.98, normalization_rule_name="nmt_nfkc",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=1, seed_sentencepiece_size=100000,
        minloglevel=2)
    proto = model.getvalue()
    pieces, norm = parse_model(proto)
    assert norm.get("precompiled_charsmap"), "no precompiled_charsmap in the trained model"
    unk_id = next(i for i, p in enumerate(pieces) if p["type"] == 2)

    normalizers = [{"type": "Precompiled",
                    "precompiled_charsmap": base64.b64encode(norm["precompiled_charsmap"]).decode()}]
    if norm.get("remove_extra_whitespaces", True):
        normalizers.append({"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "})
    special = [{"id": i, "content": p["piece"], "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True}
               for i, p in enumerate(pieces) if p["type"] in (2, 3)]
    eos = next(i for i, p in enumerate(pieces) if p["piece"] == "</s>")
    tj = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": special,
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                                    {"SpecialToken": {"id": "</s>", "type_id": 0}},
                                    {"Sequence": {"id": "B", "type_id": 0}},
                                    {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                           "special_tokens": {"</s>": {"id": "</s>", "ids": [eos], "tokens": ["</s>"]}}},
        "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": unk_id, "byte_fallback": False,
                  "vocab": [[p["piece"], p["score"]] for p in pieces]},
    }
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    config = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "tokenizer_class": "T5Tokenizer"}
    with open(os.path.join(OUT_DIR, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=1)

    texts = test_texts(lines)
    texts_path = os.path.join(OUT_DIR, "texts.json")
    with open(texts_path, "w", encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False)
    script = os.path.join(ROOT, "tools", "npm", "reference_tokenizer_json.js")
    out = subprocess.run(["node", script, os.path.join(OUT_DIR, "tokenizer.json"), texts_path],
                         check=True, capture_output=True, text=True).stdout
    os.remove(texts_path)
    with open(IDS, "w", encoding="utf-8") as f:
        f.write(out)

    # For information: how often SentencePiece itself agrees with the HF reference.
    sp = spm.SentencePieceProcessor(model_proto=proto)
    refs = [r for r in (json.loads(l) for l in out.split("\n") if l) if "meta" not in r]
    same = sum(1 for r in refs if sp.encode(r["text"]) + [eos] == r["ids"])
    print(f"{len(pieces)} pieces, {len(refs)} texts; sentencepiece agrees with HF on {same}", file=sys.stderr)


if __name__ == "__main__":
    main()
