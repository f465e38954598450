// Packed weight matrices and the worker pool: products over weights kept in
// their block types must equal the product with the fully dequantized matrix
// (computed here in double from the baseline decoder).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "core/error.h"
#include "engine/matmul.h"
#include "weights/checkpoint.h"
#include "weights/dequant.h"

namespace kaival::engine {
namespace {

using weights::DType;

// A valid, modest F16 (exponent 10..17: about 2^-5..2^2), random sign and mantissa.
uint16_t random_f16(std::mt19937& rng) {
  const uint16_t exp = static_cast<uint16_t>(10 + rng() % 8);
  return static_cast<uint16_t>(((rng() & 1) << 15) | (exp << 10) | (rng() & 0x3FF));
}

void put_f16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// Random but well-formed rows of `type`: random quant bytes, F16 scales finite.
std::vector<uint8_t> random_rows(DType type, int64_t rows, int64_t cols, std::mt19937& rng) {
  const auto& tr = weights::traits(type);
  const int64_t blocks = rows * cols / tr.block_elems;
  std::vector<uint8_t> data(static_cast<size_t>(blocks * tr.block_bytes));
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  for (int64_t i = 0; i < blocks; ++i) {
    uint8_t* b = data.data() + i * tr.block_bytes;
    switch (type) {
      case DType::F16: put_f16(b, random_f16(rng)); break;
      case DType::BF16: b[1] = static_cast<uint8_t>((b[1] & 0x80) | (0x3C + rng() % 4)); break;
      case DType::Q8_0:
      case DType::Q4_0: put_f16(b, random_f16(rng)); break;
      case DType::Q4_K: put_f16(b, random_f16(rng)); put_f16(b + 2, random_f16(rng)); break;
      case DType::Q6_K: put_f16(b + 208, random_f16(rng)); break;
      default: break;
    }
  }
  return data;
}

struct PackedCase {
  DType type;
  int64_t cols;
};

class PackedMatmulTest : public testing::TestWithParam<PackedCase> {};

TEST_P(PackedMatmulTest, EqualsTheDequantizedProduct) {
  const auto [type, cols] = GetParam();
  const int64_t rows = 37;  // not a multiple of any chunk size
  std::mt19937 rng(static_cast<unsigned>(cols) * 31 + static_cast<unsigned>(type));
  const auto data = random_rows(type, rows, cols, rng);
  std::vector<float> dense(static_cast<size_t>(rows * cols));
  weights::dequantize_with(weights::DequantIsa::Baseline, type, data.data(), rows * cols, dense.data());
  const auto m = WeightMatrix::packed(type, rows, cols, data);
  EXPECT_EQ(m.bytes(), data.size());

  std::vector<float> row(static_cast<size_t>(cols));
  m.row(5, row.data());
  for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(row[c], dense[5 * cols + c]) << c;

  WorkerPool pool(3);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t n : {1, 3, 8, 21}) {  // decode-style rows and the tiled GEMM path
    std::vector<float> x(static_cast<size_t>(n * cols)), y(static_cast<size_t>(n * rows));
    for (auto& v : x) v = u(rng);
    m.matmul(x.data(), n, y.data(), pool);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t r = 0; r < rows; ++r) {
        double ref = 0, mag = 0;
        for (int64_t c = 0; c < cols; ++c) {
          ref += static_cast<double>(x[t * cols + c]) * dense[r * cols + c];
          mag += std::abs(static_cast<double>(x[t * cols + c]) * dense[r * cols + c]);
        }
        // float32 accumulation over `cols` terms: a few ulps of the magnitude.
        ASSERT_NEAR(y[t * rows + r], ref, 1e-5 * mag + 1e-6) << "n=" << n << " t=" << t << " r=" << r;
      }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, PackedMatmulTest,
                         testing::Values(PackedCase{DType::F16, 96}, PackedCase{DType::BF16, 72},
                                         PackedCase{DType::Q8_0, 128}, PackedCase{DType::Q4_0, 96},
                                         PackedCase{DType::Q4_K, 512}, PackedCase{DType::Q6_K, 256}),
                         [](const auto& info) { return std::string(weights::dtype_name(info.param.type)); });

TEST(WeightMatrixTest, RejectsMismatchedSizes) {
  EXPECT_THROW(WeightMatrix::packed(DType::Q8_0, 2, 48, std::vector<uint8_t>(200)), Error);  // 48 % 32 != 0
  EXPECT_THROW(WeightMatrix::packed(DType::Q8_0, 2, 64, std::vector<uint8_t>(100)), Error);  // needs 136 bytes
  EXPECT_THROW(WeightMatrix::f32(2, 3, std::vector<float>(5)), Error);
}

TEST(DotTest, MatchesDoubleForAllLengths) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  for (int64_t n : {0, 1, 7, 8, 15, 16, 33, 64, 65, 130, 1000}) {
    std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
    double ref = 0, mag = 0;
    for (int64_t i = 0; i < n; ++i) {
      a[i] = u(rng);
      b[i] = u(rng);
      ref += static_cast<double>(a[i]) * b[i];
      mag += std::abs(static_cast<double>(a[i]) * b[i]);
    }
    EXPECT_NEAR(dot(a.data(), b.data(), n), ref, 1e-6 * mag + 1e-7) << n << " (" << dot_isa() << ")";
  }
}

TEST(WorkerPoolTest, CoversEveryIndexOnceAndRethrows) {
  WorkerPool pool(4);
  EXPECT_EQ(pool.threads(), 4);
  for (int64_t n : {1, 5, 100, 1001}) {
    std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
    pool.run(n, 3, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << i;
  }
  EXPECT_THROW(pool.run(100, 1, [](int64_t b, int64_t) {
    if (b >= 50) throw std::runtime_error("chunk failed");
  }), std::runtime_error);
  // Still usable after an exception.
  std::atomic<int64_t> sum{0};
  pool.run(10, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) sum += i;
  });
  EXPECT_EQ(sum.load(), 45);
}

}  // namespace
}  // namespace kaival::engine
