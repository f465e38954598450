#pragma once
// A tensor as a reader describes it, plus its canonical role in the model.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "weights/dtype.h"

namespace kaival::weights {

// Canonical roles: the same weight has different names in every family
// (model.layers.3.self_attn.q_proj.weight, blk.3.attn_q.weight,
// transformer.h.3.attn.c_attn.weight, ...). Lineage and the engine work on roles.
enum class RoleKind : uint8_t {
  Unknown,
  Embedding, PositionEmbedding, TokenTypeEmbedding, EmbeddingNorm, Head, FinalNorm,
  // per layer: norms
  AttnNorm, MlpNorm, PostAttnNorm, PostMlpNorm,
  // per layer: attention
  AttnQ, AttnK, AttnV, AttnO, AttnQKV, AttnQNorm, AttnKNorm, AttnSinks,
  // per layer: multi-head latent attention (DeepSeek-V2/V3)
  MlaQA, MlaQANorm, MlaQB, MlaKVA, MlaKVANorm, MlaKVB,
  // per layer: dense MLP
  MlpGate, MlpUp, MlpDown, MlpGateUp,
  // per layer: mixture of experts (expert index in Role::expert, or -1 when
  // all experts are stacked in one tensor as in GGUF *_exps)
  Router, RouterBias, ExpertGate, ExpertUp, ExpertDown, ExpertGateUp,
  SharedExpertGate, SharedExpertUp, SharedExpertDown, SharedExpertRouter,
  // vision / audio towers and the projector into the language model
  TowerEmbedding, TowerAttn, TowerMlp, TowerNorm, TowerOther, Projector,
};

enum class Tower : uint8_t { Language, Vision, Audio };

struct Role {
  RoleKind kind = RoleKind::Unknown;
  int layer = -1;   // block index, -1 when not per layer
  int expert = -1;  // expert index for MoE experts
  Tower tower = Tower::Language;
  bool bias = false;  // a bias (".bias") rather than a weight
  bool operator==(const Role&) const = default;
};

std::string_view role_kind_name(RoleKind k);  // "attn_q", "mlp_down", ...
// Human/JSON name: "embedding", "layer.3.attn_q", "vision.layer.2.tower_attn",
// "layer.4.expert.7.expert_up", with ".bias" appended for biases.
std::string role_name(const Role& r);
// The component a role belongs to for lineage: "embedding", "head",
// "final_norm", "layer.N.attn", "layer.N.mlp", "layer.N.norm",
// "vision_encoder", "audio_encoder", "projector", "other".
std::string component_name(const Role& r);

struct TensorInfo {
  std::string name;                 // as stored in the file
  DType dtype = DType::Unsupported;
  std::string type_name;            // as the file spells it ("BF16", "Q4_K", "IQ2_XXS")
  std::vector<int64_t> shape;       // outermost first (PyTorch order; GGUF ne[] reversed)
  uint32_t file_index = 0;          // which file of the checkpoint (shard)
  uint64_t offset = 0;              // absolute byte offset of the data in that file
  uint64_t nbytes = 0;
  Role role;
  // Stored transposed relative to the PyTorch nn.Linear [out, in] convention
  // (GPT-2 Conv1D); readers of roles may want to transpose.
  bool transposed = false;
  // llama.cpp's converter permutes Q/K rows of llama-family models for its
  // RoPE layout; when > 0, rows are read back in HF order by undoing the
  // permutation for this many heads.
  int32_t unpermute_heads = 0;

  int64_t numel() const;
  int64_t cols() const;  // last dimension (1 for a scalar)
  int64_t rows() const;  // numel / cols
};

}  // namespace kaival::weights
