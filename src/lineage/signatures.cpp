#include "lineage/signatures.h"

#include <cmath>
#include <regex>

#include <fmt/format.h>

#include "core/error.h"
#include "lineage/model.h"

namespace kaival::lineage {
namespace {

constexpr double kFloor = 1e-30;  // keeps log() finite for all-zero slices

// Three summaries of each coordinate's slice: log mean|w|, log rms, log 4th-root
// of the 4th moment. Moments are accumulated in double.
void add_moments(CoordFeatures& f, const std::vector<double>& s1, const std::vector<double>& s2,
                 const std::vector<double>& s4, double count) {
  const size_t d = s1.size();
  std::vector<double> a(d), b(d), c(d);
  for (size_t j = 0; j < d; ++j) {
    a[j] = std::log(std::max(s1[j] / count, kFloor));
    b[j] = 0.5 * std::log(std::max(s2[j] / count, kFloor));
    c[j] = 0.25 * std::log(std::max(s4[j] / count, kFloor));
  }
  f.columns.push_back(std::move(a));
  f.columns.push_back(std::move(b));
  f.columns.push_back(std::move(c));
}

bool looks_output_side(const std::string& name) {
  static const std::regex out_re(
      R"((o_proj|out_proj|attn\.proj|attention\.output|attn_out|\.proj\.weight$|fc2|down_proj|ffn_down|c_proj|linear_2|mlp\.2\.|wo\b))");
  return std::regex_search(name, out_re);
}

void fold_gain(MatF& w, const std::vector<float>& gain) {
  if (gain.empty() || static_cast<int64_t>(gain.size()) != w.cols()) return;
  for (int64_t j = 0; j < w.cols(); ++j) w.col(j) *= gain[static_cast<size_t>(j)];
}

}  // namespace

void CoordFeatures::add_input_side(const MatF& w, const std::vector<float>& gain) {
  if (w.size() == 0) return;
  if (d == 0) d = w.cols();
  if (w.cols() != d) fail<FormatError>("lineage", "matrix has {} residual columns, expected {}", w.cols(), d);
  std::vector<double> s1(d, 0), s2(d, 0), s4(d, 0);
  const bool g = static_cast<int64_t>(gain.size()) == d;
  for (int64_t i = 0; i < w.rows(); ++i) {
    const float* row = w.row(i).data();
    for (int64_t j = 0; j < d; ++j) {
      double x = g ? static_cast<double>(row[j]) * gain[static_cast<size_t>(j)] : row[j];
      double x2 = x * x;
      s1[j] += std::fabs(x);
      s2[j] += x2;
      s4[j] += x2 * x2;
    }
  }
  add_moments(*this, s1, s2, s4, static_cast<double>(w.rows()));
}

void CoordFeatures::add_output_side(const MatF& w) {
  if (w.size() == 0) return;
  if (d == 0) d = w.rows();
  if (w.rows() != d) fail<FormatError>("lineage", "matrix has {} residual rows, expected {}", w.rows(), d);
  std::vector<double> s1(d, 0), s2(d, 0), s4(d, 0);
  for (int64_t j = 0; j < d; ++j) {
    const float* row = w.row(j).data();
    double a = 0, b = 0, c = 0;
    for (int64_t i = 0; i < w.cols(); ++i) {
      double x = row[i], x2 = x * x;
      a += std::fabs(x);
      b += x2;
      c += x2 * x2;
    }
    s1[j] = a;
    s2[j] = b;
    s4[j] = c;
  }
  add_moments(*this, s1, s2, s4, static_cast<double>(w.cols()));
}

void CoordFeatures::add_values(const std::vector<float>& v) {
  if (v.empty()) return;
  if (d == 0) d = static_cast<int64_t>(v.size());
  if (static_cast<int64_t>(v.size()) != d) fail<FormatError>("lineage", "vector of {} values, expected {}", v.size(), d);
  columns.emplace_back(v.begin(), v.end());
}

MatD CoordFeatures::matrix() const {
  MatD m(d, static_cast<int64_t>(columns.size()));
  for (size_t c = 0; c < columns.size(); ++c)
    for (int64_t j = 0; j < d; ++j) m(j, static_cast<int64_t>(c)) = columns[c][static_cast<size_t>(j)];
  return m;
}

namespace {

std::vector<float> gain_of(const Model& m, const TensorInfo* t, int64_t d) {
  if (!t) return {};
  auto g = m.read_gain(*t);
  if (static_cast<int64_t>(g.size()) != d) return {};
  return g;
}

// Rows [r0, r0 + n) of a matrix.
MatF slice_rows(const MatF& w, int64_t r0, int64_t n) { return w.middleRows(r0, n); }

}  // namespace

UnitViews attention_views(const Model& m, const LayerRefs& L) {
  UnitViews v;
  const auto& a = m.arch();
  std::vector<float> gain = gain_of(m, L.attn_norm, m.hidden());
  v.n_heads = a.num_heads;
  v.n_kv_heads = a.num_kv_heads > 0 ? a.num_kv_heads : a.num_heads;
  if (L.q) {
    v.q = m.read(*L.q);
    fold_gain(v.q, gain);
  }
  if (L.k) {
    v.k = m.read(*L.k);
    fold_gain(v.k, gain);
  }
  if (L.v) {
    v.v = m.read(*L.v);
    fold_gain(v.v, gain);
  }
  if (L.qkv) {
    MatF w = m.read(*L.qkv);
    fold_gain(w, gain);
    v.q = std::move(w);
    v.packed_attn = true;
  }
  if (L.o) v.o_t = m.read(*L.o).transpose();
  if (v.n_heads > 0 && v.q.rows() % v.n_heads == 0) v.head_dim = v.q.rows() / v.n_heads;
  return v;
}

UnitViews mlp_views(const Model& m, const LayerRefs& L) {
  UnitViews v;
  std::vector<float> gain = gain_of(m, L.mlp_norm, m.hidden());
  auto stack_rows = [&](const std::vector<const TensorInfo*>& ts) {
    std::vector<MatF> parts;
    int64_t rows = 0;
    for (auto* t : ts) {
      parts.push_back(m.read(*t));
      rows += parts.back().rows();
    }
    MatF out(rows, parts.empty() ? 0 : parts[0].cols());
    int64_t r = 0;
    for (auto& p : parts) {
      if (p.cols() != out.cols()) fail(p.cols() == 0 ? "" : ts[0]->name, "experts differ in width");
      out.middleRows(r, p.rows()) = p;
      r += p.rows();
    }
    return out;
  };
  if (L.gate) v.gate = m.read(*L.gate);
  if (L.up) v.up = m.read(*L.up);
  if (L.gate_up) {
    MatF w = m.read(*L.gate_up);
    int64_t half = w.rows() / 2;
    v.gate = slice_rows(w, 0, half);
    v.up = slice_rows(w, half, half);
  }
  if (v.gate.size() == 0 && !L.expert_gate.empty()) v.gate = stack_rows(L.expert_gate);
  if (v.up.size() == 0 && !L.expert_up.empty()) v.up = stack_rows(L.expert_up);
  if (v.gate.size() == 0 && !L.expert_gate_up.empty()) {
    MatF w = stack_rows(L.expert_gate_up);
    int64_t half = w.rows() / 2;
    v.gate = slice_rows(w, 0, half);
    v.up = slice_rows(w, half, half);
  }
  fold_gain(v.gate, gain);
  fold_gain(v.up, gain);
  if (L.down) {
    v.down_t = m.read_output_side(*L.down).transpose();
  } else if (!L.expert_down.empty()) {
    std::vector<MatF> parts;
    int64_t units = 0;
    for (auto* t : L.expert_down) {
      parts.push_back(m.read_output_side(*t));
      units += parts.back().cols();
    }
    MatF out(units, parts[0].rows());
    int64_t r = 0;
    for (auto& p : parts) {
      out.middleRows(r, p.cols()) = p.transpose();
      r += p.cols();
    }
    v.down_t = std::move(out);
  }
  return v;
}

std::vector<MatF> tower_views(const Model& m, const TowerRefs& t, int block) {
  std::vector<MatF> out;
  auto it = t.blocks.find(block);
  if (it == t.blocks.end()) return out;
  for (const TensorInfo* ti : it->second) {
    if (ti->shape.size() < 2) continue;
    MatF w = m.read(*ti, true);
    bool in_side = w.cols() == t.hidden, out_side = w.rows() == t.hidden;
    if (in_side && out_side) in_side = !looks_output_side(ti->name);
    if (in_side)
      out.push_back(std::move(w));
    else if (out_side)
      out.push_back(w.transpose());
    m.release(*ti);
  }
  return out;
}

ModelFeatures compute_features(const Model& m, const Progress& progress) {
  ModelFeatures f;
  const int64_t d = m.hidden();
  for (const LayerRefs& L : m.layers()) {
    if (progress) progress(fmt::format("{}: layer {} of {}", m.path(), L.index + 1, m.layers().size()));
    LayerFeatures lf;
    if (L.attn_norm) lf.attn_gain = m.read_gain(*L.attn_norm);
    if (L.mlp_norm) lf.mlp_gain = m.read_gain(*L.mlp_norm);
    if (static_cast<int64_t>(lf.attn_gain.size()) == d) lf.norm.add_values(lf.attn_gain);
    if (static_cast<int64_t>(lf.mlp_gain.size()) == d) lf.norm.add_values(lf.mlp_gain);
    try {
      if (L.has_attn()) {
        UnitViews v = attention_views(m, L);
        for (const MatF* w : {&v.q, &v.k, &v.v, &v.o_t})
          if (w->size() && w->cols() == d) lf.attn.add_input_side(*w);
        for (auto* t : L.attn_other_in) lf.attn.add_input_side(m.read(*t), lf.attn_gain);
      }
      if (L.has_mlp()) {
        UnitViews v = mlp_views(m, L);
        for (const MatF* w : {&v.gate, &v.up, &v.down_t})
          if (w->size() && w->cols() == d) lf.mlp.add_input_side(*w);
      }
    } catch (const UnsupportedError&) {
      // e.g. a quantization type without a decoder: the component stays empty
      // and is reported not comparable.
    }
    for (auto* t : {L.q, L.k, L.v, L.qkv, L.o, L.gate, L.up, L.gate_up, L.down})
      if (t) m.release(*t);
    f.layers.push_back(std::move(lf));
  }
  if (m.final_norm()) f.final_norm = m.read_gain(*m.final_norm());
  for (auto [tw, tf] : {std::pair{&m.vision(), &f.vision}, std::pair{&m.audio(), &f.audio}}) {
    if (tw->empty()) continue;
    tf->hidden = tw->hidden;
    for (auto& [idx, ts] : tw->blocks) {
      if (progress) progress(fmt::format("{}: encoder block {}", m.path(), idx));
      CoordFeatures cf;
      for (const MatF& w : tower_views(m, *tw, idx)) cf.add_input_side(w);
      for (auto* t : ts)
        if (t->shape.size() == 1 && t->shape[0] == tw->hidden) cf.add_values(m.read_gain(*t));
      if (!cf.empty()) tf->blocks[idx] = std::move(cf);
    }
  }
  return f;
}

}  // namespace kaival::lineage
