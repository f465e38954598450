#pragma once
// One architecture description for every family, from config.json or GGUF
// metadata.
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <vector>

#include "weights/tensor.h"

namespace kaival::weights {

class GgufFile;

struct RopeConfig {
  double theta = 10000.0;  // 0 when the family has no RoPE (GPT-2, ALiBi Falcon)
  std::string scaling_type;  // "", "linear", "dynamic", "yarn", "llama3", "longrope"
  double factor = 1.0;
  double low_freq_factor = 0.0;
  double high_freq_factor = 0.0;
  int64_t original_max_position = 0;
  double partial_rotary_factor = 1.0;
  double local_theta = 0.0;  // Gemma 3 sliding-window layers
};

struct TowerConfig {
  std::string model_type;  // "siglip_vision_model", "whisper_encoder", ...
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t intermediate_size = 0;
  int64_t patch_size = 0;
  int64_t image_size = 0;

  nlohmann::json to_json() const;
};

struct Architecture {
  std::string family = "unknown";  // canonical: llama, mistral, mixtral, qwen2, qwen3, qwen3_moe,
                                   // deepseek_v3, gemma2, gemma3, phi3, gpt2, gpt_neox, falcon, exaone, ...
  std::string model_type;          // as written in the source (config model_type / general.architecture)
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;
  int64_t vocab_size = 0;
  int64_t max_position = 0;
  RopeConfig rope;
  std::string norm_type = "rmsnorm";  // "rmsnorm" | "layernorm"
  double norm_eps = 1e-6;
  std::string activation;             // "silu", "gelu", "gelu_pytorch_tanh", ...
  bool tied_embeddings = false;
  int64_t sliding_window = 0;      // 0 = full attention everywhere
  // Layers that use the sliding window when only some do (Gemma 2: even
  // layers; Gemma 3: five of every six); empty = every layer alike.
  std::vector<bool> sliding_layers;
  // Gemma 2/3: attention scores scaled by query_pre_attn_scalar^-0.5 (0 =
  // head_dim), and tanh soft-capping of scores and final logits (0 = none).
  double query_pre_attn_scalar = 0.0;
  double attn_logit_softcapping = 0.0;
  double final_logit_softcapping = 0.0;
  bool parallel_residual = false;  // attention and MLP read the same input (GPT-NeoX, Falcon)
  // Mixture of experts
  int64_t num_experts = 0;
  int64_t experts_per_token = 0;
  int64_t moe_intermediate_size = 0;
  int64_t num_shared_experts = 0;
  // Top-k routing weights renormalised to sum 1 (Mixtral always; Qwen-MoE's
  // norm_topk_prob).
  bool norm_topk_prob = false;
  // Multi-head latent attention (DeepSeek-V2/V3)
  int64_t q_lora_rank = 0;
  int64_t kv_lora_rank = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t qk_nope_head_dim = 0;
  int64_t v_head_dim = 0;
  std::optional<TowerConfig> vision;
  std::optional<TowerConfig> audio;

  nlohmann::json to_json() const;
};

// `where` names the file for error messages. Unknown model types still give a
// description from the common keys, with family "unknown".
Architecture architecture_from_config(const nlohmann::json& config, const std::string& where);
Architecture architecture_from_gguf(const GgufFile& gguf, const std::string& where);

// Assigns TensorInfo::role (and transposed / unpermute_heads where the
// family needs it) for every tensor, by the naming scheme of `arch.family`
// (HF names) or GGUF's blk.N.* names.
void assign_roles(std::vector<TensorInfo>& tensors, const Architecture& arch, bool gguf_names);

}  // namespace kaival::weights
