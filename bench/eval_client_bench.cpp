// Client overhead of kaival's HTTP clients (issue 6): requests/s of
//   raw:     a minimal libcurl loop (one easy handle per thread, body read into
//            a string, nothing parsed);
//   eval:    OpenAIClient::post / post_stream (what `kaival eval` uses: JSON
//            parsing, the shared adaptive concurrency limit, retry bookkeeping);
//   perf:    the `kaival perf` measuring client (run_perf, closed loop),
// against the test mock server with zero latency on 127.0.0.1 (keep-alive),
// at the same concurrency and request count, printing kaival / raw.
// The server shares the machine's cores, so the ratio, not the absolute
// rate, is the result.
//
// Usage: eval_client_bench [--requests 2000] [--concurrency 4] [--tokens 16] [--rounds 3]
// Build standalone with bench/eval_client_bench.sh (optimized, no sanitizer).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <curl/curl.h>

#include "eval/http_client.h"
#include "eval/perf.h"
#include "../tests/eval/mock_server.cpp"  // the test double, compiled in (not part of libkaival)

namespace {

using Clock = std::chrono::steady_clock;
using kaival::eval::testing::MockFaults;
using kaival::eval::testing::MockServer;

size_t sink(char* d, size_t s, size_t n, void* u) {
  static_cast<std::string*>(u)->append(d, s * n);
  return s * n;
}

// Runs `requests` calls of fn(thread) on `threads` threads; returns requests/s.
template <typename Fn>
double timed(int requests, int threads, Fn&& fn) {
  std::atomic<int> next{0};
  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      while (next.fetch_add(1) < requests) fn();
    });
  for (auto& th : pool) th.join();
  return requests / std::chrono::duration<double>(Clock::now() - t0).count();
}

double raw_curl(const std::string& url, const std::string& body, int requests, int threads) {
  return timed(requests, threads, [&] {
    thread_local CURL* h = curl_easy_init();
    thread_local curl_slist* hdr = curl_slist_append(nullptr, "Content-Type: application/json");
    std::string out;
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
    if (curl_easy_perform(h) != CURLE_OK || out.empty()) std::abort();
  });
}

}  // namespace

int main(int argc, char** argv) {
  int requests = 2000, concurrency = 4, tokens = 16, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (a == "--requests") requests = v;
    else if (a == "--concurrency") concurrency = v;
    else if (a == "--tokens") tokens = v;
    else if (a == "--rounds") rounds = v;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  MockFaults f;
  f.keep_alive = true;
  f.stream_max_tokens = true;
  MockServer mock(f);
  mock.start();
  const std::string base = mock.url() + "/v1/completions";
  const nlohmann::json req = {{"model", "mock-model"}, {"prompt", "the of and to in is"}, {"max_tokens", tokens}};
  nlohmann::json sreq = req;
  sreq["stream"] = true;
  sreq["stream_options"] = {{"include_usage", true}};
  const std::string body = req.dump(), sbody = sreq.dump();

  kaival::eval::ClientOptions co;
  co.concurrency = concurrency;
  kaival::eval::OpenAIClient client(mock.url(), co);
  kaival::eval::PerfOptions po;
  po.model_url = mock.url();
  po.served_model = "mock-model";
  po.num_prompts = requests;
  po.input_len = 6;
  po.output_len = tokens;
  po.sweep = {concurrency};

  std::printf("requests %d, concurrency %d, %d tokens per streamed answer, mock server on 127.0.0.1\n", requests,
              concurrency, tokens);
  std::printf("%-6s %12s %12s %12s %12s %12s %10s %10s %10s\n", "round", "raw req/s", "eval req/s", "raw sse/s",
              "eval sse/s", "perf sse/s", "eval/raw", "sse/raw", "perf/raw");
  for (int r = 1; r <= rounds; ++r) {
    double raw = raw_curl(base, body, requests, concurrency);
    double eval = timed(requests, concurrency, [&] { client.post("completions", req); });
    double raw_s = raw_curl(base, sbody, requests, concurrency);
    double eval_s = timed(requests, concurrency, [&] { client.post_stream("completions", req); });
    auto rep = kaival::eval::run_perf(po);
    if (rep.runs[0].failed) std::fprintf(stderr, "perf: %zu failed\n", rep.runs[0].failed);
    double perf = rep.runs[0].request_throughput;
    std::printf("%-6d %12.0f %12.0f %12.0f %12.0f %12.0f %10.2f %10.2f %10.2f\n", r, raw, eval, raw_s, eval_s, perf,
                eval / raw, eval_s / raw_s, perf / raw_s);
  }
  mock.stop();
  return 0;
}
