#pragma once
// Order statistics shared by the arena's ratings and expert scores.
#include <span>
#include <vector>

namespace kaival::arena {

// Quantile q in [0, 1] with linear interpolation between order statistics
// (numpy's default "linear" method). Takes a copy: the input is not reordered.
double quantile(std::span<const double> values, double q);

// Mean after dropping floor(fraction * n) values at each end (fraction in [0, 0.5)).
double trimmed_mean(std::span<const double> values, double fraction);

}  // namespace kaival::arena
