#include "engine/qdot.h"

#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "core/numeric.h"

// Block layouts are those documented in weights/dequant.cpp (ggml's):
//   Q8_0 {f16 d; i8 qs[32]}                                    34 bytes / 32
//   Q4_0 {f16 d; u8 qs[16]}  low nibbles 0..15, high 16..31    18 bytes / 32
//   Q4_K {f16 d, dmin; u8 scales[12]; u8 qs[128]}              144 bytes / 256
//   Q6_K {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}         210 bytes / 256

namespace kaival::engine::qdot {
namespace {

using weights::DType;

inline float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// 6-bit scale and min j (0..7) of a Q4_K super-block (12-byte packing).
inline void scale_min_k4(int j, const uint8_t* s, int& sc, int& mn) {
  if (j < 4) {
    sc = s[j] & 63;
    mn = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4);
    mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// ---- activation quantization -------------------------------------------------

// One block: the scale and quants are the same at every ISA level (max and
// products are exact or identically rounded; rounding is to nearest even).
inline int8_t quant(float v) {
  float r = std::nearbyint(v);
  if (!(std::fabs(r) <= 127.0f)) r = r > 0 ? 127.0f : (r < 0 ? -127.0f : 0.0f);  // NaN -> 0
  return static_cast<int8_t>(r);
}

void quantize_portable(const float* x, int64_t blocks, int64_t block, int8_t* q, float* d) {
  for (int64_t b = 0; b < blocks; ++b, x += block, q += block) {
    float amax = 0;
    for (int64_t i = 0; i < block; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float db = amax / 127.0f, id = db != 0 ? 1.0f / db : 0.0f;
    for (int64_t i = 0; i < block; ++i) q[i] = quant(x[i] * id);
    d[b] = db;
  }
}

#define KAIVAL_QAVX2 __attribute__((target("avx2,fma,f16c")))
#define KAIVAL_QAVX2_INLINE inline __attribute__((target("avx2,fma,f16c"), always_inline))

KAIVAL_QAVX2 void quantize_avx2(const float* x, int64_t blocks, int64_t block, int8_t* q, float* d) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < blocks; ++b, x += block, q += block) {
    // |x| first: max returns its second operand for a NaN, which ignores it as the portable max does.
    __m256 m = _mm256_setzero_ps();
    for (int64_t i = 0; i < block; i += 8) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask), m);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    const float db = amax / 127.0f, id = db != 0 ? 1.0f / db : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    for (int64_t c = 0; c < block; c += 32) {
      __m256i i32[4];
      for (int k = 0; k < 4; ++k)
        i32[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + c + 8 * k), vid),
                                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      // packs work within 128-bit lanes: restore element order afterwards.
      const __m256i i16a = _mm256_packs_epi32(i32[0], i32[1]), i16b = _mm256_packs_epi32(i32[2], i32[3]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + c),
                          _mm256_permutevar8x32_epi32(_mm256_packs_epi16(i16a, i16b), order));
    }
    d[b] = db;
  }
}

// Sums of 16 quants (|sum| <= 16 * 127: fits int16); the same at every level.
void group_sums(const int8_t* q, int64_t groups, int16_t* out) {
  for (int64_t g = 0; g < groups; ++g, q += kSumGroup) {
    int s = 0;
    for (int i = 0; i < kSumGroup; ++i) s += q[i];
    out[g] = static_cast<int16_t>(s);
  }
}

// ---- portable dot kernels (the reference semantics) ----------------------------

// Weight blocks of 32 with one F16 scale (Q8_0, Q4_0), as signed integers.
struct Q8Blocks {
  static constexpr int64_t kBytes = 34;
  static int value(const uint8_t* w, int i) { return static_cast<int8_t>(w[2 + i]); }
};
struct Q4Blocks {
  static constexpr int64_t kBytes = 18;
  static int value(const uint8_t* w, int i) { return (i < 16 ? w[2 + i] & 0x0F : w[2 + i - 16] >> 4) - 8; }
};

// Q8_0 / Q4_0 against super-block activations (kSuperBlock values per scale,
// the last block of a row possibly shorter): per activation block, the
// weight blocks' exact integer sums times their scales are summed in F32,
// then multiplied once by the activation block's scale. One scale per 256
// activations instead of per 32 saves an F32 multiply per block and row in
// the SIMD kernels (the product w_d * x_d), their bottleneck.
template <class B>
float dot_b32_portable(const uint8_t* w, const int8_t* q, const float* d, const int16_t*, int64_t cols) {
  constexpr int64_t kPer = kSuperBlock / 32;  // weight blocks per activation block
  const int64_t nb = cols / 32;
  float acc = 0;
  for (int64_t g = 0; g * kPer < nb; ++g) {
    float s = 0;
    for (int64_t b = g * kPer; b < std::min(nb, (g + 1) * kPer); ++b, w += B::kBytes, q += 32) {
      int32_t is = 0;
      for (int i = 0; i < 32; ++i) is += B::value(w, i) * static_cast<int32_t>(q[i]);
      s += half_at(w) * static_cast<float>(is);
    }
    acc += s * d[g];
  }
  return acc;
}
constexpr auto dot_q8_0_portable = dot_b32_portable<Q8Blocks>;
constexpr auto dot_q4_0_portable = dot_b32_portable<Q4Blocks>;

// Super-block: d * sum_g sc_g * sum(q4 * x) - dmin * sum_g mn_g * sum(x) over
// its eight groups of 32, both sums exact integers (|.| < 2^25), each times
// the activation super-block's scale.
float dot_q4_k_portable(const uint8_t* w, const int8_t* q, const float* d, const int16_t*, int64_t cols) {
  float acc = 0, mins = 0;
  for (int64_t sb = 0; sb < cols / 256; ++sb, w += 144) {
    const uint8_t* qs = w + 16;
    const int8_t* x = q + sb * 256;
    int32_t isum = 0, msum = 0;
    for (int g = 0; g < 8; ++g) {
      int sc, mn;
      scale_min_k4(g, w + 4, sc, mn);
      int32_t s = 0, xs = 0;
      for (int l = 0; l < 32; ++l) {
        s += ((qs[32 * (g / 2) + l] >> (4 * (g % 2))) & 0x0F) * static_cast<int32_t>(x[32 * g + l]);
        xs += x[32 * g + l];
      }
      isum += sc * s;
      msum += mn * xs;
    }
    acc += (half_at(w) * d[sb]) * static_cast<float>(isum);
    mins += (half_at(w + 2) * d[sb]) * static_cast<float>(msum);
  }
  return acc - mins;
}

// Sixteen groups of 16 with signed 8-bit scales; quants 0..63 with offset 32.
float dot_q6_k_portable(const uint8_t* w, const int8_t* q, const float* d, const int16_t*, int64_t cols) {
  float acc = 0;
  for (int64_t sb = 0; sb < cols / 256; ++sb, w += 210) {
    const int8_t* sc = reinterpret_cast<const int8_t*>(w + 192);
    int32_t isum = 0;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = w + 64 * h;
      const uint8_t* qh = w + 128 + 32 * h;
      for (int k = 0; k < 4; ++k) {
        const int8_t* x = q + sb * 256 + (4 * h + k) * 32;
        int32_t s[2] = {0, 0};
        for (int l = 0; l < 32; ++l) {
          const int lo = (k & 1) ? ql[l + 32] : ql[l];
          const int q6 = ((k < 2 ? lo & 0x0F : lo >> 4) | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
          s[l / 16] += q6 * static_cast<int32_t>(x[l]);
        }
        isum += sc[8 * h + 2 * k] * s[0] + sc[8 * h + 2 * k + 1] * s[1];
      }
    }
    acc += (half_at(w + 208) * d[sb]) * static_cast<float>(isum);
  }
  return acc;
}

// ---- AVX2 dot kernels ---------------------------------------------------------

KAIVAL_QAVX2_INLINE float hsum(__m256 v) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

KAIVAL_QAVX2_INLINE float half_avx2(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// Eight int32 sums of products of signed bytes. maddubs multiplies unsigned
// by signed bytes, so the weight's sign moves onto the activation; pair sums
// stay below 2 * 128 * 127, no saturation.
KAIVAL_QAVX2_INLINE __m256i dot_i8(__m256i w, __m256i x) {
  const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
  return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// The AVX2 kernels take one packed weight row and N (1..4) activation rows
// (row i at q + i * cols, d + i * cols / B, bsum + i * cols / 16) and write out[i * os].
// The weight row is loaded and unpacked once per block and dotted with every
// activation row while both are in registers. Each activation row has its
// own accumulators and goes through the same instructions in the same order
// for every N, so a row's result does not depend on its neighbours.

// The eight 6-bit scales (or mins) of a Q4_K super-block as bytes of a
// uint64, from the 12-byte packing read as three little-endian words: a holds
// scales 0..3 (low 6 bits) and the top bits of scales 4..7, b the same for
// the mins, c the low nibbles of scales 4..7 and mins 4..7.
inline void k4_scales_mins(const uint8_t* s, uint64_t& scales, uint64_t& mins) {
  uint32_t a, b, c;
  std::memcpy(&a, s, 4);
  std::memcpy(&b, s + 4, 4);
  std::memcpy(&c, s + 8, 4);
  const uint32_t sc_lo = a & 0x3F3F3F3Fu, mn_lo = b & 0x3F3F3F3Fu;
  const uint32_t sc_hi = (c & 0x0F0F0F0Fu) | ((a >> 2) & 0x30303030u);
  const uint32_t mn_hi = ((c >> 4) & 0x0F0F0F0Fu) | ((b >> 2) & 0x30303030u);
  scales = sc_lo | (static_cast<uint64_t>(sc_hi) << 32);
  mins = mn_lo | (static_cast<uint64_t>(mn_hi) << 32);
}

// Any number of activation rows: groups of G (the kernel K's widest form),
// then one call for the rest. Block: the activation block K takes.
template <template <int> class K, int M>
void rows_rest(const uint8_t* w, const int8_t* q, const float* d, const int16_t* bs, int64_t cols, int64_t m,
               float* out, int64_t os) {
  if (m == M) return K<M>::run(w, q, d, bs, cols, out, os);
  if constexpr (M > 1) rows_rest<K, M - 1>(w, q, d, bs, cols, m, out, os);
}

template <template <int> class K, int Block, int G>
void rows_by_group(const uint8_t* w, const int8_t* q, const float* d, const int16_t* bs, int64_t cols, int64_t n,
                   float* out, int64_t os) {
  const int64_t nd = (cols + Block - 1) / Block, ns = cols / kSumGroup;  // the last block may be short
  int64_t t = 0;
  for (; t + G <= n; t += G) K<G>::run(w, q + t * cols, d + t * nd, bs + t * ns, cols, out + t * os, os);
  if (t < n) rows_rest<K, G - 1>(w, q + t * cols, d + t * nd, bs + t * ns, cols, n - t, out + t * os, os);
}

// A weight block of 32 as signed bytes.
template <class B>
KAIVAL_QAVX2_INLINE __m256i block_avx2(const uint8_t* w) {
  if constexpr (std::is_same_v<B, Q8Blocks>) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2));
  } else {
    const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2));
    return _mm256_sub_epi8(_mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(raw, 4), raw), _mm256_set1_epi8(0x0F)),
                           _mm256_set1_epi8(8));
  }
}

template <class B, int N>
KAIVAL_QAVX2 void b32_rows_avx2(const uint8_t* w, const int8_t* q, const float* d, const int16_t*, int64_t cols,
                                float* out, int64_t os) {
  constexpr int64_t kPer = kSuperBlock / 32;
  const int64_t nb = cols / 32, nd = (nb + kPer - 1) / kPer;
  __m256 acc[N];
  for (int i = 0; i < N; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t g = 0; g < nd; ++g) {
    const int64_t end = std::min(nb, (g + 1) * kPer);
    __m256 t0[N], t1[N];  // this activation block's weight-scaled sums
    for (int i = 0; i < N; ++i) t0[i] = t1[i] = _mm256_setzero_ps();
    int64_t b = g * kPer;
    for (; b + 2 <= end; b += 2, w += 2 * B::kBytes) {
      const __m256i w0 = block_avx2<B>(w), w1 = block_avx2<B>(w + B::kBytes);
      const __m256 s0 = _mm256_set1_ps(half_avx2(w)), s1 = _mm256_set1_ps(half_avx2(w + B::kBytes));
      for (int i = 0; i < N; ++i) {
        const int8_t* x = q + i * cols + b * 32;
        const __m256i p0 = dot_i8(w0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
        const __m256i p1 = dot_i8(w1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32)));
        t0[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), s0, t0[i]);
        t1[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), s1, t1[i]);
      }
    }
    if (b < end) {  // an odd last block
      const __m256i w0 = block_avx2<B>(w);
      const __m256 s0 = _mm256_set1_ps(half_avx2(w));
      for (int i = 0; i < N; ++i) {
        const __m256i p = dot_i8(w0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i * cols + b * 32)));
        t0[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), s0, t0[i]);
      }
      w += B::kBytes;
    }
    for (int i = 0; i < N; ++i)
      acc[i] = _mm256_fmadd_ps(_mm256_add_ps(t0[i], t1[i]), _mm256_set1_ps(d[i * nd + g]), acc[i]);
  }
  for (int i = 0; i < N; ++i) out[i * os] = hsum(acc[i]);
}
template <int N>
KAIVAL_QAVX2 void q8_0_rows_avx2(const uint8_t* w, const int8_t* q, const float* d, const int16_t* s, int64_t cols,
                                 float* out, int64_t os) {
  b32_rows_avx2<Q8Blocks, N>(w, q, d, s, cols, out, os);
}
template <int N>
KAIVAL_QAVX2 void q4_0_rows_avx2(const uint8_t* w, const int8_t* q, const float* d, const int16_t* s, int64_t cols,
                                 float* out, int64_t os) {
  b32_rows_avx2<Q4Blocks, N>(w, q, d, s, cols, out, os);
}

// Q4_K against super-block activations: per group g of 32, maddubs gives
// pairs of q4 * x (|.| <= 2 * 15 * 127) and madd multiplies them by sc_g into
// int32 lanes, which add up over the super-block; the mins meet the sums of
// 16 (each min twice) in one madd. Then one F32 multiply-add per super-block
// for each of d * x_d and dmin * x_d.
template <int N>
KAIVAL_QAVX2 void q4_k_rows_avx2(const uint8_t* w, const int8_t* q, const float* d, const int16_t* bs, int64_t cols,
                                 float* out, int64_t os) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const int64_t nsb = cols / 256, ns = cols / kSumGroup;
  __m256 acc[N], macc[N];
  for (int i = 0; i < N; ++i) acc[i] = macc[i] = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb, w += 144) {
    uint64_t scales, mins;
    k4_scales_mins(w + 4, scales, mins);
    const __m256i sc_all =
        _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(scales))));
    const __m128i mn8 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(mins)));
    const __m256i mn16 = _mm256_set_m128i(_mm_unpackhi_epi16(mn8, mn8), _mm_unpacklo_epi16(mn8, mn8));
    const float dw = half_avx2(w), dmin = half_avx2(w + 2);
    __m256i isum[N];
    for (int i = 0; i < N; ++i) isum[i] = _mm256_setzero_si256();
    const uint8_t* qs = w + 16;
    for (int p = 0; p < 4; ++p, qs += 32) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs));
      const __m256i lo = _mm256_and_si256(raw, low4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
      // Scale 2p (2p+1) in every i16 lane: bytes 4p, 4p+1 (4p+2, 4p+3) of sc_all.
      const __m256i sc_lo =
          _mm256_shuffle_epi8(sc_all, _mm256_set1_epi16(static_cast<short>(((4 * p + 1) << 8) | (4 * p))));
      const __m256i sc_hi =
          _mm256_shuffle_epi8(sc_all, _mm256_set1_epi16(static_cast<short>(((4 * p + 3) << 8) | (4 * p + 2))));
      for (int i = 0; i < N; ++i) {
        const int8_t* x = q + i * cols + sb * 256 + 64 * p;
        const __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
        const __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 32)));
        isum[i] = _mm256_add_epi32(isum[i],
                                   _mm256_add_epi32(_mm256_madd_epi16(p0, sc_lo), _mm256_madd_epi16(p1, sc_hi)));
      }
    }
    for (int i = 0; i < N; ++i) {
      const float dx = d[i * nsb + sb];
      const __m256i ms =
          _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bs + i * ns + sb * 16)), mn16);
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i]), _mm256_set1_ps(dw * dx), acc[i]);
      macc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ms), _mm256_set1_ps(dmin * dx), macc[i]);
    }
  }
  for (int i = 0; i < N; ++i) out[i * os] = hsum(_mm256_sub_ps(acc[i], macc[i]));
}

// Q6_K against super-block activations: maddubs of the unsigned quants
// (0..63, |pair| <= 2 * 63 * 127) times madd by the group-of-16 scales; the
// offset 32 comes off once per super-block as 32 * sum_j sc_j * bsum_j.
template <int N>
KAIVAL_QAVX2 void q6_k_rows_avx2(const uint8_t* w, const int8_t* q, const float* d, const int16_t* bs, int64_t cols,
                                 float* out, int64_t os) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
  const int64_t nsb = cols / 256, ns = cols / kSumGroup;
  __m256 acc[N];
  for (int i = 0; i < N; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb, w += 210) {
    const float dw = half_avx2(w + 208);
    const int8_t* sc = reinterpret_cast<const int8_t*>(w + 192);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc)));
    __m256i isum[N];
    for (int i = 0; i < N; ++i) isum[i] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 128 + 32 * h));
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 64 * h));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 64 * h + 32));
      // 16-bit shifts leak bits across bytes; the masks drop them.
      const __m256i wq[4] = {
          _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), bits45)),
          _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_and_si256(hb, bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                          _mm256_and_si256(_mm256_srli_epi16(hb, 2), bits45)),
      };
      for (int k = 0; k < 4; ++k) {
        // Low 128-bit lane: first group of 16 (scale sc[2k]); high lane: second.
        const __m256i scales =
            _mm256_set_m128i(_mm_set1_epi16(sc[8 * h + 2 * k + 1]), _mm_set1_epi16(sc[8 * h + 2 * k]));
        for (int i = 0; i < N; ++i) {
          const __m256i x =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i * cols + sb * 256 + (4 * h + k) * 32));
          isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(_mm256_maddubs_epi16(wq[k], x), scales));
        }
      }
    }
    for (int i = 0; i < N; ++i) {
      const __m256i off =
          _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bs + i * ns + sb * 16)), sc16);
      const __m256i total = _mm256_sub_epi32(isum[i], _mm256_slli_epi32(off, 5));
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_set1_ps(dw * d[i * nsb + sb]), acc[i]);
    }
  }
  for (int i = 0; i < N; ++i) out[i * os] = hsum(acc[i]);
}

// Entry points per type and level: NAME_all_LEVEL (a RowsFn, any n) and
// NAME_one_LEVEL (the one-row DotFn), both over NAME_rows_LEVEL<N>, N up to
// four activation rows per call (eight for the K types at the VNNI level,
// whose 32 registers hold the eight rows' accumulators: the per-super-block
// weight unpacking is then shared by eight rows).
#define KAIVAL_QENTRY(name, level, block, group)                                                              \
  template <int N>                                                                                           \
  struct name##_k_##level {                                                                                  \
    static void run(const uint8_t* w, const int8_t* q, const float* d, const int16_t* s, int64_t c, float* o, \
                    int64_t os) {                                                                            \
      name##_rows_##level<N>(w, q, d, s, c, o, os);                                                          \
    }                                                                                                        \
  };                                                                                                         \
  void name##_all_##level(const uint8_t* w, const int8_t* q, const float* d, const int16_t* s, int64_t c,    \
                          int64_t n, float* o, int64_t os) {                                                 \
    rows_by_group<name##_k_##level, block, group>(w, q, d, s, c, n, o, os);                                  \
  }                                                                                                          \
  float name##_one_##level(const uint8_t* w, const int8_t* q, const float* d, const int16_t* s, int64_t c) { \
    float o;                                                                                                 \
    name##_rows_##level<1>(w, q, d, s, c, &o, 1);                                                            \
    return o;                                                                                                \
  }
KAIVAL_QENTRY(q8_0, avx2, 256, 4)
KAIVAL_QENTRY(q4_0, avx2, 256, 4)
KAIVAL_QENTRY(q4_k, avx2, 256, 4)
KAIVAL_QENTRY(q6_k, avx2, 256, 4)

// AVX-512 VNNI level: 512-bit registers (two blocks of 32 per instruction);
// vpdpbusd instead of maddubs + madd for Q8_0 / Q4_0, vpdpwssd instead of
// madd + add for the K types. Same integer products as the AVX2 level; the
// F32 additions are grouped differently, so results differ from AVX2 by F32
// rounding, and are again the same for every N.
#define KAIVAL_QVNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define KAIVAL_QVNNI_INLINE \
  inline __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"), always_inline))

KAIVAL_QVNNI_INLINE __m256i dot_i8_vnni(__m256i w, __m256i x) {
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
}

// The K kernels at the VNNI level multiply weight and activation bytes with
// vpdpbusd (int32 lanes of four products each, |.| <= 4 * 63 * 127 < 2^15),
// pack two such results to int16 (vpackssdw, no saturation) and multiply
// those by the sub-block scales with vpmaddwd / vpdpwssd into the
// super-block's int32 sums: six multiply instructions per 256 products and
// row. vpackssdw interleaves its inputs per 128-bit lane (lane k holds lanes
// 4k..4k+3 of a, then of b), so the scale vectors follow that order.
//
// kK4PackIdx[u]: for a = groups g0 (lanes 0-7) and g0 + 1 (8-15), b = groups
// g0 + 2, g0 + 3, with g0 = 4u (Q4_K, groups of 32): the group of each i16
// lane after the pack.
alignas(64) constexpr int16_t kK4PackIdx[2][32] = {
    {0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2, 1, 1, 1, 1, 3, 3, 3, 3, 1, 1, 1, 1, 3, 3, 3, 3},
    {4, 4, 4, 4, 6, 6, 6, 6, 4, 4, 4, 4, 6, 6, 6, 6, 5, 5, 5, 5, 7, 7, 7, 7, 5, 5, 5, 5, 7, 7, 7, 7},
};
// Q6_K (groups of 16): a = groups 8u..8u+3 (four lanes each), b = 8u+4..8u+7.
alignas(64) constexpr int16_t kK6PackIdx[2][32] = {
    {0, 0, 0, 0, 4, 4, 4, 4, 1, 1, 1, 1, 5, 5, 5, 5, 2, 2, 2, 2, 6, 6, 6, 6, 3, 3, 3, 3, 7, 7, 7, 7},
    {8, 8, 8, 8, 12, 12, 12, 12, 9, 9, 9, 9, 13, 13, 13, 13,
     10, 10, 10, 10, 14, 14, 14, 14, 11, 11, 11, 11, 15, 15, 15, 15},
};

// Q4_K at the VNNI level: one weight row against up to 8 activation rows per
// super-block. For activation row i, isum_i (16 int32 lanes: the products
// of pair p of groups by the sub-block scales, as vpdpbusd + vpackssdw +
// vpmaddwd / vpdpwssd give them) is reduced to the super-block's exact
// integer total S_i, the eight rows' totals side by side in one 256-bit
// register (lane i = row i; a transposing add tree, three 512-bit
// operations per row); the minimum term M_i = sum_g mn_g * sum(x of group g)
// likewise, by four vpdpwssd per weight super-block for all eight rows from
// the activations' group sums laid out row-major per group pair
// (K4Acts). Then per super-block and weight row one F32 multiply-add each
// for all eight rows: s_i += S_i * (d * x_d_i), m_i += M_i * (dmin * x_d_i),
// and the result is s_i - m_i. Each lane's F32 operations are the same
// whatever the number of rows or the row's lane, so a row's result does not
// depend on its neighbours (lanes of absent rows hold zeros).
//
// Activation side, prepared once per group of up to 8 activation rows and
// chunk of super-blocks and shared by all weight rows of a tile.
constexpr int64_t kK4Chunk = 32;  // super-blocks per prepared chunk
constexpr int kK4Rows = 8;        // activation rows per pass over a weight row
constexpr int64_t kK4TileRows = 32;  // weight rows sharing one preparation of the activation side
struct K4Acts {
  alignas(32) int32_t gs[kK4Chunk][4][kK4Rows];  // [sb][pair h][row]: int16 sums of groups 2h, 2h+1
  alignas(32) float dx[kK4Chunk][kK4Rows];       // [sb][row]: the row's activation scale
};

KAIVAL_QVNNI void k4_prepare(K4Acts& a, const float* d, const int16_t* bs, int64_t nsb, int64_t ns, int64_t sb0,
                             int64_t nch, int n) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t s = 0; s < nch; ++s) {
    for (int half = 0; half < 2; ++half) {
      __m128i p[4];
      for (int r = 0; r < 4; ++r) {
        const int i = 4 * half + r;
        if (i >= n) {  // absent rows: zeros
          p[r] = _mm_setzero_si128();
          continue;
        }
        // Group sums g0..g7 (|.| <= 32 * 127) as int16: int32 element h = (g_2h, g_2h+1).
        const __m256i g = _mm256_madd_epi16(
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bs + i * ns + (sb0 + s) * 16)), ones);
        p[r] = _mm_packs_epi32(_mm256_castsi256_si128(g), _mm256_extracti128_si256(g, 1));
      }
      // 4 x 4 transpose: rows r of p become lanes r of gs[s][h].
      const __m128i t0 = _mm_unpacklo_epi32(p[0], p[1]), t1 = _mm_unpacklo_epi32(p[2], p[3]);
      const __m128i t2 = _mm_unpackhi_epi32(p[0], p[1]), t3 = _mm_unpackhi_epi32(p[2], p[3]);
      _mm_store_si128(reinterpret_cast<__m128i*>(&a.gs[s][0][4 * half]), _mm_unpacklo_epi64(t0, t1));
      _mm_store_si128(reinterpret_cast<__m128i*>(&a.gs[s][1][4 * half]), _mm_unpackhi_epi64(t0, t1));
      _mm_store_si128(reinterpret_cast<__m128i*>(&a.gs[s][2][4 * half]), _mm_unpacklo_epi64(t2, t3));
      _mm_store_si128(reinterpret_cast<__m128i*>(&a.gs[s][3][4 * half]), _mm_unpackhi_epi64(t2, t3));
    }
    for (int i = 0; i < kK4Rows; ++i) a.dx[s][i] = i < n ? d[i * nsb + sb0 + s] : 0.0f;
  }
}

// Rows a and b (16 lanes each) to one vector whose 128-bit chunks hold
// [a, b, a, b] partial sums; then four rows' to [r0, r1, r2, r3] per chunk.
KAIVAL_QVNNI_INLINE __m512i k4_red2(__m512i a, __m512i b) {
  return _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
}
KAIVAL_QVNNI_INLINE __m512i k4_red4(__m512i ab, __m512i cd) {
  return _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
}

// One activation row's super-block against the unpacked weights: 16 int32 lanes summing to the exact total.
// scv: the two scale vectors of k4_scale_vectors.
KAIVAL_QVNNI_INLINE __m512i k4_isum(const __m512i* wq, const __m512i* scv, const int8_t* x) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i h0 = _mm512_packs_epi32(_mm512_dpbusd_epi32(zero, wq[0], _mm512_loadu_si512(x)),
                                        _mm512_dpbusd_epi32(zero, wq[1], _mm512_loadu_si512(x + 64)));
  const __m512i h1 = _mm512_packs_epi32(_mm512_dpbusd_epi32(zero, wq[2], _mm512_loadu_si512(x + 128)),
                                        _mm512_dpbusd_epi32(zero, wq[3], _mm512_loadu_si512(x + 192)));
  return _mm512_dpwssd_epi32(_mm512_madd_epi16(h0, scv[0]), h1, scv[1]);
}

// The sub-block scales as the two i16 vectors k4_isum takes (kK4PackIdx order).
KAIVAL_QVNNI_INLINE void k4_scale_vectors(uint64_t scales, __m512i* scv) {
  const __m512i sc8 =
      _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(scales))));
  scv[0] = _mm512_permutexvar_epi16(_mm512_load_si512(kK4PackIdx[0]), sc8);
  scv[1] = _mm512_permutexvar_epi16(_mm512_load_si512(kK4PackIdx[1]), sc8);
}

// Exact super-block totals of rows 0..N-1 (N <= 8, row i at x + i * cols) in lanes 0..N-1, zeros above
// (any order of integer adds gives the same totals).
template <int N>
KAIVAL_QVNNI_INLINE __m256i k4_totals(const __m512i* wq, const __m512i* scv, const int8_t* x,
                                      int64_t cols) {
  const __m512i zero = _mm512_setzero_si512();
  const auto isum = [&](int i) __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"))) {
    return i < N ? k4_isum(wq, scv, x + i * cols) : zero;
  };
  if constexpr (N == 1) {
    const __m512i v = isum(0);
    const __m256i f = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
    __m128i g = _mm_add_epi32(_mm256_castsi256_si128(f), _mm256_extracti128_si256(f, 1));
    g = _mm_add_epi32(g, _mm_unpackhi_epi64(g, g));
    g = _mm_add_epi32(g, _mm_srli_epi64(g, 32));
    return _mm256_zextsi128_si256(_mm_cvtsi32_si128(_mm_cvtsi128_si32(g)));
  } else {
    const __m512i r03 = k4_red4(k4_red2(isum(0), isum(1)), N > 2 ? k4_red2(isum(2), isum(3)) : zero);
    if constexpr (N > 4) {
      const __m512i r47 = k4_red4(k4_red2(isum(4), isum(5)), N > 6 ? k4_red2(isum(6), isum(7)) : zero);
      // [r03 c0, c1, r47 c0, c1] + [r03 c2, c3, r47 c2, c3], then chunks reordered to [0, 2, 1, 3].
      __m512i v = _mm512_add_epi32(_mm512_shuffle_i64x2(r03, r47, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_i64x2(r03, r47, _MM_SHUFFLE(3, 2, 3, 2)));
      v = _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0));
      return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
    } else {
      const __m256i f = _mm256_add_epi32(_mm512_castsi512_si256(r03), _mm512_extracti64x4_epi64(r03, 1));
      return _mm256_zextsi128_si256(_mm_add_epi32(_mm256_castsi256_si128(f), _mm256_extracti128_si256(f, 1)));
    }
  }
}

// One weight row (from super-block sb0, nch of them) against N <= 8 activation rows.
template <int N>
KAIVAL_QVNNI void q4_k_chunk_vnni(const uint8_t* w, const int8_t* q, int64_t cols, const K4Acts& a, int64_t nch,
                                  __m256& accs, __m256& accm) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int64_t s = 0; s < nch; ++s, w += 144, q += 256) {
    uint64_t scales, mins;
    k4_scales_mins(w + 4, scales, mins);
    __m512i scv[2];
    k4_scale_vectors(scales, scv);
    // Minimum term of all rows: lane i += gs[h][i] . (mn_2h, mn_2h+1).
    const __m256i mn8 =
        _mm256_castsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(mins))));
    __m256i msum = _mm256_setzero_si256();
    for (int h = 0; h < 4; ++h)
      msum = _mm256_dpwssd_epi32(msum, _mm256_load_si256(reinterpret_cast<const __m256i*>(a.gs[s][h])),
                                 _mm256_permutevar8x32_epi32(mn8, _mm256_set1_epi32(h)));
    __m512i wq[4];
    for (int p = 0; p < 4; ++p) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 16 + 32 * p));
      wq[p] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(raw, low4)),
                                 _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4), 1);
    }
    const __m256i tot = k4_totals<N>(wq, scv, q, cols);
    const __m256 dxv = _mm256_load_ps(a.dx[s]);
    accs = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_mul_ps(_mm256_set1_ps(half_avx2(w)), dxv), accs);
    accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(_mm256_set1_ps(half_avx2(w + 2)), dxv), accm);
  }
}

// One weight row against one activation row (decode): the same integers S and M and the same F32
// operations as one lane of q4_k_chunk_vnni, without the prepared activation side.
KAIVAL_QVNNI void q4_k_chunk1_vnni(const uint8_t* w, const int8_t* q, const float* d, const int16_t* bs,
                                   int64_t nch, float& accs, float& accm) {
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m128 acc = _mm_setr_ps(accs, accm, 0, 0);  // lane 0: the S sum, lane 1: the M sum
  for (int64_t s = 0; s < nch; ++s, w += 144, q += 256, bs += 16) {
    uint64_t scales, mins;
    k4_scales_mins(w + 4, scales, mins);
    __m512i scv[2];
    k4_scale_vectors(scales, scv);
    const __m128i mn8 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(mins)));
    const __m256i mn16 = _mm256_set_m128i(_mm_unpackhi_epi16(mn8, mn8), _mm_unpacklo_epi16(mn8, mn8));
    __m512i wq[4];
    for (int p = 0; p < 4; ++p) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 16 + 32 * p));
      wq[p] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(raw, low4)),
                                 _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4), 1);
    }
    const __m512i v = k4_isum(wq, scv, q);
    const __m256i sv = _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
    const __m256i mv = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bs)), mn16);
    // Lanes [S, M] (exact totals): pairwise adds of S's and M's eight lanes.
    const __m256i h = _mm256_hadd_epi32(sv, mv);  // [S01 S23 M01 M23 | S45 S67 M45 M67]
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    t = _mm_hadd_epi32(t, t);  // [S, M, S, M]
    const __m128 scale = _mm_mul_ps(_mm_setr_ps(half_avx2(w), half_avx2(w + 2), 0, 0), _mm_set1_ps(d[s]));
    acc = _mm_fmadd_ps(_mm_cvtepi32_ps(t), scale, acc);
  }
  accs = _mm_cvtss_f32(acc);
  accm = _mm_cvtss_f32(_mm_movehdup_ps(acc));
}

template <int M>
void q4_k_chunk_rest(const uint8_t* w, const int8_t* q, int64_t cols, const K4Acts& a, int64_t nch, int m,
                     __m256& accs, __m256& accm) {
  if (m == M) return q4_k_chunk_vnni<M>(w, q, cols, a, nch, accs, accm);
  if constexpr (M > 1) q4_k_chunk_rest<M - 1>(w, q, cols, a, nch, m, accs, accm);
}

// nw weight rows (w + j * rb) x n activation rows; out[t * os + j].
KAIVAL_QVNNI void q4_k_tile_vnni(const uint8_t* w, size_t rb, int64_t nw, const int8_t* q, const float* d,
                                 const int16_t* bs, int64_t cols, int64_t n, float* out, int64_t os) {
  const int64_t nsb = cols / 256, ns = cols / kSumGroup;
  K4Acts acts;
  for (int64_t t = 0; t < n; t += kK4Rows) {
    const int tn = static_cast<int>(std::min<int64_t>(kK4Rows, n - t));
    const int8_t* qt = q + t * cols;
    const float* dt = d + t * nsb;
    const int16_t* bt = bs + t * ns;
    for (int64_t j0 = 0; j0 < nw; j0 += kK4TileRows) {  // accumulators of kK4TileRows weight rows kept across chunks
      const int64_t j1 = std::min(nw, j0 + kK4TileRows);
      if (tn == 1) {
        for (int64_t j = j0; j < j1; ++j) {
          float s1 = 0, m1 = 0;
          q4_k_chunk1_vnni(w + static_cast<size_t>(j) * rb, qt, dt, bt, nsb, s1, m1);
          out[t * os + j] = s1 - m1;
        }
        continue;
      }
      __m256 accs[kK4TileRows], accm[kK4TileRows];
      for (int64_t j = j0; j < j1; ++j) accs[j - j0] = accm[j - j0] = _mm256_setzero_ps();
      for (int64_t sb0 = 0; sb0 < nsb; sb0 += kK4Chunk) {
        const int64_t nch = std::min(kK4Chunk, nsb - sb0);
        k4_prepare(acts, dt, bt, nsb, ns, sb0, nch, tn);
        for (int64_t j = j0; j < j1; ++j) {
          const uint8_t* wj = w + static_cast<size_t>(j) * rb + static_cast<size_t>(sb0) * 144;
          if (tn == kK4Rows)
            q4_k_chunk_vnni<kK4Rows>(wj, qt + sb0 * 256, cols, acts, nch, accs[j - j0], accm[j - j0]);
          else
            q4_k_chunk_rest<kK4Rows - 1>(wj, qt + sb0 * 256, cols, acts, nch, tn, accs[j - j0], accm[j - j0]);
        }
      }
      for (int64_t j = j0; j < j1; ++j) {
        alignas(32) float s[kK4Rows], m[kK4Rows];
        _mm256_store_ps(s, accs[j - j0]);
        _mm256_store_ps(m, accm[j - j0]);
        for (int i = 0; i < tn; ++i) out[(t + i) * os + j] = s[i] - m[i];
      }
    }
  }
}

void q4_k_all_vnni(const uint8_t* w, const int8_t* q, const float* d, const int16_t* s, int64_t c, int64_t n,
                   float* o, int64_t os) {
  q4_k_tile_vnni(w, 0, 1, q, d, s, c, n, o, os);
}
float q4_k_one_vnni(const uint8_t* w, const int8_t* q, const float* d, const int16_t* s, int64_t c) {
  float o;
  q4_k_tile_vnni(w, 0, 1, q, d, s, c, 1, &o, 1);
  return o;
}

// Lanes 0-7 = a, lanes 8-15 = b.
KAIVAL_QVNNI_INLINE __m512 pair_ps(float a, float b) {
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm256_set1_ps(a))),
                                             _mm256_castps_pd(_mm256_set1_ps(b)), 1));
}

KAIVAL_QVNNI_INLINE float hsum_zmm(__m512 v) {
  const __m256 lo = _mm512_castps512_ps256(v);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  return hsum(_mm256_add_ps(lo, hi));
}

// Q8_0 / Q4_0 at the VNNI level: two blocks per 512-bit register (lanes
// 0-7 block b, 8-15 block b+1), each scaled by its own weight scale; an odd
// last block goes through the 256-bit form.
//
// The sign moves onto the weight side once per weight block instead of once
// per activation row: vpdpbusd multiplies x + 128 (unsigned, flipped sign
// bit) by the signed weights, starting from -128 * (the lane's four weights'
// sum), which leaves exactly the lane's sum of x * w. The activations come in
// blocks of 256 (see dot_b32_portable): per step and row one vpdpbusd,
// convert and multiply-add by the weight scales, and one multiply-add by the
// activation scale per eight weight blocks. Without the former per-step
// multiply w_d * x_d the Q8_0 kernel runs ~1.6x as fast here (Zen 4;
// bench/RESULTS.md).
template <class B, int N, bool Flipped = false>
KAIVAL_QVNNI void b32_rows_vnni(const uint8_t* w, const int8_t* q, const float* d, const int16_t*, int64_t cols,
                                float* out, int64_t os) {
  constexpr int64_t kPer = kSuperBlock / 32;
  const int64_t nb = cols / 32, nd = (nb + kPer - 1) / kPer;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512 acc[N];
  for (int i = 0; i < N; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t g = 0; g < nd; ++g) {
    const int64_t end = std::min(nb, (g + 1) * kPer);
    __m512 t[N];  // this activation block's weight-scaled sums
    for (int i = 0; i < N; ++i) t[i] = _mm512_setzero_ps();
    int64_t b = g * kPer;
    for (; b + 2 <= end; b += 2, w += 2 * B::kBytes) {
      const __m512i wz = _mm512_inserti64x4(_mm512_castsi256_si512(block_avx2<B>(w)), block_avx2<B>(w + B::kBytes), 1);
      // |128 * sum of four weights| <= 2^16: no overflow.
      const __m512i base =
          _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), flip, wz));
      const __m512 ws = pair_ps(half_avx2(w), half_avx2(w + B::kBytes));
      for (int i = 0; i < N; ++i) {
        const __m512i xl = _mm512_loadu_si512(q + i * cols + b * 32);
        const __m512i xu = Flipped ? xl : _mm512_xor_si512(xl, flip);
        t[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_dpbusd_epi32(base, xu, wz)), ws, t[i]);
      }
    }
    if (b < end) {  // an odd last block, in lanes 0-7
      const __m256i w0 = block_avx2<B>(w);
      const __m512 s0 = _mm512_set1_ps(half_avx2(w));
      for (int i = 0; i < N; ++i) {
        __m256i xl = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i * cols + b * 32));
        if (Flipped) xl = _mm256_xor_si256(xl, _mm512_castsi512_si256(flip));  // signed again, as dot_i8_vnni takes
        const __m256i p = dot_i8_vnni(w0, xl);
        t[i] = _mm512_fmadd_ps(_mm512_zextps256_ps512(_mm256_cvtepi32_ps(p)), s0, t[i]);
      }
      w += B::kBytes;
    }
    for (int i = 0; i < N; ++i) acc[i] = _mm512_fmadd_ps(t[i], _mm512_set1_ps(d[i * nd + g]), acc[i]);
  }
  for (int i = 0; i < N; ++i) out[i * os] = hsum_zmm(acc[i]);
}
template <int N>
KAIVAL_QVNNI void q8_0_rows_vnni(const uint8_t* w, const int8_t* q, const float* d, const int16_t* s, int64_t cols,
                                 float* out, int64_t os) {
  b32_rows_vnni<Q8Blocks, N>(w, q, d, s, cols, out, os);
}
template <int N>
KAIVAL_QVNNI void q4_0_rows_vnni(const uint8_t* w, const int8_t* q, const float* d, const int16_t* s, int64_t cols,
                                 float* out, int64_t os) {
  b32_rows_vnni<Q4Blocks, N>(w, q, d, s, cols, out, os);
}

// Q6_K at the VNNI level: blocks k, k+1 of a half super-block per 512-bit
// register (unsigned quants 0..63) against 64 activation bytes per
// vpdpbusd, packed and multiplied by the groups-of-16 scales as above; the
// offset 32 comes off once per super-block (32 * sum_j sc_j * bsum_j).
template <int N>
KAIVAL_QVNNI void q6_k_rows_vnni(const uint8_t* w, const int8_t* q, const float* d, const int16_t* bs, int64_t cols,
                                 float* out, int64_t os) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
  const __m512i idx0 = _mm512_load_si512(kK6PackIdx[0]), idx1 = _mm512_load_si512(kK6PackIdx[1]);
  const int64_t nsb = cols / 256, ns = cols / kSumGroup;
  __m256 acc[N];
  for (int i = 0; i < N; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t sb = 0; sb < nsb; ++sb, w += 210) {
    const float dw = half_avx2(w + 208);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 192)));
    const __m512i scv0 = _mm512_permutexvar_epi16(idx0, _mm512_castsi256_si512(sc16));
    const __m512i scv1 = _mm512_permutexvar_epi16(idx1, _mm512_castsi256_si512(sc16));
    __m512i wz[4];  // j = 2h + k/2: blocks 4h+k, 4h+k+1 (activation bytes 64j..64j+63, groups 4j..4j+3)
    for (int h = 0; h < 2; ++h) {
      const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 128 + 32 * h));
      const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 64 * h));
      const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 64 * h + 32));
      const __m256i wq[4] = {
          _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), bits45)),
          _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_and_si256(hb, bits45)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                          _mm256_and_si256(_mm256_srli_epi16(hb, 2), bits45)),
      };
      wz[2 * h] = _mm512_inserti64x4(_mm512_castsi256_si512(wq[0]), wq[1], 1);
      wz[2 * h + 1] = _mm512_inserti64x4(_mm512_castsi256_si512(wq[2]), wq[3], 1);
    }
    const __m512i zero = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int i = 0; i < N; ++i) {
      const int8_t* x = q + i * cols + sb * 256;
      const __m512i h0 = _mm512_packs_epi32(_mm512_dpbusd_epi32(zero, wz[0], _mm512_loadu_si512(x)),
                                            _mm512_dpbusd_epi32(zero, wz[1], _mm512_loadu_si512(x + 64)));
      const __m512i h1 = _mm512_packs_epi32(_mm512_dpbusd_epi32(zero, wz[2], _mm512_loadu_si512(x + 128)),
                                            _mm512_dpbusd_epi32(zero, wz[3], _mm512_loadu_si512(x + 192)));
      const __m512i isum = _mm512_dpwssd_epi32(_mm512_madd_epi16(h0, scv0), h1, scv1);
      const __m256i off =
          _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bs + i * ns + sb * 16)), sc16);
      const __m256i total =
          _mm256_sub_epi32(_mm256_add_epi32(_mm512_castsi512_si256(isum), _mm512_extracti64x4_epi64(isum, 1)),
                           _mm256_slli_epi32(off, 5));
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_set1_ps(dw * d[i * nsb + sb]), acc[i]);
    }
  }
  for (int i = 0; i < N; ++i) out[i * os] = hsum(acc[i]);
}

KAIVAL_QENTRY(q8_0, vnni, 256, 8)
KAIVAL_QENTRY(q4_0, vnni, 256, 8)
// The same kernels on flipped activations (rows_kernel_flipped).
template <class B>
struct B32Flipped {
  template <int N>
  struct K {
    static void run(const uint8_t* w, const int8_t* q, const float* d, const int16_t* s, int64_t c, float* o,
                    int64_t os) {
      b32_rows_vnni<B, N, true>(w, q, d, s, c, o, os);
    }
  };
  static void all(const uint8_t* w, const int8_t* q, const float* d, const int16_t* s, int64_t c, int64_t n,
                  float* o, int64_t os) {
    rows_by_group<K, kSuperBlock, 8>(w, q, d, s, c, n, o, os);
  }
};
KAIVAL_QENTRY(q6_k, vnni, 256, 8)

#undef KAIVAL_QENTRY

// The portable multi-row kernel is the one-row kernel per row (it defines
// the semantics; speed comes from the AVX2 level).
template <DotFn F, int Block>
void portable_rows(const uint8_t* w, const int8_t* q, const float* d, const int16_t* bs, int64_t cols, int64_t n,
                   float* out, int64_t os) {
  const int64_t nd = (cols + Block - 1) / Block, ns = cols / kSumGroup;  // the last block may be short
  for (int64_t t = 0; t < n; ++t) out[t * os] = F(w, q + t * cols, d + t * nd, bs + t * ns, cols);
}

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

bool cpu_has_vnni() {
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

void require_isa(Isa isa) {
  if (isa == Isa::Avx2 && !cpu_has_avx2()) throw UnsupportedError("q8 dot", "this CPU has no AVX2+FMA+F16C");
  if (isa == Isa::Avx512Vnni && !cpu_has_vnni())
    throw UnsupportedError("q8 dot", "this CPU has no AVX-512 BW+VL+VNNI");
}

}  // namespace

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx2: return "avx2";
    case Isa::Avx512Vnni: return "avx512vnni";
    default: return "portable";
  }
}

std::vector<Isa> isas() {
  std::vector<Isa> out{Isa::Portable};
  if (cpu_has_avx2()) out.push_back(Isa::Avx2);
  if (cpu_has_vnni()) out.push_back(Isa::Avx512Vnni);
  return out;
}

Isa best_isa() {
  static const Isa isa = isas().back();  // immutable once chosen
  return isa;
}

bool supported(weights::DType t) {
  return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_K || t == DType::Q6_K;
}

int64_t activation_block(weights::DType t) {
  return supported(t) ? kSuperBlock : kBlock;
}

DotFn kernel(Isa isa, weights::DType type) {
  if (isa == Isa::Avx512Vnni) {
    switch (type) {
      case DType::Q8_0: return q8_0_one_vnni;
      case DType::Q4_0: return q4_0_one_vnni;
      case DType::Q4_K: return q4_k_one_vnni;
      case DType::Q6_K: return q6_k_one_vnni;
      default: return nullptr;
    }
  }
  const bool avx2 = isa == Isa::Avx2;
  switch (type) {
    case DType::Q8_0: return avx2 ? q8_0_one_avx2 : dot_q8_0_portable;
    case DType::Q4_0: return avx2 ? q4_0_one_avx2 : dot_q4_0_portable;
    case DType::Q4_K: return avx2 ? q4_k_one_avx2 : dot_q4_k_portable;
    case DType::Q6_K: return avx2 ? q6_k_one_avx2 : dot_q6_k_portable;
    default: return nullptr;
  }
}

RowsFn rows_kernel(Isa isa, weights::DType type) {
  if (isa == Isa::Avx512Vnni) {
    switch (type) {
      case DType::Q8_0: return q8_0_all_vnni;
      case DType::Q4_0: return q4_0_all_vnni;
      case DType::Q4_K: return q4_k_all_vnni;
      case DType::Q6_K: return q6_k_all_vnni;
      default: return nullptr;
    }
  }
  const bool avx2 = isa == Isa::Avx2;
  switch (type) {
    case DType::Q8_0: return avx2 ? q8_0_all_avx2 : portable_rows<dot_q8_0_portable, 256>;
    case DType::Q4_0: return avx2 ? q4_0_all_avx2 : portable_rows<dot_q4_0_portable, 256>;
    case DType::Q4_K: return avx2 ? q4_k_all_avx2 : portable_rows<dot_q4_k_portable, 256>;
    case DType::Q6_K: return avx2 ? q6_k_all_avx2 : portable_rows<dot_q6_k_portable, 256>;
    default: return nullptr;
  }
}

RowsFn rows_kernel_flipped(Isa isa, weights::DType type) {
  if (isa != Isa::Avx512Vnni) return nullptr;
  if (type == DType::Q8_0) return B32Flipped<Q8Blocks>::all;
  if (type == DType::Q4_0) return B32Flipped<Q4Blocks>::all;
  return nullptr;
}

TileFn tile_kernel(Isa isa, weights::DType type) {
  if (isa == Isa::Avx512Vnni && type == DType::Q4_K) return q4_k_tile_vnni;
  return nullptr;
}

void Q8Rows::shape(Isa isa, int64_t n, int64_t cols, int64_t block, bool flipped) {
  if (n < 0 || cols <= 0 || (block != kBlock && block != kSuperBlock) || cols % kBlock != 0)
    fail("q8 activations", "cannot quantize {} rows of {} values in blocks of {}", n, cols, block);
  require_isa(isa);
  n_ = n;
  cols_ = cols;
  block_ = block;
  flipped_ = flipped;
  q_.resize(static_cast<size_t>(n * cols));
  d_.resize(static_cast<size_t>(n * blocks_per_row()));
  bsum_.resize(static_cast<size_t>(n * cols / kSumGroup));
}

void Q8Rows::quantize_rows(Isa isa, const float* x, int64_t begin, int64_t end) {
  if (begin < 0 || end > n_ || begin > end) fail("q8 activations", "rows [{}, {}) of {}", begin, end, n_);
  const auto fn = isa == Isa::Portable ? quantize_portable : quantize_avx2;
  const int64_t m = end - begin, full = cols_ / block_, rest = cols_ % block_, nd = blocks_per_row();
  if (rest == 0) {  // whole blocks: the rows are one run of blocks
    fn(x + begin * cols_, m * full, block_, q_.data() + begin * cols_, d_.data() + begin * nd);
  } else {
    for (int64_t r = begin; r < end; ++r) {
      fn(x + r * cols_, full, block_, q_.data() + r * cols_, d_.data() + r * nd);
      fn(x + r * cols_ + full * block_, 1, rest, q_.data() + r * cols_ + full * block_, d_.data() + r * nd + full);
    }
  }
  group_sums(q_.data() + begin * cols_, m * cols_ / kSumGroup, bsum_.data() + begin * (cols_ / kSumGroup));
  if (flipped_)
    for (int8_t* p = q_.data() + begin * cols_, *e = q_.data() + end * cols_; p < e; ++p)
      *p = static_cast<int8_t>(static_cast<uint8_t>(*p) ^ 0x80u);  // a loop the compiler vectorizes
}

void Q8Rows::quantize(Isa isa, const float* x, int64_t n, int64_t cols, int64_t block, bool flipped) {
  shape(isa, n, cols, block, flipped);
  quantize_rows(isa, x, 0, n);
}

std::vector<float> Q8Rows::dequantized(int64_t row) const {
  std::vector<float> out(static_cast<size_t>(cols_));
  const uint8_t flip = flipped_ ? 0x80 : 0;
  for (int64_t i = 0; i < cols_; ++i)
    out[i] = d(row)[i / block_] * static_cast<float>(static_cast<int8_t>(static_cast<uint8_t>(q(row)[i]) ^ flip));
  return out;
}

float dot(Isa isa, weights::DType type, const uint8_t* w, const Q8Rows& x, int64_t row) {
  const DotFn fn = kernel(isa, type);
  if (!fn) fail("q8 dot", "no integer kernel for {}", weights::dtype_name(type));
  const auto& tr = weights::traits(type);
  if (x.cols() % tr.block_elems != 0)
    fail("q8 dot", "{} values are not whole {} blocks", x.cols(), weights::dtype_name(type));
  if (x.block() != activation_block(type))
    fail("q8 dot", "{} takes activation blocks of {}, not {}", weights::dtype_name(type), activation_block(type),
         x.block());
  if (row < 0 || row >= x.rows()) fail("q8 dot", "row {} of {}", row, x.rows());
  if (x.flipped()) fail("q8 dot", "activations with flipped sign bits are for rows_kernel_flipped only");
  require_isa(isa);
  return fn(w, x.q(row), x.d(row), x.bsum(row), x.cols());
}

}  // namespace kaival::engine::qdot
