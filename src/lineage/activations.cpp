#include "lineage/activations.h"

#include <random>

#include <fmt/format.h>

#include "engine/model.h"
#include "lineage/linalg.h"
#include "lineage/model.h"
#include "lineage/vocab_align.h"

namespace kaival::lineage {

nlohmann::json activation_evidence(const Model& a, const Model& b, const TokenPairs& pairs,
                                   const std::vector<std::pair<int, int>>& layer_pairs,
                                   const ActivationOptions& opt) {
  using nlohmann::json;
  json out = {{"method", "linear CKA of residual-stream activations after each layer on the same token sequences "
                         "(REEF style); evidence only, no calibrated p-value"},
              {"decides", false}};
  if (pairs.a.size() < 8 || layer_pairs.empty()) {
    out["skipped"] = "too few shared tokens";
    return out;
  }
  for (const Model* m : {&a, &b})
    if (m->checkpoint().parameter_count() > opt.max_parameters) {
      out["skipped"] = fmt::format("{} has more than {} parameters (the engine holds F32 weights in memory)",
                                   m->path(), opt.max_parameters);
      return out;
    }
  try {
    engine::Model ea = engine::Model::load(a.checkpoint());
    engine::Model eb = engine::Model::load(b.checkpoint());
    std::mt19937_64 rng(opt.seed);
    std::uniform_int_distribution<size_t> pick(0, pairs.a.size() - 1);
    const int64_t n = opt.sequences * opt.length;
    const int64_t la = static_cast<int64_t>(a.layers().size()), lb = static_cast<int64_t>(b.layers().size());
    std::vector<MatD> xa(static_cast<size_t>(la)), xb(static_cast<size_t>(lb));
    for (auto& m : xa) m = MatD::Zero(n, ea.config().hidden);
    for (auto& m : xb) m = MatD::Zero(n, eb.config().hidden);
    for (int64_t s = 0; s < opt.sequences; ++s) {
      std::vector<int32_t> ta, tb;
      for (int64_t t = 0; t < opt.length; ++t) {
        size_t k = pick(rng);
        ta.push_back(static_cast<int32_t>(pairs.a[k]));
        tb.push_back(static_cast<int32_t>(pairs.b[k]));
      }
      engine::HiddenStates ha = ea.hidden_states(ta), hb = eb.hidden_states(tb);
      for (int64_t l = 0; l < la && l < ha.layers; ++l)
        for (int64_t t = 0; t < opt.length; ++t) {
          auto row = ha.at(l + 1, t);
          for (int64_t j = 0; j < ha.hidden; ++j) xa[l](s * opt.length + t, j) = row[j];
        }
      for (int64_t l = 0; l < lb && l < hb.layers; ++l)
        for (int64_t t = 0; t < opt.length; ++t) {
          auto row = hb.at(l + 1, t);
          for (int64_t j = 0; j < hb.hidden; ++j) xb[l](s * opt.length + t, j) = row[j];
        }
    }
    json layers = json::array();
    for (auto [ia, ib] : layer_pairs) {
      if (ia < 0 || ia >= la || ib < 0 || ib >= lb) continue;
      layers.push_back({{"a", a.layers()[ia].index},
                        {"b", b.layers()[ib].index},
                        {"cka", linear_cka(xa[ia], xb[ib], true)}});
    }
    out["layers"] = layers;
    out["inputs"] = fmt::format("{} sequences of {} tokens drawn from the shared vocabulary (seed {})", opt.sequences,
                                opt.length, opt.seed);
  } catch (const std::exception& e) {
    out["skipped"] = fmt::format("engine cannot run these models: {}", e.what());
  }
  return out;
}

}  // namespace kaival::lineage
