#pragma once
// One streamed chat answer from a campaign model's OpenAI-compatible backend
// (POST <base>/v1/chat/completions with "stream": true), piece by piece as the
// server sends it, for live battles that the voter watches being written.
// eval::OpenAIClient collects a stream whole and retries it from the start;
// here each piece goes out at once, so a retry is allowed only before the
// first piece (a second try after that would show the voter another answer).
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "arena/campaign.h"
#include "core/error.h"

namespace kaival::arena {

// What a request cost. Backends report it in `usage` (we ask for it with
// stream_options.include_usage); when they do not, it is counted here:
// completion = content pieces received, prompt = ceil(bytes of the messages / 4).
struct TokenUsage {
  int64_t prompt_tokens = 0, completion_tokens = 0;
  bool counted = false;  // estimated here, not reported by the backend
};

struct StreamedAnswer {
  std::string text;
  TokenUsage usage;
  int pieces = 0;
};

// A stream that failed (or was cancelled) after it may have cost tokens:
// `usage` holds what was spent so far, so budgets count failed answers too.
class StreamFailure : public IoError {
 public:
  StreamFailure(std::string where, std::string problem, TokenUsage usage, bool cancelled)
      : IoError(std::move(where), std::move(problem)), usage(usage), cancelled(cancelled) {}
  TokenUsage usage;
  bool cancelled;
};

struct ChatStreamOptions {
  int max_retries = 1;             // before the first piece only
  double backoff_s = 0.25;         // doubled per retry
  int connect_timeout_ms = 10000;  // capped by the backend's timeout_s
  // Set by another thread to stop waiting (checked at least once a second,
  // also while the backend sends nothing); then StreamFailure with cancelled.
  const std::atomic<bool>* cancel = nullptr;
};

// Streams `model`'s answer to `prompt`. `on_piece` gets each content piece in
// order (on the calling thread) and returns false to cancel. Throws
// StreamFailure naming the model (never the key) when the backend fails, cuts
// the stream before [DONE], sends an error event, or times out (timeout_s
// bounds the whole stream); IoError when api_key_env names an unset variable.
StreamedAnswer stream_answer(const CampaignModel& model, const std::string& prompt,
                             const std::function<bool(std::string_view)>& on_piece,
                             const ChatStreamOptions& options = {});

}  // namespace kaival::arena
