#pragma once
// A deterministic OpenAI-compatible server for tests (cpp-httplib, 127.0.0.1,
// ephemeral port). Completions echo prompt log-probabilities computed from a
// hash of each token (tokens favoured by the test get a high log-probability);
// generations come from a table of (prompt substring -> answer). Faults are
// injected by request number: the first N requests get 429 (with
// Retry-After), then 500s, then hangs, then malformed JSON, then cut SSE
// streams; latency and "ignores echo" apply to every request.
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace kaival::eval::testing {

struct MockFaults {
  int latency_ms = 0;
  int rate_limit_first = 0;       // answered 429
  std::string retry_after = "0";  // Retry-After header value ("" to omit)
  int error500_first = 0;
  int hang_first = 0;             // sleep hang_ms before answering
  int hang_ms = 3000;
  int malformed_first = 0;        // 200 with a broken JSON body
  int cut_stream_first = 0;       // SSE stream closed before [DONE]
  bool no_logprobs = false;       // ignores echo/logprobs like some servers
  // Keep-alive connections make stop() wait for idle clients (httplib's keep-alive timeout), so
  // tests close each connection after one answer; benchmarks turn keep-alive on.
  bool keep_alive = false;
  // Streaming answers for serving benchmarks: exactly max_tokens chunks of one
  // token (" tok") each, and a final usage chunk when stream_options.include_usage.
  bool stream_max_tokens = false;
  int token_delay_ms = 0;  // sleep before every streamed chunk after the first
};

class MockServer {
 public:
  explicit MockServer(MockFaults faults = {});
  ~MockServer();
  MockServer(const MockServer&) = delete;
  MockServer& operator=(const MockServer&) = delete;

  int start();  // returns the port
  void stop();
  std::string url() const;  // http://127.0.0.1:<port>

  void set_faults(MockFaults f);
  void add_answer(std::string prompt_substring, std::string answer);
  void favour(std::string token_substring);  // log-prob -0.05 for tokens containing it

  int64_t posts() const { return posts_.load(); }        // every POST received
  int64_t completed() const { return completed_.load(); }  // POSTs answered 200 with a good body
  std::vector<std::string> served_prompts() const;

  // The mock's tokenization (also used by tests to compute expected values):
  // a token is optional leading spaces plus a run of non-space characters.
  static std::vector<std::pair<std::string, size_t>> tokenize(const std::string& text);  // (token, code-point offset)
  double token_logprob(const std::string& token) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<int64_t> posts_{0};
  std::atomic<int64_t> completed_{0};
};

}  // namespace kaival::eval::testing
