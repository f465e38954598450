// GGUF reader: real vocabulary files checked against an independent Python
// reader's summary (tools/gen_gguf_ref.py -> testdata/gguf/vocab_summary.json),
// synthetic files with every value type and tensor layout, and bad input:
// truncations, lying counts and offsets must all fail fast with an error
// that names the file.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/hash.h"
#include "core/mmap.h"
#include "weights/gguf.h"

namespace kaival::weights {
namespace {

namespace fs = std::filesystem;
const std::string kName = "synthetic.gguf";

// ---- a small GGUF writer ------------------------------------------------------

class Bytes {
 public:
  template <typename T>
  Bytes& put(T v) {
    size_t at = b.size();
    b.resize(at + sizeof(T));
    std::memcpy(b.data() + at, &v, sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& raw(const std::vector<uint8_t>& r) {
    b.insert(b.end(), r.begin(), r.end());
    return *this;
  }
  std::vector<uint8_t> b;
};

struct Tensor {
  std::string name;
  std::vector<uint64_t> ne;  // innermost first
  uint32_t type;
  uint64_t offset;  // relative to the data section
  uint64_t nbytes;  // data bytes to reserve
};

struct Builder {
  uint32_t magic = 0x46554747, version = 3;
  uint64_t alignment = 32;
  std::optional<uint64_t> n_kv_override, n_tensors_override;
  Bytes kvs;
  uint64_t n_kv = 0;
  std::vector<Tensor> tensors;

  template <typename T>
  Builder& kv(const std::string& key, GgufType t, T v) {
    kvs.str(key).put<uint32_t>(static_cast<uint32_t>(t)).put<T>(v);
    ++n_kv;
    return *this;
  }
  Builder& kv_str(const std::string& key, const std::string& v) {
    kvs.str(key).put<uint32_t>(static_cast<uint32_t>(GgufType::STRING)).str(v);
    ++n_kv;
    return *this;
  }
  // `body` is an encoded array (element type, count, elements).
  Builder& kv_array(const std::string& key, const Bytes& body) {
    kvs.str(key).put<uint32_t>(static_cast<uint32_t>(GgufType::ARRAY)).raw(body.b);
    ++n_kv;
    return *this;
  }
  Builder& tensor(std::string name, std::vector<uint64_t> ne, uint32_t type, uint64_t nbytes) {
    uint64_t off = 0;
    if (!tensors.empty()) {
      const Tensor& p = tensors.back();
      off = (p.offset + p.nbytes + alignment - 1) / alignment * alignment;
    }
    tensors.push_back({std::move(name), std::move(ne), type, off, nbytes});
    return *this;
  }

  std::vector<uint8_t> build() const {
    Bytes out;
    out.put(magic).put(version).put<uint64_t>(n_tensors_override.value_or(tensors.size()));
    out.put<uint64_t>(n_kv_override.value_or(n_kv)).raw(kvs.b);
    uint64_t data_end = 0;
    for (const Tensor& t : tensors) {
      out.str(t.name).put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
      for (uint64_t d : t.ne) out.put<uint64_t>(d);
      out.put<uint32_t>(t.type).put<uint64_t>(t.offset);
      data_end = std::max(data_end, t.offset + t.nbytes);
    }
    size_t header = out.b.size();
    size_t data = (header + alignment - 1) / alignment * alignment;
    out.b.resize(data + data_end);
    for (size_t i = data; i < out.b.size(); ++i) out.b[i] = static_cast<uint8_t>(i * 7);
    return out.b;
  }
};

std::shared_ptr<GgufFile> parse(const std::vector<uint8_t>& b) { return GgufFile::parse(b, kName); }

// Parsing must throw E naming the file, and quickly.
template <typename E = FormatError>
void expect_error(const std::vector<uint8_t>& b, const std::string& needle = "") {
  auto t0 = std::chrono::steady_clock::now();
  try {
    parse(b);
    ADD_FAILURE() << "no error, expected one containing '" << needle << "'";
  } catch (const E& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(kName), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 0.5);
}

Bytes u32_array(std::vector<uint32_t> v) {
  Bytes a;
  a.put<uint32_t>(static_cast<uint32_t>(GgufType::U32)).put<uint64_t>(v.size());
  for (auto x : v) a.put(x);
  return a;
}

// A valid file with metadata and tensors of several types.
Builder sample() {
  Builder g;
  g.kv_str("general.architecture", "llama").kv("llama.block_count", GgufType::U32, uint32_t{2});
  g.tensor("token_embd.weight", {64, 3}, 1, 64 * 3 * 2);          // F16
  g.tensor("blk.0.attn_q.weight", {256, 2}, 12, 2 * 144);         // Q4_K
  g.tensor("blk.0.ffn_down.weight", {32, 4, 2}, 8, 4 * 2 * 34);   // Q8_0
  g.tensor("blk.0.ffn_up.weight", {256}, 16, 66);                 // IQ2_XXS (listed, not decodable)
  g.tensor("output_norm.weight", {64}, 0, 256);                   // F32
  return g;
}

// ---- valid files -----------------------------------------------------------------

TEST(Gguf, ParsesTensorInfos) {
  std::vector<uint8_t> bytes = sample().build();
  auto g = GgufFile::parse(bytes, kName, 5);
  EXPECT_EQ(g->version, 3u);
  EXPECT_EQ(g->alignment, 32u);
  ASSERT_EQ(g->tensors.size(), 5u);
  const TensorInfo& e = g->tensors[0];
  EXPECT_EQ(e.name, "token_embd.weight");
  EXPECT_EQ(e.dtype, DType::F16);
  EXPECT_EQ(e.type_name, "F16");
  EXPECT_EQ(e.shape, (std::vector<int64_t>{3, 64}));  // ne reversed
  EXPECT_EQ(e.nbytes, 384u);
  EXPECT_EQ(e.file_index, 5u);
  EXPECT_EQ(e.offset % 32, 0u);
  EXPECT_EQ(e.offset, g->data_offset);
  const TensorInfo& q = g->tensors[1];
  EXPECT_EQ(q.dtype, DType::Q4_K);
  EXPECT_EQ(q.shape, (std::vector<int64_t>{2, 256}));
  EXPECT_EQ(q.nbytes, 288u);
  EXPECT_EQ(q.offset, g->data_offset + 384);
  EXPECT_EQ(g->tensors[2].shape, (std::vector<int64_t>{2, 4, 32}));
  EXPECT_EQ(g->tensors[2].type_name, "Q8_0");
  EXPECT_EQ(g->tensors[3].dtype, DType::Unsupported);
  EXPECT_EQ(g->tensors[3].type_name, "IQ2_XXS");
  EXPECT_EQ(g->tensors[3].nbytes, 66u);
  EXPECT_EQ(g->ggml_types, (std::vector<uint32_t>{1, 12, 8, 16, 0}));
  // The recorded offset points at the bytes the writer put there.
  const TensorInfo& last = g->tensors[4];
  EXPECT_EQ(last.offset + last.nbytes, bytes.size());
  EXPECT_EQ(bytes[last.offset], static_cast<uint8_t>(last.offset * 7));
}

TEST(Gguf, EveryValueTypeAndNestedArrays) {
  Builder g;
  g.kv("u8", GgufType::U8, uint8_t{200}).kv("i8", GgufType::I8, int8_t{-5});
  g.kv("u16", GgufType::U16, uint16_t{60000}).kv("i16", GgufType::I16, int16_t{-300});
  g.kv("u32", GgufType::U32, uint32_t{4000000000u}).kv("i32", GgufType::I32, int32_t{-70000});
  g.kv("u64", GgufType::U64, uint64_t{1} << 63).kv("i64", GgufType::I64, -(int64_t{1} << 40));
  g.kv("f32", GgufType::F32, 1e-5f).kv("f64", GgufType::F64, 3.25).kv("bool", GgufType::BOOL, uint8_t{1});
  g.kv_str("str", "h\xC3\xA9llo");
  Bytes strings;
  strings.put<uint32_t>(8).put<uint64_t>(3).str("a").str("").str("tok");
  g.kv_array("strings", strings);
  Bytes floats;
  floats.put<uint32_t>(6).put<uint64_t>(2).put(0.5f).put(-2.0f);
  g.kv_array("floats", floats);
  g.kv_array("ints", u32_array({7, 8, 9}));
  Bytes nested;  // [[1, 2], [], ["x"]]
  nested.put<uint32_t>(9).put<uint64_t>(3).raw(u32_array({1, 2}).b).raw(u32_array({}).b);
  nested.put<uint32_t>(8).put<uint64_t>(1).str("x");
  g.kv_array("nested", nested);
  Bytes big;  // long arrays are summarised in JSON
  big.put<uint32_t>(0).put<uint64_t>(100);
  for (int i = 0; i < 100; ++i) big.put<uint8_t>(static_cast<uint8_t>(i));
  g.kv_array("big", big);
  g.kv_str("bad_utf8", "a\xFF");

  auto f = parse(g.build());
  EXPECT_EQ(f->get_int("u8"), 200);
  EXPECT_EQ(f->get_int("i8"), -5);
  EXPECT_EQ(f->get_int("u16"), 60000);
  EXPECT_EQ(f->get_int("i16"), -300);
  EXPECT_EQ(f->get_int("u32"), 4000000000ll);
  EXPECT_EQ(f->get_int("i32"), -70000);
  EXPECT_EQ(f->get_int("u64"), std::nullopt);  // beyond int64
  EXPECT_EQ(f->get_float("u64"), 9223372036854775808.0);
  EXPECT_EQ(f->get_int("i64"), -(int64_t{1} << 40));
  EXPECT_EQ(f->get_float("f32"), static_cast<double>(1e-5f));
  EXPECT_EQ(f->get_float("f64"), 3.25);
  EXPECT_EQ(f->get_int("bool"), 1);
  EXPECT_EQ(f->get("bool")->type, GgufType::BOOL);
  EXPECT_EQ(f->get_string("str"), "h\xC3\xA9llo");
  EXPECT_EQ(f->get_string("u8"), std::nullopt);
  EXPECT_EQ(f->get_strings("strings"), (std::vector<std::string>{"a", "", "tok"}));
  EXPECT_EQ(f->get_floats("floats"), (std::vector<float>{0.5f, -2.0f}));
  EXPECT_EQ(f->get_ints("ints"), (std::vector<int64_t>{7, 8, 9}));
  EXPECT_EQ(f->get_floats("ints"), (std::vector<float>{7, 8, 9}));
  EXPECT_TRUE(f->get_ints("floats").empty());
  EXPECT_TRUE(f->get_strings("missing").empty());
  const GgufArray* n = f->get("nested")->as_array();
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->elem_type, GgufType::ARRAY);
  ASSERT_EQ(n->items.size(), 3u);
  EXPECT_EQ(n->items[0].as_array()->items[1].as_int(), 2);
  EXPECT_TRUE(n->items[1].as_array()->items.empty());
  EXPECT_EQ(*n->items[2].as_array()->items[0].as_string(), "x");

  nlohmann::json j = f->metadata_json();
  EXPECT_EQ(j["u32"], 4000000000u);
  EXPECT_EQ(j["f32"], 1e-5);  // shortest float32 decimal, not 9.99999974e-06
  EXPECT_EQ(j["bool"], true);
  EXPECT_EQ(j["nested"], nlohmann::json::parse(R"([[1,2],[],["x"]])"));
  EXPECT_EQ(j["big"]["type"], "array<uint8>");
  EXPECT_EQ(j["big"]["length"], 100);
  EXPECT_EQ(j["bad_utf8"], "a\xEF\xBF\xBD");
  EXPECT_NO_THROW(j.dump());
  EXPECT_EQ(f->metadata_json(true)["big"].size(), 100u);
}

TEST(Gguf, Version2AndCustomAlignment) {
  Builder g;
  g.version = 2;
  g.alignment = 64;
  g.kv("general.alignment", GgufType::U32, uint32_t{64});
  g.tensor("a", {16}, 0, 64).tensor("b", {32}, 8, 34);
  auto f = parse(g.build());
  EXPECT_EQ(f->version, 2u);
  EXPECT_EQ(f->alignment, 64u);
  EXPECT_EQ(f->data_offset % 64, 0u);
  EXPECT_EQ(f->tensors[1].offset, f->data_offset + 64);
}

TEST(Gguf, ZeroSizedTensorsAndScalars) {
  Builder g;
  g.tensor("empty", {0, 4}, 12, 0).tensor("scalar", {}, 0, 4);
  auto f = parse(g.build());
  EXPECT_EQ(f->tensors[0].nbytes, 0u);
  EXPECT_EQ(f->tensors[0].shape, (std::vector<int64_t>{4, 0}));
  EXPECT_TRUE(f->tensors[1].shape.empty());
  EXPECT_EQ(f->tensors[1].nbytes, 4u);
}

// ---- the real vocabulary files -----------------------------------------------------

// Re-encodes parsed array elements the way tools/gen_gguf_ref.py hashes them.
void encode(const GgufValue& v, GgufType t, Bytes& out) {
  switch (t) {
    case GgufType::STRING: out.str(*v.as_string()); break;
    case GgufType::ARRAY: {
      const GgufArray& a = *v.as_array();
      out.put<uint32_t>(static_cast<uint32_t>(a.elem_type)).put<uint64_t>(a.items.size());
      for (const auto& e : a.items) encode(e, a.elem_type, out);
      break;
    }
    case GgufType::F32: out.put(static_cast<float>(*v.as_float())); break;
    case GgufType::F64: out.put(*v.as_float()); break;
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: out.put(static_cast<uint8_t>(*v.as_int())); break;
    case GgufType::U16: case GgufType::I16: out.put(static_cast<uint16_t>(*v.as_int())); break;
    case GgufType::U32: case GgufType::I32: out.put(static_cast<uint32_t>(*v.as_int())); break;
    case GgufType::U64: out.put(std::get<uint64_t>(v.v)); break;
    case GgufType::I64: out.put(std::get<int64_t>(v.v)); break;
  }
}

std::string vocab_dir() { return std::string(KAIVAL_SHARED_DATA) + "/gguf-vocab"; }

nlohmann::json vocab_summary() {
  std::ifstream in(std::string(KAIVAL_TESTDATA) + "/gguf/vocab_summary.json");
  return nlohmann::json::parse(in);
}

TEST(GgufVocab, MatchesIndependentReader) {
  nlohmann::json summary = vocab_summary();
  ASSERT_EQ(summary.size(), 12u);
  for (const auto& [file, want] : summary.items()) {
    SCOPED_TRACE(file);
    MappedFile m(vocab_dir() + "/" + file);
    auto g = GgufFile::parse(m);
    EXPECT_EQ(g->version, want["version"].get<uint32_t>());
    EXPECT_TRUE(g->tensors.empty());
    EXPECT_EQ(g->metadata.size(), want["kv_count"].get<size_t>());
    EXPECT_EQ(g->data_offset, want["data_offset"].get<uint64_t>());
    for (const auto& [key, w] : want["keys"].items()) {
      SCOPED_TRACE(key);
      const GgufValue* v = g->get(key);
      ASSERT_NE(v, nullptr);
      std::string type = w["type"];
      if (type.starts_with("array<")) {
        const GgufArray* a = v->as_array();
        ASSERT_NE(a, nullptr);
        EXPECT_EQ(type, "array<" + std::string(gguf_type_name(a->elem_type)) + ">");
        EXPECT_EQ(a->items.size(), w["length"].get<size_t>());
        Bytes enc;
        for (const auto& e : a->items) encode(e, a->elem_type, enc);
        EXPECT_EQ(sha256_hex({reinterpret_cast<const char*>(enc.b.data()), enc.b.size()}), w["sha256"]);
        continue;
      }
      EXPECT_EQ(type, gguf_type_name(v->type));
      if (type == "string") EXPECT_EQ(*v->as_string(), w["value"].get<std::string>());
      else if (type == "bool") EXPECT_EQ(*v->as_int(), w["value"].get<bool>() ? 1 : 0);
      else if (type == "float32" || type == "float64") EXPECT_EQ(*v->as_float(), w["value"].get<double>());
      else EXPECT_EQ(*v->as_int(), w["value"].get<int64_t>());
    }
  }
}

// Properties every tokenizer vocabulary must have, whatever the family.
TEST(GgufVocab, TokenizerArraysAreConsistent) {
  int files = 0;
  for (const auto& entry : fs::directory_iterator(vocab_dir())) {
    if (entry.path().extension() != ".gguf") continue;
    ++files;
    SCOPED_TRACE(entry.path().filename().string());
    MappedFile m(entry.path().string());
    auto g = GgufFile::parse(m);
    auto model = g->get_string("tokenizer.ggml.model");
    ASSERT_TRUE(model);
    EXPECT_TRUE(*model == "llama" || *model == "gpt2" || *model == "bert") << *model;
    ASSERT_TRUE(g->get_string("general.architecture"));
    std::vector<std::string> tokens = g->get_strings("tokenizer.ggml.tokens");
    ASSERT_GT(tokens.size(), 1000u);
    std::vector<int64_t> types = g->get_ints("tokenizer.ggml.token_type");
    EXPECT_EQ(types.size(), tokens.size());
    if (g->get("tokenizer.ggml.scores")) EXPECT_EQ(g->get_floats("tokenizer.ggml.scores").size(), tokens.size());
    EXPECT_EQ(g->get("tokenizer.ggml.merges") != nullptr, *model == "gpt2");
    for (const char* id : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id"})
      if (auto v = g->get_int(id)) EXPECT_LT(*v, static_cast<int64_t>(tokens.size())) << id;
    nlohmann::json j = g->metadata_json();
    EXPECT_EQ(j["tokenizer.ggml.tokens"]["length"], tokens.size());
    EXPECT_NO_THROW(j.dump());
  }
  EXPECT_EQ(files, 12);
}

TEST(GgufVocab, TruncatedRealFilesFailCleanly) {
  MappedFile m(vocab_dir() + "/ggml-vocab-phi-3.gguf");
  std::span<const uint8_t> all = m.bytes();
  auto t0 = std::chrono::steady_clock::now();
  for (size_t cut : {size_t{0}, size_t{3}, size_t{4}, size_t{23}, size_t{24}, size_t{100}, all.size() / 3,
                     all.size() / 2, all.size() - 9, all.size() - 1}) {
    SCOPED_TRACE(cut);
    EXPECT_THROW(GgufFile::parse(all.first(cut), "cut.gguf"), FormatError);
  }
  for (size_t cut = 1; cut < all.size(); cut += all.size() / 97)
    EXPECT_THROW(GgufFile::parse(all.first(cut), "cut.gguf"), FormatError) << cut;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
}

// ---- bad input ----------------------------------------------------------------

TEST(GgufBad, EveryTruncationOfASyntheticFile) {
  std::vector<uint8_t> full = sample().build();
  ASSERT_NO_THROW(parse(full));
  for (size_t cut = 0; cut < full.size(); ++cut) {
    std::vector<uint8_t> b(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut));
    try {
      parse(b);
      ADD_FAILURE() << "prefix of " << cut << " bytes parsed";
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(kName), std::string::npos);
    }
  }
}

TEST(GgufBad, MagicAndVersion) {
  Builder g;
  g.magic = 0x46554746;
  expect_error(g.build(), "not a GGUF file");
  g = Builder();
  g.version = 1;
  expect_error<UnsupportedError>(g.build(), "v1");
  g.version = 4;
  expect_error<UnsupportedError>(g.build(), "version 4");
  g.version = 0x03000000;
  expect_error<UnsupportedError>(g.build(), "big-endian");
}

TEST(GgufBad, LyingCounts) {
  Builder g = sample();
  g.n_tensors_override = uint64_t{1} << 60;
  expect_error(g.build(), "tensor count");
  g = sample();
  g.n_kv_override = uint64_t{1} << 60;
  expect_error(g.build(), "metadata count");
  g = sample();
  g.n_kv_override = g.n_kv + 1;  // one more kv than written: reads tensor infos as kvs
  expect_error(g.build());
  g = sample();
  g.n_tensors_override = g.tensors.size() + 1;
  expect_error(g.build());
}

TEST(GgufBad, HugeStringAndArrayLengths) {
  Builder key;  // key length 2^60
  key.kvs.put<uint64_t>(uint64_t{1} << 60).put<uint32_t>(0);
  key.n_kv = 1;
  expect_error(key.build(), "metadata key");

  Builder val;
  val.kvs.str("s").put<uint32_t>(8).put<uint64_t>(~uint64_t{0});
  val.n_kv = 1;
  expect_error(val.build(), "string value of 's'");

  Builder arr;
  Bytes a;
  a.put<uint32_t>(0).put<uint64_t>(uint64_t{1} << 60);
  arr.kv_array("a", a);
  expect_error(arr.build(), "array 'a'");

  Builder strs;  // 2^40 strings need at least 8 bytes each
  Bytes sa;
  sa.put<uint32_t>(8).put<uint64_t>(uint64_t{1} << 40).str("x");
  strs.kv_array("toks", sa);
  expect_error(strs.build(), "toks");

  Builder nested;  // an inner array lies
  Bytes n;
  n.put<uint32_t>(9).put<uint64_t>(2).raw(u32_array({1}).b).put<uint32_t>(4).put<uint64_t>(uint64_t{1} << 59);
  nested.kv_array("n", n);
  expect_error(nested.build(), "array 'n'");

  Builder deep;  // arrays nested 1000 deep, each with one element
  Bytes d;
  for (int i = 0; i < 1000; ++i) d.put<uint32_t>(9).put<uint64_t>(1);
  d.put<uint32_t>(0).put<uint64_t>(0);
  deep.kv_array("deep", d);
  expect_error(deep.build(), "deeper");

  Builder badtype;
  badtype.kvs.str("k").put<uint32_t>(13).put<uint32_t>(0);
  badtype.n_kv = 1;
  expect_error(badtype.build(), "unknown value type 13");
}

TEST(GgufBad, KeysAndNames) {
  Builder dup;
  dup.kv("a", GgufType::U8, uint8_t{1}).kv("a", GgufType::U8, uint8_t{2});
  expect_error(dup.build(), "duplicate metadata key 'a'");
  Builder empty;
  empty.kv("", GgufType::U8, uint8_t{1});
  expect_error(empty.build(), "empty");
  Builder dupt;
  dupt.tensor("w", {4}, 0, 16).tensor("w", {4}, 0, 16);
  expect_error(dupt.build(), "duplicate tensor name 'w'");
}

TEST(GgufBad, Alignment) {
  for (uint32_t a : {0u, 3u, 48u, 1u << 30}) {
    Builder g;
    g.kv("general.alignment", GgufType::U32, a);
    expect_error(g.build(), "general.alignment");
  }
  Builder s;
  s.kv_str("general.alignment", "32");
  expect_error(s.build(), "general.alignment");
}

TEST(GgufBad, TensorInfos) {
  Builder dims;
  dims.tensor("t5", {1, 1, 1, 1, 1}, 0, 4);
  expect_error(dims.build(), "5 dimensions");

  Builder neg;
  neg.tensor("neg", {uint64_t{1} << 63}, 0, 0);
  expect_error(neg.build(), "negative");

  Builder overflow;
  overflow.tensor("big", {uint64_t{1} << 32, uint64_t{1} << 32}, 0, 0);
  expect_error(overflow.build(), "overflows");

  Builder bytes_overflow;  // 2^62 F64 elements: 2^65 bytes
  bytes_overflow.tensor("f64", {uint64_t{1} << 62}, 28, 0);
  expect_error(bytes_overflow.build(), "overflows");

  Builder block;
  block.tensor("q", {100}, 12, 144);  // Q4_K rows must be multiples of 256
  expect_error(block.build(), "block size 256");

  Builder unknown;
  unknown.tensor("mystery", {32}, 99, 32);
  expect_error<UnsupportedError>(unknown.build(), "unknown ggml type id 99 in tensor 'mystery'");

  Builder noname;
  noname.tensor("", {4}, 0, 16);
  expect_error(noname.build(), "empty name");
}

TEST(GgufBad, TensorOffsets) {
  Builder mis = sample();
  mis.tensors[1].offset += 8;
  expect_error(mis.build(), "not a multiple of the alignment");

  Builder over = sample();
  over.tensors[2].offset = over.tensors[1].offset;  // same start as the Q4_K tensor
  over.tensors.back().nbytes += 64;                 // keep the file long enough
  expect_error(over.build(), "overlap");

  Builder past = sample();
  std::vector<uint8_t> b = past.build();
  b.resize(b.size() - 1);  // last tensor loses a byte
  expect_error(b, "past the end");

  // Offsets far past the end: patch the first tensor's offset field in place
  // (build() would size the data by it); it follows name, n_dims, ne[2], type.
  std::vector<uint8_t> sb = sample().build();
  size_t name_at = 0;
  for (size_t i = 0; i + 17 < sb.size(); ++i)
    if (std::memcmp(sb.data() + i, "token_embd.weight", 17) == 0) {
      name_at = i;
      break;
    }
  ASSERT_GT(name_at, 0u);
  size_t off_at = name_at + 17 + 4 + 16 + 4;
  uint64_t huge = (uint64_t{1} << 62);
  std::memcpy(sb.data() + off_at, &huge, 8);
  expect_error(sb, "past the end");
  uint64_t wrap = ~uint64_t{0} - 31;  // aligned, wraps around when added
  std::memcpy(sb.data() + off_at, &wrap, 8);
  expect_error(sb, "past the end");
}

TEST(GgufBad, FromAMappedFileNamesThePath) {
  fs::path p = fs::temp_directory_path() / "kaival_gguf_test_bad.gguf";
  {
    std::ofstream out(p, std::ios::binary);
    out << "GGUF\x03";
  }
  MappedFile m(p.string());
  try {
    GgufFile::parse(m);
    ADD_FAILURE() << "parsed";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
  }
  fs::remove(p);
}

}  // namespace
}  // namespace kaival::weights
