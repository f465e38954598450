#include "weights/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <unordered_set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

// Layout (little-endian): "GGUF", u32 version, u64 tensor_count, u64 kv_count,
// kv_count x {string key, u32 type, value}, tensor_count x {string name,
// u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset}, padding to
// general.alignment, tensor data. Strings are u64 length + bytes; arrays are
// u32 element type + u64 count + elements (elements may themselves be arrays).
//
// Every count read from the file is checked against the bytes left before it
// sizes anything, so a lying header fails fast instead of allocating.

namespace kaival::weights {

static_assert(std::endian::native == std::endian::little, "GGUF reader assumes a little-endian host");

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF"
constexpr int kMaxDims = 4;               // GGML_MAX_DIMS
constexpr int kMaxArrayDepth = 16;        // arrays of arrays of ...
constexpr uint64_t kMaxAlignment = 1ull << 24;
constexpr uint64_t kMaxKeyBytes = 65535;
constexpr uint64_t kMaxTensorNameBytes = 65535;
// All array elements of one file together. Real vocabularies hold about a
// million (tokens + scores + types + merges); each parsed element costs ~48
// bytes, so this bounds the memory a small file can make us spend.
constexpr uint64_t kMaxMetadataElements = 1ull << 23;
// Smallest encodings, used to bound counts by the bytes left.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;              // key length, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 4 + 8;  // name (>=1 byte), n_dims, type, offset
constexpr size_t kJsonArraySummaryAbove = 64;

// Encoded size of a fixed-size value type; 0 for string/array.
uint64_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    case GgufType::STRING: case GgufType::ARRAY: return 0;
  }
  return 0;
}

uint64_t min_encoded_size(GgufType t) {
  if (t == GgufType::STRING) return 8;
  if (t == GgufType::ARRAY) return 4 + 8;
  return scalar_size(t);
}

// What is being read, for error messages; formatted only on failure so that
// reading a 100k-token vocabulary formats nothing.
struct Field {
  std::string_view what;
  std::string_view key = {};
  std::string str() const { return key.empty() ? std::string(what) : fmt::format("{} of '{}'", what, key); }
};

class Parser {
 public:
  Parser(std::span<const uint8_t> bytes, const std::string& where) : b_(bytes), where_(where) {}

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return b_.size() - pos_; }

  void need(uint64_t n, Field f) const {
    if (n > left())
      fail(where_, "truncated: {} needs {} bytes at offset {} but only {} remain", f.str(), n, pos_, left());
  }

  template <typename T>
  T scalar(Field f) {
    need(sizeof(T), f);
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string string(Field f, uint64_t max_len) {
    uint64_t at = pos_;
    uint64_t n = scalar<uint64_t>(f);
    if (n > left()) fail(where_, "{} at offset {} claims {} bytes but only {} remain", f.str(), at, n, left());
    if (n > max_len) fail(where_, "{} at offset {} is {} bytes long (limit {})", f.str(), at, n, max_len);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), static_cast<size_t>(n));
    pos_ += n;
    return s;
  }

  GgufType value_type(Field f) {
    uint64_t at = pos_;
    uint32_t t = scalar<uint32_t>(f);
    if (t > static_cast<uint32_t>(GgufType::F64))
      fail(where_, "{} at offset {} is unknown value type {}", f.str(), at, t);
    return static_cast<GgufType>(t);
  }

  GgufValue value(GgufType t, std::string_view key, int depth) {
    GgufValue out;
    out.type = t;
    Field f{"value", key};
    switch (t) {
      case GgufType::U8: out.v = uint64_t{scalar<uint8_t>(f)}; break;
      case GgufType::I8: out.v = int64_t{scalar<int8_t>(f)}; break;
      case GgufType::U16: out.v = uint64_t{scalar<uint16_t>(f)}; break;
      case GgufType::I16: out.v = int64_t{scalar<int16_t>(f)}; break;
      case GgufType::U32: out.v = uint64_t{scalar<uint32_t>(f)}; break;
      case GgufType::I32: out.v = int64_t{scalar<int32_t>(f)}; break;
      case GgufType::U64: out.v = scalar<uint64_t>(f); break;
      case GgufType::I64: out.v = scalar<int64_t>(f); break;
      case GgufType::F32: out.v = double{scalar<float>(f)}; break;
      case GgufType::F64: out.v = scalar<double>(f); break;
      case GgufType::BOOL: out.v = scalar<uint8_t>(f) != 0; break;
      case GgufType::STRING: out.v = string({"string value", key}, left()); break;
      case GgufType::ARRAY: out.v = array(key, depth + 1); break;
    }
    return out;
  }

  std::shared_ptr<GgufArray> array(std::string_view key, int depth) {
    if (depth > kMaxArrayDepth)
      fail(where_, "metadata '{}' nests arrays deeper than {} levels", key, kMaxArrayDepth);
    auto arr = std::make_shared<GgufArray>();
    arr->elem_type = value_type({"array element type", key});
    uint64_t at = pos_;
    uint64_t count = scalar<uint64_t>({"array length", key});
    uint64_t min = min_encoded_size(arr->elem_type);
    if (count > left() / min)
      fail(where_, "array '{}' at offset {} claims {} {} elements but only {} bytes remain", key, at, count,
           gguf_type_name(arr->elem_type), left());
    if (count > elements_left_)
      fail<UnsupportedError>(where_, "metadata holds more than {} array elements in total (at '{}')",
                             kMaxMetadataElements, key);
    elements_left_ -= count;
    arr->items.reserve(static_cast<size_t>(count));
    for (uint64_t i = 0; i < count; ++i) arr->items.push_back(value(arr->elem_type, key, depth));
    return arr;
  }

 private:
  std::span<const uint8_t> b_;
  const std::string& where_;
  uint64_t pos_ = 0;
  uint64_t elements_left_ = kMaxMetadataElements;
};

uint64_t read_alignment(const GgufFile& g, const std::string& where) {
  const GgufValue* v = g.get("general.alignment");
  if (!v) return 32;  // GGUF_DEFAULT_ALIGNMENT
  std::optional<int64_t> a = v->type == GgufType::BOOL ? std::nullopt : v->as_int();
  if (!a) fail(where, "general.alignment must be an integer, not {}", gguf_type_name(v->type));
  if (*a <= 0 || (*a & (*a - 1)) != 0 || static_cast<uint64_t>(*a) > kMaxAlignment)
    fail(where, "general.alignment {} is not a power of two between 1 and {}", *a, kMaxAlignment);
  return static_cast<uint64_t>(*a);
}

// Reads one tensor info; offsets stay relative to the data section here.
TensorInfo read_tensor_info(Parser& p, const std::string& where, uint32_t& ggml_type) {
  TensorInfo t;
  uint64_t at = p.pos();
  t.name = p.string({"tensor name"}, kMaxTensorNameBytes);
  if (t.name.empty()) fail(where, "tensor info at offset {} has an empty name", at);
  uint32_t n_dims = p.scalar<uint32_t>({"n_dims", t.name});
  if (n_dims > kMaxDims) fail(where, "tensor '{}' has {} dimensions (at most {})", t.name, n_dims, kMaxDims);
  int64_t ne[kMaxDims] = {1, 1, 1, 1};
  uint64_t numel = 1;
  for (uint32_t i = 0; i < n_dims; ++i) {
    uint64_t d = p.scalar<uint64_t>({"dimensions", t.name});
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(where, "tensor '{}' has negative dimension ne[{}]", t.name, i);
    if (d != 0 && numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / d)
      fail(where, "tensor '{}' element count overflows", t.name);
    numel *= d;
    ne[i] = static_cast<int64_t>(d);
  }
  ggml_type = p.scalar<uint32_t>({"type", t.name});
  t.offset = p.scalar<uint64_t>({"offset", t.name});
  std::optional<DTypeTraits> tr = ggml_type_traits(ggml_type);
  if (!tr) fail<UnsupportedError>(where, "unknown ggml type id {} in tensor '{}'", ggml_type, t.name);
  t.dtype = *dtype_from_ggml(ggml_type);
  t.type_name = std::string(ggml_type_name(ggml_type));
  if (ne[0] % tr->block_elems != 0)
    fail(where, "tensor '{}' of type {} has ne[0] = {}, not a multiple of the block size {}", t.name,
         t.type_name, ne[0], tr->block_elems);
  uint64_t blocks = numel / tr->block_elems;
  if (blocks > UINT64_MAX / tr->block_bytes) fail(where, "tensor '{}' byte size overflows", t.name);
  t.nbytes = blocks * tr->block_bytes;
  for (int i = static_cast<int>(n_dims) - 1; i >= 0; --i) t.shape.push_back(ne[i]);
  return t;
}

void validate_tensor_data(GgufFile& g, uint64_t file_size, const std::string& where) {
  std::unordered_set<std::string_view> names;
  names.reserve(g.tensors.size());
  for (TensorInfo& t : g.tensors) {
    if (!names.insert(t.name).second) fail(where, "duplicate tensor name '{}'", t.name);
    if (t.offset % g.alignment != 0)
      fail(where, "tensor '{}' offset {} is not a multiple of the alignment {}", t.name, t.offset, g.alignment);
    if (g.data_offset > file_size || t.offset > file_size - g.data_offset ||
        t.nbytes > file_size - g.data_offset - t.offset)
      fail(where, "tensor '{}' data [{}, +{}) lies past the end of the file ({} bytes)", t.name,
           g.data_offset + std::min(t.offset, file_size), t.nbytes, file_size);
    t.offset += g.data_offset;
  }
  std::vector<const TensorInfo*> order;
  order.reserve(g.tensors.size());
  for (const TensorInfo& t : g.tensors)
    if (t.nbytes > 0) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i - 1]->offset + order[i - 1]->nbytes > order[i]->offset)
      fail(where, "tensors '{}' and '{}' overlap", order[i - 1]->name, order[i]->name);
}

// Replaces invalid UTF-8 by U+FFFD so that the JSON can always be dumped
// (token strings of byte-level vocabularies need not be valid UTF-8).
std::string valid_utf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0, n = s.size();
  auto cont = [&](size_t k) { return k < n && (static_cast<uint8_t>(s[k]) & 0xC0) == 0x80; };
  while (i < n) {
    uint8_t c = static_cast<uint8_t>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 && c >= 0xC2 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 && c <= 0xF4 ? 4 : 0;
    bool ok = len > 0;
    for (size_t k = 1; ok && k < len; ++k) ok = cont(i + k);
    if (ok && len == 3) {
      uint8_t c1 = static_cast<uint8_t>(s[i + 1]);
      ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);  // overlong, surrogates
    }
    if (ok && len == 4) {
      uint8_t c1 = static_cast<uint8_t>(s[i + 1]);
      ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    if (ok) {
      out.append(s, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

nlohmann::json value_json(const GgufValue& v, bool full_arrays) {
  switch (v.type) {
    case GgufType::STRING: return valid_utf8(*v.as_string());
    case GgufType::BOOL: return std::get<bool>(v.v);
    case GgufType::F32: {
      // Print the shortest decimal that round-trips the float32, not the double.
      float f = static_cast<float>(std::get<double>(v.v));
      return std::strtod(fmt::format("{}", f).c_str(), nullptr);
    }
    case GgufType::F64: return std::get<double>(v.v);
    case GgufType::U8: case GgufType::U16: case GgufType::U32: case GgufType::U64: return std::get<uint64_t>(v.v);
    case GgufType::I8: case GgufType::I16: case GgufType::I32: case GgufType::I64: return std::get<int64_t>(v.v);
    case GgufType::ARRAY: {
      const GgufArray& a = *v.as_array();
      if (!full_arrays && a.items.size() > kJsonArraySummaryAbove)
        return {{"type", fmt::format("array<{}>", gguf_type_name(a.elem_type))}, {"length", a.items.size()}};
      nlohmann::json arr = nlohmann::json::array();
      for (const GgufValue& e : a.items) arr.push_back(value_json(e, full_arrays));
      return arr;
    }
  }
  return nullptr;
}

}  // namespace

std::string_view gguf_type_name(GgufType t) {
  static constexpr std::string_view names[] = {"uint8", "int8",   "uint16", "int16", "uint32", "int32", "float32",
                                               "bool",  "string", "array",  "uint64", "int64", "float64"};
  auto i = static_cast<uint32_t>(t);
  return i < std::size(names) ? names[i] : "unknown";
}

std::optional<int64_t> GgufValue::as_int() const {
  if (const auto* u = std::get_if<uint64_t>(&v)) {
    if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(*u);
  }
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  if (const auto* b = std::get_if<bool>(&v)) return *b ? 1 : 0;
  return std::nullopt;
}

std::optional<double> GgufValue::as_float() const {
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* u = std::get_if<uint64_t>(&v)) return static_cast<double>(*u);
  if (const auto* i = std::get_if<int64_t>(&v)) return static_cast<double>(*i);
  return std::nullopt;
}

const std::string* GgufValue::as_string() const { return std::get_if<std::string>(&v); }

const GgufArray* GgufValue::as_array() const {
  const auto* p = std::get_if<std::shared_ptr<GgufArray>>(&v);
  return p ? p->get() : nullptr;
}

std::shared_ptr<GgufFile> GgufFile::parse(const MappedFile& f, uint32_t file_index) {
  return parse(f.bytes(), f.path(), file_index);
}

std::shared_ptr<GgufFile> GgufFile::parse(std::span<const uint8_t> bytes, const std::string& where,
                                          uint32_t file_index) {
  Parser p(bytes, where);
  auto g = std::make_shared<GgufFile>();

  uint32_t magic = p.scalar<uint32_t>({"magic"});
  if (magic != kMagic) fail(where, "not a GGUF file (magic {:08x}, expected \"GGUF\")", magic);
  g->version = p.scalar<uint32_t>({"version"});
  if (g->version == 1) fail<UnsupportedError>(where, "GGUF v1 is not supported (only v2 and v3)");
  if (g->version >= 0x10000 && (__builtin_bswap32(g->version) == 2 || __builtin_bswap32(g->version) == 3))
    fail<UnsupportedError>(where, "big-endian GGUF is not supported");
  if (g->version != 2 && g->version != 3) fail<UnsupportedError>(where, "unknown GGUF version {}", g->version);

  uint64_t n_tensors = p.scalar<uint64_t>({"tensor count"});
  uint64_t n_kv = p.scalar<uint64_t>({"metadata count"});
  if (n_kv > p.left() / kMinKvBytes)
    fail(where, "metadata count {} cannot fit in the {} bytes that remain", n_kv, p.left());

  for (uint64_t i = 0; i < n_kv; ++i) {
    uint64_t at = p.pos();
    std::string key = p.string({"metadata key"}, kMaxKeyBytes);
    if (key.empty()) fail(where, "metadata key at offset {} is empty", at);
    GgufType t = p.value_type({"value type", key});
    GgufValue v = p.value(t, key, 0);
    if (!g->metadata.emplace(key, std::move(v)).second) fail(where, "duplicate metadata key '{}'", key);
  }
  g->alignment = read_alignment(*g, where);

  if (n_tensors > p.left() / kMinTensorInfoBytes)
    fail(where, "tensor count {} cannot fit in the {} bytes that remain", n_tensors, p.left());
  g->tensors.reserve(static_cast<size_t>(n_tensors));
  g->ggml_types.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    uint32_t type = 0;
    g->tensors.push_back(read_tensor_info(p, where, type));
    g->tensors.back().file_index = file_index;
    g->ggml_types.push_back(type);
  }
  // p.pos() <= file size, far from overflowing when rounded up.
  g->data_offset = (p.pos() + g->alignment - 1) / g->alignment * g->alignment;
  validate_tensor_data(*g, bytes.size(), where);
  return g;
}

const GgufValue* GgufFile::get(const std::string& key) const {
  auto it = metadata.find(key);
  return it == metadata.end() ? nullptr : &it->second;
}

std::optional<std::string> GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = get(key);
  const std::string* s = v ? v->as_string() : nullptr;
  if (!s) return std::nullopt;
  return *s;
}

std::optional<int64_t> GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = get(key);
  return v ? v->as_int() : std::nullopt;
}

std::optional<double> GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = get(key);
  return v ? v->as_float() : std::nullopt;
}

std::vector<std::string> GgufFile::get_strings(const std::string& key) const {
  const GgufValue* v = get(key);
  const GgufArray* a = v ? v->as_array() : nullptr;
  std::vector<std::string> out;
  if (!a || a->elem_type != GgufType::STRING) return out;
  out.reserve(a->items.size());
  for (const GgufValue& e : a->items) out.push_back(*e.as_string());
  return out;
}

std::vector<float> GgufFile::get_floats(const std::string& key) const {
  const GgufValue* v = get(key);
  const GgufArray* a = v ? v->as_array() : nullptr;
  std::vector<float> out;
  if (!a || a->elem_type == GgufType::STRING || a->elem_type == GgufType::ARRAY) return out;
  out.reserve(a->items.size());
  for (const GgufValue& e : a->items) out.push_back(static_cast<float>(e.as_float().value_or(0.0)));
  return out;
}

std::vector<int64_t> GgufFile::get_ints(const std::string& key) const {
  const GgufValue* v = get(key);
  const GgufArray* a = v ? v->as_array() : nullptr;
  std::vector<int64_t> out;
  if (!a) return out;
  switch (a->elem_type) {
    case GgufType::STRING: case GgufType::ARRAY: case GgufType::F32: case GgufType::F64: return out;
    default: break;
  }
  out.reserve(a->items.size());
  for (const GgufValue& e : a->items) {
    std::optional<int64_t> i = e.as_int();
    if (!i) return {};  // a uint64 beyond int64: not representable
    out.push_back(*i);
  }
  return out;
}

nlohmann::json GgufFile::metadata_json(bool full_arrays) const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [key, value] : metadata) out[valid_utf8(key)] = value_json(value, full_arrays);
  return out;
}

}  // namespace kaival::weights
