#pragma once
// Integer dot products of packed weight rows (Q8_0, Q4_0, Q4_K, Q6_K) with
// activations quantized to 8 bits, for WeightMatrix::matmul over these types:
// the activation rows are quantized once per product, then every weight row is
// multiplied in int8 x int8 -> int32 without being decoded to F32, with
// several activation rows per pass over the weight row (rows_kernel).
//
// Activation format (kaival's own, not ggml's block_q8_0): blocks of 32 values,
// each with an F32 scale d = max|x| / 127, int8 quants q = round(x / d) in
// [-127, 127] (ties to even), and the int32 sum of the quants (the Q4_K
// minimum term needs it).
//
// Semantics (defined by the portable kernels): a weight block's integer sum
// of products is exact; it is scaled by the product of the weight block's
// scale(s) and the activation block's d in F32 and the blocks are summed in
// F32. The AVX2 (and VNNI) kernels compute the same integer sums and differ
// only in the order of the F32 additions. A row's result is the same whether it is
// computed alone (kernel) or with other rows (rows_kernel), at every level.
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "weights/dtype.h"

namespace kaival::engine::qdot {

// Avx512Vnni: 512-bit registers (two blocks of 32 per vpdpbusd); same integer
// sums as Avx2, F32 additions grouped differently (differs by F32 rounding).
enum class Isa { Portable, Avx2, Avx512Vnni };
std::string_view isa_name(Isa isa);  // "portable", "avx2", "avx512vnni"
std::vector<Isa> isas();             // levels this CPU runs, Portable first
Isa best_isa();                      // the level matmul uses

constexpr int64_t kBlock = 32;  // activation block

// Weight types with an integer kernel.
bool supported(weights::DType t);

// n activation rows of `cols` values (cols a multiple of kBlock), quantized.
class Q8Rows {
 public:
  void quantize(Isa isa, const float* x, int64_t n, int64_t cols);
  int64_t rows() const { return n_; }
  int64_t cols() const { return cols_; }
  const int8_t* q(int64_t row) const { return q_.data() + row * cols_; }
  const float* d(int64_t row) const { return d_.data() + row * (cols_ / kBlock); }
  const int32_t* sum(int64_t row) const { return sum_.data() + row * (cols_ / kBlock); }
  // Row `row` decoded back to F32 (d * q), for tests.
  std::vector<float> dequantized(int64_t row) const;

 private:
  int64_t n_ = 0, cols_ = 0;
  std::vector<int8_t> q_;
  std::vector<float> d_;
  std::vector<int32_t> sum_;
};

// Dot product of one packed weight row of `type` (cols elements, a multiple
// of the type's block) with activation row `row` of `x` (x.cols() == cols).
// Throws for unsupported types or mismatched widths.
float dot(Isa isa, weights::DType type, const uint8_t* w, const Q8Rows& x, int64_t row);

// The kernel behind dot() without the checks, for the inner loop of matmul.
using DotFn = float (*)(const uint8_t* w, const int8_t* q, const float* d, const int32_t* sum, int64_t cols);
DotFn kernel(Isa isa, weights::DType type);  // nullptr when unsupported

// One packed weight row against n consecutive activation rows (row t at
// q + t * cols, d and sum + t * cols / kBlock): out[t * out_stride] is what
// kernel() returns for row t, bit for bit. The weight row is unpacked once
// per group of activation rows.
using RowsFn = void (*)(const uint8_t* w, const int8_t* q, const float* d, const int32_t* sum, int64_t cols,
                        int64_t n, float* out, int64_t out_stride);
RowsFn rows_kernel(Isa isa, weights::DType type);  // nullptr when unsupported

}  // namespace kaival::engine::qdot
