// Sparse mixture-of-experts layers (Mixtral, Qwen3-MoE) against the float64
// numpy forward of tools/gen_moe_fixture.py (testdata/engine/*-tiny), the
// cache and batch paths against the full forward, and the load-time refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/model.h"
#include "../support/decode_batch_check.h"

namespace kaival::engine {
namespace {

namespace fs = std::filesystem;
const std::string kEngine = std::string(KAIVAL_TESTDATA) + "/engine/";

nlohmann::json load_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(path, "cannot open");
  return nlohmann::json::parse(in);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path, "cannot open");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) throw IoError(path, "cannot write");
}

int64_t argmax(const float* x, int64_t n) { return std::max_element(x, x + n) - x; }

struct Fixture {
  std::string dir;
  int64_t experts, top_k;
  bool norm_topk;
};

class MoeReferenceTest : public testing::TestWithParam<Fixture> {};

// The reference computes in float64 from the same stored BF16 weights, so
// only float32 rounding in the engine separates the two; every routing
// decision of these sequences has a top-k probability gap >= 2e-3, so no
// expert choice can flip. Measured max diff: printed below (~1e-6 to 1e-5
// for logits of magnitude up to ~30).
TEST_P(MoeReferenceTest, LogitsMatchNumpyReference) {
  const auto& f = GetParam();
  const std::string dir = kEngine + f.dir;
  const auto ref = load_json(dir + "/reference_logits.json");
  const Model model = Model::open(dir, 2);
  EXPECT_EQ(model.config().experts, f.experts);
  EXPECT_EQ(model.config().experts_per_token, f.top_k);
  EXPECT_EQ(model.config().norm_topk, f.norm_topk);
  const int64_t V = model.config().vocab;
  ASSERT_EQ(V, 512);
  double worst = 0;
  for (const auto& seq : ref["sequences"]) {
    const auto ids = seq["token_ids"].get<std::vector<int32_t>>();
    const auto last = seq["last_logits"].get<std::vector<double>>();
    const auto head = seq["head_logits"].get<std::vector<std::vector<double>>>();
    const auto top = seq["argmax"].get<std::vector<int64_t>>();
    const auto logits = model.forward(ids);
    const auto n = static_cast<int64_t>(ids.size());
    ASSERT_EQ(logits.size(), static_cast<size_t>(n * V));
    ASSERT_EQ(static_cast<int64_t>(head.size()), n);
    ASSERT_EQ(static_cast<int64_t>(last.size()), V);
    for (int64_t p = 0; p < n; ++p) {
      for (size_t i = 0; i < head[p].size(); ++i)
        worst = std::max(worst, std::abs(logits[p * V + static_cast<int64_t>(i)] - head[p][i]));
      EXPECT_EQ(argmax(logits.data() + p * V, V), top[p]) << f.dir << " position " << p;
    }
    for (int64_t i = 0; i < V; ++i) worst = std::max(worst, std::abs(logits[(n - 1) * V + i] - last[i]));
  }
  std::printf("[ measured ] %s: max |logit diff| %.3g\n", f.dir.c_str(), worst);
  EXPECT_LT(worst, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, MoeReferenceTest,
                         testing::Values(Fixture{"mixtral-tiny", 4, 2, true}, Fixture{"qwen3moe-tiny", 6, 2, false}),
                         [](const testing::TestParamInfo<Fixture>& info) {
                           return info.param.dir == "mixtral-tiny" ? std::string("Mixtral") : std::string("Qwen3Moe");
                         });

const std::vector<int32_t> kIds = {507, 3, 511, 17, 200, 200, 200, 45, 88, 123, 9, 310, 77};

double max_diff(const float* a, const float* b, int64_t n) {
  double d = 0;
  for (int64_t i = 0; i < n; ++i) d = std::max(d, static_cast<double>(std::abs(a[i] - b[i])));
  return d;
}

// A 4-token prompt batch, then one token at a time through the cache: the
// logits of the full forward at every position.
TEST(MoeTest, IncrementalDecodeEqualsFullForward) {
  for (const char* name : {"mixtral-tiny", "qwen3moe-tiny"}) {
    const Model model = Model::open(kEngine + name, 2);
    const int64_t V = model.config().vocab, n = static_cast<int64_t>(kIds.size());
    const auto full = model.forward(kIds);
    auto cache = model.new_cache(n);
    const auto first = model.forward(std::span<const int32_t>(kIds).first(4), cache, true);
    double diff = max_diff(first.data(), full.data(), 4 * V);
    for (int64_t p = 4; p < n; ++p) {
      const auto step = model.forward(std::span<const int32_t>(kIds).subspan(p, 1), cache, true);
      diff = std::max(diff, max_diff(step.data(), full.data() + p * V, V));
    }
    EXPECT_EQ(cache.size(), n) << name;
    EXPECT_LT(diff, 1e-4) << name;
  }
}

// decode_batch routes each row on its own: rows of different sequences that
// pick different experts in one step give each sequence's own logits.
TEST(MoeTest, DecodeBatchEqualsOneSequenceSteps) {
  for (const char* name : {"mixtral-tiny", "qwen3moe-tiny"})
    testing_support::expect_decode_batch_matches_alone(Model::open(kEngine + name, 2),
                                                       {{507, 65, 289}, {12, 400, 5, 77, 300}, {507, 3}, {9}}, 4, 16,
                                                       name);
}

// A copy of the Mixtral fixture with its config and tensors edited.
class MoeLoadErrorTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/moe_load_error_" + std::to_string(::getpid());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::copy_file(kEngine + "mixtral-tiny/config.json", dir_ + "/config.json");
    fs::copy_file(kEngine + "mixtral-tiny/model.safetensors", dir_ + "/model.safetensors");
  }
  void TearDown() override { fs::remove_all(dir_); }

  void edit_config(const char* key, const nlohmann::json& value) {
    auto cfg = load_json(dir_ + "/config.json");
    cfg[key] = value;
    write_file(dir_ + "/config.json", cfg.dump(2));
  }
  // Rewrites model.safetensors without `name` (offsets recomputed).
  void drop_tensor(const std::string& name) {
    const std::string file = read_file(dir_ + "/model.safetensors");
    uint64_t hlen = 0;
    std::memcpy(&hlen, file.data(), 8);
    const auto header = nlohmann::json::parse(file.substr(8, hlen));
    ASSERT_TRUE(header.contains(name));
    nlohmann::json out = nlohmann::json::object();
    std::string data;
    for (const auto& [key, info] : header.items()) {
      if (key == name) continue;
      if (key == "__metadata__") {
        out[key] = info;
        continue;
      }
      const auto begin = info["data_offsets"][0].get<uint64_t>(), end = info["data_offsets"][1].get<uint64_t>();
      auto entry = info;
      entry["data_offsets"] = {data.size(), data.size() + (end - begin)};
      data += file.substr(8 + hlen + begin, end - begin);
      out[key] = entry;
    }
    std::string h = out.dump();
    h.append((8 - h.size() % 8) % 8, ' ');
    std::string bytes(8, '\0');
    const uint64_t n = h.size();
    std::memcpy(bytes.data(), &n, 8);
    write_file(dir_ + "/model.safetensors", bytes + h + data);
  }
  // The message of the error Model::open throws ("" if it loads).
  std::string open_error() {
    try {
      Model::open(dir_, 1);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  std::string dir_;
};

TEST_F(MoeLoadErrorTest, UneditedCopyLoads) { EXPECT_EQ(open_error(), ""); }

TEST_F(MoeLoadErrorTest, TopKAboveExpertsNamesTheField) {
  edit_config("num_experts_per_tok", 5);
  const auto msg = open_error();
  EXPECT_NE(msg.find("num_experts_per_tok"), std::string::npos) << msg;
  EXPECT_NE(msg.find("5"), std::string::npos) << msg;
}

TEST_F(MoeLoadErrorTest, MissingExpertTensorIsNamed) {
  drop_tensor("model.layers.1.block_sparse_moe.experts.2.w2.weight");
  const auto msg = open_error();
  EXPECT_NE(msg.find("layer.1.expert.2.expert_down"), std::string::npos) << msg;
}

TEST_F(MoeLoadErrorTest, MissingRouterIsNamed) {
  drop_tensor("model.layers.0.block_sparse_moe.gate.weight");
  const auto msg = open_error();
  EXPECT_NE(msg.find("layer.0.router"), std::string::npos) << msg;
}

TEST_F(MoeLoadErrorTest, ExpertBeyondNumExpertsIsNamed) {
  edit_config("num_local_experts", 3);
  const auto msg = open_error();
  EXPECT_NE(msg.find("experts.3."), std::string::npos) << msg;
  EXPECT_NE(msg.find("num_experts 3"), std::string::npos) << msg;
}

TEST_F(MoeLoadErrorTest, SharedExpertsAreRefused) {
  edit_config("n_shared_experts", 1);
  EXPECT_THROW(Model::open(dir_, 1), UnsupportedError);
}

}  // namespace
}  // namespace kaival::engine
