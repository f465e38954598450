// safetensors reader: every dtype decoded from hand-written bit patterns with
// known values, sharded checkpoints, and lying or broken headers.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "weights/checkpoint.h"
#include "weights/safetensors.h"
#include "st_test_util.h"

using namespace kaival;
using namespace kaival::weights;
using namespace kaival::testutil;
namespace fs = std::filesystem;

namespace {

// Parses bytes that must be rejected; returns the error message.
template <typename E>
std::string rejected(const std::vector<uint8_t>& bytes, const std::string& name = "bad.safetensors") {
  try {
    parse_safetensors(bytes, name);
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "accepted a bad file";
  return "";
}

std::vector<uint8_t> with_header(const nlohmann::json& h, const std::vector<uint8_t>& data) {
  return file_bytes(h.dump(), data);
}

}  // namespace

TEST(Safetensors, ParsesHeaderWithAbsoluteOffsets) {
  std::vector<StTensor> ts = {{"b", "F32", {2}, le_bytes<float>({1.0f, 2.0f})},
                              {"a", "I8", {3}, {1, 2, 3}}};
  nlohmann::json h = header_for(ts);
  h["__metadata__"] = {{"format", "pt"}};
  std::string header = h.dump();
  auto bytes = file_bytes(header, data_of(ts));
  SafetensorsFile f = parse_safetensors(bytes, "x.safetensors", 3);
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.metadata["format"], "pt");
  EXPECT_EQ(f.data_offset, 8 + header.size());
  // file order: "b" comes first in the data section
  EXPECT_EQ(f.tensors[0].name, "b");
  EXPECT_EQ(f.tensors[0].offset, 8 + header.size());
  EXPECT_EQ(f.tensors[0].nbytes, 8u);
  EXPECT_EQ(f.tensors[0].file_index, 3u);
  EXPECT_EQ(f.tensors[1].name, "a");
  EXPECT_EQ(f.tensors[1].offset, 8 + header.size() + 8);
  EXPECT_EQ(f.tensors[1].dtype, DType::I8);
  EXPECT_EQ(f.tensors[1].shape, (std::vector<int64_t>{3}));
}

TEST(Safetensors, EveryDtypeDecodesToKnownValues) {
  // Bit patterns whose values follow from the format definitions.
  struct Case {
    StTensor t;
    std::vector<float> want;
  };
  std::vector<Case> cases = {
      {{"f64", "F64", {3}, le_bytes<double>({0.1, -2.5, 1e300})},
       {0.1f, -2.5f, std::numeric_limits<float>::infinity()}},
      {{"f32", "F32", {2, 2}, le_bytes<float>({1.5f, -0.0f, 3e-45f, 65504.0f})}, {1.5f, -0.0f, 3e-45f, 65504.0f}},
      // F16: 1.0, -2.0, 65504 (max), 2^-24 (smallest subnormal)
      {{"f16", "F16", {4}, le_bytes<uint16_t>({0x3c00, 0xc000, 0x7bff, 0x0001})},
       {1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24)}},
      // BF16: 1.0, -5.0, 3.140625, 2^-133 (subnormal)
      {{"bf16", "BF16", {4}, le_bytes<uint16_t>({0x3f80, 0xc0a0, 0x4049, 0x0001})},
       {1.0f, -5.0f, 3.140625f, std::ldexp(1.0f, -133)}},
      // E4M3 (bias 7): 1.0, -0.5, 448 (max), 2^-9 (smallest subnormal)
      {{"e4m3", "F8_E4M3", {4}, {0x38, 0xb0, 0x7e, 0x01}}, {1.0f, -0.5f, 448.0f, std::ldexp(1.0f, -9)}},
      // E5M2 (bias 15): 1.0, -2.0, 57344 (max), 2^-16 (smallest subnormal)
      {{"e5m2", "F8_E5M2", {4}, {0x3c, 0xc0, 0x7b, 0x01}}, {1.0f, -2.0f, 57344.0f, std::ldexp(1.0f, -16)}},
      {{"i64", "I64", {3}, le_bytes<int64_t>({-5, 1ll << 40, 0})}, {-5.0f, 1099511627776.0f, 0.0f}},
      {{"i32", "I32", {3}, le_bytes<int32_t>({-70000, 7, 2147483647})}, {-70000.0f, 7.0f, 2147483648.0f}},
      {{"i16", "I16", {3}, le_bytes<int16_t>({-32768, 1, 32767})}, {-32768.0f, 1.0f, 32767.0f}},
      {{"i8", "I8", {3}, {0x80, 0xff, 0x7f}}, {-128.0f, -1.0f, 127.0f}},
      {{"u8", "U8", {3}, {0, 128, 255}}, {0.0f, 128.0f, 255.0f}},
      {{"bool", "BOOL", {3}, {1, 0, 1}}, {1.0f, 0.0f, 1.0f}},
  };
  TempDir dir;
  std::vector<StTensor> ts;
  for (const auto& c : cases) ts.push_back(c.t);
  write_st(dir.file("model.safetensors"), ts);
  Checkpoint ck = Checkpoint::open(dir.str());
  EXPECT_EQ(ck.format(), Format::Safetensors);
  ASSERT_EQ(ck.tensors().size(), cases.size());
  for (const auto& c : cases) {
    const TensorInfo* t = ck.find(c.t.name);
    ASSERT_NE(t, nullptr) << c.t.name;
    EXPECT_EQ(t->type_name, c.t.dtype);
    EXPECT_EQ(dtype_name(t->dtype), c.t.dtype);
    std::vector<float> got = ck.read_f32(*t);
    ASSERT_EQ(got.size(), c.want.size());
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(std::signbit(got[k]), std::signbit(c.want[k])) << c.t.name << "[" << k << "]";
      EXPECT_EQ(got[k], c.want[k]) << c.t.name << "[" << k << "]";
    }
  }
}

TEST(Safetensors, RowRangesAndScalars) {
  TempDir dir;
  write_st(dir.file("m.safetensors"),
           {{"w", "F32", {3, 2}, le_bytes<float>({0, 1, 2, 3, 4, 5})}, {"s", "F32", {}, le_bytes<float>({7.5f})},
            {"empty", "F16", {0, 4}, {}}});
  Checkpoint ck = Checkpoint::open(dir.file("m.safetensors"));
  const TensorInfo& w = *ck.find("w");
  float rows[4];
  ck.read_rows(w, 1, 2, rows);
  EXPECT_EQ(std::vector<float>(rows, rows + 4), (std::vector<float>{2, 3, 4, 5}));
  EXPECT_THROW(ck.read_rows(w, 2, 2, rows), FormatError);
  EXPECT_THROW(ck.read_rows(w, -1, 1, rows), FormatError);
  EXPECT_EQ(ck.read_f32(*ck.find("s")), std::vector<float>{7.5f});
  EXPECT_TRUE(ck.read_f32(*ck.find("empty")).empty());
  EXPECT_EQ(ck.parameter_count(), 6 + 1 + 0);
  ck.release(w);  // only a hint; must not disturb later reads
  EXPECT_EQ(ck.read_f32(w)[5], 5.0f);
}

TEST(Safetensors, KnownButUndecodableDtypeIsListedAndReadIsUnsupported) {
  TempDir dir;
  write_st(dir.file("m.safetensors"), {{"u", "U32", {2}, le_bytes<uint32_t>({1, 2})}});
  Checkpoint ck = Checkpoint::open(dir.file("m.safetensors"));
  const TensorInfo& t = *ck.find("u");
  EXPECT_EQ(t.dtype, DType::Unsupported);
  EXPECT_EQ(t.type_name, "U32");
  try {
    ck.read_f32(t);
    FAIL() << "read an undecodable type";
  } catch (const UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("unsupported tensor type U32 in tensor u"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("m.safetensors"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, ShardedByIndex) {
  TempDir dir;
  std::vector<StTensor> s1 = {{"a", "F32", {2}, le_bytes<float>({1, 2})}, {"b", "BF16", {1}, le_bytes<uint16_t>({0x4000})}};
  std::vector<StTensor> s2 = {{"c", "I32", {2}, le_bytes<int32_t>({-3, 4})}};
  write_st(dir.file("model-00001-of-00002.safetensors"), s1);
  write_st(dir.file("model-00002-of-00002.safetensors"), s2);
  nlohmann::json idx = {{"metadata", {{"total_size", 18}}},
                        {"weight_map",
                         {{"a", "model-00001-of-00002.safetensors"},
                          {"b", "model-00001-of-00002.safetensors"},
                          {"c", "model-00002-of-00002.safetensors"}}}};
  write_file(dir.file("model.safetensors.index.json"), idx.dump());
  for (const std::string& path : {dir.str(), dir.file("model.safetensors.index.json")}) {
    Checkpoint ck = Checkpoint::open(path);
    EXPECT_EQ(ck.format(), Format::SafetensorsSharded);
    EXPECT_EQ(format_name(ck.format()), "safetensors-sharded");
    ASSERT_EQ(ck.files().size(), 2u);
    EXPECT_EQ(fs::path(ck.files()[1]).filename(), "model-00002-of-00002.safetensors");
    ASSERT_EQ(ck.tensors().size(), 3u);
    EXPECT_EQ(ck.find("c")->file_index, 1u);
    EXPECT_EQ(ck.read_f32(*ck.find("c")), (std::vector<float>{-3, 4}));
    EXPECT_EQ(ck.read_f32(*ck.find("b")), (std::vector<float>{2}));
    EXPECT_EQ(ck.parameter_count(), 5);
  }
}

TEST(Safetensors, ShardedIndexMustAgreeWithShards) {
  TempDir dir;
  write_st(dir.file("s1.safetensors"), {{"a", "F32", {1}, le_bytes<float>({1})}});
  auto open_with = [&](const nlohmann::json& wm) {
    write_file(dir.file("model.safetensors.index.json"), nlohmann::json{{"weight_map", wm}}.dump());
    return Checkpoint::open(dir.str());
  };
  EXPECT_THROW(open_with({{"a", "s1.safetensors"}, {"ghost", "s1.safetensors"}}), FormatError);
  EXPECT_THROW(open_with({{"a", "../s1.safetensors"}}), FormatError);
  EXPECT_THROW(open_with({{"a", "missing.safetensors"}}), IoError);
  EXPECT_THROW(open_with(nlohmann::json::object()), FormatError);
  EXPECT_NO_THROW(open_with({{"a", "s1.safetensors"}}));
}

// ---- lying and broken headers ----------------------------------------------

TEST(SafetensorsBad, OffsetsPastEndOfFile) {
  std::vector<StTensor> ts = {{"w", "F32", {4}, le_bytes<float>({1, 2, 3, 4})}};
  auto bytes = file_bytes(header_for(ts).dump(), le_bytes<float>({1, 2}));  // data cut short
  auto msg = rejected<FormatError>(bytes);
  EXPECT_NE(msg.find("'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("past"), std::string::npos) << msg;
}

TEST(SafetensorsBad, OverlappingTensors) {
  nlohmann::json h = {{"a", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {0, 8}}}},
                      {"b", {{"dtype", "F32"}, {"shape", {2}}, {"data_offsets", {4, 12}}}}};
  auto msg = rejected<FormatError>(with_header(h, std::vector<uint8_t>(12)));
  EXPECT_NE(msg.find("overlap"), std::string::npos) << msg;
  // identical ranges overlap too
  h["b"]["data_offsets"] = {0, 8};
  rejected<FormatError>(with_header(h, std::vector<uint8_t>(12)));
}

TEST(SafetensorsBad, HugeHeaderLength) {
  std::string header = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
  std::vector<uint8_t> data = {7};
  for (uint64_t len : {uint64_t{1} << 63, ~uint64_t{0}, uint64_t{header.size() + 2}, uint64_t{200} << 20}) {
    auto msg = rejected<FormatError>(file_bytes(header, data, len));
    EXPECT_NE(msg.find("header length"), std::string::npos) << msg;
  }
}

TEST(SafetensorsBad, HugeDimsAndRanks) {
  auto bad_shape = [](nlohmann::json shape) {
    nlohmann::json h = {{"t", {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {0, 8}}}}};
    return rejected<FormatError>(with_header(h, std::vector<uint8_t>(8)));
  };
  bad_shape({uint64_t{1} << 40, uint64_t{1} << 40});  // product overflows 64 bits... after a fashion
  bad_shape({~uint64_t{0}});
  bad_shape({uint64_t{1} << 32, uint64_t{1} << 32, 4});
  bad_shape({-1, -8});
  bad_shape({2.5});
  bad_shape({"2"});
  auto msg = bad_shape({1, 1, 1, 1, 1, 1, 1, 1, 2});
  EXPECT_NE(msg.find("rank"), std::string::npos) << msg;
  EXPECT_NE(bad_shape({uint64_t{1} << 61, 16}).find("'t'"), std::string::npos);
}

TEST(SafetensorsBad, DtypeTimesShapeMismatch) {
  nlohmann::json h = {{"t", {{"dtype", "BF16"}, {"shape", {3}}, {"data_offsets", {0, 8}}}}};
  auto msg = rejected<FormatError>(with_header(h, std::vector<uint8_t>(8)));
  EXPECT_NE(msg.find("6 bytes"), std::string::npos) << msg;
  h["t"]["data_offsets"] = {8, 2};  // reversed
  rejected<FormatError>(with_header(h, std::vector<uint8_t>(8)));
}

TEST(SafetensorsBad, MalformedJson) {
  for (std::string header : {std::string(R"({"a":{"dtype":"F32",)"), std::string("[1,2,3]"), std::string("nul"),
                             std::string(R"({"a":5})"), std::string(R"({"a":{"dtype":"F32","shape":[1]}})"),
                             std::string(R"({"a":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})"),
                             std::string(R"({"__metadata__":[1],"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})"),
                             std::string(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})"),
                             std::string("\xff\xfe{}")}) {
    rejected<FormatError>(file_bytes(header, std::vector<uint8_t>(4)));
  }
  // Deep nesting is refused before the JSON parser recurses.
  std::string deep = R"({"__metadata__":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto msg = rejected<FormatError>(file_bytes(deep, {}));
  EXPECT_NE(msg.find("nested"), std::string::npos) << msg;
}

TEST(SafetensorsBad, UnknownDtypeIsUnsupported) {
  nlohmann::json h = {{"t", {{"dtype", "F128"}, {"shape", {1}}, {"data_offsets", {0, 16}}}}};
  auto msg = rejected<UnsupportedError>(with_header(h, std::vector<uint8_t>(16)));
  EXPECT_NE(msg.find("F128"), std::string::npos) << msg;
}

TEST(SafetensorsBad, TruncatedFiles) {
  std::vector<StTensor> ts = {{"w", "F32", {2}, le_bytes<float>({1, 2})}};
  auto good = file_bytes(header_for(ts).dump(), data_of(ts));
  EXPECT_NO_THROW(parse_safetensors(good, "good.safetensors"));
  // Every strict prefix is rejected cleanly, whether cut in the length, the header or the data.
  for (size_t n = 0; n < good.size(); ++n)
    rejected<FormatError>(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<ptrdiff_t>(n)));

  TempDir dir;
  write_file(dir.file("cut.safetensors"), std::vector<uint8_t>(good.begin(), good.end() - 3));
  try {
    Checkpoint::open(dir.file("cut.safetensors"));
    FAIL() << "opened a truncated file";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("cut.safetensors"), std::string::npos) << e.what();
  }
}

TEST(SafetensorsBad, OpenErrorsNameTheFile) {
  TempDir dir;
  EXPECT_THROW(Checkpoint::open(dir.file("nope.safetensors")), IoError);
  EXPECT_THROW(Checkpoint::open(dir.str()), FormatError);  // empty folder: no weights
  write_file(dir.file("junk.dat"), std::string("hello world, not a model"));
  EXPECT_THROW(Checkpoint::open(dir.file("junk.dat")), UnsupportedError);
}
