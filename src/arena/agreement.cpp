#include "arena/agreement.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

namespace kaival::arena {

double krippendorff_alpha(const std::vector<std::vector<double>>& units, AlphaMetric metric) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> values;
  for (const auto& u : units)
    if (u.size() >= 2) values.insert(values.end(), u.begin(), u.end());
  std::sort(values.begin(), values.end());
  values.erase(std::unique(values.begin(), values.end()), values.end());
  const size_t v = values.size();
  if (v == 0) return nan;
  auto index = [&](double x) { return std::lower_bound(values.begin(), values.end(), x) - values.begin(); };
  // Coincidence matrix: each ordered pair of values within a unit adds 1/(m_u - 1).
  std::vector<double> o(v * v, 0.0);
  for (const auto& u : units) {
    if (u.size() < 2) continue;
    const double w = 1.0 / static_cast<double>(u.size() - 1);
    for (size_t i = 0; i < u.size(); ++i)
      for (size_t j = 0; j < u.size(); ++j)
        if (i != j) o[index(u[i]) * v + index(u[j])] += w;
  }
  std::vector<double> marg(v, 0.0);
  double n = 0;
  for (size_t c = 0; c < v; ++c) {
    for (size_t k = 0; k < v; ++k) marg[c] += o[c * v + k];
    n += marg[c];
  }
  auto delta2 = [&](size_t c, size_t k) {
    if (metric == AlphaMetric::Interval) {
      double d = values[c] - values[k];
      return d * d;
    }
    size_t lo = std::min(c, k), hi = std::max(c, k);
    double s = 0;
    for (size_t g = lo; g <= hi; ++g) s += marg[g];
    s -= (marg[c] + marg[k]) / 2.0;
    return s * s;
  };
  double observed = 0, expected = 0;
  for (size_t c = 0; c < v; ++c)
    for (size_t k = 0; k < v; ++k) {
      if (c == k) continue;
      double d = delta2(c, k);
      observed += o[c * v + k] * d;
      expected += marg[c] * marg[k] * d;
    }
  if (expected <= 0) return nan;
  return 1.0 - (n - 1.0) * observed / expected;
}

std::vector<ReviewerSeverity> reviewer_severity(const std::vector<Score>& scores) {
  std::map<std::pair<std::string, std::string>, std::vector<const Score*>> groups;
  for (const auto& s : scores) groups[{s.item, s.criterion}].push_back(&s);
  struct Acc {
    std::vector<double> dev;
    double sum = 0;
    int n = 0;
  };
  std::map<std::string, Acc> acc;
  for (const auto& s : scores) {
    acc[s.reviewer].sum += s.value;
    acc[s.reviewer].n++;
  }
  for (const auto& [key, g] : groups) {
    if (g.size() < 2) continue;
    double total = 0;
    for (const Score* s : g) total += s->value;
    for (const Score* s : g) {
      double others = (total - s->value) / static_cast<double>(g.size() - 1);
      acc[s->reviewer].dev.push_back(s->value - others);
    }
  }
  std::vector<ReviewerSeverity> out;
  for (const auto& [name, a] : acc) {
    ReviewerSeverity r;
    r.reviewer = name;
    r.scores = a.n;
    r.mean_score = a.n ? a.sum / a.n : 0.0;
    r.compared = static_cast<int>(a.dev.size());
    if (!a.dev.empty()) {
      double m = 0;
      for (double d : a.dev) m += d;
      m /= static_cast<double>(a.dev.size());
      double var = 0;
      for (double d : a.dev) var += (d - m) * (d - m);
      r.severity = m;
      r.sd = a.dev.size() > 1 ? std::sqrt(var / static_cast<double>(a.dev.size() - 1)) : 0.0;
    }
    out.push_back(r);
  }
  return out;
}

}  // namespace kaival::arena
