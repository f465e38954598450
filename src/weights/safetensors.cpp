#include "weights/safetensors.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace kaival::weights {

namespace {

// The reference implementation refuses headers over 100 MB; so do we, which
// also bounds the JSON we hand to the parser.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
constexpr size_t kMaxRank = 8;
constexpr uint64_t kMaxDim = 1ull << 62;
constexpr int kMaxJsonDepth = 64;

// safetensors dtypes kaival can size and list but not decode.
struct OtherDType {
  std::string_view name;
  uint32_t elem_bytes;
};
constexpr OtherDType kOtherDTypes[] = {
    {"U16", 2}, {"U32", 4}, {"U64", 8}, {"C64", 8}, {"F8_E8M0", 1},
};

struct ParsedType {
  DType dtype;
  std::string name;
  uint32_t elem_bytes;
};

ParsedType parse_dtype(const std::string& s, const std::string& where, const std::string& tensor) {
  if (auto d = dtype_from_safetensors(s)) return {*d, s, traits(*d).block_bytes};
  for (const auto& o : kOtherDTypes)
    if (o.name == s) return {DType::Unsupported, s, o.elem_bytes};
  fail<UnsupportedError>(where, "unsupported dtype '{}' in tensor '{}'", s, tensor);
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

TensorInfo parse_entry(const std::string& name, const nlohmann::json& e, uint64_t data_offset,
                       uint64_t data_size, uint32_t file_index, const std::string& where) {
  if (!e.is_object()) fail(where, "tensor '{}': header entry is not an object", name);
  auto dt = e.find("dtype");
  auto sh = e.find("shape");
  auto off = e.find("data_offsets");
  if (dt == e.end() || !dt->is_string()) fail(where, "tensor '{}': missing or non-string dtype", name);
  if (sh == e.end() || !sh->is_array()) fail(where, "tensor '{}': missing or non-array shape", name);
  if (off == e.end() || !off->is_array() || off->size() != 2)
    fail(where, "tensor '{}': data_offsets must be an array [begin, end]", name);

  ParsedType type = parse_dtype(dt->get<std::string>(), where, name);
  TensorInfo t;
  t.name = name;
  t.dtype = type.dtype;
  t.type_name = type.name;

  if (sh->size() > kMaxRank) fail(where, "tensor '{}': rank {} exceeds {}", name, sh->size(), kMaxRank);
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_integer()) fail(where, "tensor '{}': shape entries must be integers", name);
    if (!d.is_number_unsigned())  // nlohmann stores non-negative integers as unsigned
      fail(where, "tensor '{}': negative dimension {}", name, d.get<int64_t>());
    uint64_t v = d.get<uint64_t>();
    if (v > kMaxDim) fail(where, "tensor '{}': dimension {} is too large", name, v);
    if (v != 0 && numel > UINT64_MAX / v) fail(where, "tensor '{}': element count overflows", name);
    numel *= v;
    t.shape.push_back(static_cast<int64_t>(v));
  }
  if (numel > kMaxDim) fail(where, "tensor '{}': element count {} is too large", name, numel);

  const auto& b = (*off)[0];
  const auto& en = (*off)[1];
  if (!b.is_number_unsigned() || !en.is_number_unsigned())
    fail(where, "tensor '{}': data_offsets must be non-negative integers", name);
  uint64_t begin = b.get<uint64_t>(), end = en.get<uint64_t>();
  if (begin > end) fail(where, "tensor '{}': data_offsets [{}, {}] are reversed", name, begin, end);
  if (end > data_size)
    fail(where, "tensor '{}': data_offsets [{}, {}] end past the data section ({} bytes)", name, begin,
         end, data_size);
  if (numel > data_size)  // every element takes at least one byte
    fail(where, "tensor '{}': {} elements cannot fit in the data section ({} bytes)", name, numel,
         data_size);
  uint64_t expect = numel * type.elem_bytes;  // numel <= file size, elem_bytes <= 8: no overflow
  if (end - begin != expect)
    fail(where, "tensor '{}': {} x {} elements needs {} bytes but data_offsets span {}", name, type.name,
         numel, expect, end - begin);
  t.file_index = file_index;
  t.offset = data_offset + begin;
  t.nbytes = end - begin;
  return t;
}

}  // namespace

void check_json_depth(std::string_view text, int max_depth, const std::string& where) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > max_depth) fail(where, "JSON nested deeper than {} levels", max_depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

SafetensorsFile parse_safetensors(std::span<const uint8_t> file, const std::string& where,
                                  uint32_t file_index) {
  if (file.size() < 8) fail(where, "file is {} bytes, too short for a safetensors header", file.size());
  SafetensorsFile out;
  out.header_size = read_u64_le(file.data());
  if (out.header_size > file.size() - 8)
    fail(where, "header length {} exceeds the file size ({} bytes)", out.header_size, file.size());
  if (out.header_size > kMaxHeaderBytes)
    fail(where, "header length {} exceeds the 100 MB limit", out.header_size);
  if (out.header_size < 2) fail(where, "header length {} is too small for a JSON object", out.header_size);
  out.data_offset = 8 + out.header_size;
  const uint64_t data_size = file.size() - out.data_offset;

  std::string_view text(reinterpret_cast<const char*>(file.data() + 8), out.header_size);
  check_json_depth(text, kMaxJsonDepth, where);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(where, "header is not valid JSON: {}", e.what());
  }
  if (!header.is_object()) fail(where, "header is not a JSON object");

  out.tensors.reserve(header.size());
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(where, "__metadata__ is not an object");
      out.metadata = entry;
      continue;
    }
    out.tensors.push_back(parse_entry(name, entry, out.data_offset, data_size, file_index, where));
  }

  // File order; then no two tensors may share bytes (zero-size tensors share nothing).
  std::sort(out.tensors.begin(), out.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.offset != b.offset ? a.offset < b.offset : a.nbytes < b.nbytes;
  });
  const TensorInfo* prev = nullptr;
  for (const auto& t : out.tensors) {
    if (t.nbytes == 0) continue;
    if (prev && t.offset < prev->offset + prev->nbytes)
      fail(where, "tensors '{}' and '{}' overlap in the data section", prev->name, t.name);
    prev = &t;
  }
  return out;
}

ShardIndex parse_shard_index(std::string_view json_text, const std::string& where) {
  check_json_depth(json_text, kMaxJsonDepth, where);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    fail(where, "index is not valid JSON: {}", e.what());
  }
  if (!j.is_object()) fail(where, "index is not a JSON object");
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) fail(where, "index has no weight_map object");
  ShardIndex out;
  for (const auto& [name, shard] : wm->items()) {
    if (!shard.is_string()) fail(where, "weight_map entry for '{}' is not a string", name);
    std::string file = shard.get<std::string>();
    if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos ||
        file.find('\\') != std::string::npos || file.find('\0') != std::string::npos)
      fail(where, "weight_map entry for '{}' names '{}', which is not a plain file name", name, file);
    out.weight_map.emplace(name, file);
    out.shards.push_back(std::move(file));
  }
  if (out.weight_map.empty()) fail(where, "weight_map is empty");
  std::sort(out.shards.begin(), out.shards.end());
  out.shards.erase(std::unique(out.shards.begin(), out.shards.end()), out.shards.end());
  return out;
}

}  // namespace kaival::weights
