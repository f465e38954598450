#include "lineage/signatures.h"

#include <cmath>

#include <fmt/format.h>

#include "core/error.h"
#include "lineage/extract.h"
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

// Square tower matrices do not reveal their orientation by shape; the names
// of output projections do.
bool looks_output_side(const std::string& name) {
  for (const char* key : {"o_proj", "out_proj", "attn.proj", "attention.output", "attn_out", ".proj.weight", "fc2",
                          "down_proj", "ffn_down", "c_proj", "linear_2", "mlp.2."})
    if (name.find(key) != std::string::npos) return true;
  return false;
}


}  // namespace

void CoordFeatures::add_moment_sums(const std::vector<double>& s1, const std::vector<double>& s2,
                                    const std::vector<double>& s4, double count) {
  if (s1.empty() || count <= 0) return;
  if (d == 0) d = static_cast<int64_t>(s1.size());
  if (static_cast<int64_t>(s1.size()) != d) fail<FormatError>("lineage", "{} coordinates, expected {}", s1.size(), d);
  add_moments(*this, s1, s2, s4, count);
}

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

ModelFeatures compute_global_features(const Model& m, const Progress& progress) {
  ModelFeatures f;
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

ModelFeatures compute_features(const Model& m, const Progress& progress) {
  ModelFeatures f = compute_global_features(m, progress);
  for (const LayerRefs& L : m.layers()) {
    if (progress) progress(fmt::format("{}: layer {} of {}", m.path(), L.index + 1, m.layers().size()));
    f.layers.push_back(extract_layer(m, L, false, {}).features);
  }
  return f;
}

}  // namespace kaival::lineage
