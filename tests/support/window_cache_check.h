#pragma once
// Shared check for engine tests: a KV cache whose sliding-window layers keep
// only the window (a ring) gives the same logits as the unbounded layout that
// keeps every position and masks, and holds no more than the window.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "engine/model.h"

namespace kaival::engine::testing_support {

// Feeds `ids` in pieces of the given sizes (cycled) through a bounded and a
// full-window cache and returns the largest |logit difference| over every
// position; expects the bounded cache's windowed layers to hold the window.
inline double bounded_vs_full_window_cache(const Model& model, const std::vector<int32_t>& ids,
                                           const std::vector<int64_t>& pieces, const std::string& label) {
  const auto& c = model.config();
  const int64_t V = c.vocab, n = static_cast<int64_t>(ids.size());
  auto bounded = model.new_cache(n), full = model.new_cache(n, true);
  double worst = 0;
  int64_t at = 0;
  for (size_t i = 0; at < n; ++i) {
    const int64_t len = std::min(pieces[i % pieces.size()], n - at);
    const auto piece = std::span<const int32_t>(ids).subspan(static_cast<size_t>(at), static_cast<size_t>(len));
    const auto a = model.forward(piece, bounded, true), b = model.forward(piece, full, true);
    EXPECT_EQ(a.size(), static_cast<size_t>(len * V)) << label;
    for (size_t j = 0; j < a.size() && j < b.size(); ++j)
      worst = std::max(worst, static_cast<double>(std::abs(a[j] - b[j])));
    at += len;
  }
  EXPECT_EQ(bounded.size(), n) << label;
  EXPECT_LT(bounded.bytes(), full.bytes()) << label;
  for (int64_t l = 0; l < c.layers; ++l) {
    const bool windowed = !c.sliding_layers.empty() && c.sliding_layers[static_cast<size_t>(l)];
    EXPECT_EQ(bounded.layer_slots(l), windowed ? c.sliding_window : n) << label << " layer " << l;
    EXPECT_EQ(full.layer_slots(l), n) << label << " layer " << l;
  }
  return worst;
}

// Two sequences prefilled and decoded together with forward_batch (chunks of
// different lengths in one step) through bounded caches give the logits the
// full-window caches give.
inline double bounded_vs_full_window_batch(const Model& model, const std::vector<int32_t>& a,
                                           const std::vector<int32_t>& b, int64_t chunk) {
  const int64_t V = model.config().vocab;
  const auto cap = static_cast<int64_t>(std::max(a.size(), b.size()));
  auto ba = model.new_cache(cap), bb = model.new_cache(cap), fa = model.new_cache(cap, true),
       fb = model.new_cache(cap, true);
  double worst = 0;
  size_t ia = 0, ib = 0;
  while (ia < a.size() && ib < b.size()) {
    // a advances `chunk` tokens per step, b one.
    const size_t la = std::min<size_t>(static_cast<size_t>(chunk), a.size() - ia);
    const std::span<const int32_t> in[2] = {std::span<const int32_t>(a).subspan(ia, la),
                                            std::span<const int32_t>(b).subspan(ib, 1)};
    KvCache* bounded[2] = {&ba, &bb};
    KvCache* full[2] = {&fa, &fb};
    const auto x = model.forward_batch(in, bounded), y = model.forward_batch(in, full);
    for (int64_t j = 0; j < 2 * V; ++j) worst = std::max(worst, static_cast<double>(std::abs(x[j] - y[j])));
    ia += la;
    ib += 1;
  }
  return worst;
}

}  // namespace kaival::engine::testing_support
