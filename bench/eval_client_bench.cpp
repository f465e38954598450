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
// Usage: eval_client_bench [--requests 2000] [--concurrency 4] [--tokens 16] [--rounds 3] [--rate R]
// --rate R paces every client at R requests/s (offered load; 0: as fast as possible).
// Build standalone with bench/eval_client_bench.sh (optimized, no sanitizer).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
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

struct Rate {
  double rps = 0;           // requests per second, wall clock
  double cpu_us = 0;        // client CPU per request (the calling threads' CPU time), microseconds
};

double thread_cpu_s() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// Runs `requests` calls of fn() on `threads` threads; with rate > 0 request i is not sent before
// t0 + i / rate (an offered load: a client that keeps up achieves `rate`).
template <typename Fn>
Rate timed(int requests, int threads, double rate, Fn&& fn) {
  std::atomic<int> next{0};
  std::atomic<int64_t> cpu_ns{0};
  auto t0 = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      double c0 = thread_cpu_s();
      int i;
      while ((i = next.fetch_add(1)) < requests) {
        if (rate > 0) std::this_thread::sleep_until(t0 + std::chrono::duration_cast<Clock::duration>(
                                                              std::chrono::duration<double>(i / rate)));
        fn();
      }
      cpu_ns.fetch_add(static_cast<int64_t>((thread_cpu_s() - c0) * 1e9));
    });
  for (auto& th : pool) th.join();
  Rate r;
  r.rps = requests / std::chrono::duration<double>(Clock::now() - t0).count();
  r.cpu_us = double(cpu_ns.load()) / 1e3 / requests;
  return r;
}

Rate raw_curl(const std::string& url, const std::string& body, int requests, int threads, double rate) {
  return timed(requests, threads, rate, [&] {
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
  double rate = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (a == "--requests") requests = v;
    else if (a == "--concurrency") concurrency = v;
    else if (a == "--tokens") tokens = v;
    else if (a == "--rounds") rounds = v;
    else if (a == "--rate") rate = std::atof(argv[i + 1]);
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

  std::printf("requests %d, concurrency %d, %d tokens per streamed answer, offered rate %s, mock on 127.0.0.1\n",
              requests, concurrency, tokens, rate > 0 ? std::to_string(rate).c_str() : "unpaced");
  std::printf("%-6s %10s %10s %10s %10s %10s %9s %9s %9s | client CPU us/req: %7s %7s %7s %7s\n", "round", "raw/s",
              "eval/s", "rawSSE/s", "evalSSE/s", "perfSSE/s", "eval/raw", "sse/raw", "perf/raw", "raw", "eval", "rawSSE",
              "evalSSE");
  std::vector<double> r_eval, r_sse, r_perf;
  for (int r = 1; r <= rounds; ++r) {
    Rate raw = raw_curl(base, body, requests, concurrency, rate);
    Rate eval = timed(requests, concurrency, rate, [&] { client.post("completions", req); });
    Rate raw_s = raw_curl(base, sbody, requests, concurrency, rate);
    Rate eval_s = timed(requests, concurrency, rate, [&] { client.post_stream("completions", req); });
    double perf = 0;
    if (rate <= 0) {  // run_perf paces itself; compared unpaced only
      auto rep = kaival::eval::run_perf(po);
      if (rep.runs[0].failed) std::fprintf(stderr, "perf: %zu failed\n", rep.runs[0].failed);
      perf = rep.runs[0].request_throughput;
    }
    r_eval.push_back(eval.rps / raw.rps);
    r_sse.push_back(eval_s.rps / raw_s.rps);
    r_perf.push_back(perf / raw_s.rps);
    std::printf("%-6d %10.0f %10.0f %10.0f %10.0f %10.0f %9.3f %9.3f %9.3f | %26.0f %7.0f %7.0f %7.0f\n", r, raw.rps,
                eval.rps, raw_s.rps, eval_s.rps, perf, eval.rps / raw.rps, eval_s.rps / raw_s.rps, perf / raw_s.rps,
                raw.cpu_us, eval.cpu_us, raw_s.cpu_us, eval_s.cpu_us);
    std::fflush(stdout);
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : (v[(v.size() - 1) / 2] + v[v.size() / 2]) / 2;
  };
  std::printf("median ratios: eval/raw %.3f, sse eval/raw %.3f, perf/raw %.3f\n", median(r_eval), median(r_sse),
              median(r_perf));
  mock.stop();
  return 0;
}
