#include "eval/perf.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <numeric>
#include <thread>

#include <curl/curl.h>
#include <unistd.h>

#include <fmt/format.h>

#include "core/error.h"
#include "core/text.h"
#include "core/version.h"
#include "eval/http_client.h"
#include "report/svg.h"

namespace kaival::eval {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// splitmix64: a tiny portable generator, so arrival times do not depend on the
// standard library's distribution implementations.
struct SplitMix {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
};

}  // namespace

// ---------------------------------------------------------------- inputs

std::vector<double> poisson_arrivals(size_t n, double rate, uint64_t seed) {
  std::vector<double> t(n, 0.0);
  if (!(rate > 0) || std::isinf(rate)) return t;
  SplitMix rng{seed};
  for (size_t i = 1; i < n; ++i) t[i] = t[i - 1] - std::log1p(-rng.uniform()) / rate;
  return t;
}

std::vector<PerfPrompt> synthetic_prompts(size_t n, int words, uint64_t seed) {
  // Common words that are single tokens in most BPE vocabularies.
  static const char* kWords[] = {"the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with",
                                 "be", "by", "on", "not", "he", "this", "are", "or", "his", "from", "at", "which",
                                 "but", "have", "an", "had", "they", "you", "were", "their", "one", "all", "we",
                                 "can", "her", "has", "there", "been", "if", "more", "when", "will", "would", "who",
                                 "so", "no", "time", "people", "year", "way", "day", "man", "thing", "world", "life"};
  constexpr size_t kCount = sizeof(kWords) / sizeof(kWords[0]);
  SplitMix rng{seed ^ 0x5eedull};
  std::vector<PerfPrompt> out(n);
  for (auto& p : out) {
    for (int w = 0; w < words; ++w) {
      if (w) p.text += ' ';
      p.text += kWords[rng.next() % kCount];
    }
    p.input_tokens_hint = words;
  }
  return out;
}

std::vector<PerfPrompt> load_prompts_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail<IoError>(path, "cannot open prompts file");
  std::vector<PerfPrompt> out;
  std::string line;
  for (size_t no = 1; std::getline(in, line); ++no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) fail(fmt::format("{}:{}", path, no), "not a JSON object");
    auto it = j.find("prompt");
    if (it == j.end() || !it->is_string()) fail(fmt::format("{}:{}", path, no), "no string field \"prompt\"");
    PerfPrompt p;
    p.text = it->get<std::string>();
    // Rough size when the server reports no usage: whitespace-separated words.
    bool in_word = false;
    for (unsigned char c : p.text) {
      bool space = std::isspace(c);
      if (!space && !in_word) ++p.input_tokens_hint;
      in_word = !space;
    }
    out.push_back(std::move(p));
  }
  if (out.empty()) fail(path, "no prompts");
  return out;
}

// ---------------------------------------------------------------- statistics

LatencyStats latency_stats_ms(std::vector<double> v) {
  LatencyStats s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    double pos = p / 100.0 * static_cast<double>(v.size() - 1);
    size_t lo = static_cast<size_t>(std::floor(pos));
    size_t hi = std::min(lo + 1, v.size() - 1);
    return (v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo))) * 1000.0;
  };
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size()) * 1000.0;
  s.median = pct(50);
  s.p90 = pct(90);
  s.p99 = pct(99);
  return s;
}

PerfRun summarize_run(std::vector<RequestRecord> records, double duration_s, int concurrency, double rate,
                      const PerfSlo& slo, const PerfPrice& price) {
  PerfRun r;
  r.concurrency = concurrency;
  r.rate = rate;
  r.duration_s = duration_s;
  r.sent = records.size();
  std::vector<double> ttft, tpot, itl, e2e;
  for (const auto& q : records) {
    if (!q.ok) {
      ++r.failed;
      ++r.failures[q.error.empty() ? "unknown" : q.error];
      continue;
    }
    ++r.completed;
    r.input_tokens += q.input_tokens;
    r.output_tokens += q.output_tokens;
    r.usage_reported += q.usage_reported;
    ttft.push_back(q.ttft_s);
    e2e.push_back(q.e2e_s);
    if (q.output_tokens > 1) tpot.push_back(q.tpot_s);
    itl.insert(itl.end(), q.itl_s.begin(), q.itl_s.end());
    // As in vLLM: a request with one output token has no TPOT and meets any TPOT objective.
    bool good = (slo.ttft_ms <= 0 || q.ttft_s * 1000 <= slo.ttft_ms) &&
                (slo.tpot_ms <= 0 || q.output_tokens < 2 || q.tpot_s * 1000 <= slo.tpot_ms) &&
                (slo.e2e_ms <= 0 || q.e2e_s * 1000 <= slo.e2e_ms);
    r.good_requests += good;
  }
  r.ttft = latency_stats_ms(std::move(ttft));
  r.tpot = latency_stats_ms(std::move(tpot));
  r.itl = latency_stats_ms(std::move(itl));
  r.e2e = latency_stats_ms(std::move(e2e));
  if (duration_s > 0) {
    r.request_throughput = static_cast<double>(r.completed) / duration_s;
    r.output_throughput = static_cast<double>(r.output_tokens) / duration_s;
    r.total_token_throughput = static_cast<double>(r.input_tokens + r.output_tokens) / duration_s;
    if (slo.any()) r.goodput = static_cast<double>(r.good_requests) / duration_s;
  } else if (slo.any()) {
    r.goodput = 0.0;
  }
  if (!slo.any()) r.good_requests = 0;
  if (price.per_hour > 0 || price.per_1m_input > 0 || price.per_1m_output > 0) {
    PerfCost c;
    double usd_per_s = price.per_hour / 3600.0;
    if (r.output_throughput > 0) c.usd_per_1m_output_tokens = usd_per_s / r.output_throughput * 1e6;
    if (r.total_token_throughput > 0) c.usd_per_1m_total_tokens = usd_per_s / r.total_token_throughput * 1e6;
    c.api_run_usd = static_cast<double>(r.input_tokens) / 1e6 * price.per_1m_input +
                    static_cast<double>(r.output_tokens) / 1e6 * price.per_1m_output;
    int64_t total = r.input_tokens + r.output_tokens;
    if (total > 0) c.api_usd_per_1m_total_tokens = c.api_run_usd / static_cast<double>(total) * 1e6;
    r.cost = c;
  }
  r.requests = std::move(records);
  return r;
}

// ---------------------------------------------------------------- the measuring client

namespace {

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string error_message(const std::string& body) {
  auto j = json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("error")) {
    const auto& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"].get<std::string>();
    if (e.is_string()) return e.get<std::string>();
  }
  std::string s = body.substr(0, 200);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// One streamed exchange in progress: the write callback parses SSE lines as
// they arrive and timestamps every chunk that carries text.
struct StreamState {
  CURL* handle = nullptr;
  RequestRecord* rec = nullptr;
  Clock::time_point t0, last;
  long status = 0;
  std::string pending;  // incomplete line
  std::string body;     // non-200 body (capped)
  bool done = false;
  int chunks = 0;
  std::string stream_error;
};

void on_event(StreamState& st, std::string_view line) {
  if (line.substr(0, 5) != "data:") return;
  std::string_view payload = line.substr(5);
  while (!payload.empty() && payload.front() == ' ') payload.remove_prefix(1);
  if (payload == "[DONE]") {
    st.done = true;
    st.rec->e2e_s = secs(Clock::now() - st.t0);
    return;
  }
  json j = json::parse(payload, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    if (st.stream_error.empty()) st.stream_error = "malformed SSE chunk";
    return;
  }
  if (auto e = j.find("error"); e != j.end()) {
    if (st.stream_error.empty()) st.stream_error = "error in stream: " + error_message(j.dump());
    return;
  }
  bool text = false;
  if (auto c = j.find("choices"); c != j.end() && c->is_array() && !c->empty()) {
    const json& ch = (*c)[0];
    if (auto t = ch.find("text"); t != ch.end() && t->is_string() && !t->get_ref<const std::string&>().empty())
      text = true;
    if (auto d = ch.find("delta"); d != ch.end() && d->is_object()) {
      for (const char* k : {"content", "reasoning_content", "reasoning"})
        if (auto t = d->find(k); t != d->end() && t->is_string() && !t->get_ref<const std::string&>().empty())
          text = true;
    }
  }
  if (text) {
    auto now = Clock::now();
    if (st.chunks == 0) st.rec->ttft_s = secs(now - st.t0);
    else st.rec->itl_s.push_back(secs(now - st.last));
    st.last = now;
    ++st.chunks;
  }
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) {
    auto pt = u->find("prompt_tokens");
    auto ct = u->find("completion_tokens");
    if (ct != u->end() && ct->is_number_integer()) {
      st.rec->output_tokens = ct->get<int64_t>();
      st.rec->usage_reported = true;
      if (pt != u->end() && pt->is_number_integer()) st.rec->input_tokens = pt->get<int64_t>();
    }
  }
}

size_t on_data(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<StreamState*>(user);
  const size_t len = size * n;
  if (st->status == 0) curl_easy_getinfo(st->handle, CURLINFO_RESPONSE_CODE, &st->status);
  if (st->status != 200) {
    if (st->body.size() < 65536) st->body.append(data, std::min(len, 65536 - st->body.size()));
    return len;
  }
  st->pending.append(data, len);
  size_t begin = 0, nl;
  while ((nl = st->pending.find('\n', begin)) != std::string::npos) {
    std::string_view line(st->pending.data() + begin, nl - begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!line.empty()) on_event(*st, line);
    begin = nl + 1;
  }
  st->pending.erase(0, begin);
  if (st->pending.size() > (size_t{16} << 20)) return 0;  // no line that long is SSE
  return len;
}

// A worker's connection: one easy handle kept for the worker's life so
// connections are reused (keep-alive), as a serving client would.
class StreamClient {
 public:
  StreamClient(const std::string& url, const std::string& api_key, double timeout_s) : url_(url) {
    curl_init_once();
    h_ = curl_easy_init();
    if (!h_) fail<IoError>(url, "curl_easy_init failed");
    headers_ = curl_slist_append(headers_, "Content-Type: application/json");
    headers_ = curl_slist_append(headers_, "Accept: text/event-stream");
    if (!api_key.empty()) headers_ = curl_slist_append(headers_, ("Authorization: Bearer " + api_key).c_str());
    timeout_ms_ = static_cast<long>(std::max(1.0, timeout_s * 1000));
  }
  ~StreamClient() {
    curl_slist_free_all(headers_);
    curl_easy_cleanup(h_);
  }
  StreamClient(const StreamClient&) = delete;
  StreamClient& operator=(const StreamClient&) = delete;

  // Sends one request now and fills `rec` (never throws for server or network faults).
  void send(const std::string& payload, RequestRecord& rec, Clock::time_point run_start) {
    StreamState st;
    st.handle = h_;
    st.rec = &rec;
    curl_easy_setopt(h_, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(h_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(h_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h_, CURLOPT_TIMEOUT_MS, timeout_ms_);
    curl_easy_setopt(h_, CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms_, 10000L));
    curl_easy_setopt(h_, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h_, CURLOPT_POST, 1L);
    curl_easy_setopt(h_, CURLOPT_POSTFIELDS, payload.data());
    curl_easy_setopt(h_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(payload.size()));
    curl_easy_setopt(h_, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h_, CURLOPT_WRITEDATA, &st);
    st.t0 = Clock::now();
    rec.start_s = secs(st.t0 - run_start);
    CURLcode rc = curl_easy_perform(h_);
    if (st.status == 0) curl_easy_getinfo(h_, CURLINFO_RESPONSE_CODE, &st.status);
    if (!st.pending.empty() && st.status == 200) on_event(st, st.pending);
    rec.ok = false;
    if (st.status != 0 && st.status != 200) {
      rec.error = fmt::format("HTTP {}: {}", st.status, error_message(st.body));
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
      rec.error = "timeout";
    } else if (rc != CURLE_OK) {
      rec.error = st.status == 200 ? fmt::format("stream cut before [DONE] ({})", curl_easy_strerror(rc))
                                   : std::string(curl_easy_strerror(rc));
    } else if (!st.stream_error.empty()) {
      rec.error = st.stream_error;
    } else if (!st.done) {
      rec.error = "stream cut before [DONE]";
    } else if (st.chunks == 0) {
      rec.error = "no text in stream";
    } else {
      rec.ok = true;
      if (!rec.usage_reported) rec.output_tokens = st.chunks;
      if (rec.output_tokens > 1) rec.tpot_s = (rec.e2e_s - rec.ttft_s) / static_cast<double>(rec.output_tokens - 1);
    }
  }

 private:
  std::string url_;
  CURL* h_ = nullptr;
  curl_slist* headers_ = nullptr;
  long timeout_ms_ = 0;
};

// Periodic progress lines on stderr (overwritten in place on a terminal).
class ProgressLine {
 public:
  ProgressLine(bool enabled, std::string label, size_t total, const std::atomic<size_t>& done,
               const std::atomic<size_t>& failed)
      : enabled_(enabled), label_(std::move(label)), total_(total), done_(done), failed_(failed) {
    if (enabled_) thread_ = std::thread([this] { loop(); });
  }
  ~ProgressLine() {
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
  void loop() {
    std::unique_lock<std::mutex> lk(mu_);
    auto period = tty_ ? std::chrono::milliseconds(250) : std::chrono::milliseconds(10000);
    while (!cv_.wait_for(lk, period, [&] { return stop_; })) draw(false);
  }
  void draw(bool final) {
    double el = secs(Clock::now() - start_);
    size_t d = done_.load();
    std::fprintf(stderr, "%s[perf %s] %zu/%zu done, %zu failed, %.1f req/s, %.0f s%s", tty_ ? "\r" : "",
                 label_.c_str(), d, total_, failed_.load(), el > 0 ? static_cast<double>(d) / el : 0.0, el,
                 final || !tty_ ? "\n" : "");
    std::fflush(stderr);
  }
  bool enabled_;
  std::string label_;
  size_t total_;
  const std::atomic<size_t>& done_;
  const std::atomic<size_t>& failed_;
  bool tty_ = isatty(STDERR_FILENO);
  Clock::time_point start_ = Clock::now();
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

std::string request_body(const PerfOptions& o, const std::string& model, const PerfPrompt& p) {
  json b = {{"model", model}, {"max_tokens", o.output_len}, {"temperature", 0.0}, {"stream", true},
            {"stream_options", {{"include_usage", true}}}};
  if (o.ignore_eos) b["ignore_eos"] = true;
  if (o.chat) b["messages"] = json::array({{{"role", "user"}, {"content", p.text}}});
  else b["prompt"] = p.text;
  return b.dump(-1, ' ', false, json::error_handler_t::replace);
}

// One run: request i is sent at max(arrival[i], when a worker is free); at most
// `workers` in flight; none sent after the duration cap.
PerfRun run_once(const PerfOptions& o, const std::string& url, const std::vector<std::string>& payloads,
                 const std::vector<PerfPrompt>& prompts, int workers, double rate, const std::string& label) {
  const size_t n = payloads.size();
  const std::vector<double> arrivals = poisson_arrivals(n, rate, o.seed);
  std::vector<RequestRecord> recs(n);
  std::vector<char> sent(n, 0);
  std::atomic<size_t> next{0}, done{0}, failed{0};
  std::mutex end_mu;
  Clock::time_point last_end{};
  const auto start = Clock::now();
  const bool capped = o.duration_s > 0;
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration_s));
  {
    ProgressLine progress(o.progress, label, n, done, failed);
    std::vector<std::thread> pool;
    const int w = std::max(1, std::min<int>(workers, static_cast<int>(n)));
    pool.reserve(static_cast<size_t>(w));
    for (int t = 0; t < w; ++t) {
      pool.emplace_back([&] {
        StreamClient client(url, o.api_key, o.timeout_s);
        for (size_t i; (i = next.fetch_add(1)) < n;) {
          auto due = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(arrivals[i]));
          if (capped && due >= deadline) break;
          std::this_thread::sleep_until(due);
          if (capped && Clock::now() >= deadline) break;
          sent[i] = 1;
          RequestRecord& rec = recs[i];
          client.send(payloads[i], rec, start);
          if (rec.ok && !rec.usage_reported) rec.input_tokens = prompts[i].input_tokens_hint;
          if (!rec.ok) failed.fetch_add(1);
          done.fetch_add(1);
          std::lock_guard<std::mutex> lk(end_mu);
          last_end = std::max(last_end, Clock::now());
        }
      });
    }
    for (auto& th : pool) th.join();
  }
  std::vector<RequestRecord> kept;
  kept.reserve(n);
  for (size_t i = 0; i < n; ++i)
    if (sent[i]) kept.push_back(std::move(recs[i]));
  double duration = last_end == Clock::time_point{} ? 0.0 : secs(last_end - start);
  return summarize_run(std::move(kept), duration, workers, rate, o.slo, o.price);
}

}  // namespace

PerfReport run_perf(const PerfOptions& o) {
  if (o.model_url.empty()) throw FormatError("perf", "no server URL given");
  if (o.output_len < 1) fail("perf", "--output-len must be at least 1 (got {})", o.output_len);
  if (o.prompts_file.empty() && o.input_len < 1) fail("perf", "--input-len must be at least 1 (got {})", o.input_len);
  for (int c : o.sweep)
    if (c < 1) fail("perf", "sweep concurrency must be at least 1 (got {})", c);
  PerfReport rep;
  rep.options = o;
  rep.created = utc_now_iso();
  rep.endpoint = o.chat ? "chat/completions" : "completions";
  const std::string base = normalize_base_url(o.model_url);
  rep.model = o.served_model;
  if (rep.model.empty()) {
    ClientOptions co;
    co.api_key = o.api_key;
    co.max_retries = 2;
    co.timeout_ms = 30000;
    OpenAIClient c(base, co);
    json models = c.get("models");
    if (models.contains("data") && models["data"].is_array() && !models["data"].empty() &&
        models["data"][0].contains("id") && models["data"][0]["id"].is_string())
      rep.model = models["data"][0]["id"].get<std::string>();
    if (rep.model.empty()) fail<IoError>(base + "/models", "the server names no model; pass --served-model");
  }

  std::vector<PerfPrompt> pool = o.prompts_file.empty() ? std::vector<PerfPrompt>{} : load_prompts_jsonl(o.prompts_file);
  size_t n = o.num_prompts > 0 ? static_cast<size_t>(o.num_prompts) : (pool.empty() ? 100 : pool.size());
  std::vector<PerfPrompt> prompts;
  if (pool.empty()) {
    prompts = synthetic_prompts(n, o.input_len, o.seed);
  } else {
    for (size_t i = 0; i < n; ++i) prompts.push_back(pool[i % pool.size()]);  // cycles a short file
  }
  // Bodies are built before the clock starts: the client's cost stays out of the measurement.
  std::vector<std::string> payloads;
  payloads.reserve(n);
  for (const auto& p : prompts) payloads.push_back(request_body(o, rep.model, p));
  const std::string url = base + "/" + rep.endpoint;

  if (!o.sweep.empty()) {
    for (int c : o.sweep)
      rep.runs.push_back(run_once(o, url, payloads, prompts, c, std::numeric_limits<double>::infinity(),
                                  fmt::format("concurrency {}", c)));
  } else {
    int workers = o.max_concurrency > 0 ? o.max_concurrency : static_cast<int>(std::min<size_t>(n, 256));
    std::string label = std::isinf(o.rate) ? "rate inf" : fmt::format("rate {:g}/s", o.rate);
    rep.runs.push_back(run_once(o, url, payloads, prompts, workers, o.rate, label));
  }
  return rep;
}

// ---------------------------------------------------------------- output

namespace {

ojson stats_json(const LatencyStats& s) {
  return {{"n", s.n}, {"mean", s.mean}, {"median", s.median}, {"p90", s.p90}, {"p99", s.p99}};
}

ojson rate_json(double rate) { return std::isinf(rate) ? ojson("inf") : ojson(rate); }

ojson opt_num(double v) { return v > 0 ? ojson(v) : ojson(nullptr); }

}  // namespace

ojson perf_json(const PerfReport& rep) {
  const PerfOptions& o = rep.options;
  ojson cfg = {{"num_prompts", o.num_prompts},
               {"rate", rate_json(o.rate)},
               {"max_concurrency", o.max_concurrency > 0 ? ojson(o.max_concurrency) : ojson(nullptr)},
               {"sweep", o.sweep},
               {"duration_s", opt_num(o.duration_s)},
               {"seed", o.seed},
               {"input_len", o.prompts_file.empty() ? ojson(o.input_len) : ojson(nullptr)},
               {"output_len", o.output_len},
               {"ignore_eos", o.ignore_eos},
               {"prompts_file", o.prompts_file.empty() ? ojson(nullptr) : ojson(o.prompts_file)},
               {"timeout_s", o.timeout_s},
               {"slo", {{"ttft_ms", opt_num(o.slo.ttft_ms)}, {"tpot_ms", opt_num(o.slo.tpot_ms)},
                        {"e2e_ms", opt_num(o.slo.e2e_ms)}}},
               {"price", {{"per_hour", opt_num(o.price.per_hour)}, {"per_1m_input", opt_num(o.price.per_1m_input)},
                          {"per_1m_output", opt_num(o.price.per_1m_output)}}}};
  ojson runs = ojson::array();
  for (const auto& r : rep.runs) {
    ojson failures = ojson::object();
    for (const auto& [why, k] : r.failures) failures[why] = k;
    ojson cost = nullptr;
    if (r.cost)
      cost = {{"usd_per_1m_output_tokens", r.cost->usd_per_1m_output_tokens},
              {"usd_per_1m_total_tokens", r.cost->usd_per_1m_total_tokens},
              {"api_run_usd", r.cost->api_run_usd},
              {"api_usd_per_1m_total_tokens", r.cost->api_usd_per_1m_total_tokens}};
    ojson per = ojson::array();
    for (const auto& q : r.requests) {
      per.push_back({{"start_s", q.start_s},
                     {"ok", q.ok},
                     {"error", q.ok ? ojson(nullptr) : ojson(q.error)},
                     {"ttft_ms", q.ok ? ojson(q.ttft_s * 1000) : ojson(nullptr)},
                     {"tpot_ms", q.ok && q.output_tokens > 1 ? ojson(q.tpot_s * 1000) : ojson(nullptr)},
                     {"e2e_ms", q.ok ? ojson(q.e2e_s * 1000) : ojson(nullptr)},
                     {"input_tokens", q.input_tokens},
                     {"output_tokens", q.output_tokens},
                     {"usage_reported", q.usage_reported}});
    }
    runs.push_back({{"concurrency", r.concurrency},
                    {"rate", rate_json(r.rate)},
                    {"sent", r.sent},
                    {"completed", r.completed},
                    {"failed", r.failed},
                    {"failures", failures},
                    {"duration_s", r.duration_s},
                    {"input_tokens", r.input_tokens},
                    {"output_tokens", r.output_tokens},
                    {"usage_reported", r.usage_reported},
                    {"request_throughput", r.request_throughput},
                    {"output_throughput", r.output_throughput},
                    {"total_token_throughput", r.total_token_throughput},
                    {"goodput", r.goodput ? ojson(*r.goodput) : ojson(nullptr)},
                    {"good_requests", r.goodput ? ojson(r.good_requests) : ojson(nullptr)},
                    {"ttft_ms", stats_json(r.ttft)},
                    {"tpot_ms", stats_json(r.tpot)},
                    {"itl_ms", stats_json(r.itl)},
                    {"e2e_ms", stats_json(r.e2e)},
                    {"cost", cost},
                    {"requests", per}});
  }
  return {{"schema", "kaival.perf/1"},
          {"kaival_version", kVersion},
          {"created", rep.created},
          {"model_url", rep.options.model_url},
          {"model", rep.model},
          {"endpoint", rep.endpoint},
          {"config", cfg},
          {"runs", runs}};
}

std::string perf_table(const PerfReport& rep) {
  std::string s;
  auto line = [&](std::string_view k, const std::string& v) { s += fmt::format("{:<40}{:>14}\n", k, v); };
  auto f2 = [](double v) { return fmt::format("{:.2f}", v); };
  for (const auto& r : rep.runs) {
    std::string title = rep.options.sweep.empty()
                            ? fmt::format(" Serving benchmark: rate {}, max concurrency {} ",
                                          std::isinf(r.rate) ? std::string("inf") : fmt::format("{:g}", r.rate),
                                          r.concurrency)
                            : fmt::format(" Serving benchmark: concurrency {} ", r.concurrency);
    s += fmt::format("{:=^54}\n", title);
    line("Model:", rep.model);
    line("Successful requests:", fmt::format("{}", r.completed));
    line("Failed requests:", fmt::format("{}", r.failed));
    for (const auto& [why, k] : r.failures) s += fmt::format("  {} x {}\n", k, why);
    line("Benchmark duration (s):", f2(r.duration_s));
    line("Total input tokens:", fmt::format("{}", r.input_tokens));
    line("Total generated tokens:", fmt::format("{}", r.output_tokens));
    if (r.completed > r.usage_reported)
      line("Requests without server usage:", fmt::format("{}", r.completed - r.usage_reported));
    line("Request throughput (req/s):", f2(r.request_throughput));
    line("Output token throughput (tok/s):", f2(r.output_throughput));
    line("Total token throughput (tok/s):", f2(r.total_token_throughput));
    if (r.goodput) line(fmt::format("Request goodput (req/s, {} good):", r.good_requests), f2(*r.goodput));
    if (r.cost) {
      if (rep.options.price.per_hour > 0) {
        line("Cost per 1M output tokens (USD):", fmt::format("{:.4f}", r.cost->usd_per_1m_output_tokens));
        line("Cost per 1M total tokens (USD):", fmt::format("{:.4f}", r.cost->usd_per_1m_total_tokens));
      }
      if (rep.options.price.per_1m_input > 0 || rep.options.price.per_1m_output > 0) {
        line("API cost of this run (USD):", fmt::format("{:.6f}", r.cost->api_run_usd));
        line("API cost per 1M total tokens (USD):", fmt::format("{:.4f}", r.cost->api_usd_per_1m_total_tokens));
      }
    }
    auto block = [&](const char* name, const char* full, const LatencyStats& st) {
      s += fmt::format("{:-^54}\n", std::string(" ") + full + " ");
      line(fmt::format("Mean {} (ms):", name), f2(st.mean));
      line(fmt::format("Median {} (ms):", name), f2(st.median));
      line(fmt::format("P90 {} (ms):", name), f2(st.p90));
      line(fmt::format("P99 {} (ms):", name), f2(st.p99));
    };
    block("TTFT", "Time to First Token", r.ttft);
    block("TPOT", "Time per Output Token (excl. 1st token)", r.tpot);
    block("ITL", "Inter-token Latency", r.itl);
    block("E2E", "End-to-end Latency", r.e2e);
    s += std::string(54, '=') + "\n";
  }
  return s;
}

// ---------------------------------------------------------------- HTML

namespace {

using report::escape;
using report::part_colour;
using report::px;

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;
};

// A "nice" axis maximum: 1, 2 or 5 times a power of ten at or above v.
double nice_max(double v) {
  if (!(v > 0)) return 1;
  double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= v) return m * p;
  return 10 * p;
}

// A line chart with axes, four ticks per axis and a legend.
std::string line_chart(const std::string& id, const std::string& title, const std::string& xlabel,
                       const std::string& ylabel, const std::vector<Series>& series, bool steps, bool markers) {
  const double W = 560, H = 300, L = 64, R = 16, T = 34, B = 46;
  double xmax = 0, ymax = 0, xmin = std::numeric_limits<double>::infinity();
  for (const auto& s : series)
    for (auto [x, y] : s.points) {
      xmax = std::max(xmax, x);
      xmin = std::min(xmin, x);
      ymax = std::max(ymax, y);
    }
  if (!std::isfinite(xmin)) xmin = 0;
  xmin = std::min(xmin, 0.0);
  xmax = nice_max(xmax);
  ymax = nice_max(ymax);
  auto X = [&](double x) { return L + (x - xmin) / (xmax - xmin) * (W - L - R); };
  auto Y = [&](double y) { return H - B - y / ymax * (H - T - B); };
  std::string s = fmt::format(
      "<svg id=\"{}\" class=chart role=img viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" "
      "xmlns=\"http://www.w3.org/2000/svg\"><title>{}</title>"
      "<text x=\"{}\" y=18 class=ttl>{}</text>",
      escape(id), px(W), px(H), px(W), px(H), escape(title), px(L), escape(title));
  for (int k = 0; k <= 4; ++k) {
    double yv = ymax * k / 4, xv = xmin + (xmax - xmin) * k / 4;
    s += fmt::format("<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#ddd\"/>", px(L), px(Y(yv)), px(W - R),
                     px(Y(yv)));
    s += fmt::format("<text x=\"{}\" y=\"{}\" class=axis text-anchor=end>{:g}</text>", px(L - 4), px(Y(yv) + 4), yv);
    s += fmt::format("<text x=\"{}\" y=\"{}\" class=axis text-anchor=middle>{:g}</text>", px(X(xv)), px(H - B + 16),
                     xv);
  }
  s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{0}\" y2=\"{2}\" stroke=\"#333\"/>", px(L), px(T), px(H - B));
  s += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"#333\"/>", px(L), px(H - B), px(W - R));
  s += fmt::format("<text x=\"{}\" y=\"{}\" class=axis text-anchor=middle>{}</text>", px((L + W - R) / 2), px(H - 8),
                   escape(xlabel));
  s += fmt::format("<text x=12 y=\"{0}\" class=axis text-anchor=middle transform=\"rotate(-90 12 {0})\">{1}</text>",
                   px((T + H - B) / 2), escape(ylabel));
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& sr = series[i];
    std::string pts;
    double prev_y = 0;
    for (size_t k = 0; k < sr.points.size(); ++k) {
      auto [x, y] = sr.points[k];
      if (steps && k > 0) pts += fmt::format("{},{} ", px(X(x)), px(Y(prev_y)));
      pts += fmt::format("{},{} ", px(X(x)), px(Y(y)));
      prev_y = y;
    }
    s += fmt::format("<polyline fill=none stroke=\"{}\" stroke-width=2 points=\"{}\"/>", part_colour(i), pts);
    if (markers)
      for (auto [x, y] : sr.points)
        s += fmt::format("<circle cx=\"{}\" cy=\"{}\" r=3 fill=\"{}\"><title>{}: {:g}, {:.2f}</title></circle>",
                         px(X(x)), px(Y(y)), part_colour(i), escape(sr.name), x, y);
    double ly = T + 4 + 16 * static_cast<double>(i);
    s += fmt::format("<rect x=\"{}\" y=\"{}\" width=10 height=10 fill=\"{}\"/><text x=\"{}\" y=\"{}\" class=axis>{}</text>",
                     px(W - R - 150), px(ly), part_colour(i), px(W - R - 136), px(ly + 9), escape(sr.name));
  }
  return s + "</svg>";
}

Series cdf(const std::string& name, std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  Series s{name, {}};
  if (ms.empty()) return s;
  s.points.emplace_back(ms.front(), 0.0);
  for (size_t i = 0; i < ms.size(); ++i) s.points.emplace_back(ms[i], static_cast<double>(i + 1) / ms.size());
  return s;
}

std::string run_label(const PerfReport& rep, const PerfRun& r) {
  if (!rep.options.sweep.empty()) return fmt::format("concurrency {}", r.concurrency);
  return fmt::format("rate {}, max concurrency {}", std::isinf(r.rate) ? std::string("inf") : fmt::format("{:g}", r.rate),
                     r.concurrency);
}

}  // namespace

std::string perf_html(const PerfReport& rep) {
  std::string h =
      "<!doctype html><html lang=en><head><meta charset=utf-8><title>kaival perf: " + escape(rep.model) +
      "</title><style>body{font:14px system-ui,sans-serif;margin:24px;color:#222}"
      "table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
      "th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.chart{margin:8px 16px 8px 0}"
      ".ttl{font-weight:600;font-size:13px}.axis{font-size:11px;fill:#444}</style></head><body>";
  h += fmt::format("<h1>Serving benchmark: {}</h1><p>{} · endpoint /v1/{} · {} · kaival {}</p>", escape(rep.model),
                   escape(rep.options.model_url), escape(rep.endpoint), escape(rep.created), escape(kVersion));
  h += "<table><tr><th>run</th><th>ok</th><th>failed</th><th>duration s</th><th>req/s</th><th>output tok/s</th>"
       "<th>total tok/s</th><th>goodput req/s</th><th>TTFT p50 / p99 ms</th><th>TPOT p50 / p99 ms</th>"
       "<th>ITL p50 / p99 ms</th><th>E2E p50 / p99 ms</th></tr>";
  for (const auto& r : rep.runs)
    h += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2f}</td><td>{:.2f}</td><td>{:.1f}</td><td>{:.1f}</td><td>{}</td>"
        "<td>{:.1f} / {:.1f}</td><td>{:.2f} / {:.2f}</td><td>{:.2f} / {:.2f}</td><td>{:.1f} / {:.1f}</td></tr>",
        escape(run_label(rep, r)), r.completed, r.failed, r.duration_s, r.request_throughput, r.output_throughput,
        r.total_token_throughput, r.goodput ? fmt::format("{:.2f}", *r.goodput) : std::string("–"), r.ttft.median,
        r.ttft.p99, r.tpot.median, r.tpot.p99, r.itl.median, r.itl.p99, r.e2e.median, r.e2e.p99);
  h += "</table>";
  bool any_fail = false;
  for (const auto& r : rep.runs) any_fail |= r.failed > 0;
  if (any_fail) {
    h += "<h2>Failures</h2><table><tr><th>run</th><th>reason</th><th>count</th></tr>";
    for (const auto& r : rep.runs)
      for (const auto& [why, k] : r.failures)
        h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td></tr>", escape(run_label(rep, r)), escape(why), k);
    h += "</table>";
  }
  if (rep.runs.size() > 1) {
    Series thr{"output tok/s", {}}, req{"requests/s", {}}, p99{"TTFT p99", {}}, p50{"TTFT median", {}};
    for (const auto& r : rep.runs) {
      double c = r.concurrency;
      thr.points.emplace_back(c, r.output_throughput);
      req.points.emplace_back(c, r.request_throughput);
      p99.points.emplace_back(c, r.ttft.p99);
      p50.points.emplace_back(c, r.ttft.median);
    }
    h += "<h2>Concurrency sweep</h2>";
    h += line_chart("chart-throughput", "Output token throughput vs concurrency", "concurrency", "tokens/s", {thr},
                    false, true);
    h += line_chart("chart-ttft", "TTFT vs concurrency", "concurrency", "ms", {p99, p50}, false, true);
  }
  h += "<h2>Latency distribution</h2>";
  for (size_t i = 0; i < rep.runs.size(); ++i) {
    const auto& r = rep.runs[i];
    std::vector<double> ttft, e2e, tpot;
    for (const auto& q : r.requests)
      if (q.ok) {
        ttft.push_back(q.ttft_s * 1000);
        e2e.push_back(q.e2e_s * 1000);
        if (q.output_tokens > 1) tpot.push_back(q.tpot_s * 1000);
      }
    h += line_chart(fmt::format("chart-cdf-{}", i), "Latency CDF, " + run_label(rep, r), "ms", "fraction of requests",
                    {cdf("TTFT", ttft), cdf("E2E", e2e)}, true, false);
    h += line_chart(fmt::format("chart-tpot-cdf-{}", i), "TPOT CDF, " + run_label(rep, r), "ms per token",
                    "fraction of requests", {cdf("TPOT", tpot)}, true, false);
  }
  h += "</body></html>\n";
  return h;
}

}  // namespace kaival::eval
