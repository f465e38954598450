// Evidence bundles: `kaival bundle` then `kaival verify` reproduces the
// numbers; a changed input or a changed number is caught and named.
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../support/process.h"
#include "stage/bundle.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string kProgram = std::string(KAIVAL_TESTDATA) + "/stage/first/program.yaml";

kaival::testing_support::CommandResult cli(const std::string& args) {
  return kaival::testing_support::run_command(std::string(KAIVAL_BINARY) + " " + args + " 2>&1");
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) : path(fs::temp_directory_path() / (name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

TEST(Bundle, VerifyReproducesAndCatchesTampering) {
  TempDir d("kaival_bundle");
  auto r = cli("bundle " + kProgram + " --stage s1 --replicates 10 --out " + d.path.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(fs::exists(d.path / "manifest.json"));
  EXPECT_TRUE(fs::exists(d.path / "program.yaml"));
  EXPECT_TRUE(fs::exists(d.path / "s1/eval/hana-llm/samples_livecodebench.jsonl"));
  auto ok = cli("verify " + d.path.string());
  EXPECT_EQ(ok.code, 0) << ok.out;
  EXPECT_NE(ok.out.find("verified"), std::string::npos);

  // A number changed in the stored result: named with its JSON path.
  json res = json::parse(std::ifstream(d.path / "stage-result.json"));
  res["teams"][0]["total"] = res["teams"][0]["total"].get<double>() + 0.5;
  std::ofstream(d.path / "stage-result.json") << res.dump(1);
  auto bad = cli("verify " + d.path.string());
  EXPECT_EQ(bad.code, 1) << bad.out;
  EXPECT_NE(bad.out.find("/teams/0/total"), std::string::npos) << bad.out;

  // An input changed: its hash no longer matches the manifest.
  { std::ofstream(d.path / "s1/expert_scores.json", std::ios::app) << " "; }
  auto rep = kaival::stage::verify_bundle(d.path.string());
  EXPECT_FALSE(rep.ok);
  ASSERT_FALSE(rep.problems.empty());
  EXPECT_NE(rep.problems[0].find("s1/expert_scores.json: sha256"), std::string::npos) << rep.problems[0];
}

TEST(Bundle, StageRunWritesResultAndSite) {
  TempDir d("kaival_stage_run");
  auto r = cli("stage run " + kProgram + " --stage s1 --replicates 5 --out " + d.path.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("팀 하나"), std::string::npos);
  EXPECT_NE(r.out.find("index.html"), std::string::npos);
  json res = json::parse(std::ifstream(d.path / "stage-result.json"));
  EXPECT_EQ(res["schema"], "kaival.stage-result/1");
  EXPECT_EQ(res["bootstrap"]["replicates"], 5);
  EXPECT_TRUE(fs::exists(d.path / "index.html"));
  EXPECT_TRUE(fs::exists(d.path / "index.ko.html"));
  auto bad = cli("stage run /nonexistent.yaml --out " + d.path.string());
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("/nonexistent.yaml"), std::string::npos) << bad.out;
  auto chk = cli("stage check " + kProgram);
  EXPECT_EQ(chk.code, 0) << chk.out;
}
