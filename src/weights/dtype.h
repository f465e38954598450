#pragma once
// Element types found in checkpoints: plain types of safetensors/PyTorch and
// the block-quantized types of GGUF (ggml).
#include <cstdint>
#include <optional>
#include <string_view>

namespace kaival::weights {

enum class DType : uint8_t {
  F64, F32, F16, BF16, F8_E4M3, F8_E5M2,
  I64, I32, I16, I8, U8, BOOL,
  Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1,
  Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K,
  Unsupported,  // a type kaival can list but not decode (e.g. GGUF IQ types)
};

struct DTypeTraits {
  std::string_view name;  // canonical spelling: "BF16", "Q4_K", ...
  uint32_t block_elems;   // elements per block (1 for plain types)
  uint32_t block_bytes;   // bytes per block (element size for plain types)
  bool is_float;          // decodes to real numbers (plain float or quantized)
  bool is_quantized;
};

const DTypeTraits& traits(DType t);
inline std::string_view dtype_name(DType t) { return traits(t).name; }
// safetensors dtype strings ("F32", "BF16", "F8_E4M3", "BOOL", ...).
std::optional<DType> dtype_from_safetensors(std::string_view s);
// ggml type ids as in GGUF tensor infos. Unknown ids give nullopt; known but
// undecodable ids (IQ*, TQ*, ...) give Unsupported and their name via
// ggml_type_name().
std::optional<DType> dtype_from_ggml(uint32_t ggml_type);
std::string_view ggml_type_name(uint32_t ggml_type);  // "IQ2_XXS", or "" if unknown
// Block geometry of a ggml type id (also for types kaival cannot decode), so
// that tensors of such types can still be listed and bounds-checked.
std::optional<DTypeTraits> ggml_type_traits(uint32_t ggml_type);

// Bytes for `n` elements; nullopt when n is not a multiple of the block size
// or the product overflows.
std::optional<uint64_t> byte_size(DType t, uint64_t n);

}  // namespace kaival::weights
