#include "engine/model.h"

#include <cblas.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <thread>

#include "core/error.h"
#include "weights/checkpoint.h"

namespace kaival::engine {
namespace {

using weights::RoleKind;

void rms_norm(const float* x, const float* w, int64_t n, int64_t dim, double eps, float* out) {
  for (int64_t r = 0; r < n; ++r) {
    const float* xr = x + r * dim;
    float* yr = out + r * dim;
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    for (int64_t i = 0; i < dim; ++i) yr[i] = w[i] * (xr[i] * inv);
  }
}

// llama.cpp's converter interleaves the two RoPE halves of each Q/K head;
// stored row permuted_row(r) holds HF row r (as in Checkpoint::read_rows).
int64_t permuted_row(int64_t r, int64_t head_dim) {
  const int64_t half = head_dim / 2, h = r / head_dim, rem = r % head_dim;
  return h * head_dim + 2 * (rem % half) + rem / half;
}

// Rows [row0, row0 + rows) of `t` as a [rows, cols] matrix: the whole tensor
// (row0 0), or one expert's contiguous slice of a stacked 3-D tensor (GGUF
// *_exps), read straight from the file so the stack is never copied whole.
// Kept in its stored type when that type can be decoded row by row (F16,
// BF16, GGUF blocks), else decoded to F32.
WeightMatrix load_matrix(const weights::Checkpoint& ckpt, const weights::TensorInfo& t, int64_t rows, int64_t cols,
                         int64_t row0 = 0) {
  const bool whole = row0 == 0 && t.numel() == rows * cols;
  if (t.cols() != cols || row0 < 0 || rows <= 0 || row0 + rows > t.rows())
    fail(ckpt.path(), "tensor {}: rows [{}, {}) of {} columns are outside its shape [{}]", t.name, row0, row0 + rows,
         cols, fmt::join(t.shape, ", "));
  if (t.unpermute_heads > 0 && !whole)
    fail(ckpt.path(), "tensor {}: a slice of a tensor with permuted Q/K rows cannot be read", t.name);
  auto as_f32 = [&] {
    if (whole) return ckpt.read_f32(t);
    std::vector<float> out(static_cast<size_t>(rows * cols));
    ckpt.read_rows(t, row0, rows, out.data());
    return out;
  };
  const auto& tr = weights::traits(t.dtype);
  const bool packable = ckpt.format() != weights::Format::PyTorch && t.dtype != weights::DType::F32 &&
                        t.dtype != weights::DType::F64 && tr.is_float && tr.block_elems > 0 &&
                        cols % tr.block_elems == 0;
  if (!packable) return WeightMatrix::f32(rows, cols, as_f32());
  const auto all = ckpt.raw(t);
  const size_t row_bytes = static_cast<size_t>(cols / tr.block_elems) * tr.block_bytes;
  if (all.size() != row_bytes * static_cast<size_t>(t.rows()))
    fail(ckpt.path(), "tensor {} has {} bytes, expected {} for {} rows of {} {}", t.name, all.size(),
         row_bytes * static_cast<size_t>(t.rows()), t.rows(), cols, tr.name);
  const auto raw = all.subspan(static_cast<size_t>(row0) * row_bytes, static_cast<size_t>(rows) * row_bytes);
  std::vector<uint8_t> data(raw.size());
  if (t.unpermute_heads > 0) {
    const int64_t heads = t.unpermute_heads;
    if (rows % (2 * heads) != 0)
      fail(ckpt.path(), "tensor {}: {} rows cannot be split into {} heads of pairs", t.name, rows, heads);
    for (int64_t r = 0; r < rows; ++r)
      std::copy_n(raw.data() + static_cast<size_t>(permuted_row(r, rows / heads)) * row_bytes, row_bytes,
                  data.data() + static_cast<size_t>(r) * row_bytes);
  } else {
    // Copy in slices and drop each slice's mapped pages right away, so the
    // mapping and the copy are never both resident (peak RSS ~ file size).
    constexpr size_t kSlice = size_t{8} << 20;
    const auto base = reinterpret_cast<uintptr_t>(raw.data());
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    for (size_t at = 0; at < raw.size(); at += kSlice) {
      const size_t len = std::min(kSlice, raw.size() - at);
      std::copy_n(raw.data() + at, len, data.data() + at);
      const uintptr_t lo = (base + at + page - 1) / page * page, hi = (base + at + len) / page * page;
      if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);  // (posix_madvise ignores DONTNEED)
    }
  }
  try {
    return WeightMatrix::packed(t.dtype, rows, cols, std::move(data));
  } catch (const UnsupportedError&) {
    return WeightMatrix::f32(rows, cols, as_f32());  // no row decoder: read_rows says why if it fails too
  }
}

// Outside [-88.8, 20] the result is known without exp(-x), whose overflow
// (x < -88.72: x / inf = -0) and underflow (x > 87.3) paths in libm are slow
// (errno; a few % of a prefill with large activations): for x > 20,
// 1 + exp(-x) rounds to 1 and the quotient is x. Same bits either way.
float silu(float x) {
  if (x > 20.0f) return x;
  if (x < -88.8f) return -0.0f;
  return x / (1.0f + std::exp(-x));
}

// gelu with the tanh approximation (HF gelu_pytorch_tanh), Gemma's GeGLU.
float gelu_tanh(float x) {
  constexpr float kC = 0.7978845608028654f;  // sqrt(2 / pi)
  return 0.5f * x * (1.0f + std::tanh(kC * (x + 0.044715f * x * x * x)));
}

// Gemma 1/2/3: GeGLU, scaled embeddings, x * (1 + w) norms, tied head.
bool is_gemma(const std::string& family) { return family == "gemma" || family == "gemma2" || family == "gemma3"; }
// Gemma 2/3 only: post-attention/post-MLP norms, soft-capping, local layers.
bool is_gemma_sandwich(const std::string& family) { return family == "gemma2" || family == "gemma3"; }

// Inverse RoPE frequencies for `dim` rotated dimensions, with the scaling
// variants whose frequencies do not depend on the sequence length.
std::vector<float> rope_frequencies(const weights::RopeConfig& rope, int64_t dim, const std::string& where) {
  std::vector<float> inv(static_cast<size_t>(dim / 2));
  for (int64_t i = 0; i < dim / 2; ++i)
    inv[i] = static_cast<float>(1.0 / std::pow(rope.theta, static_cast<double>(2 * i) / static_cast<double>(dim)));
  const std::string& type = rope.scaling_type;
  if (type.empty() || type == "default") return inv;
  if (type == "linear") {
    for (auto& f : inv) f = static_cast<float>(f / rope.factor);
    return inv;
  }
  if (type == "llama3") {
    const double old_ctx = static_cast<double>(rope.original_max_position);
    const double lo = rope.low_freq_factor, hi = rope.high_freq_factor, factor = rope.factor;
    if (old_ctx <= 0 || factor <= 0 || hi <= lo)
      fail(where, "llama3 rope_scaling needs factor > 0, original_max_position_embeddings > 0 and "
                  "high_freq_factor > low_freq_factor");
    const double low_wavelen = old_ctx / lo, high_wavelen = old_ctx / hi;
    for (auto& f : inv) {
      const double wavelen = 2 * std::numbers::pi / f;
      if (wavelen < high_wavelen) continue;                                  // high frequency: kept
      if (wavelen > low_wavelen) { f = static_cast<float>(f / factor); continue; }  // low: scaled
      const double smooth = (old_ctx / wavelen - lo) / (hi - lo);
      f = static_cast<float>((1 - smooth) * f / factor + smooth * f);
    }
    return inv;
  }
  fail<UnsupportedError>(where, "unsupported rope_scaling type \"{}\" (supported: linear, llama3)", type);
}

}  // namespace

void Linear::apply(const float* x, int64_t n, float* y, WorkerPool& pool) const {
  weight.matmul(x, n, y, pool);
  add_bias(y, n);
}

void Linear::add_bias(float* y, int64_t n) const {
  if (!bias.empty())
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < out(); ++i) y[r * out() + i] += bias[i];
}

namespace {

// Several Linears over the same input (Q, K, V; gate, up): one quantization
// of x and one pool job when their weights allow it (WeightMatrix::matmul_many).
template <size_t N>
void apply_many(const std::array<const Linear*, N>& ls, const float* x, int64_t n, const std::array<float*, N>& ys,
                WorkerPool& pool) {
  std::array<const WeightMatrix*, N> ms;
  for (size_t i = 0; i < N; ++i) ms[i] = &ls[i]->weight;
  WeightMatrix::matmul_many(ms, x, n, ys, pool);
  for (size_t j = 0; j < N; ++j) ls[j]->add_bias(ys[j], n);
}

// fn(begin, end) over rows [0, n) of `width` values each: on the pool when
// there is enough work to pay for the hand-out (prompt batches), else here.
// The element-wise parts of the forward pass go through this; each row is
// computed the same way wherever it runs.
template <class Fn>
void for_rows(WorkerPool& pool, int64_t n, int64_t width, Fn&& fn) {
  constexpr int64_t kMinWork = int64_t{1} << 14;  // values per chunk
  const int64_t grain = std::max<int64_t>(1, kMinWork / std::max<int64_t>(1, width));
  if (n <= grain) {
    fn(int64_t{0}, n);
    return;
  }
  pool.run(n, grain, [&](int64_t begin, int64_t end) { fn(begin, end); });
}

}  // namespace

KvCache::KvCache(int64_t capacity, int64_t kv_width, std::vector<int64_t> slots)
    : slots_(std::move(slots)), capacity_(capacity), width_(kv_width) {
  k_.reserve(slots_.size());
  v_.reserve(slots_.size());
  for (const int64_t s : slots_) {
    k_.emplace_back(static_cast<size_t>(s * kv_width));
    v_.emplace_back(static_cast<size_t>(s * kv_width));
  }
}

size_t KvCache::bytes() const {
  size_t n = 0;
  for (size_t l = 0; l < k_.size(); ++l) n += (k_[l].size() + v_[l].size()) * sizeof(float);
  return n;
}

void KvCache::truncate(int64_t n) {
  n = std::clamp<int64_t>(n, 0, size_);
  // Position n attends to (n - slots, n); a ring of `slots` positions still
  // holds (written - slots, written) of what was written.
  for (const int64_t s : slots_)
    if (std::max<int64_t>(0, n - s + 1) < std::max<int64_t>(0, written_ - s))
      fail<UnsupportedError>("KV cache",
                             "cannot go back to position {}: a sliding-window layer keeps only the last {} of the {} "
                             "positions written",
                             n, s, written_);
  size_ = n;
}

Model Model::open(const std::string& path, int threads) { return load(weights::Checkpoint::open(path), threads); }

size_t Model::weight_bytes() const {
  size_t n = embedding_.bytes() + head_.weight.bytes();
  for (const auto& L : layers_) {
    for (const Linear* l : {&L.q, &L.k, &L.v, &L.o, &L.gate, &L.up, &L.down, &L.router}) n += l->weight.bytes();
    for (const Linear* l : {&L.shared.gate, &L.shared.up, &L.shared.down}) n += l->weight.bytes();
    for (const auto& e : L.experts)
      for (const Linear* l : {&e.gate, &e.up, &e.down}) n += l->weight.bytes();
  }
  return n;
}

Model Model::load(const weights::Checkpoint& ckpt, int threads) {
  Model m;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  m.pool_ = std::make_shared<WorkerPool>(std::min(threads, 256));
  m.where_ = ckpt.path();
  const auto& where = m.where_;
  const auto& a = ckpt.architecture();
  // Qwen2-MoE's one gated shared expert is supported; DeepSeek-style ones
  // (several, ungated) are not.
  const bool shared_ok = a.family == "qwen2_moe";
  if (a.num_experts > 0 && a.num_shared_experts > 0 && !shared_ok)
    fail<UnsupportedError>(where, "mixture-of-experts models with shared experts ({}, as in DeepSeek) are not "
                                  "supported by the engine yet (only Qwen2-MoE's gated shared expert)",
                           a.num_shared_experts);
  static const char* const kFamilies[] = {"llama",   "mistral", "qwen2",     "qwen3",     "exaone", "exaone4",
                                          "mixtral", "qwen2_moe", "qwen3_moe", "gemma",  "gemma2", "gemma3"};
  if (std::find(std::begin(kFamilies), std::end(kFamilies), a.family) == std::end(kFamilies))
    fail<UnsupportedError>(where, "the engine does not support model family \"{}\" (model_type \"{}\") yet; "
                                  "supported: llama, mistral, qwen2, qwen3, exaone, mixtral, qwen2_moe, qwen3_moe, "
                                  "gemma, gemma2, gemma3",
                           a.family, a.model_type);
  if (a.norm_type != "rmsnorm") fail<UnsupportedError>(where, "norm type \"{}\" is not supported", a.norm_type);
  const bool gemma = is_gemma(a.family), sandwich = is_gemma_sandwich(a.family);
  if (gemma) {
    if (a.activation != "gelu_pytorch_tanh" && a.activation != "gelu_tanh" && a.activation != "gelu_new")
      fail<UnsupportedError>(where, "activation \"{}\" is not supported for {} (GeGLU with tanh gelu only)",
                             a.activation, a.family);
  } else if (!a.activation.empty() && a.activation != "silu" && a.activation != "swish") {
    fail<UnsupportedError>(where, "activation \"{}\" is not supported (SwiGLU with silu only)", a.activation);
  }
  if (a.parallel_residual) fail<UnsupportedError>(where, "parallel residual blocks are not supported");

  auto& c = m.cfg_;
  c.family = a.family;
  c.hidden = a.hidden_size;
  c.layers = a.num_layers;
  c.heads = a.num_heads;
  c.kv_heads = a.num_kv_heads > 0 ? a.num_kv_heads : a.num_heads;
  c.ffn = a.intermediate_size;
  c.max_position = a.max_position;
  c.norm_eps = a.norm_eps;
  c.tied_embeddings = a.tied_embeddings;
  c.experts = a.num_experts;
  c.experts_per_token = a.experts_per_token;
  c.expert_ffn = a.moe_intermediate_size;
  c.norm_topk = a.norm_topk_prob;
  constexpr int64_t kMaxDim = int64_t{1} << 20;
  if (c.hidden <= 0 || c.hidden > kMaxDim || c.layers <= 0 || c.layers > 4096 || c.heads <= 0 ||
      c.heads > 4096 || c.kv_heads <= 0 || c.heads % c.kv_heads != 0 || c.ffn <= 0 || c.ffn > kMaxDim)
    fail(where, "invalid architecture: hidden {} layers {} heads {} kv_heads {} ffn {}", c.hidden, c.layers, c.heads,
         c.kv_heads, c.ffn);
  c.head_dim = a.head_dim > 0 ? a.head_dim : c.hidden / c.heads;
  if (c.head_dim <= 0 || c.head_dim > 4096 || c.head_dim % 2 != 0)
    fail(where, "invalid head_dim {}", c.head_dim);
  c.rotary_dim = static_cast<int64_t>(static_cast<double>(c.head_dim) * a.rope.partial_rotary_factor);
  c.rotary_dim -= c.rotary_dim % 2;
  if (a.rope.theta <= 0 || c.rotary_dim <= 0 || c.rotary_dim > c.head_dim)
    fail<UnsupportedError>(where, "models without RoPE (theta {}) are not supported", a.rope.theta);
  m.inv_freq_ = rope_frequencies(a.rope, c.rotary_dim, where);
  if (gemma) {
    c.gelu = true;
    // In the activation type, as HF multiplies by a tensor of that dtype.
    c.embed_scale = static_cast<float>(std::sqrt(static_cast<double>(c.hidden)));
    // Gemma 1: head_dim^-0.5, no soft-capping, no local layers.
    const double scalar = sandwich && a.query_pre_attn_scalar > 0 ? a.query_pre_attn_scalar
                                                                  : static_cast<double>(c.head_dim);
    c.attn_scale = static_cast<float>(1.0 / std::sqrt(scalar));
    if (sandwich) {
      c.attn_softcap = a.attn_logit_softcapping;
      c.final_softcap = a.final_logit_softcapping;
    }
    if (sandwich && a.sliding_window > 0 && !a.sliding_layers.empty()) {
      if (static_cast<int64_t>(a.sliding_layers.size()) != c.layers)
        fail(where, "{} sliding-window layer flags for {} layers", a.sliding_layers.size(), c.layers);
      c.sliding_window = a.sliding_window;
      c.sliding_layers = a.sliding_layers;
    }
    // Gemma 3's local layers rotate with their own base and no scaling.
    if (a.family == "gemma3" && a.rope.local_theta > 0) {
      weights::RopeConfig local;
      local.theta = a.rope.local_theta;
      m.inv_freq_local_ = rope_frequencies(local, c.rotary_dim, where);
    }
  }
  // Mistral v0.1 (and Mixtral configs that state one) attend, in every
  // layer, to the last sliding_window positions only, as HF does.
  if ((a.family == "mistral" || a.family == "mixtral") && a.sliding_window > 0) {
    c.sliding_window = a.sliding_window;
    c.sliding_layers.assign(static_cast<size_t>(c.layers), true);
  }
  if (c.experts > 0) {
    if (c.experts > 4096)
      fail(where, "invalid num_experts {}", c.experts);
    if (c.experts_per_token <= 0 || c.experts_per_token > c.experts)
      fail(where, "num_experts_per_tok (top-k) is {} but must be between 1 and num_experts {}", c.experts_per_token,
           c.experts);
    if (c.expert_ffn <= 0 || c.expert_ffn > kMaxDim)
      fail(where, "invalid expert width moe_intermediate_size {}", c.expert_ffn);
  }

  m.layers_.resize(static_cast<size_t>(c.layers));
  for (auto& L : m.layers_) L.experts.resize(static_cast<size_t>(c.experts));
  bool have_embedding = false, have_head = false, have_final = false;
  bool per_expert_gguf = false;  // GGUF experts as one tensor each rather than stacked *_exps
  for (const auto& t : ckpt.tensors()) {
    const auto& role = t.role;
    if (role.tower != weights::Tower::Language || role.kind == RoleKind::Unknown) continue;
    if (role.layer >= c.layers) fail(where, "tensor {} belongs to layer {} but the model has {}", t.name, role.layer, c.layers);
    if (t.transposed) fail<UnsupportedError>(where, "transposed tensor {} is not supported", t.name);
    auto vec = [&](int64_t n) {
      if (t.numel() != n) fail(where, "tensor {} has {} elements, expected {}", t.name, t.numel(), n);
      return ckpt.read_f32(t);
    };
    auto mat = [&](Linear& l, int64_t out, int64_t in) {
      if (role.bias) {
        l.bias = vec(out);
        return;
      }
      if (t.shape.size() != 2 || t.shape[0] != out || t.shape[1] != in)
        fail(where, "tensor {} has shape [{}], expected [{}, {}]", t.name, fmt::join(t.shape, ", "), out, in);
      l.weight = load_matrix(ckpt, t, out, in);
    };
    LayerWeights* L = role.layer >= 0 ? &m.layers_[static_cast<size_t>(role.layer)] : nullptr;
    auto need_layer = [&] {
      if (!L) fail(where, "tensor {} has a per-layer role but no layer index", t.name);
    };
    const int64_t qw = c.heads * c.head_dim, kvw = c.kv_heads * c.head_dim;
    switch (role.kind) {
      case RoleKind::Embedding:
        if (t.shape.size() != 2 || t.shape[1] != c.hidden || t.shape[0] <= 0)
          fail(where, "embedding {} has shape [{}], expected [vocab, {}]", t.name, fmt::join(t.shape, ", "), c.hidden);
        c.vocab = t.shape[0];
        m.embedding_ = load_matrix(ckpt, t, c.vocab, c.hidden);
        have_embedding = true;
        break;
      case RoleKind::Head:
        if (role.bias) fail<UnsupportedError>(where, "output head bias {} is not supported", t.name);
        if (t.shape.size() != 2 || t.shape[1] != c.hidden)
          fail(where, "head {} has shape [{}], expected [vocab, {}]", t.name, fmt::join(t.shape, ", "), c.hidden);
        mat(m.head_, t.shape[0], c.hidden);
        have_head = true;
        break;
      case RoleKind::FinalNorm: m.final_norm_ = vec(c.hidden); have_final = true; break;
      case RoleKind::AttnNorm: need_layer(); L->attn_norm = vec(c.hidden); break;
      case RoleKind::MlpNorm: need_layer(); L->mlp_norm = vec(c.hidden); break;
      case RoleKind::PostAttnNorm: need_layer(); L->post_attn_norm = vec(c.hidden); break;
      case RoleKind::PostMlpNorm: need_layer(); L->post_mlp_norm = vec(c.hidden); break;
      case RoleKind::AttnQNorm: need_layer(); L->q_norm = vec(c.head_dim); break;
      case RoleKind::AttnKNorm: need_layer(); L->k_norm = vec(c.head_dim); break;
      case RoleKind::AttnQ: need_layer(); mat(L->q, qw, c.hidden); break;
      case RoleKind::AttnK: need_layer(); mat(L->k, kvw, c.hidden); break;
      case RoleKind::AttnV: need_layer(); mat(L->v, kvw, c.hidden); break;
      case RoleKind::AttnO: need_layer(); mat(L->o, c.hidden, qw); break;
      case RoleKind::MlpGate: need_layer(); mat(L->gate, c.ffn, c.hidden); break;
      case RoleKind::MlpUp: need_layer(); mat(L->up, c.ffn, c.hidden); break;
      case RoleKind::MlpDown: need_layer(); mat(L->down, c.hidden, c.ffn); break;
      case RoleKind::Router:
        need_layer();
        if (c.experts == 0)
          fail(where, "tensor {} is an MoE router but the config states no num_experts (GGUF expert_count)", t.name);
        if (role.bias) fail<UnsupportedError>(where, "router bias {} is not supported", t.name);
        mat(L->router, c.experts, c.hidden);
        break;
      case RoleKind::ExpertGate:
      case RoleKind::ExpertUp:
      case RoleKind::ExpertDown: {
        need_layer();
        const bool down = role.kind == RoleKind::ExpertDown;
        const int64_t out = down ? c.hidden : c.expert_ffn, in = down ? c.expert_ffn : c.hidden;
        auto part = [&](Expert& e) -> Linear& { return down ? e.down : role.kind == RoleKind::ExpertGate ? e.gate : e.up; };
        if (c.experts == 0)
          fail(where, "tensor {} is an MoE expert but the config states no num_experts (GGUF expert_count)", t.name);
        if (role.expert < 0) {
          // GGUF *_exps: every expert of the layer stacked, [experts, out, in]
          // (ne [in, out, experts]); expert e's matrix is a contiguous slice.
          // HF checkpoints that stack experts (gpt-oss) store them transposed.
          if (role.bias) fail<UnsupportedError>(where, "stacked expert bias {} is not supported", t.name);
          if (ckpt.format() != weights::Format::GGUF)
            fail<UnsupportedError>(where, "stacked expert tensor {} is supported in GGUF files only", t.name);
          if (t.shape.size() != 3 || t.shape[0] != c.experts || t.shape[1] != out || t.shape[2] != in)
            fail(where,
                 "stacked expert tensor {} has shape [{}], expected [{}, {}, {}] from the metadata (experts {}, "
                 "expert width {}, hidden {})",
                 t.name, fmt::join(t.shape, ", "), c.experts, out, in, c.experts, c.expert_ffn, c.hidden);
          for (int64_t e = 0; e < c.experts; ++e) {
            Linear& l = part(L->experts[static_cast<size_t>(e)]);
            if (!l.empty())
              fail(where, "tensor {} gives layer {} expert {} a {} matrix it already has", t.name, role.layer, e,
                   weights::role_kind_name(role.kind));
            l.weight = load_matrix(ckpt, t, out, in, e * out);
          }
          break;
        }
        if (role.expert >= c.experts)
          fail(where, "tensor {} belongs to expert {} but the config states num_experts {}", t.name, role.expert,
               c.experts);
        // One tensor per expert: HF, or GGUF's older per-expert layout
        // (blk.N.ffn_gate.E.weight, as early Mixtral conversions wrote).
        Linear& l = part(L->experts[static_cast<size_t>(role.expert)]);
        if (!role.bias && !l.empty())
          fail(where, "tensor {} gives layer {} expert {} a {} matrix it already has", t.name, role.layer,
               role.expert, weights::role_kind_name(role.kind));
        if (ckpt.format() == weights::Format::GGUF) per_expert_gguf = true;
        mat(l, out, in);
        break;
      }
      case RoleKind::SharedExpertGate:
      case RoleKind::SharedExpertUp:
      case RoleKind::SharedExpertDown: {
        need_layer();
        if (!shared_ok)
          fail<UnsupportedError>(where, "tensor {} is a shared expert, supported for Qwen2-MoE only", t.name);
        if (c.experts == 0)
          fail(where, "tensor {} is a shared MoE expert but the config states no num_experts", t.name);
        if (role.bias) fail<UnsupportedError>(where, "shared expert bias {} is not supported", t.name);
        const bool down = role.kind == RoleKind::SharedExpertDown;
        // Its width is whatever the tensors say, the same in every one.
        if (t.shape.size() != 2 || t.shape[down ? 0 : 1] != c.hidden || t.shape[down ? 1 : 0] <= 0 ||
            t.shape[down ? 1 : 0] > kMaxDim)
          fail(where, "shared expert tensor {} has shape [{}], expected {}", t.name, fmt::join(t.shape, ", "),
               down ? fmt::format("[{}, width]", c.hidden) : fmt::format("[width, {}]", c.hidden));
        const int64_t width = t.shape[down ? 1 : 0];
        if (c.shared_ffn == 0) c.shared_ffn = width;
        if (width != c.shared_ffn)
          fail(where, "shared expert tensor {} has width {} but an earlier one {}", t.name, width, c.shared_ffn);
        Linear& l = down ? L->shared.down : role.kind == RoleKind::SharedExpertGate ? L->shared.gate : L->shared.up;
        mat(l, down ? c.hidden : width, down ? width : c.hidden);
        break;
      }
      case RoleKind::SharedExpertRouter:
        need_layer();
        if (!shared_ok)
          fail<UnsupportedError>(where, "tensor {} is a shared expert gate, supported for Qwen2-MoE only", t.name);
        if (role.bias) fail<UnsupportedError>(where, "shared expert gate bias {} is not supported", t.name);
        L->shared_router = vec(c.hidden);  // HF [1, hidden], GGUF [hidden]
        break;
      default:
        fail<UnsupportedError>(where, "tensor {} (role {}) is not supported by the engine yet", t.name,
                               weights::role_name(role));
    }
    ckpt.release(t);
  }
  if (!have_embedding) fail(where, "no token embedding tensor");
  if (!have_final) fail(where, "no final norm tensor");
  if (have_head) {
    if (m.head_.out() != c.vocab) fail(where, "output head has {} rows but the embedding {}", m.head_.out(), c.vocab);
  } else if (!c.tied_embeddings) {
    // Some exports drop the head of tied models without saying so; use the
    // embedding as llama.cpp does.
    c.tied_embeddings = true;
  }
  if (have_head) c.tied_embeddings = false;
  for (int64_t l = 0; l < c.layers; ++l) {
    auto& L = m.layers_[static_cast<size_t>(l)];
    // A layer is sparse when it has any expert tensor; then it needs them all.
    bool any_expert = !L.router.empty();
    for (const auto& e : L.experts) any_expert = any_expert || !e.gate.empty() || !e.up.empty() || !e.down.empty();
    if (any_expert) {
      if (!L.gate.empty() || !L.up.empty() || !L.down.empty())
        fail<UnsupportedError>(where, "layer {} has both a dense MLP and experts", l);
      auto missing = [&](RoleKind kind, int expert) {
        weights::Role r{.kind = kind, .layer = static_cast<int>(l), .expert = expert};
        fail(where, "MoE layer {} has no {} tensor", l, weights::role_name(r));
      };
      if (L.router.empty()) missing(RoleKind::Router, -1);
      for (size_t e = 0; e < L.experts.size(); ++e) {
        const auto& E = L.experts[e];
        // GGUF usually stacks every expert in one tensor per projection: name that.
        const int idx = ckpt.format() == weights::Format::GGUF && !per_expert_gguf ? -1 : static_cast<int>(e);
        if (E.gate.empty()) missing(RoleKind::ExpertGate, idx);
        if (E.up.empty()) missing(RoleKind::ExpertUp, idx);
        if (E.down.empty()) missing(RoleKind::ExpertDown, idx);
      }
    } else {
      L.experts.clear();  // a dense layer of an MoE model (Qwen3-MoE mlp_only_layers)
    }
    const auto& S = L.shared;
    if (!S.gate.empty() || !S.up.empty() || !S.down.empty() || !L.shared_router.empty()) {
      if (!any_expert) fail(where, "layer {} has a shared expert but no routed experts", l);
      auto missing = [&](RoleKind kind) {
        fail(where, "MoE layer {} has no {} tensor", l, weights::role_name({.kind = kind, .layer = static_cast<int>(l)}));
      };
      if (S.gate.empty()) missing(RoleKind::SharedExpertGate);
      if (S.up.empty()) missing(RoleKind::SharedExpertUp);
      if (S.down.empty()) missing(RoleKind::SharedExpertDown);
      if (L.shared_router.empty()) missing(RoleKind::SharedExpertRouter);
    }
    // Post-norm-only layers (EXAONE 4, OLMo 2) are another design.
    if (!sandwich && (!L.post_attn_norm.empty() || !L.post_mlp_norm.empty()))
      fail<UnsupportedError>(where, "layer {} has post-sublayer norms, which the engine supports for Gemma 2/3 only",
                             l);
    if (sandwich && (L.post_attn_norm.empty() || L.post_mlp_norm.empty()))
      fail(where, "{} layer {} lacks its post-attention or post-feedforward norm", a.family, l);
    if (L.attn_norm.empty() || L.mlp_norm.empty() || L.q.empty() || L.k.empty() || L.v.empty() || L.o.empty() ||
        (!any_expert && (L.gate.empty() || L.up.empty() || L.down.empty())))
      fail(where, "layer {} is missing one of its norm, attention or MLP tensors", l);
    if ((L.q.bias.size() && L.q.bias.size() != static_cast<size_t>(L.q.out())) || L.q_norm.empty() != L.k_norm.empty())
      fail(where, "layer {} has inconsistent bias or QK-norm tensors", l);
  }
  // HF Gemma norms compute x * (1 + w); llama.cpp's converter already added
  // the 1 to every *norm.weight (QK-norms included), so GGUF weights are used
  // as they are.
  if (gemma && ckpt.format() != weights::Format::GGUF) {
    auto shift = [](std::vector<float>& w) {
      for (auto& v : w) v += 1.0f;
    };
    shift(m.final_norm_);
    for (auto& L : m.layers_)
      for (auto* w : {&L.attn_norm, &L.mlp_norm, &L.post_attn_norm, &L.post_mlp_norm, &L.q_norm, &L.k_norm}) shift(*w);
  }
  return m;
}

KvCache Model::new_cache(int64_t capacity, bool full_windows) const {
  if (cfg_.max_position > 0) capacity = std::min(capacity, cfg_.max_position);
  if (capacity <= 0) fail(where_, "KV cache capacity must be positive");
  std::vector<int64_t> slots(static_cast<size_t>(cfg_.layers), capacity);
  if (!full_windows)
    for (int64_t l = 0; l < cfg_.layers; ++l)
      if (sliding(l)) slots[static_cast<size_t>(l)] = std::min(capacity, cfg_.sliding_window);
  return KvCache(capacity, cfg_.kv_heads * cfg_.head_dim, std::move(slots));
}

void Model::rope(float* x, int64_t n, int64_t heads, int64_t pos0, const std::vector<float>& inv_freq) const {
  const int64_t hd = cfg_.head_dim, half = cfg_.rotary_dim / 2;
  for (int64_t t = 0; t < n; ++t) {
    const double pos = static_cast<double>(pos0 + t);
    for (int64_t i = 0; i < half; ++i) {
      // Angle in float like HF (inv_freq float32 times position), then cos/sin.
      const float angle = static_cast<float>(pos) * inv_freq[i];
      const float cs = std::cos(angle), sn = std::sin(angle);
      for (int64_t h = 0; h < heads; ++h) {
        float* v = x + (t * heads + h) * hd;
        const float a = v[i], b = v[i + half];
        v[i] = a * cs - b * sn;
        v[i + half] = b * cs + a * sn;
      }
    }
  }
}

void Model::attention(int64_t layer, const float* q, const float* k, const float* v,
                      std::span<const Segment> segments, float* out) const {
  const int64_t hd = cfg_.head_dim, heads = cfg_.heads, group = heads / cfg_.kv_heads, kvw = cfg_.kv_heads * hd;
  const float scale = cfg_.attn_scale > 0 ? cfg_.attn_scale : 1.0f / std::sqrt(static_cast<float>(hd));
  const auto cap = static_cast<float>(cfg_.attn_softcap);
  // A sliding-window layer sees the last `window` positions, itself included.
  const int64_t window = sliding(layer) ? cfg_.sliding_window : 0;
  const auto nseg = static_cast<int64_t>(segments.size());
  // (segment, head) pairs are independent: spread them over the pool when
  // there is enough work.
  int64_t work = 0, longest = 0;
  for (const auto& s : segments) {
    work += s.n * (s.pos0 + s.n) * heads * hd;
    longest = std::max(longest, s.pos0 + s.n);
  }
  pool_->run(nseg * heads, work > (int64_t{1} << 18) ? 1 : nseg * heads, [&](int64_t i0, int64_t i1) {
    std::vector<float> scores(static_cast<size_t>(longest));
    for (int64_t i = i0; i < i1; ++i) {
      const Segment& s = segments[static_cast<size_t>(i / heads)];
      const int64_t h = i % heads, kvh = h / group;
      // Key/value j: this batch's row for j >= pos0, else the cache's slot
      // (a ring in a bounded sliding-window layer).
      const float* K = s.cache->k_[static_cast<size_t>(layer)].data();
      const float* V = s.cache->v_[static_cast<size_t>(layer)].data();
      const int64_t slots = s.cache->slots_[static_cast<size_t>(layer)];
      auto key = [&](int64_t j) { return j >= s.pos0 ? k + (s.row0 + j - s.pos0) * kvw : K + j % slots * kvw; };
      auto value = [&](int64_t j) { return j >= s.pos0 ? v + (s.row0 + j - s.pos0) * kvw : V + j % slots * kvw; };
      for (int64_t t = 0; t < s.n; ++t) {
        const int64_t len = s.pos0 + t + 1;  // causal: keys 0..pos0+t
        const int64_t first = window > 0 ? std::max<int64_t>(0, len - window) : 0;
        const float* qh = q + ((s.row0 + t) * heads + h) * hd;
        float mx = -INFINITY;
        for (int64_t j = first; j < len; ++j) {
          scores[j] = dot(qh, key(j) + kvh * hd, hd) * scale;
          if (cap > 0) scores[j] = cap * std::tanh(scores[j] / cap);
          mx = std::max(mx, scores[j]);
        }
        double sum = 0;
        // exp of a difference below -104 is 0 in float; skipping libm's slow underflow path for it.
        for (int64_t j = first; j < len; ++j) {
          const float e = scores[j] - mx;
          sum += (scores[j] = e < -104.0f ? 0.0f : std::exp(e));
        }
        const float inv = static_cast<float>(1.0 / sum);
        float* oh = out + ((s.row0 + t) * heads + h) * hd;
        std::fill(oh, oh + hd, 0.0f);
        for (int64_t j = first; j < len; ++j) {
          const float p = scores[j] * inv;
          const float* vj = value(j) + kvh * hd;
          for (int64_t d = 0; d < hd; ++d) oh[d] += p * vj[d];
        }
      }
    }
  });
}

void Model::sparse_mlp(const LayerWeights& L, const float* xn, int64_t n, float* out) const {
  const int64_t H = cfg_.hidden, E = cfg_.experts, K = cfg_.experts_per_token, F = cfg_.expert_ffn;
  std::vector<float> scores(static_cast<size_t>(n * E));
  L.router.apply(xn, n, scores.data(), *pool_);
  // Per expert: the rows routed to it and their weights.
  std::vector<std::vector<std::pair<int64_t, float>>> routed(static_cast<size_t>(E));
  std::vector<int64_t> order(static_cast<size_t>(E));
  std::vector<double> prob(static_cast<size_t>(E));
  for (int64_t r = 0; r < n; ++r) {
    const float* s = scores.data() + r * E;
    const float mx = *std::max_element(s, s + E);
    double sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += (prob[e] = std::exp(static_cast<double>(s[e] - mx)));
    for (auto& p : prob) p /= sum;
    // Top-k by probability, ties to the lower index (a stable order).
    for (int64_t e = 0; e < E; ++e) order[e] = e;
    std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](int64_t a, int64_t b) {
      return prob[a] != prob[b] ? prob[a] > prob[b] : a < b;
    });
    double kept = 0;
    for (int64_t i = 0; i < K; ++i) kept += prob[order[i]];
    const double scale = cfg_.norm_topk ? 1.0 / kept : 1.0;
    for (int64_t i = 0; i < K; ++i)
      routed[order[i]].emplace_back(r, static_cast<float>(prob[order[i]] * scale));
  }
  // Each expert runs once over the rows routed to it (gathered), so its
  // matrices are read once however many rows chose it.
  std::fill(out, out + n * H, 0.0f);
  std::vector<float> xe, g, u, y;
  for (int64_t e = 0; e < E; ++e) {
    const auto& rows = routed[static_cast<size_t>(e)];
    if (rows.empty()) continue;
    const auto m = static_cast<int64_t>(rows.size());
    xe.resize(static_cast<size_t>(m * H));
    g.resize(static_cast<size_t>(m * F));
    u.resize(g.size());
    y.resize(xe.size());
    for (int64_t i = 0; i < m; ++i) std::copy_n(xn + rows[i].first * H, H, xe.data() + i * H);
    const Expert& X = L.experts[static_cast<size_t>(e)];
    X.gate.apply(xe.data(), m, g.data(), *pool_);
    X.up.apply(xe.data(), m, u.data(), *pool_);
    for (size_t i = 0; i < g.size(); ++i) g[i] = silu(g[i]) * u[i];
    X.down.apply(g.data(), m, y.data(), *pool_);
    for (int64_t i = 0; i < m; ++i) {
      const auto [r, w] = rows[i];
      float* o = out + r * H;
      const float* yi = y.data() + i * H;
      for (int64_t d = 0; d < H; ++d) o[d] += w * yi[d];
    }
  }
  if (L.shared.gate.empty()) return;
  // The shared expert sees every row, gated by sigmoid(shared_router . x).
  const int64_t S = cfg_.shared_ffn;
  g.resize(static_cast<size_t>(n * S));
  u.resize(g.size());
  y.resize(static_cast<size_t>(n * H));
  L.shared.gate.apply(xn, n, g.data(), *pool_);
  L.shared.up.apply(xn, n, u.data(), *pool_);
  for (size_t i = 0; i < g.size(); ++i) g[i] = silu(g[i]) * u[i];
  L.shared.down.apply(g.data(), n, y.data(), *pool_);
  for (int64_t r = 0; r < n; ++r) {
    const float w = 1.0f / (1.0f + std::exp(-dot(xn + r * H, L.shared_router.data(), H)));
    float* o = out + r * H;
    const float* yr = y.data() + r * H;
    for (int64_t d = 0; d < H; ++d) o[d] += w * yr[d];
  }
}

void Model::run(std::span<const int32_t> tokens, std::span<const Segment> segments, HiddenStates* hs, float* logits,
                bool all_logits) const {
  const auto& c = cfg_;
  const int64_t n = static_cast<int64_t>(tokens.size()), H = c.hidden, hd = c.head_dim;
  const int64_t qw = c.heads * hd, kvw = c.kv_heads * hd;
  if (n == 0) return;
  if (hs && segments.size() != 1) fail(where_, "hidden states are kept for one sequence at a time");
  int64_t rows = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    const Segment& s = segments[i];
    const KvCache& cache = *s.cache;
    if (cache.width_ != kvw || static_cast<int64_t>(cache.k_.size()) != c.layers)
      fail(where_, "KV cache was made for a different model");
    for (int64_t l = 0; l < c.layers; ++l) {
      const int64_t slots = cache.slots_[static_cast<size_t>(l)];
      if (slots != cache.capacity_ && !(sliding(l) && slots == std::min(cache.capacity_, c.sliding_window)))
        fail(where_, "KV cache was made for a different model (layer {} holds {} positions)", l, slots);
    }
    if (s.pos0 + s.n > cache.capacity_)
      fail(where_, "sequence of {} tokens exceeds the context capacity {}", s.pos0 + s.n, cache.capacity_);
    for (size_t j = 0; j < i; ++j)
      if (segments[j].cache == s.cache) fail(where_, "one KV cache appears twice in a batch");
    if (s.row0 != rows || s.n <= 0) fail(where_, "batch segments must cover the rows in order");
    rows += s.n;
  }
  if (rows != n) fail(where_, "batch segments cover {} rows but {} tokens were given", rows, n);

  // Activations of this pass, in one buffer: the calling thread keeps it for
  // the next pass when it is small (prompt chunks, decode steps), so its
  // pages are not faulted in and zeroed every call (a few % of a prefill);
  // large passes (long prompts) use a fresh one, released at the end.
  const size_t sizes[] = {static_cast<size_t>(n * H),   static_cast<size_t>(n * H),  static_cast<size_t>(n * qw),
                          static_cast<size_t>(n * kvw), static_cast<size_t>(n * kvw), static_cast<size_t>(n * qw),
                          static_cast<size_t>(n * H),   static_cast<size_t>(n * c.ffn), static_cast<size_t>(n * c.ffn)};
  // Each part starts on a 64-byte boundary (unaligned activation rows made
  // the F16 decode kernel ~15% slower: its 64-byte loads split cache lines).
  constexpr size_t kAlign = 16;  // floats
  size_t need = kAlign;
  for (const size_t z : sizes) need += (z + kAlign - 1) / kAlign * kAlign;
  constexpr size_t kKeepFloats = size_t{4} << 20;  // 16 MB
  thread_local std::vector<float> kept;
  std::vector<float> fresh;
  float* base;
  if (need <= kKeepFloats) {
    if (kept.size() < need) kept.resize(need);
    base = kept.data();
  } else {
    fresh.resize(need);
    base = fresh.data();
  }
  base += (kAlign - reinterpret_cast<uintptr_t>(base) / sizeof(float) % kAlign) % kAlign;
  std::span<float> bufs[std::size(sizes)];
  for (size_t i = 0, at = 0; i < std::size(sizes); at += (sizes[i] + kAlign - 1) / kAlign * kAlign, ++i)
    bufs[i] = std::span<float>(base + at, sizes[i]);
  const std::span<float> x = bufs[0], xn = bufs[1], q = bufs[2], k = bufs[3], v = bufs[4], att = bufs[5],
                         proj = bufs[6], g = bufs[7], u = bufs[8];
  for (int64_t t = 0; t < n; ++t) {
    const int32_t id = tokens[t];
    if (id < 0 || id >= c.vocab) fail(where_, "token id {} is out of range (vocabulary {})", id, c.vocab);
    embedding_.row(id, x.data() + t * H);
  }
  if (c.embed_scale != 1.0f)
    for (auto& v : x) v *= c.embed_scale;
  if (hs) {
    hs->layers = c.layers;
    hs->tokens = n;
    hs->hidden = H;
    hs->data.assign(static_cast<size_t>((c.layers + 1) * n * H), 0.0f);
    std::copy(x.begin(), x.end(), hs->data.begin());
  }

  // Element-wise steps run over rows on the pool for prompt batches (each row as it would alone).
  WorkerPool& pool = *pool_;
  auto norm_rows = [&](float* in, const std::vector<float>& w, float* out) {
    for_rows(pool, n, H, [&](int64_t b, int64_t e) {
      rms_norm(in + b * H, w.data(), e - b, H, c.norm_eps, out + b * H);
    });
  };
  // x += proj, then (if w) xn = norm(x) with w, one pass over the rows.
  auto add_norm = [&](const std::vector<float>* w) {
    for_rows(pool, n, H, [&](int64_t b, int64_t e) {
      float* xr = x.data() + b * H;
      const float* pr = proj.data() + b * H;
      for (int64_t i = 0; i < (e - b) * H; ++i) xr[i] += pr[i];
      if (w) rms_norm(xr, w->data(), e - b, H, c.norm_eps, xn.data() + b * H);
    });
  };
  norm_rows(x.data(), layers_[0].attn_norm, xn.data());
  for (int64_t l = 0; l < c.layers; ++l) {
    const auto& L = layers_[static_cast<size_t>(l)];
    apply_many<3>({&L.q, &L.k, &L.v}, xn.data(), n, {q.data(), k.data(), v.data()}, pool);
    if (!L.q_norm.empty()) {
      for_rows(pool, n, qw, [&](int64_t b, int64_t e) {
        rms_norm(q.data() + b * qw, L.q_norm.data(), (e - b) * c.heads, hd, c.norm_eps, q.data() + b * qw);
        rms_norm(k.data() + b * kvw, L.k_norm.data(), (e - b) * c.kv_heads, hd, c.norm_eps, k.data() + b * kvw);
      });
    }
    const auto& inv_freq = sliding(l) && !inv_freq_local_.empty() ? inv_freq_local_ : inv_freq_;
    for (const auto& s : segments) {
      for_rows(pool, s.n, qw, [&](int64_t b, int64_t e) {
        rope(q.data() + (s.row0 + b) * qw, e - b, c.heads, s.pos0 + b, inv_freq);
        rope(k.data() + (s.row0 + b) * kvw, e - b, c.kv_heads, s.pos0 + b, inv_freq);
      });
    }
    attention(l, q.data(), k.data(), v.data(), segments, att.data());
    // Only now into the caches: a ring keeps just the last `slots` of them,
    // which the batch's own earlier rows may have needed.
    for (const auto& s : segments) {
      const int64_t slots = s.cache->slots_[static_cast<size_t>(l)];
      for (int64_t t = std::max<int64_t>(0, s.n - slots); t < s.n; ++t) {
        std::copy_n(k.data() + (s.row0 + t) * kvw, kvw, s.cache->k(l, s.pos0 + t));
        std::copy_n(v.data() + (s.row0 + t) * kvw, kvw, s.cache->v(l, s.pos0 + t));
      }
    }
    L.o.apply(att.data(), n, proj.data(), pool);
    if (!L.post_attn_norm.empty()) norm_rows(proj.data(), L.post_attn_norm, proj.data());
    add_norm(&L.mlp_norm);

    if (L.sparse()) {
      sparse_mlp(L, xn.data(), n, proj.data());
    } else {
      apply_many<2>({&L.gate, &L.up}, xn.data(), n, {g.data(), u.data()}, pool);
      const int64_t F = c.ffn;
      for_rows(pool, n, F, [&](int64_t b, int64_t e) {
        float* gr = g.data() + b * F;
        const float* ur = u.data() + b * F;
        if (c.gelu) {
          for (int64_t i = 0; i < (e - b) * F; ++i) gr[i] = gelu_tanh(gr[i]) * ur[i];
        } else {
          for (int64_t i = 0; i < (e - b) * F; ++i) gr[i] = silu(gr[i]) * ur[i];
        }
      });
      L.down.apply(g.data(), n, proj.data(), pool);
    }
    if (!L.post_mlp_norm.empty()) norm_rows(proj.data(), L.post_mlp_norm, proj.data());
    // The residual add, fused with the next layer's attention norm.
    const bool last_layer = l + 1 == c.layers;
    add_norm(last_layer ? nullptr : &layers_[static_cast<size_t>(l + 1)].attn_norm);
    if (hs) std::copy(x.begin(), x.end(), hs->data.begin() + (l + 1) * n * H);
  }
  for (const auto& s : segments) {
    s.cache->size_ = s.pos0 + s.n;
    s.cache->written_ = std::max(s.cache->written_, s.cache->size_);
  }

  norm_rows(x.data(), final_norm_, xn.data());
  if (hs) hs->final_norm.assign(xn.begin(), xn.end());
  if (!logits) return;
  // The rows whose logits are wanted, gathered when they are not contiguous.
  const float* rows_in = xn.data();
  int64_t nrows = n;
  std::vector<float> last;
  if (!all_logits) {
    nrows = static_cast<int64_t>(segments.size());
    if (nrows == n) {
      rows_in = xn.data();
    } else if (nrows == 1) {
      rows_in = xn.data() + (n - 1) * H;
    } else {
      last.resize(static_cast<size_t>(nrows * H));
      for (int64_t i = 0; i < nrows; ++i) {
        const Segment& s = segments[static_cast<size_t>(i)];
        std::copy_n(xn.data() + (s.row0 + s.n - 1) * H, H, last.data() + i * H);
      }
      rows_in = last.data();
    }
  }
  if (c.tied_embeddings) {
    embedding_.matmul(rows_in, nrows, logits, *pool_);
  } else {
    head_.apply(rows_in, nrows, logits, *pool_);
  }
  if (c.final_softcap > 0) {
    const auto cap = static_cast<float>(c.final_softcap);
    for (int64_t i = 0; i < nrows * c.vocab; ++i) logits[i] = cap * std::tanh(logits[i] / cap);
  }
}

std::vector<float> Model::forward(std::span<const int32_t> tokens, KvCache& cache, bool all_logits,
                                  HiddenStates* hidden) const {
  std::vector<float> logits(static_cast<size_t>((all_logits ? tokens.size() : (tokens.empty() ? 0 : 1)) * cfg_.vocab));
  const Segment seg{&cache, 0, static_cast<int64_t>(tokens.size()), cache.size_};
  run(tokens, std::span(&seg, tokens.empty() ? 0 : 1), hidden, logits.data(), all_logits);
  return logits;
}

std::vector<float> Model::decode_batch(std::span<const int32_t> tokens, std::span<KvCache* const> caches) const {
  if (tokens.size() != caches.size())
    fail(where_, "decode batch has {} tokens for {} caches", tokens.size(), caches.size());
  std::vector<Segment> segs;
  segs.reserve(caches.size());
  for (size_t i = 0; i < caches.size(); ++i) {
    if (!caches[i]) fail(where_, "decode batch entry {} has no KV cache", i);
    segs.push_back({caches[i], static_cast<int64_t>(i), 1, caches[i]->size_});
  }
  std::vector<float> logits(tokens.size() * static_cast<size_t>(cfg_.vocab));
  run(tokens, segs, nullptr, logits.data(), false);
  return logits;
}

std::vector<float> Model::forward_batch(std::span<const std::span<const int32_t>> inputs,
                                        std::span<KvCache* const> caches) const {
  if (inputs.size() != caches.size())
    fail(where_, "batch has {} inputs for {} caches", inputs.size(), caches.size());
  std::vector<int32_t> tokens;
  std::vector<Segment> segs;
  segs.reserve(caches.size());
  for (size_t i = 0; i < caches.size(); ++i) {
    if (!caches[i]) fail(where_, "batch entry {} has no KV cache", i);
    if (inputs[i].empty()) fail(where_, "batch entry {} has no tokens", i);
    segs.push_back({caches[i], static_cast<int64_t>(tokens.size()), static_cast<int64_t>(inputs[i].size()),
                    caches[i]->size_});
    tokens.insert(tokens.end(), inputs[i].begin(), inputs[i].end());
  }
  std::vector<float> logits(caches.size() * static_cast<size_t>(cfg_.vocab));
  run(tokens, segs, nullptr, logits.data(), false);
  return logits;
}

std::vector<float> Model::forward(std::span<const int32_t> tokens) const {
  auto cache = new_cache(std::max<int64_t>(1, static_cast<int64_t>(tokens.size())));
  return forward(tokens, cache, true);
}

HiddenStates Model::hidden_states(std::span<const int32_t> tokens) const {
  HiddenStates hs;
  auto cache = new_cache(std::max<int64_t>(1, static_cast<int64_t>(tokens.size())));
  const Segment seg{&cache, 0, static_cast<int64_t>(tokens.size()), 0};
  run(tokens, std::span(&seg, tokens.empty() ? 0 : 1), &hs, nullptr, false);
  return hs;
}

}  // namespace kaival::engine
