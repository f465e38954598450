#include "eval/judge.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/jinja.h"
#include "eval/response_cache.h"

namespace kaival::eval {

namespace {

using json = nlohmann::json;

struct Call {
  json body;
  std::string hash;
  json response;
};

const std::string kChat = "chat/completions";

// Sends every call (cache first) on up to `concurrency` threads; rethrows the first error.
void send_all(std::vector<Call>& calls, OpenAIClient& client, const std::string& cache_path, int concurrency) {
  if (calls.empty()) return;
  { ResponseCache migrate_once(cache_path); }  // schema first, on one thread: migrations must not race
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex mu;
  auto worker = [&] {
    try {
      ResponseCache cache(cache_path);
      while (!failed.load()) {
        size_t i = next.fetch_add(1);
        if (i >= calls.size()) break;
        Call& c = calls[i];
        if (auto hit = cache.get(c.hash)) {
          c.response = std::move(*hit);
          continue;
        }
        c.response = client.post(kChat, c.body);
        cache.put(c.hash, kChat, c.body, c.response);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  int n = std::clamp<int>(concurrency, 1, static_cast<int>(calls.size()));
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t) threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  if (error) std::rethrow_exception(error);
}

std::string reply_text(const json& r) {
  if (!r.is_object() || !r.contains("choices") || !r["choices"].is_array() || r["choices"].empty()) return "";
  const json& c = r["choices"][0];
  if (c.contains("message") && c["message"].is_object() && c["message"].contains("content") &&
      c["message"]["content"].is_string())
    return c["message"]["content"].get<std::string>();
  if (c.contains("text") && c["text"].is_string()) return c["text"].get<std::string>();
  return "";
}

jinja::Options task_options() {
  jinja::Options o;  // task templates render like plain Jinja2 (as in the runner)
  o.trim_blocks = false;
  o.lstrip_blocks = false;
  return o;
}

json turn_body(const TaskCard& card, const std::string& model, const Conversation& c, size_t turn) {
  json msgs = json::array();
  for (size_t k = 0; k < turn; ++k) {
    msgs.push_back({{"role", "user"}, {"content", c.questions[k]}});
    msgs.push_back({{"role", "assistant"}, {"content", c.answers[k]}});
  }
  msgs.push_back({{"role", "user"}, {"content", c.questions[turn]}});
  json body;
  body["model"] = model;
  body["messages"] = msgs;
  body["max_tokens"] = 256;
  body["temperature"] = 0;
  for (auto it = card.generation.begin(); it != card.generation.end(); ++it) body[it.key()] = json::parse(it.value().dump());
  return body;
}

std::string first_model_id(OpenAIClient& client) {
  json models = client.get("models");
  if (models.contains("data") && models["data"].is_array() && !models["data"].empty() &&
      models["data"][0].contains("id") && models["data"][0]["id"].is_string())
    return models["data"][0]["id"].get<std::string>();
  fail<IoError>(client.base_url() + "/models", "the judge server names no model; pass --judge-model");
}

}  // namespace

bool needs_conversation(const TaskCard& card) { return !card.turns.empty() || is_judged(card); }

ConversationRun run_conversations(const TaskCard& card, std::vector<Conversation> items, OpenAIClient& model,
                                  const std::string& served_model, const JudgeSettings& judge) {
  ConversationRun run;
  run.items = std::move(items);
  const size_t turns = 1 + card.turns.size();
  std::vector<jinja::Template> turn_tpl, ref_tpl;
  for (size_t k = 0; k < card.turns.size(); ++k)
    turn_tpl.push_back(jinja::Template::parse(card.turns[k], card.file + ":turns[" + std::to_string(k) + "]", task_options()));
  for (size_t k = 0; k < turns; ++k) {
    std::string t = k < card.judge_references.size() ? card.judge_references[k] : (k == 0 ? card.target : "");
    ref_tpl.push_back(jinja::Template::parse(t, card.file + ":judge.references", task_options()));
  }
  for (auto& c : run.items) {
    if (c.questions.size() != 1 || c.answers.size() != 1) fail(card.file, "a conversation starts with exactly one turn");
    for (size_t k = 0; k < card.turns.size(); ++k) c.questions.push_back(turn_tpl[k].render(c.context));
    for (size_t k = 0; k < turns; ++k) c.references.push_back(ref_tpl[k].render(c.context));
  }
  // Follow-up turns, one phase each: turn k's request carries the model's own answers so far.
  for (size_t k = 1; k < turns; ++k) {
    std::vector<Call> calls(run.items.size());
    for (size_t i = 0; i < calls.size(); ++i) {
      calls[i].body = turn_body(card, served_model, run.items[i], k);
      calls[i].hash = response_cache_key(kChat, calls[i].body);
    }
    send_all(calls, model, judge.cache_path, judge.concurrency);
    run.requests += static_cast<int64_t>(calls.size());
    for (size_t i = 0; i < calls.size(); ++i) {
      run.items[i].answers.push_back(reply_text(calls[i].response));
      run.items[i].answer_hashes.push_back(calls[i].hash);
    }
  }
  if (!is_judged(card)) return run;
  Rubric rubric = load_rubric(card.judge_rubric);
  run.rubric_name = rubric.name + "@" + rubric.version;
  run.rubric_sha256 = rubric.sha256;
  if (judge.url.empty()) {
    run.warnings.push_back("metric 'judge' skipped: no judge server given (--judge URL)");
    return run;
  }
  // The judge phase: one request per (item, turn), temperature 0 and a fixed seed.
  OpenAIClient judge_client(judge.url, judge.client);
  run.judge_model = judge.model.empty() ? first_model_id(judge_client) : judge.model;
  std::vector<Call> calls;
  calls.reserve(run.items.size() * turns);
  for (const auto& c : run.items) {
    for (size_t k = 0; k < turns; ++k) {
      JudgeInput in;
      in.question = c.questions[k];
      in.answer = c.answers[k];
      in.reference = c.references[k];
      in.turn = static_cast<int>(k + 1);
      for (size_t h = 0; h < k; ++h) in.history.emplace_back(c.questions[h], c.answers[h]);
      Call call;
      call.body = json::object();
      call.body["model"] = run.judge_model;
      call.body["messages"] = judge_messages(rubric, in);
      call.body["max_tokens"] = 1024;
      for (auto it = rubric.generation.begin(); it != rubric.generation.end(); ++it)
        call.body[it.key()] = json::parse(it.value().dump());
      call.body["temperature"] = 0;
      call.body["seed"] = rubric.seed;
      call.hash = response_cache_key(kChat, call.body);
      calls.push_back(std::move(call));
    }
  }
  send_all(calls, judge_client, judge.cache_path, judge.concurrency);
  run.requests += static_cast<int64_t>(calls.size());
  size_t at = 0;
  for (auto& c : run.items) {
    for (size_t k = 0; k < turns; ++k, ++at) {
      std::string reply = reply_text(calls[at].response);
      JudgeVerdict v = parse_judge_reply(rubric, reply);
      c.scores.push_back(v.score);
      run.judge_failures += !v.score.has_value();
      c.criteria.push_back(v.criteria);
      c.rationales.push_back(reply);
      c.judge_errors.push_back(v.error);
      c.judge_hashes.push_back(calls[at].hash);
    }
  }
  return run;
}

std::vector<std::pair<std::string, double>> conversation_metrics(const Conversation& c, bool judged,
                                                                 nlohmann::ordered_json& per,
                                                                 nlohmann::ordered_json& record) {
  std::vector<std::pair<std::string, double>> out;
  nlohmann::ordered_json turns = nlohmann::ordered_json::array();
  double sum = 0;
  int scored = 0;
  for (size_t k = 0; k < c.answers.size(); ++k) {
    nlohmann::ordered_json t = nlohmann::ordered_json::object();
    t["turn"] = k + 1;
    t["question"] = c.questions[k];
    t["answer"] = c.answers[k];
    t["reference"] = k < c.references.size() ? c.references[k] : "";
    t["request_hash"] = k < c.answer_hashes.size() ? c.answer_hashes[k] : "";
    if (judged && k < c.scores.size()) {
      std::string name = "judge_turn" + std::to_string(k + 1);
      if (c.scores[k]) {
        out.emplace_back(name, *c.scores[k]);
        sum += *c.scores[k];
        ++scored;
        t["judge_score"] = *c.scores[k];
      } else {
        per[name] = nullptr;
        t["judge_score"] = nullptr;
        t["judge_error"] = c.judge_errors[k];
      }
      t["judge_criteria"] = c.criteria[k];
      t["judge_rationale"] = c.rationales[k];
      t["judge_request_hash"] = c.judge_hashes[k];
    }
    turns.push_back(std::move(t));
  }
  if (judged && !c.scores.empty()) {
    if (scored > 0) out.emplace_back("judge", sum / scored);
    else per["judge"] = nullptr;
  }
  record["turns"] = std::move(turns);
  return out;
}

nlohmann::ordered_json task_result_extras(const TaskCard& card, const ConversationRun* run) {
  nlohmann::ordered_json s = nlohmann::ordered_json::object();
  std::vector<std::string> warnings = card.warnings;
  if (run && is_judged(card)) {
    s["judge_failures"] = run->judge_failures;
    s["judge_model"] = run->judge_model;
    s["judge_rubric"] = run->rubric_name;
    s["judge_rubric_sha256"] = run->rubric_sha256;
  }
  if (run) warnings.insert(warnings.end(), run->warnings.begin(), run->warnings.end());
  if (!warnings.empty()) s["warnings"] = warnings;
  return s;
}

void merge_conversation_run(ConversationRun& total, const ConversationRun& window) {
  if (total.judge_model.empty()) total.judge_model = window.judge_model;
  if (total.rubric_name.empty()) total.rubric_name = window.rubric_name;
  if (total.rubric_sha256.empty()) total.rubric_sha256 = window.rubric_sha256;
  for (const auto& w : window.warnings)
    if (std::find(total.warnings.begin(), total.warnings.end(), w) == total.warnings.end()) total.warnings.push_back(w);
  total.requests += window.requests;
  total.judge_failures += window.judge_failures;
}

bool is_judged(const TaskCard& card) {
  return std::find(card.metrics.begin(), card.metrics.end(), "judge") != card.metrics.end();
}

}  // namespace kaival::eval
