// Conformance of kaival's byte-level BPE on llama.cpp's vocabulary test files:
// for every ../shared/data/gguf-vocab/*.gguf whose tokenizer.ggml.model is
// "gpt2" and that has .inp/.out, encoding each .inp string (without BOS/EOS,
// as upstream generated the .out with Hugging Face tokenizers) must give the
// .out ids exactly.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/mmap.h"
#include "tokenizer/tokenizer.h"
#include "weights/gguf.h"
#include "../support/files.h"

namespace {

namespace fs = std::filesystem;
using kaival::tokenizer::Tokenizer;

using kaival::testing_support::read_file;

// Upstream .inp: each string followed by "\n__ggml_vocab_test__\n".
std::vector<std::string> read_inp(const fs::path& p) {
  const std::string text = read_file(p);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t pos = 0;
  for (size_t k; (k = text.find(sep, pos)) != std::string::npos; pos = k + sep.size()) out.push_back(text.substr(pos, k - pos));
  return out;
}

std::vector<std::vector<int32_t>> read_out(const fs::path& p) {
  std::vector<std::vector<int32_t>> out;
  std::istringstream in(read_file(p));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<int32_t> ids;
    for (int32_t id; ls >> id;) ids.push_back(id);
    out.push_back(std::move(ids));
  }
  return out;
}

std::vector<fs::path> gpt2_vocabs() {
  std::vector<fs::path> out;
  const fs::path dir = fs::path(KAIVAL_SHARED_DATA) / "gguf-vocab";
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const fs::path p = e.path();
    if (p.extension() != ".gguf" || !fs::exists(p.string() + ".inp") || !fs::exists(p.string() + ".out")) continue;
    kaival::MappedFile f(p.string());
    if (kaival::weights::GgufFile::parse(f)->get_string("tokenizer.ggml.model").value_or("") == "gpt2")
      out.push_back(p);
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(GgufBpeConformance, AllStringsOfAllGpt2Families) {
  const auto vocabs = gpt2_vocabs();
  if (vocabs.empty()) GTEST_SKIP() << "no gpt2 vocabularies under " << KAIVAL_SHARED_DATA << "/gguf-vocab";
  EXPECT_GE(vocabs.size(), 7u);  // gpt-2, mpt, falcon, starcoder, refact, deepseek-coder, deepseek-llm
  size_t total = 0, passed = 0;
  for (const auto& p : vocabs) {
    const auto tok = Tokenizer::open(p.string());
    ASSERT_EQ(tok->type(), "bpe") << p;
    const auto inputs = read_inp(p.string() + ".inp");
    const auto expected = read_out(p.string() + ".out");
    ASSERT_EQ(inputs.size(), expected.size()) << p;
    ASSERT_FALSE(inputs.empty()) << p;
    size_t ok = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const auto ids = tok->encode(inputs[i], /*add_special=*/false, /*parse_special=*/true);
      if (ids == expected[i]) ++ok;
      else
        ADD_FAILURE() << p.filename().string() << " string " << i << "\n  kaival:   " << fmt::format("{}", ids)
                      << "\n  expected: " << fmt::format("{}", expected[i]);
    }
    std::printf("[ %-32s ] %zu/%zu strings\n", p.filename().string().c_str(), ok, inputs.size());
    total += inputs.size();
    passed += ok;
  }
  std::printf("[ gpt2 families: %zu ] %zu/%zu strings\n", vocabs.size(), passed, total);
  EXPECT_EQ(passed, total);
}

// Decoding the expected ids gives back the input (all .inp strings are valid
// UTF-8 and these vocabularies have no normalizer).
TEST(GgufBpeConformance, DecodeRoundTrip) {
  const auto vocabs = gpt2_vocabs();
  if (vocabs.empty()) GTEST_SKIP() << "no gpt2 vocabularies";
  for (const auto& p : vocabs) {
    const auto tok = Tokenizer::open(p.string());
    const auto inputs = read_inp(p.string() + ".inp");
    const auto expected = read_out(p.string() + ".out");
    for (size_t i = 0; i < inputs.size(); ++i)
      EXPECT_EQ(tok->decode(expected[i]), inputs[i]) << p.filename().string() << " string " << i;
  }
}

}  // namespace
