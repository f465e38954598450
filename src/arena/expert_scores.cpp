#include "arena/expert_scores.h"

#include <random>

#include "arena/quantile.h"
#include "core/error.h"

namespace kaival::arena {

const Criterion* Rubric::find(const std::string& name) const {
  for (const auto& c : criteria)
    if (c.name == name) return &c;
  return nullptr;
}

ExpertSummary summarize_expert_reviews(const Rubric& rubric, const std::map<std::string, std::string>& item_model,
                                       const std::vector<Score>& scores, const ExpertScoreOptions& o) {
  ExpertSummary out;
  // (item, reviewer) -> weighted sums; item order kept for the bootstrap.
  struct Review {
    double weighted = 0, weights = 0;
  };
  std::map<std::string, std::map<std::string, Review>> by_item;
  std::map<std::string, std::map<std::string, std::vector<double>>> by_criterion;  // criterion -> item -> values
  for (const auto& s : scores) {
    const Criterion* c = rubric.find(s.criterion);
    if (!c) fail("expert reviews", "score for unknown criterion '{}'", s.criterion);
    if (!item_model.count(s.item)) fail("expert reviews", "score for unknown item '{}'", s.item);
    if (!(s.value >= c->min && s.value <= c->max))
      fail("expert reviews", "score {} for '{}' outside {}..{}", s.value, s.criterion, c->min, c->max);
    Review& r = by_item[s.item][s.reviewer];
    double span = c->max - c->min;
    r.weighted += c->weight * (span > 0 ? (s.value - c->min) / span : 1.0);
    r.weights += c->weight;
    by_criterion[s.criterion][s.item].push_back(s.value);
  }
  // Per model: the items with their review totals.
  std::map<std::string, std::vector<std::vector<double>>> model_items;
  for (const auto& [item, reviewers] : by_item) {
    std::vector<double> totals;
    for (const auto& [who, r] : reviewers)
      if (r.weights > 0) totals.push_back(100.0 * r.weighted / r.weights);
    if (!totals.empty()) model_items[item_model.at(item)].push_back(std::move(totals));
  }
  const double tail = (1.0 - o.level) / 2.0;
  for (const auto& [model, items] : model_items) {
    ModelExpertScore m;
    m.model = model;
    m.items = static_cast<int>(items.size());
    std::vector<double> all;
    for (const auto& t : items) all.insert(all.end(), t.begin(), t.end());
    m.reviews = static_cast<int>(all.size());
    m.score = trimmed_mean(all, o.trim);
    std::mt19937_64 rng(o.seed ^ std::hash<std::string>{}(model));
    std::uniform_int_distribution<size_t> pick(0, items.size() - 1);
    std::vector<double> boot, sample;
    for (int r = 0; r < o.resamples; ++r) {
      sample.clear();
      for (size_t k = 0; k < items.size(); ++k) {
        const auto& t = items[pick(rng)];
        sample.insert(sample.end(), t.begin(), t.end());
      }
      boot.push_back(trimmed_mean(sample, o.trim));
    }
    m.ci_low = boot.empty() ? m.score : quantile(boot, tail);
    m.ci_high = boot.empty() ? m.score : quantile(boot, 1.0 - tail);
    out.models.push_back(m);
  }
  for (const auto& c : rubric.criteria) {
    std::vector<std::vector<double>> units;
    auto it = by_criterion.find(c.name);
    if (it != by_criterion.end())
      for (const auto& [item, vals] : it->second) units.push_back(vals);
    out.alpha[c.name] = {krippendorff_alpha(units, AlphaMetric::Interval),
                         krippendorff_alpha(units, AlphaMetric::Ordinal)};
  }
  out.severity = reviewer_severity(scores);
  return out;
}

}  // namespace kaival::arena
