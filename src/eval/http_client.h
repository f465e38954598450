#pragma once
// An OpenAI-compatible HTTP client on libcurl that is polite and stubborn:
// bounded concurrency shared by all threads with adaptive back-off (halves on
// 429, grows back slowly), honours Retry-After, retries 429/5xx/timeouts/
// malformed bodies/SSE streams cut before [DONE] within limits, and puts a
// timeout on every request. Thread-safe: call post() from many threads.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kaival::eval {

struct ClientOptions {
  int concurrency = 8;             // most requests in flight at once
  int timeout_ms = 300000;         // whole request, including a stream
  int connect_timeout_ms = 10000;
  int max_retries = 10;            // per request, after the first try
  double backoff_initial_s = 0.25;  // doubled per retry, with jitter
  double backoff_max_s = 30.0;
  double retry_after_max_s = 300.0;  // a larger Retry-After is capped here
  std::string api_key;             // sent as "Authorization: Bearer ..." when set
};

// One streamed answer with its timing, for `kaival perf`.
struct StreamResult {
  nlohmann::json last;         // the last JSON chunk (usage lives there when requested)
  std::string text;            // concatenated choices[0].text / delta.content
  int chunks = 0;              // content-carrying chunks (≈ output tokens)
  double ttft_s = 0;           // request start -> first content chunk
  double e2e_s = 0;            // request start -> [DONE]
  std::vector<double> itl_s;   // gaps between content chunks
};

struct ClientStats {
  int64_t requests = 0;   // HTTP attempts sent
  int64_t retries = 0;
  int64_t throttled = 0;  // 429 answers
};

class OpenAIClient {
 public:
  // base_url: "http://host:port" or ".../v1"; requests go to <base>/v1/<path>.
  OpenAIClient(std::string base_url, ClientOptions options = {});
  ~OpenAIClient();
  OpenAIClient(const OpenAIClient&) = delete;
  OpenAIClient& operator=(const OpenAIClient&) = delete;

  // POST JSON to e.g. "completions"; returns the parsed body of a 200 answer.
  // Throws IoError when retries are exhausted or the server rejects the
  // request (4xx other than 408/429), naming the URL and the server's message.
  nlohmann::json post(const std::string& path, const nlohmann::json& body);
  // Same with "stream": true; collects SSE chunks until [DONE].
  StreamResult post_stream(const std::string& path, const nlohmann::json& body);
  nlohmann::json get(const std::string& path);

  const std::string& base_url() const { return base_; }
  ClientStats stats() const;
  int current_limit() const;

 private:
  struct Attempt;
  void acquire();
  void release(bool throttled, double retry_after_s);
  template <typename Fn>
  auto with_retries(const std::string& url, Fn&& fn) -> decltype(fn());

  std::string base_;
  ClientOptions opt_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int limit_;      // adaptive concurrency limit, 1..opt_.concurrency
  int in_flight_ = 0;
  int successes_ = 0;
  std::chrono::steady_clock::time_point paused_until_{};
  ClientStats stats_;
};

// "http://h:p/v1/" -> "http://h:p/v1"; adds "/v1" when missing.
std::string normalize_base_url(std::string url);

}  // namespace kaival::eval
