// `kaival lineage` end to end: exit codes, the JSON report against its schema,
// the HTML page, the bilingual summary.
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct CliRun {
  int code = -1;
  std::string out;
};

CliRun run(const std::string& args) {
  std::string cmd = std::string(KAIVAL_BINARY) + " lineage " + args + " 2>/dev/null";
  CliRun r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string model(const std::string& name) { return std::string(KAIVAL_TESTDATA) + "/models/" + name; }

// A small JSON Schema checker covering the keywords the lineage schema uses
// (type, const, enum, required, properties, additionalProperties, items,
// oneOf, $ref into $defs).
class SchemaChecker {
 public:
  explicit SchemaChecker(json root) : root_(std::move(root)) {}
  std::vector<std::string> check(const json& v) {
    errors_.clear();
    visit(root_, v, "$");
    return errors_;
  }

 private:
  bool type_ok(const std::string& t, const json& v) {
    if (t == "object") return v.is_object();
    if (t == "array") return v.is_array();
    if (t == "string") return v.is_string();
    if (t == "number") return v.is_number();
    if (t == "integer") return v.is_number_integer();
    if (t == "boolean") return v.is_boolean();
    if (t == "null") return v.is_null();
    return false;
  }
  void visit(const json& s, const json& v, const std::string& at) {
    if (s.contains("$ref")) {
      std::string ref = s["$ref"];
      const std::string prefix = "#/$defs/";
      visit(root_["$defs"][ref.substr(prefix.size())], v, at);
      return;
    }
    if (s.contains("type")) {
      bool ok = false;
      if (s["type"].is_array()) {
        for (const auto& t : s["type"]) ok = ok || type_ok(t, v);
      } else {
        ok = type_ok(s["type"], v);
      }
      if (!ok) {
        errors_.push_back(at + ": wrong type " + std::string(v.type_name()));
        return;
      }
    }
    if (s.contains("const") && v != s["const"]) errors_.push_back(at + ": not the constant");
    if (s.contains("enum")) {
      bool found = false;
      for (const auto& e : s["enum"]) found = found || e == v;
      if (!found) errors_.push_back(at + ": " + v.dump() + " not in enum");
    }
    if (s.contains("oneOf")) {
      int matches = 0;
      for (const auto& alt : s["oneOf"]) {
        SchemaChecker sub(root_);
        std::vector<std::string> saved = errors_;
        errors_.clear();
        visit(alt, v, at);
        matches += errors_.empty();
        errors_ = saved;
      }
      if (matches != 1) errors_.push_back(at + ": matches " + std::to_string(matches) + " alternatives of oneOf");
    }
    if (v.is_object()) {
      if (s.contains("required"))
        for (const auto& k : s["required"])
          if (!v.contains(k.get<std::string>())) errors_.push_back(at + ": missing " + k.get<std::string>());
      for (auto& [k, sub] : v.items()) {
        if (s.contains("properties") && s["properties"].contains(k))
          visit(s["properties"][k], sub, at + "." + k);
        else if (s.contains("additionalProperties") && s["additionalProperties"].is_object())
          visit(s["additionalProperties"], sub, at + "." + k);
      }
    }
    if (v.is_array() && s.contains("items"))
      for (size_t i = 0; i < v.size(); ++i) visit(s["items"], v[i], at + "[" + std::to_string(i) + "]");
  }
  json root_;
  std::vector<std::string> errors_;
};

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
  CliRun r = run(model("base-a") + " " + model("base-a-gguf/base-a-Q4_K.gguf") + " --json " + js.string() + " --html " +
              html.string());
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("Verdict: DERIVED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("판정: 파생 모델"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("layer.3.mlp"), std::string::npos);

  json rep = load_json(js);
  SchemaChecker schema(load_json(std::string(KAIVAL_SOURCE_DIR) + "/schemas/lineage-report.schema.json"));
  auto errors = schema.check(rep);
  EXPECT_TRUE(errors.empty()) << errors.front();
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
  CliRun r = run(model("base-a") + " " + model("finetune-a") + " " + model("indep-s2") + " --no-hash --fail-on partial" +
              " --controls " + model("indep-s3") + " --json " + js.string());
  EXPECT_EQ(r.code, 3);  // base-a / finetune-a is derived
  json rep = load_json(js);
  SchemaChecker schema(load_json(std::string(KAIVAL_SOURCE_DIR) + "/schemas/lineage-report.schema.json"));
  auto errors = schema.check(rep);
  EXPECT_TRUE(errors.empty()) << errors.front();
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
