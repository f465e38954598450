// Conformance of kaival's SentencePiece-style BPE (byte fallback, "▁" spaces)
// with Hugging Face tokenizers on the real tokenizer.json files of llama2 and
// gemma3 (npm @lenml/tokenizer-*). Reference ids and decodes come from the
// Rust tokenizers (tools/npm/reference_ids.js, committed as
// testdata/tokenizer/<family>.ids.jsonl); with node installed the reference
// is re-run live to show the committed ids are current.
#include <gtest/gtest.h>

#include <unistd.h>

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

struct RefCase {
  std::string text;
  std::vector<int32_t> ids;
  std::string decoded, decoded_skip;
};

std::vector<RefCase> load_reference(const fs::path& path) {
  std::vector<RefCase> cases;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    const json j = json::parse(line);
    if (j.contains("meta")) continue;
    cases.push_back({j.at("text").get<std::string>(), j.at("ids").get<std::vector<int32_t>>(),
                     j.at("decoded").get<std::string>(), j.at("decoded_skip").get<std::string>()});
  }
  return cases;
}

fs::path npm_tools() { return fs::path(KAIVAL_SOURCE_DIR) / "tools" / "npm"; }
fs::path family_dir(const std::string& family) {
  return npm_tools() / "node_modules" / "@lenml" / ("tokenizer-" + family) / "models";
}

std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  return out.size() > 160 ? out.substr(0, 160) + "..." : out;
}

class HfSpmConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!fs::exists(family_dir(GetParam()) / "tokenizer.json"))
      GTEST_SKIP() << "\n*** SKIPPED: " << (family_dir(GetParam()) / "tokenizer.json")
                   << " is missing.\n*** Run scripts/setup (npm ci in tools/npm) to install the reference "
                      "tokenizer.json files. ***";
  }
};

TEST_P(HfSpmConformance, IdsAndDecodeMatchReference) {
  const std::string family = GetParam();
  const auto cases = load_reference(fs::path(KAIVAL_TESTDATA) / "tokenizer" / (family + ".ids.jsonl"));
  ASSERT_GT(cases.size(), 300u);
  // The model folder: tokenizer.json plus tokenizer_config.json.
  const auto tok = Tokenizer::open(family_dir(family).string());
  ASSERT_EQ(tok->type(), "spm");
  size_t ids_ok = 0, dec_ok = 0, shown = 0;
  for (const auto& c : cases) {
    const auto ids = tok->encode(c.text, /*add_special=*/true, /*parse_special=*/true);
    if (ids == c.ids)
      ++ids_ok;
    else if (shown++ < 5)
      ADD_FAILURE() << family << " text \"" << printable(c.text) << "\"\n  kaival:    " << fmt::format("{}", ids)
                    << "\n  reference: " << fmt::format("{}", c.ids);
    const std::string d = tok->decode(c.ids, false), ds = tok->decode(c.ids, true);
    if (d == c.decoded && ds == c.decoded_skip)
      ++dec_ok;
    else if (shown++ < 5)
      ADD_FAILURE() << family << " decode of \"" << printable(c.text) << "\":\n  kaival:    \"" << printable(d)
                    << "\" / \"" << printable(ds) << "\"\n  reference: \"" << printable(c.decoded) << "\" / \""
                    << printable(c.decoded_skip) << "\"";
  }
  std::printf("[ %s ] ids %zu/%zu, decode %zu/%zu\n", family.c_str(), ids_ok, cases.size(), dec_ok, cases.size());
  EXPECT_EQ(ids_ok, cases.size());
  EXPECT_EQ(dec_ok, cases.size());
}

// The special tokens come from tokenizer_config.json and the template.
TEST_P(HfSpmConformance, SpecialTokens) {
  const std::string family = GetParam();
  const auto tok = Tokenizer::open(family_dir(family).string());
  const json cfg = json::parse(std::ifstream(family_dir(family) / "tokenizer_config.json"));
  const auto& sp = tok->special();
  ASSERT_TRUE(sp.bos && sp.eos && sp.unk);
  EXPECT_EQ(tok->token(*sp.bos), cfg.at("bos_token").get<std::string>());
  EXPECT_EQ(tok->token(*sp.eos), cfg.at("eos_token").get<std::string>());
  EXPECT_EQ(tok->token(*sp.unk), cfg.at("unk_token").get<std::string>());
  EXPECT_EQ(sp.add_bos, cfg.at("add_bos_token").get<bool>());
  EXPECT_EQ(sp.add_eos, cfg.at("add_eos_token").get<bool>());
  if (cfg.contains("chat_template")) EXPECT_EQ(tok->chat_template(), cfg["chat_template"].get<std::string>());
}

// The committed reference ids are what the reference produces today.
TEST_P(HfSpmConformance, CommittedIdsAreCurrentReference) {
  const std::string family = GetParam();
  if (!fs::exists(npm_tools() / "node_modules" / "@anush008" / "tokenizers") ||
      std::system("node --version >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "node or @anush008/tokenizers not installed; not re-running the reference";
  const fs::path out = fs::temp_directory_path() / fmt::format("kaival-spm-ref-{}-{}", family, ::getpid());
  const std::string cmd = fmt::format("node '{}' --out '{}' {} >/dev/null",
                                      (npm_tools() / "reference_ids.js").string(), out.string(), family);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto live = load_reference(out / (family + ".ids.jsonl"));
  const auto committed = load_reference(fs::path(KAIVAL_TESTDATA) / "tokenizer" / (family + ".ids.jsonl"));
  fs::remove_all(out);
  ASSERT_EQ(live.size(), committed.size());
  for (size_t i = 0; i < live.size(); ++i) {
    EXPECT_EQ(live[i].text, committed[i].text);
    EXPECT_EQ(live[i].ids, committed[i].ids) << "text " << printable(live[i].text);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, HfSpmConformance, ::testing::Values("llama2", "gemma3"));

}  // namespace
