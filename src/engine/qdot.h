#pragma once
// Integer dot products of packed weight rows (Q8_0, Q4_0, Q4_K, Q6_K) with
// activations quantized to 8 bits, for WeightMatrix::matmul over these types:
// the activation rows are quantized once per product, then every weight row is
// multiplied in int8 x int8 -> int32 without being decoded to F32, with
// several activation rows per pass over the weight row (rows_kernel).
//
// Activation format (kaival's own): blocks of B = 256 values for every type
// (activation_block(); Q8Rows also takes B = 32), each with an F32 scale
// d = max|x| / 127 and int8 quants q = round(x / d) in [-127, 127] (ties to
// even); plus the int16 sum of every 16 quants (the K types' minimum and
// offset terms). One activation scale covers a whole K super-block, so its
// sub-block scales combine with the integer sums in integer arithmetic and
// one F32 multiply-add serves 256 products per row (the idea of ggml's
// Q8_K); for Q8_0 / Q4_0 it removes an F32 multiply per weight block and row
// (see dot_b32_portable). The price is a coarser step where a block of 256
// activations holds an outlier. Q8_0 / Q4_0 rows need not be whole blocks of
// 256: the last activation block of a row is then shorter.
//
// Semantics (defined by the portable kernels): Q8_0 / Q4_0: per activation
// block, the exact integer sums of its weight blocks times their scales are
// summed in F32, then multiplied by the activation block's d; the activation
// blocks are summed in F32.
// Q4_K / Q6_K: per super-block, sum_g sc_g * sum(q * x) (and for Q4_K
// sum_g mn_g * sum(x)) is exact; it is scaled by d * x_d (dmin * x_d) in F32
// and the super-blocks are summed in F32. The AVX2 and VNNI kernels compute
// the same integer products; they split a super-block's integer sum into
// vector lanes converted to F32 separately and add in another order, so they
// differ from the portable level by F32 rounding only (Q4_K at the VNNI
// level converts the exact totals, as the portable level does, and differs by
// its fused multiply-adds only). A row's result is the
// same whether it is computed alone (kernel) or with other rows
// (rows_kernel), at every level.
#include <cstddef>
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

constexpr int64_t kBlock = 32;        // the smaller activation block Q8Rows takes
constexpr int64_t kSuperBlock = 256;  // the activation block of every integer kernel
constexpr int64_t kSumGroup = 16;     // quants per int16 sum

// Weight types with an integer kernel.
bool supported(weights::DType t);
// The activation block size that type's kernels take (kSuperBlock for every supported type).
int64_t activation_block(weights::DType t);

// n activation rows of `cols` values (cols a multiple of kBlock), quantized.
class Q8Rows {
 public:
  // block: kBlock or kSuperBlock; cols: a multiple of kBlock (the last
  // super-block of a row may be short, for Q8_0 / Q4_0 rows of any whole blocks).
  // flipped: store q ^ 0x80 (see flipped()).
  void quantize(Isa isa, const float* x, int64_t n, int64_t cols, int64_t block = kBlock, bool flipped = false);
  // The same in two steps, so the rows can be quantized in parallel: shape()
  // sizes the buffers, then quantize_rows(rows [begin, end) of the same x)
  // for disjoint ranges covering [0, n) (from any threads). Same bits.
  void shape(Isa isa, int64_t n, int64_t cols, int64_t block = kBlock, bool flipped = false);
  void quantize_rows(Isa isa, const float* x, int64_t begin, int64_t end);
  int64_t rows() const { return n_; }
  int64_t cols() const { return cols_; }
  int64_t block() const { return block_; }
  const int8_t* q(int64_t row) const { return q_.data() + row * cols_; }
  // Scales of the row's blocks; the last block is short when block() does not divide cols().
  const float* d(int64_t row) const { return d_.data() + row * blocks_per_row(); }
  int64_t blocks_per_row() const { return (cols_ + block_ - 1) / block_; }
  // Sums of quants 16j..16j+15 of the row.
  const int16_t* bsum(int64_t row) const { return bsum_.data() + row * (cols_ / kSumGroup); }
  // Row `row` decoded back to F32 (d * q), for tests.
  std::vector<float> dequantized(int64_t row) const;
  // Whether q() holds the quants with their sign bit flipped (q ^ 0x80, i.e.
  // q + 128 as unsigned bytes), the form rows_kernel_flipped() takes; bsum()
  // holds the sums of the signed quants either way.
  bool flipped() const { return flipped_; }

 private:
  int64_t n_ = 0, cols_ = 0, block_ = kBlock;
  bool flipped_ = false;
  std::vector<int8_t> q_;
  std::vector<float> d_;
  std::vector<int16_t> bsum_;
};

// Dot product of one packed weight row of `type` (cols elements, a multiple
// of the type's block) with activation row `row` of `x` (x.cols() == cols,
// x.block() == activation_block(type)). Throws for unsupported types,
// mismatched widths or the wrong activation block.
float dot(Isa isa, weights::DType type, const uint8_t* w, const Q8Rows& x, int64_t row);

// The kernel behind dot() without the checks, for the inner loop of matmul.
using DotFn = float (*)(const uint8_t* w, const int8_t* q, const float* d, const int16_t* bsum, int64_t cols);
DotFn kernel(Isa isa, weights::DType type);  // nullptr when unsupported

// One packed weight row against n consecutive activation rows (row t at
// q + t * cols, d + t * Q8Rows::blocks_per_row(), bsum + t * cols / 16):
// out[t * out_stride] is what kernel() returns for row t, bit for bit. The
// weight row is unpacked once per group of activation rows.
using RowsFn = void (*)(const uint8_t* w, const int8_t* q, const float* d, const int16_t* bsum, int64_t cols,
                        int64_t n, float* out, int64_t out_stride);
RowsFn rows_kernel(Isa isa, weights::DType type);  // nullptr when unsupported

// nw consecutive weight rows (row j at w + j * row_bytes) against n
// activation rows as for RowsFn: out[t * out_stride + j] is what kernel()
// returns for weight row j and activation row t, bit for bit. For a tile of
// weight rows at once, so per-activation work (Q4_K at the VNNI level: the
// group sums and scales transposed to one lane per activation row) is done
// once per tile instead of once per weight row.
using TileFn = void (*)(const uint8_t* w, size_t row_bytes, int64_t nw, const int8_t* q, const float* d,
                        const int16_t* bsum, int64_t cols, int64_t n, float* out, int64_t out_stride);
// nullptr where the level has no tiled kernel for the type (use rows_kernel).
TileFn tile_kernel(Isa isa, weights::DType type);

// rows_kernel for activations whose quants have their sign bit flipped
// (Q8Rows::flipped()), with the same bits, where the level has one: Q8_0 /
// Q4_0 at the VNNI level, whose vpdpbusd takes the activations as unsigned
// bytes (one XOR fewer per 64 products, ~9% of the kernel). nullptr elsewhere.
RowsFn rows_kernel_flipped(Isa isa, weights::DType type);

}  // namespace kaival::engine::qdot
