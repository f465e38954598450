// Architecture descriptions from real published config.json files (committed
// under testdata/configs) and from GGUF metadata built in memory. Expected
// values are the sizes the model cards and papers publish for each model.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/mmap.h"
#include "weights/architecture.h"
#include "weights/gguf.h"

namespace kaival::weights {
namespace {

using nlohmann::json;

json read_config(const std::string& name) {
  std::ifstream in(std::string(KAIVAL_TESTDATA) + "/configs/" + name);
  EXPECT_TRUE(in.good()) << name;
  return json::parse(in);
}

Architecture load(const std::string& name) { return architecture_from_config(read_config(name), name); }

// The message of the FormatError that parsing `config` throws ("" if none).
std::string config_error(const json& config) {
  try {
    architecture_from_config(config, "bad/config.json");
  } catch (const FormatError& e) {
    return e.what();
  }
  return "";
}

TEST(ArchitectureConfig, Llama31WithLlama3RopeScaling) {
  auto a = load("llama-3.1-8b.json");
  EXPECT_EQ(a.family, "llama");
  EXPECT_EQ(a.model_type, "llama");
  EXPECT_EQ(a.hidden_size, 4096);
  EXPECT_EQ(a.num_layers, 32);
  EXPECT_EQ(a.num_heads, 32);
  EXPECT_EQ(a.num_kv_heads, 8);
  EXPECT_EQ(a.head_dim, 128);  // derived: 4096 / 32
  EXPECT_EQ(a.intermediate_size, 14336);
  EXPECT_EQ(a.vocab_size, 128256);
  EXPECT_EQ(a.max_position, 131072);
  EXPECT_DOUBLE_EQ(a.rope.theta, 500000.0);
  EXPECT_EQ(a.rope.scaling_type, "llama3");
  EXPECT_DOUBLE_EQ(a.rope.factor, 8.0);
  EXPECT_DOUBLE_EQ(a.rope.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(a.rope.high_freq_factor, 4.0);
  EXPECT_EQ(a.rope.original_max_position, 8192);
  EXPECT_EQ(a.norm_type, "rmsnorm");
  EXPECT_DOUBLE_EQ(a.norm_eps, 1e-5);
  EXPECT_EQ(a.activation, "silu");
  EXPECT_FALSE(a.tied_embeddings);
  EXPECT_EQ(a.num_experts, 0);
  EXPECT_FALSE(a.vision.has_value());
  EXPECT_FALSE(a.audio.has_value());
}

TEST(ArchitectureConfig, Mistral) {
  auto a = load("mistral-7b-v0.3.json");
  EXPECT_EQ(a.family, "mistral");
  EXPECT_EQ(a.vocab_size, 32768);
  EXPECT_EQ(a.num_kv_heads, 8);
  EXPECT_EQ(a.head_dim, 128);
  EXPECT_DOUBLE_EQ(a.rope.theta, 1e6);
  EXPECT_EQ(a.sliding_window, 0);  // null in v0.3
  EXPECT_EQ(a.rope.scaling_type, "");
}

TEST(ArchitectureConfig, MixtralExperts) {
  auto a = load("mixtral-8x7b.json");
  EXPECT_EQ(a.family, "mixtral");
  EXPECT_EQ(a.num_experts, 8);
  EXPECT_EQ(a.experts_per_token, 2);
  EXPECT_EQ(a.moe_intermediate_size, 14336);  // each expert is a full-width FFN
  EXPECT_EQ(a.num_shared_experts, 0);
  EXPECT_EQ(a.vocab_size, 32000);
}

TEST(ArchitectureConfig, Qwen25DisabledSlidingWindow) {
  auto a = load("qwen2.5-7b.json");
  EXPECT_EQ(a.family, "qwen2");
  EXPECT_EQ(a.hidden_size, 3584);
  EXPECT_EQ(a.num_layers, 28);
  EXPECT_EQ(a.num_heads, 28);
  EXPECT_EQ(a.num_kv_heads, 4);
  EXPECT_EQ(a.head_dim, 128);
  EXPECT_EQ(a.intermediate_size, 18944);
  EXPECT_EQ(a.vocab_size, 152064);
  EXPECT_EQ(a.sliding_window, 0);  // sliding_window is set but use_sliding_window is false
}

TEST(ArchitectureConfig, Qwen3ExplicitHeadDim) {
  auto a = load("qwen3-8b.json");
  EXPECT_EQ(a.family, "qwen3");
  EXPECT_EQ(a.num_layers, 36);
  EXPECT_EQ(a.head_dim, 128);
  EXPECT_EQ(a.intermediate_size, 12288);
  EXPECT_FALSE(a.tied_embeddings);

  // Qwen3-0.6B: head_dim 128 although hidden / heads = 1024 / 16 = 64.
  auto s = load("qwen3-0.6b.json");
  EXPECT_EQ(s.hidden_size, 1024);
  EXPECT_EQ(s.num_heads, 16);
  EXPECT_EQ(s.head_dim, 128);
  EXPECT_TRUE(s.tied_embeddings);
}

TEST(ArchitectureConfig, Qwen3Moe) {
  auto a = load("qwen3-30b-a3b.json");
  EXPECT_EQ(a.family, "qwen3_moe");
  EXPECT_EQ(a.num_layers, 48);
  EXPECT_EQ(a.num_kv_heads, 4);
  EXPECT_EQ(a.head_dim, 128);
  EXPECT_EQ(a.num_experts, 128);
  EXPECT_EQ(a.experts_per_token, 8);
  EXPECT_EQ(a.moe_intermediate_size, 768);
}

TEST(ArchitectureConfig, DeepSeekV3Mla) {
  auto a = load("deepseek-v3.json");
  EXPECT_EQ(a.family, "deepseek_v3");
  EXPECT_EQ(a.hidden_size, 7168);
  EXPECT_EQ(a.num_layers, 61);
  EXPECT_EQ(a.num_heads, 128);
  EXPECT_EQ(a.q_lora_rank, 1536);
  EXPECT_EQ(a.kv_lora_rank, 512);
  EXPECT_EQ(a.qk_rope_head_dim, 64);
  EXPECT_EQ(a.qk_nope_head_dim, 128);
  EXPECT_EQ(a.v_head_dim, 128);
  EXPECT_EQ(a.head_dim, 192);  // query/key head: 128 without RoPE + 64 with
  EXPECT_EQ(a.num_experts, 256);
  EXPECT_EQ(a.num_shared_experts, 1);
  EXPECT_EQ(a.experts_per_token, 8);
  EXPECT_EQ(a.moe_intermediate_size, 2048);
  EXPECT_EQ(a.intermediate_size, 18432);
  EXPECT_EQ(a.vocab_size, 129280);
  EXPECT_EQ(a.rope.scaling_type, "yarn");
  EXPECT_DOUBLE_EQ(a.rope.factor, 40.0);
  EXPECT_EQ(a.rope.original_max_position, 4096);
}

TEST(ArchitectureConfig, Gemma2) {
  auto a = load("gemma-2-9b.json");
  EXPECT_EQ(a.family, "gemma2");
  EXPECT_EQ(a.num_layers, 42);
  EXPECT_EQ(a.head_dim, 256);  // not 3584 / 16 = 224
  EXPECT_EQ(a.num_kv_heads, 8);
  EXPECT_EQ(a.activation, "gelu_pytorch_tanh");
  EXPECT_TRUE(a.tied_embeddings);  // Gemma ties by default; the config does not say
  EXPECT_EQ(a.sliding_window, 4096);
  EXPECT_EQ(a.vocab_size, 256000);
}

TEST(ArchitectureConfig, Gemma3MultimodalUsesClassDefaults) {
  auto a = load("gemma-3-4b-it.json");
  EXPECT_EQ(a.family, "gemma3");
  EXPECT_EQ(a.model_type, "gemma3");
  EXPECT_EQ(a.hidden_size, 2560);
  EXPECT_EQ(a.num_layers, 34);
  EXPECT_EQ(a.intermediate_size, 10240);
  // Left to Gemma3TextConfig's defaults by the published file:
  EXPECT_EQ(a.num_heads, 8);
  EXPECT_EQ(a.num_kv_heads, 4);
  EXPECT_EQ(a.head_dim, 256);
  EXPECT_EQ(a.vocab_size, 262208);
  EXPECT_DOUBLE_EQ(a.rope.theta, 1e6);
  EXPECT_DOUBLE_EQ(a.rope.local_theta, 10000.0);
  EXPECT_TRUE(a.tied_embeddings);
  EXPECT_EQ(a.rope.scaling_type, "linear");
  EXPECT_DOUBLE_EQ(a.rope.factor, 8.0);
  EXPECT_EQ(a.sliding_window, 1024);
  ASSERT_TRUE(a.vision.has_value());
  EXPECT_EQ(a.vision->model_type, "siglip_vision_model");
  EXPECT_EQ(a.vision->hidden_size, 1152);
  EXPECT_EQ(a.vision->num_layers, 27);
  EXPECT_EQ(a.vision->num_heads, 16);
  EXPECT_EQ(a.vision->intermediate_size, 4304);
  EXPECT_EQ(a.vision->patch_size, 14);
  EXPECT_EQ(a.vision->image_size, 896);
  EXPECT_FALSE(a.audio.has_value());
}

TEST(ArchitectureConfig, Gemma3TextOnly) {
  auto a = load("gemma-3-1b-it.json");
  EXPECT_EQ(a.family, "gemma3");
  EXPECT_EQ(a.model_type, "gemma3_text");
  EXPECT_EQ(a.num_heads, 4);
  EXPECT_EQ(a.num_kv_heads, 1);
  EXPECT_EQ(a.vocab_size, 262144);
  EXPECT_DOUBLE_EQ(a.rope.local_theta, 10000.0);
  EXPECT_FALSE(a.vision.has_value());
}

TEST(ArchitectureConfig, Phi3) {
  auto a = load("phi-3-mini-4k-instruct.json");
  EXPECT_EQ(a.family, "phi3");
  EXPECT_EQ(a.hidden_size, 3072);
  EXPECT_EQ(a.num_kv_heads, 32);
  EXPECT_EQ(a.head_dim, 96);
  EXPECT_EQ(a.vocab_size, 32064);
  EXPECT_EQ(a.sliding_window, 2047);
  EXPECT_EQ(a.rope.scaling_type, "");
  EXPECT_EQ(a.rope.original_max_position, 0);  // no scaling, so the top-level key is moot
}

TEST(ArchitectureConfig, Gpt2) {
  auto a = load("gpt2.json");
  EXPECT_EQ(a.family, "gpt2");
  EXPECT_EQ(a.hidden_size, 768);
  EXPECT_EQ(a.num_layers, 12);
  EXPECT_EQ(a.num_heads, 12);
  EXPECT_EQ(a.num_kv_heads, 12);
  EXPECT_EQ(a.head_dim, 64);
  EXPECT_EQ(a.intermediate_size, 3072);  // n_inner absent: 4 x n_embd
  EXPECT_EQ(a.max_position, 1024);
  EXPECT_EQ(a.vocab_size, 50257);
  EXPECT_EQ(a.norm_type, "layernorm");
  EXPECT_DOUBLE_EQ(a.norm_eps, 1e-5);
  EXPECT_EQ(a.activation, "gelu_new");
  EXPECT_TRUE(a.tied_embeddings);
  EXPECT_DOUBLE_EQ(a.rope.theta, 0.0);  // learned positions
}

TEST(ArchitectureConfig, GptNeoXPartialRotary) {
  auto a = load("pythia-160m.json");
  EXPECT_EQ(a.family, "gpt_neox");
  EXPECT_EQ(a.norm_type, "layernorm");
  EXPECT_DOUBLE_EQ(a.rope.partial_rotary_factor, 0.25);
  EXPECT_DOUBLE_EQ(a.rope.theta, 10000.0);
  EXPECT_TRUE(a.parallel_residual);
  EXPECT_FALSE(a.tied_embeddings);
  EXPECT_EQ(a.vocab_size, 50304);
  EXPECT_EQ(a.intermediate_size, 3072);
}

TEST(ArchitectureConfig, FalconMultiQueryAndNewDecoder) {
  auto a = load("falcon-7b.json");
  EXPECT_EQ(a.family, "falcon");
  EXPECT_EQ(a.num_heads, 71);
  EXPECT_EQ(a.num_kv_heads, 1);  // multi_query
  EXPECT_EQ(a.head_dim, 64);
  EXPECT_EQ(a.intermediate_size, 4 * 4544);
  EXPECT_EQ(a.norm_type, "layernorm");
  EXPECT_TRUE(a.parallel_residual);
  EXPECT_TRUE(a.tied_embeddings);

  auto b = load("falcon-40b.json");
  EXPECT_EQ(b.num_heads, 128);
  EXPECT_EQ(b.num_kv_heads, 8);  // new_decoder_architecture: num_kv_heads applies
  EXPECT_EQ(b.head_dim, 64);
}

TEST(ArchitectureConfig, Exaone3) {
  auto a = load("exaone-3.5-7.8b-instruct.json");
  EXPECT_EQ(a.family, "exaone");
  EXPECT_EQ(a.num_layers, 32);  // "num_layers", not num_hidden_layers
  EXPECT_EQ(a.hidden_size, 4096);
  EXPECT_EQ(a.num_kv_heads, 8);
  EXPECT_EQ(a.intermediate_size, 14336);
  EXPECT_EQ(a.vocab_size, 102400);
  EXPECT_EQ(a.norm_type, "rmsnorm");  // despite the key name layer_norm_epsilon
  EXPECT_DOUBLE_EQ(a.norm_eps, 1e-5);
  EXPECT_EQ(a.rope.scaling_type, "llama3");
  EXPECT_DOUBLE_EQ(a.rope.theta, 1e6);
  EXPECT_FALSE(a.tied_embeddings);
}

TEST(ArchitectureConfig, LlavaTextAndVisionConfigs) {
  auto a = load("llava-1.5-7b-hf.json");
  EXPECT_EQ(a.family, "llama");
  EXPECT_EQ(a.model_type, "llava");
  EXPECT_EQ(a.hidden_size, 4096);  // LlamaConfig defaults (Vicuna-7B)
  EXPECT_EQ(a.num_layers, 32);
  EXPECT_EQ(a.num_kv_heads, 32);
  EXPECT_EQ(a.intermediate_size, 11008);
  EXPECT_EQ(a.vocab_size, 32064);
  EXPECT_EQ(a.max_position, 4096);
  EXPECT_DOUBLE_EQ(a.norm_eps, 1e-5);
  EXPECT_FALSE(a.tied_embeddings);
  ASSERT_TRUE(a.vision.has_value());
  EXPECT_EQ(a.vision->model_type, "clip_vision_model");
  EXPECT_EQ(a.vision->hidden_size, 1024);
  EXPECT_EQ(a.vision->num_layers, 24);
  EXPECT_EQ(a.vision->num_heads, 16);
  EXPECT_EQ(a.vision->patch_size, 14);
  EXPECT_EQ(a.vision->image_size, 336);
}

TEST(ArchitectureConfig, Qwen2VlVisionTower) {
  auto a = load("qwen2-vl-7b-instruct.json");
  EXPECT_EQ(a.family, "qwen2");
  EXPECT_EQ(a.model_type, "qwen2_vl");
  EXPECT_EQ(a.hidden_size, 3584);
  EXPECT_EQ(a.rope.scaling_type, "mrope");
  ASSERT_TRUE(a.vision.has_value());
  EXPECT_EQ(a.vision->hidden_size, 1280);  // embed_dim; hidden_size is the merger's output
  EXPECT_EQ(a.vision->num_layers, 32);
  EXPECT_EQ(a.vision->num_heads, 16);
  EXPECT_EQ(a.vision->intermediate_size, 5120);  // mlp_ratio 4
  EXPECT_EQ(a.vision->patch_size, 14);
}

TEST(ArchitectureConfig, Qwen2AudioTower) {
  auto a = load("qwen2-audio-7b-instruct.json");
  EXPECT_EQ(a.family, "qwen2");
  EXPECT_EQ(a.model_type, "qwen2_audio");
  EXPECT_EQ(a.hidden_size, 4096);
  EXPECT_EQ(a.num_layers, 32);
  EXPECT_EQ(a.intermediate_size, 11008);
  EXPECT_EQ(a.vocab_size, 156032);
  EXPECT_EQ(a.max_position, 8192);
  EXPECT_FALSE(a.vision.has_value());
  ASSERT_TRUE(a.audio.has_value());
  EXPECT_EQ(a.audio->model_type, "qwen2_audio_encoder");
  EXPECT_EQ(a.audio->hidden_size, 1280);
  EXPECT_EQ(a.audio->num_layers, 32);
  EXPECT_EQ(a.audio->num_heads, 20);
  EXPECT_EQ(a.audio->intermediate_size, 5120);
}

TEST(ArchitectureConfig, EveryCommittedConfigParsesAndDescribesItself) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::string(KAIVAL_TESTDATA) + "/configs")) {
    if (e.path().extension() != ".json") continue;
    ++n;
    SCOPED_TRACE(e.path().filename().string());
    auto a = load(e.path().filename().string());
    EXPECT_NE(a.family, "unknown");
    EXPECT_GT(a.hidden_size, 0);
    EXPECT_GT(a.num_layers, 0);
    EXPECT_GT(a.num_heads, 0);
    EXPECT_GT(a.num_kv_heads, 0);
    EXPECT_LE(a.num_kv_heads, a.num_heads);
    EXPECT_EQ(a.num_heads % a.num_kv_heads, 0);
    EXPECT_GT(a.head_dim, 0);
    EXPECT_GT(a.vocab_size, 0);
    json j = a.to_json();
    for (const char* k : {"family", "model_type", "hidden_size", "num_layers", "num_heads", "num_kv_heads",
                          "head_dim", "intermediate_size", "vocab_size", "max_position", "rope", "norm_type",
                          "norm_eps", "activation", "tied_embeddings", "num_experts", "experts_per_token",
                          "moe_intermediate_size", "q_lora_rank", "kv_lora_rank", "vision", "audio"})
      EXPECT_TRUE(j.contains(k)) << k;
    EXPECT_EQ(j["hidden_size"], a.hidden_size);
    EXPECT_EQ(j["vision"].is_null(), !a.vision.has_value());
    EXPECT_EQ(j["audio"].is_null(), !a.audio.has_value());
    EXPECT_NO_THROW((void)j.dump());
  }
  EXPECT_GE(n, 15);
}

TEST(ArchitectureConfig, ToJsonNestsTowersAndRope) {
  auto j = load("gemma-3-4b-it.json").to_json();
  EXPECT_EQ(j["vision"]["hidden_size"], 1152);
  EXPECT_EQ(j["vision"]["model_type"], "siglip_vision_model");
  EXPECT_TRUE(j["audio"].is_null());
  EXPECT_EQ(j["rope"]["scaling_type"], "linear");
  EXPECT_DOUBLE_EQ(j["rope"]["local_theta"].get<double>(), 10000.0);
}

TEST(ArchitectureConfig, UnknownModelTypeReadsCommonKeys) {
  json c = {{"model_type", "brand_new_lm"},
            {"hidden_size", 512},
            {"num_hidden_layers", 4},
            {"num_attention_heads", 8},
            {"intermediate_size", 2048},
            {"vocab_size", 1000},
            {"layer_norm_eps", 1e-5}};
  auto a = architecture_from_config(c, "config.json");
  EXPECT_EQ(a.family, "unknown");
  EXPECT_EQ(a.model_type, "brand_new_lm");
  EXPECT_EQ(a.hidden_size, 512);
  EXPECT_EQ(a.num_kv_heads, 8);  // defaults to heads
  EXPECT_EQ(a.head_dim, 64);
  EXPECT_EQ(a.norm_type, "layernorm");  // from the epsilon's key

  auto empty = architecture_from_config(json::object(), "config.json");
  EXPECT_EQ(empty.family, "unknown");
  EXPECT_EQ(empty.head_dim, 0);
}

TEST(ArchitectureConfig, RopeVariants) {
  json su = {{"model_type", "phi3"},
             {"original_max_position_embeddings", 4096},
             {"rope_scaling", {{"type", "su"}, {"long_factor", {1.0, 1.5}}, {"short_factor", {1.0, 1.0}}}}};
  auto a = architecture_from_config(su, "config.json");
  EXPECT_EQ(a.rope.scaling_type, "longrope");
  EXPECT_DOUBLE_EQ(a.rope.factor, 1.0);
  EXPECT_EQ(a.rope.original_max_position, 4096);

  json v5 = {{"model_type", "llama"},
             {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 250000.0}}}};
  auto b = architecture_from_config(v5, "config.json");
  EXPECT_DOUBLE_EQ(b.rope.theta, 250000.0);
  EXPECT_EQ(b.rope.scaling_type, "");

  json integral_float = {{"model_type", "llama"}, {"hidden_size", 2048.0}, {"num_attention_heads", 16}};
  EXPECT_EQ(architecture_from_config(integral_float, "config.json").head_dim, 128);
}

TEST(ArchitectureConfig, TypeAndRangeErrorsNameFileAndKey) {
  auto has = [](const std::string& msg, const std::string& part) {
    return msg.find(part) != std::string::npos;
  };
  std::string m = config_error({{"model_type", "llama"}, {"hidden_size", "4096"}});
  EXPECT_TRUE(has(m, "bad/config.json")) << m;
  EXPECT_TRUE(has(m, "hidden_size")) << m;
  EXPECT_TRUE(has(m, "string")) << m;

  m = config_error({{"model_type", "llama"}, {"num_hidden_layers", -1}});
  EXPECT_TRUE(has(m, "num_hidden_layers")) << m;
  m = config_error({{"model_type", "qwen2"}, {"intermediate_size", 20000000}});
  EXPECT_TRUE(has(m, "intermediate_size")) << m;
  m = config_error({{"model_type", "qwen2"}, {"vocab_size", 18446744073709551615ull}});
  EXPECT_TRUE(has(m, "vocab_size")) << m;
  m = config_error({{"model_type", "qwen2"}, {"num_attention_heads", 0}});
  EXPECT_TRUE(has(m, "num_attention_heads")) << m;
  m = config_error({{"hidden_size", 4096.5}});
  EXPECT_TRUE(has(m, "hidden_size")) << m;
  m = config_error({{"hidden_size", 1e300}});
  EXPECT_TRUE(has(m, "hidden_size")) << m;
  m = config_error({{"num_key_value_heads", {8}}});
  EXPECT_TRUE(has(m, "num_key_value_heads")) << m;
  m = config_error({{"model_type", 3}});
  EXPECT_TRUE(has(m, "model_type")) << m;
  m = config_error({{"tie_word_embeddings", "yes"}});
  EXPECT_TRUE(has(m, "tie_word_embeddings")) << m;
  m = config_error({{"rms_norm_eps", -1e-6}});
  EXPECT_TRUE(has(m, "rms_norm_eps")) << m;
  m = config_error({{"rope_theta", "1e6"}});
  EXPECT_TRUE(has(m, "rope_theta")) << m;
  m = config_error({{"rope_scaling", "llama3"}});
  EXPECT_TRUE(has(m, "rope_scaling")) << m;
  m = config_error({{"rope_scaling", {{"rope_type", "yarn"}, {"factor", "4"}}}});
  EXPECT_TRUE(has(m, "rope_scaling.factor")) << m;
  m = config_error({{"model_type", "gemma3"}, {"text_config", {{"hidden_size", -2560}}}});
  EXPECT_TRUE(has(m, "text_config.hidden_size")) << m;
  m = config_error({{"text_config", 7}});
  EXPECT_TRUE(has(m, "text_config")) << m;
  m = config_error({{"vision_config", {{"num_hidden_layers", "27"}}}});
  EXPECT_TRUE(has(m, "vision_config.num_hidden_layers")) << m;
  m = config_error({{"audio_config", {{"d_model", 1e8}}}});
  EXPECT_TRUE(has(m, "audio_config.d_model")) << m;
  m = config_error(json::array({1, 2}));
  EXPECT_TRUE(has(m, "bad/config.json")) << m;
  m = config_error(json("just a string"));
  EXPECT_TRUE(has(m, "not a JSON object")) << m;
}

// ------------------------------------------------------------------ GGUF

GgufValue u32(uint64_t v) { return GgufValue{GgufType::U32, v}; }
GgufValue i32(int64_t v) { return GgufValue{GgufType::I32, v}; }
GgufValue f32(double v) { return GgufValue{GgufType::F32, v}; }
GgufValue str(std::string s) { return GgufValue{GgufType::STRING, std::move(s)}; }
GgufValue tokens(size_t n) {
  auto arr = std::make_shared<GgufArray>();
  arr->elem_type = GgufType::STRING;
  for (size_t i = 0; i < n; ++i) arr->items.push_back(str("t" + std::to_string(i)));
  return GgufValue{GgufType::ARRAY, arr};
}
TensorInfo tensor(std::string name, std::vector<int64_t> shape) {
  TensorInfo t;
  t.name = std::move(name);
  t.shape = std::move(shape);
  return t;
}

// Metadata as llama.cpp's converter writes it for Meta-Llama-3.1-8B.
GgufFile llama31_gguf() {
  GgufFile g;
  g.metadata = {
      {"general.architecture", str("llama")},
      {"general.name", str("Meta Llama 3.1 8B Instruct")},
      {"llama.block_count", u32(32)},
      {"llama.context_length", u32(131072)},
      {"llama.embedding_length", u32(4096)},
      {"llama.feed_forward_length", u32(14336)},
      {"llama.attention.head_count", u32(32)},
      {"llama.attention.head_count_kv", u32(8)},
      {"llama.rope.freq_base", f32(500000.0)},
      {"llama.attention.layer_norm_rms_epsilon", f32(1e-5)},
      {"llama.rope.dimension_count", u32(128)},
      {"llama.vocab_size", u32(128256)},
      {"tokenizer.ggml.tokens", tokens(300)},
  };
  g.tensors = {tensor("token_embd.weight", {128256, 4096}), tensor("output.weight", {128256, 4096})};
  return g;
}

TEST(ArchitectureGguf, Llama) {
  auto a = architecture_from_gguf(llama31_gguf(), "m.gguf");
  EXPECT_EQ(a.family, "llama");
  EXPECT_EQ(a.model_type, "llama");
  EXPECT_EQ(a.hidden_size, 4096);
  EXPECT_EQ(a.num_layers, 32);
  EXPECT_EQ(a.num_heads, 32);
  EXPECT_EQ(a.num_kv_heads, 8);
  EXPECT_EQ(a.head_dim, 128);
  EXPECT_EQ(a.intermediate_size, 14336);
  EXPECT_EQ(a.max_position, 131072);
  EXPECT_EQ(a.vocab_size, 128256);  // llama.vocab_size wins over the token list
  EXPECT_DOUBLE_EQ(a.rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(a.rope.partial_rotary_factor, 1.0);
  EXPECT_EQ(a.norm_type, "rmsnorm");
  EXPECT_DOUBLE_EQ(a.norm_eps, 1e-5);
  EXPECT_EQ(a.activation, "silu");
  EXPECT_FALSE(a.tied_embeddings);
}

TEST(ArchitectureGguf, VocabFromTokensAndTiedFromMissingOutput) {
  GgufFile g = llama31_gguf();
  g.metadata.erase("llama.vocab_size");
  g.tensors.pop_back();  // no output.weight
  auto a = architecture_from_gguf(g, "m.gguf");
  EXPECT_EQ(a.vocab_size, 300);
  EXPECT_TRUE(a.tied_embeddings);
}

TEST(ArchitectureGguf, LlamaArchCarriesMistralAndMixtral) {
  GgufFile g = llama31_gguf();
  g.metadata["general.name"] = str("Mistral 7B Instruct v0.3");
  EXPECT_EQ(architecture_from_gguf(g, "m.gguf").family, "mistral");
  g.metadata["general.name"] = str("Mixtral 8x7B Instruct v0.1");
  g.metadata["llama.expert_count"] = u32(8);
  g.metadata["llama.expert_used_count"] = u32(2);
  auto a = architecture_from_gguf(g, "m.gguf");
  EXPECT_EQ(a.family, "mixtral");
  EXPECT_EQ(a.model_type, "llama");
  EXPECT_EQ(a.num_experts, 8);
  EXPECT_EQ(a.experts_per_token, 2);
  EXPECT_EQ(a.moe_intermediate_size, 14336);
}

TEST(ArchitectureGguf, Qwen3Moe) {
  GgufFile g;
  g.metadata = {
      {"general.architecture", str("qwen3moe")},
      {"qwen3moe.block_count", u32(48)},
      {"qwen3moe.context_length", u32(40960)},
      {"qwen3moe.embedding_length", u32(2048)},
      {"qwen3moe.feed_forward_length", u32(6144)},
      {"qwen3moe.attention.head_count", u32(32)},
      {"qwen3moe.attention.head_count_kv", u32(4)},
      {"qwen3moe.attention.key_length", u32(128)},
      {"qwen3moe.attention.value_length", u32(128)},
      {"qwen3moe.rope.freq_base", f32(1e6)},
      {"qwen3moe.attention.layer_norm_rms_epsilon", f32(1e-6)},
      {"qwen3moe.expert_count", u32(128)},
      {"qwen3moe.expert_used_count", u32(8)},
      {"qwen3moe.expert_feed_forward_length", u32(768)},
      {"tokenizer.ggml.tokens", tokens(151)},
  };
  auto a = architecture_from_gguf(g, "m.gguf");
  EXPECT_EQ(a.family, "qwen3_moe");
  EXPECT_EQ(a.head_dim, 128);  // key_length, not 2048 / 32
  EXPECT_EQ(a.num_experts, 128);
  EXPECT_EQ(a.experts_per_token, 8);
  EXPECT_EQ(a.moe_intermediate_size, 768);
  EXPECT_EQ(a.vocab_size, 151);
  EXPECT_EQ(a.max_position, 40960);
}

TEST(ArchitectureGguf, DeepSeekV3Mla) {
  GgufFile g;
  g.metadata = {
      {"general.architecture", str("deepseek2")},
      {"deepseek2.block_count", u32(61)},
      {"deepseek2.context_length", u32(163840)},
      {"deepseek2.embedding_length", u32(7168)},
      {"deepseek2.feed_forward_length", u32(18432)},
      {"deepseek2.attention.head_count", u32(128)},
      {"deepseek2.attention.head_count_kv", u32(128)},
      {"deepseek2.attention.key_length", u32(192)},
      {"deepseek2.attention.value_length", u32(128)},
      {"deepseek2.attention.q_lora_rank", u32(1536)},
      {"deepseek2.attention.kv_lora_rank", u32(512)},
      {"deepseek2.rope.dimension_count", u32(64)},
      {"deepseek2.rope.scaling.type", str("yarn")},
      {"deepseek2.rope.scaling.factor", f32(40.0)},
      {"deepseek2.rope.scaling.original_context_length", u32(4096)},
      {"deepseek2.expert_count", u32(256)},
      {"deepseek2.expert_used_count", u32(8)},
      {"deepseek2.expert_shared_count", u32(1)},
      {"deepseek2.expert_feed_forward_length", u32(2048)},
      {"deepseek2.expert_gating_func", u32(2)},
      {"deepseek2.attention.layer_norm_rms_epsilon", f32(1e-6)},
  };
  auto a = architecture_from_gguf(g, "m.gguf");
  EXPECT_EQ(a.family, "deepseek_v3");
  EXPECT_EQ(a.head_dim, 192);
  EXPECT_EQ(a.qk_rope_head_dim, 64);
  EXPECT_EQ(a.qk_nope_head_dim, 128);
  EXPECT_EQ(a.v_head_dim, 128);
  EXPECT_EQ(a.q_lora_rank, 1536);
  EXPECT_EQ(a.kv_lora_rank, 512);
  EXPECT_EQ(a.num_shared_experts, 1);
  EXPECT_EQ(a.rope.scaling_type, "yarn");
  EXPECT_DOUBLE_EQ(a.rope.factor, 40.0);
  EXPECT_EQ(a.rope.original_max_position, 4096);
  EXPECT_DOUBLE_EQ(a.rope.partial_rotary_factor, 1.0);  // MLA's RoPE part is described by qk_rope_head_dim

  // Newer converters: *_mla per-head sizes, key_length = kv_lora_rank + rope.
  g.metadata["deepseek2.attention.key_length"] = u32(576);
  g.metadata["deepseek2.attention.value_length"] = u32(512);
  g.metadata["deepseek2.attention.key_length_mla"] = u32(192);
  g.metadata["deepseek2.attention.value_length_mla"] = u32(128);
  auto b = architecture_from_gguf(g, "m.gguf");
  EXPECT_EQ(b.head_dim, 192);
  EXPECT_EQ(b.v_head_dim, 128);

  g.metadata["deepseek2.expert_gating_func"] = u32(1);
  EXPECT_EQ(architecture_from_gguf(g, "m.gguf").family, "deepseek_v2");
}

TEST(ArchitectureGguf, GptNeoXLayerNormAndPartialRotary) {
  GgufFile g;
  g.metadata = {
      {"general.architecture", str("gptneox")},
      {"gptneox.block_count", u32(12)},
      {"gptneox.embedding_length", u32(768)},
      {"gptneox.feed_forward_length", u32(3072)},
      {"gptneox.attention.head_count", u32(12)},
      {"gptneox.rope.dimension_count", u32(16)},
      {"gptneox.attention.layer_norm_epsilon", f32(1e-5)},
      {"gptneox.use_parallel_residual", GgufValue{GgufType::BOOL, true}},
  };
  auto a = architecture_from_gguf(g, "m.gguf");
  EXPECT_EQ(a.family, "gpt_neox");
  EXPECT_EQ(a.norm_type, "layernorm");
  EXPECT_EQ(a.head_dim, 64);
  EXPECT_EQ(a.num_kv_heads, 12);
  EXPECT_DOUBLE_EQ(a.rope.partial_rotary_factor, 0.25);
}

TEST(ArchitectureGguf, Gemma3TiedWithLocalTheta) {
  GgufFile g;
  g.metadata = {
      {"general.architecture", str("gemma3")},
      {"gemma3.block_count", u32(34)},
      {"gemma3.embedding_length", u32(2560)},
      {"gemma3.attention.head_count", u32(8)},
      {"gemma3.attention.head_count_kv", u32(4)},
      {"gemma3.attention.key_length", u32(256)},
      {"gemma3.attention.sliding_window", u32(1024)},
      {"gemma3.rope.freq_base", f32(1e6)},
  };
  g.tensors = {tensor("token_embd.weight", {262208, 2560})};
  auto a = architecture_from_gguf(g, "m.gguf");
  EXPECT_EQ(a.family, "gemma3");
  EXPECT_TRUE(a.tied_embeddings);
  EXPECT_EQ(a.vocab_size, 262208);  // from the embedding's shape, the last resort
  EXPECT_EQ(a.head_dim, 256);
  EXPECT_EQ(a.sliding_window, 1024);
  EXPECT_DOUBLE_EQ(a.rope.local_theta, 10000.0);
  EXPECT_EQ(a.activation, "gelu_pytorch_tanh");
}

TEST(ArchitectureGguf, ClipProjectorFileHasVisionTower) {
  GgufFile g;
  g.metadata = {
      {"general.architecture", str("clip")},
      {"clip.projector_type", str("gemma3")},
      {"clip.vision.embedding_length", u32(1152)},
      {"clip.vision.block_count", u32(27)},
      {"clip.vision.attention.head_count", u32(16)},
      {"clip.vision.feed_forward_length", u32(4304)},
      {"clip.vision.patch_size", u32(14)},
      {"clip.vision.image_size", u32(896)},
  };
  auto a = architecture_from_gguf(g, "mmproj.gguf");
  EXPECT_EQ(a.family, "clip");
  ASSERT_TRUE(a.vision.has_value());
  EXPECT_EQ(a.vision->model_type, "gemma3");
  EXPECT_EQ(a.vision->num_layers, 27);
  EXPECT_EQ(a.vision->image_size, 896);
  EXPECT_FALSE(a.audio.has_value());
}

TEST(ArchitectureGguf, UnknownArchitectureStillReadsKeys) {
  GgufFile g;
  g.metadata = {{"general.architecture", str("brandnew")},
                {"brandnew.embedding_length", u32(256)},
                {"brandnew.attention.head_count", u32(4)}};
  auto a = architecture_from_gguf(g, "m.gguf");
  EXPECT_EQ(a.family, "unknown");
  EXPECT_EQ(a.model_type, "brandnew");
  EXPECT_EQ(a.head_dim, 64);
}

TEST(ArchitectureGguf, BadMetadataIsAFormatErrorNamingTheKey) {
  auto error_of = [](const GgufFile& g) -> std::string {
    try {
      architecture_from_gguf(g, "bad.gguf");
    } catch (const FormatError& e) {
      return e.what();
    }
    return "";
  };
  GgufFile g = llama31_gguf();
  g.metadata["llama.embedding_length"] = str("4096");
  std::string m = error_of(g);
  EXPECT_NE(m.find("bad.gguf"), std::string::npos) << m;
  EXPECT_NE(m.find("llama.embedding_length"), std::string::npos) << m;

  g = llama31_gguf();
  g.metadata["llama.block_count"] = i32(-3);
  EXPECT_NE(error_of(g).find("llama.block_count"), std::string::npos);
  g = llama31_gguf();
  g.metadata["llama.attention.head_count"] = GgufValue{GgufType::U64, uint64_t{1} << 40};
  EXPECT_NE(error_of(g).find("llama.attention.head_count"), std::string::npos);
  g = llama31_gguf();
  g.metadata["llama.rope.freq_base"] = str("fast");
  EXPECT_NE(error_of(g).find("llama.rope.freq_base"), std::string::npos);
  g = llama31_gguf();
  g.metadata["tokenizer.ggml.tokens"] = u32(5);
  g.metadata.erase("llama.vocab_size");
  EXPECT_NE(error_of(g).find("tokenizer.ggml.tokens"), std::string::npos);
  g = llama31_gguf();
  g.metadata["general.architecture"] = u32(1);
  EXPECT_NE(error_of(g).find("general.architecture"), std::string::npos);
  g.metadata.erase("general.architecture");
  EXPECT_NE(error_of(g).find("general.architecture"), std::string::npos);
}

}  // namespace
}  // namespace kaival::weights

// ------------------------------------------- real GGUF files (llama.cpp's vocab files)

namespace kaival::weights {
namespace {

std::shared_ptr<GgufFile> open_vocab_gguf(const std::string& name, std::unique_ptr<MappedFile>& keep) {
  std::string path = std::string(KAIVAL_SHARED_DATA) + "/gguf-vocab/" + name;
  if (!std::filesystem::exists(path)) return nullptr;
  keep = std::make_unique<MappedFile>(path);
  return GgufFile::parse(*keep);
}

// The same model described by its GGUF metadata and by its config.json.
void expect_same_shape(const Architecture& g, const Architecture& c) {
  EXPECT_EQ(g.family, c.family);
  EXPECT_EQ(g.hidden_size, c.hidden_size);
  EXPECT_EQ(g.num_layers, c.num_layers);
  EXPECT_EQ(g.num_heads, c.num_heads);
  EXPECT_EQ(g.num_kv_heads, c.num_kv_heads);
  EXPECT_EQ(g.head_dim, c.head_dim);
  EXPECT_EQ(g.intermediate_size, c.intermediate_size);
  EXPECT_EQ(g.vocab_size, c.vocab_size);
  EXPECT_EQ(g.max_position, c.max_position);
  EXPECT_EQ(g.norm_type, c.norm_type);
  EXPECT_DOUBLE_EQ(g.norm_eps, c.norm_eps);  // float32 in GGUF, read back as the decimal meant
  EXPECT_DOUBLE_EQ(g.rope.theta, c.rope.theta);
  EXPECT_DOUBLE_EQ(g.rope.partial_rotary_factor, c.rope.partial_rotary_factor);
  EXPECT_EQ(g.rope.scaling_type, c.rope.scaling_type);
  EXPECT_EQ(g.rope.original_max_position, c.rope.original_max_position);
  EXPECT_EQ(g.activation, c.activation);
}

TEST(ArchitectureRealGguf, AgreesWithTheConfigOfTheSameModel) {
  struct Pair {
    const char* gguf;
    const char* config;
  };
  for (auto [gguf_name, config_name] : {Pair{"ggml-vocab-phi-3.gguf", "phi-3-mini-4k-instruct.json"},
                                        Pair{"ggml-vocab-falcon.gguf", "falcon-7b.json"},
                                        Pair{"ggml-vocab-gpt-2.gguf", "gpt2.json"}}) {
    SCOPED_TRACE(gguf_name);
    std::unique_ptr<MappedFile> map;
    auto g = open_vocab_gguf(gguf_name, map);
    if (!g) GTEST_SKIP() << "shared data not present";
    expect_same_shape(architecture_from_gguf(*g, gguf_name), load(config_name));
  }
}

TEST(ArchitectureRealGguf, GptNeoX20BAndDeepSeekCoder) {
  std::unique_ptr<MappedFile> map;
  auto g = open_vocab_gguf("ggml-vocab-gpt-neox.gguf", map);
  if (!g) GTEST_SKIP() << "shared data not present";
  auto a = architecture_from_gguf(*g, "neox");
  // EleutherAI/gpt-neox-20b: 44 layers of width 6144, 64 heads, rotary_pct 0.25.
  EXPECT_EQ(a.family, "gpt_neox");
  EXPECT_EQ(a.hidden_size, 6144);
  EXPECT_EQ(a.num_layers, 44);
  EXPECT_EQ(a.num_heads, 64);
  EXPECT_EQ(a.head_dim, 96);
  EXPECT_DOUBLE_EQ(a.rope.partial_rotary_factor, 0.25);
  EXPECT_EQ(a.vocab_size, 50432);
  EXPECT_EQ(a.norm_type, "layernorm");

  auto c = open_vocab_gguf("ggml-vocab-deepseek-coder.gguf", map);
  ASSERT_TRUE(c);
  auto d = architecture_from_gguf(*c, "deepseek-coder");
  // deepseek-coder-6.7b: a Llama with linear RoPE scaling x4 and theta 1e5.
  EXPECT_EQ(d.family, "llama");
  EXPECT_EQ(d.num_layers, 32);
  EXPECT_EQ(d.vocab_size, 32256);
  EXPECT_EQ(d.rope.scaling_type, "linear");
  EXPECT_DOUBLE_EQ(d.rope.factor, 4.0);
  EXPECT_DOUBLE_EQ(d.rope.theta, 100000.0);
}

TEST(ArchitectureRealGguf, EveryVocabFileDescribesItsModel) {
  std::string dir = std::string(KAIVAL_SHARED_DATA) + "/gguf-vocab";
  if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << "shared data not present";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".gguf") continue;
    SCOPED_TRACE(e.path().filename().string());
    MappedFile map(e.path().string());
    auto g = GgufFile::parse(map);
    Architecture a;
    ASSERT_NO_THROW(a = architecture_from_gguf(*g, e.path().string()));
    ++n;
    EXPECT_GT(a.hidden_size, 0);
    EXPECT_GT(a.num_layers, 0);
    EXPECT_GT(a.num_heads, 0);
    EXPECT_EQ(a.hidden_size % a.num_heads, 0);
    EXPECT_EQ(a.head_dim * a.num_heads, a.hidden_size);
    EXPECT_EQ(static_cast<size_t>(a.vocab_size), g->get_strings("tokenizer.ggml.tokens").size());
    EXPECT_NO_THROW((void)a.to_json().dump());
  }
  EXPECT_GE(n, 10);
}

}  // namespace
}  // namespace kaival::weights
