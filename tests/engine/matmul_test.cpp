// Packed weight matrices and the worker pool: products over weights kept in
// their block types must equal the product with the fully dequantized matrix
// (computed here in double from the baseline decoder).
#include <gtest/gtest.h>

#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "core/error.h"
#include "engine/matmul.h"
#include "engine/qdot.h"
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

// |sum w_i (x_i - x8_i)| <= sum over activation blocks of (max|x| / 127 / 2) * sum |w_i|:
// the error the 8-bit activations may add to a dot.
double activation_error_bound(const float* x, const float* w, int64_t cols, int64_t block) {
  double bound = 0;
  for (int64_t b = 0; b < cols; b += block) {
    double amax = 0, wabs = 0;
    for (int64_t i = b; i < std::min(cols, b + block); ++i) {  // the last block may be short
      amax = std::max(amax, std::abs(static_cast<double>(x[i])));
      wabs += std::abs(static_cast<double>(w[i]));
    }
    bound += amax / 127 / 2 * wabs * (1 + 1e-6);
  }
  return bound;
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
  for (int64_t n : {1, 3, 8, 21}) {  // decode-style rows and prompt-sized batches
    std::vector<float> x(static_cast<size_t>(n * cols)), y(static_cast<size_t>(n * rows));
    for (auto& v : x) v = u(rng);
    m.matmul(x.data(), n, y.data(), pool);
    // Products over these types use 8-bit activations, whatever n is.
    const bool q8 = qdot::supported(type);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t r = 0; r < rows; ++r) {
        double ref = 0, mag = 0;
        for (int64_t c = 0; c < cols; ++c) {
          ref += static_cast<double>(x[t * cols + c]) * dense[r * cols + c];
          mag += std::abs(static_cast<double>(x[t * cols + c]) * dense[r * cols + c]);
        }
        // float32 accumulation over `cols` terms: a few ulps of the magnitude;
        // plus, with 8-bit activations, their rounding (at most half a step).
        const double act = q8 ? activation_error_bound(x.data() + t * cols, dense.data() + r * cols, cols,
                                                       qdot::activation_block(type))
                              : 0;
        ASSERT_NEAR(y[t * rows + r], ref, 1e-5 * mag + 1e-6 + act) << "n=" << n << " t=" << t << " r=" << r;
      }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, PackedMatmulTest,
                         testing::Values(PackedCase{DType::F16, 96}, PackedCase{DType::BF16, 72},
                                         PackedCase{DType::Q8_0, 128}, PackedCase{DType::Q4_0, 96},
                                         PackedCase{DType::Q4_K, 512}, PackedCase{DType::Q6_K, 256}),
                         [](const auto& info) { return std::string(weights::dtype_name(info.param.type)); });

// ---- integer dots over 8-bit activations (engine/qdot.h) ---------------------

// Activations with some structure: a zero block, a block of one repeated
// value, values on quantization ties, and a wide dynamic range.
std::vector<float> random_activations(int64_t n, int64_t cols, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> x(static_cast<size_t>(n * cols));
  for (int64_t i = 0; i < n * cols; ++i) {
    const int64_t block = i / 32;
    if (block % 7 == 3) x[i] = 0;
    else if (block % 7 == 5) x[i] = -0.75f;
    else if (block % 7 == 6) x[i] = (i % 32 == 0) ? 127.0f : static_cast<float>(i % 32) + 0.5f;  // ties at d = 1
    else x[i] = u(rng) * std::ldexp(1.0f, static_cast<int>(block % 5) * 3 - 6);
  }
  return x;
}

// Blocks of 32 and super-blocks of 256 (every integer kernel's), whole and
// with a short last block (Q8_0 / Q4_0 rows of 3.5 super-blocks).
struct Q8Shape {
  int64_t block, cols;
};
class Q8ActivationsTest : public testing::TestWithParam<Q8Shape> {};

TEST_P(Q8ActivationsTest, RoundToHalfAStepAndAgreeAcrossIsas) {
  const auto [block, cols] = GetParam();
  std::mt19937 rng(11);
  const int64_t n = 3, blocks = (cols + block - 1) / block;
  const auto x = random_activations(n, cols, rng);
  qdot::Q8Rows ref;
  ref.quantize(qdot::Isa::Portable, x.data(), n, cols, block);
  EXPECT_EQ(ref.block(), block);
  EXPECT_EQ(ref.blocks_per_row(), blocks);
  for (int64_t t = 0; t < n; ++t) {
    const auto back = ref.dequantized(t);
    for (int64_t b = 0; b < blocks; ++b) {
      float amax = 0;
      int peak = 0;
      for (int64_t i = b * block; i < std::min(cols, (b + 1) * block); ++i) {
        amax = std::max(amax, std::abs(x[t * cols + i]));
        peak = std::max(peak, std::abs(static_cast<int>(ref.q(t)[i])));
        // Half a step, plus the F32 rounding of x / d.
        const double err = std::abs(static_cast<double>(ref.d(t)[b]) * ref.q(t)[i] - x[t * cols + i]);
        ASSERT_LE(err, ref.d(t)[b] * (0.5 + 1e-5)) << t << " " << i;
        ASSERT_EQ(back[i], ref.d(t)[b] * static_cast<float>(ref.q(t)[i]));
      }
      EXPECT_FLOAT_EQ(ref.d(t)[b], amax / 127);
      EXPECT_EQ(peak, amax == 0 ? 0 : 127) << "block " << b;
    }
    for (int64_t g = 0; g < cols / 16; ++g) {
      int sum = 0;
      for (int64_t i = 16 * g; i < 16 * g + 16; ++i) sum += ref.q(t)[i];
      ASSERT_EQ(ref.bsum(t)[g], sum) << t << " " << g;
    }
  }
  // Block 6 of 32 holds ties (v + 0.5 with d = 1; 127 is the largest value of
  // its super-block too): nearest even.
  EXPECT_EQ(ref.q(0)[6 * 32 + 1], 2);  // 1.5
  EXPECT_EQ(ref.q(0)[6 * 32 + 2], 2);  // 2.5
  EXPECT_EQ(ref.q(0)[6 * 32 + 3], 4);  // 3.5
  for (auto isa : qdot::isas()) {
    qdot::Q8Rows got;
    got.quantize(isa, x.data(), n, cols, block);
    ASSERT_EQ(std::memcmp(got.q(0), ref.q(0), static_cast<size_t>(n * cols)), 0) << qdot::isa_name(isa);
    ASSERT_EQ(std::memcmp(got.d(0), ref.d(0), static_cast<size_t>(n * blocks) * 4), 0) << qdot::isa_name(isa);
    ASSERT_EQ(std::memcmp(got.bsum(0), ref.bsum(0), static_cast<size_t>(n * cols / 16) * 2), 0);
  }
  // The sign-flipped form: q ^ 0x80, the same scales, sums and decoded values.
  for (auto isa : qdot::isas()) {
    qdot::Q8Rows flipped;
    flipped.quantize(isa, x.data(), n, cols, block, /*flipped=*/true);
    ASSERT_TRUE(flipped.flipped());
    ASSERT_FALSE(ref.flipped());
    for (int64_t i = 0; i < n * cols; ++i)
      ASSERT_EQ(static_cast<uint8_t>(flipped.q(0)[i]), static_cast<uint8_t>(ref.q(0)[i]) ^ 0x80u) << i;
    ASSERT_EQ(std::memcmp(flipped.d(0), ref.d(0), static_cast<size_t>(n * blocks) * 4), 0);
    ASSERT_EQ(std::memcmp(flipped.bsum(0), ref.bsum(0), static_cast<size_t>(n * cols / 16) * 2), 0);
    EXPECT_EQ(flipped.dequantized(n - 1), ref.dequantized(n - 1));
  }
  qdot::Q8Rows bad;
  EXPECT_THROW(bad.quantize(qdot::Isa::Portable, x.data(), 1, block + 16, block), Error);  // not whole blocks of 32
  EXPECT_THROW(bad.quantize(qdot::Isa::Portable, x.data(), 1, 0, block), Error);
  EXPECT_THROW(bad.quantize(qdot::Isa::Portable, x.data(), 1, 512, 64), Error);  // no such block size
}

INSTANTIATE_TEST_SUITE_P(Blocks, Q8ActivationsTest,
                         testing::Values(Q8Shape{32, 32 * 15}, Q8Shape{256, 256 * 3}, Q8Shape{256, 256 * 3 + 128}),
                         [](const auto& info) {
                           return std::to_string(info.param.block) + "_" + std::to_string(info.param.cols);
                         });

struct QdotCase {
  DType type;
  int64_t cols;
};

class QdotTest : public testing::TestWithParam<QdotCase> {};

// Each ISA's integer dot equals the exact product of the dequantized weights
// and the dequantized 8-bit activations up to F32 rounding; ISAs agree with
// the portable kernel; and against the F32 activations the difference stays
// within the activations' rounding bound.
TEST_P(QdotTest, MatchesDequantizedReference) {
  const auto [type, cols] = GetParam();
  const int64_t rows = 9, n = 2;
  std::mt19937 rng(static_cast<unsigned>(cols) * 7 + static_cast<unsigned>(type));
  const auto data = random_rows(type, rows, cols, rng);
  std::vector<float> dense(static_cast<size_t>(rows * cols));
  weights::dequantize_with(weights::DequantIsa::Baseline, type, data.data(), rows * cols, dense.data());
  const auto x = random_activations(n, cols, rng);
  const int64_t block = qdot::activation_block(type);
  qdot::Q8Rows xq;
  xq.quantize(qdot::Isa::Portable, x.data(), n, cols, block);
  const size_t row_bytes = data.size() / rows;
  for (int64_t t = 0; t < n; ++t) {
    const auto x8 = xq.dequantized(t);
    for (int64_t r = 0; r < rows; ++r) {
      const float* w = dense.data() + r * cols;
      double exact = 0, exact_f32 = 0, mag = 0;
      for (int64_t c = 0; c < cols; ++c) {
        exact += static_cast<double>(w[c]) * x8[c];
        exact_f32 += static_cast<double>(w[c]) * x[t * cols + c];
        mag += std::abs(static_cast<double>(w[c]) * x8[c]);
      }
      const uint8_t* wp = data.data() + r * row_bytes;
      const float portable = qdot::dot(qdot::Isa::Portable, type, wp, xq, t);
      ASSERT_NEAR(portable, exact, 1e-5 * mag + 1e-9) << "portable r=" << r << " t=" << t;
      for (auto isa : qdot::isas()) {
        const float got = qdot::dot(isa, type, wp, xq, t);
        ASSERT_NEAR(got, exact, 1e-5 * mag + 1e-9) << qdot::isa_name(isa) << " r=" << r << " t=" << t;
        ASSERT_NEAR(got, portable, 2e-6 * mag + 1e-9) << qdot::isa_name(isa) << " r=" << r << " t=" << t;
      }
      ASSERT_NEAR(portable, exact_f32, activation_error_bound(x.data() + t * cols, w, cols, block) + 1e-5 * mag)
          << "vs F32 activations r=" << r;
    }
  }
  // matmul over these types is this kernel (best ISA), bit for bit, for
  // decode-sized and prompt-sized products.
  const auto m = WeightMatrix::packed(type, rows, cols, data);
  WorkerPool pool(2);
  std::vector<float> y(static_cast<size_t>(n * rows));
  m.matmul(x.data(), n, y.data(), pool);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t r = 0; r < rows; ++r)
      ASSERT_EQ(y[t * rows + r], qdot::dot(qdot::best_isa(), type, data.data() + r * row_bytes, xq, t)) << r;
}

INSTANTIATE_TEST_SUITE_P(
    Types, QdotTest,
    testing::Values(QdotCase{DType::Q8_0, 32}, QdotCase{DType::Q8_0, 96}, QdotCase{DType::Q8_0, 1056},
                    QdotCase{DType::Q4_0, 32}, QdotCase{DType::Q4_0, 160}, QdotCase{DType::Q4_0, 1024},
                    QdotCase{DType::Q4_K, 256}, QdotCase{DType::Q4_K, 768}, QdotCase{DType::Q4_K, 2048},
                    QdotCase{DType::Q4_K, 8448},
                    QdotCase{DType::Q6_K, 256}, QdotCase{DType::Q6_K, 512}, QdotCase{DType::Q6_K, 1280}),
    [](const auto& info) {
      return std::string(weights::dtype_name(info.param.type)) + "_" + std::to_string(info.param.cols);
    });

// A row's result must not depend on the other rows of the product: a
// sequence's logits are the same alone or inside a batched decode step, and
// a prompt token's the same as if it were decoded alone. For each ISA the
// multi-row kernel equals the one-row kernel bit for bit for every start and
// count (n = 11: groups of four or eight plus every remainder), so does the
// tiled kernel for several weight rows per call, and matmul
// with n = 11 equals eleven n = 1 products, with any number of threads.
TEST_P(QdotTest, RowResultsDoNotDependOnTheBatch) {
  const auto [type, cols] = GetParam();
  const int64_t rows = 37, n = 11;
  std::mt19937 rng(static_cast<unsigned>(cols) * 13 + static_cast<unsigned>(type));
  const auto data = random_rows(type, rows, cols, rng);
  const auto x = random_activations(n, cols, rng);
  const size_t row_bytes = data.size() / rows;
  for (auto isa : qdot::isas()) {
    qdot::Q8Rows xq;
    xq.quantize(isa, x.data(), n, cols, qdot::activation_block(type));
    const auto one = qdot::kernel(isa, type);
    const auto many = qdot::rows_kernel(isa, type);
    ASSERT_NE(many, nullptr);
    for (int64_t r = 0; r < rows; r += 5) {
      const uint8_t* w = data.data() + r * row_bytes;
      for (int64_t first = 0; first < n; ++first)
        for (int64_t count = 1; first + count <= n; ++count) {
          std::vector<float> out(static_cast<size_t>(2 * count), -1.0f);
          many(w, xq.q(first), xq.d(first), xq.bsum(first), cols, count, out.data(), 2);
          for (int64_t t = 0; t < count; ++t) {
            const float alone = one(w, xq.q(first + t), xq.d(first + t), xq.bsum(first + t), cols);
            ASSERT_EQ(std::bit_cast<uint32_t>(out[2 * t]), std::bit_cast<uint32_t>(alone))
                << qdot::isa_name(isa) << " r=" << r << " rows " << first << "+" << count << " t=" << t;
            ASSERT_EQ(out[2 * t + 1], -1.0f);  // the stride is respected
          }
        }
    }
    // The tiled kernel (several weight rows per call), where the level has one.
    if (const auto tile = qdot::tile_kernel(isa, type)) {
      for (int64_t r0 : {int64_t{0}, int64_t{3}})
        for (int64_t nw : {int64_t{1}, int64_t{2}, int64_t{17}, int64_t{34}})
          for (int64_t first = 0; first < n; first += 3)
            for (int64_t count = 1; first + count <= n; ++count) {
              const int64_t os = nw + 1;
              std::vector<float> out(static_cast<size_t>(count * os), -1.0f);
              tile(data.data() + r0 * row_bytes, row_bytes, nw, xq.q(first), xq.d(first), xq.bsum(first), cols,
                   count, out.data(), os);
              for (int64_t t = 0; t < count; ++t) {
                for (int64_t j = 0; j < nw; ++j) {
                  const uint8_t* w = data.data() + (r0 + j) * row_bytes;
                  const float alone = one(w, xq.q(first + t), xq.d(first + t), xq.bsum(first + t), cols);
                  ASSERT_EQ(std::bit_cast<uint32_t>(out[t * os + j]), std::bit_cast<uint32_t>(alone))
                      << qdot::isa_name(isa) << " tile r0=" << r0 << " nw=" << nw << " rows " << first << "+" << count
                      << " t=" << t << " j=" << j;
                }
                ASSERT_EQ(out[t * os + nw], -1.0f);
              }
            }
    }
    // The kernel for sign-flipped activations, where the level has one: the same bits.
    if (const auto flipped = qdot::rows_kernel_flipped(isa, type)) {
      qdot::Q8Rows xf;
      xf.quantize(isa, x.data(), n, cols, qdot::activation_block(type), /*flipped=*/true);
      ASSERT_TRUE(xf.flipped());
      for (int64_t r = 0; r < rows; r += 4) {
        const uint8_t* w = data.data() + r * row_bytes;
        for (int64_t first = 0; first < n; first += 2)
          for (int64_t count = 1; first + count <= n; ++count) {
            std::vector<float> out(static_cast<size_t>(count), -1.0f);
            flipped(w, xf.q(first), xf.d(first), xf.bsum(first), cols, count, out.data(), 1);
            for (int64_t t = 0; t < count; ++t)
              ASSERT_EQ(std::bit_cast<uint32_t>(out[t]),
                        std::bit_cast<uint32_t>(one(w, xq.q(first + t), xq.d(first + t), xq.bsum(first + t), cols)))
                  << qdot::isa_name(isa) << " flipped r=" << r << " rows " << first << "+" << count << " t=" << t;
          }
      }
    }
  }
  const auto m = WeightMatrix::packed(type, rows, cols, data);
  for (int threads : {1, 3}) {
    WorkerPool pool(threads);
    std::vector<float> batch(static_cast<size_t>(n * rows));
    m.matmul(x.data(), n, batch.data(), pool);
    for (int64_t t = 0; t < n; ++t) {
      std::vector<float> alone(static_cast<size_t>(rows));
      m.matmul(x.data() + t * cols, 1, alone.data(), pool);
      ASSERT_EQ(std::memcmp(alone.data(), batch.data() + t * rows, alone.size() * 4), 0)
          << "threads=" << threads << " t=" << t;
    }
  }
  // Several matrices over one input (one quantization, one pool job): each
  // output equals its own matmul bit for bit; a matrix of another type in
  // the list makes it fall back to one matmul each.
  const auto m2 = WeightMatrix::packed(type, 5, cols, random_rows(type, 5, cols, rng));
  const auto m3 = WeightMatrix::packed(type, 70, cols, random_rows(type, 70, cols, rng));
  const auto f16 = WeightMatrix::packed(DType::F16, 3, cols, random_rows(DType::F16, 3, cols, rng));
  for (const bool mixed : {false, true}) {
    std::vector<const WeightMatrix*> ms{&m, &m2, &m3};
    if (mixed) ms.insert(ms.begin() + 1, &f16);
    for (int threads : {1, 3})
      for (const int64_t nn : {int64_t{1}, n}) {
        WorkerPool pool(threads);
        std::vector<std::vector<float>> got, want;
        std::vector<float*> ys;
        for (const WeightMatrix* w : ms) {
          got.emplace_back(static_cast<size_t>(nn * w->rows()), -1.0f);
          want.emplace_back(static_cast<size_t>(nn * w->rows()));
          w->matmul(x.data(), nn, want.back().data(), pool);
        }
        for (auto& g : got) ys.push_back(g.data());
        WeightMatrix::matmul_many(ms, x.data(), nn, ys, pool);
        for (size_t i = 0; i < ms.size(); ++i)
          ASSERT_EQ(std::memcmp(got[i].data(), want[i].data(), got[i].size() * 4), 0)
              << "mixed=" << mixed << " threads=" << threads << " n=" << nn << " matrix " << i;
      }
  }
}

TEST(QdotTest, RejectsUnsupportedTypesAndShapes) {
  std::mt19937 rng(5);
  const auto x = random_activations(1, 288, rng);
  qdot::Q8Rows xq;
  xq.quantize(qdot::Isa::Portable, x.data(), 1, 288, qdot::kSuperBlock);  // a short last block of 32
  const std::vector<uint8_t> w(2048);
  EXPECT_FALSE(qdot::supported(DType::F16));
  EXPECT_EQ(qdot::kernel(qdot::Isa::Portable, DType::Q5_K), nullptr);
  EXPECT_THROW(qdot::dot(qdot::Isa::Portable, DType::F16, w.data(), xq, 0), Error);
  EXPECT_THROW(qdot::dot(qdot::Isa::Portable, DType::Q4_K, w.data(), xq, 0), Error);  // 288 % 256 != 0
  EXPECT_THROW(qdot::dot(qdot::Isa::Portable, DType::Q8_0, w.data(), xq, 1), Error);  // no row 1
  EXPECT_NO_THROW(qdot::dot(qdot::Isa::Portable, DType::Q8_0, w.data(), xq, 0));
  qdot::Q8Rows flipped;  // the flipped form is for rows_kernel_flipped only
  flipped.quantize(qdot::Isa::Portable, x.data(), 1, 288, qdot::kSuperBlock, /*flipped=*/true);
  EXPECT_THROW(qdot::dot(qdot::Isa::Portable, DType::Q8_0, w.data(), flipped, 0), Error);
  EXPECT_EQ(qdot::rows_kernel_flipped(qdot::Isa::Portable, DType::Q8_0), nullptr);
  EXPECT_EQ(qdot::rows_kernel_flipped(qdot::Isa::Avx512Vnni, DType::Q4_K), nullptr);
  // Every integer kernel takes activation blocks of 256.
  for (auto t : {DType::Q4_K, DType::Q6_K, DType::Q8_0, DType::Q4_0}) EXPECT_EQ(qdot::activation_block(t), 256);
  const auto x512 = random_activations(1, 512, rng);
  qdot::Q8Rows small, super;
  small.quantize(qdot::Isa::Portable, x512.data(), 1, 512, 32);
  super.quantize(qdot::Isa::Portable, x512.data(), 1, 512, 256);
  EXPECT_THROW(qdot::dot(qdot::Isa::Portable, DType::Q4_K, w.data(), small, 0), Error);
  EXPECT_THROW(qdot::dot(qdot::Isa::Portable, DType::Q4_0, w.data(), small, 0), Error);
  EXPECT_THROW(qdot::dot(qdot::Isa::Portable, DType::Q8_0, w.data(), small, 0), Error);
  EXPECT_NO_THROW(qdot::dot(qdot::Isa::Portable, DType::Q6_K, w.data(), super, 0));
}

// Decode-sized F16 products (1..3 input rows) convert and multiply the packed
// halves in place, four weight rows at a time: each result is within F32
// rounding of the double product, and the same bits whether its input row is
// alone or with others, and whatever rows share its block (thread counts
// change the chunk edges). Widths with tails after the vector loop, too.
TEST(F16DecodeTest, FusedRowsMatchDoubleAndDoNotDependOnTheBatch) {
  for (int64_t cols : {96, 200, 203}) {
    const int64_t rows = 37;
    std::mt19937 rng(static_cast<unsigned>(cols));
    const auto data = random_rows(DType::F16, rows, cols, rng);
    std::vector<float> dense(static_cast<size_t>(rows * cols));
    weights::dequantize_with(weights::DequantIsa::Baseline, DType::F16, data.data(), rows * cols, dense.data());
    const auto m = WeightMatrix::packed(DType::F16, rows, cols, data);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> x(static_cast<size_t>(3 * cols));
    for (auto& v : x) v = u(rng);
    for (int threads : {1, 3}) {
      WorkerPool pool(threads);
      std::vector<float> batch(static_cast<size_t>(3 * rows));
      m.matmul(x.data(), 3, batch.data(), pool);
      for (int64_t t = 0; t < 3; ++t) {
        std::vector<float> alone(static_cast<size_t>(rows)), pair(static_cast<size_t>(2 * rows));
        m.matmul(x.data() + t * cols, 1, alone.data(), pool);
        ASSERT_EQ(std::memcmp(alone.data(), batch.data() + t * rows, alone.size() * 4), 0)
            << "cols=" << cols << " threads=" << threads << " t=" << t;
        if (t < 2) {
          m.matmul(x.data() + t * cols, 2, pair.data(), pool);
          ASSERT_EQ(std::memcmp(pair.data(), batch.data() + t * rows, pair.size() * 4), 0) << cols << " " << t;
        }
        for (int64_t r = 0; r < rows; ++r) {
          double ref = 0, mag = 0;
          for (int64_t c = 0; c < cols; ++c) {
            const double p = static_cast<double>(x[t * cols + c]) * dense[r * cols + c];
            ref += p;
            mag += std::abs(p);
          }
          ASSERT_NEAR(alone[r], ref, 1e-6 * mag + 1e-9) << "cols=" << cols << " t=" << t << " r=" << r;
        }
      }
    }
  }
}

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
    std::atomic<int> bad_chunks{0};
    pool.run(n, 3, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
      // Chunks start on multiples of the grain and span at least one (the last one may be longer).
      if (b % 3 != 0 || (e - b < 3 && e - b != n)) bad_chunks++;
    });
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << i;
    EXPECT_EQ(bad_chunks.load(), 0) << n;
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
