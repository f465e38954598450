// Conformance of the GGUF SentencePiece ("llama") and WordPiece ("bert")
// tokenizers with llama.cpp's upstream test vectors: each string of NAME.inp
// must encode (no BOS/CLS, special tokens not parsed, as llama.cpp's
// test-tokenizer-0 runs) to exactly the ids on its line of NAME.out.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/mmap.h"
#include "tokenizer/factories.h"
#include "weights/gguf.h"
#include "../support/files.h"

namespace kaival::tokenizer {
namespace {

const std::string kVocabDir = std::string(KAIVAL_SHARED_DATA) + "/gguf-vocab/";

using kaival::testing_support::read_file;

// The .inp format: strings separated by "\n__ggml_vocab_test__\n".
std::vector<std::string> read_inputs(const std::string& path) {
  std::string raw = read_file(path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  for (size_t pos; (pos = raw.find(sep)) != std::string::npos; raw.erase(0, pos + sep.size()))
    out.push_back(raw.substr(0, pos));
  return out;
}

std::vector<std::vector<int32_t>> read_expected(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::vector<int32_t>> out;
  for (std::string line; std::getline(f, line);) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    for (int32_t id; ls >> id;) ids.push_back(id);
    out.push_back(std::move(ids));
  }
  return out;
}

std::string join(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += " " + std::to_string(id);
  return s;
}

struct Family {
  const char* name;
  std::unique_ptr<Tokenizer> (*make)(const weights::GgufFile&, const std::string&);
};

class GgufConformance : public ::testing::TestWithParam<Family> {};

TEST_P(GgufConformance, EncodesEveryTestString) {
  const Family fam = GetParam();
  const std::string base = kVocabDir + "ggml-vocab-" + fam.name + ".gguf";
  if (!std::filesystem::exists(base)) GTEST_SKIP() << "MISSING test data " << base;
  MappedFile file(base);
  auto gguf = weights::GgufFile::parse(file);
  auto tok = fam.make(*gguf, base);
  const auto inputs = read_inputs(base + ".inp");
  const auto expected = read_expected(base + ".out");
  ASSERT_EQ(inputs.size(), expected.size()) << base;
  ASSERT_GT(inputs.size(), 20u);
  size_t pass = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto got = tok->encode(inputs[i], /*add_special=*/false, /*parse_special=*/false);
    if (got == expected[i])
      ++pass;
    else
      ADD_FAILURE() << fam.name << " string " << i << " '" << inputs[i] << "'\n  expected:" << join(expected[i])
                    << "\n  got:     " << join(got);
  }
  std::printf("[ conformance ] %s: %zu/%zu strings pass\n", fam.name, pass, inputs.size());
  EXPECT_EQ(pass, inputs.size());
}

INSTANTIATE_TEST_SUITE_P(Families, GgufConformance,
                         ::testing::Values(Family{"llama-spm", spm_from_gguf}, Family{"phi-3", spm_from_gguf},
                                           Family{"bert-bge", wordpiece_from_gguf}),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

// Round trip: decode(encode(s)) gives s back for text the vocab covers
// (spaces, byte-fallback characters, BOS skipped).
TEST(GgufSpm, DecodeInvertsEncode) {
  const std::string path = kVocabDir + "ggml-vocab-llama-spm.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "MISSING test data " << path;
  MappedFile file(path);
  auto tok = spm_from_gguf(*weights::GgufFile::parse(file), path);
  EXPECT_EQ(tok->type(), "spm");
  EXPECT_EQ(tok->vocab_size(), 32000u);
  for (const std::string s : {"Hello world", "  two leading spaces", "emoji 🦙 and 한국어 text\n\tend", ""}) {
    const auto ids = tok->encode(s, true, true);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], 1) << "BOS first (add_bos_token)";
    EXPECT_EQ(tok->decode(ids, true), s);
  }
  // Special tokens in the text are parsed only when asked.
  const auto parsed = tok->encode("a</s>b", false, true);
  EXPECT_NE(std::find(parsed.begin(), parsed.end(), 2), parsed.end());
  const auto literal = tok->encode("a</s>b", false, false);
  EXPECT_EQ(std::find(literal.begin(), literal.end(), 2), literal.end());
  EXPECT_EQ(tok->decode(literal, false), "a</s>b");
}

// Baichuan's vocab (no upstream vectors): it loads, and encodes with byte
// fallback and its own newline token.
TEST(GgufSpm, BaichuanLoadsAndRoundTrips) {
  const std::string path = kVocabDir + "ggml-vocab-baichuan.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "MISSING test data " << path;
  MappedFile file(path);
  auto tok = spm_from_gguf(*weights::GgufFile::parse(file), path);
  EXPECT_EQ(tok->vocab_size(), 64000u);
  const std::string s = "百川 tokenizer: 안녕하세요\n🦙 done";
  const auto ids = tok->encode(s, true, true);
  ASSERT_GT(ids.size(), 3u);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(tok->decode(ids, true), s);
}

}  // namespace
}  // namespace kaival::tokenizer
