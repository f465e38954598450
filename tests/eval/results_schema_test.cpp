// What `kaival eval` writes conforms to schemas/eval-results.schema.json and carries a manifest
// that can be checked by hand: the card's and the data files' SHA-256 (recomputed here from the
// files), the model the server names, sampling parameters, seeds, version. Every shipped task
// card conforms to schemas/task.schema.json.
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "../support/files.h"
#include "../support/json_schema.h"
#include "core/hash.h"
#include "core/version.h"
#include "eval/http_client.h"
#include "eval/runner.h"
#include "eval/yaml_json.h"
#include "local_hub.h"
#include "mock_server.h"

namespace kaival::eval {
namespace {

namespace fs = std::filesystem;
using testing::MockServer;
using testing_support::join_errors;
using testing_support::JsonSchema;
using testing_support::TempDir;
using testing_support::write_file;
using OJ = nlohmann::ordered_json;

const std::string kSource = KAIVAL_SOURCE_DIR;

JsonSchema results_schema() { return JsonSchema::load(kSource + "/schemas/eval-results.schema.json"); }

// A quiet run against the mock over the hand-written samples under testdata/eval.
RunOptions sample_options(const MockServer& mock) {
  RunOptions o;
  o.model_url = mock.url();
  o.progress = false;
  o.data.local_dir = std::string(KAIVAL_TESTDATA) + "/eval";
  o.bootstrap = 10;
  return o;
}

// The manifest input with this path, or null.
OJ input_for(const OJ& results, const std::string& path) {
  for (const auto& in : results["manifest"]["inputs"])
    if (in["path"] == path) return in;
  return nullptr;
}

TEST(EvalResultsFile, ConformsToItsSchemaAndItsManifestMatchesTheFiles) {
  TempDir dir("results_manifest");
  write_file(dir.path / "test.jsonl",
             "{\"q\": \"하늘은 무슨 색인가요?\", \"a\": \"파란색\"}\n{\"q\": \"눈은 무슨 색인가요?\", \"a\": \"흰색\"}\n");
  write_file(dir.path / "dev.jsonl", "{\"q\": \"풀은 무슨 색인가요?\", \"a\": \"초록색\"}\n"
                                     "{\"q\": \"피는 무슨 색인가요?\", \"a\": \"빨간색\"}\n");
  const std::string card = (dir.path / "colours.yaml").string();
  write_file(card, "schema: kaival.task/1\nname: colours\nversion: \"2.1\"\nlicense: test\n"
                   "splits: {test: test.jsonl, dev: dev.jsonl}\n"
                   "request: generate_until\nchat: true\nprompt: \"{{ q }}\"\ntarget: \"{{ a }}\"\n"
                   "fewshot: {k: 1, split: dev, seed: 99, answer: \" {{ a }}\"}\n"
                   "generation: {max_tokens: 12, stop: [\"\\n\"]}\nfilters: [strip]\nmetrics: [exact_match]\n");
  MockServer mock;
  mock.add_answer("하늘은", "파란색");
  mock.start();
  RunOptions o;
  o.model_url = mock.url();
  o.model_id = "team-a";
  o.progress = false;
  o.bootstrap = 100;
  o.out_dir = (dir.path / "out").string();
  run_eval({card}, o);
  const OJ r = OJ::parse(testing_support::read_file(dir.path / "out" / "results.json"));

  auto schema = results_schema();
  auto errs = schema.errors(r);
  EXPECT_TRUE(errs.empty()) << join_errors(errs);

  // Hashes, recomputed from the files.
  const OJ& cfg = r["configs"]["colours"];
  const std::string card_sha = sha256_file(card);
  EXPECT_EQ(cfg["card_sha256"], card_sha);
  EXPECT_EQ(cfg["dataset_sha256"]["test"], sha256_file((dir.path / "test.jsonl").string()));
  EXPECT_EQ(cfg["dataset_sha256"]["dev"], sha256_file((dir.path / "dev.jsonl").string()));
  EXPECT_EQ(cfg["dataset_sha256"].size(), 2u);
  EXPECT_EQ(input_for(r, card)["sha256"], card_sha);
  for (const char* f : {"test.jsonl", "dev.jsonl"}) {
    const std::string p = (dir.path / f).string();
    EXPECT_EQ(input_for(r, p)["sha256"], sha256_file(p)) << f;
  }
  EXPECT_EQ(r["manifest"]["inputs"].size(), 3u);

  // The model as the server names it (asked here on our own), and the program's id for it.
  OpenAIClient client(mock.url());
  auto models = client.get("models");
  EXPECT_EQ(r["model"]["served_id"], models["data"][0]["id"]);
  EXPECT_EQ(r["model"]["id"], "team-a");
  EXPECT_EQ(r["model"]["endpoint"], client.base_url());
  // The mock reports no chat template: recorded as null, not invented.
  ASSERT_TRUE(r["manifest"].contains("chat_template_sha256"));
  EXPECT_TRUE(r["manifest"]["chat_template_sha256"].is_null());

  // Sampling and seeds: the card's generation over the documented defaults (temperature 0).
  EXPECT_EQ(cfg["sampling"], OJ::parse(R"({"max_tokens": 12, "stop": ["\n"], "temperature": 0})"));
  EXPECT_EQ(cfg["generation"], OJ::parse(R"({"max_tokens": 12, "stop": ["\n"]})"));
  EXPECT_EQ(cfg["fewshot"]["k"], 1);
  EXPECT_EQ(cfg["fewshot"]["seed"], 99);
  EXPECT_EQ(cfg["fewshot"]["split"], "dev");
  EXPECT_EQ(r["manifest"]["parameters"]["bootstrap"], 100);
  EXPECT_EQ(r["manifest"]["parameters"]["bootstrap_seed"], 1234);
  EXPECT_EQ(r["versions"]["colours"], "2.1");
  EXPECT_EQ(r["manifest"]["kaival_version"], kVersion);
  EXPECT_TRUE(std::regex_match(r["manifest"]["created"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d.*Z)")))
      << r["manifest"]["created"];

  // The checks bite: a broken copy fails the schema.
  OJ broken = r;
  broken["configs"]["colours"]["card_sha256"] = "abc";
  EXPECT_FALSE(schema.errors(broken).empty());
  broken = r;
  broken["manifest"]["inputs"][0].erase("sha256");
  EXPECT_FALSE(schema.errors(broken).empty());
}

TEST(EvalResultsFile, DataDirSamplesAreNamedAsReadWithTheirHubSource) {
  // --data-dir reads testdata/eval/<task>/<split>.<format> in place of the Hub file: the manifest
  // names that file with its hash (and the Hub file it stands for as `source`).
  MockServer mock;
  mock.start();
  auto r = run_eval({kSource + "/tasks/kobest_boolq.yaml"}, sample_options(mock));
  auto errs = results_schema().errors(r);
  EXPECT_TRUE(errs.empty()) << join_errors(errs);
  const std::string sample = std::string(KAIVAL_TESTDATA) + "/eval/kobest_boolq/test.parquet";
  OJ in = input_for(r, sample);
  ASSERT_TRUE(in.is_object()) << r["manifest"]["inputs"].dump();
  EXPECT_EQ(in["sha256"], sha256_file(sample));
  EXPECT_EQ(in["source"], "skt/kobest_v1@refs/convert/parquet:boolq/test/0000.parquet");
  EXPECT_EQ(r["configs"]["kobest_boolq"]["dataset_sha256"]["test"], sha256_file(sample));
  EXPECT_EQ(r["configs"]["kobest_boolq"]["sampling"],
            OJ::parse(R"({"echo": true, "logprobs": 1, "max_tokens": 1, "temperature": 0})"));
}

TEST(EvalResultsFile, AHubDownloadIsNamedWithTheCommitTheHubResolved) {
  // The card names a branch; the manifest pins the data by the commit the Hub answered with.
  const std::string commit = "89abcdef0123456789abcdef0123456789abcdef";
  const std::string sample = std::string(KAIVAL_TESTDATA) + "/eval/kobest_boolq/test.parquet";
  testing::LocalHub hub;
  hub.srv.Get(R"(/datasets/skt/kobest_v1/resolve/(.+)/boolq/test/0000\.parquet)",
              [&](const httplib::Request&, httplib::Response& res) {
                res.set_header("X-Repo-Commit", commit);
                res.set_content(testing_support::read_file(sample), "application/octet-stream");
              });
  hub.start();
  TempDir dir("results_hub_commit");
  MockServer mock;
  mock.start();
  RunOptions o = sample_options(mock);
  o.data = hub.options(dir.path / "cache");
  auto r = run_eval({kSource + "/tasks/kobest_boolq.yaml"}, o);
  hub.stop();
  auto errs = results_schema().errors(r);
  EXPECT_TRUE(errs.empty()) << join_errors(errs);
  const fs::path cached = dir.path / "cache/hf/skt/kobest_v1/refs%2Fconvert%2Fparquet/boolq/test/0000.parquet";
  OJ in = input_for(r, cached.string());
  ASSERT_TRUE(in.is_object()) << r["manifest"]["inputs"].dump();
  EXPECT_EQ(in["sha256"], sha256_file(sample));
  EXPECT_EQ(in["source"], "skt/kobest_v1@refs/convert/parquet:boolq/test/0000.parquet");
  EXPECT_EQ(in["commit"], commit);
}

TEST(EvalResultsFile, EveryShippedCardsResultsConformInOneRun) {
  // All cards with a sample under testdata/eval/<name> in one run (groups included), two items
  // each. (A card that expands into many tasks names no one directory; runner_test runs it.)
  std::vector<std::string> cards;
  for (const auto& e : fs::directory_iterator(kSource + "/tasks"))
    if (e.path().extension() == ".yaml" &&
        fs::exists(fs::path(KAIVAL_TESTDATA) / "eval" / read_yaml_file(e.path().string()).value("name", "")))
      cards.push_back(e.path().string());
  std::sort(cards.begin(), cards.end());
  ASSERT_GE(cards.size(), 10u);
  MockServer mock;
  mock.start();
  RunOptions o = sample_options(mock);
  o.limit = 2;
  o.client.concurrency = 4;
  auto r = run_eval(cards, o);
  auto errs = results_schema().errors(r);
  EXPECT_TRUE(errs.empty()) << join_errors(errs, 20);
  EXPECT_FALSE(r["groups"].empty());
}

TEST(TaskCards, EveryShippedCardConformsToTheTaskSchema) {
  auto schema = JsonSchema::load(kSource + "/schemas/task.schema.json");
  std::vector<fs::path> cards;
  for (const auto& dir : {kSource + "/tasks", std::string(KAIVAL_TESTDATA) + "/demo/tasks"})
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".yaml") cards.push_back(e.path());
  ASSERT_GE(cards.size(), 20u);
  for (const auto& card : cards) {
    OJ j = read_yaml_file(card.string());
    auto errs = schema.errors(j);
    EXPECT_TRUE(errs.empty()) << card << ": " << join_errors(errs);
    // The schema is not vacuous for this card: a misspelt key or a wrong request type fails.
    OJ typo = j;
    typo["fewshots"] = OJ{{"k", 5}};
    EXPECT_FALSE(schema.errors(typo).empty()) << card;
    OJ bad_request = j;
    bad_request["request"] = "multiple_choice";
    EXPECT_FALSE(schema.errors(bad_request).empty()) << card;
  }
}

}  // namespace
}  // namespace kaival::eval
