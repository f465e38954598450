#pragma once
// Token sampling: repetition penalty, temperature, top-k, top-p, min-p, with a
// seeded std::mt19937_64 so that a fixed seed gives the same tokens.
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace kaival::engine {

struct SamplingParams {
  float temperature = 0.0f;     // <= 0: greedy (argmax after the penalty)
  int32_t top_k = 0;            // <= 0: off
  float top_p = 1.0f;           // >= 1: off
  float min_p = 0.0f;           // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off; HF style (positive logits divided, negative multiplied)
  int32_t repeat_last_n = 64;   // how many recent tokens the penalty looks at; < 0: all
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);
  // Picks the next token from `logits` (one per vocabulary id) given the
  // tokens so far (prompt + generated), which the repetition penalty reads.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);
  // The distribution sample() draws from (after every filter), zero for
  // excluded ids; for greedy, one-hot. Exposed for tests and logprobs.
  std::vector<float> probabilities(std::span<const float> logits, std::span<const int32_t> history) const;
  const SamplingParams& params() const { return params_; }

 private:
  std::vector<float> penalized(std::span<const float> logits, std::span<const int32_t> history) const;
  SamplingParams params_;
  std::mt19937_64 rng_;
};

}  // namespace kaival::engine
