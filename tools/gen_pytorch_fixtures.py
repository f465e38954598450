#!/usr/bin/python3
"""Writes the PyTorch checkpoint fixtures under testdata/pytorch/ (a few KB).

Run with Debian's python3-torch:  /usr/bin/python3 tools/gen_pytorch_fixtures.py
The files are real torch.save outputs (byte-identical across runs, except
legacy.bin whose storage keys come from object ids); the expected values in *.json come from
torch itself (t.double().flatten().tolist()), independently of kaival's reader.
"""
import collections
import json
import os
import shutil
import zipfile

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "pytorch")

DTYPE_NAMES = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def state_dict():
    """A module's state dict (with its _metadata) plus one tensor per dtype,
    a storage-offset view sharing a storage, a parameter, a scalar and an
    empty tensor."""
    torch.manual_seed(1234)
    module = torch.nn.Sequential(
        torch.nn.Embedding(5, 4), torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    module[0].half()
    sd = module.state_dict()
    g = torch.Generator().manual_seed(99)
    sd["extra.bf16"] = torch.randn(2, 3, generator=g).bfloat16()
    sd["extra.f64"] = torch.randn(3, generator=g).double()
    sd["extra.i64"] = torch.tensor([-(2**40), -1, 0, 2**40 + 7])
    sd["extra.i32"] = torch.tensor([[-70000, 3], [5, 2**31 - 1]], dtype=torch.int32)
    sd["extra.i16"] = torch.tensor([-32768, 0, 32767], dtype=torch.int16)
    sd["extra.i8"] = torch.tensor([-128, -1, 127], dtype=torch.int8)
    sd["extra.u8"] = torch.tensor([0, 128, 255], dtype=torch.uint8)
    sd["extra.bool"] = torch.tensor([True, False, False, True])
    base = torch.arange(10, dtype=torch.float32) * 0.5
    sd["shared.base"] = base
    sd["shared.view"] = base[4:8]          # storage offset 4 in base's storage
    sd["shared.row"] = torch.arange(12, dtype=torch.float32).reshape(3, 4)[1:]  # offset 4, 2x4
    sd["param"] = torch.nn.Parameter(torch.full((2, 2), 1.25))
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    return sd


def expected(sd):
    out = {}
    for name, t in sd.items():
        out[name] = {
            "dtype": DTYPE_NAMES[t.dtype],
            "shape": list(t.shape),
            "values": t.detach().double().flatten().tolist(),
        }
    return out


class Evil:
    """Pickles as a call to os.system: a reader that executes globals would run it."""

    def __reduce__(self):
        return (os.system, ("echo kaival-must-never-run-this",))


class EvilEval:
    def __reduce__(self):
        return (eval, ("1+1",))


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(os.path.join(OUT, "sharded"))
    sd = state_dict()
    torch.save(sd, os.path.join(OUT, "state_dict.bin"))
    torch.save(sd, os.path.join(OUT, "state_dict_p4.bin"), pickle_protocol=4)
    write_json(os.path.join(OUT, "state_dict.json"), expected(sd))

    # Nested checkpoint dicts: tensors are named by the joined keys.
    torch.save({"model": collections.OrderedDict(w=torch.ones(2)), "epoch": 3, "lr": 0.5},
               os.path.join(OUT, "nested.bin"))

    # Sharded, as transformers writes it.
    names = list(sd.keys())
    half = len(names) // 2
    shards = [("pytorch_model-00001-of-00002.bin", names[:half]),
              ("pytorch_model-00002-of-00002.bin", names[half:])]
    weight_map = {}
    for file, keys in shards:
        torch.save(collections.OrderedDict((k, sd[k].clone()) for k in keys),
                   os.path.join(OUT, "sharded", file))
        weight_map.update({k: file for k in keys})
    write_json(os.path.join(OUT, "sharded", "pytorch_model.bin.index.json"),
               {"metadata": {"total_size": 0}, "weight_map": weight_map})

    # Inputs that must be refused.
    torch.save({"x": Evil()}, os.path.join(OUT, "malicious_system.bin"))
    torch.save({"x": EvilEval()}, os.path.join(OUT, "malicious_eval.bin"))
    torch.save({"t": torch.arange(6, dtype=torch.float32).reshape(2, 3).t()},
               os.path.join(OUT, "noncontiguous.bin"))
    torch.save({"t": torch.ones(2)}, os.path.join(OUT, "legacy.bin"),
               _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(os.path.join(OUT, "state_dict.bin")) as src, \
            zipfile.ZipFile(os.path.join(OUT, "compressed.bin"), "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2020, 1, 1, 0, 0, 0))
            dst.writestr(fixed, src.read(info.filename), compress_type=zipfile.ZIP_DEFLATED)


if __name__ == "__main__":
    main()
