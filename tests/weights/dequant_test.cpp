// Dequantization against an independent reference: testdata/dequant/<TYPE>.bin
// holds random valid blocks and <TYPE>.f32 the values computed by
// tools/gen_dequant_ref.py (numpy, written from the ggml block layouts). Both
// sides do the same float32 operations in the same order without FMA, so the
// comparison is exact: tolerance 0 ulp (NaN matches any NaN).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/numeric.h"
#include "weights/checkpoint.h"
#include "weights/dequant.h"

namespace kaival::weights {
namespace {

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<float> read_floats(const std::string& path) {
  std::vector<uint8_t> b = read_bytes(path);
  std::vector<float> f(b.size() / 4);
  std::memcpy(f.data(), b.data(), f.size() * 4);
  return f;
}

bool same(float a, float b) { return (std::isnan(a) && std::isnan(b)) || bits_from_f32(a) == bits_from_f32(b); }

// Number of elements whose bits differ; reports the first few.
int mismatches(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  int bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (same(got[i], want[i])) continue;
    if (++bad <= 5) ADD_FAILURE() << what << " element " << i << ": got " << got[i] << " want " << want[i];
  }
  return bad;
}

struct RefCase {
  DType type;
  const char* name;
};

const RefCase kRefCases[] = {
    {DType::Q4_0, "Q4_0"}, {DType::Q4_1, "Q4_1"}, {DType::Q5_0, "Q5_0"}, {DType::Q5_1, "Q5_1"},
    {DType::Q8_0, "Q8_0"}, {DType::Q8_1, "Q8_1"}, {DType::Q2_K, "Q2_K"}, {DType::Q3_K, "Q3_K"},
    {DType::Q4_K, "Q4_K"}, {DType::Q5_K, "Q5_K"}, {DType::Q6_K, "Q6_K"}, {DType::Q8_K, "Q8_K"},
    {DType::F16, "F16"},   {DType::BF16, "BF16"}, {DType::F8_E4M3, "F8_E4M3"}, {DType::F8_E5M2, "F8_E5M2"},
};

class DequantReference : public ::testing::TestWithParam<RefCase> {};

TEST_P(DequantReference, MatchesNumpyBitForBit) {
  const RefCase& c = GetParam();
  std::string base = std::string(KAIVAL_TESTDATA) + "/dequant/" + c.name;
  std::vector<uint8_t> raw = read_bytes(base + ".bin");
  std::vector<float> want = read_floats(base + ".f32");
  ASSERT_FALSE(want.empty());
  const DTypeTraits& tr = traits(c.type);
  ASSERT_EQ(want.size() % tr.block_elems, 0u);
  ASSERT_EQ(raw.size(), *byte_size(c.type, want.size()));

  std::vector<float> got(want.size(), -12345.0f);
  dequantize(c.type, raw.data(), static_cast<int64_t>(want.size()), got.data());
  EXPECT_EQ(mismatches(got, want, std::string(c.name) + " dispatched"), 0);

  for (DequantIsa isa : dequantize_isas()) {  // every instruction-set level this CPU runs
    std::vector<float> level(want.size(), -12345.0f);
    dequantize_with(isa, c.type, raw.data(), static_cast<int64_t>(want.size()), level.data());
    EXPECT_EQ(mismatches(level, want, std::string(c.name) + " " + std::string(isa_name(isa))), 0);
  }

  // Block by block (how row blocks are decoded) gives the same values.
  std::vector<float> blockwise(want.size(), -12345.0f);
  for (size_t i = 0; i < want.size(); i += tr.block_elems)
    dequantize(c.type, raw.data() + i / tr.block_elems * tr.block_bytes, tr.block_elems, blockwise.data() + i);
  EXPECT_EQ(mismatches(blockwise, want, std::string(c.name) + " blockwise"), 0);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, DequantReference, ::testing::ValuesIn(kRefCases),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- hand-computed blocks ---------------------------------------------------

void put_half(std::vector<uint8_t>& b, size_t at, uint16_t h) { std::memcpy(b.data() + at, &h, 2); }

std::vector<float> decode(DType t, const std::vector<uint8_t>& b) {
  std::vector<float> y(b.size() / traits(t).block_bytes * traits(t).block_elems);
  dequantize(t, b.data(), static_cast<int64_t>(y.size()), y.data());
  return y;
}

constexpr uint16_t kHalfHalf = 0x3800, kHalfOne = 0x3C00, kHalfTwo = 0x4000, kHalfMinus8 = 0xC800;

TEST(DequantKnown, Q8_0) {
  std::vector<uint8_t> b(34, 0);
  put_half(b, 0, kHalfHalf);
  const int8_t q[] = {-128, -1, 0, 1, 127};
  std::memcpy(b.data() + 2, q, sizeof q);
  auto y = decode(DType::Q8_0, b);
  EXPECT_EQ(y[0], -64.0f);
  EXPECT_EQ(y[1], -0.5f);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_EQ(y[3], 0.5f);
  EXPECT_EQ(y[4], 63.5f);
  EXPECT_EQ(y[31], 0.0f);
}

TEST(DequantKnown, Q4_0NibbleOrder) {
  std::vector<uint8_t> b(18, 0x88);  // all nibbles 8 -> 0
  put_half(b, 0, kHalfTwo);
  b[2] = 0x1F;  // element 0 = 15, element 16 = 1
  auto y = decode(DType::Q4_0, b);
  EXPECT_EQ(y[0], (15 - 8) * 2.0f);
  EXPECT_EQ(y[16], (1 - 8) * 2.0f);
  EXPECT_EQ(y[1], 0.0f);
}

TEST(DequantKnown, Q4_1) {
  std::vector<uint8_t> b(20, 0);
  put_half(b, 0, kHalfOne);
  put_half(b, 2, kHalfMinus8);
  b[4] = 0xF0;  // element 0 = 0, element 16 = 15
  auto y = decode(DType::Q4_1, b);
  EXPECT_EQ(y[0], -8.0f);
  EXPECT_EQ(y[16], 7.0f);
}

TEST(DequantKnown, Q5_0HighBits) {
  std::vector<uint8_t> b(22, 0);
  put_half(b, 0, kHalfOne);
  uint32_t qh = (1u << 0) | (1u << 16);  // 5th bit of elements 0 and 16
  std::memcpy(b.data() + 2, &qh, 4);
  b[6] = 0xF0;  // element 0 low nibble 0, element 16 high nibble 15
  auto y = decode(DType::Q5_0, b);
  EXPECT_EQ(y[0], 0.0f);     // 16 - 16
  EXPECT_EQ(y[1], -16.0f);   // 0 - 16
  EXPECT_EQ(y[16], 15.0f);   // 31 - 16
}

TEST(DequantKnown, Q5_1AllOnes) {
  std::vector<uint8_t> b(24, 0xFF);
  put_half(b, 0, kHalfHalf);
  put_half(b, 2, kHalfOne);
  for (float v : decode(DType::Q5_1, b)) EXPECT_EQ(v, 31 * 0.5f + 1.0f);
}

TEST(DequantKnown, Q2_K) {
  std::vector<uint8_t> b(84, 0);
  b[0] = 0x21;  // group 0: scale 1, min 2
  b[2] = 0x03;  // group 2: scale 3, min 0
  b[16] = 0b0111;  // q[0]: element 0 -> 3, element 32 -> 1
  put_half(b, 80, kHalfOne);
  put_half(b, 82, kHalfHalf);
  auto y = decode(DType::Q2_K, b);
  EXPECT_EQ(y[0], 1.0f * 3 - 0.5f * 2);
  EXPECT_EQ(y[32], 3.0f * 1);
  EXPECT_EQ(y[1], -1.0f);  // q 0, min 2 * 0.5
}

TEST(DequantKnown, Q3_KScalePacking) {
  std::vector<uint8_t> b(110, 0);
  uint8_t* hm = b.data();
  uint8_t* qs = b.data() + 32;
  uint8_t* sc = b.data() + 96;
  put_half(b, 108, kHalfOne);
  sc[0] = 0x01;  // scale 0 low bits 1
  sc[8] = 0x02;  // scale 0 high bits 2 -> 33 - 32 = 1
  qs[0] = 3;     // element 0: low bits 3, hmask clear -> 3 - 4 = -1
  qs[16] = 2;    // element 16 (scale 1 = -32): 2, hmask set -> 2
  hm[16] = 0x01;
  sc[7] = 0xF0;  // scale 15 low bits 15 (high nibble of byte 7)
  sc[11] = 0xC0; // scale 15 high bits 3 -> 63 - 32 = 31
  qs[63] = 0xC0; // element 255: shift 6 -> 3
  hm[31] = 0x80; // element 255 high bit set
  auto y = decode(DType::Q3_K, b);
  EXPECT_EQ(y[0], -1.0f);
  EXPECT_EQ(y[16], -64.0f);
  EXPECT_EQ(y[255], 93.0f);
  EXPECT_EQ(y[1], -4.0f);    // scale 0 = 1: q 0, hmask clear -> -4
  EXPECT_EQ(y[17], 128.0f);  // scale 1 = -32: q 0 - 4
}

TEST(DequantKnown, Q4_KScaleMinPacking) {
  std::vector<uint8_t> b(144, 0);
  put_half(b, 0, kHalfOne);
  put_half(b, 2, kHalfOne);
  uint8_t* sc = b.data() + 4;
  uint8_t* qs = b.data() + 16;
  sc[0] = 5;      // group 0 scale
  sc[4] = 3;      // group 0 min
  qs[0] = 0x02;   // element 0 = 2
  sc[11] = 0x21;  // group 7: scale low 1, min low 2
  sc[3] = 0x40;   // group 7 scale top bits 1 -> 17
  qs[127] = 0xF0; // element 255 = 15
  auto y = decode(DType::Q4_K, b);
  EXPECT_EQ(y[0], 5.0f * 2 - 3.0f);
  EXPECT_EQ(y[255], 17.0f * 15 - 2.0f);
}

TEST(DequantKnown, Q5_KHighBit) {
  std::vector<uint8_t> b(176, 0);
  put_half(b, 0, kHalfOne);
  put_half(b, 2, kHalfOne);
  b[4] = 1;        // group 0 scale 1, min 0
  b[4 + 1] = 2;    // group 1 scale 2
  b[16] = 0x03;    // qh[0]: 5th bit of element 0 (group 0) and element 32 (group 1)
  b[48] = 0x21;    // ql[0]: element 0 low nibble 1, element 32 high nibble 2
  auto y = decode(DType::Q5_K, b);
  EXPECT_EQ(y[0], 17.0f);
  EXPECT_EQ(y[32], 2.0f * 18);
}

TEST(DequantKnown, Q6_K) {
  std::vector<uint8_t> b(210, 0);
  put_half(b, 208, kHalfHalf);
  int8_t* sc = reinterpret_cast<int8_t*>(b.data() + 192);
  sc[0] = -2;
  sc[15] = 3;
  b[0] = 0x0F;        // ql[0] low nibble 15
  b[128] = 0x03;      // qh[0] bits 0-1 = 3 -> q = 63 - 32 = 31
  auto y = decode(DType::Q6_K, b);
  EXPECT_EQ(y[0], 0.5f * -2 * 31);
  EXPECT_EQ(y[255], 0.5f * 3 * -32);  // zero quant bits: q = -32, scale 15
}

TEST(DequantKnown, PlainTypes) {
  auto one = [](DType t, const void* p) {
    float y = -1;
    dequantize(t, static_cast<const uint8_t*>(p), 1, &y);
    return y;
  };
  double f64 = -2.5;
  int64_t i64 = -(int64_t{1} << 40);
  int32_t i32 = -7;
  int16_t i16 = 300;
  int8_t i8 = -128;
  uint8_t u8 = 255, t = 1, f = 0, two = 2;
  uint16_t h_min = 0x0001, bf_one = 0x3F80;
  uint8_t e4_max = 0x7E, e4_min = 0x01, e4_nan = 0xFF, e5_max = 0x7B, e5_inf = 0x7C;
  float f32 = 3.25f;
  EXPECT_EQ(one(DType::F64, &f64), -2.5f);
  EXPECT_EQ(one(DType::F32, &f32), 3.25f);
  EXPECT_EQ(one(DType::I64, &i64), -1099511627776.0f);
  EXPECT_EQ(one(DType::I32, &i32), -7.0f);
  EXPECT_EQ(one(DType::I16, &i16), 300.0f);
  EXPECT_EQ(one(DType::I8, &i8), -128.0f);
  EXPECT_EQ(one(DType::U8, &u8), 255.0f);
  EXPECT_EQ(one(DType::BOOL, &t), 1.0f);
  EXPECT_EQ(one(DType::BOOL, &f), 0.0f);
  EXPECT_EQ(one(DType::BOOL, &two), 1.0f);
  EXPECT_EQ(one(DType::F16, &h_min), std::ldexp(1.0f, -24));
  EXPECT_EQ(one(DType::BF16, &bf_one), 1.0f);
  EXPECT_EQ(one(DType::F8_E4M3, &e4_max), 448.0f);
  EXPECT_EQ(one(DType::F8_E4M3, &e4_min), std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isnan(one(DType::F8_E4M3, &e4_nan)));
  EXPECT_EQ(one(DType::F8_E5M2, &e5_max), 57344.0f);
  EXPECT_EQ(one(DType::F8_E5M2, &e5_inf), INFINITY);
}

// F16 goes through F16C or a branch-free conversion: check every level
// against numeric.h's conversion for every half value, with a length that
// exercises the tail loops.
TEST(DequantKnown, F16AllValuesEveryLevel) {
  std::vector<uint16_t> h(65536 + 5);
  for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint16_t>(i);
  const auto* src = reinterpret_cast<const uint8_t*>(h.data());
  for (DequantIsa isa : dequantize_isas()) {
    std::vector<float> a(h.size());
    dequantize_with(isa, DType::F16, src, static_cast<int64_t>(h.size()), a.data());
    int bad = 0;
    for (size_t i = 0; i < h.size(); ++i) bad += !same(a[i], f16_to_f32(h[i]));
    EXPECT_EQ(bad, 0) << isa_name(isa);
  }
}

// Every instruction-set level of every decoder agrees with the baseline on
// large random input (including NaN/Inf scales: the bits must still match).
TEST(DequantKnown, EveryLevelMatchesBaseline) {
  std::mt19937_64 rng(7);
  EXPECT_EQ(dequantize_isas().front(), DequantIsa::Baseline);
  for (int ti = 0; ti < static_cast<int>(DType::Unsupported); ++ti) {
    DType t = static_cast<DType>(ti);
    const DTypeTraits& tr = traits(t);
    int64_t n = tr.block_elems * 67 + (tr.block_elems == 1 ? 5 : 0);
    std::vector<uint8_t> raw(*byte_size(t, n));
    for (auto& x : raw) x = static_cast<uint8_t>(rng());
    std::vector<float> base(n), a(n);
    dequantize_with(DequantIsa::Baseline, t, raw.data(), n, base.data());
    for (DequantIsa isa : dequantize_isas()) {
      dequantize_with(isa, t, raw.data(), n, a.data());
      int bad = 0;
      for (int64_t i = 0; i < n; ++i) bad += !same(a[i], base[i]);
      EXPECT_EQ(bad, 0) << tr.name << " on " << isa_name(isa);
    }
  }
}

TEST(DequantErrors, UnsupportedAndBadCounts) {
  uint8_t buf[512] = {};
  float out[256];
  EXPECT_THROW(dequantize(DType::Unsupported, buf, 1, out), UnsupportedError);
  EXPECT_THROW(dequantize(DType::Q4_K, buf, 100, out), FormatError);
  EXPECT_THROW(dequantize(DType::Q8_0, buf, -32, out), FormatError);
  EXPECT_NO_THROW(dequantize(DType::Q4_K, buf, 0, out));
}

}  // namespace
}  // namespace kaival::weights
