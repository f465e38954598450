#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

#include "core/error.h"

namespace kaival::engine {
namespace {

int32_t argmax(std::span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  if (!(params.temperature >= 0) || !(params.top_p > 0) || !(params.min_p >= 0) || params.min_p > 1 ||
      !(params.repeat_penalty > 0))
    fail("sampling parameters",
         "need temperature >= 0, 0 < top_p, 0 <= min_p <= 1 and repeat_penalty > 0 (got {}, {}, {}, {})",
         params.temperature, params.top_p, params.min_p, params.repeat_penalty);
}

std::vector<float> Sampler::penalized(std::span<const float> logits, std::span<const int32_t> history) const {
  std::vector<float> out(logits.begin(), logits.end());
  if (params_.repeat_penalty == 1.0f) return out;
  size_t start = 0;
  if (params_.repeat_last_n >= 0 && history.size() > static_cast<size_t>(params_.repeat_last_n))
    start = history.size() - static_cast<size_t>(params_.repeat_last_n);
  // Each distinct token is penalized once however often it occurred.
  std::unordered_set<int32_t> seen(history.begin() + static_cast<ptrdiff_t>(start), history.end());
  for (int32_t id : seen) {
    if (id < 0 || static_cast<size_t>(id) >= out.size()) continue;
    float& l = out[static_cast<size_t>(id)];
    l = l > 0 ? l / params_.repeat_penalty : l * params_.repeat_penalty;
  }
  return out;
}

std::vector<float> Sampler::probabilities(std::span<const float> logits, std::span<const int32_t> history) const {
  if (logits.empty()) fail("sampler", "empty logits");
  const std::vector<float> l = penalized(logits, history);
  std::vector<float> p(l.size(), 0.0f);
  if (params_.temperature <= 0 || params_.top_k == 1) {
    p[static_cast<size_t>(argmax(l))] = 1.0f;
    return p;
  }
  // Candidates sorted by logit, highest first (ties: lower id first, so the
  // order, and thus the draw, is deterministic).
  std::vector<int32_t> idx(l.size());
  std::iota(idx.begin(), idx.end(), 0);
  size_t keep = idx.size();
  if (params_.top_k > 0) keep = std::min(keep, static_cast<size_t>(params_.top_k));
  auto by_logit = [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); };
  std::partial_sort(idx.begin(), idx.begin() + static_cast<ptrdiff_t>(keep), idx.end(), by_logit);
  idx.resize(keep);

  // Softmax at the temperature over the survivors.
  const double mx = l[static_cast<size_t>(idx[0])];
  std::vector<double> q(keep);
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += (q[i] = std::exp((l[static_cast<size_t>(idx[i])] - mx) / params_.temperature));
  for (auto& x : q) x /= sum;

  // top-p: the smallest prefix whose mass reaches top_p (at least one token).
  if (params_.top_p < 1.0f) {
    double cum = 0;
    size_t n = 0;
    while (n < keep) {
      cum += q[n++];
      if (cum >= params_.top_p) break;
    }
    keep = n;
  }
  // min-p: drop tokens whose probability is below min_p times the top one.
  if (params_.min_p > 0) {
    const double floor = params_.min_p * q[0];
    size_t n = 1;
    while (n < keep && q[n] >= floor) ++n;
    keep = n;
  }
  double kept = 0;
  for (size_t i = 0; i < keep; ++i) kept += q[i];
  for (size_t i = 0; i < keep; ++i) p[static_cast<size_t>(idx[i])] = static_cast<float>(q[i] / kept);
  return p;
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  const std::vector<float> p = probabilities(logits, history);
  if (params_.temperature <= 0 || params_.top_k == 1) return argmax(p);
  // Inverse CDF with one uniform draw from our own generator: the standard
  // distributions' algorithms are implementation-defined, this is not.
  const double r = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  double cum = 0;
  int32_t last = -1;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] <= 0) continue;
    last = static_cast<int32_t>(i);
    cum += p[i];
    if (r < cum) return last;
  }
  return last;  // rounding left r above the total mass
}

}  // namespace kaival::engine
