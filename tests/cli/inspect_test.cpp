// `kaival inspect` as a user runs it: the real binary on files written here
// and on the committed fixtures; JSON contract, warnings, and error exits.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../support/files.h"

namespace fs = std::filesystem;

namespace {

struct RunResult {
  int rc = -1;
  std::string out, err;
};

using kaival::testing_support::read_file;

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

class InspectCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("kaival_inspect_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  RunResult run(const std::vector<std::string>& args) {
    std::string cmd = quote(KAIVAL_BINARY);
    for (const auto& a : args) cmd += " " + quote(a);
    fs::path out = dir_ / "stdout.txt", err = dir_ / "stderr.txt";
    cmd += " >" + quote(out.string()) + " 2>" + quote(err.string());
    RunResult r;
    int status = std::system(cmd.c_str());
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_file(out);
    r.err = read_file(err);
    return r;
  }

  // A small safetensors file written independently of the reader.
  void write_safetensors(const fs::path& path, const std::vector<std::pair<std::string, std::vector<float>>>& tensors,
                         const std::vector<std::vector<int64_t>>& shapes) {
    nlohmann::json h = nlohmann::json::object();
    std::string data;
    for (size_t k = 0; k < tensors.size(); ++k) {
      size_t begin = data.size();
      data.append(reinterpret_cast<const char*>(tensors[k].second.data()), tensors[k].second.size() * 4);
      h[tensors[k].first] = {{"dtype", "F32"}, {"shape", shapes[k]}, {"data_offsets", {begin, data.size()}}};
    }
    std::string header = h.dump();
    uint64_t n = header.size();
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << header << data;
  }

  // A llama-named model whose config disagrees with its embedding, with one
  // NaN tensor and one all-zero tensor.
  void write_suspicious_model() {
    nlohmann::json config = {{"model_type", "llama"}, {"hidden_size", 2},       {"num_hidden_layers", 1},
                             {"num_attention_heads", 1}, {"num_key_value_heads", 1}, {"intermediate_size", 4},
                             {"vocab_size", 5},        {"rms_norm_eps", 1e-5}};
    std::ofstream(dir_ / "config.json") << config.dump();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    write_safetensors(dir_ / "model.safetensors",
                      {{"model.embed_tokens.weight", {1, 2, 3, 4, 5, 6}},  // 3 rows, config says 5
                       {"model.norm.weight", {1, 2, 3, 4}},
                       {"model.layers.0.input_layernorm.weight", {0, 0}},
                       {"model.layers.0.post_attention_layernorm.weight", {nan, 1}}},
                      {{3, 2}, {4}, {2}, {2}});
  }

  fs::path dir_;
};

bool any_contains(const nlohmann::json& warnings, const std::string& needle) {
  for (const auto& w : warnings)
    if (w.get<std::string>().find(needle) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_F(InspectCli, JsonContractAndWarnings) {
  write_suspicious_model();
  RunResult r = run({"inspect", dir_.string(), "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["format"], "safetensors");
  EXPECT_EQ(j["parameters"], 6 + 4 + 2 + 2);
  EXPECT_EQ(j["tensors"], 4);
  EXPECT_EQ(j["dtypes"], (nlohmann::json{{"F32", 4}}));
  EXPECT_EQ(j["architecture"]["family"], "llama");
  EXPECT_EQ(j["architecture"]["hidden_size"], 2);
  EXPECT_TRUE(j["tokenizer"].is_null());
  const auto& w = j["warnings"];
  EXPECT_TRUE(any_contains(w, "model.layers.0.post_attention_layernorm.weight: 1 NaN")) << w.dump();
  EXPECT_TRUE(any_contains(w, "model.layers.0.input_layernorm.weight: all zeros")) << w.dump();
  EXPECT_TRUE(any_contains(w, "model.embed_tokens.weight has 3 rows but the config says vocab_size = 5")) << w.dump();
  EXPECT_TRUE(any_contains(w, "model.norm.weight has 4 elements")) << w.dump();
  EXPECT_TRUE(any_contains(w, "no tokenizer")) << w.dump();
  EXPECT_FALSE(j.contains("tensor_list"));
}

TEST_F(InspectCli, TensorsAndStats) {
  write_suspicious_model();
  RunResult r = run({"inspect", dir_.string(), "--json", "--tensors", "--stats"});
  ASSERT_EQ(r.rc, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["tensor_list"].size(), 4u);
  for (const auto& t : j["tensor_list"]) {
    if (t["name"] == "model.norm.weight") {
      EXPECT_EQ(t["role"], "final_norm");
      EXPECT_EQ(t["dtype"], "F32");
      EXPECT_EQ(t["shape"], (nlohmann::json{4}));
      // 1, 2, 3, 4: mean 2.5, population std sqrt(1.25)
      EXPECT_DOUBLE_EQ(t["stats"]["mean"].get<double>(), 2.5);
      EXPECT_NEAR(t["stats"]["std"].get<double>(), std::sqrt(1.25), 1e-12);
      EXPECT_EQ(t["stats"]["min"], 1.0);
      EXPECT_EQ(t["stats"]["max"], 4.0);
    }
    if (t["name"] == "model.embed_tokens.weight") {
      EXPECT_EQ(t["role"], "embedding");
      EXPECT_DOUBLE_EQ(t["stats"]["mean"].get<double>(), 3.5);
    }
    if (t["name"] == "model.layers.0.post_attention_layernorm.weight") {
      EXPECT_EQ(t["stats"]["nan"], 1);
      EXPECT_EQ(t["stats"]["mean"], 1.0);  // over the finite values
    }
  }
  // Human table with the same columns.
  r = run({"inspect", dir_.string(), "--tensors", "--stats"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("model.norm.weight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("final_norm"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("parameters  14"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("NaN"), std::string::npos) << r.out;
}

TEST_F(InspectCli, NoScanSkipsData) {
  write_suspicious_model();
  RunResult r = run({"inspect", dir_.string(), "--json", "--no-scan"});
  ASSERT_EQ(r.rc, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["scanned"].get<bool>());
  EXPECT_FALSE(any_contains(j["warnings"], "NaN"));
  EXPECT_TRUE(any_contains(j["warnings"], "vocab_size"));  // shape checks need no data
}

TEST_F(InspectCli, PyTorchCheckpoint) {
  const std::string bin = std::string(KAIVAL_TESTDATA) + "/pytorch/state_dict.bin";
  RunResult r = run({"inspect", bin, "--json", "--tensors"});
  ASSERT_EQ(r.rc, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  nlohmann::json want = nlohmann::json::parse(read_file(std::string(KAIVAL_TESTDATA) + "/pytorch/state_dict.json"));
  EXPECT_EQ(j["format"], "pytorch");
  EXPECT_EQ(j["tensors"], want.size());
  EXPECT_EQ(j["dtypes"]["BF16"], 1);
  EXPECT_EQ(j["dtypes"]["BOOL"], 1);
  EXPECT_TRUE(any_contains(j["warnings"], "empty") == false);  // an empty tensor is not "all zeros"
}

TEST_F(InspectCli, ErrorsAreOneLineNamingTheFile) {
  auto expect_error = [&](const std::string& path, const std::string& problem) {
    RunResult r = run({"inspect", path});
    EXPECT_NE(r.rc, 0);
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(problem), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  };
  expect_error((dir_ / "missing").string(), "no such file");
  {
    std::ofstream f(dir_ / "bad.safetensors", std::ios::binary);
    uint64_t n = 1ull << 40;
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << "{}";
  }
  expect_error((dir_ / "bad.safetensors").string(), "header length");
  expect_error(std::string(KAIVAL_TESTDATA) + "/pytorch/malicious_system.bin", "posix.system");
}

// Fixture models trained by tools/gen_fixtures.py, when present: inspect finds
// their tokenizer and nothing to warn about.
TEST_F(InspectCli, FixtureModels) {
  const fs::path models = fs::path(KAIVAL_TESTDATA) / "models";
  if (!fs::is_directory(models)) GTEST_SKIP() << "no fixture models yet";
  int seen = 0;
  auto check = [&](const fs::path& path) {
    RunResult r = run({"inspect", path.string(), "--json"});
    ASSERT_EQ(r.rc, 0) << path << ": " << r.err;
    nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_FALSE(j["tokenizer"].is_null()) << path;
    EXPECT_TRUE(j["warnings"].empty()) << path << ": " << j["warnings"].dump();
    EXPECT_GT(j["parameters"].get<int64_t>(), 0);
    EXPECT_EQ(j["architecture"]["family"], "llama") << path;
    ++seen;
  };
  for (const auto& e : fs::directory_iterator(models)) {
    if (!e.is_directory()) continue;
    if (fs::exists(e.path() / "config.json")) check(e.path());
    for (const auto& f : fs::directory_iterator(e.path()))
      if (f.path().extension() == ".gguf") check(f.path());
  }
  EXPECT_GT(seen, 0);
}
