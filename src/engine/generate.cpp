#include "engine/generate.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "weights/checkpoint.h"

namespace kaival::engine {
namespace {

// Length of `text` without a trailing incomplete UTF-8 sequence or a trailing
// U+FFFD (which a byte-level decoder writes for a partial character that the
// next token may complete).
size_t complete_utf8(std::string_view text) {
  size_t n = text.size();
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  while (n >= 3 && text.substr(n - 3, 3) == kReplacement) n -= 3;
  // Walk back over at most 3 continuation bytes to the lead byte.
  size_t i = n, cont = 0;
  while (i > 0 && cont < 4 && (static_cast<unsigned char>(text[i - 1]) & 0xC0) == 0x80) --i, ++cont;
  if (i == 0) return n;
  const auto lead = static_cast<unsigned char>(text[i - 1]);
  size_t need = lead < 0x80 ? 0 : (lead >> 5) == 6 ? 1 : (lead >> 4) == 14 ? 2 : (lead >> 3) == 30 ? 3 : 0;
  if (need > cont) return i - 1;
  return n;
}

}  // namespace

std::vector<float> log_softmax(std::span<const float> logits) {
  if (logits.empty()) return {};
  const float mx = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - mx);
  const double lse = mx + std::log(sum);
  std::vector<float> out(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<float>(logits[i] - lse);
  return out;
}

TokenLogprob token_logprob(std::span<const float> logits, int32_t token, int32_t top) {
  if (token < 0 || static_cast<size_t>(token) >= logits.size())
    fail("logprobs", "token id {} is out of range (vocabulary {})", token, logits.size());
  const auto lp = log_softmax(logits);
  TokenLogprob r;
  r.token = token;
  r.logprob = lp[static_cast<size_t>(token)];
  const size_t k = std::min(static_cast<size_t>(std::max(top, 0)), lp.size());
  if (k == 0) return r;
  std::vector<int32_t> idx(lp.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + static_cast<ptrdiff_t>(k), idx.end(),
                    [&](int32_t a, int32_t b) { return lp[a] > lp[b] || (lp[a] == lp[b] && a < b); });
  for (size_t i = 0; i < k; ++i) r.top.emplace_back(idx[i], lp[static_cast<size_t>(idx[i])]);
  return r;
}

std::unique_ptr<tokenizer::Tokenizer> open_tokenizer(const weights::Checkpoint& ckpt) {
  if (ckpt.gguf()) return tokenizer::Tokenizer::from_gguf(*ckpt.gguf(), ckpt.files().front());
  if (!ckpt.folder().empty() && std::filesystem::is_regular_file(std::filesystem::path(ckpt.folder()) / "tokenizer.json"))
    return tokenizer::Tokenizer::open(ckpt.folder());
  fail<UnsupportedError>(ckpt.path(), "no tokenizer: expected tokenizer.json next to the weights or GGUF tokenizer metadata");
}

std::string_view finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Length: return "length";
    case FinishReason::Stop: return "stop";
    case FinishReason::Eos: return "eos";
    case FinishReason::Context: return "context";
  }
  return "length";
}

size_t StopMatcher::safe_length(std::string_view text, bool& stopped) const {
  stopped = false;
  size_t first = std::string_view::npos;
  for (const auto& s : stop_) {
    if (s.empty()) continue;
    const size_t at = text.find(s);
    if (at != std::string_view::npos) first = std::min(first, at);
  }
  if (first != std::string_view::npos) {
    stopped = true;
    return first;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const auto& s : stop_)
    for (size_t k = std::min(s.size() - (s.empty() ? 0 : 1), text.size()); k > hold; --k)
      if (text.substr(text.size() - k) == std::string_view(s).substr(0, k)) {
        hold = k;
        break;
      }
  return text.size() - hold;
}

Generation::Generation(const Model& model, const tokenizer::Tokenizer& tok, std::span<const int32_t> prompt,
                       const GenerateOptions& options)
    : model_(model), tok_(tok), options_(options), prompt_(prompt.begin(), prompt.end()), sampler_(options.sampling),
      stops_(options.stop) {
  if (prompt.empty()) fail("generate", "empty prompt (no tokens)");
  // Checked here, not only in the forward pass, so that a bad id fails its
  // own request and never a batch that other sequences share.
  const int64_t vocab = model.config().vocab;
  for (const int32_t id : prompt)
    if (id < 0 || id >= vocab) fail("generate", "prompt token id {} is out of range (vocabulary {})", id, vocab);
  if (options.max_tokens < 0) fail("generate", "max_tokens must be >= 0");
  cache_ = model.new_cache(static_cast<int64_t>(prompt.size()) + options.max_tokens);
  if (static_cast<int64_t>(prompt.size()) > cache_.capacity())
    fail("generate", "prompt of {} tokens exceeds the model's context of {}", prompt.size(), cache_.capacity());
  history_ = prompt_;
}

void Generation::prefill() {
  const std::span<const int32_t> prompt(prompt_);
  if (options_.logprobs >= 0 && options_.prompt_logprobs) {
    // All-position logits in chunks, so that memory stays chunk x vocab.
    constexpr size_t kChunk = 64;
    const int64_t vocab = model_.config().vocab;
    for (size_t at = 0; at < prompt.size(); at += kChunk) {
      const auto part = prompt.subspan(at, std::min(kChunk, prompt.size() - at));
      const auto rows = model_.forward(part, cache_, true);
      for (size_t r = 0; r < part.size(); ++r) {
        const std::span<const float> row(rows.data() + r * vocab, static_cast<size_t>(vocab));
        if (at + r + 1 < prompt.size())
          res_.prompt_logprobs.push_back(token_logprob(row, prompt[at + r + 1], options_.logprobs));
        else
          logits_.assign(row.begin(), row.end());
      }
    }
  } else {
    logits_ = model_.forward(prompt, cache_, false);
  }
}

bool Generation::advance(const TextCallback& on_text, const TokenCallback& on_token) {
  if (done_ || static_cast<int32_t>(res_.tokens.size()) >= options_.max_tokens) return false;
  const bool want_lp = options_.logprobs >= 0;
  const int32_t id = sampler_.sample(logits_, history_);
  if (want_lp) res_.logprobs.push_back(token_logprob(logits_, id, options_.logprobs));
  if (on_token) on_token(id, want_lp ? &res_.logprobs.back() : nullptr);
  res_.tokens.push_back(id);
  history_.push_back(id);
  const auto eos = tok_.special().eos;
  if (options_.stop_at_eos &&
      ((eos && id == *eos) ||
       std::find(options_.stop_tokens.begin(), options_.stop_tokens.end(), id) != options_.stop_tokens.end())) {
    res_.finish = FinishReason::Eos;
    return false;
  }
  const std::string text = tok_.decode(std::span<const int32_t>(res_.tokens), true);
  bool stopped = false;
  size_t safe = stops_.safe_length(text, stopped);
  if (!stopped) safe = std::min(safe, complete_utf8(text));
  bool cancelled = false;
  if (safe > emitted_ && on_text) cancelled = !on_text(std::string_view(text).substr(emitted_, safe - emitted_));
  emitted_ = std::max(emitted_, safe);
  res_.text = text.substr(0, stopped ? safe : text.size());
  if (stopped) {
    res_.finish = FinishReason::Stop;
    done_ = true;  // the text is final: finish() must not re-add the stop string
    return false;
  }
  if (cancelled) {
    done_ = true;
    return false;
  }
  if (static_cast<int32_t>(res_.tokens.size()) >= options_.max_tokens) return false;
  if (cache_.size() >= cache_.capacity()) {
    res_.finish = FinishReason::Context;
    return false;
  }
  return true;
}

GenerateResult Generation::finish(const TextCallback& on_text) {
  if (!done_) {
    // Flush what was held back (a partial stop-string prefix that never completed).
    res_.text = tok_.decode(std::span<const int32_t>(res_.tokens), true);
    if (res_.text.size() > emitted_ && on_text) on_text(std::string_view(res_.text).substr(emitted_));
    emitted_ = res_.text.size();
    done_ = true;
  }
  return std::move(res_);
}

GenerateResult generate(const Model& model, const tokenizer::Tokenizer& tok, std::span<const int32_t> prompt,
                        const GenerateOptions& options, const TextCallback& on_text,
                        const TokenCallback& on_token) {
  Generation g(model, tok, prompt, options);
  g.prefill();
  while (g.advance(on_text, on_token)) {
    const int32_t step[1] = {g.next_token()};
    g.set_logits(model.forward(step, g.cache(), false));
  }
  return g.finish(on_text);
}

}  // namespace kaival::engine
