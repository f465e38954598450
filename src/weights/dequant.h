#pragma once
// Internals of dequantize() (declared in weights/checkpoint.h) exposed for
// tests and benchmarks.
#include <cstdint>
#include <string_view>
#include <vector>

#include "weights/dtype.h"

namespace kaival::weights {

// Instruction-set levels of the decoders. dequantize() uses the best one the
// CPU has; every level computes bit-identical results.
enum class DequantIsa { Baseline, Avx2, Avx512 };
std::string_view isa_name(DequantIsa isa);  // "baseline", "avx2", "avx512"
// Levels this CPU can run, lowest first (always starts with Baseline).
std::vector<DequantIsa> dequantize_isas();
DequantIsa dequantize_isa();  // the level dequantize() uses
// dequantize() at a given level, so tests can compare the levels; throws
// UnsupportedError when the CPU cannot run it.
void dequantize_with(DequantIsa isa, DType t, const uint8_t* src, int64_t n, float* out);

// Internal (dequant_avx2.cpp): kernels for F16, BF16 and the ggml block types
// (AVX2 + F16C), and table-lookup kernels for Q4_K/Q5_K (AVX-512 F/BW/VL).
// They return false for types they do not handle. Call only on CPUs that
// have the instruction sets.
bool dequantize_avx2(DType t, const uint8_t* src, int64_t n, float* out);
bool dequantize_avx512(DType t, const uint8_t* src, int64_t n, float* out);

}  // namespace kaival::weights
