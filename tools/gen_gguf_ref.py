#!/usr/bin/python3
"""Reference data for kaival's GGUF reader tests, and the GGUF fuzz seed corpus.

  gen_gguf_ref.py summary [OUT.json]  Parses the real vocabulary files in
      ../shared/data/gguf-vocab/ with this independent reader and writes, per
      file, the header counts, the data offset and every key's type and value
      (arrays: length and the SHA-256 of their elements re-encoded the GGUF
      way: u64 length + bytes for strings, little-endian for numbers).
      Default OUT: testdata/gguf/vocab_summary.json.
  gen_gguf_ref.py corpus [DIR]        Writes small synthetic GGUF files (every
      metadata type, nested arrays, tensors of several ggml types, v2 and v3,
      custom alignment) as fuzz seeds. Default DIR: fuzz/corpus/gguf.

Only the standard library is needed.
"""
import glob
import hashlib
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB = os.path.join(ROOT, "..", "shared", "data", "gguf-vocab")

TYPE_NAMES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string",
              "array", "uint64", "int64", "float64"]
SCALAR_FMT = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "B", 10: "Q", 11: "q", 12: "d"}
STRING, ARRAY = 8, 9


# ---- reading -----------------------------------------------------------------

class Reader:
    def __init__(self, data):
        self.b, self.p = data, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.b, self.p)[0]
        self.p += struct.calcsize("<" + fmt)
        return v

    def raw_string(self):
        n = self.take("Q")
        s = self.b[self.p:self.p + n]
        assert len(s) == n
        self.p += n
        return s

    def value(self, t):
        if t in SCALAR_FMT:
            return self.take(SCALAR_FMT[t])
        if t == STRING:
            return self.raw_string()
        assert t == ARRAY
        et, n = self.take("I"), self.take("Q")
        return (et, [self.value(et) for _ in range(n)])


def encode_elements(et, items):
    """Canonical element encoding hashed by both this script and the C++ test."""
    out = bytearray()
    for v in items:
        if et == STRING:
            out += struct.pack("<Q", len(v)) + v
        elif et == ARRAY:
            out += struct.pack("<IQ", v[0], len(v[1])) + encode_elements(v[0], v[1])
        else:
            out += struct.pack("<" + SCALAR_FMT[et], v)
    return bytes(out)


def summarize(path):
    r = Reader(open(path, "rb").read())
    assert r.take("I") == 0x46554747
    version, n_tensors, n_kv = r.take("I"), r.take("Q"), r.take("Q")
    keys = {}
    for _ in range(n_kv):
        key = r.raw_string().decode("utf-8")
        t = r.take("I")
        v = r.value(t)
        if t == ARRAY:
            et, items = v
            keys[key] = {"type": "array<%s>" % TYPE_NAMES[et], "length": len(items),
                         "sha256": hashlib.sha256(encode_elements(et, items)).hexdigest()}
        elif t == STRING:
            keys[key] = {"type": "string", "value": v.decode("utf-8")}
        elif t == 7:
            keys[key] = {"type": "bool", "value": bool(v)}
        else:
            keys[key] = {"type": TYPE_NAMES[t], "value": v}
    assert n_tensors == 0, "vocabulary files hold no tensors"
    align = keys.get("general.alignment", {}).get("value", 32)
    return {"version": version, "tensor_count": n_tensors, "kv_count": n_kv,
            "data_offset": (r.p + align - 1) // align * align, "keys": keys}


def write_summary(out):
    files = sorted(glob.glob(os.path.join(VOCAB, "*.gguf")))
    assert files, "no vocabulary files in " + VOCAB
    summary = {os.path.basename(f): summarize(f) for f in files}
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True, ensure_ascii=False)
        f.write("\n")
    print("wrote %d file summaries to %s" % (len(summary), out))


# ---- writing (fuzz seeds) ----------------------------------------------------

def s(x):
    b = x.encode("utf-8") if isinstance(x, str) else x
    return struct.pack("<Q", len(b)) + b


def kv(key, t, payload):
    return s(key) + struct.pack("<I", t) + payload


def arr(et, items):
    body = bytearray(struct.pack("<IQ", et, len(items)))
    for v in items:
        if et == STRING:
            body += s(v)
        elif et == ARRAY:
            body += arr(*v)
        else:
            body += struct.pack("<" + SCALAR_FMT[et], v)
    return bytes(body)


# ggml type id: (block elements, block bytes)
GGML = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
        10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210),
        16: (256, 66), 24: (1, 1), 30: (1, 2)}


def gguf(kvs, tensors, version=3, alignment=32, seed=1):
    """tensors: list of (name, ne list innermost first, ggml type)."""
    head = bytearray(struct.pack("<IIQQ", 0x46554747, version, len(tensors), len(kvs)))
    for k in kvs:
        head += k
    offsets, off = [], 0
    for name, ne, t in tensors:
        be, bb = GGML[t]
        n = 1
        for d in ne:
            n *= d
        nbytes = n // be * bb
        offsets.append((off, nbytes))
        head += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        head += struct.pack("<IQ", t, off)
        off = (off + nbytes + alignment - 1) // alignment * alignment
    head += b"\0" * (-len(head) % alignment)
    data = bytearray(off)
    x = seed
    for i in range(len(data)):  # deterministic bytes; keep halves finite-ish
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        data[i] = (x >> 16) & 0x3F
    if tensors:
        data = data[:offsets[-1][0] + offsets[-1][1]]
    return bytes(head + data)


def write_corpus(outdir):
    os.makedirs(outdir, exist_ok=True)
    every_type = [
        kv("general.architecture", STRING, s("llama")),
        kv("t.u8", 0, struct.pack("<B", 200)), kv("t.i8", 1, struct.pack("<b", -5)),
        kv("t.u16", 2, struct.pack("<H", 60000)), kv("t.i16", 3, struct.pack("<h", -300)),
        kv("t.u32", 4, struct.pack("<I", 4000000000)), kv("t.i32", 5, struct.pack("<i", -70000)),
        kv("t.f32", 6, struct.pack("<f", 1e-5)), kv("t.bool", 7, b"\x01"),
        kv("t.u64", 10, struct.pack("<Q", 1 << 40)), kv("t.i64", 11, struct.pack("<q", -(1 << 40))),
        kv("t.f64", 12, struct.pack("<d", 3.25)),
        kv("t.strings", ARRAY, arr(STRING, ["a", "", "\u00e9\u00e8", "tok"])),
        kv("t.nested", ARRAY, arr(ARRAY, [(5, [1, 2, 3]), (5, []), (STRING, ["x"])])),
        kv("t.deep", ARRAY, arr(ARRAY, [(ARRAY, [(ARRAY, [(6, [0.5])])])])),
    ]
    vocab = [
        kv("general.architecture", STRING, s("llama")),
        kv("tokenizer.ggml.model", STRING, s("llama")),
        kv("tokenizer.ggml.tokens", ARRAY, arr(STRING, ["<unk>", "<s>", "</s>"] + ["\u2581t%d" % i for i in range(60)])),
        kv("tokenizer.ggml.scores", ARRAY, arr(6, [-float(i) for i in range(63)])),
        kv("tokenizer.ggml.token_type", ARRAY, arr(5, [2, 3, 3] + [1] * 60)),
        kv("tokenizer.ggml.merges", ARRAY, arr(STRING, ["\u2581 t", "t 1"])),
        kv("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 1)),
    ]
    arch = [kv("general.architecture", STRING, s("llama")), kv("llama.block_count", 4, struct.pack("<I", 1))]
    seeds = {
        "empty_v3.gguf": gguf([], []),
        "every_type.gguf": gguf(every_type, []),
        "vocab.gguf": gguf(vocab, []),
        "tensors_plain.gguf": gguf(arch, [("token_embd.weight", [8, 4], 1), ("output_norm.weight", [8], 0),
                                          ("blk.0.attn_q.weight", [4, 4], 30), ("t.i8", [3], 24)]),
        "tensors_q.gguf": gguf(arch, [("a.q4_0", [64, 2], 2), ("b.q4_1", [32], 3), ("c.q5_0", [32], 6),
                                      ("d.q5_1", [32], 7), ("e.q8_0", [32, 2], 8)]),
        "tensors_k.gguf": gguf(arch, [("a.q2_k", [256], 10), ("b.q3_k", [256], 11), ("c.q4_k", [256, 2], 12),
                                      ("d.q5_k", [256], 13), ("e.q6_k", [256], 14), ("f.iq2_xxs", [256], 16)]),
        "v2_align64.gguf": gguf(arch + [kv("general.alignment", 4, struct.pack("<I", 64))],
                                [("x", [16, 2, 2, 1], 0), ("y", [32], 8)], version=2, alignment=64),
    }
    for name, data in seeds.items():
        assert len(data) < 64 * 1024
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(seeds), outdir))


def main():
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "summary":
        write_summary(sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "testdata", "gguf", "vocab_summary.json"))
    elif what == "corpus":
        write_corpus(sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "fuzz", "corpus", "gguf"))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
