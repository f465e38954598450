// IFEval through the runner: strict and loose accuracies at prompt and
// instruction level, and the manifest's chat template hash (null when the
// server does not report one).
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "eval/runner.h"
#include "mock_server.h"

namespace kaival::eval {
namespace {
namespace fs = std::filesystem;
using testing::MockServer;
using OJ = nlohmann::ordered_json;
}  // namespace

TEST(IfevalRun, StrictAndLooseAccuraciesAreReported) {
  const fs::path dir = fs::temp_directory_path() / ("kaival-ifeval-run-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    std::ofstream d(dir / "ifeval.jsonl", std::ios::binary);
    // 1: a comma only in the first line: strict fails, loose (first line dropped) passes.
    d << OJ{{"key", 1},
            {"prompt", "Write about rivers without commas."},
            {"instruction_id_list", {"punctuation:no_comma"}},
            {"kwargs", {OJ::object()}}}
             .dump()
      << '\n';
    // 2: both instructions followed.
    d << OJ{{"key", 2},
            {"prompt", "Mention an apple, all lowercase."},
            {"instruction_id_list", {"keywords:existence", "change_case:english_lowercase"}},
            {"kwargs", {OJ{{"keywords", {"apple"}}}, OJ::object()}}}
             .dump()
      << '\n';
  }
  std::ofstream(dir / "ifeval.yaml", std::ios::binary)
      << "schema: kaival.task/1\nname: ifeval_mini\nversion: \"1.0\"\n"
         "splits:\n  test: {path: ifeval.jsonl, format: jsonl}\n"
         "doc_id: \"{{ key }}\"\nrequest: generate_until\nchat: true\nprompt: \"{{ prompt }}\"\ntarget: \"\"\n"
         "generation: {max_tokens: 64}\nmetrics: [ifeval]\n";
  MockServer mock;
  mock.add_answer("rivers", "Sure, here it is:\nrivers run to the sea and never stop");
  mock.add_answer("apple", "i ate an apple today");
  mock.start();
  RunOptions o;
  o.model_url = mock.url();
  o.progress = false;
  o.out_dir = (dir / "out").string();
  o.bootstrap = 10;
  auto r = run_eval({(dir / "ifeval.yaml").string()}, o);
  const auto& res = r["results"]["ifeval_mini"];
  EXPECT_DOUBLE_EQ(res["prompt_level_strict_acc,none"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(res["prompt_level_loose_acc,none"].get<double>(), 1.0);
  EXPECT_NEAR(res["inst_level_strict_acc,none"].get<double>(), 2.0 / 3.0, 1e-12);
  EXPECT_DOUBLE_EQ(res["inst_level_loose_acc,none"].get<double>(), 1.0);
  // The mock's /v1/models names no chat template: recorded as unknown, not guessed.
  EXPECT_TRUE(r["manifest"].contains("chat_template_sha256"));
  EXPECT_TRUE(r["manifest"]["chat_template_sha256"].is_null());
  fs::remove_all(dir);
}

}  // namespace kaival::eval
