// Canonical roles from tensor names. Every family spells the same weight
// differently; the parts of a name are: an optional tower or projector prefix,
// a block container with its index (layers.N, h.N, blk.N, blocks.N, ...), and
// the path inside the block, looked up in one table of all known spellings.
#include <charconv>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "weights/architecture.h"

namespace kaival::weights {
namespace {

using K = RoleKind;

std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t dot = s.find('.', start);
    out.push_back(s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return out;
}

// A block or expert index: 1-9 decimal digits (anything longer is not a real
// index and must not overflow `int`).
bool parse_index(std::string_view s, int& out) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  std::from_chars(s.data(), s.data() + s.size(), out);
  return true;
}

bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }
bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

bool is_container(std::string_view s) {
  return s == "layers" || s == "layer" || s == "h" || s == "blocks" || s == "blk" || s == "block" ||
         s == "resblocks";
}

// Paths inside a language-model block, HF and GGUF spellings together (they
// do not collide). "experts.*" stands for an expert index.
const std::unordered_map<std::string_view, RoleKind>& block_table() {
  static const std::unordered_map<std::string_view, RoleKind> table = {
      // Llama / Mistral / Qwen / Gemma / Phi-3 / DeepSeek / EXAONE 4 (HF)
      {"self_attn.q_proj", K::AttnQ},
      {"self_attn.k_proj", K::AttnK},
      {"self_attn.v_proj", K::AttnV},
      {"self_attn.o_proj", K::AttnO},
      {"self_attn.qkv_proj", K::AttnQKV},
      {"self_attn.q_norm", K::AttnQNorm},
      {"self_attn.k_norm", K::AttnKNorm},
      {"self_attn.q_layernorm", K::AttnQNorm},
      {"self_attn.k_layernorm", K::AttnKNorm},
      {"self_attn.sinks", K::AttnSinks},
      {"self_attn.dense", K::AttnO},  // Phi-1/2
      {"self_attn.q_a_proj", K::MlaQA},
      {"self_attn.q_a_layernorm", K::MlaQANorm},
      {"self_attn.q_b_proj", K::MlaQB},
      {"self_attn.kv_a_proj_with_mqa", K::MlaKVA},
      {"self_attn.kv_a_layernorm", K::MlaKVANorm},
      {"self_attn.kv_b_proj", K::MlaKVB},
      {"mlp.gate_proj", K::MlpGate},
      {"mlp.up_proj", K::MlpUp},
      {"mlp.down_proj", K::MlpDown},
      {"mlp.gate_up_proj", K::MlpGateUp},
      {"mlp.fc1", K::MlpUp},
      {"mlp.fc2", K::MlpDown},
      {"input_layernorm", K::AttnNorm},
      {"post_attention_layernorm", K::MlpNorm},  // PostAttnNorm in post-norm families
      {"pre_feedforward_layernorm", K::MlpNorm},
      {"post_feedforward_layernorm", K::PostMlpNorm},
      // Mixtral
      {"block_sparse_moe.gate", K::Router},
      {"block_sparse_moe.experts.*.w1", K::ExpertGate},
      {"block_sparse_moe.experts.*.w3", K::ExpertUp},
      {"block_sparse_moe.experts.*.w2", K::ExpertDown},
      // Qwen2/3-MoE, DeepSeek, OLMoE, gpt-oss
      {"mlp.gate", K::Router},
      {"mlp.router", K::Router},
      {"mlp.gate.e_score_correction_bias", K::RouterBias},
      {"mlp.experts.*.gate_proj", K::ExpertGate},
      {"mlp.experts.*.up_proj", K::ExpertUp},
      {"mlp.experts.*.down_proj", K::ExpertDown},
      {"mlp.experts.gate_up_proj", K::ExpertGateUp},  // stacked (gpt-oss)
      {"mlp.experts.down_proj", K::ExpertDown},
      {"mlp.shared_experts.gate_proj", K::SharedExpertGate},
      {"mlp.shared_experts.up_proj", K::SharedExpertUp},
      {"mlp.shared_experts.down_proj", K::SharedExpertDown},
      {"mlp.shared_expert.gate_proj", K::SharedExpertGate},
      {"mlp.shared_expert.up_proj", K::SharedExpertUp},
      {"mlp.shared_expert.down_proj", K::SharedExpertDown},
      {"mlp.shared_expert_gate", K::SharedExpertRouter},
      // GPT-2 (Conv1D) and EXAONE 3.x
      {"attn.c_attn", K::AttnQKV},
      {"attn.c_proj", K::AttnO},
      {"mlp.c_fc", K::MlpUp},
      {"mlp.c_proj", K::MlpDown},
      {"mlp.c_fc_0", K::MlpGate},
      {"mlp.c_fc_1", K::MlpUp},
      {"ln_1", K::AttnNorm},
      {"ln_2", K::MlpNorm},
      {"attn.attention.q_proj", K::AttnQ},
      {"attn.attention.k_proj", K::AttnK},
      {"attn.attention.v_proj", K::AttnV},
      {"attn.attention.out_proj", K::AttnO},
      // GPT-NeoX and Falcon
      {"attention.query_key_value", K::AttnQKV},
      {"attention.dense", K::AttnO},
      {"self_attention.query_key_value", K::AttnQKV},
      {"self_attention.dense", K::AttnO},
      {"mlp.dense_h_to_4h", K::MlpUp},
      {"mlp.dense_4h_to_h", K::MlpDown},
      {"ln_attn", K::AttnNorm},
      {"ln_mlp", K::MlpNorm},
      // Meta's original consolidated checkpoints
      {"attention.wq", K::AttnQ},
      {"attention.wk", K::AttnK},
      {"attention.wv", K::AttnV},
      {"attention.wo", K::AttnO},
      {"feed_forward.w1", K::MlpGate},
      {"feed_forward.w3", K::MlpUp},
      {"feed_forward.w2", K::MlpDown},
      {"attention_norm", K::AttnNorm},
      {"ffn_norm", K::MlpNorm},  // also GGUF
      // GGUF (llama.cpp)
      {"attn_q", K::AttnQ},
      {"attn_k", K::AttnK},
      {"attn_v", K::AttnV},
      {"attn_output", K::AttnO},
      {"attn_qkv", K::AttnQKV},
      {"attn_q_norm", K::AttnQNorm},
      {"attn_k_norm", K::AttnKNorm},
      {"attn_sinks", K::AttnSinks},
      {"attn_norm", K::AttnNorm},
      {"attn_norm_2", K::MlpNorm},  // Falcon-40B's ln_mlp
      {"post_attention_norm", K::PostAttnNorm},
      {"post_ffw_norm", K::PostMlpNorm},
      {"attn_q_a", K::MlaQA},
      {"attn_q_a_norm", K::MlaQANorm},
      {"attn_q_b", K::MlaQB},
      {"attn_kv_a_mqa", K::MlaKVA},
      {"attn_kv_a_norm", K::MlaKVANorm},
      {"attn_kv_b", K::MlaKVB},
      {"ffn_gate", K::MlpGate},
      {"ffn_up", K::MlpUp},  // packed gate_up for Phi-3
      {"ffn_down", K::MlpDown},
      {"ffn_gate_inp", K::Router},
      {"exp_probs_b", K::RouterBias},
      {"ffn_gate_exps", K::ExpertGate},
      {"ffn_up_exps", K::ExpertUp},
      {"ffn_down_exps", K::ExpertDown},
      {"ffn_gate_up_exps", K::ExpertGateUp},
      {"ffn_gate_shexp", K::SharedExpertGate},
      {"ffn_up_shexp", K::SharedExpertUp},
      {"ffn_down_shexp", K::SharedExpertDown},
      {"ffn_gate_inp_shexp", K::SharedExpertRouter},
  };
  return table;
}

// Language-model tensors outside the blocks, by their last name part.
RoleKind top_level_kind(const std::vector<std::string_view>& segs) {
  static const std::unordered_map<std::string_view, RoleKind> table = {
      {"embed_tokens", K::Embedding},
      {"wte", K::Embedding},
      {"word_embeddings", K::Embedding},
      {"embed_in", K::Embedding},
      {"tok_embeddings", K::Embedding},
      {"token_embd", K::Embedding},
      {"lm_head", K::Head},
      {"embed_out", K::Head},
      {"norm", K::FinalNorm},
      {"ln_f", K::FinalNorm},
      {"final_layer_norm", K::FinalNorm},
      {"final_layernorm", K::FinalNorm},
      {"output_norm", K::FinalNorm},
      {"norm_f", K::FinalNorm},
      {"final_norm", K::FinalNorm},
      {"wpe", K::PositionEmbedding},
      {"embed_positions", K::PositionEmbedding},
      {"position_embd", K::PositionEmbedding},
      {"position_embeddings", K::PositionEmbedding},
      {"token_type_embeddings", K::TokenTypeEmbedding},
      {"token_types", K::TokenTypeEmbedding},
      {"word_embeddings_layernorm", K::EmbeddingNorm},
      {"token_embd_norm", K::EmbeddingNorm},
      {"embed_layer_norm", K::EmbeddingNorm},
      {"emb_ln", K::EmbeddingNorm},
  };
  if (segs.empty()) return K::Unknown;
  std::string_view last = segs.back();
  // "output" alone is GGUF's and Meta's head; elsewhere the word means little.
  if (last == "output" && segs.size() == 1) return K::Head;
  if (last == "LayerNorm" && segs.size() >= 2 && segs[segs.size() - 2] == "embeddings")
    return K::EmbeddingNorm;  // BERT-style
  auto it = table.find(last);
  return it == table.end() ? K::Unknown : it->second;
}

// "norm", "layernorm", CLIP's "pre_layrnorm", and "ln" as a word: ln_1, ln2,
// post_ln (but not "linear").
bool is_norm_part(std::string_view s) {
  if (contains(s, "norm") || contains(s, "layrnorm")) return true;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('_', start);
    if (end == std::string_view::npos) end = s.size();
    std::string_view word = s.substr(start, end - start);
    if (starts_with(word, "ln") && word.find_first_not_of("0123456789", 2) == std::string_view::npos) return true;
    start = end + 1;
  }
  return false;
}

// Inside an encoder block of a vision or audio tower.
RoleKind tower_block_kind(const std::vector<std::string_view>& inner) {
  if (inner.empty()) return K::TowerOther;
  if (is_norm_part(inner.back())) return K::TowerNorm;
  static constexpr std::string_view kAttnLeaves[] = {"q_proj", "k_proj", "v_proj", "out_proj", "qkv",
                                                     "query", "key", "value", "wq", "wk", "wv", "wo"};
  static constexpr std::string_view kMlpLeaves[] = {"gate_proj", "up_proj", "down_proj", "w1", "w2",
                                                    "w3", "c_fc", "c_proj"};
  for (auto s : inner)
    if (contains(s, "attn") || contains(s, "attention")) return K::TowerAttn;
  for (auto l : kAttnLeaves)
    if (inner.back() == l) return K::TowerAttn;
  for (auto s : inner)
    if (contains(s, "mlp") || contains(s, "ffn") || contains(s, "feed_forward") || starts_with(s, "fc") ||
        s == "intermediate" || s == "output")
      return K::TowerMlp;
  for (auto l : kMlpLeaves)
    if (inner.back() == l) return K::TowerMlp;
  return K::TowerOther;
}

// Tower tensors outside the blocks: stem (patch/position/class embeddings,
// audio convolutions), pre/post norms, pooling heads.
RoleKind tower_top_kind(const std::vector<std::string_view>& segs) {
  if (segs.empty()) return K::TowerOther;
  if (is_norm_part(segs.back())) return K::TowerNorm;
  for (auto s : segs)
    if (contains(s, "embed") || contains(s, "embd") || contains(s, "patch") || contains(s, "pos") ||
        contains(s, "class") || contains(s, "cls") || contains(s, "conv"))
      return K::TowerEmbedding;
  return K::TowerOther;
}

bool is_projector_part(std::string_view s) {
  return contains(s, "projector") || s == "merger" || s == "connector" || s == "aligner" ||
         s == "vision_projection" || s == "audio_projection" || s == "embed_vision" ||
         s == "embed_audio";
}

enum class Place { Language, Vision, Audio };

Place tower_of_part(std::string_view s) {
  if (contains(s, "audio") || contains(s, "speech") || contains(s, "whisper")) return Place::Audio;
  if (contains(s, "vision") || contains(s, "visual") || s == "vit" || s == "vpm" || s == "image_encoder" ||
      contains(s, "siglip"))
    return Place::Vision;
  return Place::Language;
}

Tower to_tower(Place p) {
  return p == Place::Vision ? Tower::Vision : p == Place::Audio ? Tower::Audio : Tower::Language;
}

struct Context {
  const Architecture& arch;
  bool gguf;
  bool post_norm;  // post_attention_layernorm normalises the attention output (Gemma 2/3, EXAONE 4, OLMo 2)
};

struct Classified {
  Role role;
  bool gguf_ffn_up = false;
};

Classified classify(std::string_view name, const Context& ctx) {
  Classified out;
  Role& r = out.role;
  std::vector<std::string_view> segs = split(name);
  if (segs.back() == "weight" && segs.size() > 1) {
    segs.pop_back();
  } else if (segs.back() == "bias" && segs.size() > 1) {
    segs.pop_back();
    r.bias = true;
  } else if (segs.size() > 1 && segs[segs.size() - 2] == "experts" && segs.back().ends_with("_bias")) {
    segs.back().remove_suffix(5);  // gpt-oss stacked experts: mlp.experts.gate_up_proj_bias
    r.bias = true;
  }

  // Split at the block container.
  std::vector<std::string_view> prefix = segs, inner;
  for (size_t i = 0; i + 1 < segs.size(); ++i) {
    int idx = 0;
    if (is_container(segs[i]) && parse_index(segs[i + 1], idx)) {
      r.layer = idx;
      prefix.assign(segs.begin(), segs.begin() + static_cast<std::ptrdiff_t>(i));
      inner.assign(segs.begin() + static_cast<std::ptrdiff_t>(i) + 2, segs.end());
      break;
    }
  }

  // Projectors and towers are recognised by their prefix.
  Place place = Place::Language;
  bool projector = false;
  if (ctx.gguf && !prefix.empty()) {
    if (prefix[0] == "v") place = Place::Vision;
    else if (prefix[0] == "a") place = Place::Audio;
    else if (prefix[0] == "mm") projector = true;
    if (projector && prefix.size() > 1 && prefix[1] == "a") place = Place::Audio;
  }
  if (!ctx.gguf) {
    for (auto s : prefix) {
      if (is_projector_part(s)) projector = true;
      if (place == Place::Language) place = tower_of_part(s);
    }
    if (!prefix.empty() && prefix[0] == "mlp1") projector = true;  // InternVL
  }
  if (projector) {
    // A standalone projector feeds the language model from the model's only
    // kind of tower (Qwen2-Audio's multi_modal_projector is audio).
    if (place == Place::Language) place = (ctx.arch.audio && !ctx.arch.vision) ? Place::Audio : Place::Vision;
    r.kind = K::Projector;
    r.tower = to_tower(place);
    r.layer = -1;
    return out;
  }
  if (place != Place::Language) {
    r.tower = to_tower(place);
    r.kind = r.layer >= 0 ? tower_block_kind(inner) : tower_top_kind(prefix);
    return out;
  }

  if (r.layer < 0) {
    r.kind = top_level_kind(segs);
    return out;
  }

  // Older GGUF Mixtral files give each expert its own tensors:
  // blk.N.ffn_{gate,up,down}.E.weight.
  if (ctx.gguf && inner.size() == 2) {
    int e = 0;
    const K kind = inner[0] == "ffn_gate" ? K::ExpertGate
                   : inner[0] == "ffn_up" ? K::ExpertUp
                   : inner[0] == "ffn_down" ? K::ExpertDown
                                            : K::Unknown;
    if (kind != K::Unknown && parse_index(inner[1], e)) {
      r.kind = kind;
      r.expert = e;
      return out;
    }
  }

  // Inside a language-model block: normalise the expert index, then look up.
  std::string path;
  for (size_t i = 0; i < inner.size(); ++i) {
    int e = 0;
    if (i > 0 && inner[i - 1] == "experts" && parse_index(inner[i], e)) {
      r.expert = e;
      path += "*";
    } else {
      path += inner[i];
    }
    if (i + 1 < inner.size()) path += '.';
  }
  const auto& table = block_table();
  auto it = table.find(path);
  if (it == table.end()) return out;  // Unknown, but keeps its layer
  r.kind = it->second;
  if (r.kind == K::MlpNorm && path == "post_attention_layernorm" && ctx.post_norm) r.kind = K::PostAttnNorm;
  if (r.kind == K::RouterBias) r.bias = false;  // a bias by nature, named either way
  out.gguf_ffn_up = path == "ffn_up";
  return out;
}

bool is_post_norm_family(const std::string& f) {
  return f == "gemma2" || f == "gemma3" || f == "gemma3n" || f == "exaone4" || f == "olmo2";
}

// llama.cpp's LlamaModel converter (and those derived from it) permutes the
// rows of Q and K for its RoPE layout; other converters keep HF order.
bool gguf_permutes_qk(const std::string& gguf_arch) {
  return gguf_arch == "llama" || gguf_arch == "granite" || gguf_arch == "granitemoe";
}

}  // namespace

void assign_roles(std::vector<TensorInfo>& tensors, const Architecture& arch, bool gguf_names) {
  bool post_norm = is_post_norm_family(arch.family);
  if (!post_norm && !gguf_names) {
    for (const auto& t : tensors)
      if (contains(t.name, "post_feedforward_layernorm")) {
        post_norm = true;
        break;
      }
  }
  Context ctx{arch, gguf_names, post_norm};
  const bool gpt2_conv1d = arch.family == "gpt2" && !gguf_names;
  const bool unpermute = gguf_names && gguf_permutes_qk(arch.model_type);
  const int32_t q_heads = static_cast<int32_t>(arch.num_heads);
  const int32_t kv_heads = static_cast<int32_t>(arch.num_kv_heads > 0 ? arch.num_kv_heads : arch.num_heads);

  for (auto& t : tensors) {
    Classified c = classify(t.name, ctx);
    t.role = c.role;
    t.transposed = false;
    t.unpermute_heads = 0;
    if (t.role.tower != Tower::Language) continue;
    K k = t.role.kind;
    if (gguf_names && c.gguf_ffn_up && arch.family == "phi3") t.role.kind = K::MlpGateUp;
    // GPT-2's Conv1D stores weights as [in, out].
    if (gpt2_conv1d && !t.role.bias && (k == K::AttnQKV || k == K::AttnO || k == K::MlpUp || k == K::MlpDown))
      t.transposed = true;
    if (unpermute && q_heads > 0 && (k == K::AttnQ || k == K::AttnK))
      t.unpermute_heads = k == K::AttnQ ? q_heads : kv_heads;
  }
}

}  // namespace kaival::weights
