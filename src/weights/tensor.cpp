#include "weights/tensor.h"

#include <fmt/format.h>

namespace kaival::weights {

std::string_view role_kind_name(RoleKind k) {
  switch (k) {
    case RoleKind::Unknown: return "unknown";
    case RoleKind::Embedding: return "embedding";
    case RoleKind::PositionEmbedding: return "position_embedding";
    case RoleKind::TokenTypeEmbedding: return "token_type_embedding";
    case RoleKind::EmbeddingNorm: return "embedding_norm";
    case RoleKind::Head: return "head";
    case RoleKind::FinalNorm: return "final_norm";
    case RoleKind::AttnNorm: return "attn_norm";
    case RoleKind::MlpNorm: return "mlp_norm";
    case RoleKind::PostAttnNorm: return "post_attn_norm";
    case RoleKind::PostMlpNorm: return "post_mlp_norm";
    case RoleKind::AttnQ: return "attn_q";
    case RoleKind::AttnK: return "attn_k";
    case RoleKind::AttnV: return "attn_v";
    case RoleKind::AttnO: return "attn_o";
    case RoleKind::AttnQKV: return "attn_qkv";
    case RoleKind::AttnQNorm: return "attn_q_norm";
    case RoleKind::AttnKNorm: return "attn_k_norm";
    case RoleKind::AttnSinks: return "attn_sinks";
    case RoleKind::MlaQA: return "mla_q_a";
    case RoleKind::MlaQANorm: return "mla_q_a_norm";
    case RoleKind::MlaQB: return "mla_q_b";
    case RoleKind::MlaKVA: return "mla_kv_a";
    case RoleKind::MlaKVANorm: return "mla_kv_a_norm";
    case RoleKind::MlaKVB: return "mla_kv_b";
    case RoleKind::MlpGate: return "mlp_gate";
    case RoleKind::MlpUp: return "mlp_up";
    case RoleKind::MlpDown: return "mlp_down";
    case RoleKind::MlpGateUp: return "mlp_gate_up";
    case RoleKind::Router: return "router";
    case RoleKind::RouterBias: return "router_bias";
    case RoleKind::ExpertGate: return "expert_gate";
    case RoleKind::ExpertUp: return "expert_up";
    case RoleKind::ExpertDown: return "expert_down";
    case RoleKind::ExpertGateUp: return "expert_gate_up";
    case RoleKind::SharedExpertGate: return "shared_expert_gate";
    case RoleKind::SharedExpertUp: return "shared_expert_up";
    case RoleKind::SharedExpertDown: return "shared_expert_down";
    case RoleKind::SharedExpertRouter: return "shared_expert_router";
    case RoleKind::TowerEmbedding: return "tower_embedding";
    case RoleKind::TowerAttn: return "tower_attn";
    case RoleKind::TowerMlp: return "tower_mlp";
    case RoleKind::TowerNorm: return "tower_norm";
    case RoleKind::TowerOther: return "tower_other";
    case RoleKind::Projector: return "projector";
  }
  return "unknown";
}

std::string role_name(const Role& r) {
  std::string out;
  if (r.tower == Tower::Vision) out = "vision.";
  else if (r.tower == Tower::Audio) out = "audio.";
  if (r.layer >= 0) out += fmt::format("layer.{}.", r.layer);
  if (r.expert >= 0) out += fmt::format("expert.{}.", r.expert);
  out += role_kind_name(r.kind);
  if (r.bias) out += ".bias";
  return out;
}

namespace {

enum class Group { Embedding, Head, FinalNorm, Norm, Attn, Mlp, Tower, Projector, Other };

Group group_of(RoleKind k) {
  switch (k) {
    case RoleKind::Embedding:
    case RoleKind::PositionEmbedding:
    case RoleKind::TokenTypeEmbedding:
    case RoleKind::EmbeddingNorm: return Group::Embedding;
    case RoleKind::Head: return Group::Head;
    case RoleKind::FinalNorm: return Group::FinalNorm;
    case RoleKind::AttnNorm:
    case RoleKind::MlpNorm:
    case RoleKind::PostAttnNorm:
    case RoleKind::PostMlpNorm: return Group::Norm;
    case RoleKind::AttnQ:
    case RoleKind::AttnK:
    case RoleKind::AttnV:
    case RoleKind::AttnO:
    case RoleKind::AttnQKV:
    case RoleKind::AttnQNorm:
    case RoleKind::AttnKNorm:
    case RoleKind::AttnSinks:
    case RoleKind::MlaQA:
    case RoleKind::MlaQANorm:
    case RoleKind::MlaQB:
    case RoleKind::MlaKVA:
    case RoleKind::MlaKVANorm:
    case RoleKind::MlaKVB: return Group::Attn;
    case RoleKind::MlpGate:
    case RoleKind::MlpUp:
    case RoleKind::MlpDown:
    case RoleKind::MlpGateUp:
    case RoleKind::Router:
    case RoleKind::RouterBias:
    case RoleKind::ExpertGate:
    case RoleKind::ExpertUp:
    case RoleKind::ExpertDown:
    case RoleKind::ExpertGateUp:
    case RoleKind::SharedExpertGate:
    case RoleKind::SharedExpertUp:
    case RoleKind::SharedExpertDown:
    case RoleKind::SharedExpertRouter: return Group::Mlp;
    case RoleKind::TowerEmbedding:
    case RoleKind::TowerAttn:
    case RoleKind::TowerMlp:
    case RoleKind::TowerNorm:
    case RoleKind::TowerOther: return Group::Tower;
    case RoleKind::Projector: return Group::Projector;
    case RoleKind::Unknown: return Group::Other;
  }
  return Group::Other;
}

}  // namespace

std::string component_name(const Role& r) {
  Group g = group_of(r.kind);
  if (g == Group::Projector) return "projector";
  if (g == Group::Other) return "other";
  // Anything inside a tower belongs to that encoder as a whole: independence
  // is judged per encoder.
  if (r.tower == Tower::Vision) return "vision_encoder";
  if (r.tower == Tower::Audio) return "audio_encoder";
  switch (g) {
    case Group::Embedding: return "embedding";
    case Group::Head: return "head";
    case Group::FinalNorm: return "final_norm";
    case Group::Norm:
      return r.layer >= 0 ? fmt::format("layer.{}.norm", r.layer) : "other";
    case Group::Attn:
      return r.layer >= 0 ? fmt::format("layer.{}.attn", r.layer) : "other";
    case Group::Mlp:
      return r.layer >= 0 ? fmt::format("layer.{}.mlp", r.layer) : "other";
    default: return "other";
  }
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}
int64_t TensorInfo::cols() const { return shape.empty() ? 1 : shape.back(); }
int64_t TensorInfo::rows() const { return cols() == 0 ? 0 : numel() / cols(); }

}  // namespace kaival::weights
