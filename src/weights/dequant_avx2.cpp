// Hand-vectorized AVX2 decoders for the ggml block types (and AVX-512 ones
// for Q4_K/Q5_K), chosen at run time by dequantize() (dequant.cpp). Only the
// functions here carry the target attributes, so nothing else in the program
// is built for these instruction sets. They compute exactly what the scalar decoders compute: the same
// float operations in the same order, multiply and add/subtract kept apart (no
// FMA), so results are bit-identical (checked by tests/weights/dequant_test).
// GCC 12 warns about the deliberately undefined upper lanes inside its own
// AVX-512 conversion intrinsics (_mm512_undefined_*); the warning must be off
// before <immintrin.h> is read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "weights/dequant.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <cstring>

#include "core/numeric.h"

#define KAIVAL_AVX2 __attribute__((target("avx2,f16c")))
#define KAIVAL_AVX2_INLINE inline __attribute__((target("avx2,f16c"), always_inline))

namespace kaival::weights {
namespace {

KAIVAL_AVX2_INLINE float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);  // F16C: exact, like f16_to_f32
}

enum class Op { Mul, MulAdd, MulSub };  // q*d, q*d + m, q*d - m (two roundings each)

template <bool Signed>
KAIVAL_AVX2_INLINE __m256 bytes8_to_ps(__m128i v) {
  return _mm256_cvtepi32_ps(Signed ? _mm256_cvtepi8_epi32(v) : _mm256_cvtepu8_epi32(v));
}

template <Op op>
KAIVAL_AVX2_INLINE __m256 apply(__m256 q, __m256 d, __m256 m) {
  __m256 y = _mm256_mul_ps(q, d);
  if constexpr (op == Op::MulAdd) y = _mm256_add_ps(y, m);
  if constexpr (op == Op::MulSub) y = _mm256_sub_ps(y, m);
  return y;
}

// 16 quants (bytes of q) -> 16 floats at y.
template <bool Signed, Op op>
KAIVAL_AVX2_INLINE void store16(float* y, __m128i q, __m256 d, __m256 m) {
  _mm256_storeu_ps(y, apply<op>(bytes8_to_ps<Signed>(q), d, m));
  _mm256_storeu_ps(y + 8, apply<op>(bytes8_to_ps<Signed>(_mm_srli_si128(q, 8)), d, m));
}

template <bool Signed, Op op>
KAIVAL_AVX2_INLINE void store32(float* y, __m256i q, __m256 d, __m256 m) {
  store16<Signed, op>(y, _mm256_castsi256_si128(q), d, m);
  store16<Signed, op>(y + 16, _mm256_extracti128_si256(q, 1), d, m);
}

// Byte i of the result is 0xFF where bit i of x is set.
KAIVAL_AVX2_INLINE __m256i bits_to_bytes(uint32_t x) {
  const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                        2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i mask = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(x)), shuf);
  return _mm256_cmpeq_epi8(_mm256_and_si256(v, mask), mask);
}

// Low nibbles of 16 bytes in the low lane, high nibbles in the high lane:
// element order of the 32-element ggml blocks.
KAIVAL_AVX2_INLINE __m256i nibbles32(const uint8_t* qs) {
  const __m128i lo4 = _mm_set1_epi8(0x0F);
  __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), lo4), _mm_and_si128(q, lo4));
}

KAIVAL_AVX2_INLINE void q4_0(const uint8_t* b, float* y) {
  const __m256 d = _mm256_set1_ps(half_at(b)), z = _mm256_setzero_ps();
  __m256i q = _mm256_sub_epi8(nibbles32(b + 2), _mm256_set1_epi8(8));
  store32<true, Op::Mul>(y, q, d, z);
}

KAIVAL_AVX2_INLINE void q4_1(const uint8_t* b, float* y) {
  const __m256 d = _mm256_set1_ps(half_at(b)), m = _mm256_set1_ps(half_at(b + 2));
  store32<false, Op::MulAdd>(y, nibbles32(b + 4), d, m);
}

KAIVAL_AVX2_INLINE void q5_0(const uint8_t* b, float* y) {
  const __m256 d = _mm256_set1_ps(half_at(b)), z = _mm256_setzero_ps();
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  __m256i hi = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
  __m256i q = _mm256_sub_epi8(_mm256_or_si256(nibbles32(b + 6), hi), _mm256_set1_epi8(16));
  store32<true, Op::Mul>(y, q, d, z);
}

KAIVAL_AVX2_INLINE void q5_1(const uint8_t* b, float* y) {
  const __m256 d = _mm256_set1_ps(half_at(b)), m = _mm256_set1_ps(half_at(b + 2));
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  __m256i hi = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
  store32<false, Op::MulAdd>(y, _mm256_or_si256(nibbles32(b + 8), hi), d, m);
}

KAIVAL_AVX2_INLINE void q8(const uint8_t* b, const uint8_t* qs, float* y) {
  const __m256 d = _mm256_set1_ps(half_at(b)), z = _mm256_setzero_ps();
  store32<true, Op::Mul>(y, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs)), d, z);
}

// (v >> shift) & mask for every byte (shift < 8).
KAIVAL_AVX2_INLINE __m256i shr_bytes(__m256i v, int shift, int mask) {
  return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(shift)), _mm256_set1_epi8(static_cast<char>(mask)));
}

KAIVAL_AVX2_INLINE void q2_k(const uint8_t* b, float* y) {
  const uint8_t* sc = b;
  const float d = half_at(b + 80), dmin = half_at(b + 82);
  for (int half = 0; half < 2; ++half) {
    __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16 + 32 * half));
    for (int j = 0; j < 4; ++j, sc += 2, y += 32) {
      __m256i v = shr_bytes(q, 2 * j, 3);
      store16<false, Op::MulSub>(y, _mm256_castsi256_si128(v), _mm256_set1_ps(d * static_cast<float>(sc[0] & 0x0F)),
                                 _mm256_set1_ps(dmin * static_cast<float>(sc[0] >> 4)));
      store16<false, Op::MulSub>(y + 16, _mm256_extracti128_si256(v, 1),
                                 _mm256_set1_ps(d * static_cast<float>(sc[1] & 0x0F)),
                                 _mm256_set1_ps(dmin * static_cast<float>(sc[1] >> 4)));
    }
  }
}

KAIVAL_AVX2_INLINE void q3_k(const uint8_t* b, float* y) {
  const uint8_t* s = b + 96;
  const float d = half_at(b + 108);
  float dl[16];
  for (int i = 0; i < 16; ++i) {
    int lo = i < 8 ? (s[i] & 0x0F) : (s[i - 8] >> 4);
    int hi = (s[8 + (i & 3)] >> (2 * (i >> 2))) & 3;
    dl[i] = d * static_cast<float>((lo | (hi << 4)) - 32);
  }
  const __m256 z = _mm256_setzero_ps();
  const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
  const __m256i four = _mm256_set1_epi8(4);
  int is = 0;
  for (int half = 0; half < 2; ++half) {
    __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32 + 32 * half));
    for (int j = 0; j < 4; ++j, y += 32, is += 2) {
      __m256i low = shr_bytes(q, 2 * j, 3);
      __m256i high = _mm256_slli_epi16(shr_bytes(hm, 4 * half + j, 1), 2);  // 4 where the bit is set
      __m256i v = _mm256_sub_epi8(_mm256_or_si256(low, high), four);
      store16<true, Op::Mul>(y, _mm256_castsi256_si128(v), _mm256_set1_ps(dl[is]), z);
      store16<true, Op::Mul>(y + 16, _mm256_extracti128_si256(v, 1), _mm256_set1_ps(dl[is + 1]), z);
    }
  }
}

KAIVAL_AVX2_INLINE void scale_min_k4(int j, const uint8_t* q, int& sc, int& mn) {
  if (j < 4) {
    sc = q[j] & 63;
    mn = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K (with_high = false) and Q5_K (with_high = true).
template <bool WithHigh>
KAIVAL_AVX2_INLINE void qk_4_5(const uint8_t* b, float* y) {
  const float d = half_at(b), dmin = half_at(b + 2);
  const uint8_t* s = b + 4;
  const uint8_t* ql = WithHigh ? b + 48 : b + 16;
  __m256i qh = WithHigh ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16)) : _mm256_setzero_si256();
  const __m256i lo4 = _mm256_set1_epi8(0x0F);
  for (int j = 0; j < 8; j += 2, ql += 32, y += 64) {
    int sc, mn;
    scale_min_k4(j, s, sc, mn);
    const __m256 d1 = _mm256_set1_ps(d * static_cast<float>(sc)), m1 = _mm256_set1_ps(dmin * static_cast<float>(mn));
    scale_min_k4(j + 1, s, sc, mn);
    const __m256 d2 = _mm256_set1_ps(d * static_cast<float>(sc)), m2 = _mm256_set1_ps(dmin * static_cast<float>(mn));
    __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
    __m256i a = _mm256_and_si256(q, lo4);
    __m256i c = _mm256_and_si256(_mm256_srli_epi16(q, 4), lo4);
    if constexpr (WithHigh) {
      a = _mm256_or_si256(a, _mm256_slli_epi16(shr_bytes(qh, j, 1), 4));
      c = _mm256_or_si256(c, _mm256_slli_epi16(shr_bytes(qh, j + 1, 1), 4));
    }
    store32<false, Op::MulSub>(y, a, d1, m1);
    store32<false, Op::MulSub>(y + 32, c, d2, m2);
  }
}

KAIVAL_AVX2_INLINE void q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = half_at(b + 208);
  const __m256 z = _mm256_setzero_ps();
  const __m256i lo4 = _mm256_set1_epi8(0x0F), off = _mm256_set1_epi8(32);
  for (int half = 0; half < 2; ++half, ql += 64, qh += 32, sc += 8, y += 128) {
    __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
    __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql + 32));
    __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh));
    const __m256i q[4] = {
        _mm256_or_si256(_mm256_and_si256(l0, lo4), _mm256_slli_epi16(shr_bytes(h, 0, 3), 4)),
        _mm256_or_si256(_mm256_and_si256(l1, lo4), _mm256_slli_epi16(shr_bytes(h, 2, 3), 4)),
        _mm256_or_si256(shr_bytes(l0, 4, 0x0F), _mm256_slli_epi16(shr_bytes(h, 4, 3), 4)),
        _mm256_or_si256(shr_bytes(l1, 4, 0x0F), _mm256_slli_epi16(shr_bytes(h, 6, 3), 4)),
    };
    for (int k = 0; k < 4; ++k) {  // 32 outputs, groups of 16 with scales sc[2k], sc[2k+1]
      __m256i v = _mm256_sub_epi8(q[k], off);
      store16<true, Op::Mul>(y + 32 * k, _mm256_castsi256_si128(v),
                             _mm256_set1_ps(d * static_cast<float>(sc[2 * k])), z);
      store16<true, Op::Mul>(y + 32 * k + 16, _mm256_extracti128_si256(v, 1),
                             _mm256_set1_ps(d * static_cast<float>(sc[2 * k + 1])), z);
    }
  }
}

KAIVAL_AVX2_INLINE void bf16(const uint8_t* src, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  for (; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    out[i] = bf16_to_f32(h);
  }
}

KAIVAL_AVX2_INLINE void f16(const uint8_t* src, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i))));
  for (; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    out[i] = f16_to_f32(h);
  }
}

KAIVAL_AVX2_INLINE void q8_0(const uint8_t* b, float* y) { q8(b, b + 2, y); }
KAIVAL_AVX2_INLINE void q8_1(const uint8_t* b, float* y) { q8(b, b + 4, y); }
KAIVAL_AVX2_INLINE void q4_k(const uint8_t* b, float* y) { qk_4_5<false>(b, y); }
KAIVAL_AVX2_INLINE void q5_k(const uint8_t* b, float* y) { qk_4_5<true>(b, y); }

template <void (*Block)(const uint8_t*, float*), int Elems, int Bytes>
KAIVAL_AVX2 void blocks(const uint8_t* src, int64_t n, float* out) {
  for (int64_t i = 0, nb = n / Elems; i < nb; ++i) Block(src + i * Bytes, out + i * Elems);
}

// ---- AVX-512: Q4_K / Q5_K by table lookup -----------------------------------
// A group of 32 shares (d * scale, dmin * min), so its 16 (Q4_K) or 32 (Q5_K)
// possible outputs d1 * q - m1 are computed once with exactly the scalar
// operations and the quants only select among them (vpermps).

#define KAIVAL_AVX512_INLINE inline __attribute__((target("avx512f,avx512bw,avx512vl,avx2,f16c"), always_inline))
#define KAIVAL_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,f16c")))

// out[0..32) = table lookups of the 32 byte indices in q.
KAIVAL_AVX512_INLINE void lookup32(float* y, __m256i q, __m512 lo, __m512 hi, bool two_tables) {
  __m512i i0 = _mm512_cvtepu8_epi32(_mm256_castsi256_si128(q));
  __m512i i1 = _mm512_cvtepu8_epi32(_mm256_extracti128_si256(q, 1));
  if (two_tables) {
    _mm512_storeu_ps(y, _mm512_permutex2var_ps(lo, i0, hi));
    _mm512_storeu_ps(y + 16, _mm512_permutex2var_ps(lo, i1, hi));
  } else {
    _mm512_storeu_ps(y, _mm512_permutexvar_ps(i0, lo));
    _mm512_storeu_ps(y + 16, _mm512_permutexvar_ps(i1, lo));
  }
}

template <bool WithHigh>
KAIVAL_AVX512_INLINE void qk_4_5_lut(const uint8_t* b, float* y) {
  const __m512 q0 = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512 q16 = _mm512_setr_ps(16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31);
  const float d = half_at(b), dmin = half_at(b + 2);
  const uint8_t* s = b + 4;
  const uint8_t* ql = WithHigh ? b + 48 : b + 16;
  __m256i qh = WithHigh ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 16)) : _mm256_setzero_si256();
  const __m256i lo4 = _mm256_set1_epi8(0x0F);
  for (int j = 0; j < 8; j += 2, ql += 32, y += 64) {
    __m512 t[2][2];
    for (int k = 0; k < 2; ++k) {
      int sc, mn;
      scale_min_k4(j + k, s, sc, mn);
      const __m512 dl = _mm512_set1_ps(d * static_cast<float>(sc)), ml = _mm512_set1_ps(dmin * static_cast<float>(mn));
      t[k][0] = _mm512_sub_ps(_mm512_mul_ps(dl, q0), ml);
      t[k][1] = WithHigh ? _mm512_sub_ps(_mm512_mul_ps(dl, q16), ml) : t[k][0];
    }
    __m256i q = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ql));
    __m256i a = _mm256_and_si256(q, lo4);
    __m256i c = _mm256_and_si256(_mm256_srli_epi16(q, 4), lo4);
    if constexpr (WithHigh) {
      a = _mm256_or_si256(a, _mm256_slli_epi16(shr_bytes(qh, j, 1), 4));
      c = _mm256_or_si256(c, _mm256_slli_epi16(shr_bytes(qh, j + 1, 1), 4));
    }
    lookup32(y, a, t[0][0], t[0][1], WithHigh);
    lookup32(y + 32, c, t[1][0], t[1][1], WithHigh);
  }
}

template <bool WithHigh>
KAIVAL_AVX512 void qk_4_5_lut_blocks(const uint8_t* src, int64_t n, float* out) {
  const int bytes = WithHigh ? 176 : 144;
  for (int64_t i = 0, nb = n / 256; i < nb; ++i) qk_4_5_lut<WithHigh>(src + i * bytes, out + i * 256);
}

}  // namespace

KAIVAL_AVX2 bool dequantize_avx2(DType t, const uint8_t* src, int64_t n, float* out) {
  switch (t) {
    case DType::BF16: bf16(src, n, out); return true;
    case DType::F16: f16(src, n, out); return true;
    case DType::Q4_0: blocks<q4_0, 32, 18>(src, n, out); return true;
    case DType::Q4_1: blocks<q4_1, 32, 20>(src, n, out); return true;
    case DType::Q5_0: blocks<q5_0, 32, 22>(src, n, out); return true;
    case DType::Q5_1: blocks<q5_1, 32, 24>(src, n, out); return true;
    case DType::Q8_0: blocks<q8_0, 32, 34>(src, n, out); return true;
    case DType::Q8_1: blocks<q8_1, 32, 36>(src, n, out); return true;
    case DType::Q2_K: blocks<q2_k, 256, 84>(src, n, out); return true;
    case DType::Q3_K: blocks<q3_k, 256, 110>(src, n, out); return true;
    case DType::Q4_K: blocks<q4_k, 256, 144>(src, n, out); return true;
    case DType::Q5_K: blocks<q5_k, 256, 176>(src, n, out); return true;
    case DType::Q6_K: blocks<q6_k, 256, 210>(src, n, out); return true;
    default: return false;  // the plain types: dequant.cpp's loops
  }
}

KAIVAL_AVX512 bool dequantize_avx512(DType t, const uint8_t* src, int64_t n, float* out) {
  switch (t) {
    case DType::Q4_K: qk_4_5_lut_blocks<false>(src, n, out); return true;
    case DType::Q5_K: qk_4_5_lut_blocks<true>(src, n, out); return true;
    default: return false;
  }
}

}  // namespace kaival::weights

#endif
