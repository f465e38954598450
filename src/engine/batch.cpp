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
  // Scheduler-side state: prompt tokens already in the cache, and whether the
  // sequence has sampled its first token (then it needs decode steps).
  size_t prefilled = 0;
  bool decoding = false;
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

BatchScheduler::BatchScheduler(const Model& model, const tokenizer::Tokenizer& tok, int max_batch,
                               int64_t prefill_per_step)
    : model_(model), tok_(tok), max_batch_(std::max(1, max_batch)),
      prefill_per_step_(std::max<int64_t>(1, prefill_per_step)) {
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
  if (req->gen.wants_prompt_logprobs()) {
    // Every position's logits are needed: prefill here, on the caller's
    // thread (the model's worker pool interleaves it with the scheduler's
    // steps, so it slows the running streams but does not stop them).
    req->gen.prefill();
    req->prefilled = prompt.size();
  }
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
  // Requests in arrival order, each prefilling or decoding.
  std::vector<std::shared_ptr<Request>> active;
  // One step's batch: a sequence's input tokens, its cache, its request, and
  // how many prompt tokens it prefills (0 for a decode row).
  std::vector<std::span<const int32_t>> inputs;
  std::vector<KvCache*> caches;
  std::vector<size_t> members, chunk;
  std::vector<int32_t> decode_tokens;
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
    for (auto& r : joining) {
      if (r->prefilled < r->gen.prompt().size()) {
        active.push_back(std::move(r));
      } else if (r->step()) {  // prefilled by its caller: the first token comes from those logits
        r->decoding = true;
        active.push_back(std::move(r));
      }
    }
    // A cancelled newcomer leaves before its prompt costs anything.
    std::erase_if(active, [](const std::shared_ptr<Request>& r) {
      if (r->decoding || !r->cancelled) return false;
      r->close();
      return true;
    });
    if (active.empty()) continue;

    inputs.clear();
    caches.clear();
    members.clear();
    chunk.clear();
    decode_tokens.assign(active.size(), 0);
    int64_t budget = prefill_per_step_;
    uint64_t decoded = 0, prefill = 0;
    for (size_t i = 0; i < active.size(); ++i) {
      auto& r = *active[i];
      size_t n = 0;
      if (r.decoding) {
        decode_tokens[i] = r.gen.next_token();
        inputs.emplace_back(&decode_tokens[i], 1);
        ++decoded;
      } else {
        const auto prompt = r.gen.prompt();
        n = std::min<size_t>(prompt.size() - r.prefilled, static_cast<size_t>(budget));
        if (n == 0) continue;  // the step's prompt budget is spent; next step
        budget -= static_cast<int64_t>(n);
        inputs.push_back(prompt.subspan(r.prefilled, n));
        prefill += n;
      }
      caches.push_back(&r.gen.cache());
      members.push_back(i);
      chunk.push_back(n);
    }
    std::vector<float> logits;
    try {
      logits = model_.forward_batch(inputs, caches);
    } catch (...) {
      for (const size_t i : members) active[i]->close(std::current_exception());
      for (const size_t i : members) active[i].reset();
      std::erase(active, nullptr);
      continue;
    }
    {
      std::lock_guard lock(mu_);
      ++stats_.steps;
      stats_.tokens += decoded;
      stats_.prefill_tokens += prefill;
      stats_.largest = std::max<int64_t>(stats_.largest, static_cast<int64_t>(members.size()));
    }
    const auto vocab = static_cast<size_t>(model_.config().vocab);
    for (size_t m = 0; m < members.size(); ++m) {
      auto& r = active[members[m]];
      if (!r->decoding) {
        r->prefilled += chunk[m];
        if (r->prefilled < r->gen.prompt().size()) continue;  // more prompt chunks to come
      }
      r->gen.set_logits(std::span<const float>(logits.data() + m * vocab, vocab));
      if (r->step()) r->decoding = true;
      else r.reset();
    }
    std::erase(active, nullptr);
  }
  for (auto& r : active)
    r->close(std::make_exception_ptr(Error("generate", "the batch scheduler shut down before the sequence finished")));
}

}  // namespace kaival::engine
