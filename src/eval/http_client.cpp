#include "eval/http_client.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>

#include <curl/curl.h>

#include "core/error.h"

namespace kaival::eval {

using Clock = std::chrono::steady_clock;

namespace {

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// One easy handle per thread, reused so connections stay alive.
struct ThreadHandle {
  CURL* h = nullptr;
  ~ThreadHandle() {
    if (h) curl_easy_cleanup(h);
  }
  CURL* get() {
    if (!h) h = curl_easy_init();
    else curl_easy_reset(h);
    return h;
  }
};

// A failure worth retrying.
struct Transient {
  std::string why;
  double retry_after_s = -1;
  bool throttled = false;
};

struct Exchange {
  long status = 0;
  std::string body;
  double retry_after_s = -1;
  // streaming
  bool stream = false;
  std::string pending;  // incomplete SSE line
  bool done = false;
  StreamResult* sr = nullptr;
  Clock::time_point start;
  Clock::time_point last_chunk;
  std::string parse_error;
};

double parse_retry_after(const std::string& v) {
  char* end = nullptr;
  double s = std::strtod(v.c_str(), &end);
  if (end != v.c_str() && s >= 0) return s;
  return -1;  // HTTP-date form: fall back to our own back-off
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  std::string line(data, size * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string key = line.substr(0, colon);
    std::transform(key.begin(), key.end(), key.begin(), [](unsigned char c) { return std::tolower(c); });
    if (key == "retry-after") {
      std::string v = line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.pop_back();
      ex->retry_after_s = parse_retry_after(v);
    }
  }
  return size * n;
}

void on_sse_line(Exchange& ex, const std::string& line) {
  if (line.rfind("data:", 0) != 0) return;
  std::string payload = line.substr(5);
  payload.erase(0, payload.find_first_not_of(' '));
  if (payload == "[DONE]") {
    ex.done = true;
    ex.sr->e2e_s = std::chrono::duration<double>(Clock::now() - ex.start).count();
    return;
  }
  auto j = nlohmann::json::parse(payload, nullptr, false);
  if (j.is_discarded()) {
    ex.parse_error = "malformed SSE chunk";
    return;
  }
  std::string piece;
  if (j.contains("choices") && j["choices"].is_array() && !j["choices"].empty()) {
    const auto& c = j["choices"][0];
    if (c.contains("text") && c["text"].is_string()) piece = c["text"].get<std::string>();
    else if (c.contains("delta") && c["delta"].is_object() && c["delta"].contains("content") &&
             c["delta"]["content"].is_string())
      piece = c["delta"]["content"].get<std::string>();
  }
  if (!piece.empty()) {
    auto now = Clock::now();
    if (ex.sr->chunks == 0) ex.sr->ttft_s = std::chrono::duration<double>(now - ex.start).count();
    else ex.sr->itl_s.push_back(std::chrono::duration<double>(now - ex.last_chunk).count());
    ex.last_chunk = now;
    ex.sr->chunks++;
    ex.sr->text += piece;
  }
  ex.sr->last = std::move(j);
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  size_t len = size * n;
  if (!ex->stream || ex->status != 200) {
    if (ex->body.size() + len > (size_t{256} << 20)) return 0;  // refuse absurd bodies
    ex->body.append(data, len);
    return len;
  }
  ex->pending.append(data, len);
  size_t pos;
  while ((pos = ex->pending.find('\n')) != std::string::npos) {
    std::string line = ex->pending.substr(0, pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    ex->pending.erase(0, pos + 1);
    if (!line.empty()) on_sse_line(*ex, line);
  }
  if (ex->pending.size() > (size_t{16} << 20)) return 0;
  return len;
}

std::string server_message(const std::string& body) {
  auto j = nlohmann::json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("error")) {
    const auto& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"].get<std::string>();
    if (e.is_string()) return e.get<std::string>();
  }
  return body.substr(0, 300);
}

}  // namespace

std::string normalize_base_url(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (url.size() < 3 || url.compare(url.size() - 3, 3, "/v1") != 0) url += "/v1";
  return url;
}

OpenAIClient::OpenAIClient(std::string base_url, ClientOptions options)
    : base_(normalize_base_url(std::move(base_url))), opt_(options), limit_(std::max(1, options.concurrency)) {
  curl_init_once();
}

OpenAIClient::~OpenAIClient() = default;

ClientStats OpenAIClient::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return stats_;
}

int OpenAIClient::current_limit() const {
  std::lock_guard<std::mutex> lk(mu_);
  return limit_;
}

void OpenAIClient::acquire() {
  std::unique_lock<std::mutex> lk(mu_);
  while (true) {
    auto now = Clock::now();
    if (now < paused_until_) {
      cv_.wait_until(lk, paused_until_);
      continue;
    }
    if (in_flight_ < limit_) break;
    cv_.wait(lk);
  }
  ++in_flight_;
  ++stats_.requests;
}

void OpenAIClient::release(bool throttled, double retry_after_s) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    --in_flight_;
    if (throttled) {
      ++stats_.throttled;
      limit_ = std::max(1, limit_ / 2);
      successes_ = 0;
      if (retry_after_s > 0) {
        auto until = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(
                                        std::min(retry_after_s, opt_.retry_after_max_s) * 1000));
        paused_until_ = std::max(paused_until_, until);
      }
    } else if (limit_ < opt_.concurrency && ++successes_ >= 4 * limit_) {
      ++limit_;  // additive increase after a run of successes
      successes_ = 0;
    }
  }
  cv_.notify_all();
}

template <typename Fn>
auto OpenAIClient::with_retries(const std::string& url, Fn&& fn) -> decltype(fn()) {
  thread_local std::mt19937_64 rng(std::hash<std::thread::id>{}(std::this_thread::get_id()));
  std::string last;
  for (int attempt = 0;; ++attempt) {
    acquire();
    try {
      auto r = fn();
      release(false, -1);
      return r;
    } catch (const Transient& t) {
      release(t.throttled, t.retry_after_s);
      last = t.why;
      if (attempt >= opt_.max_retries)
        fail<IoError>(url, "giving up after {} attempts: {}", attempt + 1, last);
      {
        std::lock_guard<std::mutex> lk(mu_);
        ++stats_.retries;
      }
      double wait = t.retry_after_s >= 0 ? std::min(t.retry_after_s, opt_.retry_after_max_s)
                                         : std::min(opt_.backoff_max_s, opt_.backoff_initial_s * std::pow(2.0, attempt));
      if (t.retry_after_s < 0) wait *= std::uniform_real_distribution<double>(0.5, 1.0)(rng);
      std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(wait * 1000)));
    } catch (...) {
      release(false, -1);
      throw;
    }
  }
}

namespace {

// Performs one exchange; throws Transient for retryable failures, IoError for final ones.
void perform(const std::string& url, const std::string* body, Exchange& ex, const ClientOptions& opt) {
  thread_local ThreadHandle th;
  CURL* h = th.get();
  if (!h) fail<IoError>(url, "curl_easy_init failed");
  struct curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Type: application/json");
  if (ex.stream) headers = curl_slist_append(headers, "Accept: text/event-stream");
  std::string auth;
  if (!opt.api_key.empty()) {
    auth = "Authorization: Bearer " + opt.api_key;
    headers = curl_slist_append(headers, auth.c_str());
  }
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(opt.timeout_ms));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opt.connect_timeout_ms));
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &ex);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &ex);
  if (body) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
  }
  // The status is known before the body arrives: record it from the header phase.
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, +[](char* d, size_t s, size_t n, void* u) -> size_t {
    auto* e = static_cast<Exchange*>(u);
    std::string_view line(d, s * n);
    if (line.rfind("HTTP/", 0) == 0) {
      auto sp = line.find(' ');
      if (sp != std::string_view::npos) e->status = std::strtol(std::string(line.substr(sp + 1, 3)).c_str(), nullptr, 10);
      e->retry_after_s = -1;
    }
    return on_header(d, s, n, u);
  });
  ex.start = Clock::now();
  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(headers);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  ex.status = status;
  if (rc != CURLE_OK) {
    if (ex.stream && ex.status == 200 && !ex.done)
      throw Transient{fmt::format("stream cut before [DONE] ({})", curl_easy_strerror(rc))};
    throw Transient{fmt::format("{}", curl_easy_strerror(rc))};
  }
  if (status == 429) throw Transient{"HTTP 429 (rate limited)", ex.retry_after_s, true};
  if (status == 408 || status >= 500)
    throw Transient{fmt::format("HTTP {}: {}", status, server_message(ex.body)), ex.retry_after_s, status == 503};
  if (status != 200) fail<IoError>(url, "HTTP {}: {}", status, server_message(ex.body));
}

}  // namespace

nlohmann::json OpenAIClient::post(const std::string& path, const nlohmann::json& body) {
  const std::string url = base_ + "/" + path;
  const std::string payload = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return with_retries(url, [&]() {
    Exchange ex;
    perform(url, &payload, ex, opt_);
    auto j = nlohmann::json::parse(ex.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw Transient{"malformed JSON in a 200 answer"};
    return j;
  });
}

nlohmann::json OpenAIClient::get(const std::string& path) {
  const std::string url = base_ + "/" + path;
  return with_retries(url, [&]() {
    Exchange ex;
    perform(url, nullptr, ex, opt_);
    auto j = nlohmann::json::parse(ex.body, nullptr, false);
    if (j.is_discarded()) throw Transient{"malformed JSON in a 200 answer"};
    return j;
  });
}

StreamResult OpenAIClient::post_stream(const std::string& path, const nlohmann::json& body) {
  const std::string url = base_ + "/" + path;
  nlohmann::json b = body;
  b["stream"] = true;
  const std::string payload = b.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return with_retries(url, [&]() {
    StreamResult sr;
    Exchange ex;
    ex.stream = true;
    ex.sr = &sr;
    perform(url, &payload, ex, opt_);
    if (!ex.pending.empty()) on_sse_line(ex, ex.pending);
    if (!ex.parse_error.empty()) throw Transient{ex.parse_error};
    if (!ex.done) throw Transient{"stream cut before [DONE]"};
    return sr;
  });
}

}  // namespace kaival::eval
