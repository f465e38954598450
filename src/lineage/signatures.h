#pragma once
// Per-residual-coordinate signatures of a model's components.
//
// For residual coordinate j, a component's signature summarises the weights
// that read from or write to j over all hidden units (mean |w|, rms, 4th-moment
// root, per matrix). Summaries over units do not change when hidden units or
// heads are permuted (or experts reordered / duplicated), but they move with j
// when residual coordinates are relabelled. That is what makes the coordinate
// matching test exact (see component_tests.h).
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "lineage/linalg.h"

namespace kaival::lineage {

class Model;
struct LayerRefs;
struct TowerRefs;

struct CoordFeatures {
  int64_t d = 0;
  std::vector<std::vector<double>> columns;  // one vector of length d per feature

  bool empty() const { return columns.empty(); }
  // w: [units, d] (residual coordinates are columns); `gain` (length d or
  // empty) is the preceding norm's gain folded in: the effective weight.
  void add_input_side(const MatF& w, const std::vector<float>& gain = {});
  // w: [d, units] (residual coordinates are rows).
  void add_output_side(const MatF& w);
  // One value per coordinate (norm gains).
  void add_values(const std::vector<float>& v);
  // Power sums of |w|, w^2, w^4 per coordinate over `count` units.
  void add_moment_sums(const std::vector<double>& s1, const std::vector<double>& s2, const std::vector<double>& s4,
                       double count);
  MatD matrix() const;  // d x features
};

struct LayerFeatures {
  CoordFeatures attn, mlp, norm;
  std::vector<float> attn_gain, mlp_gain;  // raw gains (for the norm caveat)
};

struct TowerFeatures {
  int64_t hidden = 0;
  std::map<int, CoordFeatures> blocks;
  CoordFeatures stem;  // patch / position embeddings, final norm
};

struct ModelFeatures {
  std::vector<LayerFeatures> layers;  // parallel to Model::layers()
  std::vector<float> final_norm;
  TowerFeatures vision, audio;
};

using Progress = std::function<void(const std::string&)>;

// Signatures of every layer, the final norm and the encoder towers: one pass
// over the model, one tensor at a time.
ModelFeatures compute_features(const Model& m, const Progress& progress = {});
// Final norm and towers only (layers are extracted pair by pair).
ModelFeatures compute_global_features(const Model& m, const Progress& progress = {});

// Unit-row views used by the unit and Gram tests: every matrix of a component
// as [units, residual columns] (input side as stored, output side transposed,
// the preceding norm's gain folded in).
struct UnitViews {
  // Attention
  MatF q, k, v, o_t;  // o_t: O transposed, [heads * head_dim, d]
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  // MLP (experts concatenated along units)
  MatF gate, up, down_t;
  bool packed_attn = false;
};
// Matrices of a tower block as [units, hidden] views (orientation by shape,
// square matrices by name).
std::vector<MatF> tower_views(const Model& m, const TowerRefs& t, int block);

}  // namespace kaival::lineage
