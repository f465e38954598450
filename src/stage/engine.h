#pragma once
// The stage engine: scores every entered team by the program's rules, applies
// the gates, ranks, decides who advances, and measures how sure the decision
// is (bootstrap over items, reviews and battles; small weight changes). The
// result is `kaival.stage-result/1` JSON in which every number names its
// sources (file, SHA-256, key).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stage/inputs.h"
#include "stage/program.h"

namespace kaival::stage {

struct TeamSummary {
  std::string team, model, target;
  Bilingual name;
  bool eligible = true, repechage = false;
  std::string decision;  // advance / eliminate / ineligible
  int rank = 0;          // 0 for ineligible teams
  double total = 0, total_ci_low = 0, total_ci_high = 0;
  double frontier = 0, diffusion = 0;
  double advance_probability = 0;
  std::vector<std::pair<std::string, double>> parts;  // part id -> points
};

struct StageResult {
  nlohmann::json doc;              // the kaival.stage-result/1 document
  std::vector<TeamSummary> teams;  // in rank order, ineligible last
  std::vector<std::string> warnings;
  std::vector<FileRef> inputs;
};

struct RunOptions {
  std::string stage;        // "" = the program's last stage
  int replicates = -1;      // -1: as the program file says
  bool timestamp = true;    // false: no creation time (reproducible bytes)
};

StageResult run(const Program& program, const RunOptions& opt = {});

// Terminal table (Korean and English headers).
std::string summary_table(const StageResult& r);

// Numbers that differ between two stage results (ignoring creation time);
// empty when identical. Each line names the JSON path and both values.
std::vector<std::string> diff_results(const nlohmann::json& a, const nlohmann::json& b);

}  // namespace kaival::stage
