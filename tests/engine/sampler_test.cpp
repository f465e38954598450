// Sampler filters on hand-made logit vectors whose distributions are worked
// out here independently (softmax in double), plus seeded determinism.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "engine/sampler.h"

namespace kaival::engine {
namespace {

// Logits whose softmax is exactly proportional to `p`.
std::vector<float> logits_of(const std::vector<double>& p) {
  std::vector<float> l;
  for (double x : p) l.push_back(static_cast<float>(std::log(x)));
  return l;
}

std::vector<double> softmax(const std::vector<double>& l, double temperature) {
  double mx = l[0], sum = 0;
  for (double x : l) mx = std::max(mx, x);
  std::vector<double> p;
  for (double x : l) sum += p.emplace_back(std::exp((x - mx) / temperature));
  for (auto& x : p) x /= sum;
  return p;
}

int kept(const std::vector<float>& p) {
  int n = 0;
  for (float x : p) n += x > 0;
  return n;
}

const std::vector<double> kQuarters = {0.125, 0.5, 0.125, 0.25};  // sorted: ids 1, 3, 0, 2

TEST(SamplerTest, TopKOneIsGreedy) {
  std::mt19937_64 gen(7);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> l(300);
    for (auto& x : l) x = normal(gen);
    Sampler greedy({.temperature = 0});
    Sampler topk1({.temperature = 1.5f, .top_k = 1, .seed = static_cast<uint64_t>(trial)});
    const int32_t expect = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
    EXPECT_EQ(greedy.sample(l, {}), expect);
    EXPECT_EQ(topk1.sample(l, {}), expect);
  }
}

TEST(SamplerTest, TemperatureScalesTheSoftmax) {
  const std::vector<double> l = {1.0, -0.5, 2.0, 0.25, 0.0};
  const std::vector<float> lf(l.begin(), l.end());
  for (double t : {0.5, 1.0, 2.0}) {
    const auto p = Sampler({.temperature = static_cast<float>(t)}).probabilities(lf, {});
    const auto expect = softmax(l, t);
    for (size_t i = 0; i < l.size(); ++i) EXPECT_NEAR(p[i], expect[i], 1e-6) << "T=" << t << " id " << i;
  }
}

TEST(SamplerTest, TopKKeepsTheKMostLikely) {
  const auto p = Sampler({.temperature = 1, .top_k = 2}).probabilities(logits_of(kQuarters), {});
  EXPECT_EQ(kept(p), 2);
  EXPECT_NEAR(p[1], 0.5 / 0.75, 1e-6);
  EXPECT_NEAR(p[3], 0.25 / 0.75, 1e-6);
}

TEST(SamplerTest, TopPBoundary) {
  // Cumulative mass in order: 0.5, 0.75, 0.875, 1.
  const auto l = logits_of(kQuarters);
  EXPECT_EQ(kept(Sampler({.temperature = 1, .top_p = 0.49f}).probabilities(l, {})), 1);
  EXPECT_EQ(kept(Sampler({.temperature = 1, .top_p = 0.51f}).probabilities(l, {})), 2);
  EXPECT_EQ(kept(Sampler({.temperature = 1, .top_p = 0.74f}).probabilities(l, {})), 2);
  EXPECT_EQ(kept(Sampler({.temperature = 1, .top_p = 0.76f}).probabilities(l, {})), 3);
  EXPECT_EQ(kept(Sampler({.temperature = 1, .top_p = 1.0f}).probabilities(l, {})), 4);
  const auto p = Sampler({.temperature = 1, .top_p = 0.8f}).probabilities(l, {});
  EXPECT_NEAR(p[1], 0.5 / 0.875, 1e-6);
  EXPECT_NEAR(p[0] + p[2], 0.125 / 0.875, 1e-6);  // one of the two tied 0.125s, the lower id
  EXPECT_GT(p[0], 0.0f);
}

TEST(SamplerTest, MinPRelativeToTheTopToken) {
  const auto l = logits_of(kQuarters);
  EXPECT_EQ(kept(Sampler({.temperature = 1, .min_p = 0.3f}).probabilities(l, {})), 2);   // floor 0.15
  EXPECT_EQ(kept(Sampler({.temperature = 1, .min_p = 0.2f}).probabilities(l, {})), 4);   // floor 0.10
  EXPECT_EQ(kept(Sampler({.temperature = 1, .min_p = 0.6f}).probabilities(l, {})), 1);   // floor 0.30
}

TEST(SamplerTest, RepetitionPenaltyChangesTheChoice) {
  // Token 0 leads; seen tokens 0 (positive logit: divided) and 2 (negative:
  // multiplied) are penalized, so token 1 wins.
  const std::vector<float> l = {2.0f, 1.5f, -1.0f, 0.5f};
  const std::vector<int32_t> history = {0, 2, 0};
  EXPECT_EQ(Sampler({.temperature = 0}).sample(l, history), 0);
  EXPECT_EQ(Sampler({.temperature = 0, .repeat_penalty = 2.0f}).sample(l, history), 1);
  const auto p = Sampler({.temperature = 1, .repeat_penalty = 2.0f}).probabilities(l, history);
  const auto expect = softmax({1.0, 1.5, -2.0, 0.5}, 1.0);
  for (size_t i = 0; i < l.size(); ++i) EXPECT_NEAR(p[i], expect[i], 1e-6);
  // Outside the window the penalty does not apply.
  EXPECT_EQ(Sampler({.temperature = 0, .repeat_penalty = 2.0f, .repeat_last_n = 1}).sample(l, std::vector<int32_t>{0, 2}), 0);
}

TEST(SamplerTest, SameSeedSameTokensAndEmpiricalDistribution) {
  const std::vector<float> uniform(512, 0.0f);
  Sampler a({.temperature = 1, .seed = 42}), b({.temperature = 1, .seed = 42}), c({.temperature = 1, .seed = 43});
  std::vector<int32_t> ta, tb, tc;
  for (int i = 0; i < 100; ++i) {
    ta.push_back(a.sample(uniform, {}));
    tb.push_back(b.sample(uniform, {}));
    tc.push_back(c.sample(uniform, {}));
  }
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);

  Sampler s({.temperature = 1, .seed = 1});
  const auto l = logits_of(kQuarters);
  std::vector<int> count(4);
  constexpr int kDraws = 40000;
  for (int i = 0; i < kDraws; ++i) ++count[s.sample(l, {})];
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(count[i] / double(kDraws), kQuarters[i], 0.01) << "id " << i;
}

TEST(SamplerTest, RejectsBadParameters) {
  EXPECT_THROW(Sampler({.temperature = -1}), FormatError);
  EXPECT_THROW(Sampler({.top_p = 0}), FormatError);
  EXPECT_THROW(Sampler({.min_p = 2}), FormatError);
  EXPECT_THROW(Sampler({.repeat_penalty = 0}), FormatError);
  EXPECT_THROW(Sampler({}).sample(std::vector<float>{}, {}), FormatError);
}

}  // namespace
}  // namespace kaival::engine
