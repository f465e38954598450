// Log-likelihood scoring: which echoed tokens belong to the continuation,
// with and without a BOS token's text in the echo, in byte and character
// offsets, and end to end against kaival's own server on a trained fixture.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/generate.h"
#include "eval/runner.h"
#include "server/openai_server.h"

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// An echo as an OpenAI-compatible server returns it: tokens, logprobs and
// offsets that count `unit`s (bytes or code points) from the echo's start.
json echo(const std::vector<std::string>& tokens, const std::vector<double>& lps, bool chars) {
  json j{{"tokens", tokens}, {"token_logprobs", json::array()}, {"text_offset", json::array()}};
  size_t off = 0;
  for (size_t i = 0; i < tokens.size(); ++i) {
    j["token_logprobs"].push_back(i == 0 ? json(nullptr) : json(lps[i]));
    j["text_offset"].push_back(off);
    size_t n = 0;
    for (unsigned char c : tokens[i]) n += chars ? (c & 0xC0) != 0x80 : 1;
    off += n;
  }
  return j;
}

}  // namespace

TEST(EvalLoglikelihood, BosTextInTheEchoDoesNotShiftTheContinuation) {
  // "<s>" is echoed but is not part of the prompt; one generated token follows.
  const std::vector<std::string> toks = {"<s>", "4", " +", " 3", "8", " =", " 4", "1", ".", " x"};
  const std::vector<double> lp = {0, -1, -2, -3, -4, -5, -0.5, -0.25, -0.125, -9};
  const double want = -0.5 - 0.25 - 0.125;
  EXPECT_DOUBLE_EQ(kaival::eval::continuation_logprob(echo(toks, lp, false), "4 + 38 =", "4 + 38 = 41.", "t"), want);
  // Without the BOS text the same tokens score the same.
  std::vector<std::string> no_bos(toks.begin() + 1, toks.end());
  std::vector<double> lp2(lp.begin() + 1, lp.end());
  EXPECT_DOUBLE_EQ(kaival::eval::continuation_logprob(echo(no_bos, lp2, false), "4 + 38 =", "4 + 38 = 41.", "t"), want);
}

TEST(EvalLoglikelihood, CharacterOffsetsWithKoreanText) {
  // vLLM counts characters: "민수" is 2 characters but 6 bytes.
  const std::vector<std::string> toks = {"<s>", "민수", "는", " 학교", "에", " 갔다", "."};
  const std::vector<double> lp = {0, -1, -0.5, -2, -0.25, -4, -0.125};
  EXPECT_DOUBLE_EQ(kaival::eval::continuation_logprob(echo(toks, lp, true), "민수", "민수는 학교에", "t"), -0.5 - 2 - 0.25);
  EXPECT_DOUBLE_EQ(kaival::eval::continuation_logprob(echo(toks, lp, false), "민수", "민수는 학교에", "t"), -0.5 - 2 - 0.25);
}

TEST(EvalLoglikelihood, MissingPromptLogprobsAreRefusedLoudly) {
  EXPECT_THROW(kaival::eval::continuation_logprob(json{{"tokens", {"a"}}}, "a", "ab", "t"), kaival::UnsupportedError);
  EXPECT_THROW(kaival::eval::continuation_logprob(json(nullptr), "a", "ab", "t"), kaival::UnsupportedError);
}

TEST(EvalLoglikelihood, AgainstTheLocalServerChoicesGetTheirOwnScores) {
  // Sums: the choices differ only in digits, so their log-likelihoods must
  // differ; each must equal the engine's own log-probabilities.
  auto served = kaival::server::ServedModel::open(std::string(KAIVAL_TESTDATA) + "/models/base-a", "base-a");
  kaival::server::OpenAIServer srv(served);
  const int port = srv.start();
  const fs::path out = fs::temp_directory_path() / ("kaival-ll-" + std::to_string(::getpid()));
  kaival::eval::RunOptions opt;
  opt.model_url = "http://127.0.0.1:" + std::to_string(port);
  opt.out_dir = out.string();
  opt.progress = false;
  opt.limit = 4;
  kaival::eval::run_eval({std::string(KAIVAL_TESTDATA) + "/demo/tasks/demo_arith_add.yaml"}, opt);
  srv.stop();

  std::ifstream f(out / "samples_demo_arith_add.jsonl");
  std::ifstream data(std::string(KAIVAL_TESTDATA) + "/demo/data/arith_add.jsonl");
  std::string line, row;
  int items = 0;
  while (std::getline(f, line) && std::getline(data, row)) {
    json s = json::parse(line), d = json::parse(row);
    ASSERT_EQ(s["doc_id"], d["id"]);
    const auto& lls = s["loglikelihoods"];
    ASSERT_EQ(lls.size(), d["choices"].size());
    for (size_t c = 0; c < lls.size(); ++c) {
      // Reference: the engine directly, summing the continuation tokens.
      const auto& tok = *served->tokenizer;
      const std::string ctx = d["context"], full = ctx + d["choices"][c].get<std::string>();
      auto ids = tok.encode(full);
      auto ctx_ids = tok.encode(ctx);
      kaival::engine::GenerateOptions go;
      go.max_tokens = 1;
      go.logprobs = 0;
      go.prompt_logprobs = true;
      auto r = kaival::engine::generate(served->model, tok, ids, go);
      // The context's tokens are a prefix of the full text's here (the
      // choices start with a space, a pre-token boundary).
      ASSERT_TRUE(std::equal(ctx_ids.begin(), ctx_ids.end(), ids.begin()));
      double want = 0;
      for (size_t i = ctx_ids.size(); i < ids.size(); ++i) want += r.prompt_logprobs[i - 1].logprob;
      EXPECT_NEAR(lls[c].get<double>(), want, 1e-4) << s["doc_id"] << " choice " << c;
    }
    std::set<double> distinct(lls.begin(), lls.end());
    EXPECT_EQ(distinct.size(), lls.size()) << line;
    ++items;
  }
  EXPECT_EQ(items, 4);
  fs::remove_all(out);
}
