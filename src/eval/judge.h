#pragma once
// Multi-turn chat tasks and LLM-as-judge scoring (docs/eval.md "LLM-as-judge").
// They run as phases after the runner's first one: turn k+1 needs the model's
// answer to turn k (sent back as the assistant message of the history), and the
// judge needs every answer. Each phase goes through an OpenAIClient and the same
// SQLite response cache as the first one (same key: SHA-256 of endpoint and
// body), so a resumed run sends nothing that already has an answer.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/http_client.h"
#include "eval/rubric.h"
#include "eval/task.h"

namespace kaival::eval {

// One item of a multi-turn or judged task, filled phase by phase.
struct Conversation {
  OJson context;  // the item's template context (doc fields, `doc`)
  std::vector<std::string> questions, answers, references, answer_hashes;
  // Per judged turn; a missing score means the judge's reply could not be read.
  std::vector<std::optional<double>> scores;
  std::vector<OJson> criteria;
  std::vector<std::string> rationales, judge_errors, judge_hashes;
};

struct JudgeSettings {
  std::string url;    // OpenAI-compatible judge server; "" = no judge (scores are skipped, with a warning)
  std::string model;  // the judge request's "model"; default: first id of the judge's GET /v1/models
  ClientOptions client;
  std::string cache_path;  // the run's response cache ("" = none)
  int concurrency = 8;
};

// Outcome of the later phases for one task.
struct ConversationRun {
  std::vector<Conversation> items;
  std::string judge_model;
  std::string rubric_name, rubric_sha256;
  std::vector<std::string> warnings;
  int64_t requests = 0;  // later-phase requests, cached or not
  int64_t judge_failures = 0;  // judged turns whose verdict could not be read
};

// Folds one window's run into a task's running total (a streamed task runs its later phases per
// window of rows): counts add up, warnings are kept once, items are not kept.
void merge_conversation_run(ConversationRun& total, const ConversationRun& window);

// Whether a card needs the later phases (follow-up turns or the judge metric).
bool needs_conversation(const TaskCard& card);

// The first turn of each item is given (question = the item's prompt, its answer and
// request hash from the runner's first phase); runs the follow-up turns and the judge.
// Follow-up turns use the first turn's request settings: max_tokens 256, temperature 0, then the
// card's `generation`.
ConversationRun run_conversations(const TaskCard& card, std::vector<Conversation> items, OpenAIClient& model,
                                  const std::string& served_model, const JudgeSettings& judge);

// The item's judge metrics: judge_turn<k> per turn and `judge` (the mean of its scored turns);
// missing scores are left out (and written as null into `per`). Adds the turns to `record`.
std::vector<std::pair<std::string, double>> conversation_metrics(const Conversation& c, bool judged,
                                                                 nlohmann::ordered_json& per,
                                                                 nlohmann::ordered_json& record);

// Task-level fields for results.json beside the metrics: judge_failures, judge model and rubric
// (judged tasks), and `warnings` (the card's, e.g. from an lm-evaluation-harness import, and the run's).
nlohmann::ordered_json task_result_extras(const TaskCard& card, const ConversationRun* run);

// Whether the card scores with the judge.
bool is_judged(const TaskCard& card);

}  // namespace kaival::eval
