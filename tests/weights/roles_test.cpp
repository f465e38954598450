// Canonical roles for the real tensor names of each family (as found in the
// published safetensors indexes and llama.cpp GGUF files).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "weights/architecture.h"
#include "weights/checkpoint.h"

namespace kaival::weights {
namespace {

Architecture make_arch(const std::string& family, const std::string& model_type, bool vision = false,
                       bool audio = false) {
  Architecture a;
  a.family = family;
  a.model_type = model_type;
  a.num_heads = 32;
  a.num_kv_heads = 8;
  if (vision) a.vision = TowerConfig{};
  if (audio) a.audio = TowerConfig{};
  return a;
}

struct Case {
  const char* name;
  const char* role;
};

// Assigns roles to `names` as one checkpoint and checks each role_name.
void check(const Architecture& arch, bool gguf, const std::vector<Case>& cases) {
  std::vector<TensorInfo> tensors;
  for (const auto& c : cases) {
    TensorInfo t;
    t.name = c.name;
    tensors.push_back(t);
  }
  assign_roles(tensors, arch, gguf);
  for (size_t i = 0; i < cases.size(); ++i)
    EXPECT_EQ(role_name(tensors[i].role), cases[i].role) << arch.family << ": " << cases[i].name;
}

TEST(Roles, LlamaMistralQwenNames) {
  check(make_arch("llama", "llama"), false,
        {
            {"model.embed_tokens.weight", "embedding"},
            {"model.layers.0.self_attn.q_proj.weight", "layer.0.attn_q"},
            {"model.layers.31.self_attn.k_proj.weight", "layer.31.attn_k"},
            {"model.layers.5.self_attn.v_proj.weight", "layer.5.attn_v"},
            {"model.layers.5.self_attn.o_proj.weight", "layer.5.attn_o"},
            {"model.layers.2.mlp.gate_proj.weight", "layer.2.mlp_gate"},
            {"model.layers.2.mlp.up_proj.weight", "layer.2.mlp_up"},
            {"model.layers.2.mlp.down_proj.weight", "layer.2.mlp_down"},
            {"model.layers.2.input_layernorm.weight", "layer.2.attn_norm"},
            {"model.layers.2.post_attention_layernorm.weight", "layer.2.mlp_norm"},
            {"model.norm.weight", "final_norm"},
            {"lm_head.weight", "head"},
            {"model.layers.0.self_attn.rotary_emb.inv_freq", "layer.0.unknown"},
        });
  check(make_arch("qwen2", "qwen2"), false,
        {
            {"model.layers.3.self_attn.q_proj.bias", "layer.3.attn_q.bias"},
            {"model.layers.3.self_attn.k_proj.bias", "layer.3.attn_k.bias"},
        });
  check(make_arch("qwen3", "qwen3"), false,
        {
            {"model.layers.7.self_attn.q_norm.weight", "layer.7.attn_q_norm"},
            {"model.layers.7.self_attn.k_norm.weight", "layer.7.attn_k_norm"},
        });
}

TEST(Roles, MixtralAndQwenMoe) {
  check(make_arch("mixtral", "mixtral"), false,
        {
            {"model.layers.7.block_sparse_moe.gate.weight", "layer.7.router"},
            {"model.layers.7.block_sparse_moe.experts.3.w1.weight", "layer.7.expert.3.expert_gate"},
            {"model.layers.7.block_sparse_moe.experts.3.w2.weight", "layer.7.expert.3.expert_down"},
            {"model.layers.7.block_sparse_moe.experts.3.w3.weight", "layer.7.expert.3.expert_up"},
        });
  check(make_arch("qwen3_moe", "qwen3_moe"), false,
        {
            {"model.layers.0.mlp.gate.weight", "layer.0.router"},
            {"model.layers.0.mlp.experts.127.down_proj.weight", "layer.0.expert.127.expert_down"},
            {"model.layers.47.mlp.experts.0.gate_proj.weight", "layer.47.expert.0.expert_gate"},
            {"model.layers.47.mlp.experts.0.up_proj.weight", "layer.47.expert.0.expert_up"},
        });
  check(make_arch("qwen2_moe", "qwen2_moe"), false,
        {
            {"model.layers.1.mlp.shared_expert.gate_proj.weight", "layer.1.shared_expert_gate"},
            {"model.layers.1.mlp.shared_expert_gate.weight", "layer.1.shared_expert_router"},
        });
  check(make_arch("gpt_oss", "gpt_oss"), false,
        {
            {"model.layers.4.mlp.router.weight", "layer.4.router"},
            {"model.layers.4.mlp.router.bias", "layer.4.router.bias"},
            {"model.layers.4.mlp.experts.gate_up_proj", "layer.4.expert_gate_up"},
            {"model.layers.4.mlp.experts.gate_up_proj_bias", "layer.4.expert_gate_up.bias"},
            {"model.layers.4.self_attn.sinks", "layer.4.attn_sinks"},
        });
}

TEST(Roles, DeepSeekV3Mla) {
  check(make_arch("deepseek_v3", "deepseek_v3"), false,
        {
            {"model.layers.3.self_attn.q_a_proj.weight", "layer.3.mla_q_a"},
            {"model.layers.3.self_attn.q_a_layernorm.weight", "layer.3.mla_q_a_norm"},
            {"model.layers.3.self_attn.q_b_proj.weight", "layer.3.mla_q_b"},
            {"model.layers.3.self_attn.kv_a_proj_with_mqa.weight", "layer.3.mla_kv_a"},
            {"model.layers.3.self_attn.kv_a_layernorm.weight", "layer.3.mla_kv_a_norm"},
            {"model.layers.3.self_attn.kv_b_proj.weight", "layer.3.mla_kv_b"},
            {"model.layers.3.self_attn.o_proj.weight", "layer.3.attn_o"},
            {"model.layers.3.mlp.gate.weight", "layer.3.router"},
            {"model.layers.3.mlp.gate.e_score_correction_bias", "layer.3.router_bias"},
            {"model.layers.3.mlp.experts.255.gate_proj.weight", "layer.3.expert.255.expert_gate"},
            {"model.layers.3.mlp.shared_experts.up_proj.weight", "layer.3.shared_expert_up"},
            {"model.layers.3.mlp.shared_experts.down_proj.weight", "layer.3.shared_expert_down"},
            {"model.layers.0.mlp.down_proj.weight", "layer.0.mlp_down"},
            // FP8 block scales are not weights of their own.
            {"model.layers.3.self_attn.q_a_proj.weight_scale_inv", "layer.3.unknown"},
        });
}

TEST(Roles, GemmaNormsMeanSomethingElse) {
  check(make_arch("gemma2", "gemma2"), false,
        {
            {"model.layers.0.input_layernorm.weight", "layer.0.attn_norm"},
            {"model.layers.0.post_attention_layernorm.weight", "layer.0.post_attn_norm"},
            {"model.layers.0.pre_feedforward_layernorm.weight", "layer.0.mlp_norm"},
            {"model.layers.0.post_feedforward_layernorm.weight", "layer.0.post_mlp_norm"},
        });
  // An unknown family with Gemma-style norms is recognised by the names.
  check(make_arch("unknown", ""), false,
        {
            {"model.layers.1.post_attention_layernorm.weight", "layer.1.post_attn_norm"},
            {"model.layers.1.post_feedforward_layernorm.weight", "layer.1.post_mlp_norm"},
        });
  check(make_arch("exaone4", "exaone4"), false,
        {{"model.layers.2.post_attention_layernorm.weight", "layer.2.post_attn_norm"}});
}

TEST(Roles, Gemma3MultimodalPrefixes) {
  check(make_arch("gemma3", "gemma3", true), false,
        {
            {"language_model.model.embed_tokens.weight", "embedding"},
            {"language_model.model.layers.4.self_attn.q_norm.weight", "layer.4.attn_q_norm"},
            {"language_model.model.layers.4.post_attention_layernorm.weight", "layer.4.post_attn_norm"},
            {"language_model.model.norm.weight", "final_norm"},
            {"vision_tower.vision_model.encoder.layers.26.self_attn.out_proj.weight", "vision.layer.26.tower_attn"},
            {"vision_tower.vision_model.encoder.layers.26.self_attn.q_proj.bias", "vision.layer.26.tower_attn.bias"},
            {"vision_tower.vision_model.encoder.layers.26.mlp.fc1.bias", "vision.layer.26.tower_mlp.bias"},
            {"vision_tower.vision_model.encoder.layers.0.layer_norm1.weight", "vision.layer.0.tower_norm"},
            {"vision_tower.vision_model.embeddings.patch_embedding.weight", "vision.tower_embedding"},
            {"vision_tower.vision_model.embeddings.position_embedding.weight", "vision.tower_embedding"},
            {"vision_tower.vision_model.post_layernorm.weight", "vision.tower_norm"},
            {"multi_modal_projector.mm_input_projection_weight", "vision.projector"},
            {"multi_modal_projector.mm_soft_emb_norm.weight", "vision.projector"},
            // transformers >= 4.52 layout
            {"model.language_model.layers.0.self_attn.q_proj.weight", "layer.0.attn_q"},
            {"model.vision_tower.vision_model.encoder.layers.0.self_attn.k_proj.weight", "vision.layer.0.tower_attn"},
            {"model.multi_modal_projector.mm_input_projection_weight", "vision.projector"},
        });
}

TEST(Roles, Phi3Packed) {
  check(make_arch("phi3", "phi3"), false,
        {
            {"model.layers.0.self_attn.qkv_proj.weight", "layer.0.attn_qkv"},
            {"model.layers.0.mlp.gate_up_proj.weight", "layer.0.mlp_gate_up"},
            {"model.layers.0.mlp.down_proj.weight", "layer.0.mlp_down"},
        });
}

TEST(Roles, Gpt2Conv1DIsTransposed) {
  std::vector<Case> cases = {
      {"wte.weight", "embedding"},
      {"wpe.weight", "position_embedding"},
      {"h.0.attn.c_attn.weight", "layer.0.attn_qkv"},
      {"h.0.attn.c_attn.bias", "layer.0.attn_qkv.bias"},
      {"h.0.attn.c_proj.weight", "layer.0.attn_o"},
      {"h.11.mlp.c_fc.weight", "layer.11.mlp_up"},
      {"h.11.mlp.c_proj.weight", "layer.11.mlp_down"},
      {"h.0.ln_1.weight", "layer.0.attn_norm"},
      {"h.0.ln_2.bias", "layer.0.mlp_norm.bias"},
      {"ln_f.weight", "final_norm"},
      {"h.0.attn.bias", "layer.0.unknown.bias"},  // the causal-mask buffer of old checkpoints
      {"transformer.h.3.attn.c_attn.weight", "layer.3.attn_qkv"},
      {"transformer.wte.weight", "embedding"},
  };
  auto arch = make_arch("gpt2", "gpt2");
  check(arch, false, cases);

  std::vector<TensorInfo> t(3);
  t[0].name = "h.0.attn.c_attn.weight";
  t[1].name = "h.0.attn.c_attn.bias";
  t[2].name = "h.0.ln_1.weight";
  assign_roles(t, arch, false);
  EXPECT_TRUE(t[0].transposed);
  EXPECT_FALSE(t[1].transposed);
  EXPECT_FALSE(t[2].transposed);

  // EXAONE 3 borrows GPT-2's names but uses nn.Linear.
  std::vector<TensorInfo> e(1);
  e[0].name = "transformer.h.0.mlp.c_proj.weight";
  assign_roles(e, make_arch("exaone", "exaone"), false);
  EXPECT_EQ(role_name(e[0].role), "layer.0.mlp_down");
  EXPECT_FALSE(e[0].transposed);
}

TEST(Roles, GptNeoXAndFalcon) {
  check(make_arch("gpt_neox", "gpt_neox"), false,
        {
            {"gpt_neox.embed_in.weight", "embedding"},
            {"gpt_neox.layers.0.attention.query_key_value.weight", "layer.0.attn_qkv"},
            {"gpt_neox.layers.0.attention.dense.bias", "layer.0.attn_o.bias"},
            {"gpt_neox.layers.0.mlp.dense_h_to_4h.weight", "layer.0.mlp_up"},
            {"gpt_neox.layers.0.mlp.dense_4h_to_h.weight", "layer.0.mlp_down"},
            {"gpt_neox.layers.0.input_layernorm.weight", "layer.0.attn_norm"},
            {"gpt_neox.layers.0.post_attention_layernorm.weight", "layer.0.mlp_norm"},
            {"gpt_neox.final_layer_norm.weight", "final_norm"},
            {"embed_out.weight", "head"},
            {"gpt_neox.layers.0.attention.rotary_emb.inv_freq", "layer.0.unknown"},
        });
  check(make_arch("falcon", "falcon"), false,
        {
            {"transformer.word_embeddings.weight", "embedding"},
            {"transformer.h.0.self_attention.query_key_value.weight", "layer.0.attn_qkv"},
            {"transformer.h.0.self_attention.dense.weight", "layer.0.attn_o"},
            {"transformer.h.0.mlp.dense_h_to_4h.weight", "layer.0.mlp_up"},
            {"transformer.h.0.mlp.dense_4h_to_h.weight", "layer.0.mlp_down"},
            {"transformer.h.0.input_layernorm.weight", "layer.0.attn_norm"},
            {"transformer.h.59.ln_attn.weight", "layer.59.attn_norm"},
            {"transformer.h.59.ln_mlp.bias", "layer.59.mlp_norm.bias"},
            {"transformer.ln_f.weight", "final_norm"},
            {"lm_head.weight", "head"},
        });
}

TEST(Roles, Exaone3) {
  check(make_arch("exaone", "exaone"), false,
        {
            {"transformer.wte.weight", "embedding"},
            {"transformer.h.0.attn.attention.q_proj.weight", "layer.0.attn_q"},
            {"transformer.h.0.attn.attention.k_proj.weight", "layer.0.attn_k"},
            {"transformer.h.0.attn.attention.v_proj.weight", "layer.0.attn_v"},
            {"transformer.h.0.attn.attention.out_proj.weight", "layer.0.attn_o"},
            {"transformer.h.0.mlp.c_fc_0.weight", "layer.0.mlp_gate"},
            {"transformer.h.0.mlp.c_fc_1.weight", "layer.0.mlp_up"},
            {"transformer.h.0.mlp.c_proj.weight", "layer.0.mlp_down"},
            {"transformer.h.0.ln_1.weight", "layer.0.attn_norm"},
            {"transformer.h.0.ln_2.weight", "layer.0.mlp_norm"},
            {"transformer.ln_f.weight", "final_norm"},
            {"lm_head.weight", "head"},
        });
}

TEST(Roles, VisionAndAudioTowers) {
  check(make_arch("qwen2", "qwen2_vl", true), false,
        {
            {"visual.blocks.0.attn.qkv.weight", "vision.layer.0.tower_attn"},
            {"visual.blocks.0.attn.proj.bias", "vision.layer.0.tower_attn.bias"},
            {"visual.blocks.31.norm1.weight", "vision.layer.31.tower_norm"},
            {"visual.blocks.0.mlp.fc2.bias", "vision.layer.0.tower_mlp.bias"},
            {"visual.patch_embed.proj.weight", "vision.tower_embedding"},
            {"visual.merger.ln_q.weight", "vision.projector"},
            {"visual.merger.mlp.0.weight", "vision.projector"},
            {"model.layers.0.self_attn.q_proj.weight", "layer.0.attn_q"},
        });
  check(make_arch("qwen2", "qwen2_audio", false, true), false,
        {
            {"audio_tower.layers.0.self_attn.k_proj.weight", "audio.layer.0.tower_attn"},
            {"audio_tower.layers.0.self_attn_layer_norm.weight", "audio.layer.0.tower_norm"},
            {"audio_tower.layers.0.final_layer_norm.bias", "audio.layer.0.tower_norm.bias"},
            {"audio_tower.layers.0.fc1.weight", "audio.layer.0.tower_mlp"},
            {"audio_tower.conv1.weight", "audio.tower_embedding"},
            {"audio_tower.embed_positions.weight", "audio.tower_embedding"},
            {"audio_tower.layer_norm.weight", "audio.tower_norm"},
            {"multi_modal_projector.linear.weight", "audio.projector"},
            {"language_model.model.layers.0.mlp.up_proj.weight", "layer.0.mlp_up"},
            {"language_model.lm_head.weight", "head"},
        });
  check(make_arch("llama", "llava", true), false,
        {
            {"vision_tower.vision_model.embeddings.class_embedding", "vision.tower_embedding"},
            {"vision_tower.vision_model.pre_layrnorm.weight", "vision.tower_norm"},
            {"vision_tower.vision_model.encoder.layers.23.mlp.fc2.weight", "vision.layer.23.tower_mlp"},
            {"multi_modal_projector.linear_1.weight", "vision.projector"},
            {"multi_modal_projector.linear_2.bias", "vision.projector.bias"},
            {"language_model.model.layers.0.self_attn.o_proj.weight", "layer.0.attn_o"},
        });
}

TEST(Roles, GgufNamesAndLlamaUnpermute) {
  auto arch = make_arch("llama", "llama");
  check(arch, true,
        {
            {"token_embd.weight", "embedding"},
            {"output.weight", "head"},
            {"output_norm.weight", "final_norm"},
            {"blk.0.attn_q.weight", "layer.0.attn_q"},
            {"blk.0.attn_k.weight", "layer.0.attn_k"},
            {"blk.0.attn_v.weight", "layer.0.attn_v"},
            {"blk.0.attn_output.weight", "layer.0.attn_o"},
            {"blk.0.attn_norm.weight", "layer.0.attn_norm"},
            {"blk.0.ffn_norm.weight", "layer.0.mlp_norm"},
            {"blk.0.ffn_gate.weight", "layer.0.mlp_gate"},
            {"blk.0.ffn_up.weight", "layer.0.mlp_up"},
            {"blk.0.ffn_down.weight", "layer.0.mlp_down"},
            {"rope_freqs.weight", "unknown"},
        });
  std::vector<TensorInfo> t(4);
  t[0].name = "blk.3.attn_q.weight";
  t[1].name = "blk.3.attn_k.weight";
  t[2].name = "blk.3.attn_v.weight";
  t[3].name = "blk.3.attn_qkv.weight";
  assign_roles(t, arch, true);
  EXPECT_EQ(t[0].unpermute_heads, 32);
  EXPECT_EQ(t[1].unpermute_heads, 8);
  EXPECT_EQ(t[2].unpermute_heads, 0);
  EXPECT_EQ(t[3].unpermute_heads, 0);

  // Qwen, Gemma and Phi-3 converters keep HF row order; HF names never need it.
  for (const char* other : {"qwen2", "qwen3", "gemma3", "phi3", "exaone", "deepseek2"}) {
    assign_roles(t, make_arch(other, other), true);
    EXPECT_EQ(t[0].unpermute_heads, 0) << other;
    EXPECT_EQ(t[1].unpermute_heads, 0) << other;
  }
  std::vector<TensorInfo> hf(1);
  hf[0].name = "model.layers.0.self_attn.q_proj.weight";
  assign_roles(hf, arch, false);
  EXPECT_EQ(hf[0].unpermute_heads, 0);

  // Mixtral is converted under the llama architecture too: same permutation.
  std::vector<TensorInfo> mx(1);
  mx[0].name = "blk.0.attn_k.weight";
  assign_roles(mx, make_arch("mixtral", "llama"), true);
  EXPECT_EQ(mx[0].unpermute_heads, 8);
}

TEST(Roles, GgufMoeMlaAndPostNorms) {
  check(make_arch("qwen3_moe", "qwen3moe"), true,
        {
            {"blk.1.attn_q_norm.weight", "layer.1.attn_q_norm"},
            {"blk.1.ffn_gate_inp.weight", "layer.1.router"},
            {"blk.1.ffn_gate_exps.weight", "layer.1.expert_gate"},
            {"blk.1.ffn_up_exps.weight", "layer.1.expert_up"},
            {"blk.1.ffn_down_exps.weight", "layer.1.expert_down"},
        });
  // Older Mixtral GGUFs: one tensor per expert, blk.N.ffn_{gate,up,down}.E.
  check(make_arch("mixtral", "llama"), true,
        {
            {"blk.5.ffn_gate.3.weight", "layer.5.expert.3.expert_gate"},
            {"blk.5.ffn_up.0.weight", "layer.5.expert.0.expert_up"},
            {"blk.5.ffn_down.7.weight", "layer.5.expert.7.expert_down"},
            {"blk.5.ffn_gate.weight", "layer.5.mlp_gate"},
            {"blk.5.ffn_gate_exps.weight", "layer.5.expert_gate"},
            {"blk.5.ffn_norm.3.weight", "layer.5.unknown"},
        });
  check(make_arch("deepseek_v3", "deepseek2"), true,
        {
            {"blk.3.attn_q_a.weight", "layer.3.mla_q_a"},
            {"blk.3.attn_q_a_norm.weight", "layer.3.mla_q_a_norm"},
            {"blk.3.attn_q_b.weight", "layer.3.mla_q_b"},
            {"blk.3.attn_kv_a_mqa.weight", "layer.3.mla_kv_a"},
            {"blk.3.attn_kv_a_norm.weight", "layer.3.mla_kv_a_norm"},
            {"blk.3.attn_kv_b.weight", "layer.3.mla_kv_b"},
            {"blk.3.exp_probs_b.bias", "layer.3.router_bias"},
            {"blk.3.ffn_gate_shexp.weight", "layer.3.shared_expert_gate"},
            {"blk.3.ffn_up_shexp.weight", "layer.3.shared_expert_up"},
            {"blk.3.ffn_down_shexp.weight", "layer.3.shared_expert_down"},
        });
  check(make_arch("gemma2", "gemma2"), true,
        {
            {"blk.0.post_attention_norm.weight", "layer.0.post_attn_norm"},
            {"blk.0.post_ffw_norm.weight", "layer.0.post_mlp_norm"},
        });
  check(make_arch("phi3", "phi3"), true,
        {
            {"blk.0.attn_qkv.weight", "layer.0.attn_qkv"},
            {"blk.0.ffn_up.weight", "layer.0.mlp_gate_up"},  // llama.cpp keeps Phi-3's packed gate_up in ffn_up
        });
  check(make_arch("gpt2", "gpt2"), true,
        {
            {"position_embd.weight", "position_embedding"},
            {"blk.0.attn_qkv.bias", "layer.0.attn_qkv.bias"},
        });
  std::vector<TensorInfo> g(1);
  g[0].name = "blk.0.attn_qkv.weight";
  assign_roles(g, make_arch("gpt2", "gpt2"), true);
  EXPECT_FALSE(g[0].transposed);  // the converter already transposed Conv1D
}

TEST(Roles, GgufMultimodalProjectorFile) {
  check(make_arch("clip", "clip", true, true), true,
        {
            {"v.blk.3.attn_q.weight", "vision.layer.3.tower_attn"},
            {"v.blk.3.attn_out.weight", "vision.layer.3.tower_attn"},
            {"v.blk.3.ln1.weight", "vision.layer.3.tower_norm"},
            {"v.blk.3.ffn_down.bias", "vision.layer.3.tower_mlp.bias"},
            {"v.patch_embd.weight", "vision.tower_embedding"},
            {"v.position_embd.weight", "vision.tower_embedding"},
            {"v.post_ln.weight", "vision.tower_norm"},
            {"mm.0.weight", "vision.projector"},
            {"mm.input_projection.weight", "vision.projector"},
            {"a.blk.0.attn_k.weight", "audio.layer.0.tower_attn"},
            {"a.conv1d.0.weight", "audio.tower_embedding"},
        });
}

TEST(Roles, StrangeNamesAreUnknownNotCrashes) {
  check(make_arch("llama", "llama"), false,
        {
            {"", "unknown"},
            {".", "unknown"},
            {"weight", "unknown"},
            {"..weight", "unknown"},
            {"model.layers.99999999999999.self_attn.q_proj.weight", "unknown"},
            {"model.layers.-1.self_attn.q_proj.weight", "unknown"},
            {"model.layers.3", "layer.3.unknown"},
            {"model.layers.3.mlp.experts.x.gate_proj.weight", "layer.3.unknown"},
            {"something.entirely.different", "unknown"},
            {"\xff\xfe.layers.1.\x01", "layer.1.unknown"},
        });
  check(make_arch("llama", "llama"), true, {{"blk..attn_q", "unknown"}, {"blk.7", "layer.7.unknown"}});
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 1e30;
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(static_cast<double>(a[i]) - b[i]));
  return m;
}

// The same weights as HF safetensors (BF16) and as a llama-converter GGUF
// (F16, exact for BF16 values, Q/K rows permuted): every tensor finds its
// partner by role, and with the roles' un-permutation the values are equal.
TEST(Roles, HfAndGgufExportsPairUpByRoleWithEqualValues) {
  std::string models = std::string(KAIVAL_TESTDATA) + "/models";
  if (!std::filesystem::exists(models + "/base-a-gguf/base-a-F16.gguf")) GTEST_SKIP() << "fixtures not generated";
  Checkpoint hf = Checkpoint::open(models + "/base-a");
  Checkpoint gg = Checkpoint::open(models + "/base-a-gguf/base-a-F16.gguf");
  std::map<std::string, const TensorInfo*> by_role;
  for (const auto& t : gg.tensors()) {
    EXPECT_NE(t.role.kind, RoleKind::Unknown) << t.name;
    EXPECT_TRUE(by_role.emplace(role_name(t.role), &t).second) << "duplicate role " << role_name(t.role);
  }
  ASSERT_EQ(hf.tensors().size(), gg.tensors().size());
  int permuted = 0;
  for (const auto& h : hf.tensors()) {
    SCOPED_TRACE(h.name);
    auto it = by_role.find(role_name(h.role));
    ASSERT_NE(it, by_role.end()) << role_name(h.role);
    const TensorInfo& g = *it->second;
    ASSERT_EQ(h.shape, g.shape);
    std::vector<float> hv = hf.read_f32(h), gv = gg.read_f32(g);
    EXPECT_LT(max_abs_diff(hv, gv), 1e-6);  // BF16 -> F16 is exact but for F16 subnormals
    if (g.unpermute_heads > 0) {
      ++permuted;
      TensorInfo raw = g;  // as stored: must differ, or the test proves nothing
      raw.unpermute_heads = 0;
      EXPECT_GT(max_abs_diff(gg.read_f32(raw), hv), 1e-3);
    }
  }
  EXPECT_EQ(permuted, 8);  // attn_q and attn_k of 4 layers
}

TEST(RoleNames, Format) {
  EXPECT_EQ(role_name(Role{RoleKind::Embedding}), "embedding");
  EXPECT_EQ(role_name(Role{RoleKind::AttnQ, 3}), "layer.3.attn_q");
  EXPECT_EQ(role_name(Role{RoleKind::TowerAttn, 2, -1, Tower::Vision}), "vision.layer.2.tower_attn");
  EXPECT_EQ(role_name(Role{RoleKind::ExpertUp, 4, 7}), "layer.4.expert.7.expert_up");
  EXPECT_EQ(role_name(Role{RoleKind::MlpDown, 1, -1, Tower::Language, true}), "layer.1.mlp_down.bias");
  EXPECT_EQ(role_name(Role{RoleKind::TowerNorm, -1, -1, Tower::Audio}), "audio.tower_norm");
}

TEST(RoleNames, EveryKindHasItsOwnName) {
  std::set<std::string> names;
  int kinds = static_cast<int>(RoleKind::Projector) + 1;
  for (int k = 0; k < kinds; ++k) {
    std::string n(role_kind_name(static_cast<RoleKind>(k)));
    EXPECT_FALSE(n.empty());
    EXPECT_TRUE(names.insert(n).second) << "duplicate " << n;
  }
  EXPECT_EQ(static_cast<int>(names.size()), kinds);
}

TEST(RoleNames, Components) {
  EXPECT_EQ(component_name(Role{RoleKind::Embedding}), "embedding");
  EXPECT_EQ(component_name(Role{RoleKind::PositionEmbedding}), "embedding");
  EXPECT_EQ(component_name(Role{RoleKind::Head}), "head");
  EXPECT_EQ(component_name(Role{RoleKind::FinalNorm}), "final_norm");
  EXPECT_EQ(component_name(Role{RoleKind::AttnQ, 3}), "layer.3.attn");
  EXPECT_EQ(component_name(Role{RoleKind::AttnQNorm, 3}), "layer.3.attn");
  EXPECT_EQ(component_name(Role{RoleKind::MlaKVB, 3}), "layer.3.attn");
  EXPECT_EQ(component_name(Role{RoleKind::MlpGateUp, 0}), "layer.0.mlp");
  EXPECT_EQ(component_name(Role{RoleKind::ExpertDown, 5, 9}), "layer.5.mlp");
  EXPECT_EQ(component_name(Role{RoleKind::Router, 5}), "layer.5.mlp");
  EXPECT_EQ(component_name(Role{RoleKind::AttnNorm, 2}), "layer.2.norm");
  EXPECT_EQ(component_name(Role{RoleKind::PostMlpNorm, 2}), "layer.2.norm");
  EXPECT_EQ(component_name(Role{RoleKind::TowerAttn, 1, -1, Tower::Vision}), "vision_encoder");
  EXPECT_EQ(component_name(Role{RoleKind::TowerEmbedding, -1, -1, Tower::Audio}), "audio_encoder");
  EXPECT_EQ(component_name(Role{RoleKind::Projector, -1, -1, Tower::Vision}), "projector");
  EXPECT_EQ(component_name(Role{RoleKind::Unknown, 4}), "other");
  EXPECT_EQ(component_name(Role{RoleKind::AttnQ}), "other");  // per-layer kind without a layer
}

TEST(TensorInfoShape, NumelRowsCols) {
  TensorInfo t;
  t.shape = {4, 3, 5};
  EXPECT_EQ(t.numel(), 60);
  EXPECT_EQ(t.cols(), 5);
  EXPECT_EQ(t.rows(), 12);
  t.shape = {};
  EXPECT_EQ(t.numel(), 1);
  EXPECT_EQ(t.cols(), 1);
  EXPECT_EQ(t.rows(), 1);
  t.shape = {7, 0};
  EXPECT_EQ(t.numel(), 0);
  EXPECT_EQ(t.rows(), 0);
}

}  // namespace
}  // namespace kaival::weights
