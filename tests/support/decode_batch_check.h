#pragma once
// Shared check for engine tests: sequences decoded together with
// Model::decode_batch give, row by row, the logits each gets decoded alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/model.h"

namespace kaival::engine::testing_support {

// Prefills each prompt into a batched and a lone cache of `capacity`, then
// runs `steps` decode steps, feeding every sequence its own argmax, and
// expects each batched row within `tolerance` of the lone step's logits and
// the caches to stay the same length.
inline void expect_decode_batch_matches_alone(const Model& model, const std::vector<std::vector<int32_t>>& prompts,
                                              int steps, int64_t capacity, const std::string& label,
                                              double tolerance = 1e-4) {
  const int64_t V = model.config().vocab;
  auto argmax = [V](const float* x) { return static_cast<int32_t>(std::max_element(x, x + V) - x); };
  std::vector<KvCache> batched, alone;
  std::vector<int32_t> next;
  for (const auto& p : prompts) {
    batched.push_back(model.new_cache(capacity));
    alone.push_back(model.new_cache(capacity));
    const auto lg = model.forward(p, batched.back(), false);
    model.forward(p, alone.back(), false);
    next.push_back(argmax(lg.data()));
  }
  for (int step = 0; step < steps; ++step) {
    std::vector<KvCache*> caches;
    for (auto& c : batched) caches.push_back(&c);
    const auto logits = model.decode_batch(next, caches);
    ASSERT_EQ(logits.size(), prompts.size() * static_cast<size_t>(V)) << label;
    for (size_t i = 0; i < prompts.size(); ++i) {
      const int32_t one[1] = {next[i]};
      const auto ref = model.forward(one, alone[i], false);
      double d = 0;
      for (int64_t j = 0; j < V; ++j)
        d = std::max(d, static_cast<double>(std::abs(logits[i * V + j] - ref[j])));
      EXPECT_LT(d, tolerance) << label << " sequence " << i << " step " << step;
      EXPECT_EQ(batched[i].size(), alone[i].size()) << label;
      next[i] = argmax(ref.data());
    }
  }
}

}  // namespace kaival::engine::testing_support
