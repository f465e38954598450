#pragma once
// Final expert scores. Each (item, reviewer) review becomes a 0-100 total:
// the weighted mean of its criterion scores, each rescaled from the rubric's
// [min, max] to [0, 1]. A model's score is the 10% trimmed mean of its
// reviews' totals (robust to one over-kind or over-harsh reviewer); its
// interval comes from a bootstrap over the model's items.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "arena/agreement.h"

namespace kaival::arena {

struct Criterion {
  std::string name;
  double weight = 1.0;
  double min = 1, max = 5;
  std::map<double, std::string> anchors;  // scale point -> description
};

struct Rubric {
  std::vector<Criterion> criteria;
  const Criterion* find(const std::string& name) const;
};

struct ExpertScoreOptions {
  double trim = 0.10;
  int resamples = 1000;
  uint64_t seed = 1;
  double level = 0.95;
};

struct ModelExpertScore {
  std::string model;
  double score = 0;  // 0-100
  double ci_low = 0, ci_high = 0;
  int reviews = 0;   // (item, reviewer) totals
  int items = 0;
};

struct CriterionAlpha {
  double interval = 0, ordinal = 0;
};

struct ExpertSummary {
  std::vector<ModelExpertScore> models;         // sorted by model name
  std::map<std::string, CriterionAlpha> alpha;  // per criterion
  std::vector<ReviewerSeverity> severity;
};

// `item_model` maps each item to the model it evaluates. Scores for unknown
// criteria, unknown items or outside the criterion's scale are a FormatError.
ExpertSummary summarize_expert_reviews(const Rubric& rubric, const std::map<std::string, std::string>& item_model,
                                       const std::vector<Score>& scores, const ExpertScoreOptions& options = {});

}  // namespace kaival::arena
