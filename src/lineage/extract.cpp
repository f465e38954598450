#include "lineage/extract.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "lineage/model.h"

namespace kaival::lineage {
namespace {

constexpr int64_t kBlockFloats = int64_t{1} << 18;  // ~1 MiB of decoded rows at a time

// Power sums per residual coordinate, accumulated over hidden units (possibly
// over several tensors, e.g. all experts).
struct Moments {
  std::vector<double> s1, s2, s4;
  double count = 0;
  bool used = false;
  void init(int64_t d) {
    if (!s1.empty()) return;
    s1.assign(static_cast<size_t>(d), 0.0);
    s2 = s4 = s1;
  }
  void finish(CoordFeatures& f) const {
    if (used && count > 0) f.add_moment_sums(s1, s2, s4, count);
  }
};

// Residual coordinates along the columns of a row block: accumulate |x|, x^2,
// x^4 per column (float within the block, the caller adds to double).
__attribute__((target_clones("avx2", "default"))) void column_sums(const float* x, int64_t n, int64_t d,
                                                                    const float* gain, float* a1, float* a2,
                                                                    float* a4) {
  for (int64_t r = 0; r < n; ++r) {
    const float* row = x + r * d;
    for (int64_t j = 0; j < d; ++j) {
      float v = gain ? row[j] * gain[j] : row[j];
      float v2 = v * v;
      a1[j] += std::fabs(v);
      a2[j] += v2;
      a4[j] += v2 * v2;
    }
  }
}

// One row (a residual coordinate) with units along it: sums of |x|, x^2, x^4.
void row_sums_scalar(const float* x, int64_t n, float* out3) {
  double a = 0, b = 0, c = 0;
  for (int64_t i = 0; i < n; ++i) {
    double v = x[i], v2 = v * v;
    a += std::fabs(v);
    b += v2;
    c += v2 * v2;
  }
  out3[0] = static_cast<float>(a);
  out3[1] = static_cast<float>(b);
  out3[2] = static_cast<float>(c);
}

__attribute__((target("avx2,fma"))) void row_sums_avx2(const float* x, int64_t n, float* out3) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 a = _mm256_setzero_ps(), b = a, c = a;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256 v2 = _mm256_mul_ps(v, v);
    a = _mm256_add_ps(a, _mm256_andnot_ps(sign, v));
    b = _mm256_add_ps(b, v2);
    c = _mm256_fmadd_ps(v2, v2, c);
  }
  alignas(32) float la[8], lb[8], lc[8];
  _mm256_store_ps(la, a);
  _mm256_store_ps(lb, b);
  _mm256_store_ps(lc, c);
  float tail[3] = {0, 0, 0};
  if (i < n) row_sums_scalar(x + i, n - i, tail);
  out3[0] = tail[0];
  out3[1] = tail[1];
  out3[2] = tail[2];
  for (int k = 0; k < 8; ++k) out3[0] += la[k], out3[1] += lb[k], out3[2] += lc[k];
}

void row_sums(const float* x, int64_t n, float* out3) {
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");  // fixed per machine
  if (avx2)
    row_sums_avx2(x, n, out3);
  else
    row_sums_scalar(x, n, out3);
}

enum class Side { Input, Output };

struct Job {
  const TensorInfo* t = nullptr;
  Side side = Side::Input;
  const std::vector<float>* gain = nullptr;  // folded into residual coordinates
  int64_t u0 = 0, u1 = -1;                   // unit range (packed splits); u1 < 0: all
  Moments* moments = nullptr;
  MatF* view = nullptr;       // [units, cols] destination
  int64_t view_row = 0;       // first destination row
};

class Pass {
 public:
  Pass(const Model& m, int64_t d, const std::vector<int64_t>& cols) : m_(m), d_(d) {
    if (cols.empty()) {
      cols_.resize(static_cast<size_t>(d));
      for (int64_t j = 0; j < d; ++j) cols_[static_cast<size_t>(j)] = j;
    } else {
      cols_ = cols;
    }
    pos_.assign(static_cast<size_t>(d), -1);
    for (size_t k = 0; k < cols_.size(); ++k)
      if (cols_[k] >= 0 && cols_[k] < d) pos_[static_cast<size_t>(cols_[k])] = static_cast<int64_t>(k);
  }
  int64_t ncols() const { return static_cast<int64_t>(cols_.size()); }

  // Whether residual coordinates run along the stored columns.
  static bool residual_on_cols(const TensorInfo& t, Side side) {
    bool cols = side == Side::Input;
    if (t.transposed && t.shape.size() == 2) cols = !cols;
    return cols;
  }
  // Number of units a job contributes.
  int64_t units(const Job& j) const {
    const TensorInfo& t = *j.t;
    if (residual_on_cols(t, j.side)) {
      int64_t u1 = j.u1 < 0 ? t.rows() : j.u1;
      return u1 - j.u0;
    }
    int64_t u1 = j.u1 < 0 ? t.cols() : j.u1;
    return (t.rows() / d_) * (u1 - j.u0);
  }

  void run(const Job& j) {
    const TensorInfo& t = *j.t;
    if (t.shape.size() < 2 || t.numel() <= 0) fail(t.name, "expected a matrix");
    const float* gain = (j.gain && static_cast<int64_t>(j.gain->size()) == d_) ? j.gain->data() : nullptr;
    if (j.moments) j.moments->init(d_), j.moments->used = true;
    if (residual_on_cols(t, j.side))
      along_cols(j, gain);
    else
      along_rows(j, gain);
  }

 private:
  void read(const TensorInfo& t, int64_t r0, int64_t n, std::vector<float>& buf) {
    buf.resize(static_cast<size_t>(n * t.cols()));
    m_.read_rows_streaming(t, r0, n, buf.data(), bytes_);
  }

  void along_cols(const Job& j, const float* gain) {
    const TensorInfo& t = *j.t;
    if (t.cols() != d_) fail(t.name, "has {} residual columns, expected {}", t.cols(), d_);
    const int64_t u1 = j.u1 < 0 ? t.rows() : j.u1;
    const int64_t block = std::max<int64_t>(1, kBlockFloats / d_);
    std::vector<float> a1(static_cast<size_t>(d_)), a2(a1.size()), a4(a1.size());
    for (int64_t r0 = j.u0; r0 < u1; r0 += block) {
      const int64_t n = std::min(block, u1 - r0);
      read(t, r0, n, buf_);
      if (j.moments) {
        std::fill(a1.begin(), a1.end(), 0.f);
        std::fill(a2.begin(), a2.end(), 0.f);
        std::fill(a4.begin(), a4.end(), 0.f);
        column_sums(buf_.data(), n, d_, gain, a1.data(), a2.data(), a4.data());
        for (int64_t c = 0; c < d_; ++c) {
          j.moments->s1[c] += a1[c];
          j.moments->s2[c] += a2[c];
          j.moments->s4[c] += a4[c];
        }
        j.moments->count += static_cast<double>(n);
      }
      if (j.view) {
        for (int64_t k = 0; k < n; ++k) {
          float* dst = j.view->row(j.view_row + (r0 - j.u0) + k).data();
          const float* src = buf_.data() + k * d_;
          for (int64_t c = 0; c < ncols(); ++c) {
            int64_t col = cols_[static_cast<size_t>(c)];
            dst[c] = gain ? src[col] * gain[col] : src[col];
          }
        }
      }
    }
  }

  void along_rows(const Job& j, const float* gain) {
    const TensorInfo& t = *j.t;
    const int64_t rows = t.rows(), width = t.cols();
    if (rows % d_ != 0) fail(t.name, "has {} residual rows, not a multiple of {}", rows, d_);
    const int64_t c0 = j.u0, c1 = j.u1 < 0 ? width : j.u1, nu = c1 - c0;
    const int64_t block = std::max<int64_t>(1, kBlockFloats / std::max<int64_t>(1, width));
    float sums[3];
    // Selected residual rows are kept contiguous ([stack][position][unit]) and
    // transposed into the view at the end: writing the view's columns row by
    // row would touch a new cache line per element.
    const int64_t stacks = rows / d_;
    if (j.view) picked_.assign(static_cast<size_t>(stacks * ncols() * nu), 0.0f);
    for (int64_t r0 = 0; r0 < rows; r0 += block) {
      const int64_t n = std::min(block, rows - r0);
      read(t, r0, n, buf_);
      for (int64_t k = 0; k < n; ++k) {
        const int64_t r = r0 + k, res = r % d_, stack = r / d_;
        const float* src = buf_.data() + k * width + c0;
        const float g = gain ? gain[res] : 1.0f;
        if (j.moments) {
          row_sums(src, nu, sums);
          j.moments->s1[res] += sums[0] * std::fabs(g);
          j.moments->s2[res] += sums[1] * g * g;
          j.moments->s4[res] += sums[2] * g * g * g * g;
        }
        int64_t p = pos_[static_cast<size_t>(res)];
        if (j.view && p >= 0) {
          float* dst = picked_.data() + (stack * ncols() + p) * nu;
          for (int64_t c = 0; c < nu; ++c) dst[c] = src[c] * g;
        }
      }
    }
    if (j.moments) j.moments->count += static_cast<double>(stacks * nu);
    if (j.view) {
      const int64_t np = ncols(), tile = 32;
      for (int64_t st = 0; st < stacks; ++st)
        for (int64_t c0t = 0; c0t < nu; c0t += tile)
          for (int64_t p0 = 0; p0 < np; p0 += tile)
            for (int64_t c = c0t; c < std::min(nu, c0t + tile); ++c) {
              float* out = j.view->row(j.view_row + st * nu + c).data();
              for (int64_t p = p0; p < std::min(np, p0 + tile); ++p)
                out[p] = picked_[static_cast<size_t>((st * np + p) * nu + c)];
            }
    }
  }

  const Model& m_;
  int64_t d_;
  std::vector<int64_t> cols_, pos_;
  std::vector<float> buf_, picked_;
  std::vector<uint8_t> bytes_;
};

// Runs jobs that fill one view (allocated to the total unit count).
void run_into(Pass& pass, std::vector<Job> jobs, MatF* view, std::vector<MatF*>* filled = nullptr) {
  if (view && filled) filled->push_back(view);
  if (view) {
    int64_t total = 0;
    for (auto& j : jobs) {
      j.view = view;
      j.view_row = total;
      total += pass.units(j);
    }
    view->resize(total, pass.ncols());
  }
  for (const auto& j : jobs) pass.run(j);
}

}  // namespace

LayerData extract_layer(const Model& m, const LayerRefs& L, bool views, const std::vector<int64_t>& cols) {
  LayerData out;
  extract_layer_into(m, L, views, cols, out);
  return out;
}

void extract_layer_into(const Model& m, const LayerRefs& L, bool views, const std::vector<int64_t>& cols,
                        LayerData& out) {
  out.features = LayerFeatures{};
  // Views not refilled below are emptied; refilled ones keep their storage.
  std::vector<MatF*> all_views = {&out.attn.q, &out.attn.k, &out.attn.v, &out.attn.o_t,
                                  &out.mlp.gate, &out.mlp.up, &out.mlp.down_t};
  std::vector<MatF*> filled;
  out.attn.packed_attn = false;
  out.attn.n_heads = out.attn.n_kv_heads = out.attn.head_dim = 0;
  const int64_t d = m.hidden();
  LayerFeatures& f = out.features;
  if (L.attn_norm) f.attn_gain = m.read_gain(*L.attn_norm);
  if (L.mlp_norm) f.mlp_gain = m.read_gain(*L.mlp_norm);
  if (static_cast<int64_t>(f.attn_gain.size()) == d) f.norm.add_values(f.attn_gain);
  if (static_cast<int64_t>(f.mlp_gain.size()) == d) f.norm.add_values(f.mlp_gain);
  Pass pass(m, d, cols);
  const auto& a = m.arch();

  try {
    // Attention: features in the order q, k, v (or packed qkv), o, MLA down-projections.
    if (L.has_attn()) {
      UnitViews& v = out.attn;
      v.n_heads = a.num_heads;
      v.n_kv_heads = a.num_kv_heads > 0 ? a.num_kv_heads : a.num_heads;
      Moments mq, mk, mv, mo;
      std::vector<Moments> mother(L.attn_other_in.size());
      auto in = [&](const TensorInfo* t, Moments* mm) {
        return Job{t, Side::Input, &f.attn_gain, 0, -1, mm, nullptr, 0};
      };
      if (L.qkv) {
        run_into(pass, {in(L.qkv, &mq)}, views ? &v.q : nullptr, &filled);
        v.packed_attn = true;
      } else {
        if (L.q) run_into(pass, {in(L.q, &mq)}, views ? &v.q : nullptr, &filled);
        if (L.k) run_into(pass, {in(L.k, &mk)}, views ? &v.k : nullptr, &filled);
        if (L.v) run_into(pass, {in(L.v, &mv)}, views ? &v.v : nullptr, &filled);
      }
      if (L.o) run_into(pass, {Job{L.o, Side::Output, nullptr, 0, -1, &mo, nullptr, 0}}, views ? &v.o_t : nullptr, &filled);
      for (size_t i = 0; i < L.attn_other_in.size(); ++i) run_into(pass, {in(L.attn_other_in[i], &mother[i])}, nullptr);
      for (Moments* mm : {&mq, &mk, &mv, &mo}) mm->finish(f.attn);
      for (auto& mm : mother) mm.finish(f.attn);
      if (v.n_heads > 0 && L.q && L.q->rows() % v.n_heads == 0) v.head_dim = L.q->rows() / v.n_heads;
      if (v.n_heads > 0 && L.qkv && a.head_dim > 0) v.head_dim = a.head_dim;
    }
    // MLP: features in the order gate, up, down; experts pooled per matrix.
    if (L.has_mlp()) {
      UnitViews& v = out.mlp;
      Moments mg, mu, md;
      std::vector<Job> gate, up, down;
      auto in = [&](const TensorInfo* t, Moments* mm, int64_t u0, int64_t u1) {
        return Job{t, Side::Input, &f.mlp_gain, u0, u1, mm, nullptr, 0};
      };
      auto split = [&](const TensorInfo* t) {  // packed gate_up: first half gate, second half up
        bool on_cols = Pass::residual_on_cols(*t, Side::Input);
        int64_t n = on_cols ? t->rows() : t->cols();
        gate.push_back(in(t, &mg, 0, n / 2));
        up.push_back(in(t, &mu, n / 2, n));
      };
      if (L.gate) gate.push_back(in(L.gate, &mg, 0, -1));
      if (L.up) up.push_back(in(L.up, &mu, 0, -1));
      if (L.gate_up) split(L.gate_up);
      if (!L.gate && !L.gate_up)
        for (auto* t : L.expert_gate) gate.push_back(in(t, &mg, 0, -1));
      if (!L.up && !L.gate_up)
        for (auto* t : L.expert_up) up.push_back(in(t, &mu, 0, -1));
      if (!L.gate && !L.gate_up && L.expert_gate.empty())
        for (auto* t : L.expert_gate_up) split(t);
      if (L.down)
        down.push_back(Job{L.down, Side::Output, nullptr, 0, -1, &md, nullptr, 0});
      else
        for (auto* t : L.expert_down) down.push_back(Job{t, Side::Output, nullptr, 0, -1, &md, nullptr, 0});
      run_into(pass, gate, views ? &v.gate : nullptr, &filled);
      run_into(pass, up, views ? &v.up : nullptr, &filled);
      run_into(pass, down, views ? &v.down_t : nullptr, &filled);
      for (Moments* mm : {&mg, &mu, &md}) mm->finish(f.mlp);
    }
  } catch (const UnsupportedError&) {
    // A tensor type without a decoder: the layer's components stay empty and
    // are reported not comparable.
    f.attn = CoordFeatures{};
    f.mlp = CoordFeatures{};
    out.attn = UnitViews{};
    out.mlp = UnitViews{};
    return;
  }
  for (MatF* v : all_views)
    if (std::find(filled.begin(), filled.end(), v) == filled.end()) v->resize(0, 0);
}

}  // namespace kaival::lineage
