#pragma once
// Test-time construction of derived and partially reused models from the
// committed trained fixtures (testdata/models): hidden units permuted, the
// residual stream rotated with norm gains folded, layers pruned, vocabulary
// changed, parts copied between models, MoE upcycling, an encoder tower added.
// Each variant is written as a real model folder (config.json, tokenizer
// files, model.safetensors) so the whole reading path is exercised.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lineage/vocab_align.h"
#include "tokenizer/tokenizer.h"
#include "weights/checkpoint.h"
#include "weights/safetensors_writer.h"

namespace lineage_test {

namespace fs = std::filesystem;

inline std::string models_dir() { return std::string(KAIVAL_TESTDATA) + "/models"; }

struct Tensor {
  std::vector<int64_t> shape;
  std::vector<float> v;
  int64_t rows() const { return shape.size() == 2 ? shape[0] : 1; }
  int64_t cols() const { return shape.empty() ? 0 : shape.back(); }
  float& at(int64_t r, int64_t c) { return v[static_cast<size_t>(r * cols() + c)]; }
  float at(int64_t r, int64_t c) const { return v[static_cast<size_t>(r * cols() + c)]; }
};

struct State {
  std::map<std::string, Tensor> t;
  nlohmann::json config;
  std::string tokenizer_dir;  // folder whose tokenizer files are copied on save

  int layers() const { return config["num_hidden_layers"].get<int>(); }
  int64_t hidden() const { return config["hidden_size"].get<int64_t>(); }
  Tensor& at(const std::string& name) { return t.at(name); }
  static std::string L(int l, const std::string& rest) { return "model.layers." + std::to_string(l) + "." + rest; }
};

inline State load(const std::string& folder) {
  State s;
  auto ck = kaival::weights::Checkpoint::open(folder);
  for (const auto& ti : ck.tensors()) s.t[ti.name] = Tensor{ti.shape, ck.read_f32(ti)};
  std::ifstream f(folder + "/config.json");
  s.config = nlohmann::json::parse(f);
  s.tokenizer_dir = folder;
  return s;
}

inline void save(const State& s, const fs::path& dir) {
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "config.json");
    f << s.config.dump(1);
  }
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    fs::path src = fs::path(s.tokenizer_dir) / name;
    if (fs::exists(src)) fs::copy_file(src, dir / name, fs::copy_options::overwrite_existing);
  }
  std::vector<kaival::weights::TensorToWrite> out;
  for (const auto& [name, t] : s.t) out.push_back({name, "BF16", t.shape, t.v});
  kaival::weights::write_safetensors((dir / "model.safetensors").string(), out);
}

// ---- small dense helpers ------------------------------------------------------
using Dense = std::vector<std::vector<double>>;

inline Dense random_orthogonal(int64_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd;
  Dense q(d, std::vector<double>(d));
  for (auto& row : q)
    for (auto& x : row) x = nd(rng);
  // Gram-Schmidt on rows (twice for stability).
  for (int pass = 0; pass < 2; ++pass)
    for (int64_t i = 0; i < d; ++i) {
      for (int64_t j = 0; j < i; ++j) {
        double dot = 0;
        for (int64_t k = 0; k < d; ++k) dot += q[i][k] * q[j][k];
        for (int64_t k = 0; k < d; ++k) q[i][k] -= dot * q[j][k];
      }
      double n = 0;
      for (double x : q[i]) n += x * x;
      n = std::sqrt(n);
      for (double& x : q[i]) x /= n;
    }
  return q;
}

// Input-side matrix W [rows, d] -> W Q.
inline void right_multiply(Tensor& w, const Dense& q) {
  const int64_t d = w.cols();
  std::vector<double> row(d);
  for (int64_t r = 0; r < w.rows(); ++r) {
    for (int64_t j = 0; j < d; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < d; ++k) acc += w.at(r, k) * q[k][j];
      row[j] = acc;
    }
    for (int64_t j = 0; j < d; ++j) w.at(r, j) = static_cast<float>(row[j]);
  }
}

// Output-side matrix W [d, cols] -> Q^T W.
inline void left_multiply_t(Tensor& w, const Dense& q) {
  const int64_t d = w.rows(), c = w.cols();
  std::vector<float> out(w.v.size());
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < c; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < d; ++k) acc += q[k][i] * w.at(k, j);
      out[static_cast<size_t>(i * c + j)] = static_cast<float>(acc);
    }
  w.v = std::move(out);
}

inline void scale_columns(Tensor& w, const Tensor& gain) {
  for (int64_t r = 0; r < w.rows(); ++r)
    for (int64_t c = 0; c < w.cols(); ++c) w.at(r, c) *= gain.v[static_cast<size_t>(c)];
}

inline void set_ones(Tensor& g) { std::fill(g.v.begin(), g.v.end(), 1.0f); }

inline void permute_rows(Tensor& w, const std::vector<int64_t>& p) {
  Tensor o = w;
  for (int64_t r = 0; r < static_cast<int64_t>(p.size()); ++r)
    for (int64_t c = 0; c < w.cols(); ++c) w.at(r, c) = o.at(p[r], c);
}
inline void permute_cols(Tensor& w, const std::vector<int64_t>& p) {
  Tensor o = w;
  for (int64_t r = 0; r < w.rows(); ++r)
    for (int64_t c = 0; c < static_cast<int64_t>(p.size()); ++c) w.at(r, c) = o.at(r, p[c]);
}

// ---- transformations ------------------------------------------------------------

// Permute MLP hidden units and KV head groups (with their query heads) in every
// layer: the function is unchanged.
inline void permute_units(State& s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t nh = s.config["num_attention_heads"], nkv = s.config["num_key_value_heads"];
  const int64_t hd = s.hidden() / nh, group = nh / nkv;
  for (int l = 0; l < s.layers(); ++l) {
    Tensor& g = s.at(State::L(l, "mlp.gate_proj.weight"));
    std::vector<int64_t> p(static_cast<size_t>(g.rows()));
    std::iota(p.begin(), p.end(), 0);
    std::shuffle(p.begin(), p.end(), rng);
    permute_rows(g, p);
    permute_rows(s.at(State::L(l, "mlp.up_proj.weight")), p);
    permute_cols(s.at(State::L(l, "mlp.down_proj.weight")), p);
    std::vector<int64_t> kv(static_cast<size_t>(nkv));
    std::iota(kv.begin(), kv.end(), 0);
    std::shuffle(kv.begin(), kv.end(), rng);
    std::vector<int64_t> qrows, kvrows;
    for (int64_t g2 : kv) {
      for (int64_t h = g2 * group; h < (g2 + 1) * group; ++h)
        for (int64_t i = 0; i < hd; ++i) qrows.push_back(h * hd + i);
      for (int64_t i = 0; i < hd; ++i) kvrows.push_back(g2 * hd + i);
    }
    permute_rows(s.at(State::L(l, "self_attn.q_proj.weight")), qrows);
    permute_rows(s.at(State::L(l, "self_attn.k_proj.weight")), kvrows);
    permute_rows(s.at(State::L(l, "self_attn.v_proj.weight")), kvrows);
    permute_cols(s.at(State::L(l, "self_attn.o_proj.weight")), qrows);
  }
}

// Fold every norm gain into the following matrices and rotate the residual
// stream by a random orthogonal matrix: the function is unchanged (RMSNorm is
// rotation invariant once its gain is 1).
inline void rotate_residual(State& s, uint64_t seed) {
  Dense q = random_orthogonal(s.hidden(), seed);
  for (int l = 0; l < s.layers(); ++l) {
    Tensor& ga = s.at(State::L(l, "input_layernorm.weight"));
    Tensor& gm = s.at(State::L(l, "post_attention_layernorm.weight"));
    for (const char* n : {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"}) {
      scale_columns(s.at(State::L(l, n)), ga);
      right_multiply(s.at(State::L(l, n)), q);
    }
    left_multiply_t(s.at(State::L(l, "self_attn.o_proj.weight")), q);
    for (const char* n : {"mlp.gate_proj.weight", "mlp.up_proj.weight"}) {
      scale_columns(s.at(State::L(l, n)), gm);
      right_multiply(s.at(State::L(l, n)), q);
    }
    left_multiply_t(s.at(State::L(l, "mlp.down_proj.weight")), q);
    set_ones(ga);
    set_ones(gm);
  }
  Tensor& gf = s.at("model.norm.weight");
  scale_columns(s.at("lm_head.weight"), gf);
  right_multiply(s.at("lm_head.weight"), q);
  right_multiply(s.at("model.embed_tokens.weight"), q);
  set_ones(gf);
}

// Width pruning of the MLP: keep a random `keep` fraction of hidden units in
// every layer (rows of gate/up, columns of down).
inline void prune_units(State& s, double keep, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (int l = 0; l < s.layers(); ++l) {
    Tensor& g = s.at(State::L(l, "mlp.gate_proj.weight"));
    std::vector<int64_t> p(static_cast<size_t>(g.rows()));
    std::iota(p.begin(), p.end(), 0);
    std::shuffle(p.begin(), p.end(), rng);
    p.resize(static_cast<size_t>(keep * static_cast<double>(p.size())));
    std::sort(p.begin(), p.end());
    for (const char* n : {"mlp.gate_proj.weight", "mlp.up_proj.weight"}) {
      Tensor& w = s.at(State::L(l, n));
      Tensor o{{static_cast<int64_t>(p.size()), w.cols()}, {}};
      for (int64_t r : p) o.v.insert(o.v.end(), w.v.begin() + r * w.cols(), w.v.begin() + (r + 1) * w.cols());
      w = std::move(o);
    }
    Tensor& d = s.at(State::L(l, "mlp.down_proj.weight"));
    Tensor o{{d.rows(), static_cast<int64_t>(p.size())}, {}};
    for (int64_t r = 0; r < d.rows(); ++r)
      for (int64_t c : p) o.v.push_back(d.at(r, c));
    d = std::move(o);
    s.config["intermediate_size"] = static_cast<int64_t>(p.size());
  }
}

// Width pruning of the residual stream: drop `drop` residual coordinates
// (columns of input-side matrices and embeddings, rows of output-side
// matrices, entries of norm gains).
inline void prune_residual(State& s, int64_t drop, uint64_t seed) {
  const int64_t d = s.hidden();
  std::mt19937_64 rng(seed);
  std::vector<int64_t> keep(static_cast<size_t>(d));
  std::iota(keep.begin(), keep.end(), 0);
  std::shuffle(keep.begin(), keep.end(), rng);
  keep.resize(static_cast<size_t>(d - drop));
  std::sort(keep.begin(), keep.end());
  for (auto& [name, t] : s.t) {
    bool out_side = name.find("o_proj") != std::string::npos || name.find("down_proj") != std::string::npos;
    if (t.shape.size() == 1 && t.shape[0] == d) {
      Tensor o{{d - drop}, {}};
      for (int64_t j : keep) o.v.push_back(t.v[static_cast<size_t>(j)]);
      t = std::move(o);
    } else if (t.shape.size() == 2 && out_side && t.rows() == d) {
      Tensor o{{d - drop, t.cols()}, {}};
      for (int64_t j : keep) o.v.insert(o.v.end(), t.v.begin() + j * t.cols(), t.v.begin() + (j + 1) * t.cols());
      t = std::move(o);
    } else if (t.shape.size() == 2 && t.cols() == d) {
      Tensor o{{t.rows(), d - drop}, {}};
      for (int64_t r = 0; r < t.rows(); ++r)
        for (int64_t j : keep) o.v.push_back(t.at(r, j));
      t = std::move(o);
    }
  }
  s.config["hidden_size"] = d - drop;
}

// Keep only the listed layers (renumbered 0..).
inline void keep_layers(State& s, const std::vector<int>& keep) {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : s.t) {
    if (name.rfind("model.layers.", 0) != 0) {
      out[name] = t;
      continue;
    }
    size_t a = std::string("model.layers.").size(), b = name.find('.', a);
    int l = std::stoi(name.substr(a, b - a));
    auto it = std::find(keep.begin(), keep.end(), l);
    if (it == keep.end()) continue;
    out["model.layers." + std::to_string(it - keep.begin()) + name.substr(b)] = t;
  }
  s.t = std::move(out);
  s.config["num_hidden_layers"] = static_cast<int>(keep.size());
}

inline void add_noise(State& s, double relative, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd;
  for (auto& [name, t] : s.t) {
    if (t.shape.size() != 2) continue;
    double ss = 0;
    for (float x : t.v) ss += static_cast<double>(x) * x;
    double sd = relative * std::sqrt(ss / t.v.size());
    for (float& x : t.v) x += static_cast<float>(sd * nd(rng));
  }
}

// Copy every tensor whose name starts with `prefix` from `src`.
inline void copy_prefix(State& dst, const State& src, const std::string& prefix) {
  for (auto& [name, t] : src.t)
    if (name.rfind(prefix, 0) == 0) dst.t[name] = t;
}

// Re-index embedding and head rows to the vocabulary of another tokenizer:
// tokens both vocabularies share keep their rows, new tokens get fresh rows.
inline void change_vocabulary(State& s, const std::string& new_tokenizer_dir, uint64_t seed) {
  auto old_tok = kaival::tokenizer::Tokenizer::open(s.tokenizer_dir);
  auto new_tok = kaival::tokenizer::Tokenizer::open(new_tokenizer_dir);
  auto va = kaival::lineage::vocab_from_tokenizer(*new_tok, "new");
  auto vb = kaival::lineage::vocab_from_tokenizer(*old_tok, "old");
  auto pairs = kaival::lineage::align_vocabularies(va, vb);  // new id -> old id
  std::map<int64_t, int64_t> old_of;
  for (size_t i = 0; i < pairs.a.size(); ++i) old_of[pairs.a[i]] = pairs.b[i];
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd;
  const int64_t n = static_cast<int64_t>(new_tok->vocab_size()), d = s.hidden();
  for (const char* name : {"model.embed_tokens.weight", "lm_head.weight"}) {
    Tensor& old = s.at(name);
    Tensor fresh{{n, d}, std::vector<float>(static_cast<size_t>(n * d))};
    for (int64_t r = 0; r < n; ++r) {
      auto it = old_of.find(r);
      for (int64_t c = 0; c < d; ++c)
        fresh.at(r, c) = it != old_of.end() ? old.at(it->second, c) : static_cast<float>(0.02 * nd(rng));
    }
    old = std::move(fresh);
  }
  s.config["vocab_size"] = n;
  s.tokenizer_dir = new_tokenizer_dir;
}

// Turn every dense MLP into a Mixtral-style MoE whose experts are copies of
// the dense MLP with independent noise (upcycling).
inline void upcycle_to_moe(State& s, int experts, double relative_noise, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd;
  for (int l = 0; l < s.layers(); ++l) {
    const std::pair<const char*, const char*> parts[] = {
        {"mlp.gate_proj.weight", "w1"}, {"mlp.down_proj.weight", "w2"}, {"mlp.up_proj.weight", "w3"}};
    for (auto [dense, w] : parts) {
      Tensor base = s.at(State::L(l, dense));
      double ss = 0;
      for (float x : base.v) ss += static_cast<double>(x) * x;
      double sd = relative_noise * std::sqrt(ss / base.v.size());
      for (int e = 0; e < experts; ++e) {
        Tensor t = base;
        for (float& x : t.v) x += static_cast<float>(sd * nd(rng));
        s.t[State::L(l, "block_sparse_moe.experts." + std::to_string(e) + "." + w + ".weight")] = t;
      }
      s.t.erase(State::L(l, dense));
    }
    Tensor router{{experts, s.hidden()}, std::vector<float>(static_cast<size_t>(experts * s.hidden()))};
    for (float& x : router.v) x = static_cast<float>(0.02 * nd(rng));
    s.t[State::L(l, "block_sparse_moe.gate.weight")] = router;
  }
  s.config["architectures"] = {"MixtralForCausalLM"};
  s.config["model_type"] = "mixtral";
  s.config["num_local_experts"] = experts;
  s.config["num_experts_per_tok"] = 2;
}

// A small ViT-like vision tower (random weights from `seed`), SigLIP naming.
inline std::map<std::string, Tensor> make_vision_tower(uint64_t seed, int64_t hidden = 48, int blocks = 3,
                                                       int64_t ffn = 96) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd;
  auto mat = [&](int64_t r, int64_t c, double sd) {
    Tensor t{{r, c}, std::vector<float>(static_cast<size_t>(r * c))};
    for (float& x : t.v) x = static_cast<float>(sd * nd(rng));
    return t;
  };
  auto vec = [&](int64_t n) {
    Tensor t{{n}, std::vector<float>(static_cast<size_t>(n))};
    for (float& x : t.v) x = static_cast<float>(1.0 + 0.05 * nd(rng));
    return t;
  };
  std::map<std::string, Tensor> out;
  const std::string p = "vision_tower.vision_model.";
  for (int b = 0; b < blocks; ++b) {
    std::string q = p + "encoder.layers." + std::to_string(b) + ".";
    for (const char* n : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"})
      out[q + n + ".weight"] = mat(hidden, hidden, 0.05);
    out[q + "mlp.fc1.weight"] = mat(ffn, hidden, 0.05);
    out[q + "mlp.fc2.weight"] = mat(hidden, ffn, 0.05);
    out[q + "layer_norm1.weight"] = vec(hidden);
    out[q + "layer_norm2.weight"] = vec(hidden);
  }
  out[p + "post_layernorm.weight"] = vec(hidden);
  return out;
}

inline void add_vision_tower(State& s, const std::map<std::string, Tensor>& tower, int64_t hidden = 48,
                             int blocks = 3, int64_t ffn = 96) {
  for (auto& [n, t] : tower) s.t[n] = t;
  s.config["vision_config"] = {{"model_type", "siglip_vision_model"}, {"hidden_size", hidden},
                               {"num_hidden_layers", blocks},          {"num_attention_heads", 4},
                               {"intermediate_size", ffn},             {"patch_size", 14},
                               {"image_size", 224}};
}

// Attaches a trained tower from testdata/models/<name>/ (tools/gen_vision_fixtures.py).
inline void add_trained_vision_tower(State& s, const std::string& name) {
  const std::string dir = models_dir() + "/" + name;
  auto ck = kaival::weights::Checkpoint::open(dir + "/vision.safetensors");
  for (const auto& ti : ck.tensors()) s.t[ti.name] = Tensor{ti.shape, ck.read_f32(ti)};
  std::ifstream f(dir + "/vision_config.json");
  s.config["vision_config"] = nlohmann::json::parse(f);
}

// The same trained encoder weights placed as a Qwen2-Audio-style audio tower
// (audio_tower.layers.N.*, whisper leaf names): tests that a copied encoder is
// found in the audio slot too. The weights are the trained shape classifier's.
inline void add_trained_audio_tower(State& s, const std::string& name) {
  const std::string dir = models_dir() + "/" + name;
  auto ck = kaival::weights::Checkpoint::open(dir + "/vision.safetensors");
  const std::string from = "vision_tower.vision_model.";
  auto rename = [](std::string n) {
    const std::pair<const char*, const char*> map[] = {
        {"encoder.layers.", "layers."}, {"mlp.fc1", "fc1"}, {"mlp.fc2", "fc2"},
        {"layer_norm1", "self_attn_layer_norm"}, {"layer_norm2", "final_layer_norm"},
        {"post_layernorm", "layer_norm"}, {"embeddings.patch_embedding", "conv1"},
        {"embeddings.position_embedding", "embed_positions"}};
    for (auto [a, b] : map)
      if (auto at = n.find(a); at != std::string::npos) n.replace(at, std::string(a).size(), b);
    return "audio_tower." + n;
  };
  for (const auto& ti : ck.tensors()) s.t[rename(ti.name.substr(from.size()))] = Tensor{ti.shape, ck.read_f32(ti)};
  s.config["audio_config"] = {{"model_type", "qwen2_audio_encoder"}, {"d_model", 48}, {"encoder_layers", 3},
                              {"encoder_attention_heads", 4}, {"encoder_ffn_dim", 96}, {"num_mel_bins", 16}};
}

}  // namespace lineage_test
