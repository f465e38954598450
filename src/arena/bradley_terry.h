#pragma once
// Bradley-Terry ratings for blind pairwise battles, fitted by maximum
// likelihood, with bootstrap confidence intervals, overlap-aware ranks and a
// win-rate matrix. Battles are first aggregated into per-pair counts, so a fit
// and each bootstrap resample cost O(pairs), not O(battles).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kaival::arena {

// Outcome of one battle, from model_a's side. A tie and "both bad" each count
// half a win for both sides (as Chatbot Arena does).
enum class Outcome : uint8_t { WinA = 0, WinB = 1, Tie = 2, BothBad = 3 };

struct Battle {
  int a = 0;  // index of model_a in the model list
  int b = 0;  // index of model_b
  Outcome outcome = Outcome::Tie;
};

// Counts for an unordered pair i < j.
struct PairCount {
  int i = 0, j = 0;
  int64_t wins_i = 0, wins_j = 0, ties = 0;
  int64_t total() const { return wins_i + wins_j + ties; }
};

struct PairTable {
  int models = 0;
  std::vector<PairCount> pairs;  // only pairs with at least one battle, sorted by (i, j)
  int64_t battles() const;
};

// Throws FormatError when an index is outside [0, models) or a == b.
PairTable aggregate(int models, std::span<const Battle> battles);

struct BtOptions {
  double base = 1000.0;   // rating of the average model (or of `anchor`)
  double scale = 400.0;   // Elo points per factor-10 in odds
  std::optional<int> anchor;  // model fixed at `base`; default: mean rating = base
  // L2 penalty on natural-log strengths (centred). Keeps the fit finite when a
  // model wins or loses every battle (possible in small bootstrap resamples);
  // negligible against real counts. 0 = the exact MLE.
  double ridge = 1e-4;
  int max_iter = 100;
  double tol = 1e-10;     // stop when the largest Newton step (log scale) is below this
};

// Ratings on the Elo-like scale: base + scale * log10(strength).
std::vector<double> fit_bradley_terry(const PairTable& table, const BtOptions& options = {});

struct BootstrapOptions {
  int resamples = 1000;
  uint64_t seed = 1;
  int threads = 0;        // 0 = hardware concurrency
  double level = 0.95;    // central interval
};

struct ModelRating {
  double rating = 0;
  double ci_low = 0, ci_high = 0;
  int rank = 0;           // 1 + number of models whose interval lies entirely above
  int64_t battles = 0;
  double win_rate = 0;    // (wins + ties/2) / battles; 0 without battles
};

struct Leaderboard {
  std::vector<ModelRating> models;  // same order as the model list
  int resamples = 0;
  // win_rate[i][j]: share of i's battles against j that i won (ties half); NaN
  // without battles between them. Diagonal NaN.
  std::vector<std::vector<double>> win_rate;
};

// Resamples are multinomial over the pair-outcome cells with the observed
// total; resample r uses its own RNG stream derived from (seed, r), so the
// result does not depend on the thread count.
std::vector<std::vector<double>> bootstrap_ratings(const PairTable& table, const BtOptions& bt,
                                                   const BootstrapOptions& boot);

Leaderboard rate(const PairTable& table, const BtOptions& bt = {}, const BootstrapOptions& boot = {});

// Ranks that tie when intervals overlap: rank = 1 + #models whose ci_low > my ci_high.
std::vector<int> overlap_ranks(std::span<const double> ci_low, std::span<const double> ci_high);

std::vector<std::vector<double>> win_rate_matrix(const PairTable& table);

// Predicted probability that i beats j under the ratings.
double expected_score(double rating_i, double rating_j, double scale = 400.0);

}  // namespace kaival::arena
