#pragma once
// Scalar conversions between the float formats found in checkpoints.
#include <cstdint>
#include <cstring>

namespace kaival {

inline float f32_from_bits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline uint32_t bits_from_f32(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

inline float bf16_to_f32(uint16_t h) { return f32_from_bits(static_cast<uint32_t>(h) << 16); }

// Round-to-nearest-even; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t b = bits_from_f32(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((b >> 16) | 0x40);
  b += 0x7fffu + ((b >> 16) & 1u);
  return static_cast<uint16_t>(b >> 16);
}

// IEEE binary16 -> binary32, exact for all inputs including subnormals.
inline float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      mant &= 0x3ffu;
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + (127 - 15)) << 23) | (mant << 13);
  }
  return f32_from_bits(bits);
}

// binary32 -> binary16 with round-to-nearest-even.
inline uint16_t f32_to_f16(float f) {
  uint32_t b = bits_from_f32(f);
  uint32_t sign = (b >> 16) & 0x8000u;
  uint32_t absb = b & 0x7fffffffu;
  if (absb > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (absb >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (absb < 0x38800000u) {  // subnormal or zero in half
    if (absb < 0x33000000u) return static_cast<uint16_t>(sign);
    uint32_t e = absb >> 23;
    uint32_t m = (absb & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e;  // half subnormal unit is 2^-24
    uint32_t r = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (r & 1u))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = absb + 0xc8000fffu + ((absb >> 13) & 1u);  // rebias (-112<<23) and round
  return static_cast<uint16_t>(sign | (r >> 13));
}

// OCP FP8 E4M3 (fn: no infinities, 0x7f/0xff are NaN) -> f32.
inline float f8e4m3_to_f32(uint8_t v) {
  uint32_t sign = static_cast<uint32_t>(v & 0x80u) << 24;
  uint32_t exp = (v >> 3) & 0xfu;
  uint32_t mant = v & 0x7u;
  if (exp == 0xf && mant == 0x7) return f32_from_bits(sign | 0x7fc00000u);
  if (exp == 0) {
    float r = static_cast<float>(mant) * (1.0f / 512.0f);  // 2^-6 * m/8
    return sign ? -r : r;
  }
  return f32_from_bits(sign | ((exp + 127 - 7) << 23) | (mant << 20));
}

// OCP FP8 E5M2 (IEEE-like, has inf/NaN) -> f32: it is the top byte of an f16.
inline float f8e5m2_to_f32(uint8_t v) { return f16_to_f32(static_cast<uint16_t>(v) << 8); }

}  // namespace kaival
