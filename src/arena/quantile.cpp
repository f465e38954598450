#include "arena/quantile.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace kaival::arena {

double quantile(std::span<const double> values, double q) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  q = std::clamp(q, 0.0, 1.0);
  std::vector<double> v(values.begin(), values.end());
  std::sort(v.begin(), v.end());
  double pos = q * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(lo + 1, v.size() - 1);
  double frac = pos - static_cast<double>(lo);
  return v[lo] + (v[hi] - v[lo]) * frac;
}

double trimmed_mean(std::span<const double> values, double fraction) {
  if (!(fraction >= 0.0 && fraction < 0.5)) fail("trimmed mean", "fraction {} outside [0, 0.5)", fraction);
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::vector<double> v(values.begin(), values.end());
  std::sort(v.begin(), v.end());
  size_t cut = static_cast<size_t>(std::floor(fraction * static_cast<double>(v.size())));
  double sum = 0;
  for (size_t k = cut; k + cut < v.size(); ++k) sum += v[k];
  return sum / static_cast<double>(v.size() - 2 * cut);
}

}  // namespace kaival::arena
