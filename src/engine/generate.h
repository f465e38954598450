#pragma once
// Text generation loop: prompt processing in one batch, then one decode step
// per token with the KV cache, sampling, stop strings, max tokens, and
// streaming of the decoded text.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model.h"
#include "engine/sampler.h"

namespace kaival::tokenizer {
class Tokenizer;
}
namespace kaival::weights {
class Checkpoint;
}

namespace kaival::engine {

struct GenerateOptions {
  SamplingParams sampling;
  int32_t max_tokens = 128;
  std::vector<std::string> stop;  // generation ends before the first occurrence of any
  bool stop_at_eos = true;        // end at the tokenizer's EOS token
  std::vector<int32_t> stop_tokens;  // more ids that end generation like EOS (chat end-of-turn tokens)
  // >= 0: record the log-probability of each generated token under the model
  // (log-softmax of the raw logits, before penalties, temperature and filters)
  // and this many most likely alternatives; < 0: none.
  int32_t logprobs = -1;
  // With logprobs >= 0: also for every prompt token after the first (what
  // OpenAI's `echo` + `logprobs` return, used for log-likelihood scoring).
  bool prompt_logprobs = false;
};

// Log-probability of one token at one position, with the top alternatives.
struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // most likely first
};

enum class FinishReason { Length, Stop, Eos, Context };
std::string_view finish_reason_name(FinishReason r);  // "length", "stop", "eos", "context"

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (EOS / stop-string tokens included)
  std::string text;             // decoded text, cut before a stop string
  FinishReason finish = FinishReason::Length;
  std::vector<TokenLogprob> prompt_logprobs;  // prompt tokens 1..n-1 (options.prompt_logprobs)
  std::vector<TokenLogprob> logprobs;         // one per generated token (options.logprobs >= 0)
};

// log(softmax(logits)) computed in double precision.
std::vector<float> log_softmax(std::span<const float> logits);
// The log-probability of `token` and the `top` most likely tokens of one row of logits.
TokenLogprob token_logprob(std::span<const float> logits, int32_t token, int32_t top);

// Receives each new piece of text as it becomes final (text that might still
// turn into a stop string, or an incomplete UTF-8 sequence, is held back).
// Return false to stop early.
using TextCallback = std::function<bool(std::string_view)>;
// Receives each generated token as soon as it is sampled (before its text is
// final), with its log-probability when options.logprobs >= 0 (else null).
using TokenCallback = std::function<void(int32_t token, const TokenLogprob* logprob)>;

GenerateResult generate(const Model& model, const tokenizer::Tokenizer& tok, std::span<const int32_t> prompt,
                        const GenerateOptions& options, const TextCallback& on_text = {},
                        const TokenCallback& on_token = {});


// The tokenizer that goes with a checkpoint: GGUF metadata, or the
// tokenizer.json in the model folder. Throws naming the checkpoint if none.
std::unique_ptr<tokenizer::Tokenizer> open_tokenizer(const weights::Checkpoint& ckpt);

// Holds back streamed text until it can no longer be part of a stop string.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stop) : stop_(std::move(stop)) {}
  // Full text generated so far. Returns the length of the prefix that is final
  // to emit; sets `stopped` when a stop string was found (the prefix then ends
  // right before it).
  size_t safe_length(std::string_view text, bool& stopped) const;

 private:
  std::vector<std::string> stop_;
};

// One sequence's generation, step by step, so that a scheduler can run the
// decode steps of many sequences in one batch (see batch.h). generate() is
//   Generation g(...); g.prefill();
//   while (g.advance(on_text, on_token)) g.set_logits(model.forward({g.next_token()}, g.cache(), false));
//   return g.finish(on_text);
class Generation {
 public:
  // Validates the options and allocates the KV cache (prompt + max_tokens).
  Generation(const Model& model, const tokenizer::Tokenizer& tok, std::span<const int32_t> prompt,
             const GenerateOptions& options);
  // Runs the prompt through the model (prompt log-probabilities if asked).
  void prefill();
  // Samples a token from the current logits, reports it through the
  // callbacks, and returns true when the sequence needs another decode step
  // with next_token() as input; false when it is done (or a callback cancelled).
  bool advance(const TextCallback& on_text, const TokenCallback& on_token);
  int32_t next_token() const { return res_.tokens.back(); }
  std::span<const int32_t> prompt() const { return prompt_; }
  // Prompt log-probabilities need every position's logits, so such a prompt
  // is prefilled by prefill() alone, not in a scheduler's shared batch.
  bool wants_prompt_logprobs() const { return options_.logprobs >= 0 && options_.prompt_logprobs; }
  KvCache& cache() { return cache_; }
  // Logits [vocab] of the decode step of next_token(), or of the last prompt
  // token when a scheduler prefilled the prompt into cache().
  void set_logits(std::span<const float> logits) { logits_.assign(logits.begin(), logits.end()); }
  // Emits text still held back and returns the result.
  GenerateResult finish(const TextCallback& on_text);

 private:
  const Model& model_;
  const tokenizer::Tokenizer& tok_;
  GenerateOptions options_;
  std::vector<int32_t> prompt_;
  Sampler sampler_;
  StopMatcher stops_;
  KvCache cache_;
  std::vector<int32_t> history_;
  std::vector<float> logits_;
  GenerateResult res_;
  size_t emitted_ = 0;
  bool done_ = false;
};

}  // namespace kaival::engine
