#pragma once
// Statistics for lineage tests: tail probabilities that stay accurate far in
// the tail, correlation, p-value combination and multiple-testing corrections,
// and exact bounds for matching statistics.
//
// p-values are carried as log10(p) so that values like 1e-400 (which a strong
// derivation produces) remain representable and comparable. Natural-log
// helpers are internal to stats.cpp.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace kaival::lineage {

// ---- tail probabilities (log10 of the upper tail P(X > x)) -----------------
double log10_normal_sf(double z);              // standard normal
double log10_t_sf(double t, double df);        // Student t, df > 0
double log10_chi2_sf(double x, double df);     // chi-square, df > 0
double log10_binomial_sf(int64_t k, int64_t n, double p);  // P(X >= k), X ~ Bin(n, p)
// Regularized incomplete functions in natural log, exposed for tests.
double log_gamma_q(double a, double x);        // log Q(a, x), upper regularized gamma
double log_beta_inc(double a, double b, double x);  // log I_x(a, b)

// p as a double from log10 p (0 when it underflows).
double pow10_clamped(double log10p);

// ---- correlation -----------------------------------------------------------
// Average ranks (1-based), ties get the mean of their positions.
std::vector<double> ranks(std::span<const double> x);
double pearson(std::span<const double> x, std::span<const double> y);
double spearman(std::span<const double> x, std::span<const double> y);
// One-sided p (log10) for a correlation r over n pairs being this large under
// independence, via the t transform t = r sqrt((n-2)/(1-r^2)).
double log10_correlation_p(double r, int64_t n);

// ---- combination of p-values (input and output log10 p) ---------------------
// Fisher: -2 sum ln p ~ chi2(2k). Valid only for independent p-values.
double fisher_combine(std::span<const double> log10p);
// Stouffer: sum z_i / sqrt(k). Valid only for independent p-values.
double stouffer_combine(std::span<const double> log10p);
// Bonferroni on the minimum: min(1, k * min p). Valid under any dependence.
double bonferroni_min(std::span<const double> log10p);
// Cauchy combination (Liu & Xie 2020), equal weights; valid for the
// dependence found in practice (exact under independence, asymptotically
// valid under arbitrary correlation for small p).
double cauchy_combine(std::span<const double> log10p);

// ---- multiple testing (input and output log10 p, same order) ----------------
std::vector<double> holm_adjust(std::span<const double> log10p);
std::vector<double> bh_adjust(std::span<const double> log10p);

// ---- exact bounds for matching statistics -----------------------------------
// Under the null, the matching of n coordinates of one model to those of
// another is composed with a uniformly random (signed) permutation. Then the
// number F of coordinates matched to themselves satisfies
//   P(F >= m) <= 1/m!            (unsigned)
//   P(F >= m) <= 1/(m! 2^m)      (signed: index and sign must agree)
// (union bound over m-subsets; valid for any matching rule that is
// equivariant, including a many-to-one argmax).
double log10_fixed_points_bound(int64_t m, bool signed_match);
// Exact upper tail of the number of fixed points of a uniform random
// permutation of n items (rencontres distribution): P(F >= m).
double log10_rencontres_sf(int64_t m, int64_t n);
// Longest increasing run of matched indices: for n_a matched coordinates,
//   P(LIS >= m) <= C(n_a, m) / m!   (times 2^-m when signs must agree).
double log10_increasing_bound(int64_t m, int64_t n_a, bool signed_match);

// Longest strictly increasing subsequence of `seq`, ignoring entries < 0.
// Returns its length; `pick` (optional) gets the positions used.
int64_t longest_increasing(std::span<const int64_t> seq, std::vector<int64_t>* pick = nullptr);

}  // namespace kaival::lineage
