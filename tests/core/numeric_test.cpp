#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/hash.h"
#include "core/mmap.h"
#include "core/numeric.h"

using namespace kaival;

TEST(Numeric, F16RoundTripAllFinite) {
  // Every finite half converts to f32 and back unchanged.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if (((h >> 10) & 0x1f) == 0x1f) continue;
    float f = f16_to_f32(static_cast<uint16_t>(h));
    EXPECT_EQ(f32_to_f16(f), h) << std::hex << h;
  }
}

TEST(Numeric, F16KnownValues) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);             // overflow to inf
  EXPECT_EQ(f32_to_f16(1.0f + 1.0f / 4096), 0x3c00);  // tie rounds to even
}

TEST(Numeric, BF16AndFp8) {
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f8e4m3_to_f32(0x38), 1.0f);    // exp 7, mant 0
  EXPECT_EQ(f8e4m3_to_f32(0x7e), 448.0f);  // largest finite E4M3
  EXPECT_TRUE(std::isnan(f8e4m3_to_f32(0x7f)));
  EXPECT_EQ(f8e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(f8e5m2_to_f32(0x3c), 1.0f);
  EXPECT_EQ(f8e5m2_to_f32(0x7b), 57344.0f);
}

TEST(Hash, Sha256KnownVector) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(MappedFile, MissingFileNamesThePath) {
  try {
    MappedFile f("/nonexistent/kaival-test");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/kaival-test"), std::string::npos);
  }
}

#include "core/text.h"

TEST(Text, DisplayWidthCountsHangulAsTwoColumns) {
  EXPECT_EQ(display_width("abc"), 3u);
  EXPECT_EQ(display_width("하나"), 4u);
  EXPECT_EQ(display_width("Team 둘"), 7u);
  EXPECT_EQ(pad_right("둘", 4), "둘  ");
  EXPECT_EQ(pad_right("abcdef", 3), "abcdef");
  EXPECT_EQ(display_width(std::string_view("\xff\xfe", 2)), 2u);  // invalid bytes
}
