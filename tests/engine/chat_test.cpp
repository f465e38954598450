// Chat prompts rendered through the model's template against Python jinja2
// renderings (tools/gen_engine_chat_ref.py -> testdata/engine/templates/).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "../support/process.h"
#include "core/error.h"
#include "core/jinja.h"
#include "engine/chat.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "tokenizer/tokenizer.h"
#include "weights/checkpoint.h"

namespace kaival::engine {
namespace {

using json = nlohmann::json;
const std::string kData = std::string(KAIVAL_TESTDATA);

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json renderings() { return json::parse(read_file(kData + "/engine/templates/renderings.json")); }

TEST(ChatTemplateTest, FamilyTemplatesMatchJinja2) {
  const auto ref = renderings();
  int checked = 0;
  for (const auto& c : ref["cases"]) {
    const std::string name = c["template"];
    if (name.rfind("models/", 0) == 0) continue;
    const std::string tmpl = read_file(kData + "/engine/templates/" + name);
    ASSERT_FALSE(tmpl.empty()) << name;
    ChatTokens tokens;
    if (c["bos_token"].is_string()) tokens.bos = c["bos_token"];
    if (c["eos_token"].is_string()) tokens.eos = c["eos_token"];
    const auto& messages = ref["conversations"][c["conversation"].get<std::string>()];
    const std::string label = name + "/" + c["conversation"].get<std::string>() + "/gen=" +
                              std::to_string(c["add_generation_prompt"].get<bool>());
    if (c.contains("error")) {
      EXPECT_THROW(render_chat_template(tmpl, messages, c["add_generation_prompt"], tokens), jinja::TemplateRaised)
          << label;
    } else {
      EXPECT_EQ(render_chat_template(tmpl, messages, c["add_generation_prompt"], tokens), c["expected"]) << label;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 72);
}

TEST(ChatTemplateTest, TokenizerTemplateFromConfigAndGguf) {
  const auto ref = renderings();
  const auto hf = tokenizer::Tokenizer::open(kData + "/models/base-a");
  const auto gguf_ckpt = weights::Checkpoint::open(kData + "/models/base-a-gguf/base-a-F16.gguf");
  const auto gguf = open_tokenizer(gguf_ckpt);
  int checked = 0;
  for (const auto& c : ref["cases"]) {
    if (c["template"] != "models/tokenizer-a" || c.contains("error")) continue;
    const auto& messages = ref["conversations"][c["conversation"].get<std::string>()];
    EXPECT_EQ(render_chat(*hf, messages, c["add_generation_prompt"]), c["expected"]);
    if (!gguf->chat_template().empty())
      EXPECT_EQ(render_chat(*gguf, messages, c["add_generation_prompt"]), c["expected"]);
    ++checked;
  }
  EXPECT_EQ(checked, 8);
  // <|im_end|> ends a ChatML turn.
  const auto eot = end_of_turn_tokens(*hf);
  ASSERT_EQ(eot.size(), 1u);
  EXPECT_EQ(hf->token(eot[0]), "<|im_end|>");
}

TEST(ChatTemplateTest, UnsupportedConstructsAreClearErrors) {
  const json messages = json::array({{{"role", "user"}, {"content", "x"}}});
  try {
    render_chat_template("{% extends 'base.html' %}", messages, true, {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("extends"), std::string::npos) << e.what();
  }
  EXPECT_THROW(render_chat_template("{% for m in messages %}", messages, true, {}), Error);
}

std::string run_cli(const std::string& args) {
  return testing_support::run_command(std::string(KAIVAL_BINARY) + " " + args + " 2>&1").out;
}

TEST(ChatTemplateTest, GenerateChatUsesTheTemplate) {
  const auto ckpt = weights::Checkpoint::open(kData + "/models/base-a");
  const auto tok = open_tokenizer(ckpt);
  const auto model = Model::load(ckpt, 1);
  const auto ref = renderings();
  std::string rendered;
  for (const auto& c : ref["cases"])
    if (c["template"] == "models/tokenizer-a" && c["conversation"] == "user" && c["add_generation_prompt"] == true)
      rendered = c["expected"];
  ASSERT_FALSE(rendered.empty());
  GenerateOptions o;
  o.max_tokens = 12;
  o.stop_tokens = end_of_turn_tokens(*tok);
  const auto expect = generate(model, *tok, tok->encode(rendered, false, true), o);
  const std::string question = ref["conversations"]["user"][0]["content"];
  EXPECT_EQ(run_cli("generate " + kData + "/models/base-a --chat --temperature 0 --max-tokens 12 --prompt '" +
                    question + "'"),
            expect.text + "\n");
}

}  // namespace
}  // namespace kaival::engine
