#pragma once
// Style control: Bradley-Terry as a logistic regression with extra covariates
// (answer length, markdown headers, lists, bold) so a model's rating is not
// bought by longer or more decorated answers. Style features enter as the
// normalised difference (a - b) / (a + b), then z-scored across battles.
#include <string_view>
#include <vector>

#include "arena/bradley_terry.h"

namespace kaival::arena {

struct StyleFeatures {
  double length = 0;     // characters (UTF-8 bytes)
  double headers = 0;    // markdown "#" header lines
  double list_items = 0; // "- ", "* ", "1. " lines
  double bold = 0;       // "**" pairs
};
StyleFeatures style_of(std::string_view answer);

struct StyledBattle {
  Battle battle;
  StyleFeatures style_a, style_b;
};

struct StyleControlResult {
  std::vector<double> ratings;       // models, Elo-like scale (as fit_bradley_terry)
  std::vector<double> coefficients;  // per z-scored covariate: length, headers, list_items, bold (log-odds)
  static constexpr const char* kCovariates[4] = {"length", "headers", "list_items", "bold"};
};

StyleControlResult fit_style_controlled(int models, std::span<const StyledBattle> battles,
                                        const BtOptions& options = {});

}  // namespace kaival::arena
