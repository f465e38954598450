#pragma once
// GGUF v2/v3 (llama.cpp) files: metadata key/values of every type including
// nested arrays, tensor infos, alignment. Everything is validated against the
// file size before use; nothing is allocated from an untrusted count without a
// bound.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
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

// GGUF's spelling of a value type: "uint8", "string", "array", ...
std::string_view gguf_type_name(GgufType t);

class GgufFile {
 public:
  // Parses header, metadata and tensor infos of a mapped file. `file_index` is
  // stored into each TensorInfo.
  static std::shared_ptr<GgufFile> parse(const MappedFile& f, uint32_t file_index = 0);
  // The same over bytes in memory (whole file); `name` is used in errors.
  // Throws FormatError for malformed input, UnsupportedError for GGUF v1,
  // big-endian files and unknown ggml type ids.
  static std::shared_ptr<GgufFile> parse(std::span<const uint8_t> bytes, const std::string& name,
                                         uint32_t file_index = 0);

  uint32_t version = 0;
  uint64_t alignment = 32;
  // Absolute offset of the tensor data section (the end of the header rounded
  // up to `alignment`; may lie past the end of a file without tensors).
  uint64_t data_offset = 0;
  std::map<std::string, GgufValue> metadata;
  std::vector<TensorInfo> tensors;
  std::vector<uint32_t> ggml_types;  // ggml type id of each tensor (parallel to `tensors`)

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
