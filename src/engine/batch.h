#pragma once
// Continuous batching for a server: many threads call generate() at once;
// each prefills its own prompt, then hands its sequence to one scheduler
// thread that decodes every active sequence together, one token each per
// step (Model::decode_batch). Decoding is bound by reading the weights, so a
// step for 16 sequences costs little more than a step for one.
//
// Sequences join and leave between steps (a new request does not wait for
// the batch to drain). Callbacks run on the calling thread, never on the
// scheduler's, so a slow client cannot stall the others; a callback that
// returns false cancels its sequence at the next step.
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
  uint64_t steps = 0;        // decode steps run
  uint64_t tokens = 0;       // sequence-tokens decoded in them (tokens / steps = mean batch)
  int64_t largest = 0;       // largest batch seen
};

class BatchScheduler {
 public:
  // max_batch: most sequences decoded in one step; more wait their turn.
  BatchScheduler(const Model& model, const tokenizer::Tokenizer& tok, int max_batch);
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
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Request>> incoming_;
  bool quit_ = false;
  BatchStats stats_;
  std::thread thread_;
};

}  // namespace kaival::engine
