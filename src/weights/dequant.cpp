// Decoding of every element type to F32. The ggml block layouts are those of
// ggml-common.h (QK4_0 = 32, QK_K = 256); the arithmetic is done in the same
// order as ggml's reference dequantizers (e.g. (d * scale) * q - min) so that
// results are bit-identical to them, and no FMA is used anywhere for the same
// reason.
//
// Speed: the per-block loops are written to be auto-vectorized and compiled
// twice, for baseline x86-64 and for AVX2 + F16C; on AVX2 CPUs the
// hand-vectorized kernels of dequant_avx2.cpp take over the block types, and
// on AVX-512 CPUs those of Q4_K/Q5_K are replaced by table lookups. The choice
// is made at run time.
#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/numeric.h"
#include "weights/checkpoint.h"
#include "weights/dequant.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KAIVAL_X86_DISPATCH 1
#endif

#define KAIVAL_INLINE inline __attribute__((always_inline))

namespace kaival::weights {
namespace {

KAIVAL_INLINE float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

template <typename T>
KAIVAL_INLINE T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// ---- 32-element blocks ------------------------------------------------------

// block_q4_0 {half d; u8 qs[16]}: low nibbles are elements 0..15, high 16..31.
KAIVAL_INLINE void q4_0(const uint8_t* b, float* y) {
  const float d = half_at(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
  for (int j = 0; j < 16; ++j) y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
}

// block_q4_1 {half d; half m; u8 qs[16]}.
KAIVAL_INLINE void q4_1(const uint8_t* b, float* y) {
  const float d = half_at(b), m = half_at(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
  for (int j = 0; j < 16; ++j) y[j + 16] = static_cast<float>(qs[j] >> 4) * d + m;
}

// block_q5_0 {half d; u8 qh[4]; u8 qs[16]}: bit j of qh is the 5th bit of
// element j.
KAIVAL_INLINE void q5_0(const uint8_t* b, float* y) {
  const float d = half_at(b);
  const uint32_t qh = load<uint32_t>(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j)
    y[j] = static_cast<float>(((qs[j] & 0x0F) | static_cast<int>(((qh >> j) << 4) & 0x10)) - 16) * d;
  for (int j = 0; j < 16; ++j)
    y[j + 16] = static_cast<float>(((qs[j] >> 4) | static_cast<int>((qh >> (j + 12)) & 0x10)) - 16) * d;
}

// block_q5_1 {half d; half m; u8 qh[4]; u8 qs[16]}.
KAIVAL_INLINE void q5_1(const uint8_t* b, float* y) {
  const float d = half_at(b), m = half_at(b + 2);
  const uint32_t qh = load<uint32_t>(b + 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j)
    y[j] = static_cast<float>((qs[j] & 0x0F) | static_cast<int>(((qh >> j) << 4) & 0x10)) * d + m;
  for (int j = 0; j < 16; ++j)
    y[j + 16] = static_cast<float>((qs[j] >> 4) | static_cast<int>((qh >> (j + 12)) & 0x10)) * d + m;
}

// block_q8_0 {half d; i8 qs[32]}; block_q8_1 {half d; half s; i8 qs[32]}
// (s = d * sum(qs) is only used by ggml's dot products).
KAIVAL_INLINE void q8(const uint8_t* b, const uint8_t* qs_at, float* y) {
  const float d = half_at(b);
  const int8_t* qs = reinterpret_cast<const int8_t*>(qs_at);
  for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

// ---- 256-element super-blocks (k-quants) -----------------------------------

// block_q2_K {u8 scales[16]; u8 qs[64]; half d; half dmin}: 16 groups of 16,
// each with a 4-bit scale (low nibble) and 4-bit min (high nibble); 2-bit
// quants, four per byte, a byte column of 32 serving 4 group pairs.
KAIVAL_INLINE void q2_k(const uint8_t* b, float* y) {
  const uint8_t* sc = b;
  const uint8_t* q = b + 16;
  const float d = half_at(b + 80), dmin = half_at(b + 82);
  for (int half = 0; half < 2; ++half, q += 32) {
    for (int shift = 0; shift < 8; shift += 2, sc += 2) {
      const float dl0 = d * static_cast<float>(sc[0] & 0x0F), ml0 = dmin * static_cast<float>(sc[0] >> 4);
      const float dl1 = d * static_cast<float>(sc[1] & 0x0F), ml1 = dmin * static_cast<float>(sc[1] >> 4);
      for (int l = 0; l < 16; ++l) y[l] = dl0 * static_cast<float>((q[l] >> shift) & 3) - ml0;
      for (int l = 0; l < 16; ++l) y[16 + l] = dl1 * static_cast<float>((q[l + 16] >> shift) & 3) - ml1;
      y += 32;
    }
  }
}

// block_q3_K {u8 hmask[32]; u8 qs[64]; u8 scales[12]; half d}: 16 groups of
// 16 with 6-bit signed scales (offset 32): low 4 bits in bytes 0..7 (low then
// high nibbles), top 2 bits in bytes 8..11. 3-bit quants: 2 low bits in qs,
// the high bit in hmask (a clear bit means subtract 4).
KAIVAL_INLINE void q3_k(const uint8_t* b, float* y) {
  const uint8_t* hm = b;
  const uint8_t* q = b + 32;
  const uint8_t* s = b + 96;
  const float d = half_at(b + 108);
  int8_t scales[16];
  for (int i = 0; i < 16; ++i) {
    int lo = i < 8 ? (s[i] & 0x0F) : (s[i - 8] >> 4);
    int hi = (s[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
    scales[i] = static_cast<int8_t>((lo | (hi << 4)) - 32);
  }
  int is = 0;
  uint8_t m = 1;
  for (int half = 0; half < 2; ++half, q += 32) {
    for (int shift = 0; shift < 8; shift += 2, m = static_cast<uint8_t>(m << 1)) {
      const float dl0 = d * static_cast<float>(scales[is++]);
      for (int l = 0; l < 16; ++l)
        y[l] = dl0 * static_cast<float>(((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
      const float dl1 = d * static_cast<float>(scales[is++]);
      for (int l = 0; l < 16; ++l)
        y[16 + l] = dl1 * static_cast<float>(((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
      y += 32;
    }
  }
}

// 6-bit scale and min j (0..7) of Q4_K/Q5_K from the 12-byte packing: j < 4
// in the low 6 bits of bytes j and j+4; j >= 4 in the nibbles of byte j+4 with
// the top 2 bits taken from bytes j-4 and j.
KAIVAL_INLINE void scale_min_k4(int j, const uint8_t* q, int& sc, int& mn) {
  if (j < 4) {
    sc = q[j] & 63;
    mn = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// block_q4_K {half d; half dmin; u8 scales[12]; u8 qs[128]}: 8 groups of 32;
// each 32-byte column holds two groups (low nibbles, then high nibbles).
KAIVAL_INLINE void q4_k(const uint8_t* b, float* y) {
  const float d = half_at(b), dmin = half_at(b + 2);
  const uint8_t* s = b + 4;
  const uint8_t* q = b + 16;
  for (int j = 0; j < 8; j += 2, q += 32, y += 64) {
    int sc, mn;
    scale_min_k4(j, s, sc, mn);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
    scale_min_k4(j + 1, s, sc, mn);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(mn);
    for (int l = 0; l < 32; ++l) y[l] = d1 * static_cast<float>(q[l] & 0x0F) - m1;
    for (int l = 0; l < 32; ++l) y[32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2;
  }
}

// block_q5_K {half d; half dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: as
// Q4_K plus a 5th bit per element, bit 2j / 2j+1 of qh[l] for group pair j.
KAIVAL_INLINE void q5_k(const uint8_t* b, float* y) {
  const float d = half_at(b), dmin = half_at(b + 2);
  const uint8_t* s = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  for (int j = 0; j < 8; j += 2, ql += 32, y += 64) {
    int sc, mn;
    scale_min_k4(j, s, sc, mn);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
    scale_min_k4(j + 1, s, sc, mn);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(mn);
    const int b1 = j, b2 = j + 1;
    for (int l = 0; l < 32; ++l)
      y[l] = d1 * static_cast<float>((ql[l] & 0x0F) + (((qh[l] >> b1) & 1) << 4)) - m1;
    for (int l = 0; l < 32; ++l)
      y[32 + l] = d2 * static_cast<float>((ql[l] >> 4) + (((qh[l] >> b2) & 1) << 4)) - m2;
  }
}

// block_q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; half d}: 16 groups of 16
// with signed 8-bit scales; 6-bit quants (offset 32), low 4 bits in ql and 2
// high bits in qh. Each half of 128 elements uses 64 ql bytes and 32 qh bytes.
KAIVAL_INLINE void q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = half_at(b + 208);
  for (int half = 0; half < 2; ++half, ql += 64, qh += 32, sc += 8, y += 128) {
    for (int g = 0; g < 2; ++g) {  // two groups of 16 per 32-lane column
      const float s0 = d * static_cast<float>(sc[g + 0]), s1 = d * static_cast<float>(sc[g + 2]);
      const float s2 = d * static_cast<float>(sc[g + 4]), s3 = d * static_cast<float>(sc[g + 6]);
      for (int i = 0; i < 16; ++i) {
        const int l = 16 * g + i;
        const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = s0 * static_cast<float>(q1);
        y[l + 32] = s1 * static_cast<float>(q2);
        y[l + 64] = s2 * static_cast<float>(q3);
        y[l + 96] = s3 * static_cast<float>(q4);
      }
    }
  }
}

// block_q8_K {float d; i8 qs[256]; i16 bsums[16]}.
KAIVAL_INLINE void q8_k(const uint8_t* b, float* y) {
  const float d = load<float>(b);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 4);
  for (int j = 0; j < 256; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

template <typename Fn>
KAIVAL_INLINE void blocks(const uint8_t* src, int64_t n, float* out, int elems, int bytes, Fn fn) {
  for (int64_t i = 0, nb = n / elems; i < nb; ++i) fn(src + i * bytes, out + i * elems);
}

template <typename T>
KAIVAL_INLINE void cast_all(const uint8_t* src, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(load<T>(src + i * sizeof(T)));
}

// FP8 decodes through a 256-entry table built once (read-only afterwards).
struct F8Tables {
  float e4m3[256], e5m2[256];
  F8Tables() {
    for (int i = 0; i < 256; ++i) {
      e4m3[i] = f8e4m3_to_f32(static_cast<uint8_t>(i));
      e5m2[i] = f8e5m2_to_f32(static_cast<uint8_t>(i));
    }
  }
};
const F8Tables& f8_tables() {
  static const F8Tables t;
  return t;
}

// Every decoder except F16 (which has its own F16C path); returns false for
// types without one. Compiled once per instruction set through Dispatch.
KAIVAL_INLINE bool decode_common(DType t, const uint8_t* src, int64_t n, float* out) {
  switch (t) {
    case DType::F32: std::memcpy(out, src, static_cast<size_t>(n) * 4); return true;
    case DType::F64: cast_all<double>(src, n, out); return true;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) out[i] = f32_from_bits(static_cast<uint32_t>(load<uint16_t>(src + 2 * i)) << 16);
      return true;
    case DType::F8_E4M3: {
      const float* tab = f8_tables().e4m3;
      for (int64_t i = 0; i < n; ++i) out[i] = tab[src[i]];
      return true;
    }
    case DType::F8_E5M2: {
      const float* tab = f8_tables().e5m2;
      for (int64_t i = 0; i < n; ++i) out[i] = tab[src[i]];
      return true;
    }
    case DType::I64: cast_all<int64_t>(src, n, out); return true;
    case DType::I32: cast_all<int32_t>(src, n, out); return true;
    case DType::I16: cast_all<int16_t>(src, n, out); return true;
    case DType::I8: cast_all<int8_t>(src, n, out); return true;
    case DType::U8: cast_all<uint8_t>(src, n, out); return true;
    case DType::BOOL:
      for (int64_t i = 0; i < n; ++i) out[i] = src[i] != 0 ? 1.0f : 0.0f;
      return true;
    case DType::Q4_0: blocks(src, n, out, 32, 18, q4_0); return true;
    case DType::Q4_1: blocks(src, n, out, 32, 20, q4_1); return true;
    case DType::Q5_0: blocks(src, n, out, 32, 22, q5_0); return true;
    case DType::Q5_1: blocks(src, n, out, 32, 24, q5_1); return true;
    case DType::Q8_0: blocks(src, n, out, 32, 34, [](const uint8_t* b, float* y) { q8(b, b + 2, y); }); return true;
    case DType::Q8_1: blocks(src, n, out, 32, 36, [](const uint8_t* b, float* y) { q8(b, b + 4, y); }); return true;
    case DType::Q2_K: blocks(src, n, out, 256, 84, q2_k); return true;
    case DType::Q3_K: blocks(src, n, out, 256, 110, q3_k); return true;
    case DType::Q4_K: blocks(src, n, out, 256, 144, q4_k); return true;
    case DType::Q5_K: blocks(src, n, out, 256, 176, q5_k); return true;
    case DType::Q6_K: blocks(src, n, out, 256, 210, q6_k); return true;
    case DType::Q8_K: blocks(src, n, out, 256, 292, q8_k); return true;
    case DType::F16: case DType::Unsupported: return false;
  }
  return false;
}

// Branch-free binary16 -> binary32 (same results as f16_to_f32) so that the
// loop vectorizes on CPUs without F16C: shift exponent and mantissa into
// place and rebias; Inf/NaN get the full exponent; subnormals are
// renormalised by one exact float subtraction.
KAIVAL_INLINE float f16_branchless(uint16_t h) {
  const uint32_t em = static_cast<uint32_t>(h & 0x7fffu) << 13;
  const uint32_t exp = em & 0x0f800000u;
  const uint32_t normal = em + (112u << 23);
  const uint32_t special = em + (224u << 23);
  const float sub = f32_from_bits(em + (113u << 23)) - f32_from_bits(113u << 23);
  uint32_t bits = exp == 0x0f800000u ? special : normal;
  bits = exp == 0 ? bits_from_f32(sub) : bits;
  return f32_from_bits(bits | (static_cast<uint32_t>(h & 0x8000u) << 16));
}

bool decode_baseline(DType t, const uint8_t* src, int64_t n, float* out) {
  if (t == DType::F16) {
    for (int64_t i = 0; i < n; ++i) out[i] = f16_branchless(load<uint16_t>(src + 2 * i));
    return true;
  }
  return decode_common(t, src, n, out);
}

#ifdef KAIVAL_X86_DISPATCH
// Hand-written kernels where they exist, else the common loops built for AVX2.
__attribute__((target("avx2,f16c"))) bool decode_avx2(DType t, const uint8_t* src, int64_t n, float* out) {
  return dequantize_avx2(t, src, n, out) || decode_common(t, src, n, out);
}

bool decode_avx512(DType t, const uint8_t* src, int64_t n, float* out) {
  return dequantize_avx512(t, src, n, out) || decode_avx2(t, src, n, out);
}

struct CpuIsa {
  bool avx2, avx512;
  CpuIsa() {
    __builtin_cpu_init();
    avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl");
  }
};
const CpuIsa& cpu_isa() {
  static const CpuIsa isa;  // detected once, read-only afterwards
  return isa;
}
#endif

using Decoder = bool (*)(DType, const uint8_t*, int64_t, float*);

void run(Decoder decode, DType t, const uint8_t* src, int64_t n, float* out) {
  const DTypeTraits& tr = traits(t);
  if (t == DType::Unsupported) fail<UnsupportedError>("dequantize", "no decoder for this element type");
  if (n < 0 || n % tr.block_elems != 0)
    fail("dequantize", "{}: {} elements is not a multiple of the block size {}", tr.name, n, tr.block_elems);
  if (n > 0 && !decode(t, src, n, out)) fail<UnsupportedError>("dequantize", "no decoder for element type {}", tr.name);
}

Decoder decoder_for(DequantIsa isa) {
  switch (isa) {
#ifdef KAIVAL_X86_DISPATCH
    case DequantIsa::Avx512: return decode_avx512;
    case DequantIsa::Avx2: return decode_avx2;
#else
    case DequantIsa::Avx512: case DequantIsa::Avx2: break;
#endif
    case DequantIsa::Baseline: return decode_baseline;
  }
  return decode_baseline;
}

}  // namespace

std::vector<DequantIsa> dequantize_isas() {
  std::vector<DequantIsa> out{DequantIsa::Baseline};
#ifdef KAIVAL_X86_DISPATCH
  if (cpu_isa().avx2) out.push_back(DequantIsa::Avx2);
  if (cpu_isa().avx512) out.push_back(DequantIsa::Avx512);
#endif
  return out;
}

DequantIsa dequantize_isa() { return dequantize_isas().back(); }

std::string_view isa_name(DequantIsa isa) {
  switch (isa) {
    case DequantIsa::Baseline: return "baseline";
    case DequantIsa::Avx2: return "avx2";
    case DequantIsa::Avx512: return "avx512";
  }
  return "?";
}

void dequantize_with(DequantIsa isa, DType t, const uint8_t* src, int64_t n, float* out) {
  std::vector<DequantIsa> have = dequantize_isas();
  if (std::find(have.begin(), have.end(), isa) == have.end())
    fail<UnsupportedError>("dequantize", "this CPU cannot run the {} decoders", isa_name(isa));
  run(decoder_for(isa), t, src, n, out);
}

void dequantize(DType t, const uint8_t* src, int64_t n, float* out) {
#ifdef KAIVAL_X86_DISPATCH
  const CpuIsa& isa = cpu_isa();
  run(isa.avx512 ? decode_avx512 : isa.avx2 ? decode_avx2 : decode_baseline, t, src, n, out);
#else
  run(decode_baseline, t, src, n, out);
#endif
}

}  // namespace kaival::weights
