// Generation loop and the generate / activations commands on the fixtures.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "../support/process.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "tokenizer/tokenizer.h"
#include "weights/checkpoint.h"

namespace kaival::engine {
namespace {

const std::string kModels = std::string(KAIVAL_TESTDATA) + "/models/";

nlohmann::json reference() {
  std::ifstream in(kModels + "base-a/reference_logits.json");
  return nlohmann::json::parse(in);
}

std::string run_cli(const std::string& args) {
  return testing_support::run_command(std::string(KAIVAL_BINARY) + " " + args + " 2>&1").out;
}

TEST(StopMatcherTest, HoldsBackPrefixesAndCutsAtTheFirstStop) {
  StopMatcher m({"END", "\n\n"});
  bool stopped = false;
  EXPECT_EQ(m.safe_length("hello EN", stopped), 6u);
  EXPECT_FALSE(stopped);
  EXPECT_EQ(m.safe_length("hello\n", stopped), 5u);
  EXPECT_EQ(m.safe_length("hello ENx", stopped), 9u);
  EXPECT_EQ(m.safe_length("a\n\nb END", stopped), 1u);
  EXPECT_TRUE(stopped);
}

class GenerateTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    ckpt_ = std::make_unique<weights::Checkpoint>(weights::Checkpoint::open(kModels + "base-a"));
    model_ = std::make_unique<Model>(Model::load(*ckpt_));
    tok_ = open_tokenizer(*ckpt_);
  }
  static inline std::unique_ptr<weights::Checkpoint> ckpt_;
  static inline std::unique_ptr<Model> model_;
  static inline std::unique_ptr<tokenizer::Tokenizer> tok_;
};

TEST_F(GenerateTest, GreedyMatchesReferenceAndStopsAtEos) {
  const auto ref = reference();
  ASSERT_EQ(ref["sequences"].size(), 4u);
  for (const auto& seq : ref["sequences"]) {
    const auto ids = seq["token_ids"].get<std::vector<int32_t>>();
    const auto expect = seq["greedy_continuation"].get<std::vector<int32_t>>();
    GenerateOptions o;
    o.max_tokens = static_cast<int32_t>(expect.size());
    o.stop_at_eos = false;
    std::string streamed;
    const auto res = generate(*model_, *tok_, ids, o, [&](std::string_view s) {
      streamed += s;
      return true;
    });
    EXPECT_EQ(res.tokens, expect);
    EXPECT_EQ(res.finish, FinishReason::Length);
    EXPECT_EQ(res.text, tok_->decode(expect, true));
    EXPECT_EQ(streamed, res.text);

    o.stop_at_eos = true;
    const auto eos_res = generate(*model_, *tok_, ids, o);
    const auto eos_at = std::find(expect.begin(), expect.end(), *tok_->special().eos);
    EXPECT_EQ(eos_res.tokens, std::vector<int32_t>(expect.begin(), eos_at == expect.end() ? eos_at : eos_at + 1));
  }
}

TEST_F(GenerateTest, SeededSamplingIsDeterministic) {
  const auto ids = tok_->encode("Alice went to the");
  GenerateOptions o;
  o.max_tokens = 24;
  o.stop_at_eos = false;
  o.sampling = {.temperature = 1.2f, .top_k = 50, .top_p = 0.95f, .seed = 5};
  const auto a = generate(*model_, *tok_, ids, o), b = generate(*model_, *tok_, ids, o);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.tokens.size(), 24u);
  o.sampling.seed = 6;
  EXPECT_NE(generate(*model_, *tok_, ids, o).tokens, a.tokens);
}

TEST_F(GenerateTest, StopStringCutsTheText) {
  const auto ids = tok_->encode("The quick fox jumps over the fence.");
  GenerateOptions o;
  o.max_tokens = 24;
  o.stop_at_eos = false;
  const auto free_run = generate(*model_, *tok_, ids, o);
  ASSERT_GE(free_run.text.size(), 8u);
  // A stop string taken from the middle of the unconstrained output.
  const std::string stop = free_run.text.substr(free_run.text.size() / 2, 3);
  o.stop = {stop};
  std::string streamed;
  const auto res = generate(*model_, *tok_, ids, o, [&](std::string_view s) {
    streamed += s;
    return true;
  });
  EXPECT_EQ(res.finish, FinishReason::Stop);
  EXPECT_EQ(res.text, free_run.text.substr(0, free_run.text.find(stop)));
  EXPECT_EQ(streamed, res.text);
}

TEST(CliTest, GenerateGreedyPrintsTheReferenceContinuation) {
  const auto seq = reference()["sequences"][0];
  const auto tok = tokenizer::Tokenizer::open(kModels + "base-a");
  const std::string expect = tok->decode(seq["greedy_continuation"].get<std::vector<int32_t>>(), true) + "\n";
  for (const std::string model : {"base-a", "base-a-gguf/base-a-F16.gguf"}) {
    const auto out = run_cli("generate " + kModels + model + " --prompt '" + seq["text"].get<std::string>() +
                             "' --temperature 0 --max-tokens 8 --ignore-eos");
    EXPECT_EQ(out, expect) << model;
  }
  EXPECT_NE(run_cli("generate " + kModels + "base-a --prompt x --top-p 0").find("--top-p"), std::string::npos);
}

TEST(CliTest, ActivationsJsonMatchesReferenceNorms) {
  const auto seq = reference()["sequences"][1];
  const auto out = run_cli("activations " + kModels + "base-a --json --text '" + seq["text"].get<std::string>() + "'");
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["tokens"], seq["token_ids"]);
  const auto norms = seq["hidden_norms"].get<std::vector<std::vector<double>>>();
  const auto got = j["hidden_norms"].get<std::vector<std::vector<double>>>();
  ASSERT_EQ(got.size(), norms.size());
  for (size_t l = 0; l < norms.size(); ++l) {
    ASSERT_EQ(got[l].size(), norms[l].size());
    for (size_t p = 0; p < norms[l].size(); ++p) EXPECT_NEAR(got[l][p], norms[l][p], 1e-5 * norms[l][p]);
  }
}

TEST(CliTest, ActivationsBinaryOutLayout) {
  const std::string path = testing::TempDir() + "/engine_hs.bin";
  run_cli("activations " + kModels + "base-a --text 'Hi there' --out " + path);
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_GE(bytes.size(), 20u);
  EXPECT_EQ(bytes.substr(0, 4), "KVHS");
  uint32_t hdr[4];
  std::memcpy(hdr, bytes.data() + 4, 16);
  EXPECT_EQ(hdr[0], 1u);
  EXPECT_EQ(hdr[1], 5u);
  EXPECT_EQ(hdr[3], 64u);
  EXPECT_EQ(bytes.size(), 20u + 4u * (uint64_t{hdr[1]} + 1) * hdr[2] * hdr[3]);
  // Entry 0 is the embedding row of the first token (BOS).
  const Model model = Model::open(kModels + "base-a");
  const auto hs = model.hidden_states(std::vector<int32_t>{507});
  float first;
  std::memcpy(&first, bytes.data() + 20, 4);
  EXPECT_EQ(first, hs.at(0, 0)[0]);
}

}  // namespace
}  // namespace kaival::engine
