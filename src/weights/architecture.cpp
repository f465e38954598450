#include "weights/architecture.h"

#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <string_view>
#include <utility>

#include "core/error.h"
#include "weights/gguf.h"

namespace kaival::weights {
namespace {

using nlohmann::json;

// No real hidden/FFN/vocab/layer/head count comes near this; a larger value is
// a corrupt or hostile file, not a model.
constexpr int64_t kMaxDim = 10'000'000;
// Context lengths legitimately reach 10M (Llama 4 Scout); allow far more.
constexpr int64_t kMaxPositions = 1'000'000'000'000;

// What transformers' config class of a family assumes when config.json leaves
// a key out (gemma-3-4b-it's text_config, for example, omits heads, KV heads,
// head_dim and vocab_size). Zero means "no default".
struct FamilySpec {
  std::string_view model_type;
  std::string_view family;
  std::string_view norm = "rmsnorm";
  std::string_view activation = "silu";
  bool tied = false;
  double eps = 1e-6;
  double theta = 10000.0;
  double local_theta = 0.0;
  double partial_rotary = 1.0;
  int64_t vocab = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t intermediate = 0, max_position = 0;
  int64_t experts = 0, experts_per_token = 0, moe_intermediate = 0;
};

constexpr FamilySpec kFamilies[] = {
    {.model_type = "llama", .family = "llama", .vocab = 32000, .hidden = 4096, .layers = 32,
     .heads = 32, .intermediate = 11008, .max_position = 2048},
    {.model_type = "mistral", .family = "mistral", .vocab = 32000, .hidden = 4096, .layers = 32,
     .heads = 32, .kv_heads = 8, .intermediate = 14336, .max_position = 131072},
    {.model_type = "mixtral", .family = "mixtral", .eps = 1e-5, .theta = 1e6, .vocab = 32000,
     .hidden = 4096, .layers = 32, .heads = 32, .kv_heads = 8, .intermediate = 14336,
     .max_position = 131072, .experts = 8, .experts_per_token = 2},
    {.model_type = "qwen2", .family = "qwen2", .vocab = 151936, .hidden = 4096, .layers = 32,
     .heads = 32, .kv_heads = 32, .intermediate = 22016, .max_position = 32768},
    // Qwen2-VL / Qwen2.5-VL language models are Qwen2 (with M-RoPE).
    {.model_type = "qwen2_vl", .family = "qwen2", .vocab = 152064, .hidden = 8192, .layers = 80,
     .heads = 64, .kv_heads = 8, .intermediate = 29568, .max_position = 32768},
    {.model_type = "qwen2_vl_text", .family = "qwen2", .vocab = 152064, .hidden = 8192,
     .layers = 80, .heads = 64, .kv_heads = 8, .intermediate = 29568, .max_position = 32768},
    {.model_type = "qwen2_5_vl", .family = "qwen2", .vocab = 152064, .hidden = 8192, .layers = 80,
     .heads = 64, .kv_heads = 8, .intermediate = 29568, .max_position = 32768},
    {.model_type = "qwen2_5_vl_text", .family = "qwen2", .vocab = 152064, .hidden = 8192,
     .layers = 80, .heads = 64, .kv_heads = 8, .intermediate = 29568, .max_position = 32768},
    {.model_type = "qwen2_moe", .family = "qwen2_moe", .vocab = 151936, .hidden = 2048,
     .layers = 24, .heads = 16, .kv_heads = 16, .intermediate = 5632, .max_position = 32768,
     .experts = 60, .experts_per_token = 4, .moe_intermediate = 1408},
    {.model_type = "qwen3", .family = "qwen3", .vocab = 151936, .hidden = 4096, .layers = 32,
     .heads = 32, .kv_heads = 32, .head_dim = 128, .intermediate = 22016, .max_position = 32768},
    {.model_type = "qwen3_moe", .family = "qwen3_moe", .vocab = 151936, .hidden = 2048,
     .layers = 24, .heads = 32, .kv_heads = 4, .intermediate = 6144, .max_position = 32768,
     .experts = 128, .experts_per_token = 8, .moe_intermediate = 768},
    {.model_type = "deepseek_v2", .family = "deepseek_v2"},
    {.model_type = "deepseek_v3", .family = "deepseek_v3", .vocab = 129280, .hidden = 7168,
     .layers = 61, .heads = 128, .kv_heads = 128, .intermediate = 18432, .max_position = 4096,
     .experts = 256, .experts_per_token = 8, .moe_intermediate = 2048},
    {.model_type = "gemma", .family = "gemma", .activation = "gelu_pytorch_tanh", .tied = true,
     .vocab = 256000, .hidden = 3072, .layers = 28, .heads = 16, .kv_heads = 16, .head_dim = 256,
     .intermediate = 24576, .max_position = 8192},
    {.model_type = "gemma2", .family = "gemma2", .activation = "gelu_pytorch_tanh", .tied = true,
     .vocab = 256000, .hidden = 2304, .layers = 26, .heads = 8, .kv_heads = 4, .head_dim = 256,
     .intermediate = 9216, .max_position = 8192},
    {.model_type = "gemma3_text", .family = "gemma3", .activation = "gelu_pytorch_tanh",
     .tied = true, .theta = 1e6, .local_theta = 10000.0, .vocab = 262208, .hidden = 2304,
     .layers = 26, .heads = 8, .kv_heads = 4, .head_dim = 256, .intermediate = 9216,
     .max_position = 131072},
    {.model_type = "gemma3", .family = "gemma3", .activation = "gelu_pytorch_tanh", .tied = true,
     .theta = 1e6, .local_theta = 10000.0, .vocab = 262208, .hidden = 2304, .layers = 26,
     .heads = 8, .kv_heads = 4, .head_dim = 256, .intermediate = 9216, .max_position = 131072},
    {.model_type = "phi3", .family = "phi3", .eps = 1e-5, .vocab = 32064, .hidden = 3072,
     .layers = 32, .heads = 32, .intermediate = 8192, .max_position = 4096},
    {.model_type = "phi", .family = "phi", .norm = "layernorm", .activation = "gelu_new",
     .eps = 1e-5, .partial_rotary = 0.5, .vocab = 51200, .hidden = 2048, .layers = 24,
     .heads = 32, .intermediate = 8192, .max_position = 2048},
    {.model_type = "gpt2", .family = "gpt2", .norm = "layernorm", .activation = "gelu_new",
     .tied = true, .eps = 1e-5, .theta = 0.0, .vocab = 50257, .hidden = 768, .layers = 12,
     .heads = 12, .max_position = 1024},
    {.model_type = "gpt_neox", .family = "gpt_neox", .norm = "layernorm", .activation = "gelu",
     .eps = 1e-5, .partial_rotary = 0.25, .vocab = 50432, .hidden = 6144, .layers = 44,
     .heads = 64, .intermediate = 24576, .max_position = 2048},
    {.model_type = "falcon", .family = "falcon", .norm = "layernorm", .activation = "gelu",
     .tied = true, .eps = 1e-5, .vocab = 65024, .hidden = 4544, .layers = 32, .heads = 71,
     .max_position = 2048},
    // Falcon's remote-code releases before transformers adopted it.
    {.model_type = "RefinedWebModel", .family = "falcon", .norm = "layernorm",
     .activation = "gelu", .tied = true, .eps = 1e-5, .vocab = 65024, .hidden = 4544,
     .layers = 32, .heads = 71, .max_position = 2048},
    {.model_type = "RefinedWeb", .family = "falcon", .norm = "layernorm", .activation = "gelu",
     .tied = true, .eps = 1e-5, .vocab = 65024, .hidden = 8192, .layers = 60, .heads = 128,
     .max_position = 2048},
    // EXAONE 3.x names its RMSNorm epsilon layer_norm_epsilon.
    {.model_type = "exaone", .family = "exaone", .tied = true, .eps = 1e-5},
    {.model_type = "exaone4", .family = "exaone4", .eps = 1e-5},
    {.model_type = "gpt_oss", .family = "gpt_oss", .eps = 1e-5, .theta = 150000.0},
};

const FamilySpec* find_family(std::string_view model_type) {
  for (const auto& f : kFamilies)
    if (f.model_type == model_type) return &f;
  return nullptr;
}

// Tower defaults of the encoder config classes, for the same reason.
struct TowerSpec {
  std::string_view model_type;
  int64_t hidden, layers, heads, intermediate, patch, image;
};
constexpr TowerSpec kTowers[] = {
    {"siglip_vision_model", 768, 12, 12, 3072, 16, 224},
    {"clip_vision_model", 768, 12, 12, 3072, 32, 224},
    {"qwen2_audio_encoder", 1280, 32, 20, 5120, 0, 0},
    {"whisper", 384, 4, 6, 1536, 0, 0},
};

// Reads typed values from one JSON object of a config, with an optional outer
// object to fall back on (multimodal configs keep most text keys in
// text_config, a few at the top level). Every type or range problem names the
// file and the full key.
class ConfigReader {
 public:
  ConfigReader(const json& obj, std::string prefix, const std::string& where,
               const ConfigReader* outer = nullptr)
      : obj_(&obj), prefix_(std::move(prefix)), where_(&where), outer_(outer) {}

  struct Found {
    const json* value = nullptr;
    std::string key;  // full path for messages
  };

  // The first non-null value among `keys`, this object before the outer one.
  Found find(std::initializer_list<std::string_view> keys) const {
    for (auto k : keys) {
      auto it = obj_->find(k);
      if (it != obj_->end() && !it->is_null()) return {&*it, prefix_ + std::string(k)};
    }
    return outer_ ? outer_->find(keys) : Found{};
  }

  std::optional<int64_t> integer(std::initializer_list<std::string_view> keys, int64_t lo,
                                 int64_t hi) const {
    auto f = find(keys);
    if (!f.value) return std::nullopt;
    const json& v = *f.value;
    int64_t x = 0;
    if (v.is_number_unsigned()) {
      auto u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(hi)) out_of_range(f.key, v.dump(), lo, hi);
      x = static_cast<int64_t>(u);
    } else if (v.is_number_integer()) {
      x = v.get<int64_t>();
    } else if (v.is_number_float()) {
      // 4096.0 is an integer written by a float-happy serializer; 4096.5 is not.
      double d = v.get<double>();
      if (!std::isfinite(d) || d != std::floor(d))
        fail(*where_, "key '{}': expected an integer, got {}", f.key, v.dump());
      if (d < static_cast<double>(lo) || d > static_cast<double>(hi))
        out_of_range(f.key, v.dump(), lo, hi);
      x = static_cast<int64_t>(d);
    } else {
      fail(*where_, "key '{}': expected an integer, got {}", f.key, v.type_name());
    }
    if (x < lo || x > hi) out_of_range(f.key, std::to_string(x), lo, hi);
    return x;
  }

  std::optional<double> number(std::initializer_list<std::string_view> keys, double lo,
                               double hi) const {
    auto f = find(keys);
    if (!f.value) return std::nullopt;
    if (!f.value->is_number())
      fail(*where_, "key '{}': expected a number, got {}", f.key, f.value->type_name());
    double d = f.value->get<double>();
    if (!std::isfinite(d) || d < lo || d > hi)
      fail(*where_, "key '{}': value {} is out of range [{}, {}]", f.key, f.value->dump(), lo, hi);
    return d;
  }

  std::optional<bool> boolean(std::initializer_list<std::string_view> keys) const {
    auto f = find(keys);
    if (!f.value) return std::nullopt;
    if (!f.value->is_boolean())
      fail(*where_, "key '{}': expected true or false, got {}", f.key, f.value->type_name());
    return f.value->get<bool>();
  }

  std::optional<std::string> string(std::initializer_list<std::string_view> keys) const {
    auto f = find(keys);
    if (!f.value) return std::nullopt;
    if (!f.value->is_string())
      fail(*where_, "key '{}': expected a string, got {}", f.key, f.value->type_name());
    return f.value->get<std::string>();
  }

  // Whether any of `keys` is written at all, null included (Gemma 2 states
  // "no soft-capping" as null, while an absent key means the class default).
  bool present(std::initializer_list<std::string_view> keys) const {
    for (auto k : keys)
      if (obj_->contains(k)) return true;
    return outer_ && outer_->present(keys);
  }

  // An array of strings (layer_types), or nullopt when absent or null.
  std::optional<std::vector<std::string>> strings(std::string_view key) const {
    auto f = find({key});
    if (!f.value) return std::nullopt;
    if (!f.value->is_array()) fail(*where_, "key '{}': expected an array, got {}", f.key, f.value->type_name());
    std::vector<std::string> out;
    for (const auto& e : *f.value) {
      if (!e.is_string()) fail(*where_, "key '{}': expected strings in the array, got {}", f.key, e.type_name());
      out.push_back(e.get<std::string>());
    }
    return out;
  }

  // A nested object (rope_scaling, text_config, ...), or nullopt when absent or null.
  std::optional<ConfigReader> object(std::string_view key) const {
    auto f = find({key});
    if (!f.value) return std::nullopt;
    if (!f.value->is_object())
      fail(*where_, "key '{}': expected an object, got {}", f.key, f.value->type_name());
    return ConfigReader(*f.value, f.key + ".", *where_);
  }

  const std::string& where() const { return *where_; }

  // The same object, falling back on `outer` for keys it lacks.
  ConfigReader with_outer(const ConfigReader* outer) const {
    return ConfigReader(*obj_, prefix_, *where_, outer);
  }

 private:
  [[noreturn]] void out_of_range(const std::string& key, const std::string& v, int64_t lo,
                                 int64_t hi) const {
    fail(*where_, "key '{}': value {} is out of range [{}, {}]", key, v, lo, hi);
  }

  const json* obj_;
  std::string prefix_;
  const std::string* where_;
  const ConfigReader* outer_;
};

void apply_defaults(Architecture& a, const FamilySpec& f) {
  a.family = std::string(f.family);
  a.norm_type = std::string(f.norm);
  a.activation = std::string(f.activation);
  a.tied_embeddings = f.tied;
  a.norm_eps = f.eps;
  a.rope.theta = f.theta;
  a.rope.local_theta = f.local_theta;
  a.rope.partial_rotary_factor = f.partial_rotary;
  a.vocab_size = f.vocab;
  a.hidden_size = f.hidden;
  a.num_layers = f.layers;
  a.num_heads = f.heads;
  a.num_kv_heads = f.kv_heads;
  a.head_dim = f.head_dim;
  a.intermediate_size = f.intermediate;
  a.max_position = f.max_position;
  a.num_experts = f.experts;
  a.experts_per_token = f.experts_per_token;
  a.moe_intermediate_size = f.moe_intermediate;
}

std::string canonical_scaling_type(std::string t) {
  if (t == "default" || t == "none") return "";
  if (t == "su") return "longrope";  // Phi-3's name before transformers renamed it
  return t;
}

void read_rope(const ConfigReader& r, Architecture& a) {
  constexpr double kMaxTheta = 1e12;
  if (auto t = r.number({"rope_theta", "rotary_emb_base", "rope_base"}, 0, kMaxTheta))
    a.rope.theta = *t;
  if (auto p = r.number({"partial_rotary_factor", "rotary_pct"}, 0, 1))
    a.rope.partial_rotary_factor = *p;
  if (auto l = r.number({"rope_local_base_freq"}, 0, kMaxTheta)) a.rope.local_theta = *l;

  // transformers >= 5 folds theta and scaling into rope_parameters; Gemma 3
  // keeps one set per layer type there.
  auto params = r.object("rope_parameters");
  if (params) {
    if (auto local = params->object("sliding_attention"))
      if (auto t = local->number({"rope_theta"}, 0, kMaxTheta)) a.rope.local_theta = *t;
    if (auto global = params->object("full_attention")) params = global;
  }
  if (params) {
    if (auto t = params->number({"rope_theta"}, 0, kMaxTheta)) a.rope.theta = *t;
    if (auto p = params->number({"partial_rotary_factor"}, 0, 1))
      a.rope.partial_rotary_factor = *p;
  }
  auto scaling = r.object("rope_scaling");
  if (!scaling) scaling = params;
  if (!scaling) return;
  a.rope.scaling_type = canonical_scaling_type(scaling->string({"rope_type", "type"}).value_or(""));
  if (auto f = scaling->number({"factor"}, 0, 1e6)) a.rope.factor = *f;
  if (auto f = scaling->number({"low_freq_factor"}, 0, 1e6)) a.rope.low_freq_factor = *f;
  if (auto f = scaling->number({"high_freq_factor"}, 0, 1e6)) a.rope.high_freq_factor = *f;
  auto orig = scaling->integer({"original_max_position_embeddings"}, 0, kMaxPositions);
  // Phi-3 keeps it at the top level.
  if (!orig && !a.rope.scaling_type.empty())
    orig = r.integer({"original_max_position_embeddings"}, 0, kMaxPositions);
  if (orig) a.rope.original_max_position = *orig;
}

TowerConfig read_tower(const ConfigReader& r) {
  TowerConfig t;
  t.model_type = r.string({"model_type"}).value_or("");
  for (const auto& s : kTowers) {
    if (s.model_type != t.model_type) continue;
    t.hidden_size = s.hidden;
    t.num_layers = s.layers;
    t.num_heads = s.heads;
    t.intermediate_size = s.intermediate;
    t.patch_size = s.patch;
    t.image_size = s.image;
  }
  // Qwen2-VL: embed_dim is the tower's width and hidden_size the language
  // model's; the others have no embed_dim.
  if (auto v = r.integer({"embed_dim", "hidden_size", "d_model", "width"}, 1, kMaxDim))
    t.hidden_size = *v;
  if (auto v = r.integer({"num_hidden_layers", "depth", "encoder_layers", "num_layers"}, 0, kMaxDim))
    t.num_layers = *v;
  if (auto v = r.integer({"num_attention_heads", "num_heads", "encoder_attention_heads"}, 1, kMaxDim))
    t.num_heads = *v;
  if (auto v = r.integer({"intermediate_size", "encoder_ffn_dim", "mlp_dim"}, 0, kMaxDim)) {
    t.intermediate_size = *v;
  } else if (auto ratio = r.number({"mlp_ratio"}, 0, 64)) {
    t.intermediate_size = static_cast<int64_t>(std::llround(*ratio * static_cast<double>(t.hidden_size)));
  }
  if (auto v = r.integer({"patch_size", "spatial_patch_size"}, 0, kMaxDim)) t.patch_size = *v;
  if (auto v = r.integer({"image_size"}, 0, kMaxDim)) t.image_size = *v;
  return t;
}

void read_language_model(const ConfigReader& r, Architecture& a) {
  if (auto v = r.integer({"hidden_size", "n_embd", "d_model", "model_dim"}, 1, kMaxDim))
    a.hidden_size = *v;
  if (auto v = r.integer({"num_hidden_layers", "n_layer", "num_layers", "n_layers"}, 1, kMaxDim))
    a.num_layers = *v;
  if (auto v = r.integer({"num_attention_heads", "n_head", "num_heads", "n_heads"}, 1, kMaxDim))
    a.num_heads = *v;
  if (auto v = r.integer({"num_key_value_heads", "num_kv_heads", "n_head_kv", "n_kv_heads"}, 1, kMaxDim))
    a.num_kv_heads = *v;
  if (auto v = r.integer({"head_dim"}, 1, kMaxDim)) a.head_dim = *v;
  if (auto v = r.integer({"intermediate_size", "n_inner", "ffn_hidden_size", "ffn_dim"}, 0, kMaxDim))
    a.intermediate_size = *v;
  if (auto v = r.integer({"vocab_size", "padded_vocab_size"}, 1, kMaxDim)) a.vocab_size = *v;
  if (auto v = r.integer({"max_position_embeddings", "n_positions", "max_sequence_length",
                          "seq_length", "n_ctx"},
                         0, kMaxPositions))
    a.max_position = *v;

  // The epsilon's key says which norm an unknown family uses.
  if (auto e = r.number({"rms_norm_eps", "rms_norm_epsilon"}, 0, 1)) {
    a.norm_eps = *e;
    if (a.family == "unknown") a.norm_type = "rmsnorm";
  } else if (auto e2 = r.number({"layer_norm_eps", "layer_norm_epsilon", "norm_eps"}, 0, 1)) {
    a.norm_eps = *e2;
    if (a.family == "unknown") a.norm_type = "layernorm";
  }
  // Gemma writes both; hidden_activation is the one its modelling code uses.
  if (auto s = r.string({"hidden_activation", "hidden_act", "activation_function"}))
    a.activation = *s;
  if (auto b = r.boolean({"tie_word_embeddings"})) a.tied_embeddings = *b;
  if (auto v = r.integer({"sliding_window"}, 0, kMaxPositions)) a.sliding_window = *v;
  if (r.boolean({"use_sliding_window"}) == false) a.sliding_window = 0;  // Qwen2 keeps the key but disables it
  read_rope(r, a);
  if (auto v = r.number({"query_pre_attn_scalar"}, 0, 1e9)) a.query_pre_attn_scalar = *v;
  if (auto v = r.number({"attn_logit_softcapping"}, 0, 1e9)) a.attn_logit_softcapping = *v;
  if (auto v = r.number({"final_logit_softcapping"}, 0, 1e9)) a.final_logit_softcapping = *v;

  // Mixture of experts.
  if (auto v = r.integer({"num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"}, 0, kMaxDim))
    a.num_experts = *v;
  if (auto v = r.integer({"num_experts_per_tok", "experts_per_token", "moe_top_k"}, 0, kMaxDim))
    a.experts_per_token = *v;
  if (auto v = r.integer({"moe_intermediate_size", "expert_intermediate_size"}, 0, kMaxDim))
    a.moe_intermediate_size = *v;
  if (auto v = r.integer({"n_shared_experts", "num_shared_experts"}, 0, kMaxDim))
    a.num_shared_experts = *v;
  if (auto v = r.integer({"shared_expert_intermediate_size"}, 0, kMaxDim); v && *v > 0 && a.num_shared_experts == 0)
    a.num_shared_experts = 1;  // Qwen2-MoE: one shared expert of that width
  if (auto b = r.boolean({"norm_topk_prob"})) a.norm_topk_prob = *b;

  // Multi-head latent attention.
  if (auto v = r.integer({"q_lora_rank"}, 0, kMaxDim)) a.q_lora_rank = *v;
  if (auto v = r.integer({"kv_lora_rank"}, 0, kMaxDim)) a.kv_lora_rank = *v;
  if (auto v = r.integer({"qk_rope_head_dim"}, 0, kMaxDim)) a.qk_rope_head_dim = *v;
  if (auto v = r.integer({"qk_nope_head_dim"}, 0, kMaxDim)) a.qk_nope_head_dim = *v;
  if (auto v = r.integer({"v_head_dim"}, 0, kMaxDim)) a.v_head_dim = *v;
}

// Quirks that live in code rather than in keys.
void apply_family_rules(const ConfigReader& r, Architecture& a) {
  const std::string& fam = a.family;
  if ((fam == "gpt2" || fam == "falcon") && a.intermediate_size == 0)
    a.intermediate_size = 4 * a.hidden_size;  // n_inner / ffn_hidden_size null means 4x
  if (fam == "gpt_neox") a.parallel_residual = r.boolean({"use_parallel_residual"}).value_or(true);
  if (fam == "phi") a.parallel_residual = true;
  if (fam == "falcon") {
    a.parallel_residual = r.boolean({"parallel_attn"}).value_or(true);
    bool new_arch = r.boolean({"new_decoder_architecture"}).value_or(false);
    bool multi_query = r.boolean({"multi_query"}).value_or(true);
    if (!new_arch) a.num_kv_heads = multi_query ? 1 : a.num_heads;
    if (r.boolean({"alibi"}).value_or(false)) a.rope.theta = 0.0;
  }
  if (fam == "mixtral" && a.moe_intermediate_size == 0) a.moe_intermediate_size = a.intermediate_size;
  if (fam == "mixtral") a.norm_topk_prob = true;  // its router always renormalises
  // Gemma 1's published configs state hidden_act "gelu" and no
  // hidden_activation; GemmaConfig then defaults hidden_activation to
  // gelu_pytorch_tanh, which is what its MLP uses (not exact gelu).
  if (fam == "gemma" && !r.string({"hidden_activation"})) a.activation = "gelu_pytorch_tanh";
  if (fam == "gemma2" || fam == "gemma3") {
    // Gemma2Config / Gemma3TextConfig defaults for keys left out (null in the
    // file means "off" and is kept).
    if (!r.present({"query_pre_attn_scalar"})) a.query_pre_attn_scalar = 256;
    if (fam == "gemma2" && !r.present({"attn_logit_softcapping"})) a.attn_logit_softcapping = 50;
    if (fam == "gemma2" && !r.present({"final_logit_softcapping"})) a.final_logit_softcapping = 30;
    if (!r.present({"sliding_window"})) a.sliding_window = 4096;
    // Which layers are local: layer_types when written, else the pattern
    // (Gemma 2 alternates starting with a local layer; Gemma 3 has
    // sliding_window_pattern - 1 local layers, then a global one).
    a.sliding_layers.assign(static_cast<size_t>(a.num_layers), false);
    if (auto types = r.strings("layer_types")) {
      if (static_cast<int64_t>(types->size()) != a.num_layers)
        fail(r.where(), "layer_types has {} entries for {} layers", types->size(), a.num_layers);
      for (size_t i = 0; i < types->size(); ++i) a.sliding_layers[i] = (*types)[i] == "sliding_attention";
    } else {
      const int64_t pattern =
          fam == "gemma2" ? 2 : r.integer({"sliding_window_pattern"}, 1, kMaxDim).value_or(6);
      for (int64_t i = 0; i < a.num_layers; ++i) a.sliding_layers[static_cast<size_t>(i)] = (i + 1) % pattern != 0;
    }
    if (a.sliding_window == 0) a.sliding_layers.clear();
  }
}

void derive(Architecture& a) {
  if (a.num_kv_heads == 0) a.num_kv_heads = a.num_heads;
  if (a.kv_lora_rank > 0 && a.qk_nope_head_dim + a.qk_rope_head_dim > 0) {
    // MLA: the query/key head is the no-RoPE part plus the RoPE part.
    a.head_dim = a.qk_nope_head_dim + a.qk_rope_head_dim;
  } else if (a.head_dim == 0 && a.num_heads > 0) {
    a.head_dim = a.hidden_size / a.num_heads;
  }
  if (a.num_experts == 0) {
    a.experts_per_token = 0;
    a.moe_intermediate_size = 0;
    a.num_shared_experts = 0;
    a.norm_topk_prob = false;
  }
}

// ---------------------------------------------------------------- GGUF

std::string_view value_type_name(const GgufValue& v) {
  switch (v.type) {
    case GgufType::U8: return "uint8";
    case GgufType::I8: return "int8";
    case GgufType::U16: return "uint16";
    case GgufType::I16: return "int16";
    case GgufType::U32: return "uint32";
    case GgufType::I32: return "int32";
    case GgufType::F32: return "float32";
    case GgufType::BOOL: return "bool";
    case GgufType::STRING: return "string";
    case GgufType::ARRAY: return "array";
    case GgufType::U64: return "uint64";
    case GgufType::I64: return "int64";
    case GgufType::F64: return "float64";
  }
  return "unknown";
}

// A float32 value as the decimal its writer meant (1e-05f is stored as
// 9.99999974e-06): the shortest decimal that rounds to the same float.
double shortest_decimal(double stored) {
  auto f = static_cast<float>(stored);
  if (!std::isfinite(f)) return stored;
  return std::strtod(fmt::format("{}", f).c_str(), nullptr);
}

// Typed access to GGUF metadata that reads the value variant itself, so a
// wrong type in a hostile file is a FormatError naming the key.
class GgufReader {
 public:
  GgufReader(const GgufFile& g, const std::string& where) : g_(g), where_(where) {}

  const GgufValue* find(const std::string& key) const {
    auto it = g_.metadata.find(key);
    return it == g_.metadata.end() ? nullptr : &it->second;
  }

  std::optional<int64_t> integer(const std::string& key, int64_t lo, int64_t hi) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    std::optional<int64_t> x = scalar_int(*v);
    // Per-layer arrays (head counts, FFN widths of OpenELM-style models): the largest.
    if (const auto* arr = std::get_if<std::shared_ptr<GgufArray>>(&v->v); !x && arr && *arr) {
      for (const auto& item : (*arr)->items) {
        auto i = scalar_int(item);
        if (!i) fail(where_, "metadata '{}': expected integers in the array", key);
        if (!x || *i > *x) x = i;
      }
      if (!x) return std::nullopt;
    }
    if (!x) fail(where_, "metadata '{}': expected an integer, got {}", key, value_type_name(*v));
    if (*x < lo || *x > hi)
      fail(where_, "metadata '{}': value {} is out of range [{}, {}]", key, *x, lo, hi);
    return x;
  }

  std::optional<double> number(const std::string& key, double lo, double hi) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    double d = 0;
    if (const auto* f = std::get_if<double>(&v->v)) d = v->type == GgufType::F32 ? shortest_decimal(*f) : *f;
    else if (const auto* u = std::get_if<uint64_t>(&v->v)) d = static_cast<double>(*u);
    else if (const auto* i = std::get_if<int64_t>(&v->v)) d = static_cast<double>(*i);
    else fail(where_, "metadata '{}': expected a number, got {}", key, value_type_name(*v));
    if (!std::isfinite(d) || d < lo || d > hi)
      fail(where_, "metadata '{}': value {} is out of range [{}, {}]", key, d, lo, hi);
    return d;
  }

  std::optional<std::string> string(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    const auto* s = std::get_if<std::string>(&v->v);
    if (!s) fail(where_, "metadata '{}': expected a string, got {}", key, value_type_name(*v));
    return *s;
  }

  std::optional<size_t> array_length(const std::string& key) const {
    const GgufValue* v = find(key);
    if (!v) return std::nullopt;
    const auto* arr = std::get_if<std::shared_ptr<GgufArray>>(&v->v);
    if (!arr || !*arr) fail(where_, "metadata '{}': expected an array, got {}", key, value_type_name(*v));
    return (*arr)->items.size();
  }

 private:
  std::optional<int64_t> scalar_int(const GgufValue& v) const {
    if (const auto* u = std::get_if<uint64_t>(&v.v)) {
      if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::numeric_limits<int64_t>::max();
      return static_cast<int64_t>(*u);
    }
    if (const auto* i = std::get_if<int64_t>(&v.v)) return *i;
    return std::nullopt;
  }

  const GgufFile& g_;
  const std::string& where_;
};

// general.architecture is free text from the file; keep it printable for JSON.
std::string printable(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 64)) {
    auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7f) ? c : '?';
  }
  return out;
}

std::string lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// llama.cpp architecture names -> canonical family (HF model_type spelling).
std::string gguf_family(const std::string& arch) {
  static constexpr std::pair<std::string_view, std::string_view> kMap[] = {
      {"llama", "llama"},       {"qwen2", "qwen2"},         {"qwen2moe", "qwen2_moe"},
      {"qwen2vl", "qwen2"},     {"qwen3", "qwen3"},         {"qwen3moe", "qwen3_moe"},
      {"gemma", "gemma"},       {"gemma2", "gemma2"},       {"gemma3", "gemma3"},
      {"phi3", "phi3"},         {"phi2", "phi"},            {"gpt2", "gpt2"},
      {"gptneox", "gpt_neox"},  {"falcon", "falcon"},       {"exaone", "exaone"},
      {"exaone4", "exaone4"},   {"deepseek2", "deepseek_v2"}, {"gpt-oss", "gpt_oss"},
      {"clip", "clip"},
  };
  for (auto [k, v] : kMap)
    if (k == arch) return std::string(v);
  return "unknown";
}

std::optional<TowerConfig> gguf_tower(const GgufReader& r, const std::string& prefix) {
  auto hidden = r.integer(prefix + ".embedding_length", 1, kMaxDim);
  if (!hidden) return std::nullopt;
  TowerConfig t;
  t.model_type = printable(r.string("clip.projector_type").value_or(
      r.string(prefix + ".projector_type").value_or("clip")));
  t.hidden_size = *hidden;
  t.num_layers = r.integer(prefix + ".block_count", 0, kMaxDim).value_or(0);
  t.num_heads = r.integer(prefix + ".attention.head_count", 0, kMaxDim).value_or(0);
  t.intermediate_size = r.integer(prefix + ".feed_forward_length", 0, kMaxDim).value_or(0);
  t.patch_size = r.integer(prefix + ".patch_size", 0, kMaxDim).value_or(0);
  t.image_size = r.integer(prefix + ".image_size", 0, kMaxDim).value_or(0);
  return t;
}

}  // namespace

Architecture architecture_from_config(const json& config, const std::string& where) {
  if (!config.is_object()) fail(where, "config is not a JSON object (got {})", config.type_name());
  ConfigReader top(config, "", where);
  Architecture a;
  a.model_type = top.string({"model_type"}).value_or("");

  // Multimodal wrappers (LLaVA, Gemma 3, Qwen2-Audio, ...) describe the
  // language model in text_config; its model_type names the family.
  auto text = top.object("text_config");
  std::string family_type = a.model_type;
  if (text) family_type = text->string({"model_type"}).value_or(a.model_type);
  if (const FamilySpec* f = find_family(family_type)) apply_defaults(a, *f);
  else if (const FamilySpec* f2 = find_family(a.model_type)) apply_defaults(a, *f2);

  if (text) {
    // text_config first, then the top level for keys it leaves out.
    ConfigReader inner = text->with_outer(&top);
    read_language_model(inner, a);
    apply_family_rules(inner, a);
  } else {
    read_language_model(top, a);
    apply_family_rules(top, a);
  }
  derive(a);

  if (auto v = top.object("vision_config")) a.vision = read_tower(*v);
  if (auto au = top.object("audio_config")) a.audio = read_tower(*au);
  return a;
}

Architecture architecture_from_gguf(const GgufFile& gguf, const std::string& where) {
  GgufReader r(gguf, where);
  Architecture a;
  auto arch_name = r.string("general.architecture");
  if (!arch_name) fail(where, "GGUF metadata has no general.architecture");
  const std::string arch = *arch_name;
  a.model_type = printable(arch);
  std::string family = gguf_family(arch);

  // The llama.cpp architecture "llama" also carries Mistral and Mixtral.
  auto experts = r.integer(arch + ".expert_count", 0, kMaxDim);
  if (family == "llama") {
    std::string name = lower(r.string("general.basename").value_or(r.string("general.name").value_or("")));
    if (experts && *experts > 0) family = "mixtral";
    else if (name.find("mistral") != std::string::npos) family = "mistral";
  }
  // deepseek2 covers V2 and V3; V3 routes with sigmoid scores (gating func 2).
  if (family == "deepseek_v2" && r.integer(arch + ".expert_gating_func", 0, 100).value_or(0) == 2)
    family = "deepseek_v3";

  if (const FamilySpec* f = find_family(family)) {
    apply_defaults(a, *f);
    // Only the family's habits, not its config-class sizes: GGUF states sizes.
    a.vocab_size = a.hidden_size = a.num_layers = a.num_heads = a.num_kv_heads = a.head_dim = 0;
    a.intermediate_size = a.max_position = a.num_experts = a.experts_per_token = 0;
    a.moe_intermediate_size = 0;
    a.rope.partial_rotary_factor = 1.0;  // rope.dimension_count says
  }
  a.family = family;

  const std::string p = arch + ".";
  a.hidden_size = r.integer(p + "embedding_length", 1, kMaxDim).value_or(0);
  a.num_layers = r.integer(p + "block_count", 1, kMaxDim).value_or(0);
  a.num_heads = r.integer(p + "attention.head_count", 1, kMaxDim).value_or(0);
  a.num_kv_heads = r.integer(p + "attention.head_count_kv", 1, kMaxDim).value_or(0);
  a.intermediate_size = r.integer(p + "feed_forward_length", 0, kMaxDim).value_or(0);
  a.max_position = r.integer(p + "context_length", 0, kMaxPositions).value_or(0);
  if (auto e = r.number(p + "attention.layer_norm_rms_epsilon", 0, 1)) {
    a.norm_type = "rmsnorm";
    a.norm_eps = *e;
  } else if (auto e2 = r.number(p + "attention.layer_norm_epsilon", 0, 1)) {
    a.norm_type = "layernorm";
    a.norm_eps = *e2;
  }
  if (auto t = r.number(p + "rope.freq_base", 0, 1e12)) a.rope.theta = *t;
  if (auto t = r.number(p + "rope.freq_base_swa", 0, 1e12)) a.rope.local_theta = *t;
  if (auto s = r.string(p + "rope.scaling.type")) a.rope.scaling_type = canonical_scaling_type(printable(*s));
  if (auto f = r.number(p + "rope.scaling.factor", 0, 1e6)) a.rope.factor = *f;
  // Phi-3 files carry the original length without any scaling; as in
  // config.json it only means something next to a scaling type.
  if (auto o = r.integer(p + "rope.scaling.original_context_length", 0, kMaxPositions);
      o && !a.rope.scaling_type.empty())
    a.rope.original_max_position = *o;
  if (auto w = r.integer(p + "attention.sliding_window", 0, kMaxPositions)) a.sliding_window = *w;
  if (auto v = r.number(p + "attn_logit_softcapping", 0, 1e9)) a.attn_logit_softcapping = *v;
  if (auto v = r.number(p + "final_logit_softcapping", 0, 1e9)) a.final_logit_softcapping = *v;

  a.num_experts = experts.value_or(0);
  a.experts_per_token = r.integer(p + "expert_used_count", 0, kMaxDim).value_or(0);
  a.moe_intermediate_size = r.integer(p + "expert_feed_forward_length", 0, kMaxDim).value_or(0);
  a.num_shared_experts = r.integer(p + "expert_shared_count", 0, kMaxDim).value_or(0);
  if (a.family == "mixtral" && a.moe_intermediate_size == 0) a.moe_intermediate_size = a.intermediate_size;
  // llama.cpp renormalises Mixtral's and Qwen3-MoE's top-k weights (no key says so).
  a.norm_topk_prob = a.family == "mixtral" || a.family == "qwen3_moe";

  // MLA: newer converters write the per-head sizes as *_mla and the absorbed
  // (kv_lora_rank + rope) sizes as key_length.
  a.q_lora_rank = r.integer(p + "attention.q_lora_rank", 0, kMaxDim).value_or(0);
  a.kv_lora_rank = r.integer(p + "attention.kv_lora_rank", 0, kMaxDim).value_or(0);
  auto key_len = r.integer(p + "attention.key_length_mla", 1, kMaxDim);
  if (!key_len) key_len = r.integer(p + "attention.key_length", 1, kMaxDim);
  auto value_len = r.integer(p + "attention.value_length_mla", 1, kMaxDim);
  if (!value_len) value_len = r.integer(p + "attention.value_length", 1, kMaxDim);
  auto rope_dims = r.integer(p + "rope.dimension_count", 0, kMaxDim);
  if (key_len) a.head_dim = *key_len;
  if (a.kv_lora_rank > 0) {
    a.qk_rope_head_dim = rope_dims.value_or(0);
    a.qk_nope_head_dim = a.head_dim > a.qk_rope_head_dim ? a.head_dim - a.qk_rope_head_dim : 0;
    a.v_head_dim = value_len.value_or(0);
  }

  if (auto v = r.integer(p + "vocab_size", 1, kMaxDim)) a.vocab_size = *v;
  else if (auto n = r.array_length("tokenizer.ggml.tokens")) a.vocab_size = static_cast<int64_t>(*n);

  // Tied embeddings are visible only as a missing output tensor.
  const TensorInfo* embd = nullptr;
  bool has_output = false;
  for (const auto& t : gguf.tensors) {
    if (t.name == "token_embd.weight") embd = &t;
    if (t.name == "output.weight") has_output = true;
  }
  if (embd) {
    a.tied_embeddings = !has_output;
    if (a.vocab_size == 0 && embd->shape.size() == 2) a.vocab_size = embd->shape[0];
  }

  derive(a);
  if ((a.family == "gemma2" || a.family == "gemma3") && a.num_heads > 0) {
    // GGUF states neither the attention scale nor which layers are local;
    // like llama.cpp: 1/sqrt(head_dim), except the 27B models (46 / 62
    // layers) whose query_pre_attn_scalar is hidden / heads, and the local
    // layer pattern of each family (alternating; five local, one global).
    const bool is_27b = a.num_layers == (a.family == "gemma2" ? 46 : 62);
    a.query_pre_attn_scalar =
        static_cast<double>(is_27b ? a.hidden_size / a.num_heads : a.head_dim);
    if (a.sliding_window > 0) {
      const int64_t pattern = a.family == "gemma2" ? 2 : 6;
      a.sliding_layers.assign(static_cast<size_t>(a.num_layers), false);
      for (int64_t i = 0; i < a.num_layers; ++i) a.sliding_layers[static_cast<size_t>(i)] = (i + 1) % pattern != 0;
    }
  }
  if (rope_dims && a.kv_lora_rank == 0 && a.head_dim > 0 && *rope_dims > 0 && *rope_dims < a.head_dim)
    a.rope.partial_rotary_factor = static_cast<double>(*rope_dims) / static_cast<double>(a.head_dim);

  a.vision = gguf_tower(r, "clip.vision");
  a.audio = gguf_tower(r, "clip.audio");
  return a;
}

nlohmann::json TowerConfig::to_json() const {
  return {{"model_type", model_type},   {"hidden_size", hidden_size},
          {"num_layers", num_layers},   {"num_heads", num_heads},
          {"intermediate_size", intermediate_size}, {"patch_size", patch_size},
          {"image_size", image_size}};
}

nlohmann::json Architecture::to_json() const {
  json j = {
      {"family", family},
      {"model_type", model_type},
      {"hidden_size", hidden_size},
      {"num_layers", num_layers},
      {"num_heads", num_heads},
      {"num_kv_heads", num_kv_heads},
      {"head_dim", head_dim},
      {"intermediate_size", intermediate_size},
      {"vocab_size", vocab_size},
      {"max_position", max_position},
      {"rope",
       {{"theta", rope.theta},
        {"scaling_type", rope.scaling_type},
        {"factor", rope.factor},
        {"low_freq_factor", rope.low_freq_factor},
        {"high_freq_factor", rope.high_freq_factor},
        {"original_max_position", rope.original_max_position},
        {"partial_rotary_factor", rope.partial_rotary_factor},
        {"local_theta", rope.local_theta}}},
      {"norm_type", norm_type},
      {"norm_eps", norm_eps},
      {"activation", activation},
      {"tied_embeddings", tied_embeddings},
      {"sliding_window", sliding_window},
      {"sliding_layers", sliding_layers},
      {"query_pre_attn_scalar", query_pre_attn_scalar},
      {"attn_logit_softcapping", attn_logit_softcapping},
      {"final_logit_softcapping", final_logit_softcapping},
      {"parallel_residual", parallel_residual},
      {"num_experts", num_experts},
      {"experts_per_token", experts_per_token},
      {"moe_intermediate_size", moe_intermediate_size},
      {"num_shared_experts", num_shared_experts},
      {"norm_topk_prob", norm_topk_prob},
      {"q_lora_rank", q_lora_rank},
      {"kv_lora_rank", kv_lora_rank},
      {"qk_rope_head_dim", qk_rope_head_dim},
      {"qk_nope_head_dim", qk_nope_head_dim},
      {"v_head_dim", v_head_dim},
  };
  j["vision"] = vision ? vision->to_json() : json(nullptr);
  j["audio"] = audio ? audio->to_json() : json(nullptr);
  return j;
}

}  // namespace kaival::weights
