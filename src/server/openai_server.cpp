#include "server/openai_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "engine/batch.h"
#include "engine/chat.h"
#include "engine/generate.h"
#include "weights/checkpoint.h"

namespace kaival::server {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// A request the server refuses, with the OpenAI error fields.
struct ApiError {
  int status = 400;
  std::string message;
  std::string param;  // empty: null
  std::string code;   // empty: null
  std::string type = "invalid_request_error";
};

[[noreturn]] void bad(std::string param, std::string message, std::string code = "") {
  throw ApiError{400, std::move(message), std::move(param), std::move(code)};
}

json error_body(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(error_body(e).dump(), "application/json");
}

// ---- request fields -------------------------------------------------------

bool present(const json& body, const char* key) { return body.contains(key) && !body[key].is_null(); }

double number_field(const json& body, const char* key, double def, double lo, double hi) {
  if (!present(body, key)) return def;
  const auto& v = body[key];
  if (!v.is_number()) bad(key, fmt::format("'{}' must be a number", key), "invalid_type");
  const double x = v.get<double>();
  if (!(x >= lo && x <= hi)) bad(key, fmt::format("'{}' must be between {} and {} (got {})", key, lo, hi, x));
  return x;
}

int64_t int_field(const json& body, const char* key, int64_t def, int64_t lo, int64_t hi) {
  if (!present(body, key)) return def;
  const auto& v = body[key];
  if (!v.is_number_integer()) bad(key, fmt::format("'{}' must be an integer", key), "invalid_type");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    bad(key, fmt::format("'{}' is out of range", key));
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) bad(key, fmt::format("'{}' must be between {} and {} (got {})", key, lo, hi, x));
  return x;
}

bool bool_field(const json& body, const char* key, bool def) {
  if (!present(body, key)) return def;
  if (!body[key].is_boolean()) bad(key, fmt::format("'{}' must be a boolean", key), "invalid_type");
  return body[key].get<bool>();
}

std::vector<std::string> stop_field(const json& body) {
  if (!present(body, "stop")) return {};
  const auto& v = body["stop"];
  std::vector<std::string> out;
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    if (v.size() > 16) bad("stop", "at most 16 stop strings are supported");
    for (const auto& s : v) {
      if (!s.is_string()) bad("stop", "'stop' must be a string or an array of strings", "invalid_type");
      out.push_back(s.get<std::string>());
    }
  } else {
    bad("stop", "'stop' must be a string or an array of strings", "invalid_type");
  }
  for (const auto& s : out)
    if (s.empty() || s.size() > 1024) bad("stop", "stop strings must be 1 to 1024 bytes long");
  return out;
}

// ---- bounded worker pool --------------------------------------------------

// At most `running` holders at once, at most `waiting` more blocked in
// acquire(); the rest are refused so that load cannot pile up unboundedly.
class SlotGate {
 public:
  SlotGate(int running, int waiting) : max_running_(std::max(1, running)), max_waiting_(std::max(0, waiting)) {}

  bool acquire() {
    std::unique_lock lock(mu_);
    if (closed_ || (running_ >= max_running_ && waiting_ >= max_waiting_)) return false;
    ++waiting_;
    cv_.wait(lock, [&] { return closed_ || running_ < max_running_; });
    --waiting_;
    if (closed_) return false;
    ++running_;
    return true;
  }
  void release() {
    {
      std::lock_guard lock(mu_);
      --running_;
    }
    cv_.notify_one();
  }
  void close() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }
  std::pair<int, int> load() const {
    std::lock_guard lock(mu_);
    return {running_, waiting_};
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  const int max_running_, max_waiting_;
  int running_ = 0, waiting_ = 0;
  bool closed_ = false;
};

// A held slot, released when the last copy goes (streams hand it to httplib's
// content provider, which outlives the handler).
class Slot {
 public:
  explicit Slot(SlotGate& gate) : gate_(gate) {}
  ~Slot() { gate_.release(); }
  Slot(const Slot&) = delete;
  Slot& operator=(const Slot&) = delete;

 private:
  SlotGate& gate_;
};

// ---- metrics ---------------------------------------------------------------

struct Histogram {
  std::vector<double> bounds;
  std::vector<uint64_t> counts;  // per bound, not cumulative; last = +Inf
  double sum = 0;
  uint64_t count = 0;

  explicit Histogram(std::vector<double> b) : bounds(std::move(b)), counts(bounds.size() + 1, 0) {}
  void observe(double x) {
    const size_t i = static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), x) - bounds.begin());
    ++counts[i];
    sum += x;
    ++count;
  }
  void render(std::string& out, const std::string& name, const std::string& labels) const {
    const std::string sep = labels.empty() ? "" : ",";
    uint64_t cum = 0;
    for (size_t i = 0; i < bounds.size(); ++i) {
      cum += counts[i];
      out += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, bounds[i], cum);
    }
    cum += counts.back();
    out += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", name, labels, sep, cum);
    const std::string braces = labels.empty() ? "" : "{" + labels + "}";
    out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, braces, sum, name, braces, count);
  }
};

std::vector<double> latency_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
}

class Metrics {
 public:
  void request(const std::string& endpoint, int status) {
    std::lock_guard lock(mu_);
    ++requests_[{endpoint, status}];
  }
  void completion(const std::string& endpoint, double seconds, int64_t prompt_tokens, int64_t generated) {
    std::lock_guard lock(mu_);
    duration_.try_emplace(endpoint, latency_buckets()).first->second.observe(seconds);
    prompt_tokens_ += prompt_tokens;
    generated_ += generated;
  }
  void first_token(double seconds) {
    std::lock_guard lock(mu_);
    ttft_.observe(seconds);
  }
  void inter_token(double seconds) {
    std::lock_guard lock(mu_);
    itl_.observe(seconds);
  }
  std::string render(std::pair<int, int> load, const engine::BatchStats& batch) const {
    std::lock_guard lock(mu_);
    std::string out;
    out += "# HELP kaival_decode_steps_total Batched decode steps run.\n# TYPE kaival_decode_steps_total counter\n";
    out += fmt::format("kaival_decode_steps_total {}\n", batch.steps);
    out += "# HELP kaival_decode_batch_tokens_total Sequence-tokens decoded in batched steps (/ steps = mean batch).\n"
           "# TYPE kaival_decode_batch_tokens_total counter\n";
    out += fmt::format("kaival_decode_batch_tokens_total {}\n", batch.tokens);
    out += "# HELP kaival_prefill_batch_tokens_total Prompt tokens prefilled in batched steps.\n"
           "# TYPE kaival_prefill_batch_tokens_total counter\n";
    out += fmt::format("kaival_prefill_batch_tokens_total {}\n", batch.prefill_tokens);
    out += "# HELP kaival_decode_batch_largest Largest number of sequences decoded in one step.\n"
           "# TYPE kaival_decode_batch_largest gauge\n";
    out += fmt::format("kaival_decode_batch_largest {}\n", batch.largest);
    out += "# HELP kaival_requests_total HTTP requests by endpoint and status.\n# TYPE kaival_requests_total counter\n";
    for (const auto& [key, n] : requests_)
      out += fmt::format("kaival_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, n);
    out += "# HELP kaival_prompt_tokens_total Prompt tokens processed.\n# TYPE kaival_prompt_tokens_total counter\n";
    out += fmt::format("kaival_prompt_tokens_total {}\n", prompt_tokens_);
    out += "# HELP kaival_generation_tokens_total Tokens generated.\n# TYPE kaival_generation_tokens_total counter\n";
    out += fmt::format("kaival_generation_tokens_total {}\n", generated_);
    out += "# HELP kaival_requests_running Requests generating now.\n# TYPE kaival_requests_running gauge\n";
    out += fmt::format("kaival_requests_running {}\n", load.first);
    out += "# HELP kaival_requests_waiting Requests waiting for a slot.\n# TYPE kaival_requests_waiting gauge\n";
    out += fmt::format("kaival_requests_waiting {}\n", load.second);
    out += "# HELP kaival_request_duration_seconds End-to-end latency of generation requests.\n"
           "# TYPE kaival_request_duration_seconds histogram\n";
    for (const auto& [endpoint, h] : duration_)
      h.render(out, "kaival_request_duration_seconds", fmt::format("endpoint=\"{}\"", endpoint));
    out += "# HELP kaival_time_to_first_token_seconds Time from request to first generated token.\n"
           "# TYPE kaival_time_to_first_token_seconds histogram\n";
    ttft_.render(out, "kaival_time_to_first_token_seconds", "");
    out += "# HELP kaival_inter_token_latency_seconds Time between consecutive generated tokens.\n"
           "# TYPE kaival_inter_token_latency_seconds histogram\n";
    itl_.render(out, "kaival_inter_token_latency_seconds", "");
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> duration_;
  Histogram ttft_{latency_buckets()};
  Histogram itl_{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}};
  int64_t prompt_tokens_ = 0, generated_ = 0;
};

// ---- jobs ------------------------------------------------------------------

// One parsed, validated generation request.
struct Job {
  bool chat = false;
  bool stream = false;
  bool echo = false;
  bool include_usage = false;
  int32_t logprobs = -1;  // completions: legacy `logprobs`; chat: `top_logprobs` when `logprobs` is true
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::string> prompt_texts;  // echoed text per prompt
  engine::GenerateOptions gen;
};

std::string_view openai_finish(engine::FinishReason r) {
  return r == engine::FinishReason::Stop || r == engine::FinishReason::Eos ? "stop" : "length";
}

json byte_list(std::string_view s) {
  json out = json::array();
  for (unsigned char c : s) out.push_back(c);
  return out;
}

// JSON strings must be valid UTF-8; a token that is part of a character is
// shown with the replacement character (its bytes are in `bytes`).
std::string valid_utf8(std::string_view s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

}  // namespace

std::shared_ptr<const ServedModel> ServedModel::open(const std::string& path, std::string id) {
  auto m = std::make_shared<ServedModel>();
  const auto ckpt = weights::Checkpoint::open(path);
  m->tokenizer = engine::open_tokenizer(ckpt);
  m->model = engine::Model::load(ckpt);
  if (id.empty()) {
    std::filesystem::path p(path);
    while (!p.empty() && p.filename().empty()) p = p.parent_path();
    id = p.filename().string();
    if (id.empty()) id = "model";
  }
  m->id = std::move(id);
  return m;
}

struct OpenAIServer::Impl {
  std::shared_ptr<const ServedModel> served;
  ServerOptions opt;
  int64_t ctx = 0;
  httplib::Server http;
  std::thread listener;
  SlotGate gate;
  Metrics metrics;
  std::unique_ptr<engine::BatchScheduler> batcher;  // null when batching is off
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> next_id{1};
  std::mutex seed_mu;
  std::mt19937_64 seed_rng{std::random_device{}()};
  int bound_port = 0;
  int listen_fd = -1;  // captured from httplib to widen its listen backlog
  bool started = false;
  std::mutex life_mu;
  std::condition_variable life_cv;
  bool stopped = false;

  Impl(std::shared_ptr<const ServedModel> m, ServerOptions o)
      : served(std::move(m)), opt(std::move(o)), gate(opt.max_running, opt.max_waiting) {
    const int64_t max_pos = served->model.config().max_position;
    ctx = opt.context > 0 ? opt.context : std::min<int64_t>(max_pos > 0 ? max_pos : 4096, 4096);
    if (max_pos > 0) ctx = std::min(ctx, max_pos);
    if (opt.max_batch > 1)
      batcher = std::make_unique<engine::BatchScheduler>(served->model, *served->tokenizer, opt.max_batch);
    routes();
  }

  const tokenizer::Tokenizer& tok() const { return *served->tokenizer; }

  uint64_t fresh_seed() {
    std::lock_guard lock(seed_mu);
    return seed_rng();
  }

  // ---- parsing ----

  json parse_body(const httplib::Request& req) const {
    json body;
    try {
      body = json::parse(req.body);
    } catch (const json::parse_error& e) {
      bad("", fmt::format("could not parse the JSON body of the request: {}", e.what()), "invalid_json");
    }
    if (!body.is_object()) bad("", "the request body must be a JSON object", "invalid_json");
    if (present(body, "model")) {
      if (!body["model"].is_string()) bad("model", "'model' must be a string", "invalid_type");
      if (body["model"].get<std::string>() != served->id)
        throw ApiError{404, fmt::format("The model '{}' does not exist; this server serves '{}'",
                                        body["model"].get<std::string>(), served->id),
                       "model", "model_not_found"};
    }
    return body;
  }

  void parse_sampling(const json& body, Job& job) {
    auto& s = job.gen.sampling;
    s.temperature = static_cast<float>(number_field(body, "temperature", 1.0, 0.0, 100.0));
    s.top_p = static_cast<float>(number_field(body, "top_p", 1.0, 0.0, 1.0));
    if (!(s.top_p > 0)) bad("top_p", "'top_p' must be greater than 0");
    s.top_k = static_cast<int32_t>(std::max<int64_t>(0, int_field(body, "top_k", 0, -1, 1 << 30)));
    s.min_p = static_cast<float>(number_field(body, "min_p", 0.0, 0.0, 1.0));
    s.repeat_penalty = static_cast<float>(number_field(body, "repetition_penalty", 1.0, 0.01, 100.0));
    s.repeat_last_n = -1;
    if (present(body, "seed")) {
      const auto& v = body["seed"];
      if (!v.is_number_integer()) bad("seed", "'seed' must be an integer", "invalid_type");
      s.seed = v.is_number_unsigned() ? v.get<uint64_t>() : static_cast<uint64_t>(v.get<int64_t>());
    } else {
      s.seed = fresh_seed();
    }
    for (const char* unsupported : {"frequency_penalty", "presence_penalty"})
      if (number_field(body, unsupported, 0.0, -2.0, 2.0) != 0.0)
        bad(unsupported, fmt::format("'{}' is not supported by this server (use 0 or repetition_penalty)", unsupported),
            "unsupported_parameter");
    if (int_field(body, "n", 1, 1, 1) != 1) bad("n", "only n = 1 is supported");
    if (int_field(body, "best_of", 1, 1, 1) != 1) bad("best_of", "only best_of = 1 is supported");
    if (present(body, "logit_bias") && !(body["logit_bias"].is_object() && body["logit_bias"].empty()))
      bad("logit_bias", "'logit_bias' is not supported", "unsupported_parameter");
    job.gen.stop = stop_field(body);
    job.gen.stop_at_eos = !bool_field(body, "ignore_eos", false);
    job.stream = bool_field(body, "stream", false);
    if (present(body, "stream_options")) {
      const auto& so = body["stream_options"];
      if (!so.is_object()) bad("stream_options", "'stream_options' must be an object", "invalid_type");
      job.include_usage = bool_field(so, "include_usage", false);
    }
  }

  std::vector<int32_t> token_prompt(const json& ids, const char* param) const {
    std::vector<int32_t> out;
    const int64_t vocab = served->model.config().vocab;
    for (const auto& v : ids) {
      if (!v.is_number_integer()) bad(param, "token prompts must be arrays of integers", "invalid_type");
      const int64_t id = v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX ? -1 : v.get<int64_t>();
      if (id < 0 || id >= vocab) bad(param, fmt::format("token id {} is out of range (vocabulary {})", id, vocab));
      out.push_back(static_cast<int32_t>(id));
    }
    return out;
  }

  void add_prompt(Job& job, const json& p) const {
    if (p.is_string()) {
      job.prompts.push_back(tok().encode(p.get<std::string>(), true, true));
      job.prompt_texts.push_back(p.get<std::string>());
    } else if (p.is_array()) {
      job.prompts.push_back(token_prompt(p, "prompt"));
      job.prompt_texts.push_back(tok().decode(job.prompts.back(), true));
    } else {
      bad("prompt", "'prompt' must be a string, an array of token ids, or an array of those", "invalid_type");
    }
  }

  // Checks every prompt against the context and fixes max_tokens.
  void fit_context(Job& job, int64_t requested_max) const {
    int64_t longest = 0;
    for (const auto& p : job.prompts) {
      if (p.empty()) bad(job.chat ? "messages" : "prompt", "the prompt is empty (no tokens)");
      longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
    }
    const int64_t room = ctx - longest;
    if (room < 0 || (room == 0 && requested_max != 0))
      bad(job.chat ? "messages" : "prompt",
          fmt::format("This model's maximum context length is {} tokens, but the prompt has {} tokens{}", ctx,
                      longest, room == 0 ? " and leaves no room to generate" : ""),
          "context_length_exceeded");
    job.gen.max_tokens = static_cast<int32_t>(requested_max < 0 ? room : std::min(requested_max, room));
  }

  Job completion_job(const json& body) {
    Job job;
    if (!present(body, "prompt")) bad("prompt", "'prompt' is required", "missing_required_parameter");
    const auto& p = body["prompt"];
    const bool list_of_prompts = p.is_array() && !p.empty() && (p[0].is_string() || p[0].is_array());
    if (list_of_prompts) {
      if (p.size() > 64) bad("prompt", "at most 64 prompts per request");
      for (const auto& one : p) {
        if (!one.is_string() && !one.is_array())
          bad("prompt", "'prompt' must be a string, an array of token ids, or an array of those", "invalid_type");
        add_prompt(job, one);
      }
    } else {
      add_prompt(job, p);
    }
    parse_sampling(body, job);
    job.echo = bool_field(body, "echo", false);
    job.logprobs = static_cast<int32_t>(int_field(body, "logprobs", -1, 0, opt.max_logprobs));
    if (present(body, "suffix")) bad("suffix", "'suffix' is not supported", "unsupported_parameter");
    fit_context(job, int_field(body, "max_tokens", 16, 0, INT32_MAX));
    if (job.stream && job.echo && job.logprobs >= 0)
      bad("echo", "'echo' with 'logprobs' is not supported when streaming");
    job.gen.logprobs = job.logprobs;
    job.gen.prompt_logprobs = job.echo && job.logprobs >= 0;
    return job;
  }

  Job chat_job(const json& body) {
    Job job;
    job.chat = true;
    if (!present(body, "messages")) bad("messages", "'messages' is required", "missing_required_parameter");
    const auto& msgs = body["messages"];
    if (!msgs.is_array() || msgs.empty()) bad("messages", "'messages' must be a non-empty array", "invalid_type");
    json norm = json::array();
    for (const auto& m : msgs) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
        bad("messages", "each message must be an object with a string 'role'", "invalid_type");
      json out = m;
      if (!m.contains("content") || m["content"].is_null()) {
        out["content"] = "";
      } else if (m["content"].is_array()) {
        // Content parts: only text is understood by a text model.
        std::string text;
        for (const auto& part : m["content"]) {
          if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
              !part["text"].is_string())
            bad("messages", "only text content parts are supported", "unsupported_content");
          text += part["text"].get<std::string>();
        }
        out["content"] = text;
      } else if (!m["content"].is_string()) {
        bad("messages", "message 'content' must be a string or an array of text parts", "invalid_type");
      }
      norm.push_back(std::move(out));
    }
    parse_sampling(body, job);
    if (bool_field(body, "logprobs", false))
      job.logprobs = static_cast<int32_t>(int_field(body, "top_logprobs", 0, 0, opt.max_logprobs));
    else if (present(body, "top_logprobs"))
      bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    int64_t max = int_field(body, "max_completion_tokens", -1, 0, INT32_MAX);
    if (max < 0) max = int_field(body, "max_tokens", -1, 0, INT32_MAX);
    std::string prompt;
    try {
      prompt = engine::render_chat(tok(), norm, true);
    } catch (const UnsupportedError& e) {
      bad("messages", fmt::format("cannot build a chat prompt for model '{}': {}", served->id, e.what()),
          "chat_template_unsupported");
    } catch (const Error& e) {
      bad("messages", fmt::format("the chat template failed: {}", e.what()), "chat_template_error");
    }
    job.prompts.push_back(tok().encode(prompt, false, true));
    job.prompt_texts.push_back(prompt);
    job.gen.stop_tokens = engine::end_of_turn_tokens(tok());
    fit_context(job, max);
    job.gen.logprobs = job.logprobs;
    return job;
  }

  // ---- responses ----

  std::string token_text(int32_t id) const { return tok().decode(std::span<const int32_t>(&id, 1), false); }

  json legacy_logprobs(const Job& job, size_t i, const engine::GenerateResult& r) const {
    json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
    size_t offset = 0;
    auto add = [&](int32_t id, const engine::TokenLogprob* lp) {
      const std::string s = token_text(id);
      tokens.push_back(valid_utf8(s));
      offsets.push_back(offset);
      offset += s.size();
      if (!lp) {
        lps.push_back(nullptr);
        tops.push_back(nullptr);
        return;
      }
      lps.push_back(lp->logprob);
      json top = json::object();
      for (const auto& [tid, v] : lp->top) top[valid_utf8(token_text(tid))] = v;
      tops.push_back(std::move(top));
    };
    if (job.echo) {
      const auto& p = job.prompts[i];
      for (size_t k = 0; k < p.size(); ++k) add(p[k], k == 0 ? nullptr : &r.prompt_logprobs[k - 1]);
    }
    for (size_t k = 0; k < r.tokens.size(); ++k) add(r.tokens[k], &r.logprobs[k]);
    return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
  }

  json chat_logprob(const engine::TokenLogprob& lp) const {
    const std::string s = token_text(lp.token);
    json top = json::array();
    for (const auto& [tid, v] : lp.top) {
      const std::string t = token_text(tid);
      top.push_back({{"token", valid_utf8(t)}, {"logprob", v}, {"bytes", byte_list(t)}});
    }
    return {{"token", valid_utf8(s)}, {"logprob", lp.logprob}, {"bytes", byte_list(s)}, {"top_logprobs", top}};
  }

  json usage(int64_t prompt, int64_t completion) const {
    return {{"prompt_tokens", prompt}, {"completion_tokens", completion}, {"total_tokens", prompt + completion}};
  }

  // Runs prompt i of the job; records TTFT / ITL.
  engine::GenerateResult run(const Job& job, size_t i, Clock::time_point t0, const engine::TextCallback& on_text,
                             const engine::TokenCallback& on_token) {
    Clock::time_point last{};
    bool first = true;
    auto tick = [&](int32_t id, const engine::TokenLogprob* lp) {
      const auto now = Clock::now();
      if (first) metrics.first_token(std::chrono::duration<double>(now - t0).count());
      else metrics.inter_token(std::chrono::duration<double>(now - last).count());
      first = false;
      last = now;
      if (on_token) on_token(id, lp);
    };
    auto text = [&](std::string_view s) {
      if (stopping) return false;
      return on_text ? on_text(s) : true;
    };
    if (batcher) return batcher->generate(job.prompts[i], job.gen, text, tick);
    return engine::generate(served->model, tok(), job.prompts[i], job.gen, text, tick);
  }

  void respond(const Job& job, const std::string& endpoint, Clock::time_point t0, httplib::Response& res) {
    const std::string id = fmt::format("{}-{}", job.chat ? "chatcmpl" : "cmpl", next_id++);
    const auto created = static_cast<int64_t>(std::time(nullptr));
    json choices = json::array();
    int64_t prompt_tokens = 0, completion_tokens = 0;
    for (size_t i = 0; i < job.prompts.size(); ++i) {
      const auto r = run(job, i, t0, {}, {});
      prompt_tokens += static_cast<int64_t>(job.prompts[i].size());
      completion_tokens += static_cast<int64_t>(r.tokens.size());
      json c = {{"index", i}, {"finish_reason", openai_finish(r.finish)}};
      if (job.chat) {
        c["message"] = {{"role", "assistant"}, {"content", r.text}};
        if (job.logprobs >= 0) {
          json content = json::array();
          for (const auto& lp : r.logprobs) content.push_back(chat_logprob(lp));
          c["logprobs"] = {{"content", content}};
        } else {
          c["logprobs"] = nullptr;
        }
      } else {
        c["text"] = job.echo ? job.prompt_texts[i] + r.text : r.text;
        c["logprobs"] = job.logprobs >= 0 ? legacy_logprobs(job, i, r) : json(nullptr);
      }
      choices.push_back(std::move(c));
    }
    metrics.completion(endpoint, std::chrono::duration<double>(Clock::now() - t0).count(), prompt_tokens,
                       completion_tokens);
    const json out = {{"id", id},
                      {"object", job.chat ? "chat.completion" : "text_completion"},
                      {"created", created},
                      {"model", served->id},
                      {"choices", choices},
                      {"usage", usage(prompt_tokens, completion_tokens)}};
    res.set_content(out.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  }

  // Server-sent events: one `data: {json}` per text piece, then the finish
  // chunk, optional usage, and `data: [DONE]`.
  void stream(const Job& job, const std::string& endpoint, Clock::time_point t0,
              std::shared_ptr<Slot> slot, httplib::Response& res) {
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream", [this, job, endpoint, t0, slot](size_t, httplib::DataSink& sink) {
          const std::string id = fmt::format("{}-{}", job.chat ? "chatcmpl" : "cmpl", next_id++);
          const auto created = static_cast<int64_t>(std::time(nullptr));
          const std::string object = job.chat ? "chat.completion.chunk" : "text_completion";
          bool open = true;
          auto send = [&](const json& j) {
            if (!open) return false;
            const std::string line = "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
            open = sink.write(line.data(), line.size());
            return open;
          };
          auto chunk = [&](size_t index, json delta_or_text, json logprobs, json finish) {
            json c = {{"index", index}, {"logprobs", std::move(logprobs)}, {"finish_reason", std::move(finish)}};
            if (job.chat) c["delta"] = std::move(delta_or_text);
            else c["text"] = std::move(delta_or_text);
            return json{{"id", id}, {"object", object}, {"created", created}, {"model", served->id},
                        {"choices", json::array({std::move(c)})}};
          };
          int64_t prompt_tokens = 0, completion_tokens = 0;
          try {
            for (size_t i = 0; i < job.prompts.size() && open; ++i) {
              if (job.chat) send(chunk(i, {{"role", "assistant"}, {"content", ""}}, nullptr, nullptr));
              std::vector<engine::TokenLogprob> pending;  // logprobs of tokens whose text is not sent yet
              auto on_token = [&](int32_t, const engine::TokenLogprob* lp) {
                if (lp) pending.push_back(*lp);
              };
              auto logprobs_json = [&]() -> json {
                if (job.logprobs < 0) return nullptr;
                if (job.chat) {
                  json content = json::array();
                  for (const auto& lp : pending) content.push_back(chat_logprob(lp));
                  pending.clear();
                  return {{"content", content}};
                }
                json tokens = json::array(), lps = json::array(), tops = json::array();
                for (const auto& lp : pending) {
                  tokens.push_back(valid_utf8(token_text(lp.token)));
                  lps.push_back(lp.logprob);
                  json top = json::object();
                  for (const auto& [tid, v] : lp.top) top[valid_utf8(token_text(tid))] = v;
                  tops.push_back(std::move(top));
                }
                pending.clear();
                return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}};
              };
              auto on_text = [&](std::string_view piece) {
                const json body = job.chat ? json{{"content", std::string(piece)}} : json(std::string(piece));
                return send(chunk(i, body, logprobs_json(), nullptr));
              };
              if (job.echo && !job.chat) send(chunk(i, job.prompt_texts[i], nullptr, nullptr));
              const auto r = run(job, i, t0, on_text, on_token);
              prompt_tokens += static_cast<int64_t>(job.prompts[i].size());
              completion_tokens += static_cast<int64_t>(r.tokens.size());
              send(chunk(i, job.chat ? json::object() : json(""), pending.empty() ? json(nullptr) : logprobs_json(),
                         std::string(openai_finish(r.finish))));
            }
            if (job.include_usage)
              send({{"id", id}, {"object", object}, {"created", created}, {"model", served->id},
                    {"choices", json::array()}, {"usage", usage(prompt_tokens, completion_tokens)}});
          } catch (const std::exception& e) {
            send(error_body(ApiError{500, fmt::format("generation failed: {}", e.what()), "", "", "server_error"}));
          }
          metrics.completion(endpoint, std::chrono::duration<double>(Clock::now() - t0).count(), prompt_tokens,
                             completion_tokens);
          if (open) {
            static constexpr std::string_view kDone = "data: [DONE]\n\n";
            sink.write(kDone.data(), kDone.size());
          }
          sink.done();
          return true;
        });
  }

  void generation_endpoint(const httplib::Request& req, httplib::Response& res, bool chat) {
    const auto t0 = Clock::now();
    const std::string endpoint = req.path;
    try {
      const json body = parse_body(req);
      const Job job = chat ? chat_job(body) : completion_job(body);
      if (!gate.acquire())
        throw ApiError{503, "the server is overloaded (too many requests waiting); retry later", "", "server_busy",
                       "server_error"};
      auto slot = std::make_shared<Slot>(gate);
      if (job.stream) stream(job, endpoint, t0, std::move(slot), res);
      else respond(job, endpoint, t0, res);
    } catch (const ApiError& e) {
      send_error(res, e);
    } catch (const Error& e) {
      send_error(res, ApiError{400, e.what(), "", "invalid_request"});
    }
    // Counted before the response is sent, so a client sees its own request.
    metrics.request(endpoint, res.status < 0 ? 200 : res.status);  // httplib sets 200 after the handler
  }

  static std::string endpoint_label(const std::string& path) {
    static const char* const kKnown[] = {"/v1/models", "/v1/completions", "/v1/chat/completions", "/health",
                                         "/metrics"};
    for (const char* k : kKnown)
      if (path == k) return path;
    return "other";
  }

  void routes() {
    http.set_payload_max_length(opt.max_body_bytes);
    http.set_socket_options([this](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      listen_fd = sock;
    });
    http.set_keep_alive_timeout(2);
    // Streamed tokens are small writes: without TCP_NODELAY, Nagle holds each
    // one until the client's delayed ACK (~40 ms), which shows as ITL spikes.
    http.set_tcp_nodelay(true);
    const size_t threads = static_cast<size_t>(std::max(1, opt.max_running) + std::max(0, opt.max_waiting) + 4);
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };

    http.Get("/health", [this](const httplib::Request& req, httplib::Response& res) {
      metrics.request(req.path, 200);
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    http.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
      metrics.request(req.path, 200);
      // An extension field: clients (kaival eval's manifest) can record which
      // chat template renders the prompts; null when the model ships none.
      const std::string tmpl = tok().chat_template_sha256();
      const json out = {{"object", "list"},
                        {"data", json::array({{{"id", served->id},
                                               {"object", "model"},
                                               {"created", 0},
                                               {"owned_by", "kaival"},
                                               {"max_model_len", ctx},
                                               {"chat_template_sha256", tmpl.empty() ? json() : json(tmpl)}}})}};
      res.set_content(out.dump(), "application/json");
    });
    http.Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
      metrics.request(req.path, 200);
      res.set_content(metrics.render(gate.load(), batcher ? batcher->stats() : engine::BatchStats{}), "text/plain; version=0.0.4");
    });
    http.Post("/v1/completions",
              [this](const httplib::Request& req, httplib::Response& res) { generation_endpoint(req, res, false); });
    http.Post("/v1/chat/completions",
              [this](const httplib::Request& req, httplib::Response& res) { generation_endpoint(req, res, true); });

    http.set_exception_handler([this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
      metrics.request(endpoint_label(req.path), 500);
      std::string what = "unknown error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(res, ApiError{500, "internal error: " + what, "", "", "server_error"});
    });
    http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                        httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      metrics.request(endpoint_label(req.path), res.status);
      ApiError e{res.status, "", "", "", "invalid_request_error"};
      switch (res.status) {
        case 404: e.message = fmt::format("no such endpoint: {} {}", req.method, req.path); e.code = "not_found"; break;
        case 405: e.message = fmt::format("method {} is not allowed on {}", req.method, req.path); break;
        case 413: e.message = "the request body is too large"; e.code = "payload_too_large"; break;
        default: e.message = fmt::format("HTTP error {}", res.status); break;
      }
      if (res.status >= 500) e.type = "server_error";
      send_error(res, e);
      return httplib::Server::HandlerResponse::Handled;
    }));
  }
};

OpenAIServer::OpenAIServer(std::shared_ptr<const ServedModel> model, ServerOptions options)
    : impl_(std::make_unique<Impl>(std::move(model), std::move(options))) {}

OpenAIServer::~OpenAIServer() { stop(); }

int OpenAIServer::start() {
  auto& s = *impl_;
  if (s.started) fail("server", "already started");
  const int port = s.opt.port == 0 ? s.http.bind_to_any_port(s.opt.host)
                                   : (s.http.bind_to_port(s.opt.host, s.opt.port) ? s.opt.port : -1);
  if (port <= 0) fail<IoError>(fmt::format("{}:{}", s.opt.host, s.opt.port), "cannot bind the server address");
  // httplib listens with a backlog of 5: a burst of clients (32 streams)
  // would see dropped SYNs and 1 s retries. Listening again widens it.
  if (s.listen_fd >= 0) ::listen(s.listen_fd, 1024);
  s.bound_port = port;
  s.started = true;
  s.listener = std::thread([&s] { s.http.listen_after_bind(); });
  // stop() before the loop runs would be lost (httplib only stops a running
  // server), so return once it runs.
  while (!s.http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return port;
}

void OpenAIServer::stop() {
  auto& s = *impl_;
  if (s.started) {
    s.stopping = true;
    s.gate.close();
    s.http.stop();
    if (s.listener.joinable()) s.listener.join();
    s.started = false;
  }
  {
    std::lock_guard lock(s.life_mu);
    s.stopped = true;
  }
  s.life_cv.notify_all();
}

void OpenAIServer::wait() {
  auto& s = *impl_;
  std::unique_lock lock(s.life_mu);
  s.life_cv.wait(lock, [&] { return s.stopped; });
}

int OpenAIServer::port() const { return impl_->bound_port; }
int64_t OpenAIServer::context() const { return impl_->ctx; }

}  // namespace kaival::server
