// `kaival lineage` end to end: exit codes, the JSON report against its schema,
// the HTML page, the bilingual summary.
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../support/json_schema.h"
#include "../support/process.h"

using nlohmann::json;
using kaival::testing_support::join_errors;
using kaival::testing_support::JsonSchema;
namespace fs = std::filesystem;

namespace {

kaival::testing_support::CommandResult run(const std::string& args) {
  return kaival::testing_support::run_command(std::string(KAIVAL_BINARY) + " lineage " + args + " 2>/dev/null");
}

std::string model(const std::string& name) { return std::string(KAIVAL_TESTDATA) + "/models/" + name; }

json load_json(const fs::path& p) {
  std::ifstream f(p);
  return json::parse(f);
}

class LineageCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kaival-lineage-cli-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

}  // namespace

TEST_F(LineageCli, DerivedPairReportValidatesAndGates) {
  fs::path js = dir_ / "r.json", html = dir_ / "r.html";
  auto r = run(model("base-a") + " " + model("base-a-gguf/base-a-Q4_K.gguf") + " --json " + js.string() + " --html " +
              html.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("Verdict: DERIVED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("판정: 파생 모델"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("layer.3.mlp"), std::string::npos);

  json rep = load_json(js);
  auto schema = JsonSchema::load(std::string(KAIVAL_SOURCE_DIR) + "/schemas/lineage-report.schema.json");
  auto errors = schema.errors(rep);
  EXPECT_TRUE(errors.empty()) << join_errors(errors);
  EXPECT_EQ(rep["verdict"], "derived");
  EXPECT_LT(rep["log10_p"].get<double>(), -50);
  ASSERT_EQ(rep["inputs"].size(), 2u);
  EXPECT_EQ(rep["inputs"][1]["format"], "gguf");
  for (const auto& in : rep["inputs"])
    for (const auto& f : in["files"]) EXPECT_EQ(f["sha256"].get<std::string>().size(), 64u) << f["path"];
  EXPECT_FALSE(rep["kaival_version"].get<std::string>().empty());
  bool saw_embedding = false;
  for (const auto& c : rep["components"]) saw_embedding = saw_embedding || c["name"] == "embedding";
  EXPECT_TRUE(saw_embedding);

  std::ifstream h(html);
  std::stringstream ss;
  ss << h.rdbuf();
  std::string page = ss.str();
  EXPECT_NE(page.find("<svg"), std::string::npos);
  EXPECT_NE(page.find("Caveats"), std::string::npos);
  EXPECT_EQ(page.find("http://"), page.find("http://www.w3.org/2000/svg"));  // no external assets
  EXPECT_EQ(page.find("<script src"), std::string::npos);

  EXPECT_EQ(run(model("base-a") + " " + model("finetune-a") + " --no-hash --fail-on derived").code, 3);
  EXPECT_EQ(run(model("base-a") + " " + model("finetune-a") + " --no-hash --fail-on partial").code, 3);
}

TEST_F(LineageCli, IndependentPairsPassTheGateAndManyModelsFormFamilies) {
  fs::path js = dir_ / "m.json";
  auto r = run(model("base-a") + " " + model("finetune-a") + " " + model("indep-s2") + " --no-hash --fail-on partial" +
              " --controls " + model("indep-s3") + " --json " + js.string());
  EXPECT_EQ(r.code, 3);  // base-a / finetune-a is derived
  json rep = load_json(js);
  auto schema = JsonSchema::load(std::string(KAIVAL_SOURCE_DIR) + "/schemas/lineage-report.schema.json");
  auto errors = schema.errors(rep);
  EXPECT_TRUE(errors.empty()) << join_errors(errors);
  EXPECT_EQ(rep["pairs"].size(), 3u);
  EXPECT_TRUE(rep["verdict"].is_null());
  ASSERT_EQ(rep["families"].size(), 2u);
  EXPECT_EQ(rep["families"][0].size() + rep["families"][1].size(), 3u);
  ASSERT_TRUE(rep.contains("controls"));
  EXPECT_EQ(rep["controls"]["pairs"].size(), 3u);
  for (const auto& p : rep["controls"]["pairs"]) EXPECT_EQ(p["verdict"], "independent");

  EXPECT_EQ(run(model("indep-s2") + " " + model("indep-s4") + " --no-hash --fail-on partial").code, 0);
}

TEST_F(LineageCli, BadInputIsAOneLineErrorNamingTheFile) {
  fs::path junk = dir_ / "junk.safetensors";
  std::ofstream(junk) << "not a model";
  std::string cmd = std::string(KAIVAL_BINARY) + " lineage " + model("base-a") + " " + junk.string() + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_NE(out.find("junk.safetensors"), std::string::npos) << out;
  EXPECT_EQ(run(model("base-a")).code == 0, false);  // needs two models
}
