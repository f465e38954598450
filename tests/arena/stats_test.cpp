// Arena statistics against independent reference values computed by
// tools/gen_arena_reference.py (numpy: MM for Bradley-Terry, pinv logistic
// regression for style control, pairwise-difference Krippendorff's alpha).
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "arena/agreement.h"
#include "arena/bradley_terry.h"
#include "arena/expert_scores.h"
#include "arena/quantile.h"
#include "arena/style_control.h"
#include "core/error.h"

using namespace kaival::arena;
using nlohmann::json;

namespace {

const json& reference() {
  static const json ref = [] {
    std::ifstream in(std::string(KAIVAL_TESTDATA) + "/arena/reference.json");
    return json::parse(in);
  }();
  return ref;
}

Outcome outcome_of(const std::string& w) {
  if (w == "model_a") return Outcome::WinA;
  if (w == "model_b") return Outcome::WinB;
  if (w == "tie") return Outcome::Tie;
  return Outcome::BothBad;
}

std::vector<Battle> battles_of(const json& c) {
  std::vector<Battle> out;
  for (const auto& b : c.at("battles")) out.push_back({b[0].get<int>(), b[1].get<int>(), outcome_of(b[2])});
  return out;
}

}  // namespace

TEST(ArenaBradleyTerry, MatchesIndependentMmSolver) {
  for (const auto& c : reference().at("bt")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    auto battles = battles_of(c);
    PairTable t = aggregate(c.at("models"), battles);
    EXPECT_EQ(t.battles(), static_cast<int64_t>(battles.size()));
    BtOptions o;
    o.ridge = 0;  // the exact MLE, as the reference computes it
    auto r = fit_bradley_terry(t, o);
    ASSERT_EQ(r.size(), c.at("ratings").size());
    for (size_t i = 0; i < r.size(); ++i) EXPECT_NEAR(r[i], c["ratings"][i].get<double>(), 1e-6) << i;
    // The default small ridge moves ratings by far less than a rating point.
    auto rr = fit_bradley_terry(t);
    for (size_t i = 0; i < r.size(); ++i) EXPECT_NEAR(rr[i], r[i], 0.05);
  }
}

TEST(ArenaBradleyTerry, AnchorShiftsScaleOnly) {
  const auto& c = reference().at("bt")[0];
  PairTable t = aggregate(c.at("models"), battles_of(c));
  BtOptions o;
  o.ridge = 0;
  auto base = fit_bradley_terry(t, o);
  o.anchor = 2;
  o.base = 1200;
  auto anchored = fit_bradley_terry(t, o);
  EXPECT_NEAR(anchored[2], 1200.0, 1e-9);
  for (size_t i = 0; i < base.size(); ++i) EXPECT_NEAR(anchored[i] - anchored[2], base[i] - base[2], 1e-6);
}

TEST(ArenaBradleyTerry, WinRateMatrixCountsTiesHalf) {
  const auto& c = reference().at("bt")[1];
  PairTable t = aggregate(c.at("models"), battles_of(c));
  auto w = win_rate_matrix(t);
  const auto& ref = c.at("win_rate");
  for (size_t i = 0; i < w.size(); ++i)
    for (size_t j = 0; j < w.size(); ++j) {
      if (ref[i][j].is_null())
        EXPECT_TRUE(std::isnan(w[i][j]));
      else
        EXPECT_NEAR(w[i][j], ref[i][j].get<double>(), 1e-12);
    }
}

TEST(ArenaBradleyTerry, BootstrapWidthsMatchFisherInformationAndAreSeeded) {
  const auto& c = reference().at("bt")[0];
  PairTable t = aggregate(c.at("models"), battles_of(c));
  BootstrapOptions b;
  b.resamples = 400;
  b.seed = 7;
  b.threads = 2;
  Leaderboard lb = rate(t, {}, b);
  for (size_t i = 0; i < lb.models.size(); ++i) {
    double se = c["rating_se"][i].get<double>();
    double width = lb.models[i].ci_high - lb.models[i].ci_low;
    // Percentile interval of an asymptotically normal estimate: ~2 * 1.96 * se.
    EXPECT_NEAR(width / (2 * 1.959964 * se), 1.0, 0.2) << i;
    EXPECT_LT(lb.models[i].ci_low, lb.models[i].rating);
    EXPECT_GT(lb.models[i].ci_high, lb.models[i].rating);
  }
  b.threads = 1;  // same seed, other thread count: same resamples
  Leaderboard again = rate(t, {}, b);
  for (size_t i = 0; i < lb.models.size(); ++i) EXPECT_DOUBLE_EQ(again.models[i].ci_low, lb.models[i].ci_low);
}

TEST(ArenaBradleyTerry, OverlappingIntervalsShareRanks) {
  std::vector<double> lo{1100, 1090, 900, 1000}, hi{1200, 1150, 950, 1095};
  // 0 and 1 overlap -> both 1; 3 is below 0's interval, overlaps 1 -> 2; 2 below all -> 4.
  EXPECT_EQ(overlap_ranks(lo, hi), (std::vector<int>{1, 1, 4, 2}));
}

TEST(ArenaBradleyTerry, SeparatedModelStaysFiniteAndInvalidBattlesAreRejected) {
  std::vector<Battle> b(20, Battle{0, 1, Outcome::WinA});
  b.push_back({1, 2, Outcome::Tie});
  auto r = fit_bradley_terry(aggregate(3, b));
  for (double x : r) EXPECT_TRUE(std::isfinite(x));
  EXPECT_GT(r[0], r[1]);
  std::vector<Battle> bad{{0, 0, Outcome::WinA}};
  EXPECT_THROW(aggregate(3, bad), kaival::FormatError);
  bad = {{0, 5, Outcome::WinA}};
  EXPECT_THROW(aggregate(3, bad), kaival::FormatError);
}

TEST(ArenaStyleControl, MatchesIndependentLogisticRegression) {
  const auto& c = reference().at("style");
  std::vector<StyledBattle> battles;
  auto feat = [](const json& v) {
    return StyleFeatures{v[0].get<double>(), v[1].get<double>(), v[2].get<double>(), v[3].get<double>()};
  };
  for (const auto& b : c.at("battles"))
    battles.push_back({{b[0].get<int>(), b[1].get<int>(), outcome_of(b[2])}, feat(b[3]), feat(b[4])});
  BtOptions o;
  o.ridge = 0;
  auto r = fit_style_controlled(c.at("models"), battles, o);
  for (size_t i = 0; i < r.ratings.size(); ++i) EXPECT_NEAR(r.ratings[i], c["ratings"][i].get<double>(), 1e-6);
  for (size_t k = 0; k < 4; ++k) EXPECT_NEAR(r.coefficients[k], c["coefficients"][k].get<double>(), 1e-8);
  EXPECT_GT(r.coefficients[0], 0.2);  // length really pushed the simulated votes
}

TEST(ArenaStyleControl, FeaturesFromMarkdown) {
  auto f = style_of("# Title\n\n- one\n* two\n12. three\nplain **bold** and **more**\n  ## sub");
  EXPECT_EQ(f.headers, 2);
  EXPECT_EQ(f.list_items, 3);
  EXPECT_EQ(f.bold, 2);
  EXPECT_EQ(f.length, 67);
}

TEST(ArenaAgreement, KrippendorffAlphaMatchesReference) {
  for (const auto& c : reference().at("alpha")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    auto units = c.at("units").get<std::vector<std::vector<double>>>();
    EXPECT_NEAR(krippendorff_alpha(units, AlphaMetric::Interval), c.at("interval").get<double>(), 1e-12);
    EXPECT_NEAR(krippendorff_alpha(units, AlphaMetric::Ordinal), c.at("ordinal").get<double>(), 1e-12);
  }
  EXPECT_TRUE(std::isnan(krippendorff_alpha({{3, 3}, {3, 3, 3}}, AlphaMetric::Interval)));
  EXPECT_TRUE(std::isnan(krippendorff_alpha({{1}, {2}}, AlphaMetric::Ordinal)));
  EXPECT_DOUBLE_EQ(krippendorff_alpha({{1, 1}, {2, 2}, {5, 5}}, AlphaMetric::Interval), 1.0);
}

TEST(ArenaExpertScores, TrimmedMeanScoresAlphaAndSeverity) {
  const auto& e = reference().at("expert");
  Rubric rubric;
  for (const auto& c : e.at("criteria"))
    rubric.criteria.push_back({c.at("name"), c.at("weight"), c.at("min"), c.at("max"), {}});
  auto items = e.at("items").get<std::map<std::string, std::string>>();
  std::vector<Score> scores;
  for (const auto& s : e.at("scores")) scores.push_back({s.at("item"), s.at("reviewer"), s.at("criterion"), s.at("value")});
  ExpertScoreOptions o;
  o.resamples = 200;
  ExpertSummary sum = summarize_expert_reviews(rubric, items, scores, o);
  ASSERT_EQ(sum.models.size(), 3u);
  for (const auto& m : sum.models) {
    EXPECT_NEAR(m.score, e["model_scores"][m.model].get<double>(), 1e-9) << m.model;
    EXPECT_EQ(m.reviews, 24);
    EXPECT_LE(m.ci_low, m.score);
    EXPECT_GE(m.ci_high, m.score);
  }
  for (const auto& [name, a] : sum.alpha) {
    EXPECT_NEAR(a.interval, e["alpha"][name]["interval"].get<double>(), 1e-12);
    EXPECT_NEAR(a.ordinal, e["alpha"][name]["ordinal"].get<double>(), 1e-12);
  }
  // Reviewer r3 was simulated one point harsher than the others.
  const ReviewerSeverity* r3 = nullptr;
  for (const auto& s : sum.severity)
    if (s.reviewer == "r3") r3 = &s;
  ASSERT_NE(r3, nullptr);
  EXPECT_LT(r3->severity, -0.4);
  scores.push_back({"m1-item0", "r0", "accuracy", 9});
  EXPECT_THROW(summarize_expert_reviews(rubric, items, scores, o), kaival::FormatError);
}

TEST(ArenaQuantile, LinearInterpolationAndTrim) {
  std::vector<double> v{4, 1, 3, 2};
  EXPECT_DOUBLE_EQ(quantile(v, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(quantile(v, 0.25), 1.75);
  std::vector<double> w{100, 1, 2, 3, 4, 5, 6, 7, 8, -50};
  EXPECT_DOUBLE_EQ(trimmed_mean(w, 0.1), 4.5);
}
