#include "engine/batch.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <string>

#include "core/error.h"

namespace kaival::engine {

// One caller's sequence and the events the scheduler passes back to it.
struct BatchScheduler::Request {
  struct Event {
    bool is_text = false;
    std::string text;
    int32_t token = 0;
    std::optional<TokenLogprob> logprob;
  };

  Request(const Model& model, const tokenizer::Tokenizer& tok, std::span<const int32_t> prompt,
          const GenerateOptions& options)
      : gen(model, tok, prompt, options) {}

  Generation gen;  // touched by the scheduler only between hand-over and `done`
  std::atomic<bool> cancelled{false};
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Event> events;
  bool done = false;
  std::exception_ptr error;

  void post(Event e) {
    {
      std::lock_guard lock(mu);
      events.push_back(std::move(e));
    }
    cv.notify_one();
  }
  void close(std::exception_ptr err = nullptr) {
    {
      std::lock_guard lock(mu);
      done = true;
      error = std::move(err);
    }
    cv.notify_one();
  }
  // Samples on the scheduler thread; false when the sequence is finished
  // (then it has been closed).
  bool step() {
    if (cancelled) {
      close();
      return false;
    }
    try {
      const bool more = gen.advance(
          [this](std::string_view s) {
            post({true, std::string(s), 0, std::nullopt});
            return !cancelled.load();
          },
          [this](int32_t id, const TokenLogprob* lp) {
            post({false, {}, id, lp ? std::optional<TokenLogprob>(*lp) : std::nullopt});
          });
      if (!more) close();
      return more;
    } catch (...) {
      close(std::current_exception());
      return false;
    }
  }
};

BatchScheduler::BatchScheduler(const Model& model, const tokenizer::Tokenizer& tok, int max_batch)
    : model_(model), tok_(tok), max_batch_(std::max(1, max_batch)) {
  thread_ = std::thread([this] { loop(); });
}

BatchScheduler::~BatchScheduler() {
  {
    std::lock_guard lock(mu_);
    quit_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

BatchStats BatchScheduler::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

GenerateResult BatchScheduler::generate(std::span<const int32_t> prompt, const GenerateOptions& options,
                                        const TextCallback& on_text, const TokenCallback& on_token) {
  auto req = std::make_shared<Request>(model_, tok_, prompt, options);
  // Prefill here, on the caller's thread: the model's worker pool interleaves
  // it with the scheduler's decode steps, so a long prompt slows the running
  // streams but does not stop them.
  req->gen.prefill();
  {
    std::lock_guard lock(mu_);
    if (quit_) fail("generate", "the batch scheduler is shutting down");
    incoming_.push_back(req);
  }
  wake_.notify_one();

  bool cancelled = false;
  for (bool done = false; !done;) {
    std::deque<Request::Event> events;
    {
      std::unique_lock lock(req->mu);
      req->cv.wait(lock, [&] { return req->done || !req->events.empty(); });
      events.swap(req->events);
      done = req->done;
    }
    for (auto& e : events) {
      if (e.is_text) {
        if (!cancelled && on_text && !on_text(e.text)) {
          cancelled = true;
          req->cancelled = true;
        }
      } else if (on_token && !cancelled) {
        on_token(e.token, e.logprob ? &*e.logprob : nullptr);
      }
    }
  }
  if (req->error) std::rethrow_exception(req->error);
  // The scheduler has let go of the sequence: finishing it here is safe.
  return req->gen.finish(cancelled ? TextCallback{} : on_text);
}

void BatchScheduler::loop() {
  std::vector<std::shared_ptr<Request>> active;
  std::vector<int32_t> tokens;
  std::vector<KvCache*> caches;
  for (;;) {
    std::vector<std::shared_ptr<Request>> joining;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [&] { return quit_ || !incoming_.empty() || !active.empty(); });
      if (quit_) {
        for (auto& r : incoming_) active.push_back(std::move(r));
        incoming_.clear();
        break;
      }
      while (active.size() + joining.size() < static_cast<size_t>(max_batch_) && !incoming_.empty()) {
        joining.push_back(std::move(incoming_.front()));
        incoming_.pop_front();
      }
    }
    // A newcomer's first token comes from its prefill logits.
    for (auto& r : joining)
      if (r->step()) active.push_back(std::move(r));
    if (active.empty()) continue;

    tokens.clear();
    caches.clear();
    for (auto& r : active) {
      tokens.push_back(r->gen.next_token());
      caches.push_back(&r->gen.cache());
    }
    std::vector<float> logits;
    try {
      logits = model_.decode_batch(tokens, caches);
    } catch (...) {
      for (auto& r : active) r->close(std::current_exception());
      active.clear();
      continue;
    }
    {
      std::lock_guard lock(mu_);
      ++stats_.steps;
      stats_.tokens += active.size();
      stats_.largest = std::max<int64_t>(stats_.largest, static_cast<int64_t>(active.size()));
    }
    const auto vocab = static_cast<size_t>(model_.config().vocab);
    std::vector<std::shared_ptr<Request>> still;
    still.reserve(active.size());
    for (size_t i = 0; i < active.size(); ++i) {
      active[i]->gen.set_logits(std::span<const float>(logits.data() + i * vocab, vocab));
      if (active[i]->step()) still.push_back(std::move(active[i]));
    }
    active.swap(still);
  }
  for (auto& r : active)
    r->close(std::make_exception_ptr(Error("generate", "the batch scheduler shut down before the sequence finished")));
}

}  // namespace kaival::engine
