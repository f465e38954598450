#include "eval/runner.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <ctime>
#include <future>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include "core/error.h"
#include "core/hash.h"
#include "core/jinja.h"
#include "core/text.h"
#include "core/version.h"
#include "eval/judge.h"
#include "eval/queue.h"
#include "eval/response_cache.h"
#include "eval/score.h"
#include "store/postgres.h"
#include "store/sqlite.h"

namespace kaival::eval {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// ---------------------------------------------------------------- requests
struct Request {
  std::string endpoint;  // "completions" | "chat/completions"
  json body;
  std::string hash;
  json response;
};

struct Item {
  std::string doc_id;
  std::string prompt;                 // full prompt (few-shot included)
  std::vector<std::string> choices;   // multiple choice
  int gold = -1;
  std::string target;
  std::vector<size_t> reqs;           // into the window's request list
  OJson doc;                          // for ifeval kwargs
};

size_t cp_len(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

jinja::Options task_template_options() {
  jinja::Options o;  // lm-evaluation-harness renders with plain Jinja2 settings
  o.trim_blocks = false;
  o.lstrip_blocks = false;
  return o;
}

class CardTemplates {
 public:
  explicit CardTemplates(const TaskCard& c) : card_(c) {
    auto o = task_template_options();
    prompt_ = jinja::Template::parse(c.prompt, c.file + ":prompt", o);
    if (!c.target.empty()) target_ = jinja::Template::parse(c.target, c.file + ":target", o);
    if (!c.answer_index.empty()) answer_ = jinja::Template::parse(c.answer_index, c.file + ":answer_index", o);
    if (!c.doc_id.empty()) doc_id_ = jinja::Template::parse(c.doc_id, c.file + ":doc_id", o);
    if (!c.choices_template.empty()) choices_ = jinja::Template::parse(c.choices_template, c.file + ":choices", o);
    for (const auto& t : c.choice_templates) choice_list_.push_back(jinja::Template::parse(t, c.file + ":choices", o));
    if (!c.fewshot.answer.empty()) fewshot_answer_ = jinja::Template::parse(c.fewshot.answer, c.file + ":fewshot.answer", o);
  }

  std::vector<std::string> choices(const OJson& doc) const {
    std::vector<std::string> out;
    if (choices_) {
      std::string s = choices_->render(doc);
      auto j = json::parse(s, nullptr, false);
      if (j.is_discarded() || !j.is_array())
        fail(card_.file, "'choices' must render a JSON list (use tojson), got: {}", s.substr(0, 80));
      for (const auto& x : j) out.push_back(x.is_string() ? x.get<std::string>() : x.dump());
    } else {
      for (const auto& t : choice_list_) out.push_back(t.render(doc));
    }
    return out;
  }
  int gold(const OJson& doc, size_t n, size_t row) const {
    std::string s = answer_->render(doc);
    std::string t(s);
    t.erase(0, t.find_first_not_of(" \t\n"));
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
    char* end = nullptr;
    long v = std::strtol(t.c_str(), &end, 10);
    if (t.empty() || *end != '\0' || v < 0 || static_cast<size_t>(v) >= n)
      fail(card_.file, "row {}: answer_index rendered '{}', not an index below {}", row + 1, s, n);
    return static_cast<int>(v);
  }
  const CardTemplates& self() const { return *this; }

  const TaskCard& card_;
  jinja::Template prompt_;
  std::optional<jinja::Template> target_, answer_, doc_id_, choices_, fewshot_answer_;
  std::vector<jinja::Template> choice_list_;
};

// The doc's fields plus what templates may use: choices, labels.
OJson template_context(const OJson& doc, const std::vector<std::string>& choices, const std::vector<std::string>& labels) {
  OJson ctx = doc;  // the doc's own fields win; the rendered choices are `choice_list`
  ctx["doc"] = doc;  // for field names that are not identifiers: doc['Correct Answer']
  ctx["choice_list"] = choices;
  ctx["labels"] = labels;
  return ctx;
}

std::vector<std::string> labels_for(const TaskCard& c, size_t n) {
  if (!c.labels.empty()) {
    if (c.labels.size() < n) fail(c.file, "{} labels for {} choices", c.labels.size(), n);
    return std::vector<std::string>(c.labels.begin(), c.labels.begin() + static_cast<long>(n));
  }
  return default_labels(n);
}

json generation_body(const TaskCard& c, const std::string& model, const std::string& prompt) {
  json body;
  body["model"] = model;
  if (c.chat) body["messages"] = json::array({{{"role", "user"}, {"content", prompt}}});
  else body["prompt"] = prompt;
  body["max_tokens"] = 256;
  body["temperature"] = 0;
  for (auto it = c.generation.begin(); it != c.generation.end(); ++it) body[it.key()] = json::parse(it.value().dump());
  return body;
}

// A loglikelihood request: the prompt echoed with its log-probabilities, one token generated.
json loglikelihood_body(const std::string& model, const std::string& prompt) {
  return {{"model", model}, {"prompt", prompt}, {"max_tokens", 1}, {"temperature", 0}, {"echo", true}, {"logprobs", 1}};
}

// What every request of the card sends besides the model and the prompt (the sampling
// parameters), for the results' config: a rerun can be checked against it.
json request_sampling(const TaskCard& c) {
  json b = c.request == RequestType::Loglikelihood ? loglikelihood_body("", "") : generation_body(c, "", "");
  for (const char* k : {"model", "prompt", "messages"}) b.erase(k);
  return b;
}

// Rows and requests alive at once, over the window being scored and the one read ahead on the
// prefetch thread; the maxima are the streaming bound that RunStats reports.
class HeldCounter {
 public:
  void add(size_t rows, size_t reqs) {
    std::lock_guard<std::mutex> lk(mu_);
    rows_ += rows;
    reqs_ += reqs;
    max_rows_ = std::max(max_rows_, rows_);
    max_reqs_ = std::max(max_reqs_, reqs_);
  }
  void sub(size_t rows, size_t reqs) {
    std::lock_guard<std::mutex> lk(mu_);
    rows_ -= rows;
    reqs_ -= reqs;
  }
  size_t max_rows() {
    std::lock_guard<std::mutex> lk(mu_);
    return max_rows_;
  }
  size_t max_reqs() {
    std::lock_guard<std::mutex> lk(mu_);
    return max_reqs_;
  }

 private:
  std::mutex mu_;
  size_t rows_ = 0, reqs_ = 0, max_rows_ = 0, max_reqs_ = 0;
};

// One window of a task: its items and their requests. Counted in a HeldCounter while alive;
// never moved (held by unique_ptr), so the counts are given back exactly once.
struct Window {
  explicit Window(HeldCounter& h) : held(h) {}
  ~Window() { held.sub(rows_counted, reqs_counted); }
  Window(const Window&) = delete;
  Window& operator=(const Window&) = delete;
  void count(size_t rows, size_t reqs_added) {
    held.add(rows, reqs_added);
    rows_counted += rows;
    reqs_counted += reqs_added;
  }
  HeldCounter& held;
  std::vector<Item> items;
  std::vector<Request> reqs;
  size_t rows_counted = 0, reqs_counted = 0;
};

// One task across the windows of a run: its reader and templates, and what the aggregates need
// (per-item scores, small).
struct TaskState {
  explicit TaskState(TaskCard c) : card(std::move(c)), tpl(card) {}
  TaskCard card;
  CardTemplates tpl;  // refers to `card`: a TaskState never moves (held by unique_ptr)
  std::optional<SplitReader> reader;
  std::map<std::string, std::string> dataset_sha256;
  std::map<std::string, std::string> dataset_path;  // the file each hash is of
  std::string description;  // the card's description and separator, before every prompt
  // Few-shot examples in the seed's order: the first k that are not the item itself go before
  // its prompt (k + 1 are kept, so an item drawn as an example of itself is replaced).
  struct Shot {
    OJson fields;
    std::string text;  // rendered prompt + answer + separator
  };
  std::vector<Shot> shots;
  std::string prefix_for(const OJson& doc) const {
    std::string p = description;
    size_t used = 0;
    for (const auto& s : shots) {
      if (used == static_cast<size_t>(card.fewshot.k)) break;
      if (s.fields == doc) continue;
      p += s.text;
      ++used;
    }
    return p;
  }
  std::map<std::string, std::vector<double>> scores;
  std::vector<std::string> metric_order;
  size_t n = 0;  // items scored
  std::ofstream samples;
  std::optional<ConversationRun> conversation;  // later phases' totals (items not kept), over windows
};

// ---------------------------------------------------------------- progress
class Progress {
 public:
  // total 0: unknown (a streamed run learns it at the end); the bar then shows counts and rate only.
  Progress(size_t total, bool enabled) : total_(total), enabled_(enabled), start_(Clock::now()) {
    if (enabled_) thread_ = std::thread([this] { loop(); });
  }
  ~Progress() { finish(); }
  void add(bool cached) {
    done_.fetch_add(1);
    if (cached) cached_.fetch_add(1);
  }
  void finish() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    draw(true);
  }

 private:
  using Clock = std::chrono::steady_clock;
  void loop() {
    std::unique_lock<std::mutex> lk(mu_);
    bool tty = isatty(STDERR_FILENO);
    auto period = tty ? std::chrono::milliseconds(200) : std::chrono::milliseconds(10000);
    while (!cv_.wait_for(lk, period, [&] { return stop_; })) draw(false);
  }
  void draw(bool final) {
    size_t d = done_.load(), c = cached_.load();
    double el = std::chrono::duration<double>(Clock::now() - start_).count();
    double rate = el > 0 ? double(d - c) / el : 0;
    double eta = rate > 0 ? double(total_ - d) / rate : 0;
    int width = 30;
    int fill = total_ ? static_cast<int>(width * d / total_) : width;
    std::string bar(static_cast<size_t>(fill), '#');
    bar.resize(static_cast<size_t>(width), '.');
    bool tty = isatty(STDERR_FILENO);
    if (total_ == 0) {
      std::fprintf(stderr, "%s%zu requests  %.1f req/s  (cached %zu)%s", tty ? "\r" : "", d, rate, c,
                   (final || !tty) ? "\n" : "");
      std::fflush(stderr);
      return;
    }
    std::fprintf(stderr, "%s[%s] %zu/%zu  %.1f req/s  ETA %.0fs  (cached %zu)%s", tty ? "\r" : "", bar.c_str(), d, total_,
                 rate, eta, c, (final || !tty) ? "\n" : "");
    std::fflush(stderr);
  }
  size_t total_;
  bool enabled_;
  Clock::time_point start_;
  std::atomic<size_t> done_{0}, cached_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// The run's worker threads, kept across windows: each keeps its libcurl handle (a kept-alive
// connection, thread-local in OpenAIClient) and its cache connection, so a window costs a wake-up,
// not new threads and connections. run() hands out one window's requests (cache first) and waits.
class WorkerPool {
 public:
  WorkerPool(OpenAIClient& client, std::string cache_path, int threads, Progress& bar)
      : client_(client), cache_path_(std::move(cache_path)), bar_(bar) {
    for (int t = 0; t < std::max(1, threads); ++t) threads_.emplace_back([this] { loop(); });
  }
  ~WorkerPool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void run(std::vector<Request>& reqs) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      reqs_ = &reqs;
      next_ = 0;
      failed_ = false;
      error_ = nullptr;
      busy_ = threads_.size();
      ++generation_;
    }
    work_cv_.notify_all();
    std::exception_ptr error;
    {
      std::unique_lock<std::mutex> lk(mu_);
      done_cv_.wait(lk, [&] { return busy_ == 0; });
      reqs_ = nullptr;
      error = std::exchange(error_, nullptr);
    }
    if (error) std::rethrow_exception(error);
  }

 private:
  void loop() {
    std::optional<ResponseCache> cache;
    uint64_t seen = 0;
    for (;;) {
      std::vector<Request>* reqs = nullptr;
      {
        std::unique_lock<std::mutex> lk(mu_);
        work_cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        reqs = reqs_;
      }
      try {
        if (!cache) cache.emplace(cache_path_);
        while (!failed_.load()) {
          size_t i = next_.fetch_add(1);
          if (i >= reqs->size()) break;
          Request& r = (*reqs)[i];
          if (auto hit = cache->get(r.hash)) {
            r.response = std::move(*hit);
            bar_.add(true);
            continue;
          }
          r.response = client_.post(r.endpoint, r.body);
          cache->put(r.hash, r.endpoint, r.body, r.response);
          bar_.add(false);
        }
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
        failed_ = true;
      }
      std::lock_guard<std::mutex> lk(mu_);
      if (--busy_ == 0) done_cv_.notify_all();
    }
  }

  OpenAIClient& client_;
  const std::string cache_path_;
  Progress& bar_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::vector<Request>* reqs_ = nullptr;
  uint64_t generation_ = 0;
  size_t busy_ = 0;
  bool stop_ = false;
  std::atomic<size_t> next_{0};
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

std::string response_text(const json& r) {
  if (!r.contains("choices") || !r["choices"].is_array() || r["choices"].empty()) return "";
  const json& c = r["choices"][0];
  if (c.contains("message") && c["message"].is_object()) {
    const json& m = c["message"];
    if (m.contains("content") && m["content"].is_string()) return m["content"].get<std::string>();
    return "";
  }
  if (c.contains("text") && c["text"].is_string()) return c["text"].get<std::string>();
  return "";
}

size_t prompt_tokens(const json& resp, const std::string& where) {
  if (resp.contains("usage") && resp["usage"].is_object() && resp["usage"].contains("prompt_tokens") &&
      resp["usage"]["prompt_tokens"].is_number_integer())
    return resp["usage"]["prompt_tokens"].get<size_t>();
  fail(where, "the answer has no usage.prompt_tokens; cannot split context from continuation");
}

// Sum of the continuation tokens' log-probabilities: the tokens of the full prompt after as many
// tokens as the context alone has. Independent of text_offset units and of how a server renders
// partial UTF-8 tokens; assumes the context's tokens are a prefix of the full prompt's (true when
// the continuation starts with a space, as the cards' choice_prefix does).
double continuation_by_count(const json& full_resp, const json& ctx_resp, const std::string& where) {
  auto lp_of = [&](const json& r) -> const json& {
    static const json kNull;
    if (!r.contains("choices") || !r["choices"].is_array() || r["choices"].empty()) return kNull;
    const json& c = r["choices"][0];
    return c.contains("logprobs") ? c["logprobs"] : kNull;
  };
  const json& lp = lp_of(full_resp);
  if (!lp.is_object() || !lp.contains("token_logprobs") || !lp["token_logprobs"].is_array())
    throw UnsupportedError(where, "the server returned no prompt log-probabilities for echo=true; loglikelihood "
                                  "tasks cannot be scored against it");
  const json& lps = lp["token_logprobs"];
  size_t n_ctx = prompt_tokens(ctx_resp, where), n_full = prompt_tokens(full_resp, where);
  if (n_full > lps.size() || n_ctx >= n_full)
    fail(where, "token counts do not fit: context {} tokens, full prompt {}, {} log-probabilities", n_ctx, n_full,
         lps.size());
  double sum = 0;
  for (size_t i = n_ctx; i < n_full; ++i) {
    if (!lps[i].is_number()) throw UnsupportedError(where, "a continuation token has no log-probability (null)");
    sum += lps[i].get<double>();
  }
  return sum;
}

}  // namespace

double continuation_logprob(const json& lp, const std::string& context, const std::string& full,
                            const std::string& where, const std::string* echoed_text) {
  if (!lp.is_object() || !lp.contains("token_logprobs") || !lp["token_logprobs"].is_array() ||
      !lp.contains("tokens") || !lp["tokens"].is_array() || lp["tokens"].size() != lp["token_logprobs"].size())
    throw UnsupportedError(where, "the server returned no prompt log-probabilities for echo=true; loglikelihood "
                                  "tasks cannot be scored against it");
  const json& toks = lp["tokens"];
  const json& lps = lp["token_logprobs"];
  const size_t n = toks.size();
  std::vector<size_t> off(n);
  bool have_offsets = lp.contains("text_offset") && lp["text_offset"].is_array() && lp["text_offset"].size() == n;
  bool bytes = true;
  if (have_offsets) {
    for (size_t i = 0; i < n; ++i) off[i] = lp["text_offset"][i].is_number_unsigned() || lp["text_offset"][i].is_number_integer()
                                                ? lp["text_offset"][i].get<size_t>() : 0;
    // Character offsets (vLLM) differ from byte offsets as soon as a token holds non-ASCII text.
    for (size_t i = 0; i + 1 < n; ++i) {
      std::string t = toks[i].is_string() ? toks[i].get<std::string>() : "";
      if (off[i + 1] - off[i] != t.size()) {
        bytes = false;
        break;
      }
    }
  } else {
    size_t o = 0;
    for (size_t i = 0; i < n; ++i) {
      off[i] = o;
      o += toks[i].is_string() ? toks[i].get<std::string>().size() : 0;
    }
  }
  size_t ctx_end = bytes ? context.size() : cp_len(context);
  size_t full_end = bytes ? full.size() : cp_len(full);
  // Offsets may count text the echo does not show (a "<|bos|>" token): shift by the difference
  // between the tokens' span and the echoed text.
  if (echoed_text && n > 0 && toks[n - 1].is_string()) {
    size_t span = off[n - 1] + (bytes ? toks[n - 1].get<std::string>().size() : cp_len(toks[n - 1].get<std::string>()));
    size_t shown = bytes ? echoed_text->size() : cp_len(*echoed_text);
    if (span > shown) {
      ctx_end += span - shown;
      full_end += span - shown;
    }
  } else {
    // Without the echoed text: offsets count from where the prompt starts in the tokens' text.
    size_t base = off.empty() ? 0 : off[0];
    std::string joined;
    for (const auto& t : toks) joined += t.is_string() ? t.get<std::string>() : "";
    if (size_t pos = joined.find(full); pos != std::string::npos) base += bytes ? pos : cp_len(joined.substr(0, pos));
    ctx_end += base;
    full_end += base;
  }
  double sum = 0;
  size_t counted = 0;
  for (size_t i = 0; i < n; ++i) {
    size_t tlen = toks[i].is_string() ? (bytes ? toks[i].get<std::string>().size() : cp_len(toks[i].get<std::string>())) : 0;
    // Tokens that end inside the continuation; a token straddling the boundary counts as continuation.
    if (off[i] + tlen <= ctx_end || off[i] >= full_end) continue;
    if (!lps[i].is_number())
      throw UnsupportedError(where, "a continuation token has no log-probability (null)");
    sum += lps[i].get<double>();
    ++counted;
  }
  if (counted == 0) fail(where, "no continuation tokens found in the echoed prompt");
  return sum;
}

nlohmann::ordered_json run_eval(const std::vector<std::string>& card_paths, const RunOptions& opt) {
  if (card_paths.empty()) throw FormatError("eval", "no task cards given");
  OpenAIClient client(opt.model_url, opt.client);
  // Which model the server serves.
  json models = client.get("models");
  std::string served = opt.served_model;
  std::string revision;
  json chat_template_sha256;  // null unless the server reports it (kaival serve-model does)
  if (models.contains("data") && models["data"].is_array() && !models["data"].empty()) {
    const json* m0 = &models["data"][0];
    for (const json& m : models["data"])
      if (!served.empty() && m.contains("id") && m["id"] == served) m0 = &m;
    if (served.empty() && m0->contains("id") && (*m0)["id"].is_string()) served = (*m0)["id"].get<std::string>();
    if (m0->contains("root") && (*m0)["root"].is_string()) revision = (*m0)["root"].get<std::string>();
    if (m0->contains("revision") && (*m0)["revision"].is_string()) revision = (*m0)["revision"].get<std::string>();
    if (m0->contains("chat_template_sha256") && (*m0)["chat_template_sha256"].is_string())
      chat_template_sha256 = (*m0)["chat_template_sha256"];
  }
  if (served.empty()) fail<IoError>(client.base_url() + "/models", "the server names no model; pass the model name");

  std::string cache_path = opt.cache_path;
  if (cache_path.empty() && !opt.out_dir.empty()) {
    fs::create_directories(opt.out_dir);
    cache_path = (fs::path(opt.out_dir) / "cache.sqlite").string();
  }
  { ResponseCache migrate_once(cache_path); }  // create the schema on one thread: worker threads' migrations would race

  // Every card, its split readers and few-shot prefix first: a bad card, a missing file or a
  // hash mismatch fails before any request. The evaluation rows are then read in windows.
  std::vector<std::unique_ptr<TaskState>> tasks;
  bool any_loglik = false;
  std::vector<TaskCard> cards;  // an expanded card (KMMLU's subjects) gives several
  for (const auto& spec : card_paths)
    for (auto& c : load_cards(spec)) cards.push_back(std::move(c));
  for (auto& card : cards) {
    const std::string path = card.file;
    auto t = std::make_unique<TaskState>(std::move(card));
    const TaskCard& c = t->card;
    for (const auto& o : tasks)
      if (o->card.name == c.name) fail(path, "task '{}' given twice", c.name);
    const CardTemplates& tpl = t->tpl;
    LoadOptions lo = opt.data;
    lo.limit = opt.limit;
    t->reader.emplace(c, c.eval_split, lo);
    t->dataset_sha256[c.eval_split] = t->reader->file_sha256();
    t->dataset_path[c.eval_split] = t->reader->file_path();
    // Few-shot examples: a fixed-seed sample, the same for every item but the item itself (the
    // few-shot split is small: held whole).
    if (c.fewshot.k > 0) {
      LoadOptions fo = opt.data;
      fo.limit = 100000;
      std::string fh, fp;
      auto pool = load_split(c, c.fewshot.split, fo, &fh, &fp);
      t->dataset_sha256[c.fewshot.split] = fh;
      t->dataset_path[c.fewshot.split] = fp;
      std::vector<size_t> idx(pool.size());
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
      std::mt19937_64 rng(c.fewshot.seed);
      std::shuffle(idx.begin(), idx.end(), rng);
      if (c.fewshot.split == c.eval_split) fail(path, "few-shot examples must come from another split than eval_split");
      for (size_t s = 0; s < idx.size() && s <= static_cast<size_t>(c.fewshot.k); ++s) {
        const OJson& ex = pool[idx[s]].fields;
        std::vector<std::string> ch;
        std::string answer;
        if (c.request != RequestType::GenerateUntil) ch = tpl.choices(template_context(ex, {}, {}));
        auto labels = c.request == RequestType::GenerativeMC ? labels_for(c, ch.size()) : std::vector<std::string>{};
        OJson ctx = template_context(ex, ch, labels);
        if (tpl.fewshot_answer_) answer = tpl.fewshot_answer_->render(ctx);
        else if (c.request == RequestType::Loglikelihood) answer = c.choice_prefix + ch[static_cast<size_t>(tpl.gold(ctx, ch.size(), idx[s]))];
        else if (c.request == RequestType::GenerativeMC) answer = " " + labels[static_cast<size_t>(tpl.gold(ctx, ch.size(), idx[s]))];
        else answer = " " + (tpl.target_ ? tpl.target_->render(ctx) : std::string());
        t->shots.push_back({ex, tpl.prompt_.render(ctx) + answer + c.fewshot.separator});
      }
    }
    t->description = c.description.empty() ? "" : c.description + c.fewshot.separator;
    any_loglik = any_loglik || (c.request == RequestType::Loglikelihood && opt.limit != 0);
    tasks.push_back(std::move(t));
  }

  // Reads up to `max_docs` rows of a task into the window's items and requests. Runs on the
  // prefetch thread while the previous window is scored: it touches only the task's reader and
  // (read-only) its card, templates and few-shot examples.
  auto fill = [&](TaskState& t, size_t max_docs, Window& w) {
    std::vector<Request>& reqs = w.reqs;
    const TaskCard& c = t.card;
    const CardTemplates& tpl = t.tpl;
    const std::string& path = c.file;
    size_t added = 0;
    while (added < max_docs) {
      auto d = t.reader->next();
      if (!d) break;
      ++added;
      const size_t reqs_before = reqs.size();
      Item it;
      it.doc = std::move(d->fields);
      std::vector<std::string> ch;
      if (c.request != RequestType::GenerateUntil) ch = tpl.choices(template_context(it.doc, {}, {}));
      auto labels = c.request == RequestType::GenerativeMC ? labels_for(c, ch.size()) : std::vector<std::string>{};
      OJson ctx = template_context(it.doc, ch, labels);
      const std::string prefix = t.prefix_for(it.doc);
      it.doc_id = tpl.doc_id_ ? tpl.doc_id_->render(ctx) : std::to_string(d->index);
      if (c.request != RequestType::GenerateUntil) {
        if (ch.size() < 2) fail(path, "row {}: fewer than two choices", d->index + 1);
        it.choices = ch;
        it.gold = tpl.gold(ctx, ch.size(), d->index);
      } else {
        it.target = tpl.target_ ? tpl.target_->render(ctx) : std::string();
      }
      auto add_request = [&](std::string endpoint, json body) {
        Request r;
        r.endpoint = std::move(endpoint);
        r.body = std::move(body);
        r.hash = response_cache_key(r.endpoint, r.body);
        it.reqs.push_back(reqs.size());
        reqs.push_back(std::move(r));
      };
      if (c.request == RequestType::Loglikelihood) {
        it.prompt = prefix + tpl.prompt_.render(ctx);
        for (const auto& choice : ch)
          add_request("completions", loglikelihood_body(served, it.prompt + c.choice_prefix + choice));
        // The context alone: its prompt token count marks where every continuation starts.
        add_request("completions", loglikelihood_body(served, it.prompt));
      } else if (c.request == RequestType::GenerativeMC) {
        size_t rotations = c.circular ? ch.size() : 1;
        for (size_t rot = 0; rot < rotations; ++rot) {
          std::vector<std::string> rc(ch.size());
          for (size_t j = 0; j < ch.size(); ++j) rc[j] = ch[(j + rot) % ch.size()];
          std::string p = prefix + tpl.prompt_.render(template_context(it.doc, rc, labels));
          if (rot == 0) it.prompt = p;
          add_request(c.chat ? "chat/completions" : "completions", generation_body(c, served, p));
        }
      } else {
        it.prompt = prefix + tpl.prompt_.render(ctx);
        add_request(c.chat ? "chat/completions" : "completions", generation_body(c, served, it.prompt));
      }
      w.items.push_back(std::move(it));
      w.count(1, reqs.size() - reqs_before);
    }
    return added;
  };

  // Capability probe: refuse, loudly, a server that ignores echo/logprobs.
  if (any_loglik) {
    std::vector<Request> probe(1);
    probe[0].endpoint = "completions";
    probe[0].body = loglikelihood_body(served, "The capital of France is Paris");
    probe[0].hash = response_cache_key(probe[0].endpoint, probe[0].body);
    Progress quiet(0, false);
    WorkerPool(client, cache_path, 1, quiet).run(probe);
    const json& r = probe[0].response;
    const json* lp = nullptr;
    if (r.contains("choices") && r["choices"].is_array() && !r["choices"].empty() && r["choices"][0].contains("logprobs"))
      lp = &r["choices"][0]["logprobs"];
    bool ok = lp && lp->is_object() && lp->contains("token_logprobs") && (*lp)["token_logprobs"].is_array() &&
              (*lp)["token_logprobs"].size() >= 2;
    if (ok) {
      size_t numbers = 0;
      for (const auto& x : (*lp)["token_logprobs"]) numbers += x.is_number();
      ok = numbers >= 1;
    }
    if (!ok)
      throw UnsupportedError(client.base_url() + "/completions",
                             "capability probe failed: the server returned no prompt log-probabilities for "
                             "echo=true + logprobs; refusing to run loglikelihood tasks (they would score chance)");
  }

  // ---------------------------------------------------------------- scoring
  OJson results = OJson::object(), groups = OJson::object(), versions = OJson::object(), configs = OJson::object();
  struct GroupAcc {
    std::string aggregation;
    std::vector<std::string> tasks;
    std::map<std::string, std::vector<double>> pooled;         // micro
    std::map<std::string, std::vector<double>> task_means;     // macro
  };
  std::map<std::string, GroupAcc> gacc;
  std::vector<std::string> group_order;
  std::vector<OJson> manifest_inputs;
  if (!opt.out_dir.empty()) fs::create_directories(opt.out_dir);

  // Scores a window's items (answers in its requests; later turns and verdicts in `conv`) and
  // appends their sample lines.
  auto score_items = [&](TaskState& t, const Window& w, const ConversationRun* conv) {
    const std::vector<Request>& reqs = w.reqs;
    const TaskCard& c = t.card;
    auto& scores = t.scores;
    auto& metric_order = t.metric_order;
    auto add_metric = [&](const std::string& m, double v, OJson& per) {
      if (!scores.count(m)) metric_order.push_back(m);
      scores[m].push_back(v);
      per[m] = v;
    };
    auto labels_all = [&](size_t n) { return labels_for(c, n); };
    for (const auto& it : w.items) {
      ++t.n;
      OJson per = OJson::object();
      OJson rec = OJson::object();
      rec["task"] = c.name;
      rec["doc_id"] = it.doc_id;
      std::string shown_response;
      if (c.request == RequestType::Loglikelihood) {
        std::vector<double> ll;
        for (size_t k = 0; k + 1 < it.reqs.size(); ++k) {  // the last request is the context alone
          const Request& r = reqs[it.reqs[k]];
          const json& resp = r.response;
          if (!resp.contains("choices") || !resp["choices"].is_array() || resp["choices"].empty())
            fail(client.base_url() + "/completions", "answer without choices for {} item {}", c.name, it.doc_id);
          ll.push_back(continuation_by_count(resp, reqs[it.reqs.back()].response, client.base_url() + "/completions"));
        }
        size_t best = static_cast<size_t>(std::max_element(ll.begin(), ll.end()) - ll.begin());
        size_t best_norm = 0;
        for (size_t k = 1; k < ll.size(); ++k)
          if (ll[k] / double(std::max<size_t>(1, cp_len(it.choices[k]))) >
              ll[best_norm] / double(std::max<size_t>(1, cp_len(it.choices[best_norm]))))
            best_norm = k;
        for (const auto& m : c.metrics) {
          if (m == "acc") add_metric("acc", best == static_cast<size_t>(it.gold) ? 1.0 : 0.0, per);
          else if (m == "acc_norm") add_metric("acc_norm", best_norm == static_cast<size_t>(it.gold) ? 1.0 : 0.0, per);
          else fail(c.file, "metric '{}' does not apply to loglikelihood tasks", m);
        }
        rec["target"] = it.choices[static_cast<size_t>(it.gold)];
        rec["loglikelihoods"] = ll;
        shown_response = it.choices[best];
        rec["request_hash"] = reqs[it.reqs[static_cast<size_t>(it.gold)]].hash;
      } else if (c.request == RequestType::GenerativeMC) {
        auto labels = labels_all(it.choices.size());
        std::vector<Filter> filters = c.filters;
        if (filters.empty()) filters.push_back(Filter{"choice", "", 1, "[invalid]"});
        bool all_right = true;
        OJson picks = OJson::array();
        for (size_t rot = 0; rot < it.reqs.size(); ++rot) {
          std::string text = response_text(reqs[it.reqs[rot]].response);
          if (rot == 0) shown_response = text;
          std::string pick = apply_filters(filters, text, labels);
          size_t gold_pos = (static_cast<size_t>(it.gold) + it.choices.size() - rot) % it.choices.size();
          all_right = all_right && pick == labels[gold_pos];
          picks.push_back(pick);
        }
        for (const auto& m : c.metrics) {
          if (m == "acc" || m == "exact_match") add_metric(m, all_right ? 1.0 : 0.0, per);
          else fail(c.file, "metric '{}' does not apply to generative multiple choice", m);
        }
        rec["target"] = labels[static_cast<size_t>(it.gold)];
        rec["filtered"] = picks;
        rec["request_hash"] = reqs[it.reqs[0]].hash;
      } else {
        std::string text = response_text(reqs[it.reqs[0]].response);
        shown_response = text;
        std::string filtered = apply_filters(c.filters, text, {});
        bool numeric = std::any_of(c.filters.begin(), c.filters.end(),
                                   [](const Filter& f) { return f.type == "last_number" || f.type == "first_number"; });
        std::string target = numeric ? normalize_number(it.target) : it.target;
        auto trim = [](std::string s) {
          size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
          return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
        };
        for (const auto& m : c.metrics) {
          if (m == "exact_match" || m == "acc") add_metric(m, trim(filtered) == trim(target) ? 1.0 : 0.0, per);
          else if (m == "f1") add_metric("f1", token_f1(filtered, target), per);
          else if (m == "ifeval") {
            const OJson& ids = it.doc.contains("instruction_id_list") ? it.doc["instruction_id_list"] : OJson::array();
            const OJson& kws = it.doc.contains("kwargs") ? it.doc["kwargs"] : OJson::array();
            size_t ok = 0, ok_loose = 0;
            for (size_t k = 0; k < ids.size(); ++k) {
              OJson kw = k < kws.size() && kws[k].is_object() ? kws[k] : OJson::object();
              const std::string id = ids[k].get<std::string>();
              const bool pass = ifeval_check(id, kw, text);
              // Loose: also passes if the response does with its first and/or
              // last line or its asterisks removed (IFEval's loose accuracy).
              const bool loose = pass || ifeval_check_loose(id, kw, text);
              ok += pass;
              ok_loose += loose;
              const std::pair<const char*, bool> inst[] = {{"inst_level_strict_acc", pass},
                                                           {"inst_level_loose_acc", loose}};
              for (const auto& [name, ok_inst] : inst) {
                if (!scores.count(name)) metric_order.push_back(name);
                scores[name].push_back(ok_inst ? 1.0 : 0.0);
              }
            }
            add_metric("prompt_level_strict_acc", ok == ids.size() ? 1.0 : 0.0, per);
            add_metric("prompt_level_loose_acc", ok_loose == ids.size() ? 1.0 : 0.0, per);
            per["inst_level_strict_acc"] = ids.empty() ? 1.0 : double(ok) / double(ids.size());
            per["inst_level_loose_acc"] = ids.empty() ? 1.0 : double(ok_loose) / double(ids.size());
          }
        }
        if (conv)
          for (const auto& [m, v] : conversation_metrics(conv->items[static_cast<size_t>(&it - w.items.data())],
                                                         is_judged(c), per, rec))
            add_metric(m, v, per);
        rec["target"] = it.target;
        rec["filtered"] = filtered;
        rec["request_hash"] = reqs[it.reqs[0]].hash;
      }
      rec["metrics"] = per;
      rec["response"] = shown_response;
      if (t.samples.is_open()) t.samples << rec.dump(-1, ' ', false, OJson::error_handler_t::replace) << '\n';
    }
    if (t.samples.is_open() && !t.samples.flush()) fail<IoError>(opt.out_dir, "cannot write samples_{}.jsonl", c.name);
  };

  auto finish_task = [&](TaskState& t) {
    const TaskCard& c = t.card;
    auto& scores = t.scores;
    const auto& metric_order = t.metric_order;
    if (t.samples.is_open()) t.samples.close();
    OJson res = OJson::object();
    for (const auto& m : metric_order) {
      auto ms = bootstrap_mean(scores[m], opt.bootstrap);
      res[m + ",none"] = ms.mean;
      res[m + "_stderr,none"] = ms.stderr_;
    }
    res["n"] = t.n;
    res["alias"] = c.alias;
    {
      OJson extras = task_result_extras(c, t.conversation ? &*t.conversation : nullptr);
      for (auto e = extras.begin(); e != extras.end(); ++e) res[e.key()] = e.value();
    }
    results[c.name] = res;
    versions[c.name] = c.version;
    OJson cfg = OJson::object();
    cfg["card_sha256"] = c.sha256;
    cfg["card_path"] = c.file;
    cfg["dataset_sha256"] = t.dataset_sha256;
    cfg["request"] = c.raw.value("request", "");
    cfg["fewshot"] = {{"k", c.fewshot.k}, {"seed", c.fewshot.seed}, {"split", c.fewshot.split}};
    cfg["generation"] = c.generation;
    cfg["sampling"] = request_sampling(c);
    cfg["license"] = c.license;
    configs[c.name] = cfg;
    manifest_inputs.push_back({{"path", c.file}, {"sha256", c.sha256}});
    for (const auto& [split, h] : t.dataset_sha256) {  // the file read (a --data-dir sample, a Hub download)
      const DataSource& src = c.splits.at(split);
      OJson in = {{"path", t.dataset_path.at(split)}, {"sha256", h}};
      if (!src.hf_repo.empty()) {
        in["source"] = src.hf_repo + "@" + src.hf_revision + ":" + src.hf_path;
        if (std::string commit = hub_commit(t.dataset_path.at(split)); !commit.empty()) in["commit"] = commit;
      }
      manifest_inputs.push_back(std::move(in));
    }
    if (!c.group.empty()) {
      if (!gacc.count(c.group)) group_order.push_back(c.group);
      auto& g = gacc[c.group];
      g.aggregation = c.group_aggregation;
      g.tasks.push_back(c.name);
      for (const auto& m : metric_order) {
        auto& v = scores[m];
        g.pooled[m].insert(g.pooled[m].end(), v.begin(), v.end());
        g.task_means[m].push_back(bootstrap_mean(v, 0).mean);
      }
    }
    t.reader.reset();
  };

  // Each task streams through windows of rows: read, send, score, write, forget. The next window
  // is read (and, with a store, enqueued) on a background thread while this one is sent and
  // scored, so at most two windows are alive. Multi-turn and judged tasks run their later turns
  // and the judge per window (each item's conversation needs only its own answers). A
  // distributed run enqueues each window as it is read and waits for that window's answers; its
  // default name hashes what determines the requests, so a rerun resumes.
  const bool queued_run = !opt.store_url.empty();
  const size_t window = opt.window > 0 ? opt.window
                                       : std::max<size_t>(64, 8 * static_cast<size_t>(std::max(1, opt.client.concurrency)));
  RunStats stats;
  HeldCounter held;
  std::string queue_run;
  size_t total_requests = 0;
  Progress bar(0, opt.progress && !queued_run);
  std::optional<WorkerPool> pool;
  std::optional<QueueRun> queue;
  if (queued_run) {
    queue_run = opt.run_name;
    if (queue_run.empty()) {
      std::string key = client.base_url() + "\n" + served + "\nlimit " + std::to_string(opt.limit);
      for (const auto& t : tasks) {
        key += "\n" + t->card.sha256;
        for (const auto& [split, h] : t->dataset_sha256) key += " " + split + ":" + h;
      }
      queue_run = "run-" + sha256_hex(key).substr(0, 16);
    }
    queue.emplace(opt.store_url, queue_run, client.base_url(), opt.client, opt.work_here, opt.progress);
  } else {
    pool.emplace(client, cache_path, opt.client.concurrency, bar);
  }
  auto read_window = [&](TaskState& t) {
    auto w = std::make_unique<Window>(held);
    fill(t, window, *w);
    if (queue && !w->reqs.empty()) {
      std::vector<QueuedRequest> queued;
      queued.reserve(w->reqs.size());
      for (const auto& r : w->reqs)
        queued.push_back({r.hash, r.endpoint, r.body.dump(-1, ' ', false, json::error_handler_t::replace)});
      queue->enqueue(queued);
    }
    return w;
  };
  for (auto& task : tasks) {
    TaskState& t = *task;
    const TaskCard& c = t.card;
    std::unique_ptr<Window> cur = read_window(t);
    for (bool first = true;; first = false) {
      if (cur->items.empty() && !first) break;
      // A short window means the split has ended: nothing to read ahead.
      const bool more = cur->items.size() == window;
      std::future<std::unique_ptr<Window>> ahead;
      if (more && opt.prefetch) {
        ahead = std::async(std::launch::async, read_window, std::ref(t));
        ++stats.prefetched;
      }
      ++stats.chunks;
      total_requests += cur->reqs.size();
      if (queue) {
        std::vector<std::string> hashes;
        hashes.reserve(cur->reqs.size());
        for (const auto& r : cur->reqs) hashes.push_back(r.hash);
        if (!hashes.empty()) {
          auto answers = queue->wait(hashes);
          for (auto& r : cur->reqs) r.response = std::move(answers.at(r.hash));
        }
      } else {
        pool->run(cur->reqs);
      }
      if (first && !t.samples.is_open() && !opt.out_dir.empty()) {
        t.samples.open(fs::path(opt.out_dir) / ("samples_" + c.name + ".jsonl"), std::ios::binary);
        if (!t.samples) fail<IoError>(opt.out_dir, "cannot write samples_{}.jsonl", c.name);
      }
      // Multi-turn and judged tasks: follow-up turns, then the judge, as later phases (eval/judge.h).
      std::optional<ConversationRun> conv;
      if (needs_conversation(c)) {
        std::vector<Conversation> convs;
        convs.reserve(cur->items.size());
        for (const auto& it : cur->items) {
          Conversation cv;
          cv.context = template_context(it.doc, {}, {});
          cv.questions = {it.prompt};
          cv.answers = {response_text(cur->reqs[it.reqs[0]].response)};
          cv.answer_hashes = {cur->reqs[it.reqs[0]].hash};
          convs.push_back(std::move(cv));
        }
        // The judge's model id is asked once (first window), then reused.
        std::string judge_model = opt.judge_model;
        if (judge_model.empty() && t.conversation) judge_model = t.conversation->judge_model;
        JudgeSettings js{opt.judge_url, judge_model, opt.client, cache_path, opt.client.concurrency};
        conv = run_conversations(c, std::move(convs), client, served, js);
        if (!t.conversation) t.conversation.emplace();
        merge_conversation_run(*t.conversation, *conv);
      }
      score_items(t, *cur, conv ? &*conv : nullptr);
      conv.reset();
      cur.reset();  // this window's rows go before the next one is taken
      if (!more) break;
      cur = ahead.valid() ? ahead.get() : read_window(t);
    }
    finish_task(t);
  }
  stats.max_items_held = held.max_rows();
  stats.max_requests_held = held.max_reqs();
  pool.reset();
  queue.reset();  // stops this process's queue worker
  bar.finish();
  if (opt.stats) *opt.stats = stats;
  for (const auto& name : group_order) {
    const auto& g = gacc[name];
    OJson res = OJson::object();
    for (const auto& [m, v] : g.pooled) {
      if (g.aggregation == "micro") {
        auto ms = bootstrap_mean(v, opt.bootstrap);
        res[m + ",none"] = ms.mean;
        res[m + "_stderr,none"] = ms.stderr_;
      } else {
        const auto& tm = g.task_means.at(m);
        double s = 0;
        for (double x : tm) s += x;
        res[m + ",none"] = tm.empty() ? 0.0 : s / double(tm.size());
      }
    }
    res["aggregation"] = g.aggregation;
    res["tasks"] = g.tasks;
    groups[name] = res;
  }
  OJson out = OJson::object();
  out["schema"] = "kaival.eval-results/1";
  out["model"] = {{"id", opt.model_id.empty() ? served : opt.model_id},
                  {"served_id", served},
                  {"revision", revision},
                  {"endpoint", client.base_url()}};
  out["results"] = results;
  out["groups"] = groups;
  out["versions"] = versions;
  out["configs"] = configs;
  auto st = client.stats();
  out["manifest"] = {{"kaival_version", kVersion},
                     {"created", utc_now_iso()},
                     {"inputs", manifest_inputs},
                     {"parameters",
                      {{"limit", opt.limit},
                       {"concurrency", opt.client.concurrency},
                       {"timeout_ms", opt.client.timeout_ms},
                       {"max_retries", opt.client.max_retries},
                       {"bootstrap", opt.bootstrap},
                       {"bootstrap_seed", 1234}}},
                     {"chat_template_sha256", chat_template_sha256},
                     {"store", opt.store_url.empty() ? json(nullptr)
                                                     : json{{"url", store::redact_url(opt.store_url)}, {"run", queue_run}}},
                     {"requests", {{"total", total_requests}, {"sent", st.requests}, {"retries", st.retries},
                                   {"throttled", st.throttled}}}};
  if (!opt.out_dir.empty()) {
    std::ofstream f(fs::path(opt.out_dir) / "results.json", std::ios::binary);
    f << out.dump(2, ' ', false, OJson::error_handler_t::replace) << '\n';
    if (!f) fail<IoError>(opt.out_dir, "cannot write results.json");
    std::ofstream h(fs::path(opt.out_dir) / "results.html", std::ios::binary);
    h << results_html(out);
  }
  return out;
}

namespace {

std::vector<std::array<std::string, 5>> table_rows(const nlohmann::ordered_json& r) {
  std::vector<std::array<std::string, 5>> rows;
  auto add = [&](const std::string& name, const nlohmann::ordered_json& res) {
    for (auto it = res.begin(); it != res.end(); ++it) {
      const std::string& k = it.key();
      if (k.size() < 5 || k.compare(k.size() - 5, 5, ",none") != 0 || k.find("_stderr") != std::string::npos) continue;
      std::string m = k.substr(0, k.size() - 5);
      std::string se = res.contains(m + "_stderr,none") ? fmt::format("{:.4f}", res[m + "_stderr,none"].get<double>()) : "";
      rows.push_back({name, m, fmt::format("{:.4f}", it.value().get<double>()), se,
                      res.contains("n") ? res["n"].dump() : ""});
    }
  };
  if (r.contains("results"))
    for (auto it = r["results"].begin(); it != r["results"].end(); ++it) add(it.key(), it.value());
  if (r.contains("groups"))
    for (auto it = r["groups"].begin(); it != r["groups"].end(); ++it)
      add(it.key() + " (" + it.value().value("aggregation", "") + ")", it.value());
  return rows;
}


}  // namespace

std::string results_table(const nlohmann::ordered_json& r) {
  auto rows = table_rows(r);
  std::array<std::string, 5> head = {"task", "metric", "value", "stderr", "n"};
  std::array<size_t, 5> w{};
  for (size_t k = 0; k < 5; ++k) w[k] = display_width(head[k]);
  for (const auto& row : rows)
    for (size_t k = 0; k < 5; ++k) w[k] = std::max(w[k], display_width(row[k]));
  std::string out;
  auto line = [&](const std::array<std::string, 5>& row) {
    for (size_t k = 0; k < 5; ++k) out += pad_right(row[k], w[k]) + (k + 1 < 5 ? "  " : "\n");
  };
  line(head);
  std::array<std::string, 5> sep;
  for (size_t k = 0; k < 5; ++k) sep[k] = std::string(w[k], '-');
  line(sep);
  for (const auto& row : rows) line(row);
  return out;
}

std::string results_html(const nlohmann::ordered_json& r) {
  std::string model = r.contains("model") ? r["model"].value("id", "") : "";
  std::string out = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>kaival eval: " +
                    html_escape(model) +
                    "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
                    "td,th{border:1px solid #ccc;padding:4px 10px;text-align:left}td.n{text-align:right}</style>"
                    "</head><body><h1>kaival eval: " +
                    html_escape(model) + "</h1>";
  if (r.contains("model"))
    out += "<p>endpoint " + html_escape(r["model"].value("endpoint", "")) + ", served id " +
           html_escape(r["model"].value("served_id", "")) + "</p>";
  out += "<table><tr><th>task</th><th>metric</th><th>value</th><th>stderr</th><th>n</th></tr>";
  for (const auto& row : table_rows(r)) {
    out += "<tr>";
    for (size_t k = 0; k < 5; ++k) out += std::string(k >= 2 ? "<td class=\"n\">" : "<td>") + html_escape(row[k]) + "</td>";
    out += "</tr>";
  }
  out += "</table>";
  if (r.contains("manifest"))
    out += "<p>kaival " + html_escape(r["manifest"].value("kaival_version", "")) + ", " +
           html_escape(r["manifest"].value("created", "")) + "</p>";
  out += "</body></html>\n";
  return out;
}

}  // namespace kaival::eval
