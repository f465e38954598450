#pragma once
// GGUF v2/v3 (llama.cpp) files: metadata key/values of every type including
// nested arrays, tensor infos, alignment. Everything is validated against the
// file size before use; nothing is allocated from an untrusted count without a
// bound.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/mmap.h"
#include "weights/tensor.h"

namespace kaival::weights {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};

struct GgufValue;
struct GgufArray {
  GgufType elem_type;
  std::vector<GgufValue> items;
};
struct GgufValue {
  GgufType type;
  std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<GgufArray>> v;

  std::optional<int64_t> as_int() const;     // any integer type (and bool)
  std::optional<double> as_float() const;    // any numeric type
  const std::string* as_string() const;
  const GgufArray* as_array() const;
};

class GgufFile {
 public:
  // Parses header, metadata and tensor infos of a mapped file. `file_index` is
  // stored into each TensorInfo.
  static std::shared_ptr<GgufFile> parse(const MappedFile& f, uint32_t file_index = 0);

  uint32_t version = 0;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;  // absolute offset of the tensor data section
  std::map<std::string, GgufValue> metadata;
  std::vector<TensorInfo> tensors;

  const GgufValue* get(const std::string& key) const;
  std::optional<std::string> get_string(const std::string& key) const;
  std::optional<int64_t> get_int(const std::string& key) const;
  std::optional<double> get_float(const std::string& key) const;
  // Arrays of strings / numbers (e.g. tokenizer.ggml.tokens, .scores).
  std::vector<std::string> get_strings(const std::string& key) const;
  std::vector<float> get_floats(const std::string& key) const;
  std::vector<int64_t> get_ints(const std::string& key) const;
  // Metadata as JSON (long arrays summarised as {"type","length"} unless full).
  nlohmann::json metadata_json(bool full_arrays = false) const;
};

}  // namespace kaival::weights
