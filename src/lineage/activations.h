#pragma once
// Activation-based evidence (REEF style): linear CKA between the two models'
// residual streams after each (mapped) layer, on the same inputs: sequences
// of tokens both vocabularies share, fed to each model with its own ids.
// Reported as evidence only: unrelated models trained on similar data also
// produce similar representations, so no calibrated p-value is claimed.
#include <cstdint>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace kaival::lineage {

class Model;
struct TokenPairs;

struct ActivationOptions {
  int64_t sequences = 8;
  int64_t length = 32;
  int64_t max_parameters = 300'000'000;  // the engine holds F32 weights in memory
  uint64_t seed = 20260401;
};

// `layer_pairs`: (layer of A, layer of B) by index into Model::layers().
// Returns null JSON when the engine cannot run one of the models (family not
// supported, too large) with the reason in "skipped".
nlohmann::json activation_evidence(const Model& a, const Model& b, const TokenPairs& pairs,
                                   const std::vector<std::pair<int, int>>& layer_pairs,
                                   const ActivationOptions& opt = {});

}  // namespace kaival::lineage
