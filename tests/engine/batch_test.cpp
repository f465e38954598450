// Continuous batching: Model::decode_batch against one-sequence forward
// passes, and BatchScheduler against engine::generate, on the fixture model.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "engine/batch.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "tokenizer/tokenizer.h"
#include "weights/checkpoint.h"

namespace kaival::engine {
namespace {

const std::string kModels = std::string(KAIVAL_TESTDATA) + "/models/";

class BatchTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    ckpt_ = std::make_unique<weights::Checkpoint>(weights::Checkpoint::open(kModels + "base-a"));
    model_ = std::make_unique<Model>(Model::load(*ckpt_, 2));
    tok_ = open_tokenizer(*ckpt_);
  }
  static std::vector<int32_t> ids(const std::string& text) { return tok_->encode(text, false, true); }

  static inline std::unique_ptr<weights::Checkpoint> ckpt_;
  static inline std::unique_ptr<Model> model_;
  static inline std::unique_ptr<tokenizer::Tokenizer> tok_;
};

// Sequences of different lengths (so different positions and attention
// spans) decoded in one step give the logits each gets alone.
TEST_F(BatchTest, DecodeBatchMatchesOneSequenceSteps) {
  const std::vector<std::string> prompts = {"The quick fox", "Alice went to the market and bought",
                                            "Once", "In the morning the sun rose over the hills"};
  const int64_t vocab = model_->config().vocab;
  std::vector<KvCache> batched, alone;
  std::vector<int32_t> next;
  for (const auto& p : prompts) {
    const auto t = ids(p);
    ASSERT_FALSE(t.empty());
    batched.push_back(model_->new_cache(64));
    alone.push_back(model_->new_cache(64));
    model_->forward(std::span(t).first(t.size() - 1), batched.back(), false);
    model_->forward(std::span(t).first(t.size() - 1), alone.back(), false);
    next.push_back(t.back());
  }
  for (int step = 0; step < 3; ++step) {
    std::vector<KvCache*> caches;
    for (auto& c : batched) caches.push_back(&c);
    const auto logits = model_->decode_batch(next, caches);
    ASSERT_EQ(logits.size(), prompts.size() * static_cast<size_t>(vocab));
    for (size_t i = 0; i < prompts.size(); ++i) {
      const int32_t one[1] = {next[i]};
      const auto ref = model_->forward(one, alone[i], false);
      double worst = 0, scale = 0;
      for (int64_t v = 0; v < vocab; ++v) {
        worst = std::max(worst, std::abs(static_cast<double>(logits[i * vocab + v]) - ref[v]));
        scale = std::max(scale, std::abs(static_cast<double>(ref[v])));
      }
      EXPECT_LT(worst, 1e-4 * std::max(1.0, scale)) << "sequence " << i << " step " << step;
      EXPECT_EQ(batched[i].size(), alone[i].size());
      // Feed the argmax back so the next step differs per sequence.
      next[i] = static_cast<int32_t>(std::max_element(ref.begin(), ref.end()) - ref.begin());
    }
  }
}

// One step mixing a decode row, a fresh prompt and a continued prompt gives
// each sequence the last-row logits it gets alone.
TEST_F(BatchTest, ForwardBatchMixesPrefillAndDecode) {
  const auto a = ids("The quick fox jumps");
  const auto b = ids("Alice went to the market and bought some bread");
  const auto c = ids("In the morning the sun rose over the hills");
  ASSERT_GT(a.size(), 2u);
  ASSERT_GT(c.size(), 4u);
  const int64_t vocab = model_->config().vocab;
  auto ca = model_->new_cache(64), cb = model_->new_cache(64), cc = model_->new_cache(64);
  model_->forward(std::span(a).first(a.size() - 1), ca, false);  // a decodes its last token
  model_->forward(std::span(c).first(3), cc, false);             // c continues after 3 tokens
  const std::span<const int32_t> inputs[3] = {std::span(a).last(1), std::span(b), std::span(c).subspan(3)};
  KvCache* caches[3] = {&ca, &cb, &cc};
  const auto logits = model_->forward_batch(inputs, caches);
  ASSERT_EQ(logits.size(), 3 * static_cast<size_t>(vocab));
  const std::vector<int32_t>* whole[3] = {&a, &b, &c};
  for (size_t i = 0; i < 3; ++i) {
    const auto ref = model_->forward(*whole[i]);  // all rows of the whole sequence alone
    const float* last = ref.data() + (whole[i]->size() - 1) * vocab;
    double worst = 0, scale = 0;
    for (int64_t v = 0; v < vocab; ++v) {
      worst = std::max(worst, std::abs(static_cast<double>(logits[i * vocab + v]) - last[v]));
      scale = std::max(scale, std::abs(static_cast<double>(last[v])));
    }
    EXPECT_LT(worst, 1e-4 * std::max(1.0, scale)) << "sequence " << i;
    EXPECT_EQ(caches[i]->size(), static_cast<int64_t>(whole[i]->size()));
  }
  const std::span<const int32_t> empty[1] = {std::span<const int32_t>()};
  KvCache* one[1] = {&ca};
  EXPECT_THROW(model_->forward_batch(empty, one), Error);  // a sequence with no tokens
}

TEST_F(BatchTest, DecodeBatchRejectsMisuse) {
  auto a = model_->new_cache(8), b = model_->new_cache(8);
  const int32_t two[2] = {1, 2};
  KvCache* same[2] = {&a, &a};
  EXPECT_THROW(model_->decode_batch(two, same), Error);
  KvCache* one[1] = {&b};
  EXPECT_THROW(model_->decode_batch(two, one), Error);
  KvCache* ok[2] = {&a, &b};
  const int32_t bad[2] = {1, static_cast<int32_t>(model_->config().vocab)};
  EXPECT_THROW(model_->decode_batch(bad, ok), Error);
  auto full = model_->new_cache(1);
  const int32_t first[1] = {1};
  model_->forward(first, full, false);
  KvCache* over[1] = {&full};
  EXPECT_THROW(model_->decode_batch(first, over), Error);  // past the cache's capacity
}

// Many threads at once, with greedy, seeded sampling, stop strings, logprobs
// and different lengths: each gets what engine::generate gives it alone, and
// the scheduler did decode several sequences per step.
TEST_F(BatchTest, SchedulerMatchesGenerateAndBatches) {
  struct Case {
    std::string prompt;
    GenerateOptions opt;
  };
  std::vector<Case> cases;
  for (int i = 0; i < 6; ++i) {
    Case c;
    c.prompt = i % 2 ? "Alice went to the" : "The quick fox";
    c.opt.max_tokens = 20 + 4 * i;
    c.opt.stop_at_eos = false;
    if (i >= 2) {
      c.opt.sampling.temperature = 0.9f;
      c.opt.sampling.top_k = 40;
      c.opt.sampling.seed = 7 + static_cast<uint64_t>(i);
    }
    if (i == 3) c.opt.logprobs = 3;
    if (i == 4) c.opt.stop = {"e"};
    cases.push_back(c);
  }
  std::vector<GenerateResult> alone;
  std::vector<std::string> alone_streamed(cases.size());
  for (size_t i = 0; i < cases.size(); ++i)
    alone.push_back(generate(*model_, *tok_, ids(cases[i].prompt), cases[i].opt,
                             [&, i](std::string_view s) { alone_streamed[i] += s; return true; }));

  BatchScheduler sched(*model_, *tok_, 8);
  std::vector<GenerateResult> together(cases.size());
  std::vector<std::string> streamed(cases.size());
  std::vector<int> token_calls(cases.size(), 0);
  std::barrier start(static_cast<std::ptrdiff_t>(cases.size()));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < cases.size(); ++i)
    threads.emplace_back([&, i] {
      const auto prompt = ids(cases[i].prompt);
      start.arrive_and_wait();
      together[i] = sched.generate(prompt, cases[i].opt, [&, i](std::string_view s) { streamed[i] += s; return true; },
                                   [&, i](int32_t, const TokenLogprob*) { ++token_calls[i]; });
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(together[i].tokens, alone[i].tokens);
    EXPECT_EQ(together[i].text, alone[i].text);
    EXPECT_EQ(together[i].finish, alone[i].finish);
    EXPECT_EQ(streamed[i], alone_streamed[i]);
    EXPECT_EQ(token_calls[i], static_cast<int>(together[i].tokens.size()));
    ASSERT_EQ(together[i].logprobs.size(), alone[i].logprobs.size());
    for (size_t k = 0; k < alone[i].logprobs.size(); ++k)
      EXPECT_NEAR(together[i].logprobs[k].logprob, alone[i].logprobs[k].logprob, 1e-3);
  }
  EXPECT_EQ(alone[4].finish, FinishReason::Stop);
  const auto st = sched.stats();
  EXPECT_GE(st.largest, 2);          // sequences really shared decode steps
  EXPECT_GT(st.tokens, st.steps);    // mean batch above one
  EXPECT_LE(st.largest, 8);
}

// A caller that stops reading ends its own sequence; the others run on.
TEST_F(BatchTest, CancellingOneSequenceLeavesTheOthers) {
  BatchScheduler sched(*model_, *tok_, 4);
  GenerateOptions o;
  o.max_tokens = 40;
  o.stop_at_eos = false;
  GenerateResult cut, full;
  std::barrier start(2);
  std::thread a([&] {
    start.arrive_and_wait();
    int pieces = 0;
    cut = sched.generate(ids("The quick fox"), o, [&](std::string_view) { return ++pieces < 3; });
  });
  std::thread b([&] {
    start.arrive_and_wait();
    full = sched.generate(ids("Alice went to the"), o);
  });
  a.join();
  b.join();
  EXPECT_LT(cut.tokens.size(), 40u);
  EXPECT_EQ(full.tokens.size(), 40u);
  EXPECT_EQ(full.tokens, generate(*model_, *tok_, ids("Alice went to the"), o).tokens);
}

TEST_F(BatchTest, MoreCallersThanTheBatchWaitTheirTurn) {
  BatchScheduler sched(*model_, *tok_, 2);
  GenerateOptions o;
  o.max_tokens = 10;
  o.stop_at_eos = false;
  const auto expect = generate(*model_, *tok_, ids("Once upon a time"), o).tokens;
  std::atomic<int> same{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 5; ++i)
    threads.emplace_back([&] {
      if (sched.generate(ids("Once upon a time"), o).tokens == expect) ++same;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(same.load(), 5);
  EXPECT_LE(sched.stats().largest, 2);
}

// Prompts longer than a step's prefill budget are prefilled in chunks, in
// the same steps as other sequences' decoding, and every caller still gets
// what engine::generate gives it alone (prompt log-probabilities included,
// which are prefilled by their caller).
TEST_F(BatchTest, LongPromptsArePrefilledInChunksAlongsideDecoding) {
  std::string text;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 4; ++i) {
    text += i % 2 ? " and the quick brown fox jumps over the lazy dog" : " Alice went to the market and bought bread";
    prompts.push_back(ids(text));
  }
  ASSERT_GT(prompts.back().size(), 40u);
  std::vector<GenerateOptions> opts(prompts.size());
  for (size_t i = 0; i < opts.size(); ++i) {
    opts[i].max_tokens = 12 + 3 * static_cast<int>(i);
    opts[i].stop_at_eos = false;
    opts[i].sampling.temperature = i % 2 ? 0.8f : 0.0f;
    opts[i].sampling.seed = 11 + i;
  }
  opts[2].logprobs = 2;
  opts[2].prompt_logprobs = true;
  std::vector<GenerateResult> alone;
  for (size_t i = 0; i < prompts.size(); ++i) alone.push_back(generate(*model_, *tok_, prompts[i], opts[i]));

  constexpr int64_t kBudget = 16;
  BatchScheduler sched(*model_, *tok_, 8, kBudget);
  std::vector<GenerateResult> together(prompts.size());
  std::barrier start(static_cast<std::ptrdiff_t>(prompts.size()));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i)
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      together[i] = sched.generate(prompts[i], opts[i]);
    });
  for (auto& t : threads) t.join();
  uint64_t scheduler_prefilled = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(together[i].tokens, alone[i].tokens);
    EXPECT_EQ(together[i].text, alone[i].text);
    ASSERT_EQ(together[i].prompt_logprobs.size(), alone[i].prompt_logprobs.size());
    for (size_t k = 0; k < alone[i].prompt_logprobs.size(); ++k)
      EXPECT_NEAR(together[i].prompt_logprobs[k].logprob, alone[i].prompt_logprobs[k].logprob, 1e-4);
    if (i != 2) scheduler_prefilled += prompts[i].size();
  }
  EXPECT_EQ(alone[2].prompt_logprobs.size(), prompts[2].size() - 1);
  const auto st = sched.stats();
  EXPECT_EQ(st.prefill_tokens, scheduler_prefilled);
  // No step took more than the budget, so the prompts needed at least this many steps.
  EXPECT_GE(st.steps, (scheduler_prefilled + kBudget - 1) / kBudget);
  EXPECT_GE(st.largest, 2);
}

TEST_F(BatchTest, BadRequestsFailInTheCaller) {
  BatchScheduler sched(*model_, *tok_, 4);
  GenerateOptions o;
  EXPECT_THROW(sched.generate({}, o), Error);
  const auto p = ids("hi");
  // An out-of-range id fails its own request, not a batch others share.
  std::vector<int32_t> bad = p;
  bad.push_back(static_cast<int32_t>(model_->config().vocab));
  o.max_tokens = 30;
  o.stop_at_eos = false;
  GenerateResult fine;
  std::thread other([&] { fine = sched.generate(ids("Once upon a time"), o); });
  EXPECT_THROW(sched.generate(bad, o), Error);
  other.join();
  EXPECT_EQ(fine.tokens.size(), 30u);
  o.max_tokens = -1;
  EXPECT_THROW(sched.generate(p, o), Error);
}

}  // namespace
}  // namespace kaival::engine
