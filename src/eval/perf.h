#pragma once
// `kaival perf`: a serving benchmark against any OpenAI-compatible server, in
// the manner of vLLM's benchmark_serving. Every request streams (SSE) and is
// timed on the client with a steady clock: TTFT (start -> first chunk carrying
// text), ITL (gap between consecutive text chunks), TPOT ((e2e - ttft) /
// (output_tokens - 1)) and end-to-end latency. Output tokens come from the
// final `usage` chunk when the server sends one (`stream_options.include_usage`),
// else from the number of text chunks.
//
// Load: Poisson arrivals at `rate` req/s (exponential gaps, fixed seed; rate
// inf sends everything at once) capped by `max_concurrency` in-flight requests,
// or a sweep of closed loops (one run per concurrency level). Requests are
// never retried: a failed or cut request is counted with its reason.
//
// The measuring client is a lean libcurl stream per worker thread (one thread
// per in-flight request) rather than OpenAIClient::post_stream, whose retries
// and adaptive back-off on 429 would change the load being measured.
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kaival::eval {

struct PerfPrompt {
  std::string text;
  int64_t input_tokens_hint = 0;  // used when the server reports no usage
};

struct PerfSlo {  // 0: no objective on that metric
  double ttft_ms = 0;
  double tpot_ms = 0;
  double e2e_ms = 0;
  bool any() const { return ttft_ms > 0 || tpot_ms > 0 || e2e_ms > 0; }
};

struct PerfPrice {  // 0: not given
  double per_hour = 0;      // USD per hour of the serving machine
  double per_1m_input = 0;  // API pricing, USD per 1M tokens
  double per_1m_output = 0;
};

struct PerfOptions {
  std::string model_url;     // http://host:port (with or without /v1)
  std::string served_model;  // the request's "model"; empty: first of GET /v1/models
  std::string api_key;       // Authorization: Bearer, when set
  bool chat = false;         // /v1/chat/completions instead of /v1/completions
  int num_prompts = 0;       // requests per run; 0: all file prompts, else 100
  double rate = std::numeric_limits<double>::infinity();  // req/s
  int max_concurrency = 0;   // 0: min(num_prompts, 256)
  std::vector<int> sweep;    // closed-loop concurrency levels; replaces rate/max_concurrency
  double duration_s = 0;     // no new request after this long (per run); 0: no cap
  uint64_t seed = 0;
  int input_len = 128;       // synthetic prompt length in words (≈ tokens)
  int output_len = 128;      // max_tokens of every request
  bool ignore_eos = true;    // sent as "ignore_eos" so every answer has output_len tokens
  std::string prompts_file;  // JSONL with a "prompt" field; empty: synthetic prompts
  double timeout_s = 300;    // per request, including the stream
  PerfSlo slo;
  PerfPrice price;
  bool progress = false;     // progress lines on stderr
};

// One request as the client saw it. Times in seconds.
struct RequestRecord {
  bool ok = false;
  std::string error;          // failure reason when !ok
  double start_s = 0;         // send time, from the start of the run
  double ttft_s = 0;
  double e2e_s = 0;
  double tpot_s = 0;          // 0 when output_tokens < 2
  std::vector<double> itl_s;  // gaps between text chunks
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  bool usage_reported = false;  // token counts came from the server's usage
};

struct LatencyStats {  // milliseconds
  size_t n = 0;
  double mean = 0, median = 0, p90 = 0, p99 = 0;
};

struct PerfCost {
  double usd_per_1m_output_tokens = 0;  // from price per hour at the measured throughput
  double usd_per_1m_total_tokens = 0;
  double api_run_usd = 0;               // from API prices: what this run's tokens cost
  double api_usd_per_1m_total_tokens = 0;
};

struct PerfRun {
  int concurrency = 0;  // in-flight cap of this run
  double rate = std::numeric_limits<double>::infinity();
  size_t sent = 0, completed = 0, failed = 0;
  std::map<std::string, size_t> failures;  // reason -> count
  double duration_s = 0;  // first send -> last answer
  int64_t input_tokens = 0, output_tokens = 0;  // of completed requests
  size_t usage_reported = 0;
  double request_throughput = 0, output_throughput = 0, total_token_throughput = 0;
  std::optional<double> goodput;  // req/s meeting every SLO; only with an SLO
  size_t good_requests = 0;
  LatencyStats ttft, tpot, itl, e2e;
  std::optional<PerfCost> cost;
  std::vector<RequestRecord> requests;  // in send order
};

struct PerfReport {
  PerfOptions options;
  std::string model;     // the served model name used
  std::string endpoint;  // "completions" or "chat/completions"
  std::string created;   // UTC ISO 8601
  std::vector<PerfRun> runs;
};

// Send times (seconds from the start) of n requests: the first at 0, then
// exponential gaps of mean 1/rate from a seeded generator (portable: the same
// seed gives the same times everywhere). rate inf or <= 0 -> all zero.
std::vector<double> poisson_arrivals(size_t n, double rate, uint64_t seed);

// n prompts of `words` random common English words each (seeded).
std::vector<PerfPrompt> synthetic_prompts(size_t n, int words, uint64_t seed);
// Prompts from a JSONL file (one object per line with a string "prompt";
// blank lines skipped). Throws FormatError naming the line, IoError if unreadable.
std::vector<PerfPrompt> load_prompts_jsonl(const std::string& path);

// Percentiles by linear interpolation between closest ranks (numpy's default).
LatencyStats latency_stats_ms(std::vector<double> seconds);

// Aggregates records measured over `duration_s` into a run (pure; no I/O).
PerfRun summarize_run(std::vector<RequestRecord> records, double duration_s, int concurrency, double rate,
                      const PerfSlo& slo, const PerfPrice& price);

// Runs the whole benchmark (one run, or one per sweep level). Throws IoError
// if the server cannot be reached for GET /v1/models and no model is named.
PerfReport run_perf(const PerfOptions& options);

nlohmann::ordered_json perf_json(const PerfReport& report);  // schema kaival.perf/1 (docs/eval.md)
std::string perf_table(const PerfReport& report);            // terminal summary
std::string perf_html(const PerfReport& report);             // self-contained page with inline SVG charts

}  // namespace kaival::eval
