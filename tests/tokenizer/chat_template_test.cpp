// The chat template a model ships is kept verbatim and hashed (SHA-256 of its
// text), from tokenizer_config.json and from GGUF metadata, so manifests can
// say which template rendered the prompts.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/hash.h"
#include "tokenizer/tokenizer.h"

using namespace kaival;
namespace fs = std::filesystem;

namespace {

std::string models(const std::string& name) { return std::string(KAIVAL_TESTDATA) + "/models/" + name; }

std::string config_template(const std::string& dir) {
  std::ifstream f(dir + "/tokenizer_config.json");
  return nlohmann::json::parse(f).at("chat_template").get<std::string>();
}

}  // namespace

TEST(ChatTemplate, KeptVerbatimAndHashedFromTokenizerConfig) {
  auto tok = tokenizer::Tokenizer::open(models("base-a"));
  const std::string expected = config_template(models("base-a"));
  ASSERT_FALSE(expected.empty());
  EXPECT_EQ(tok->chat_template(), expected);
  const std::string h = tok->chat_template_sha256();
  EXPECT_EQ(h, sha256_hex(expected));
  EXPECT_EQ(h.size(), 64u);
  // The GGUF export carries the same template in tokenizer.chat_template.
  auto from_gguf = tokenizer::Tokenizer::open(models("base-a-gguf/base-a-F16.gguf"));
  EXPECT_EQ(from_gguf->chat_template_sha256(), h);
}

TEST(ChatTemplate, AChangedTemplateChangesTheHashAndNoTemplateHashesToEmpty) {
  fs::path dir = fs::temp_directory_path() / ("kaival-chat-template-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(models("base-a") + "/tokenizer.json", dir / "tokenizer.json");
  std::ifstream in(models("base-a") + "/tokenizer_config.json");
  nlohmann::json cfg = nlohmann::json::parse(in);
  cfg["chat_template"] = cfg["chat_template"].get<std::string>() + " ";
  std::ofstream(dir / "tokenizer_config.json") << cfg.dump();
  auto changed = tokenizer::Tokenizer::open(dir.string());
  auto original = tokenizer::Tokenizer::open(models("base-a"));
  EXPECT_NE(changed->chat_template_sha256(), original->chat_template_sha256());
  cfg.erase("chat_template");
  std::ofstream(dir / "tokenizer_config.json", std::ios::trunc) << cfg.dump();
  auto none = tokenizer::Tokenizer::open(dir.string());
  EXPECT_TRUE(none->chat_template().empty());
  EXPECT_TRUE(none->chat_template_sha256().empty());
  fs::remove_all(dir);
}
