#pragma once
// Asking campaign models' OpenAI-compatible backends: one chat request per
// (prompt, model) through eval::OpenAIClient (bounded concurrency, retries,
// Retry-After, timeouts). Used by `kaival arena answer` to fill a prompt set's
// missing answers and by the web service for voters' live prompts.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "arena/campaign.h"
#include "arena/chat_stream.h"
#include "eval/http_client.h"

namespace kaival::arena {

// The chat-completions body for one prompt: system prompt, sampling, max_tokens.
nlohmann::json chat_request(const ModelBackend& backend, const std::string& prompt);

struct BackendPoolOptions {
  int concurrency = 4;      // requests in flight per backend
  int max_retries = 3;      // per request, after the first try
  double backoff_initial_s = 0.25;
  double retry_after_max_s = 30;
};

// One client per backend (base URL, key variable, timeout), made on first use
// and kept, so connections and the adaptive limit carry over. Thread-safe.
class BackendPool {
 public:
  explicit BackendPool(BackendPoolOptions options = {}) : opt_(options) {}
  // The answer text of `model` to `prompt`. Throws IoError naming the model
  // (and the server's message; never the key) when it cannot answer, and
  // IoError when api_key_env names an unset variable.
  std::string ask(const CampaignModel& model, const std::string& prompt);
  // The same with what it cost (the answer's `usage`, or counted when absent).
  struct Answer {
    std::string text;
    TokenUsage usage;
  };
  Answer answer(const CampaignModel& model, const std::string& prompt);

 private:
  eval::OpenAIClient& client(const ModelBackend& b);
  BackendPoolOptions opt_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<eval::OpenAIClient>> clients_;
};

struct FillProgress {
  int done = 0, failed = 0, total = 0;
};

struct FillOptions {
  BackendPoolOptions pool;
  int workers = 4;  // requests in flight over all backends
  std::function<void(const FillProgress&)> progress;  // called after each answer, from worker threads (serialised)
};

struct FillResult {
  int asked = 0, answered = 0, failed = 0;
  int skipped = 0;                  // missing answers of models without a backend
  std::vector<std::string> errors;  // one line per failed (prompt, model)
};

// Asks each model with a backend for every prompt it has no answer to, and
// stores the answers in `campaign`. Failures are collected, not thrown: the
// answers that came back are kept, so a rerun asks only for the rest.
FillResult fill_answers(ArenaCampaign& campaign, const FillOptions& options);

// `yaml_text` (the campaign as read) with every answer of `campaign` set in
// prompts[i].answers; everything else is kept as it was (comments are lost).
std::string with_answers(const std::string& yaml_text, const ArenaCampaign& campaign, const std::string& where);

}  // namespace kaival::arena
