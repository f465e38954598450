#pragma once
// Inter-rater agreement and rater statistics for expert reviews.
#include <string>
#include <vector>

namespace kaival::arena {

enum class AlphaMetric { Interval, Ordinal };

// Krippendorff's alpha. `units[u]` holds the values the coders gave unit u
// (missing ratings are simply absent); units with fewer than two values are
// not pairable and are ignored. Returns NaN when nothing is pairable or every
// pairable value is the same (no expected disagreement).
double krippendorff_alpha(const std::vector<std::vector<double>>& units, AlphaMetric metric);

struct Score {
  std::string item;
  std::string reviewer;
  std::string criterion;
  double value = 0;
};

// How a reviewer's scores sit against the other reviewers of the same item and
// criterion: severity = mean(own - mean of others); negative means harsher.
struct ReviewerSeverity {
  std::string reviewer;
  double severity = 0;
  double sd = 0;        // standard deviation of those deviations
  double mean_score = 0;
  int compared = 0;     // scores that had at least one other reviewer
  int scores = 0;
};
std::vector<ReviewerSeverity> reviewer_severity(const std::vector<Score>& scores);

}  // namespace kaival::arena
