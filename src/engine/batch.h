#pragma once
// Continuous batching for a server: many threads call generate() at once and
// one scheduler thread runs every active sequence together. Each step is one
// forward pass over a mixed batch: one token for each decoding sequence plus
// chunks of the prompts of newcomers (chunked prefill, at most
// `prefill_per_step` prompt tokens per step so that a long prompt delays the
// running streams by a bounded amount). Decoding is bound by reading the
// weights, so a step for 16 sequences costs little more than a step for one,
// and newcomers' prompts share the weight reads too.
//
// Sequences join and leave between steps (a new request does not wait for
// the batch to drain). Requests that want prompt log-probabilities (which
// need every position's logits) prefill on their own thread, then join.
// Callbacks run on the calling thread, never on the scheduler's, so a slow
// client cannot stall the others; a callback that returns false cancels its
// sequence at the next step.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "engine/generate.h"

namespace kaival::engine {

struct BatchStats {
  uint64_t steps = 0;           // batched steps run
  uint64_t tokens = 0;          // sequence-tokens decoded in them (tokens / steps = mean decode batch)
  uint64_t prefill_tokens = 0;  // prompt tokens prefilled in them
  int64_t largest = 0;          // most sequences (decoding or prefilling) in one step
};

class BatchScheduler {
 public:
  // max_batch: most sequences in one step (decoding or prefilling); more
  // wait their turn. prefill_per_step: most prompt tokens in one step.
  BatchScheduler(const Model& model, const tokenizer::Tokenizer& tok, int max_batch,
                 int64_t prefill_per_step = 256);
  ~BatchScheduler();
  BatchScheduler(const BatchScheduler&) = delete;
  BatchScheduler& operator=(const BatchScheduler&) = delete;

  // Same contract and result as engine::generate.
  GenerateResult generate(std::span<const int32_t> prompt, const GenerateOptions& options,
                          const TextCallback& on_text = {}, const TokenCallback& on_token = {});

  BatchStats stats() const;
  int max_batch() const { return max_batch_; }

 private:
  struct Request;
  void loop();

  const Model& model_;
  const tokenizer::Tokenizer& tok_;
  const int max_batch_;
  const int64_t prefill_per_step_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Request>> incoming_;
  bool quit_ = false;
  BatchStats stats_;
  std::thread thread_;
};

}  // namespace kaival::engine
