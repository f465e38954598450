#pragma once
// Internals of dequantize() (declared in weights/checkpoint.h) exposed for
// tests and benchmarks.
#include <cstdint>
#include <string_view>

#include "weights/dtype.h"

namespace kaival::weights {

// The same decoders compiled for baseline x86-64 only (no runtime dispatch),
// so tests can check that both builds of the kernels agree bit for bit.
void dequantize_portable(DType t, const uint8_t* src, int64_t n, float* out);
// Instruction set dequantize() uses on this CPU: "avx2" or "baseline".
std::string_view dequantize_isa();

// Internal (dequant_avx2.cpp): AVX2 + F16C kernels for F16, BF16 and the ggml
// block types; false for other types. Call only when the CPU has AVX2/F16C.
bool dequantize_avx2(DType t, const uint8_t* src, int64_t n, float* out);

}  // namespace kaival::weights
