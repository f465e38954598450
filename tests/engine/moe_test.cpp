// Sparse mixture-of-experts layers (Mixtral, Qwen3-MoE, Qwen2-MoE with its
// shared expert) against the float64
// numpy forward of tools/gen_moe_fixture.py (testdata/engine/*-tiny), from HF
// safetensors and from GGUF files with packed experts (blk.N.ffn_*_exps), the
// cache and batch paths against the full forward, and the load-time refusals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/model.h"
#include "weights/checkpoint.h"
#include "weights/gguf.h"
#include "../support/decode_batch_check.h"
#include "../support/window_cache_check.h"

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
  ASSERT_EQ(V, static_cast<int64_t>(ref["sequences"][0]["last_logits"].size()));
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
                         testing::Values(Fixture{"mixtral-tiny", 4, 2, true}, Fixture{"qwen3moe-tiny", 6, 2, false},
                                         Fixture{"qwen2moe-tiny", 4, 2, false}),
                         [](const testing::TestParamInfo<Fixture>& info) {
                           const auto& d = info.param.dir;
                           return std::string(d == "mixtral-tiny" ? "Mixtral" : d == "qwen3moe-tiny" ? "Qwen3Moe" : "Qwen2Moe");
                         });

const std::vector<int32_t> kIds = {507, 3, 511, 17, 200, 200, 200, 45, 88, 123, 9, 310, 77};

// ids folded into a smaller vocabulary (qwen2moe-tiny has 64 tokens)
std::vector<int32_t> fold(std::vector<int32_t> ids, int64_t vocab) {
  for (auto& id : ids) id = static_cast<int32_t>(id % vocab);
  return ids;
}

double max_diff(const float* a, const float* b, int64_t n) {
  double d = 0;
  for (int64_t i = 0; i < n; ++i) d = std::max(d, static_cast<double>(std::abs(a[i] - b[i])));
  return d;
}

// The HF folders and the GGUF files with packed experts (F16, and Q8_0 whose
// integer kernels give each row the same result whatever the batch).
const char* const kModels[] = {"mixtral-tiny", "qwen3moe-tiny", "qwen2moe-tiny", "mixtral-tiny/mixtral-tiny-f16.gguf",
                               "qwen3moe-tiny/qwen3moe-tiny-q8_0.gguf", "qwen2moe-tiny/qwen2moe-tiny-f16.gguf"};

// A 4-token prompt batch, then one token at a time through the cache: the
// logits of the full forward at every position.
TEST(MoeTest, IncrementalDecodeEqualsFullForward) {
  for (const char* name : kModels) {
    const Model model = Model::open(kEngine + name, 2);
    const int64_t V = model.config().vocab, n = static_cast<int64_t>(kIds.size());
    const auto ids = fold(kIds, V);
    const auto full = model.forward(ids);
    auto cache = model.new_cache(n);
    const auto first = model.forward(std::span<const int32_t>(ids).first(4), cache, true);
    double diff = max_diff(first.data(), full.data(), 4 * V);
    for (int64_t p = 4; p < n; ++p) {
      const auto step = model.forward(std::span<const int32_t>(ids).subspan(p, 1), cache, true);
      diff = std::max(diff, max_diff(step.data(), full.data() + p * V, V));
    }
    EXPECT_EQ(cache.size(), n) << name;
    EXPECT_LT(diff, 1e-4) << name;
  }
}

// decode_batch routes each row on its own: rows of different sequences that
// pick different experts in one step give each sequence's own logits.
TEST(MoeTest, DecodeBatchEqualsOneSequenceSteps) {
  for (const char* name : kModels) {
    const Model model = Model::open(kEngine + name, 2);
    const int64_t V = model.config().vocab;
    testing_support::expect_decode_batch_matches_alone(
        model, {fold({507, 65, 289}, V), fold({12, 400, 5, 77, 300}, V), fold({507, 3}, V), {9}}, 4, 16, name);
  }
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

  // Start from another fixture folder instead.
  void use(const std::string& name) {
    for (const char* f : {"config.json", "model.safetensors"})
      fs::copy_file(kEngine + name + "/" + f, dir_ + "/" + f, fs::copy_options::overwrite_existing);
  }

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

// Mistral-family sliding window: a config that states sliding_window 4 must
// give the windowed reference (the generator checks it lies > 0.1 from the
// full-attention logits, so ignoring the window fails), through the full
// forward and through the cache one token at a time.
class MoeConfigEditTest : public MoeLoadErrorTest {};

TEST_F(MoeConfigEditTest, SlidingWindowFromConfigIsHonoured) {
  const auto ref = load_json(kEngine + "mixtral-tiny/reference_window.json");
  const auto window = ref["sliding_window"].get<int64_t>();
  edit_config("sliding_window", window);
  const Model model = Model::open(dir_, 2);
  EXPECT_EQ(model.config().sliding_window, window);
  const auto ids = ref["token_ids"].get<std::vector<int32_t>>();
  const auto head = ref["logits"].get<std::vector<std::vector<double>>>();
  const auto last = ref["last_logits"].get<std::vector<double>>();
  const auto top = ref["argmax"].get<std::vector<int64_t>>();
  const int64_t V = model.config().vocab, n = static_cast<int64_t>(ids.size());
  ASSERT_EQ(static_cast<int64_t>(head.size()), n);
  const auto full = model.forward(ids);
  auto cache = model.new_cache(n);
  std::vector<float> stepwise;
  for (int64_t p = 0; p < n; ++p) {
    const auto step = model.forward(std::span<const int32_t>(ids).subspan(p, 1), cache, true);
    stepwise.insert(stepwise.end(), step.begin(), step.end());
  }
  const auto& through_cache = stepwise;
  for (const auto* logits : {&full, &through_cache}) {
    double worst = 0;
    for (int64_t p = 0; p < n; ++p) {
      for (size_t i = 0; i < head[p].size(); ++i)
        worst = std::max(worst, std::abs((*logits)[p * V + static_cast<int64_t>(i)] - head[p][i]));
      EXPECT_EQ(argmax(logits->data() + p * V, V), top[p]) << "position " << p;
    }
    for (int64_t i = 0; i < V; ++i) worst = std::max(worst, std::abs((*logits)[(n - 1) * V + i] - last[i]));
    EXPECT_LT(worst, 1e-4) << (logits == &full ? "full forward" : "through the cache");
  }
  // Every layer is windowed, so every layer's cache is a ring of the window,
  // with the logits of the unbounded cache.
  ASSERT_LT(window, n);
  EXPECT_LE(testing_support::bounded_vs_full_window_cache(model, ids, {1, 3}, "mixtral window"), 1e-6);
}

TEST_F(MoeLoadErrorTest, MissingSharedExpertGateIsNamed) {
  use("qwen2moe-tiny");
  EXPECT_EQ(open_error(), "");
  drop_tensor("model.layers.1.mlp.shared_expert_gate.weight");
  const auto msg = open_error();
  EXPECT_NE(msg.find("layer.1.shared_expert_router"), std::string::npos) << msg;
}

TEST_F(MoeLoadErrorTest, SharedExpertsAreRefused) {
  edit_config("n_shared_experts", 1);
  EXPECT_THROW(Model::open(dir_, 1), UnsupportedError);
}

// ---- GGUF with packed experts -----------------------------------------------
// llama.cpp's converter stacks a layer's experts in one 3-D tensor per
// projection (blk.N.ffn_{gate,up,down}_exps, ne [in, out, experts]); the
// engine keeps each expert's slice in its stored type.

struct RefDiff {
  double worst = 0;  // max |logit - reference| over the logits the reference gives
  int agree = 0, total = 0;  // positions whose argmax matches
};

RefDiff compare_to_reference(const Model& model, const nlohmann::json& ref) {
  RefDiff r;
  const int64_t V = model.config().vocab;
  for (const auto& seq : ref["sequences"]) {
    const auto ids = seq["token_ids"].get<std::vector<int32_t>>();
    const auto last = seq["last_logits"].get<std::vector<double>>();
    const auto top = seq["argmax"].get<std::vector<int64_t>>();
    const auto n = static_cast<int64_t>(ids.size());
    const auto logits = model.forward(ids);
    EXPECT_EQ(logits.size(), static_cast<size_t>(n * V));
    EXPECT_EQ(static_cast<int64_t>(last.size()), V);
    EXPECT_EQ(static_cast<int64_t>(top.size()), n);
    if (logits.size() != static_cast<size_t>(n * V) || static_cast<int64_t>(last.size()) != V ||
        static_cast<int64_t>(top.size()) != n)
      return r;
    if (seq.contains("head_logits")) {
      const auto head = seq["head_logits"].get<std::vector<std::vector<double>>>();
      for (int64_t p = 0; p < n && p < static_cast<int64_t>(head.size()); ++p)
        for (size_t i = 0; i < head[p].size(); ++i)
          r.worst = std::max(r.worst, std::abs(logits[p * V + static_cast<int64_t>(i)] - head[p][i]));
    }
    for (int64_t i = 0; i < V; ++i) r.worst = std::max(r.worst, std::abs(logits[(n - 1) * V + i] - last[i]));
    for (int64_t p = 0; p < n; ++p, ++r.total) r.agree += argmax(logits.data() + p * V, V) == top[p];
  }
  return r;
}

// Mixtral as llama.cpp writes it (architecture "llama" with expert_count,
// Q/K rows permuted) in F16, which holds these BF16 weights exactly: the same
// model as the HF folder, so the same reference and the same logits.
TEST(MoeGgufTest, MixtralPackedExpertsMatchReferenceAndHfModel) {
  const Model gguf = Model::open(kEngine + "mixtral-tiny/mixtral-tiny-f16.gguf", 2);
  const Model hf = Model::open(kEngine + "mixtral-tiny", 2);
  const auto& c = gguf.config();
  EXPECT_EQ(c.family, "mixtral");
  EXPECT_EQ(c.experts, 4);
  EXPECT_EQ(c.experts_per_token, 2);
  EXPECT_EQ(c.expert_ffn, 32);
  EXPECT_TRUE(c.norm_topk);
  EXPECT_FALSE(c.tied_embeddings);
  const auto d = compare_to_reference(gguf, load_json(kEngine + "mixtral-tiny/reference_logits.json"));
  std::printf("[ measured ] mixtral-tiny-f16.gguf: max |logit diff| vs reference %.3g\n", d.worst);
  EXPECT_LT(d.worst, 1e-4);
  EXPECT_EQ(d.agree, d.total);
  double vs_hf = 0;
  for (const auto& ids : std::vector<std::vector<int32_t>>{kIds, {12, 400, 5}}) {
    const auto a = gguf.forward(ids), b = hf.forward(ids);
    ASSERT_EQ(a.size(), b.size());
    vs_hf = std::max(vs_hf, max_diff(a.data(), b.data(), static_cast<int64_t>(a.size())));
  }
  std::printf("[ measured ] mixtral-tiny-f16.gguf: max |logit diff| vs the HF folder %.3g\n", vs_hf);
  EXPECT_LT(vs_hf, 1e-4);
  // Experts stay packed (2 bytes a weight like the BF16 folder); only the
  // router is F32 in GGUF (llama.cpp keeps ffn_gate_inp unquantized).
  EXPECT_EQ(gguf.weight_bytes(), hf.weight_bytes() + static_cast<size_t>(c.layers * c.experts * c.hidden) * 2);
}

// Qwen3-MoE ("qwen3moe"): head_dim from key_length, expert width from
// expert_feed_forward_length, a dense layer of feed_forward_length, tied
// head. llama.cpp renormalises qwen3moe's top-k weights whatever the HF
// config said, so the reference is the HF model with norm_topk_prob true.
TEST(MoeGgufTest, Qwen3MoePackedExpertsMatchReference) {
  const Model model = Model::open(kEngine + "qwen3moe-tiny/qwen3moe-tiny-f16.gguf", 2);
  const auto& c = model.config();
  EXPECT_EQ(c.family, "qwen3_moe");
  EXPECT_EQ(c.experts, 6);
  EXPECT_EQ(c.experts_per_token, 2);
  EXPECT_EQ(c.expert_ffn, 24);
  EXPECT_EQ(c.ffn, 48);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_TRUE(c.norm_topk);
  EXPECT_TRUE(c.tied_embeddings);
  const auto ref = load_json(kEngine + "qwen3moe-tiny/reference_gguf.json");
  ASSERT_TRUE(ref["norm_topk"].get<bool>());
  const auto d = compare_to_reference(model, ref);
  std::printf("[ measured ] qwen3moe-tiny-f16.gguf: max |logit diff| %.3g\n", d.worst);
  EXPECT_LT(d.worst, 1e-4);
  EXPECT_EQ(d.agree, d.total);
  // Renormalisation changes the logits: the HF folder's reference (no
  // renormalisation) is far from this one.
  const auto hf_ref = load_json(kEngine + "qwen3moe-tiny/reference_logits.json");
  const auto hf_last = hf_ref["sequences"][0]["last_logits"].get<std::vector<double>>();
  const auto last = ref["sequences"][0]["last_logits"].get<std::vector<double>>();
  double apart = 0;
  for (size_t i = 0; i < last.size() && i < hf_last.size(); ++i) apart = std::max(apart, std::abs(last[i] - hf_last[i]));
  EXPECT_GT(apart, 0.1);
}

// Q8_0 experts (gate/up; down rows of 24 are not whole blocks and stay F16,
// as llama-quantize falls back): within the quantization error of the F16
// reference. The generator's float64 forward of the Q8_0 weights lies up to
// 0.447 from it (logits up to ~28; reference_gguf.json "q8_0"); the engine,
// which adds 8-bit activations, measured 0.351. Mis-sliced experts would
// be off by several units and change the top-1 tokens.
TEST(MoeGgufTest, Qwen3MoeQ8_0StaysCloseToF16Reference) {
  const Model q8 = Model::open(kEngine + "qwen3moe-tiny/qwen3moe-tiny-q8_0.gguf", 2);
  const Model f16 = Model::open(kEngine + "qwen3moe-tiny/qwen3moe-tiny-f16.gguf", 2);
  EXPECT_LT(q8.weight_bytes(), f16.weight_bytes() * 3 / 4);
  const auto ref = load_json(kEngine + "qwen3moe-tiny/reference_gguf.json");
  const auto d = compare_to_reference(q8, ref);
  std::printf("[ measured ] qwen3moe-tiny-q8_0.gguf: max |logit diff| vs F16 reference %.3g, top-1 %d/%d\n",
              d.worst, d.agree, d.total);
  EXPECT_LT(d.worst, 1.0);
  EXPECT_GE(d.agree, d.total - 2);
}

// Qwen2-MoE as llama.cpp writes it ("qwen2moe": Q/K/V biases, the shared
// expert as ffn_{gate,up,down}_shexp, its gate ffn_gate_inp_shexp), F16 =
// the HF folder's BF16 weights: the same reference. The generator checks the
// shared expert and its sigmoid gate each move the logits by far more than
// the tolerance, so the reference tells if either is dropped.
TEST(MoeGgufTest, Qwen2MoeSharedExpertMatchesReference) {
  const Model gguf = Model::open(kEngine + "qwen2moe-tiny/qwen2moe-tiny-f16.gguf", 2);
  const Model hf = Model::open(kEngine + "qwen2moe-tiny", 2);
  for (const Model* m : {&gguf, &hf}) {
    const auto& c = m->config();
    EXPECT_EQ(c.family, "qwen2_moe");
    EXPECT_EQ(c.experts, 4);
    EXPECT_EQ(c.expert_ffn, 16);
    EXPECT_EQ(c.shared_ffn, 32);
    EXPECT_FALSE(c.norm_topk);
  }
  const auto d = compare_to_reference(gguf, load_json(kEngine + "qwen2moe-tiny/reference_logits.json"));
  std::printf("[ measured ] qwen2moe-tiny-f16.gguf: max |logit diff| %.3g\n", d.worst);
  EXPECT_LT(d.worst, 1e-4);
  EXPECT_EQ(d.agree, d.total);
  const auto ids = fold(kIds, 64);
  const auto a = gguf.forward(ids), b = hf.forward(ids);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_LT(max_diff(a.data(), b.data(), static_cast<int64_t>(a.size())), 1e-4);
}

// ---- GGUF with one tensor per expert -----------------------------------------
// Older Mixtral conversions wrote every expert's matrices as their own
// tensors, blk.N.ffn_{gate,up,down}.E.weight (ne [in, out]).

// `bytes` (a GGUF file) rewritten with each stacked blk.N.ffn_X_exps.weight
// split into blk.N.ffn_X.E.weight, one per expert, the bytes of each
// expert's slice unchanged; header and metadata are kept verbatim.
// `drop`: leave out the tensor of that name.
std::string split_packed_experts(const std::string& bytes, const std::string& drop = "") {
  const auto g = weights::GgufFile::parse(
      std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), "split_packed_experts");
  auto put = [](std::string& out, auto value) {
    out.append(reinterpret_cast<const char*>(&value), sizeof(value));
  };
  auto gguf_string = [&](const std::string& s) {
    std::string o;
    put(o, static_cast<uint64_t>(s.size()));
    return o + s;
  };
  // The tensor infos start where the first tensor's name is (metadata first).
  const size_t infos = bytes.find(gguf_string(g->tensors.at(0).name));
  EXPECT_NE(infos, std::string::npos);
  struct Piece {
    std::string name;
    std::vector<uint64_t> ne;  // innermost first
    uint32_t type;
    std::string_view data;
  };
  std::vector<Piece> pieces;
  for (size_t i = 0; i < g->tensors.size(); ++i) {
    const auto& t = g->tensors[i];
    const std::string_view data(bytes.data() + t.offset, t.nbytes);
    const size_t at = t.name.find("_exps.weight");
    if (at == std::string::npos) {
      pieces.push_back({t.name, std::vector<uint64_t>(t.shape.rbegin(), t.shape.rend()), g->ggml_types[i], data});
      continue;
    }
    EXPECT_EQ(t.shape.size(), 3u) << t.name;
    const auto experts = static_cast<uint64_t>(t.shape[0]), each = t.nbytes / experts;
    for (uint64_t e = 0; e < experts; ++e)
      pieces.push_back({t.name.substr(0, at) + "." + std::to_string(e) + ".weight",
                        {static_cast<uint64_t>(t.shape[2]), static_cast<uint64_t>(t.shape[1])}, g->ggml_types[i],
                        data.substr(e * each, each)});
  }
  std::erase_if(pieces, [&](const Piece& p) { return p.name == drop; });
  std::string out = bytes.substr(0, infos), data;
  const uint64_t count = pieces.size();
  std::memcpy(out.data() + 8, &count, 8);  // after magic and version
  for (const auto& p : pieces) {
    out += gguf_string(p.name);
    put(out, static_cast<uint32_t>(p.ne.size()));
    for (const uint64_t n : p.ne) put(out, n);
    put(out, p.type);
    put(out, static_cast<uint64_t>(data.size()));
    data += p.data;
    data.append((g->alignment - data.size() % g->alignment) % g->alignment, '\0');
  }
  out.append((g->alignment - out.size() % g->alignment) % g->alignment, '\0');
  return out + data;
}

// The Mixtral F16 GGUF rewritten with one tensor per expert is the same
// model: every logit equal to the packed file's, and the experts keep their
// stored type (the same weight bytes).
TEST(MoeGgufTest, MixtralPerExpertTensorsEqualPackedLayout) {
  const std::string path = testing::TempDir() + "/moe_per_expert_" + std::to_string(::getpid()) + ".gguf";
  const std::string packed_path = kEngine + "mixtral-tiny/mixtral-tiny-f16.gguf";
  write_file(path, split_packed_experts(read_file(packed_path)));
  {
    const auto ckpt = weights::Checkpoint::open(path);
    int per_expert = 0;
    for (const auto& t : ckpt.tensors()) {
      EXPECT_EQ(t.name.find("_exps"), std::string::npos) << t.name;
      if (t.name == "blk.1.ffn_down.3.weight") {
        EXPECT_EQ(weights::role_name(t.role), "layer.1.expert.3.expert_down");
        EXPECT_EQ(t.shape, (std::vector<int64_t>{32, 32}));
      }
      per_expert += t.role.expert >= 0;
    }
    EXPECT_EQ(per_expert, 2 * 4 * 3);  // layers * experts * projections
  }
  const Model split = Model::open(path, 2), packed = Model::open(packed_path, 2);
  EXPECT_EQ(split.config().experts, 4);
  EXPECT_EQ(split.weight_bytes(), packed.weight_bytes());
  const auto ref = load_json(kEngine + "mixtral-tiny/reference_logits.json");
  double worst = 0;
  for (const auto& seq : ref["sequences"]) {
    const auto ids = seq["token_ids"].get<std::vector<int32_t>>();
    const auto a = split.forward(ids), b = packed.forward(ids);
    ASSERT_EQ(a.size(), b.size());
    worst = std::max(worst, max_diff(a.data(), b.data(), static_cast<int64_t>(a.size())));
  }
  std::printf("[ measured ] mixtral per-expert GGUF vs packed: max |logit diff| %.3g\n", worst);
  EXPECT_EQ(worst, 0.0);
  const auto d = compare_to_reference(split, ref);
  EXPECT_LT(d.worst, 1e-4);
  EXPECT_EQ(d.agree, d.total);
  // A missing per-expert tensor is named with its expert.
  write_file(path, split_packed_experts(read_file(packed_path), "blk.1.ffn_up.2.weight"));
  try {
    Model::open(path, 1);
    ADD_FAILURE() << "a per-expert GGUF without blk.1.ffn_up.2.weight loaded";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("MoE layer 1 has no layer.1.expert.2.expert_up tensor"), std::string::npos)
        << e.what();
  }
  fs::remove(path);
}

// A copy of the Qwen3-MoE GGUF with a metadata value or a tensor name edited
// in place.
class MoeGgufLoadErrorTest : public testing::Test {
 protected:
  void SetUp() override {
    path_ = testing::TempDir() + "/moe_gguf_load_error_" + std::to_string(::getpid()) + ".gguf";
    bytes_ = read_file(kEngine + "qwen3moe-tiny/qwen3moe-tiny-f16.gguf");
  }
  void TearDown() override { fs::remove(path_); }

  // Offset just past a GGUF string (u64 length, then the bytes) equal to s.
  size_t find_string(const std::string& s) {
    std::string needle(8, '\0');
    const uint64_t n = s.size();
    std::memcpy(needle.data(), &n, 8);
    needle += s;
    const size_t at = bytes_.find(needle);
    EXPECT_NE(at, std::string::npos) << s;
    return at == std::string::npos ? 0 : at + needle.size();
  }
  void set_u32(const std::string& key, uint32_t value) {
    const size_t at = find_string(key);
    ASSERT_NE(at, 0u);
    uint32_t type = 0;
    std::memcpy(&type, bytes_.data() + at, 4);
    ASSERT_EQ(type, 4u) << key << " is not a u32";
    std::memcpy(bytes_.data() + at + 4, &value, 4);
  }
  void rename_tensor(const std::string& from, const std::string& to) {
    ASSERT_EQ(from.size(), to.size());
    const size_t at = find_string(from);
    ASSERT_NE(at, 0u);
    bytes_.replace(at - from.size(), from.size(), to);
  }
  std::string open_error() {
    write_file(path_, bytes_);
    try {
      Model::open(path_, 1);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  std::string path_, bytes_;
};

TEST_F(MoeGgufLoadErrorTest, UneditedCopyLoads) { EXPECT_EQ(open_error(), ""); }

TEST_F(MoeGgufLoadErrorTest, ExpertWidthDisagreeingWithMetadataNamesTensorAndShapes) {
  set_u32("qwen3moe.expert_feed_forward_length", 20);
  const auto msg = open_error();
  EXPECT_NE(msg.find("blk.0.ffn_gate_exps.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[6, 24, 32]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[6, 20, 32]"), std::string::npos) << msg;
}

TEST_F(MoeGgufLoadErrorTest, ExpertCountDisagreeingWithStackIsNamed) {
  // The router is [experts, hidden] too; either tensor may be met first.
  set_u32("qwen3moe.expert_count", 5);
  const auto msg = open_error();
  EXPECT_NE(msg.find("blk.0.ffn_"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[5, "), std::string::npos) << msg;
}

TEST_F(MoeGgufLoadErrorTest, MissingStackedTensorIsNamed) {
  rename_tensor("blk.0.ffn_down_exps.weight", "blk.0.ffn_down_expX.weight");
  const auto msg = open_error();
  EXPECT_NE(msg.find("MoE layer 0 has no layer.0.expert_down tensor"), std::string::npos) << msg;
}

}  // namespace
}  // namespace kaival::engine
