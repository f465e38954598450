#pragma once
// kaival compare: a team's results relative to its target model's, as the
// program scores them: ratio of simple means over a benchmark set, and per
// benchmark, with bootstrap confidence intervals over items and a paired
// sign-flip test over items matched by doc_id (samples_<task>.jsonl).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kaival::eval {

struct CompareOptions {
  std::vector<std::string> tasks;  // benchmark set; default: every task both results share
  int resamples = 2000;
  uint64_t seed = 1234;
};

// `team` and `target` are results.json files (or their directories). Returns
// {"schema": "kaival.compare/1", "benchmarks": [{task, metric, team, target, ratio, ci_low, ci_high,
//   matched, mean_diff, p_value}], "overall": {team_mean, target_mean, ratio, ci_low, ci_high}, "manifest"}.
nlohmann::ordered_json compare_results(const std::string& team, const std::string& target, const CompareOptions& opt);
std::string compare_table(const nlohmann::ordered_json& c);

}  // namespace kaival::eval
