#pragma once
// One streaming pass over a layer's tensors (row blocks through the
// memory-mapped reader, nothing larger than a block in F32 besides the
// requested views): per-residual-coordinate signatures for the coordinate
// test and, optionally, unit-row views for the unit and Gram tests.
#include <cstdint>
#include <vector>

#include "lineage/signatures.h"

namespace kaival::lineage {

class Model;
struct LayerRefs;

struct LayerData {
  LayerFeatures features;
  UnitViews attn, mlp;  // empty unless requested
};

// `cols`: residual columns kept in the views (all when empty).
LayerData extract_layer(const Model& m, const LayerRefs& L, bool views, const std::vector<int64_t>& cols);
// Same, reusing the view storage of `out` (layer after layer the views keep
// their shapes, so no fresh pages are touched).
void extract_layer_into(const Model& m, const LayerRefs& L, bool views, const std::vector<int64_t>& cols,
                        LayerData& out);

}  // namespace kaival::lineage
