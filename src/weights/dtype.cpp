#include "weights/dtype.h"

#include <array>

namespace kaival::weights {

namespace {
// Indexed by DType. Block geometry of the quantized types is ggml's
// (QK4_0 = 32, QK_K = 256).
constexpr std::array<DTypeTraits, static_cast<size_t>(DType::Unsupported) + 1> kTraits = {{
    {"F64", 1, 8, true, false},     {"F32", 1, 4, true, false},     {"F16", 1, 2, true, false},
    {"BF16", 1, 2, true, false},    {"F8_E4M3", 1, 1, true, false}, {"F8_E5M2", 1, 1, true, false},
    {"I64", 1, 8, false, false},    {"I32", 1, 4, false, false},    {"I16", 1, 2, false, false},
    {"I8", 1, 1, false, false},     {"U8", 1, 1, false, false},     {"BOOL", 1, 1, false, false},
    {"Q4_0", 32, 18, true, true},   {"Q4_1", 32, 20, true, true},   {"Q5_0", 32, 22, true, true},
    {"Q5_1", 32, 24, true, true},   {"Q8_0", 32, 34, true, true},   {"Q8_1", 32, 36, true, true},
    {"Q2_K", 256, 84, true, true},  {"Q3_K", 256, 110, true, true}, {"Q4_K", 256, 144, true, true},
    {"Q5_K", 256, 176, true, true}, {"Q6_K", 256, 210, true, true}, {"Q8_K", 256, 292, true, true},
    {"UNSUPPORTED", 1, 1, false, false},
}};

struct GgmlType {
  uint32_t id;
  const char* name;
  DType dtype;
  uint32_t block_elems, block_bytes;
};
// ggml.h type ids. Types without a decoder in kaival map to Unsupported but
// keep their geometry so their tensors can be listed and bounds-checked.
constexpr GgmlType kGgml[] = {
    {0, "F32", DType::F32, 1, 4},          {1, "F16", DType::F16, 1, 2},
    {2, "Q4_0", DType::Q4_0, 32, 18},      {3, "Q4_1", DType::Q4_1, 32, 20},
    {6, "Q5_0", DType::Q5_0, 32, 22},      {7, "Q5_1", DType::Q5_1, 32, 24},
    {8, "Q8_0", DType::Q8_0, 32, 34},      {9, "Q8_1", DType::Q8_1, 32, 36},
    {10, "Q2_K", DType::Q2_K, 256, 84},    {11, "Q3_K", DType::Q3_K, 256, 110},
    {12, "Q4_K", DType::Q4_K, 256, 144},   {13, "Q5_K", DType::Q5_K, 256, 176},
    {14, "Q6_K", DType::Q6_K, 256, 210},   {15, "Q8_K", DType::Q8_K, 256, 292},
    {16, "IQ2_XXS", DType::Unsupported, 256, 66}, {17, "IQ2_XS", DType::Unsupported, 256, 74},
    {18, "IQ3_XXS", DType::Unsupported, 256, 98}, {19, "IQ1_S", DType::Unsupported, 256, 50},
    {20, "IQ4_NL", DType::Unsupported, 32, 18},   {21, "IQ3_S", DType::Unsupported, 256, 110},
    {22, "IQ2_S", DType::Unsupported, 256, 82},   {23, "IQ4_XS", DType::Unsupported, 256, 136},
    {24, "I8", DType::I8, 1, 1},           {25, "I16", DType::I16, 1, 2},
    {26, "I32", DType::I32, 1, 4},         {27, "I64", DType::I64, 1, 8},
    {28, "F64", DType::F64, 1, 8},         {29, "IQ1_M", DType::Unsupported, 256, 56},
    {30, "BF16", DType::BF16, 1, 2},       {34, "TQ1_0", DType::Unsupported, 256, 54},
    {35, "TQ2_0", DType::Unsupported, 256, 66}, {39, "MXFP4", DType::Unsupported, 32, 17},
};

const GgmlType* find_ggml(uint32_t id) {
  for (const auto& g : kGgml)
    if (g.id == id) return &g;
  return nullptr;
}
}  // namespace

const DTypeTraits& traits(DType t) { return kTraits[static_cast<size_t>(t)]; }

std::optional<DType> dtype_from_safetensors(std::string_view s) {
  static constexpr DType plain[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::F8_E4M3,
                                    DType::F8_E5M2, DType::I64, DType::I32, DType::I16, DType::I8,
                                    DType::U8, DType::BOOL};
  for (DType t : plain)
    if (traits(t).name == s) return t;
  return std::nullopt;
}

std::optional<DType> dtype_from_ggml(uint32_t id) {
  const GgmlType* g = find_ggml(id);
  if (!g) return std::nullopt;
  return g->dtype;
}

std::string_view ggml_type_name(uint32_t id) {
  const GgmlType* g = find_ggml(id);
  return g ? g->name : "";
}

std::optional<DTypeTraits> ggml_type_traits(uint32_t id) {
  const GgmlType* g = find_ggml(id);
  if (!g) return std::nullopt;
  return DTypeTraits{g->name, g->block_elems, g->block_bytes, g->dtype != DType::Unsupported,
                     g->block_elems > 1};
}

std::optional<uint64_t> byte_size(DType t, uint64_t n) {
  const DTypeTraits& tr = traits(t);
  if (n % tr.block_elems != 0) return std::nullopt;
  uint64_t blocks = n / tr.block_elems;
  if (blocks != 0 && tr.block_bytes > UINT64_MAX / blocks) return std::nullopt;
  return blocks * tr.block_bytes;
}

}  // namespace kaival::weights
