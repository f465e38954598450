#pragma once
// Pairwise lineage analysis: per-component tests, multiple-testing correction,
// layer mapping across depths, and the pair verdict; plus all-pairs analysis
// of several models with families (clusters) and control models.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lineage/component_tests.h"
#include "lineage/model.h"
#include "lineage/signatures.h"

namespace kaival::lineage {

struct Options {
  double alpha = 0.01;          // after correction
  int64_t max_tokens = 4096;    // shared tokens used for embedding / head tests
  int64_t max_units = 128;      // hidden units of A sampled for unit matching
  int64_t max_coords = 128;     // residual coordinates used by unit / Gram tests and embedding columns
  double layer_fraction = 0.5;  // share of comparable layers (attn or mlp matching) needed for "derived"
  bool aligned_tests = true;    // run rotation-aligned tests when the bases do not coincide
  double convergence_allowance = 0.25;  // share of units an unrelated model may match after alignment
  bool activations = true;      // REEF-style activation CKA (evidence only) when the engine can run both
  Progress progress;
};

struct ComponentResult {
  std::string name;    // embedding, head, final_norm, layer.N.attn, layer.N.mlp, layer.N.norm, vision_encoder, ...
  std::string kind;    // embedding, head, attn, mlp, norm, final_norm, vision_encoder, audio_encoder
  int layer = -1;      // layer of A (and of B, see layer_b)
  int layer_b = -1;
  std::string verdict = "not_comparable";  // derived | independent | not_comparable
  std::string reason;                      // why not comparable
  bool decides = true;                     // counts toward the pair verdict (norms never do)
  std::vector<TestOutcome> tests;
  double log10p = 0;       // this component's tests combined (Bonferroni over tests)
  double log10p_adj = 0;   // after Holm over the pair's deciding components
  std::string method;      // how log10p was formed
  double statistic = 0;    // statistic of the test with the smallest p
  std::string statistic_name;
  nlohmann::json caveats = nlohmann::json::object();
};

struct PairResult {
  std::string a, b;
  std::string verdict;  // independent | derived | partial
  double log10p = 0;
  std::string combination;
  std::vector<ComponentResult> components;
  nlohmann::json layer_map;  // null when layers were compared index by index
  nlohmann::json tokenizer, config, alignment;
  nlohmann::json activations;        // evidence only; null when not computed
  std::vector<std::string> matched;  // deciding components with verdict derived
  std::vector<std::string> notes;
};

// One model prepared for analysis: opened and summarised once.
struct Prepared {
  std::unique_ptr<Model> model;
  ModelFeatures features;
  std::string label;  // as given on the command line
};
Prepared prepare(const std::string& path, const Options& opt);

PairResult analyze_pair(const Prepared& a, const Prepared& b, const Options& opt);

struct MultiResult {
  std::vector<PairResult> pairs;              // every pair of the models
  std::vector<PairResult> control_pairs;      // each model against each control
  std::vector<std::vector<std::string>> families;  // connected by "derived"
  nlohmann::json control_reference;           // per method: largest -log10 p over control pairs
};
MultiResult analyze_all(const std::vector<Prepared>& models, const std::vector<Prepared>& controls,
                        const Options& opt);

}  // namespace kaival::lineage
