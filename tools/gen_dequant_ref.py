#!/usr/bin/python3
"""Reference data for kaival's dequantization tests.

Builds random but valid blocks of every ggml quantized type kaival decodes
(random payload bytes, scale fields set to finite half values), decodes them
with an independent numpy implementation written from the ggml block layouts,
and writes testdata/dequant/<TYPE>.bin (raw blocks) and <TYPE>.f32 (expected
float32, little-endian). It also writes plain float types (F16, BF16, FP8) with
expected values from numpy's float16 and from the FP8 definitions.

Arithmetic follows ggml's reference order in float32, e.g. Q4_K computes
(d * scale) * q - (dmin * min), so the C++ decoder must match bit for bit.

Usage: /usr/bin/python3 tools/gen_dequant_ref.py [OUTDIR]   (needs python3-numpy)
"""
import math
import os
import sys

import numpy as np

F32 = np.float32
RNG = np.random.default_rng(20240611)


def halves(n, lo=1e-4, hi=2.0, signed=True, subnormal=False):
    """n finite float16 values as raw bytes (n, 2)."""
    mag = np.exp(RNG.uniform(math.log(lo), math.log(hi), n))
    if subnormal:
        mag[0] = 3.0e-6  # a float16 subnormal
    sign = np.where(RNG.random(n) < 0.5, -1.0, 1.0) if signed else 1.0
    return (mag * sign).astype(np.float16).view(np.uint8).reshape(n, 2)


def f16(col):
    """(nb, 2) uint8 -> (nb, 1) float32."""
    return np.ascontiguousarray(col).view(np.float16).astype(F32).reshape(-1, 1)


def nibbles(qs):
    """(nb, 16) bytes -> (nb, 32): low nibbles are elements 0..15, high 16..31."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int32)


# ---- 32-element blocks -------------------------------------------------------

def ref_q4_0(b):
    d = f16(b[:, 0:2])
    return (nibbles(b[:, 2:18]) - 8).astype(F32) * d


def ref_q4_1(b):
    d, m = f16(b[:, 0:2]), f16(b[:, 2:4])
    return nibbles(b[:, 4:20]).astype(F32) * d + m


def fifth_bits(qh4):
    """(nb, 4) bytes of a little-endian u32 -> (nb, 32) bit j for element j."""
    return np.unpackbits(qh4, axis=1, bitorder="little").astype(np.int32)


def ref_q5_0(b):
    d = f16(b[:, 0:2])
    q = nibbles(b[:, 6:22]) | (fifth_bits(b[:, 2:6]) << 4)
    return (q - 16).astype(F32) * d


def ref_q5_1(b):
    d, m = f16(b[:, 0:2]), f16(b[:, 2:4])
    q = nibbles(b[:, 8:24]) | (fifth_bits(b[:, 4:8]) << 4)
    return q.astype(F32) * d + m


def ref_q8_0(b):
    return b[:, 2:34].view(np.int8).astype(F32) * f16(b[:, 0:2])


def ref_q8_1(b):
    return b[:, 4:36].view(np.int8).astype(F32) * f16(b[:, 0:2])


# ---- k-quants (256 elements) -------------------------------------------------

E = np.arange(256)


def ref_q2_k(b):
    sc = b[:, 0:16].astype(np.int32)
    qs = b[:, 16:80].astype(np.int32)
    d, dmin = f16(b[:, 80:82]), f16(b[:, 82:84])
    half, r = E // 128, E % 128
    shift = 2 * (r // 32)
    q = (qs[:, half * 32 + r % 32] >> shift) & 3
    g = sc[:, E // 16]
    dl = d * (g & 0x0F).astype(F32)
    ml = dmin * (g >> 4).astype(F32)
    return dl * q.astype(F32) - ml


def q3_scales(raw12):
    """Unpack Q3_K's 16 six-bit scales the way ggml does: three u32 words,
    nibble masks 0x0f0f0f0f and two-bit masks 0x03030303."""
    nb = raw12.shape[0]
    aux = np.zeros((nb, 4), dtype=np.uint32)
    aux[:, 0:3] = np.ascontiguousarray(raw12).view("<u4")
    k1, k2 = np.uint32(0x03030303), np.uint32(0x0F0F0F0F)
    tmp = aux[:, 2].copy()
    a0, a1 = aux[:, 0].copy(), aux[:, 1].copy()
    out = np.empty((nb, 4), dtype=np.uint32)
    out[:, 2] = ((a0 >> 4) & k2) | (((tmp >> 4) & k1) << 4)
    out[:, 3] = ((a1 >> 4) & k2) | (((tmp >> 6) & k1) << 4)
    out[:, 0] = (a0 & k2) | (((tmp >> 0) & k1) << 4)
    out[:, 1] = (a1 & k2) | (((tmp >> 2) & k1) << 4)
    return out.view(np.uint8).astype(np.int32) - 32  # (nb, 16), byte i = scale i


def ref_q3_k(b):
    hm = b[:, 0:32].astype(np.int32)
    qs = b[:, 32:96].astype(np.int32)
    scales = q3_scales(b[:, 96:108])
    d = f16(b[:, 108:110])
    half, r = E // 128, E % 128
    j, c = r // 32, r % 32
    low = (qs[:, half * 32 + c] >> (2 * j)) & 3
    high_set = (hm[:, c] >> (half * 4 + j)) & 1
    q = low - np.where(high_set == 1, 0, 4)
    return (d * scales[:, E // 16].astype(F32)) * q.astype(F32)


def k4_scale_min(s):
    """(nb, 12) -> scales (nb, 8), mins (nb, 8) of Q4_K / Q5_K."""
    s = s.astype(np.int32)
    sc = np.empty((s.shape[0], 8), dtype=np.int32)
    mn = np.empty_like(sc)
    sc[:, 0:4] = s[:, 0:4] & 63
    mn[:, 0:4] = s[:, 4:8] & 63
    sc[:, 4:8] = (s[:, 8:12] & 0x0F) | ((s[:, 0:4] >> 6) << 4)
    mn[:, 4:8] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
    return sc, mn


def ref_q4_k(b):
    d, dmin = f16(b[:, 0:2]), f16(b[:, 2:4])
    sc, mn = k4_scale_min(b[:, 4:16])
    qs = b[:, 16:144].astype(np.int32)
    pair, u = E // 64, E % 64
    byte = qs[:, pair * 32 + u % 32]
    q = np.where(u < 32, byte & 0x0F, byte >> 4)
    g = E // 32
    return (d * sc[:, g].astype(F32)) * q.astype(F32) - dmin * mn[:, g].astype(F32)


def ref_q5_k(b):
    d, dmin = f16(b[:, 0:2]), f16(b[:, 2:4])
    sc, mn = k4_scale_min(b[:, 4:16])
    qh = b[:, 16:48].astype(np.int32)
    ql = b[:, 48:176].astype(np.int32)
    pair, u = E // 64, E % 64
    byte = ql[:, pair * 32 + u % 32]
    low = np.where(u < 32, byte & 0x0F, byte >> 4)
    high = (qh[:, u % 32] >> (2 * pair + u // 32)) & 1
    q = low + 16 * high
    g = E // 32
    return (d * sc[:, g].astype(F32)) * q.astype(F32) - dmin * mn[:, g].astype(F32)


def ref_q6_k(b):
    ql = b[:, 0:128].astype(np.int32)
    qh = b[:, 128:192].astype(np.int32)
    sc = b[:, 192:208].view(np.int8).astype(np.int32)
    d = f16(b[:, 208:210])
    half, r = E // 128, E % 128
    k, l = r // 32, r % 32
    byte = ql[:, half * 64 + l + 32 * (k & 1)]
    low = np.where(k >= 2, byte >> 4, byte & 0x0F)
    high = (qh[:, half * 32 + l] >> (2 * k)) & 3
    q = (low | (high << 4)) - 32
    s = sc[:, half * 8 + l // 16 + 2 * k]
    return (d * s.astype(F32)) * q.astype(F32)


def ref_q8_k(b):
    d = np.ascontiguousarray(b[:, 0:4]).view("<f4").astype(F32)
    return b[:, 4:260].view(np.int8).astype(F32) * d


# ---- block makers ------------------------------------------------------------

def blocks(nb, size, half_fields):
    """Random blocks with the given byte offsets holding finite halves;
    each entry is (offset, signed)."""
    b = RNG.integers(0, 256, size=(nb, size), dtype=np.uint8)
    for off, signed in half_fields:
        b[:, off:off + 2] = halves(nb, signed=signed, subnormal=(off == half_fields[0][0]))
    return b


def q8_k_blocks(nb):
    b = RNG.integers(0, 256, size=(nb, 292), dtype=np.uint8)
    d = (RNG.uniform(-0.1, 0.1, nb)).astype("<f4")
    b[:, 0:4] = d.view(np.uint8).reshape(nb, 4)
    return b


QUANT = {
    # name: (block maker, numpy reference)
    "Q4_0": (lambda: blocks(8, 18, [(0, True)]), ref_q4_0),
    "Q4_1": (lambda: blocks(8, 20, [(0, True), (2, True)]), ref_q4_1),
    "Q5_0": (lambda: blocks(8, 22, [(0, True)]), ref_q5_0),
    "Q5_1": (lambda: blocks(8, 24, [(0, True), (2, True)]), ref_q5_1),
    "Q8_0": (lambda: blocks(8, 34, [(0, True)]), ref_q8_0),
    "Q8_1": (lambda: blocks(8, 36, [(0, True), (2, True)]), ref_q8_1),
    "Q2_K": (lambda: blocks(4, 84, [(80, True), (82, True)]), ref_q2_k),
    "Q3_K": (lambda: blocks(4, 110, [(108, True)]), ref_q3_k),
    "Q4_K": (lambda: blocks(4, 144, [(0, True), (2, True)]), ref_q4_k),
    "Q5_K": (lambda: blocks(4, 176, [(0, True), (2, True)]), ref_q5_k),
    "Q6_K": (lambda: blocks(4, 210, [(208, True)]), ref_q6_k),
    "Q8_K": (lambda: q8_k_blocks(3), ref_q8_k),
}


# ---- plain float types -------------------------------------------------------

def fp8_value(v, exp_bits, man_bits, ieee_specials):
    """Decode one FP8 byte from its definition (OCP E4M3FN / E5M2)."""
    bias = (1 << (exp_bits - 1)) - 1
    sign = -1.0 if v & 0x80 else 1.0
    e = (v >> man_bits) & ((1 << exp_bits) - 1)
    m = v & ((1 << man_bits) - 1)
    top = (1 << exp_bits) - 1
    if ieee_specials and e == top:
        return sign * math.inf if m == 0 else math.nan
    if not ieee_specials and e == top and m == (1 << man_bits) - 1:
        return math.nan
    if e == 0:
        return sign * math.ldexp(m / (1 << man_bits), 1 - bias)
    return sign * math.ldexp(1 + m / (1 << man_bits), e - bias)


def plain():
    out = {}
    raw16 = np.concatenate([
        np.array([0x0000, 0x8000, 0x0001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0x7C00, 0xFC00, 0x7E00, 0xC000],
                 dtype=np.uint16),
        RNG.integers(0, 65536, size=1013, dtype=np.uint16)])
    out["F16"] = (raw16.astype("<u2").tobytes(), raw16.view(np.float16).astype(F32))
    out["BF16"] = (raw16.astype("<u2").tobytes(), (raw16.astype(np.uint32) << 16).view(F32))
    allb = np.arange(256, dtype=np.uint8)
    out["F8_E4M3"] = (allb.tobytes(), np.array([fp8_value(int(v), 4, 3, False) for v in allb], dtype=F32))
    out["F8_E5M2"] = (allb.tobytes(), np.array([fp8_value(int(v), 5, 2, True) for v in allb], dtype=F32))
    return out


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "testdata", "dequant")
    os.makedirs(outdir, exist_ok=True)
    total = 0
    items = {name: (make(), ref) for name, (make, ref) in QUANT.items()}
    for name, (b, ref) in items.items():
        y = ref(b).astype("<f4").reshape(-1)
        assert np.all(np.isfinite(y)), name
        items[name] = (b.tobytes(), y)
    items.update(plain())
    for name, (raw, y) in items.items():
        with open(os.path.join(outdir, name + ".bin"), "wb") as f:
            f.write(raw)
        with open(os.path.join(outdir, name + ".f32"), "wb") as f:
            f.write(np.asarray(y, dtype="<f4").tobytes())
        total += len(raw) + 4 * len(y)
    print(f"wrote {len(items)} types, {total} bytes to {outdir}")


if __name__ == "__main__":
    main()
