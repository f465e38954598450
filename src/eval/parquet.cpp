#include "eval/parquet.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include <snappy.h>
#include <zlib.h>
#include <zstd.h>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/mmap.h"

namespace kaival::eval {

using OJson = nlohmann::ordered_json;

namespace {

// Limits that no dataset file of ours comes near; a header past them is a lie or an attack.
constexpr uint64_t kMaxFooter = 64ull << 20;       // FileMetaData bytes
constexpr size_t kMaxSchema = 100000;              // schema elements
constexpr size_t kMaxListLen = 1u << 24;           // Thrift list elements
constexpr int kMaxThriftDepth = 32;

// ---------------------------------------------------------------------------------------------
// Thrift compact protocol.

enum CType : uint8_t {
  kStop = 0, kTrue = 1, kFalse = 2, kByte = 3, kI16 = 4, kI32 = 5, kI64 = 6, kDouble = 7,
  kBinary = 8, kList = 9, kSet = 10, kMap = 11, kStruct = 12
};

class Thrift {
 public:
  Thrift(const uint8_t* p, size_t n, const std::string& where, std::string what)
      : p_(p), end_(p + n), where_(where), what_(std::move(what)) {}
  size_t used(const uint8_t* start) const { return static_cast<size_t>(p_ - start); }
  const uint8_t* pos() const { return p_; }

  [[noreturn]] void bad(const std::string& why) const { fail(where_, "{}: {}", what_, why); }

  uint8_t byte() {
    if (p_ >= end_) bad("truncated");
    return *p_++;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b = byte();
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    bad("varint longer than 10 bytes");
  }
  int64_t zigzag() {
    uint64_t v = varint();
    return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
  }
  int32_t i32() {
    int64_t v = zigzag();
    if (v < INT32_MIN || v > INT32_MAX) bad("i32 out of range");
    return static_cast<int32_t>(v);
  }
  std::string binary() {
    uint64_t n = varint();
    if (n > static_cast<uint64_t>(end_ - p_)) bad("string runs past the end");
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  // List header: element count and element type.
  std::pair<size_t, uint8_t> list_header() {
    uint8_t b = byte();
    uint64_t n = b >> 4;
    if (n == 15) n = varint();
    if (n > kMaxListLen || n > static_cast<uint64_t>(end_ - p_)) bad("list of " + std::to_string(n) + " elements is too long");
    return {static_cast<size_t>(n), static_cast<uint8_t>(b & 0x0f)};
  }
  // Calls fn(field id, type) for every field of a struct; fn must consume the value (or skip it).
  template <class F>
  void read_struct(F&& fn, int depth = 0) {
    if (depth > kMaxThriftDepth) bad("structs nested too deeply");
    int16_t last = 0;
    for (;;) {
      uint8_t b = byte();
      uint8_t type = b & 0x0f;
      if (type == kStop) return;
      int16_t id;
      if (b >> 4) {
        id = static_cast<int16_t>(last + (b >> 4));
      } else {
        int64_t v = zigzag();
        if (v < INT16_MIN || v > INT16_MAX) bad("field id out of range");
        id = static_cast<int16_t>(v);
      }
      last = id;
      if (type > kStruct) bad("unknown field type " + std::to_string(type));
      fn(id, type);
    }
  }
  bool boolean(uint8_t type) {  // a struct field's bool lives in its type
    if (type == kTrue) return true;
    if (type == kFalse) return false;
    bad("expected a bool");
  }
  void skip(uint8_t type, int depth = 0) {
    if (depth > kMaxThriftDepth) bad("values nested too deeply");
    switch (type) {
      case kTrue: case kFalse: return;
      case kByte: byte(); return;
      case kI16: case kI32: case kI64: varint(); return;
      case kDouble: need(8); p_ += 8; return;
      case kBinary: { uint64_t n = varint(); need(n); p_ += n; return; }
      case kList: case kSet: {
        auto [n, et] = list_header();
        for (size_t i = 0; i < n; ++i) skip_elem(et, depth + 1);
        return;
      }
      case kMap: {
        uint64_t n = varint();
        if (n == 0) return;
        if (n > kMaxListLen) bad("map too large");
        uint8_t kv = byte();
        for (uint64_t i = 0; i < n; ++i) {
          skip_elem(kv >> 4, depth + 1);
          skip_elem(kv & 0x0f, depth + 1);
        }
        return;
      }
      case kStruct: read_struct([&](int16_t, uint8_t t) { skip(t, depth + 1); }, depth + 1); return;
      default: bad("unknown type " + std::to_string(type));
    }
  }
  void skip_elem(uint8_t type, int depth) {
    if (type == kTrue || type == kFalse) byte();  // container bools take a byte
    else skip(type, depth);
  }
  void expect(uint8_t got, uint8_t want) {
    if (got != want) bad("field of type " + std::to_string(got) + ", expected " + std::to_string(want));
  }
  std::vector<int32_t> i32_list(uint8_t type) {
    expect(type, kList);
    auto [n, et] = list_header();
    if (et != kI32) bad("expected a list of i32");
    std::vector<int32_t> v;
    for (size_t i = 0; i < n; ++i) v.push_back(i32());
    return v;
  }
  std::vector<std::string> string_list(uint8_t type) {
    expect(type, kList);
    auto [n, et] = list_header();
    if (et != kBinary) bad("expected a list of strings");
    std::vector<std::string> v;
    for (size_t i = 0; i < n; ++i) v.push_back(binary());
    return v;
  }
  int32_t get_i32(uint8_t type) { expect(type, kI32); return i32(); }
  int64_t get_i64(uint8_t type) {
    if (type != kI64 && type != kI32) expect(type, kI64);
    return zigzag();
  }

 private:
  void need(uint64_t n) {
    if (n > static_cast<uint64_t>(end_ - p_)) bad("truncated");
  }
  const uint8_t* p_;
  const uint8_t* end_;
  const std::string& where_;
  std::string what_;
};

// ---------------------------------------------------------------------------------------------
// Metadata.

enum PType { kBoolean = 0, kInt32 = 1, kInt64 = 2, kInt96 = 3, kFloat = 4, kDoubleT = 5, kByteArray = 6, kFixed = 7 };
enum Rep { kRequired = 0, kOptional = 1, kRepeated = 2 };
enum Conv { kUtf8 = 0, kMapC = 1, kMapKeyValue = 2, kListC = 3, kDecimal = 5, kUint8 = 11, kUint16 = 12, kUint32 = 13, kUint64 = 14 };
enum Codec { kUncompressed = 0, kSnappy = 1, kGzip = 2, kLzo = 3, kBrotli = 4, kLz4 = 5, kZstd = 6, kLz4Raw = 7 };
enum Enc { kPlain = 0, kPlainDict = 2, kRle = 3, kBitPacked = 4, kRleDict = 8 };
enum PageType { kDataPage = 0, kIndexPage = 1, kDictPage = 2, kDataPageV2 = 3 };

const char* codec_name(int c) {
  static const char* n[] = {"UNCOMPRESSED", "SNAPPY", "GZIP", "LZO", "BROTLI", "LZ4", "ZSTD", "LZ4_RAW"};
  return c >= 0 && c < 8 ? n[c] : "unknown";
}
const char* encoding_name(int e) {
  static const char* n[] = {"PLAIN", "GROUP_VAR_INT", "PLAIN_DICTIONARY", "RLE", "BIT_PACKED", "DELTA_BINARY_PACKED",
                            "DELTA_LENGTH_BYTE_ARRAY", "DELTA_BYTE_ARRAY", "RLE_DICTIONARY", "BYTE_STREAM_SPLIT"};
  return e >= 0 && e < 10 ? n[e] : "unknown";
}

struct SchemaElement {
  int type = -1;  // -1: group
  int type_length = 0;
  int repetition = kRequired;
  std::string name;
  int num_children = 0;
  int converted = -1;
  int scale = 0;
  bool logical_list = false, logical_map = false, logical_string = false, logical_decimal = false;
  std::vector<int> children;  // indices, filled when the tree is built
};

struct ColumnMeta {
  int type = -1;
  std::vector<std::string> path;
  int codec = 0;
  int64_t num_values = 0;
  int64_t total_compressed = 0;
  int64_t data_page_offset = -1;
  int64_t dict_page_offset = -1;
  bool has_meta = false;
  bool external = false;
};

struct RowGroup {
  std::vector<ColumnMeta> columns;
  int64_t num_rows = 0;
};

SchemaElement read_schema_element(Thrift& t) {
  SchemaElement e;
  t.read_struct([&](int16_t id, uint8_t ty) {
    switch (id) {
      case 1: e.type = t.get_i32(ty); break;
      case 2: e.type_length = t.get_i32(ty); break;
      case 3: e.repetition = t.get_i32(ty); break;
      case 4: t.expect(ty, kBinary); e.name = t.binary(); break;
      case 5: e.num_children = t.get_i32(ty); break;
      case 6: e.converted = t.get_i32(ty); break;
      case 7: e.scale = t.get_i32(ty); break;
      case 10:  // LogicalType union: 1 STRING, 2 MAP, 3 LIST, 5 DECIMAL {1 scale, 2 precision}
        t.expect(ty, kStruct);
        t.read_struct([&](int16_t lid, uint8_t lty) {
          if (lid == 1) e.logical_string = true;
          if (lid == 2) e.logical_map = true;
          if (lid == 3) e.logical_list = true;
          if (lid == 5 && lty == kStruct) {
            e.logical_decimal = true;
            t.read_struct([&](int16_t did, uint8_t dty) {
              if (did == 1 && dty == kI32) e.scale = t.i32();
              else t.skip(dty);
            });
            return;
          }
          t.skip(lty);
        });
        break;
      default: t.skip(ty);
    }
  });
  return e;
}

ColumnMeta read_column_chunk(Thrift& t) {
  ColumnMeta c;
  t.read_struct([&](int16_t id, uint8_t ty) {
    if (id == 1) {  // file_path: the chunk lives in another file
      t.expect(ty, kBinary);
      c.external = !t.binary().empty();
    } else if (id == 3) {
      t.expect(ty, kStruct);
      c.has_meta = true;
      t.read_struct([&](int16_t mid, uint8_t mty) {
        switch (mid) {
          case 1: c.type = t.get_i32(mty); break;
          case 3: c.path = t.string_list(mty); break;
          case 4: c.codec = t.get_i32(mty); break;
          case 5: c.num_values = t.get_i64(mty); break;
          case 7: c.total_compressed = t.get_i64(mty); break;
          case 9: c.data_page_offset = t.get_i64(mty); break;
          case 11: c.dict_page_offset = t.get_i64(mty); break;
          default: t.skip(mty);
        }
      });
    } else {
      t.skip(ty);
    }
  });
  return c;
}

// ---------------------------------------------------------------------------------------------
// Page decoding helpers.

struct Bytes {
  const uint8_t* p;
  size_t n;
};

// RLE / bit-packed hybrid: appends exactly `count` values (or fails).
template <class T>
void decode_hybrid(Bytes in, int bit_width, size_t count, std::vector<T>& out, const std::string& where,
                   const std::string& what) {
  if (bit_width < 0 || bit_width > 32) fail(where, "{}: bit width {} out of range", what, bit_width);
  size_t pos = 0, done = 0;
  out.reserve(out.size() + count);
  auto byte = [&]() -> uint8_t {
    if (pos >= in.n) fail(where, "{}: RLE data truncated", what);
    return in.p[pos++];
  };
  const uint64_t mask = bit_width == 32 ? 0xffffffffull : ((1ull << bit_width) - 1);
  if (count > 0 && bit_width == 0 && in.n == 0) {  // all zeros, no data needed
    out.insert(out.end(), count, T{});
    return;
  }
  while (done < count) {
    uint64_t header = 0;
    for (int shift = 0;; shift += 7) {
      if (shift > 63) fail(where, "{}: bad RLE run header", what);
      uint8_t b = byte();
      header |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) break;
    }
    if (header & 1) {  // bit-packed groups of 8 values, `bit_width` bytes per group
      uint64_t groups = header >> 1;
      uint64_t left = count - done;
      uint64_t nvals = groups >= left / 8 + 1 ? left : groups * 8;
      uint64_t avail = in.n - pos;
      if ((nvals * static_cast<uint64_t>(bit_width) + 7) / 8 > avail)
        fail(where, "{}: bit-packed run runs past the data", what);
      const uint8_t* base = in.p + pos;
      uint64_t bitpos = 0;
      for (uint64_t i = 0; i < nvals; ++i) {
        uint64_t v = 0;
        for (int b = 0; b < bit_width; ++b, ++bitpos) v |= uint64_t((base[bitpos >> 3] >> (bitpos & 7)) & 1) << b;
        out.push_back(static_cast<T>(v));
      }
      // The run's bytes (the last run may stop short of its padding at the end of the data).
      uint64_t run_bytes = groups > avail ? avail : std::min<uint64_t>(groups * static_cast<uint64_t>(bit_width), avail);
      pos += static_cast<size_t>(run_bytes);
      done += static_cast<size_t>(nvals);
    } else {
      uint64_t run = header >> 1;
      if (run == 0) fail(where, "{}: empty RLE run", what);
      uint64_t v = 0;
      for (int b = 0; b < (bit_width + 7) / 8; ++b) v |= uint64_t(byte()) << (8 * b);
      if (v > mask) fail(where, "{}: RLE value {} wider than {} bits", what, v, bit_width);
      uint64_t n = std::min<uint64_t>(run, count - done);
      out.insert(out.end(), n, static_cast<T>(v));
      done += n;
    }
  }
}

int bit_width_of(int max_level) {
  int w = 0;
  while ((1 << w) <= max_level) ++w;
  return w;
}

bool valid_utf8(const uint8_t* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c < 0x80) { ++i; continue; }
    int len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

uint32_t le32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Leaf columns and how they fold back into rows.

struct Leaf {
  std::string name;              // dotted path, for messages
  std::vector<std::string> path;  // path_in_schema
  int type = 0, type_length = 0, scale = 0;
  bool is_string = false, is_decimal = false, is_unsigned = false;
  int max_def = 0, max_rep = 0;
  int elem = -1;  // its primitive schema element
  // Where the value goes in the row: keys from the top-level column down.
  std::vector<std::string> keys;
  // Definition level at which each of keys[0..n-2] (the enclosing structs) is present.
  std::vector<int> struct_def;
  // Lists (max_rep == 1): keys.back() holds the list; list_def: the list is non-null;
  // elem_def: it has at least this element.
  int list_def = 0, elem_def = 0;
};

// One leaf's decoded column chunk.
struct ChunkData {
  std::vector<uint16_t> def, rep;  // empty when max level is 0
  std::vector<OJson> values;       // non-null values
  size_t entries = 0;              // level entries
};

}  // namespace

struct ParquetReader::Impl {
  std::string where;
  ParquetLimits lim;
  uint64_t pages_end = 0;  // where the footer starts
  MappedFile file;
  std::span<const uint8_t> data;
  std::vector<SchemaElement> schema;
  std::vector<Leaf> leaves;
  std::vector<std::string> columns;
  std::vector<RowGroup> groups;
  int64_t num_rows = 0;
  std::string created_by;
  // Streaming state.
  size_t next_group = 0;
  std::vector<OJson> rows;
  size_t row_pos = 0;

  void open();
  void build_leaves();
  ChunkData read_chunk(const Leaf& leaf, const ColumnMeta& cm, int64_t group_rows);
  std::vector<uint8_t> decompress(int codec, Bytes in, size_t out_size, const std::string& what);
  void decode_values(const Leaf& leaf, Bytes in, size_t n, std::vector<OJson>& out, const std::string& what);
  OJson convert(const Leaf& leaf, const uint8_t* p, size_t n);
};

void ParquetReader::Impl::open() {
  const uint8_t* d = data.data();
  size_t n = data.size();
  if (n < 12) fail(where, "not a Parquet file: {} bytes is shorter than the 12-byte frame", n);
  if (std::memcmp(d, "PAR1", 4) != 0) {
    if (std::memcmp(d, "PARE", 4) == 0) throw UnsupportedError(where, "encrypted Parquet files are not supported");
    fail(where, "not a Parquet file: no 'PAR1' magic at the start");
  }
  if (std::memcmp(d + n - 4, "PAR1", 4) != 0) fail(where, "no 'PAR1' magic at the end: the file is truncated or not Parquet");
  uint32_t footer_len = le32(d + n - 8);
  if (footer_len == 0 || footer_len > n - 12 || footer_len > kMaxFooter)
    fail(where, "footer length {} does not fit the {}-byte file", footer_len, n);
  const uint8_t* footer = d + n - 8 - footer_len;
  pages_end = n - 8 - footer_len;
  Thrift t(footer, footer_len, where, "footer (FileMetaData)");
  bool have_schema = false;
  t.read_struct([&](int16_t id, uint8_t ty) {
    switch (id) {
      case 2: {
        t.expect(ty, kList);
        auto [cnt, et] = t.list_header();
        if (et != kStruct) t.bad("schema is not a list of structs");
        if (cnt > kMaxSchema) t.bad("too many schema elements");
        for (size_t i = 0; i < cnt; ++i) schema.push_back(read_schema_element(t));
        have_schema = true;
        break;
      }
      case 3: num_rows = t.get_i64(ty); break;
      case 4: {
        t.expect(ty, kList);
        auto [cnt, et] = t.list_header();
        if (et != kStruct) t.bad("row_groups is not a list of structs");
        for (size_t i = 0; i < cnt; ++i) {
          RowGroup g;
          t.read_struct([&](int16_t gid, uint8_t gty) {
            if (gid == 1) {
              t.expect(gty, kList);
              auto [nc, cet] = t.list_header();
              if (cet != kStruct) t.bad("columns is not a list of structs");
              for (size_t k = 0; k < nc; ++k) g.columns.push_back(read_column_chunk(t));
            } else if (gid == 3) {
              g.num_rows = t.get_i64(gty);
            } else {
              t.skip(gty);
            }
          });
          groups.push_back(std::move(g));
        }
        break;
      }
      case 6: t.expect(ty, kBinary); created_by = t.binary(); break;
      default: t.skip(ty);
    }
  });
  if (!have_schema || schema.empty()) fail(where, "footer has no schema");
  if (num_rows < 0) fail(where, "negative row count {}", num_rows);
  build_leaves();
  int64_t total = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const RowGroup& rg = groups[g];
    if (rg.num_rows < 0 || rg.num_rows > num_rows) fail(where, "row group {} claims {} rows of {}", g, rg.num_rows, num_rows);
    total += rg.num_rows;
    if (rg.columns.size() != leaves.size())
      fail(where, "row group {} has {} column chunks, the schema {} leaf columns", g, rg.columns.size(), leaves.size());
    for (size_t c = 0; c < leaves.size(); ++c) {
      const ColumnMeta& cm = rg.columns[c];
      if (cm.external) throw UnsupportedError(where, "column chunk in another file (file_path) is not supported");
      if (!cm.has_meta) fail(where, "row group {} column {} has no metadata", g, leaves[c].name);
      if (!cm.path.empty() && cm.path != leaves[c].path)
        fail(where, "row group {} column {} is stored as '{}'", g, leaves[c].name, fmt::format("{}", fmt::join(cm.path, ".")));
      if (cm.type != leaves[c].type) fail(where, "row group {} column {} has type {}, the schema {}", g, leaves[c].name, cm.type, leaves[c].type);
    }
  }
  if (total != num_rows) fail(where, "row groups hold {} rows, the footer says {}", total, num_rows);
}

void ParquetReader::Impl::build_leaves() {
  // Rebuild the tree from the depth-first flattened list.
  size_t next = 1;
  std::function<void(int, int)> build = [&](int idx, int depth) {
    if (depth > 64) fail(where, "schema nested too deeply");
    SchemaElement& e = schema[static_cast<size_t>(idx)];
    if (e.num_children < 0) fail(where, "schema element '{}' has {} children", e.name, e.num_children);
    if (e.num_children > 0 && static_cast<size_t>(e.num_children) > schema.size() - next)
      fail(where, "schema element '{}' claims {} children, only {} elements follow", e.name, e.num_children, schema.size() - next);
    for (int k = 0; k < e.num_children; ++k) {
      if (next >= schema.size())
        fail(where, "schema element '{}' claims {} children, the schema ends after {}", e.name, e.num_children, k);
      int c = static_cast<int>(next++);
      schema[static_cast<size_t>(idx)].children.push_back(c);
      build(c, depth + 1);
    }
  };
  build(0, 0);
  if (next != schema.size()) fail(where, "schema has {} elements, the tree uses {}", schema.size(), next);
  if (schema[0].num_children == 0) fail(where, "schema has no columns");

  auto is_group = [&](const SchemaElement& e) { return e.num_children > 0; };
  auto unsupported = [&](const std::string& col, const std::string& why) {
    throw UnsupportedError(where, "unsupported nested column '" + col + "' (" + why + ")");
  };
  // A leaf: its schema path and element, where it goes in the row, the definition levels of
  // the structs around it; for a list, the level at which the list is present (elements: +1).
  struct Where {
    std::vector<std::string> path, keys;
    std::vector<int> struct_def;
  };
  auto add = [&](const Where& w, const std::string& name, int elem, int max_def, bool list, int list_def) {
    Leaf l;
    l.path = w.path;
    l.keys = w.keys;
    l.struct_def = w.struct_def;
    l.name = name;
    l.elem = elem;
    l.max_def = max_def;
    l.max_rep = list ? 1 : 0;
    l.list_def = list_def;
    l.elem_def = list_def + 1;
    leaves.push_back(std::move(l));
  };
  // Walks down from a top-level column (nothing below a repeated field is walked: a list's
  // element must be a primitive).
  std::function<void(int, Where, int)> walk = [&](int idx, Where w, int def) {
    const SchemaElement& e = schema[static_cast<size_t>(idx)];
    w.path.push_back(e.name);
    w.keys.push_back(e.name);
    std::string dotted = fmt::format("{}", fmt::join(w.path, "."));
    if (e.repetition < 0 || e.repetition > 2) fail(where, "column '{}' has repetition type {}", dotted, e.repetition);
    if (e.converted == kMapC || e.converted == kMapKeyValue || e.logical_map) unsupported(dotted, "map");
    if (e.repetition == kRepeated) {  // a repeated field not under a LIST group: a legacy list
      if (is_group(e)) unsupported(dotted, "list of structs");
      add(w, dotted, idx, def + 1, true, def);
      return;
    }
    int my_def = def + (e.repetition == kOptional ? 1 : 0);
    if (e.converted == kListC || e.logical_list) {
      if (e.children.size() != 1) fail(where, "LIST column '{}' has {} children, not 1", dotted, e.children.size());
      const SchemaElement& r = schema[static_cast<size_t>(e.children[0])];
      if (r.repetition != kRepeated) fail(where, "LIST column '{}': its child '{}' is not repeated", dotted, r.name);
      w.path.push_back(r.name);
      if (!is_group(r)) {  // 2-level: the repeated field is the element
        add(w, dotted, e.children[0], my_def + 1, true, my_def);
        return;
      }
      if (r.children.size() != 1) unsupported(dotted, "list of structs");
      const SchemaElement& el = schema[static_cast<size_t>(r.children[0])];
      if (is_group(el)) unsupported(dotted, "list of structs or lists");
      if (el.repetition == kRepeated) unsupported(dotted, "list of lists");
      w.path.push_back(el.name);
      add(w, dotted, r.children[0], my_def + 1 + (el.repetition == kOptional ? 1 : 0), true, my_def);
      return;
    }
    if (is_group(e)) {  // a struct
      w.struct_def.push_back(my_def);
      for (int c : e.children) walk(c, w, my_def);
      return;
    }
    add(w, dotted, idx, my_def, false, 0);
  };
  for (int c : schema[0].children) {
    columns.push_back(schema[static_cast<size_t>(c)].name);
    walk(c, Where{}, 0);
  }
  for (Leaf& l : leaves) {
    const SchemaElement& e = schema[static_cast<size_t>(l.elem)];
    l.type = e.type;
    if (e.type < 0 || e.type > kFixed) fail(where, "column '{}' has no valid physical type ({})", l.name, e.type);
    if (e.type == kInt96) throw UnsupportedError(where, "column '" + l.name + "' is INT96 (legacy timestamps), not supported");
    if (e.type == kFixed && (e.type_length <= 0 || e.type_length > (1 << 20)))
      fail(where, "column '{}' has fixed length {}", l.name, e.type_length);
    l.type_length = e.type_length;
    l.is_string = e.converted == kUtf8 || e.logical_string || e.converted == 4 /*ENUM*/ || e.converted == 19 /*JSON*/;
    l.is_decimal = e.converted == kDecimal || e.logical_decimal;
    l.is_unsigned = e.converted >= kUint8 && e.converted <= kUint64;
    l.scale = e.scale;
    if (l.scale < 0 || l.scale > 76) fail(where, "column '{}' has decimal scale {}", l.name, l.scale);
  }
}

std::vector<uint8_t> ParquetReader::Impl::decompress(int codec, Bytes in, size_t out_size, const std::string& what) {
  std::vector<uint8_t> out(out_size);
  switch (codec) {
    case kSnappy: {
      size_t len = 0;
      if (!snappy::GetUncompressedLength(reinterpret_cast<const char*>(in.p), in.n, &len) || len != out_size)
        fail(where, "{}: Snappy data does not decompress to the {} bytes the page header says", what, out_size);
      if (!snappy::RawUncompress(reinterpret_cast<const char*>(in.p), in.n, reinterpret_cast<char*>(out.data())))
        fail(where, "{}: corrupt Snappy data", what);
      return out;
    }
    case kGzip: {
      z_stream z{};
      if (inflateInit2(&z, 15 + 32) != Z_OK) fail(where, "{}: zlib init failed", what);
      z.next_in = const_cast<Bytef*>(in.p);
      z.avail_in = static_cast<uInt>(in.n);
      z.next_out = out.data();
      z.avail_out = static_cast<uInt>(out_size);
      int rc = inflate(&z, Z_FINISH);
      size_t got = out_size - z.avail_out;
      inflateEnd(&z);
      if (rc != Z_STREAM_END || got != out_size)
        fail(where, "{}: corrupt GZIP data or not the {} bytes the page header says", what, out_size);
      return out;
    }
    case kZstd: {
      unsigned long long fs = ZSTD_getFrameContentSize(in.p, in.n);
      if (fs == ZSTD_CONTENTSIZE_ERROR) fail(where, "{}: corrupt ZSTD data", what);
      if (fs != ZSTD_CONTENTSIZE_UNKNOWN && fs != out_size)
        fail(where, "{}: ZSTD frame holds {} bytes, the page header says {}", what, fs, out_size);
      size_t r = ZSTD_decompress(out.data(), out_size, in.p, in.n);
      if (ZSTD_isError(r)) fail(where, "{}: corrupt ZSTD data ({})", what, ZSTD_getErrorName(r));
      if (r != out_size) fail(where, "{}: ZSTD data holds {} bytes, the page header says {}", what, r, out_size);
      return out;
    }
    default:
      throw UnsupportedError(where, fmt::format("{}: compression {} is not supported (UNCOMPRESSED, SNAPPY, GZIP, ZSTD)",
                                                what, codec_name(codec)));
  }
}

namespace {

template <class T, class U>  // signed type, its unsigned twin (UINT_32/UINT_64 annotations)
OJson integer(const Leaf& leaf, const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  if (leaf.is_decimal) return static_cast<double>(v) / std::pow(10.0, leaf.scale);
  if (leaf.is_unsigned) return static_cast<U>(v);
  return v;
}

template <class T>
OJson real(const uint8_t* p) {  // NaN and infinities have no JSON form
  T v;
  std::memcpy(&v, p, sizeof v);
  return std::isfinite(v) ? OJson(static_cast<double>(v)) : OJson(nullptr);
}

}  // namespace

OJson ParquetReader::Impl::convert(const Leaf& leaf, const uint8_t* p, size_t n) {
  switch (leaf.type) {
    case kInt32: return integer<int32_t, uint32_t>(leaf, p);
    case kInt64: return integer<int64_t, uint64_t>(leaf, p);
    case kFloat: return real<float>(p);
    case kDoubleT: return real<double>(p);
    case kFixed:
    case kByteArray: {
      if (leaf.is_decimal) {  // big-endian two's complement
        if (n == 0 || n > 16) throw UnsupportedError(where, "column '" + leaf.name + "': decimal of " + std::to_string(n) + " bytes");
        double u = 0;
        for (size_t i = 0; i < n; ++i) u = u * 256.0 + p[i];
        if (p[0] & 0x80) u -= std::ldexp(1.0, static_cast<int>(8 * n));
        return u / std::pow(10.0, leaf.scale);
      }
      if (leaf.type == kFixed && !leaf.is_string) {
        static const char* hex = "0123456789abcdef";
        std::string s(2 * n, '0');
        for (size_t i = 0; i < n; ++i) {
          s[2 * i] = hex[p[i] >> 4];
          s[2 * i + 1] = hex[p[i] & 15];
        }
        return s;
      }
      if (!valid_utf8(p, n)) {
        if (leaf.is_string) fail(where, "column '{}' holds a string that is not valid UTF-8", leaf.name);
        throw UnsupportedError(where, "column '" + leaf.name + "' holds binary data (not UTF-8 text)");
      }
      return std::string(reinterpret_cast<const char*>(p), n);
    }
  }
  fail(where, "column '{}': unsupported physical type {}", leaf.name, leaf.type);
}

void ParquetReader::Impl::decode_values(const Leaf& leaf, Bytes in, size_t n, std::vector<OJson>& out,
                                        const std::string& what) {
  size_t pos = 0;
  auto need = [&](uint64_t k) {
    if (k > in.n - pos) fail(where, "{}: PLAIN values run past the page ({} values)", what, n);
  };
  out.reserve(out.size() + std::min<size_t>(n, in.n + 1));
  switch (leaf.type) {
    case kBoolean:
      need((n + 7) / 8);
      for (size_t i = 0; i < n; ++i) out.push_back(static_cast<bool>((in.p[i >> 3] >> (i & 7)) & 1));
      return;
    case kInt32:
    case kFloat:
      need(uint64_t(n) * 4);
      for (size_t i = 0; i < n; ++i) out.push_back(convert(leaf, in.p + 4 * i, 4));
      return;
    case kInt64:
    case kDoubleT:
      need(uint64_t(n) * 8);
      for (size_t i = 0; i < n; ++i) out.push_back(convert(leaf, in.p + 8 * i, 8));
      return;
    case kFixed: {
      uint64_t w = static_cast<uint64_t>(leaf.type_length);
      need(uint64_t(n) * w);
      for (size_t i = 0; i < n; ++i) out.push_back(convert(leaf, in.p + w * i, w));
      return;
    }
    case kByteArray:
      for (size_t i = 0; i < n; ++i) {
        need(4);
        uint32_t len = le32(in.p + pos);
        pos += 4;
        need(len);
        out.push_back(convert(leaf, in.p + pos, len));
        pos += len;
      }
      return;
  }
  fail(where, "{}: unsupported physical type {}", what, leaf.type);
}

ChunkData ParquetReader::Impl::read_chunk(const Leaf& leaf, const ColumnMeta& cm, int64_t group_rows) {
  ChunkData out;
  const std::string col = "column '" + leaf.name + "'";
  if (cm.num_values < 0 || static_cast<uint64_t>(cm.num_values) > lim.max_chunk_values)
    fail(where, "{}: {} values in one column chunk", col, cm.num_values);
  if (leaf.max_rep == 0 && cm.num_values != group_rows)
    fail(where, "{}: {} values for {} rows", col, cm.num_values, group_rows);
  int64_t start = cm.data_page_offset;
  if (cm.dict_page_offset > 0 && cm.dict_page_offset < start) start = cm.dict_page_offset;
  const uint64_t file_end = pages_end;
  if (start < 4 || static_cast<uint64_t>(start) >= file_end) fail(where, "{}: page offset {} is outside the file", col, start);
  uint64_t end = file_end;
  if (cm.total_compressed > 0 && static_cast<uint64_t>(cm.total_compressed) <= file_end - static_cast<uint64_t>(start))
    end = static_cast<uint64_t>(start) + static_cast<uint64_t>(cm.total_compressed);
  std::vector<OJson> dict;
  bool have_dict = false;
  uint64_t expanded = 0;
  uint64_t pos = static_cast<uint64_t>(start);
  int page_no = 0;
  const int bw_def = bit_width_of(leaf.max_def), bw_rep = bit_width_of(leaf.max_rep);
  while (out.entries < static_cast<size_t>(cm.num_values)) {
    std::string what = fmt::format("{} page {}", col, page_no++);
    if (pos >= end) fail(where, "{}: the column chunk ends after {} of {} values", what, out.entries, cm.num_values);
    // Page header.
    Thrift t(data.data() + pos, end - pos, where, what + " header");
    int ptype = -1, usize = -1, csize = -1;
    int64_t nvals = -1, nnulls = 0, enc = 0, def_enc = kRle, rep_enc = kRle, def_len = 0, rep_len = 0;
    bool v2_compressed = true;
    t.read_struct([&](int16_t id, uint8_t ty) {
      switch (id) {
        case 1: ptype = t.get_i32(ty); break;
        case 2: usize = t.get_i32(ty); break;
        case 3: csize = t.get_i32(ty); break;
        case 5:
        case 7:
        case 8:
          t.expect(ty, kStruct);
          t.read_struct([&](int16_t hid, uint8_t hty) {
            if (hid == 1) nvals = t.get_i32(hty);
            else if (hid == 2 && id == 8) nnulls = t.get_i32(hty);
            else if (hid == 2) enc = t.get_i32(hty);
            else if (hid == 3 && id == 5) def_enc = t.get_i32(hty);
            else if (hid == 4 && id == 5) rep_enc = t.get_i32(hty);
            else if (hid == 4 && id == 8) enc = t.get_i32(hty);
            else if (hid == 5 && id == 8) def_len = t.get_i32(hty);
            else if (hid == 6 && id == 8) rep_len = t.get_i32(hty);
            else if (hid == 7 && id == 8) v2_compressed = t.boolean(hty);
            else t.skip(hty);
          });
          break;
        default: t.skip(ty);
      }
    });
    pos += t.used(data.data() + pos);
    if (usize < 0 || csize < 0) fail(where, "{}: page sizes missing or negative", what);
    if (static_cast<uint64_t>(csize) > end - pos) fail(where, "{}: {} bytes run past the column chunk", what, csize);
    if (static_cast<uint64_t>(usize) > lim.max_page_bytes) fail(where, "{}: {} uncompressed bytes is too large", what, usize);
    Bytes body{data.data() + pos, static_cast<size_t>(csize)};
    pos += static_cast<uint64_t>(csize);
    if (ptype == kIndexPage) continue;
    if (ptype != kDataPage && ptype != kDataPageV2 && ptype != kDictPage)
      fail(where, "{}: unknown page type {}", what, ptype);
    if (nvals < 0) fail(where, "{}: no page header for its type, or a negative value count", what);
    if (static_cast<uint64_t>(nvals) > lim.max_chunk_values) fail(where, "{}: {} values in one page", what, nvals);
    // A lying uncompressed size must not make us allocate far more than the input can hold.
    if (cm.codec != kUncompressed && static_cast<uint64_t>(usize) > std::max<uint64_t>(uint64_t(csize) * 1100, 1u << 20))
      fail(where, "{}: {} uncompressed bytes from {} compressed", what, usize, csize);
    // A v1 data page or a dictionary page, decompressed as a whole (into `buf` when compressed).
    auto whole_page = [&](std::vector<uint8_t>& buf) -> Bytes {
      if (cm.codec == kUncompressed) {
        if (usize != csize) fail(where, "{}: uncompressed page of {} bytes says {}", what, csize, usize);
        return body;
      }
      buf = decompress(cm.codec, body, static_cast<size_t>(usize), what);
      return {buf.data(), buf.size()};
    };

    if (ptype == kDictPage) {
      if (have_dict) fail(where, "{}: a second dictionary page", what);
      if (enc != kPlain && enc != kPlainDict) throw UnsupportedError(where, what + ": dictionary encoding " + encoding_name(static_cast<int>(enc)));
      std::vector<uint8_t> buf;
      decode_values(leaf, whole_page(buf), static_cast<size_t>(nvals), dict, what);
      have_dict = true;
      continue;
    }
    if (out.entries + static_cast<uint64_t>(nvals) > static_cast<uint64_t>(cm.num_values))
      fail(where, "{}: pages hold more values than the column chunk's {}", what, cm.num_values);
    size_t n = static_cast<size_t>(nvals);
    // Levels, then the values' bytes.
    std::vector<uint8_t> buf;
    Bytes vals{};
    size_t def_start = out.def.size(), rep_start = out.rep.size();
    if (ptype == kDataPage) {
      Bytes b = whole_page(buf);
      size_t p = 0;
      auto levels = [&](int max, int bw, int64_t lenc, std::vector<uint16_t>& dst, const char* kind) {
        if (max == 0) return;
        if (lenc != kRle) throw UnsupportedError(where, fmt::format("{}: {} levels encoded {}", what, kind, encoding_name(static_cast<int>(lenc))));
        if (b.n - p < 4) fail(where, "{}: {} levels truncated", what, kind);
        uint32_t len = le32(b.p + p);
        p += 4;
        if (len > b.n - p) fail(where, "{}: {} levels of {} bytes run past the page", what, kind, len);
        decode_hybrid(Bytes{b.p + p, len}, bw, n, dst, where, what + " " + kind + " levels");
        p += len;
      };
      levels(leaf.max_rep, bw_rep, rep_enc, out.rep, "repetition");
      levels(leaf.max_def, bw_def, def_enc, out.def, "definition");
      vals = {b.p + p, b.n - p};
    } else {  // DATA_PAGE_V2: levels first, never compressed
      if (def_len < 0 || rep_len < 0 || static_cast<uint64_t>(def_len) + static_cast<uint64_t>(rep_len) > body.n)
        fail(where, "{}: level lengths {} + {} exceed the {}-byte page", what, rep_len, def_len, body.n);
      if (nnulls < 0 || nnulls > nvals) fail(where, "{}: {} nulls of {} values", what, nnulls, nvals);
      Bytes rep_b{body.p, static_cast<size_t>(rep_len)};
      Bytes def_b{body.p + rep_len, static_cast<size_t>(def_len)};
      if (leaf.max_rep > 0) decode_hybrid(rep_b, bw_rep, n, out.rep, where, what + " repetition levels");
      if (leaf.max_def > 0) decode_hybrid(def_b, bw_def, n, out.def, where, what + " definition levels");
      Bytes rest{body.p + rep_len + def_len, body.n - static_cast<size_t>(rep_len + def_len)};
      uint64_t levels_len = static_cast<uint64_t>(rep_len + def_len);
      if (static_cast<uint64_t>(usize) < levels_len) fail(where, "{}: uncompressed size {} is smaller than its levels", what, usize);
      size_t vsize = static_cast<size_t>(static_cast<uint64_t>(usize) - levels_len);
      if (cm.codec != kUncompressed && v2_compressed) {
        buf = decompress(cm.codec, rest, vsize, what);
        vals = {buf.data(), buf.size()};
      } else {
        if (rest.n != vsize) fail(where, "{}: {} value bytes, the header says {}", what, rest.n, vsize);
        vals = rest;
      }
    }
    // Check the levels and count the values present.
    size_t present = n;
    if (leaf.max_def > 0) {
      present = 0;
      for (size_t i = def_start; i < out.def.size(); ++i) {
        if (out.def[i] > leaf.max_def) fail(where, "{}: definition level {} above the maximum {}", what, out.def[i], leaf.max_def);
        if (out.def[i] == leaf.max_def) ++present;
      }
    }
    for (size_t i = rep_start; i < out.rep.size(); ++i)
      if (out.rep[i] > leaf.max_rep) fail(where, "{}: repetition level {} above the maximum {}", what, out.rep[i], leaf.max_rep);
    if (ptype == kDataPageV2 && leaf.max_def > 0 && static_cast<size_t>(nvals - nnulls) != present &&
        leaf.max_rep == 0)
      fail(where, "{}: header says {} nulls, the levels {}", what, nnulls, n - present);
    if (enc == kPlain) {
      decode_values(leaf, vals, present, out.values, what);
    } else if (enc == kPlainDict || enc == kRleDict) {
      if (!have_dict) fail(where, "{}: dictionary-encoded page without a dictionary page", what);
      if (present > 0) {
        if (vals.n < 1) fail(where, "{}: dictionary indices missing", what);
        int bw = vals.p[0];
        std::vector<uint32_t> idx;
        decode_hybrid(Bytes{vals.p + 1, vals.n - 1}, bw, present, idx, where, what + " dictionary indices");
        for (uint32_t k : idx) {
          if (k >= dict.size()) fail(where, "{}: dictionary index {} of {} entries", what, k, dict.size());
          if (dict[k].is_string()) {
            expanded += dict[k].get_ref<const std::string&>().size();
            if (expanded > lim.max_expanded_bytes)
              fail(where, "{}: dictionary strings expand past {} bytes", what, lim.max_expanded_bytes);
          }
          out.values.push_back(dict[k]);
        }
      }
    } else if (enc == kRle && leaf.type == kBoolean) {
      if (vals.n < 4) fail(where, "{}: RLE booleans truncated", what);
      uint32_t len = le32(vals.p);
      if (len > vals.n - 4) fail(where, "{}: RLE booleans run past the page", what);
      std::vector<uint8_t> bits;
      decode_hybrid(Bytes{vals.p + 4, len}, 1, present, bits, where, what + " booleans");
      for (uint8_t b : bits) out.values.push_back(b != 0);
    } else {
      throw UnsupportedError(where, fmt::format("{}: value encoding {} is not supported (PLAIN, dictionary, RLE booleans)",
                                                what, encoding_name(static_cast<int>(enc))));
    }
    out.entries += n;
  }
  return out;
}

namespace {

// Sets row[keys...] = v, creating the enclosing objects; a struct already set to null (by a
// sibling leaf) stays null.
void put(OJson& row, const std::vector<std::string>& keys, size_t upto, OJson v) {
  OJson* cur = &row;
  for (size_t i = 0; i + 1 < upto; ++i) {
    auto it = cur->find(keys[i]);
    if (it == cur->end()) {
      cur = &((*cur)[keys[i]] = OJson::object());
    } else {
      if (it->is_null()) return;
      cur = &*it;
    }
  }
  (*cur)[keys[upto - 1]] = std::move(v);
}

// If an enclosing struct is null at definition level d: the number of keys down to it.
size_t null_struct(const Leaf& l, int d) {
  for (size_t i = 0; i < l.struct_def.size(); ++i)
    if (d < l.struct_def[i]) return i + 1;
  return 0;
}

}  // namespace

std::vector<OJson> ParquetReader::read_row_group(size_t gi) {
  Impl& m = *impl_;
  if (gi >= m.groups.size()) fail(m.where, "no row group {}", gi);
  const RowGroup& g = m.groups[gi];
  size_t nrows = static_cast<size_t>(g.num_rows);
  if (nrows > m.lim.max_group_rows || nrows > m.lim.max_chunk_values)
    fail(m.where, "row group {} has {} rows, more than the reader's limit {}", gi, nrows, m.lim.max_group_rows);
  // Decode every column first: the pages must really hold the rows before they are allocated.
  std::vector<ChunkData> chunks;
  for (size_t c = 0; c < m.leaves.size(); ++c) {
    chunks.push_back(m.read_chunk(m.leaves[c], g.columns[c], g.num_rows));
    if (chunks.back().entries < nrows)
      fail(m.where, "row group {} column '{}': {} values for {} rows", gi, m.leaves[c].name, chunks.back().entries, nrows);
  }
  std::vector<OJson> rows(nrows, OJson::object());
  for (size_t c = 0; c < m.leaves.size(); ++c) {
    const Leaf& l = m.leaves[c];
    ChunkData& d = chunks[c];
    size_t e = 0, v = 0;
    auto def_at = [&](size_t i) { return l.max_def == 0 ? 0 : static_cast<int>(d.def[i]); };
    auto value = [&]() -> OJson {
      if (v >= d.values.size()) fail(m.where, "column '{}': fewer values than the levels say", l.name);
      return std::move(d.values[v++]);
    };
    for (size_t r = 0; r < nrows; ++r) {
      if (e >= d.entries) fail(m.where, "row group {} column '{}': values for {} rows, not {}", gi, l.name, r, nrows);
      if (l.max_rep > 0 && d.rep[e] != 0) fail(m.where, "column '{}': row {} does not start at repetition level 0", l.name, r);
      int def = def_at(e);
      if (size_t k = null_struct(l, def)) {
        put(rows[r], l.keys, k, nullptr);
        ++e;
        while (l.max_rep > 0 && e < d.entries && d.rep[e] != 0) ++e;  // (nothing else is legal here)
        continue;
      }
      if (l.max_rep == 0) {
        put(rows[r], l.keys, l.keys.size(), def == l.max_def ? value() : OJson(nullptr));
        ++e;
        continue;
      }
      if (def < l.list_def) {
        put(rows[r], l.keys, l.keys.size(), nullptr);
        ++e;
      } else if (def < l.elem_def) {
        put(rows[r], l.keys, l.keys.size(), OJson::array());
        ++e;
      } else {
        OJson arr = OJson::array();
        do {
          int dd = def_at(e);
          if (dd < l.elem_def) fail(m.where, "column '{}': row {} mixes an empty list with elements", l.name, r);
          arr.push_back(dd == l.max_def ? value() : OJson(nullptr));
          ++e;
        } while (e < d.entries && d.rep[e] != 0);
        put(rows[r], l.keys, l.keys.size(), std::move(arr));
      }
    }
    if (e != d.entries) fail(m.where, "row group {} column '{}': {} level entries left over", gi, l.name, d.entries - e);
    if (v != d.values.size()) fail(m.where, "row group {} column '{}': {} values left over", gi, l.name, d.values.size() - v);
  }
  return rows;
}

ParquetReader::ParquetReader(const std::string& path, ParquetLimits limits) : impl_(std::make_unique<Impl>()) {
  impl_->where = path;
  impl_->lim = limits;
  impl_->file = MappedFile(path);
  impl_->data = impl_->file.bytes();
  impl_->open();
}

ParquetReader::ParquetReader(std::span<const uint8_t> bytes, std::string where, ParquetLimits limits)
    : impl_(std::make_unique<Impl>()) {
  impl_->where = std::move(where);
  impl_->lim = limits;
  impl_->data = bytes;
  impl_->open();
}

ParquetReader::~ParquetReader() = default;
ParquetReader::ParquetReader(ParquetReader&&) noexcept = default;
ParquetReader& ParquetReader::operator=(ParquetReader&&) noexcept = default;

int64_t ParquetReader::num_rows() const { return impl_->num_rows; }
size_t ParquetReader::num_row_groups() const { return impl_->groups.size(); }
const std::vector<std::string>& ParquetReader::columns() const { return impl_->columns; }
std::string ParquetReader::created_by() const { return impl_->created_by; }
std::vector<std::string> ParquetReader::codecs() const {
  std::vector<std::string> out;
  for (const RowGroup& g : impl_->groups)
    for (const ColumnMeta& c : g.columns)
      if (std::find(out.begin(), out.end(), codec_name(c.codec)) == out.end()) out.push_back(codec_name(c.codec));
  return out;
}

std::optional<OJson> ParquetReader::next() {
  Impl& m = *impl_;
  while (m.row_pos >= m.rows.size()) {
    if (m.next_group >= m.groups.size()) return std::nullopt;
    m.rows = read_row_group(m.next_group++);
    m.row_pos = 0;
  }
  return std::move(m.rows[m.row_pos++]);
}

std::vector<OJson> read_parquet(const std::string& path) {
  ParquetReader r(path);
  std::vector<OJson> out;
  while (auto row = r.next()) out.push_back(std::move(*row));
  return out;
}

}  // namespace kaival::eval
