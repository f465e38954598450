#pragma once
// A decoder-only Llama-family model (Llama 2/3, Mistral, Qwen2, Qwen3 with
// QK-norm, EXAONE, the sparse mixture-of-experts Mixtral, Qwen3-MoE and
// Qwen2-MoE (with its gated shared expert), Gemma 1 (GeGLU, scaled
// embeddings, x * (1 + w) norms) and Gemma 2/3 with, in addition, their
// sandwich norms, soft-capping and local/global layers) loaded from a
// Checkpoint, with a KV cache (sliding-window layers bounded to the window)
// and batched prompt processing.
// Matrices stay in their stored type (F16/BF16/GGUF block types are decoded
// row by row inside the products, see matmul.h).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/matmul.h"
#include "weights/architecture.h"

namespace kaival::weights {
class Checkpoint;
}

namespace kaival::engine {

// y = x W^T (+ b) for x [n, in] and W [out, in] (HF nn.Linear layout); W stays
// in its stored type (see WeightMatrix).
struct Linear {
  WeightMatrix weight;
  std::vector<float> bias;  // empty or [out]

  bool empty() const { return weight.empty(); }
  int64_t out() const { return weight.rows(); }
  int64_t in() const { return weight.cols(); }
  // x: n rows of `in` floats; y: n rows of `out` floats.
  void apply(const float* x, int64_t n, float* y, WorkerPool& pool) const;
  // y (n rows of `out` floats, the product already in it) += bias, if any.
  void add_bias(float* y, int64_t n) const;
};

// One expert of a sparse MoE layer: a SwiGLU MLP of width expert_ffn. From
// GGUF (*_exps: one 3-D tensor per projection) each holds its own slice;
// older GGUFs (blk.N.ffn_gate.E.weight) and HF give one tensor per expert.
struct Expert {
  Linear gate, up, down;
};

struct LayerWeights {
  std::vector<float> attn_norm, mlp_norm;
  // Gemma 2/3: norms of the attention and MLP outputs before the residual add; empty if absent
  std::vector<float> post_attn_norm, post_mlp_norm;
  std::vector<float> q_norm, k_norm;  // per-head RMSNorm over head_dim (Qwen3); empty if absent
  Linear q, k, v, o;
  Linear gate, up, down;        // dense MLP; empty in a sparse layer
  Linear router;                // [experts, hidden]; empty in a dense layer
  std::vector<Expert> experts;  // [experts] in a sparse layer
  // Qwen2-MoE's shared expert: a SwiGLU MLP of width shared_ffn that every
  // row goes through, scaled by sigmoid(shared_router . x); empty if absent.
  Expert shared;
  std::vector<float> shared_router;  // [hidden]

  bool sparse() const { return !router.empty(); }
};

// Hyper-parameters the forward pass needs, validated at load.
struct ModelConfig {
  std::string family;
  int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, ffn = 0, vocab = 0;
  int64_t max_position = 0;  // 0 = not stated
  double norm_eps = 1e-6;
  int64_t rotary_dim = 0;    // leading dims of each head that RoPE rotates
  bool tied_embeddings = false;
  // Sparse MoE (0 experts: dense model). Layers whose checkpoint has a dense
  // MLP instead (Qwen3-MoE's mlp_only_layers) stay dense, of width ffn.
  int64_t experts = 0, experts_per_token = 0, expert_ffn = 0;
  bool norm_topk = false;  // renormalise the top-k routing weights to sum 1
  int64_t shared_ffn = 0;  // width of the shared expert (from its tensors); 0 = none
  // Gemma (1/2/3). Norm weights are held as the factor applied (HF's 1 + w is
  // folded in at load, as llama.cpp's converter does for GGUF).
  bool gelu = false;         // GeGLU (tanh-approximated gelu) instead of SwiGLU
  float embed_scale = 1.0f;  // embeddings times sqrt(hidden) for Gemma
  float attn_scale = 0.0f;   // score scale: query_pre_attn_scalar^-0.5 (default head_dim^-0.5)
  double attn_softcap = 0.0, final_softcap = 0.0;  // cap * tanh(x / cap); 0 = off
  int64_t sliding_window = 0;        // keys within the last `window` positions (self included)
  std::vector<bool> sliding_layers;  // [layers]: the window applies; empty = no layer
};

// Keys and values of the positions processed so far, per layer. A
// sliding-window layer keeps only the last `window` positions, in a ring
// (position p in slot p % window), so its memory is O(window) however long
// the sequence; other layers keep every position up to the capacity.
class KvCache {
 public:
  KvCache() = default;
  // slots[l]: positions layer l holds (capacity, or the window for a ring).
  KvCache(int64_t capacity, int64_t kv_width, std::vector<int64_t> slots);
  int64_t size() const { return size_; }
  int64_t capacity() const { return capacity_; }
  // Positions layer `layer` holds in memory (its window when bounded).
  int64_t layer_slots(int64_t layer) const { return slots_.at(static_cast<size_t>(layer)); }
  // Bytes of keys and values held, all layers.
  size_t bytes() const;
  void clear() { size_ = written_ = 0; }
  // Drop positions >= n (e.g. to reuse a shared prompt prefix). Throws
  // UnsupportedError when a bounded sliding-window layer has already
  // overwritten keys the position n would need (going back more than one
  // position once the sequence has passed the window).
  void truncate(int64_t n);

 private:
  friend class Model;
  size_t slot(int64_t layer, int64_t pos) const {
    return static_cast<size_t>(pos % slots_[static_cast<size_t>(layer)] * width_);
  }
  float* k(int64_t layer, int64_t pos) { return k_[static_cast<size_t>(layer)].data() + slot(layer, pos); }
  float* v(int64_t layer, int64_t pos) { return v_[static_cast<size_t>(layer)].data() + slot(layer, pos); }
  std::vector<std::vector<float>> k_, v_;  // [layer][slots * width]
  std::vector<int64_t> slots_;             // [layer]
  int64_t capacity_ = 0, width_ = 0, size_ = 0;
  int64_t written_ = 0;  // highest position written + 1 since the last clear (what a ring has overwritten)
};

// Residual stream after the embedding and after each layer, plus the final
// norm output: layer l of position p at data[(l * tokens + p) * hidden].
struct HiddenStates {
  int64_t layers = 0;  // entries per position = layers + 1 (entry 0 = embedding output)
  int64_t tokens = 0;
  int64_t hidden = 0;
  std::vector<float> data;        // [(layers + 1), tokens, hidden]
  std::vector<float> final_norm;  // [tokens, hidden]

  std::span<const float> at(int64_t layer, int64_t pos) const {
    return {data.data() + (layer * tokens + pos) * hidden, static_cast<size_t>(hidden)};
  }
};

class Model {
 public:
  // Throws UnsupportedError for families or features not implemented
  // (shared experts other than Qwen2-MoE's, LayerNorm, MLA, ...),
  // FormatError for missing or mis-shaped tensors.
  // `threads`: worker threads for the matrix products (0: one per core).
  static Model load(const weights::Checkpoint& ckpt, int threads = 0);
  static Model open(const std::string& path, int threads = 0);

  const ModelConfig& config() const { return cfg_; }
  int threads() const { return pool_->threads(); }
  // Bytes of weights held (packed types at their stored size).
  size_t weight_bytes() const;
  // A cache for up to `capacity` positions (clamped to max_position if
  // known). Sliding-window layers hold only their window unless
  // full_windows (every position kept, the attention still masked: the
  // unbounded layout, for checks).
  KvCache new_cache(int64_t capacity, bool full_windows = false) const;

  // Appends `tokens` at positions cache.size()... and returns their logits,
  // [tokens.size(), vocab] when all_logits, otherwise only the last row.
  // If `hidden` is given it receives the hidden states of these tokens.
  std::vector<float> forward(std::span<const int32_t> tokens, KvCache& cache, bool all_logits = true,
                             HiddenStates* hidden = nullptr) const;
  // Logits [tokens.size(), vocab] of a fresh sequence.
  std::vector<float> forward(std::span<const int32_t> tokens) const;
  // Hidden states of a fresh sequence (no logits computed).
  HiddenStates hidden_states(std::span<const int32_t> tokens) const;

  // One decode step for several sequences at once (continuous batching):
  // appends tokens[i] to *caches[i] and returns the logits [n, vocab], row i
  // for sequence i. Every weight row is read once for all n sequences, which
  // is where batching wins: decoding is bound by memory traffic. The caches
  // must be distinct.
  std::vector<float> decode_batch(std::span<const int32_t> tokens, std::span<KvCache* const> caches) const;
  // One forward pass over several sequences with any number of new tokens
  // each (decode rows and prompt chunks mixed, as a scheduler's step does):
  // appends inputs[i] to *caches[i] and returns the logits of each
  // sequence's last new token, [n, vocab]. Every input must be non-empty and
  // the caches distinct.
  std::vector<float> forward_batch(std::span<const std::span<const int32_t>> inputs,
                                   std::span<KvCache* const> caches) const;

 private:
  // Rows [row0, row0 + n) of a batch belong to one sequence whose cache holds
  // pos0 positions before them.
  struct Segment {
    KvCache* cache = nullptr;
    int64_t row0 = 0, n = 0, pos0 = 0;
  };
  // Logits: every row when all_logits, else the last row of each segment.
  void run(std::span<const int32_t> tokens, std::span<const Segment> segments, HiddenStates* hidden, float* logits,
           bool all_logits) const;
  // q [rows, heads * head_dim]; k, v [rows, kv width] of this batch's rows
  // (positions before a segment's pos0 are read from its cache).
  void attention(int64_t layer, const float* q, const float* k, const float* v, std::span<const Segment> segments,
                 float* out) const;
  bool sliding(int64_t layer) const {
    return !cfg_.sliding_layers.empty() && cfg_.sliding_layers[static_cast<size_t>(layer)];
  }
  void rope(float* x, int64_t n, int64_t heads, int64_t pos0, const std::vector<float>& inv_freq) const;
  // Sparse MLP of layer L on n normed rows xn: out = sum over each row's
  // top-k experts of weight * expert(row), plus the gated shared expert if
  // any. Rows are grouped by expert so each expert's matrices are read once
  // per call.
  void sparse_mlp(const LayerWeights& L, const float* xn, int64_t n, float* out) const;

  std::string where_;
  ModelConfig cfg_;
  WeightMatrix embedding_;        // [vocab, hidden]
  std::vector<LayerWeights> layers_;
  std::vector<float> final_norm_;
  Linear head_;                   // empty when tied to the embedding
  std::vector<float> inv_freq_;   // [rotary_dim / 2]
  std::vector<float> inv_freq_local_;  // sliding-window layers (Gemma 3's local base); empty = inv_freq_
  std::shared_ptr<WorkerPool> pool_;  // shared by every forward pass of this model
};

}  // namespace kaival::engine
