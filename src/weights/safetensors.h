#pragma once
// safetensors (Hugging Face): an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then the
// data section. The header is untrusted: every field is validated against the
// file size before any tensor is described.
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "weights/tensor.h"

namespace kaival::weights {

struct SafetensorsFile {
  uint64_t header_size = 0;  // N of the 8-byte prefix
  uint64_t data_offset = 0;  // absolute offset of the data section (8 + N)
  nlohmann::json metadata;   // "__metadata__" object, or null
  // Sorted by offset (file order). Offsets are absolute in the file.
  std::vector<TensorInfo> tensors;
};

// Parses and validates the header of a whole safetensors file held in `file`
// (usually a memory mapping). `where` names the file in errors. Throws
// FormatError for malformed or lying headers, UnsupportedError for a dtype
// kaival cannot even size.
SafetensorsFile parse_safetensors(std::span<const uint8_t> file, const std::string& where,
                                  uint32_t file_index = 0);

// The index of a sharded Hugging Face checkpoint (model.safetensors.index.json
// or pytorch_model.bin.index.json).
struct ShardIndex {
  std::vector<std::string> shards;                // distinct shard file names, sorted
  std::map<std::string, std::string> weight_map;  // tensor name -> shard file name
};
// Shard names must be plain file names in the index's folder (no paths).
ShardIndex parse_shard_index(std::string_view json_text, const std::string& where);

// Rejects JSON nested deeper than `max_depth` before a recursive consumer
// sees it (brackets outside strings are counted).
void check_json_depth(std::string_view text, int max_depth, const std::string& where);

}  // namespace kaival::weights
