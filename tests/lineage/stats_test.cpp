// Statistics library against reference values computed independently by
// tools/gen_lineage_fixtures.py (mpmath / numpy / brute force).
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lineage/linalg.h"
#include "lineage/stats.h"

using namespace kaival::lineage;

namespace {

// Returned by reference: range-for over a member of a temporary would dangle.
const nlohmann::json& reference() {
  static const nlohmann::json j = [] {
    std::ifstream f(std::string(KAIVAL_TESTDATA) + "/lineage/stats_reference.json");
    EXPECT_TRUE(f.good());
    return nlohmann::json::parse(f);
  }();
  return j;
}

std::vector<double> vec(const nlohmann::json& j) { return j.get<std::vector<double>>(); }

MatD mat(const nlohmann::json& j) {
  MatD m(j.size(), j[0].size());
  for (size_t i = 0; i < j.size(); ++i)
    for (size_t k = 0; k < j[i].size(); ++k) m(i, k) = j[i][k].get<double>();
  return m;
}

// Relative tolerance on log10 p: 1e-9 relative, or 1e-10 absolute near 0.
void expect_log10(double got, double want) {
  EXPECT_NEAR(got, want, 1e-9 * std::max(1.0, std::fabs(want))) << "want " << want;
}

}  // namespace

TEST(LineageStats, NormalTailMatchesMpmathIncludingFarTail) {
  for (auto& row : reference()["normal_sf"]) expect_log10(log10_normal_sf(row[0]), row[1]);
}

TEST(LineageStats, StudentTailMatchesMpmath) {
  for (auto& row : reference()["t_sf"]) {
    SCOPED_TRACE(row.dump());
    EXPECT_NEAR(log10_t_sf(row[0], row[1]), row[2].get<double>(), 1e-7 * std::max(1.0, std::fabs(row[2].get<double>())));
  }
}

TEST(LineageStats, ChiSquareTailMatchesMpmath) {
  for (auto& row : reference()["chi2_sf"]) {
    SCOPED_TRACE(row.dump());
    expect_log10(log10_chi2_sf(row[0], row[1]), row[2]);
  }
}

TEST(LineageStats, BinomialTailMatchesExactSum) {
  for (auto& row : reference()["binomial_sf"]) {
    SCOPED_TRACE(row.dump());
    EXPECT_NEAR(log10_binomial_sf(row[0], row[1], row[2]), row[3].get<double>(),
                1e-8 * std::max(1.0, std::fabs(row[3].get<double>())));
  }
}

TEST(LineageStats, CorrelationsAndTiedRanks) {
  auto c = reference()["correlation"];
  auto x = vec(c["x"]), y = vec(c["y"]);
  EXPECT_NEAR(pearson(x, y), c["pearson"].get<double>(), 1e-12);
  EXPECT_NEAR(spearman(x, y), c["spearman"].get<double>(), 1e-12);
  auto r = ranks(x);
  auto want = vec(c["ranks_x"]);
  for (size_t i = 0; i < r.size(); ++i) EXPECT_DOUBLE_EQ(r[i], want[i]);
}

TEST(LineageStats, CombinationsAndCorrections) {
  auto c = reference()["combine"];
  auto lp = vec(c["log10p"]);
  expect_log10(fisher_combine(lp), c["fisher"]);
  EXPECT_NEAR(stouffer_combine(lp), c["stouffer"].get<double>(), 1e-7);
  expect_log10(bonferroni_min(lp), c["bonferroni_min"]);
  EXPECT_NEAR(cauchy_combine(lp), c["cauchy"].get<double>(), 1e-8);
  auto holm = holm_adjust(lp), bh = bh_adjust(lp);
  auto want_holm = vec(c["holm"]), want_bh = vec(c["bh"]);
  for (size_t i = 0; i < lp.size(); ++i) {
    EXPECT_NEAR(holm[i], want_holm[i], 1e-12);
    EXPECT_NEAR(bh[i], want_bh[i], 1e-12);
  }
}

TEST(LineageStats, FarTailCombinationsStayFinite) {
  auto c = reference()["combine_far"];
  auto lp = vec(c["log10p"]);
  expect_log10(fisher_combine(lp), c["fisher"]);
  EXPECT_NEAR(cauchy_combine(lp), c["cauchy"].get<double>(), 1e-6);
  EXPECT_NEAR(bonferroni_min(lp), -400 + std::log10(3.0), 1e-12);
  EXPECT_TRUE(std::isfinite(stouffer_combine(lp)));
  EXPECT_LT(stouffer_combine(lp), -300);
}

TEST(LineageStats, RencontresTailAndBounds) {
  for (auto& row : reference()["rencontres_sf"]) {
    SCOPED_TRACE(row.dump());
    double exact = log10_rencontres_sf(row[0], row[1]);
    expect_log10(exact, row[2]);
    // The union bound 1/m! is never below the exact tail.
    EXPECT_GE(log10_fixed_points_bound(row[0], false) + 1e-12, exact);
  }
  EXPECT_NEAR(log10_fixed_points_bound(3, true), -std::log10(6.0 * 8.0), 1e-12);
  EXPECT_NEAR(log10_increasing_bound(3, 10, false), std::log10(120.0 / 6.0) > 0 ? 0.0 : 0.0, 1e-12);
  EXPECT_NEAR(log10_increasing_bound(6, 10, false), std::log10(210.0 / 720.0), 1e-12);
  EXPECT_NEAR(log10_increasing_bound(4, 4, false), -std::log10(24.0), 1e-12);
}

// The fixed-point bound is a valid p-value: simulate random permutations of
// a many-to-one matching and check P(F >= m) <= 1/m!.
TEST(LineageStats, FixedPointBoundHoldsForManyToOneMatching) {
  std::mt19937_64 rng(7);
  const int n = 40, trials = 20000;
  std::vector<int64_t> base(n);
  for (int i = 0; i < n; ++i) base[i] = (i * 7) % 13;  // many-to-one map into 13 values
  std::vector<int64_t> perm(n);
  std::vector<int> count(6, 0);
  for (int t = 0; t < trials; ++t) {
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    int f = 0;
    for (int i = 0; i < n; ++i) f += perm[base[i]] == i;
    for (int m = 1; m < 6; ++m) count[m] += f >= m;
  }
  for (int m = 1; m < 6; ++m) {
    double freq = static_cast<double>(count[m]) / trials;
    double bound = std::pow(10.0, log10_fixed_points_bound(m, false));
    EXPECT_LE(freq, bound + 3 * std::sqrt(bound / trials)) << "m=" << m;
  }
}

TEST(LineageStats, LongestIncreasingSubsequence) {
  std::vector<int64_t> s{3, -1, 1, 4, 1, 5, 9, 2, 6, -1, 5, 3, 5};
  std::vector<int64_t> pick;
  EXPECT_EQ(longest_increasing(s, &pick), 4);  // e.g. 3 4 5 6 or 1 2 3 5
  for (size_t i = 1; i < pick.size(); ++i) {
    EXPECT_LT(pick[i - 1], pick[i]);
    EXPECT_LT(s[pick[i - 1]], s[pick[i]]);
  }
  EXPECT_EQ(pick.size(), 4u);
}

TEST(LineageLinalg, AssignmentMatchesBruteForce) {
  for (auto& c : reference()["assignment"]) {
    MatD cost = mat(c["cost"]);
    auto a = linear_assignment(cost);
    double total = 0;
    for (size_t i = 0; i < a.size(); ++i) total += cost(i, a[i]);
    EXPECT_NEAR(total, c["min_cost"].get<double>(), 1e-9);
  }
}

TEST(LineageLinalg, AssignmentRecoversPermutation) {
  std::mt19937_64 rng(3);
  const int n = 300;
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::normal_distribution<double> nd;
  MatD sim(n, n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) sim(i, j) = 0.1 * nd(rng) + (perm[i] == j ? 1.0 : 0.0);
  auto a = linear_assignment_max(sim);
  for (int i = 0; i < n; ++i) EXPECT_EQ(a[i], perm[i]);
}

TEST(LineageLinalg, ProcrustesMatchesNumpy) {
  auto p = reference()["procrustes"];
  MatD r = orthogonal_procrustes(mat(p["a"]), mat(p["b"]));
  MatD want = mat(p["r"]);
  EXPECT_LT((r - want).cwiseAbs().maxCoeff(), 1e-9);
}

TEST(LineageLinalg, CkaMatchesNumpy) {
  auto c = reference()["cka"];
  EXPECT_NEAR(linear_cka(mat(c["x"]), mat(c["y"])), c["cka"].get<double>(), 1e-12);
}

TEST(LineageLinalg, GramTestMomentsAreExact) {
  auto g = reference()["gram_moments"];
  MatD k = mat(g["k"]), l = mat(g["l"]);
  auto t = gram_similarity_test(k, l);
  double want_z = (g["t"].get<double>() - g["mean"].get<double>()) / g["sd"].get<double>();
  EXPECT_NEAR(t.z, want_z, 1e-9);
}
