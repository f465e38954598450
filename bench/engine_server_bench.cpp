// Server under load: N concurrent streaming chat/completions clients against
// an in-process OpenAIServer on 127.0.0.1 (ephemeral port).
//   engine_server_bench MODEL [--streams 32] [--tokens 32] [--parallel 32] [--batch 32]
// Runs the load twice in the same process: without continuous batching
// (--batch 1, requests take turns on the worker pool) as the baseline, then
// with batches of up to --batch sequences. Prints, per run, throughput
// (generated tokens/s over the wall time) and TTFT and inter-token latency
// percentiles measured by the clients from SSE chunk arrival times, then the
// batched/baseline throughput ratio.
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "server/openai_server.h"

namespace {

using Clock = std::chrono::steady_clock;

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5)];
}

struct LoadResult {
  int failed = 0;
  double wall = 0, tps = 0;
  std::vector<double> ttft, itl;
};

LoadResult run_load(const std::shared_ptr<const kaival::server::ServedModel>& served, int streams, int tokens,
                    int parallel, int batch) {
  kaival::server::ServerOptions o;
  o.max_running = parallel;
  o.max_waiting = streams;
  o.max_batch = batch;
  kaival::server::OpenAIServer srv(served, o);
  const int port = srv.start();

  std::mutex mu;
  LoadResult out;
  int64_t generated = 0;
  const auto t0 = Clock::now();
  std::vector<std::thread> clients;
  for (int i = 0; i < streams; ++i)
    clients.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", port);
      c.set_read_timeout(600);
      const nlohmann::json req = {{"prompt", fmt::format("Request {}: Alice went to the", i)},
                                  {"max_tokens", tokens}, {"temperature", 0.8}, {"seed", i},
                                  {"ignore_eos", true}, {"stream", true}};
      const auto start = Clock::now();
      auto last = start;
      std::vector<double> my_itl;
      double my_ttft = -1;
      std::string buf;
      httplib::Request hreq;
      hreq.method = "POST";
      hreq.path = "/v1/completions";
      hreq.body = req.dump();
      hreq.set_header("Content-Type", "application/json");
      hreq.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
        buf.append(data, n);
        size_t at;
        while ((at = buf.find("\n\n")) != std::string::npos) {
          const std::string ev = buf.substr(0, at);
          buf.erase(0, at + 2);
          if (ev.find("\"text\":\"\"") != std::string::npos || ev == "data: [DONE]") continue;
          const auto now = Clock::now();
          if (my_ttft < 0) my_ttft = std::chrono::duration<double>(now - start).count();
          else my_itl.push_back(std::chrono::duration<double>(now - last).count());
          last = now;
        }
        return true;
      };
      auto res = c.send(hreq);
      std::lock_guard lock(mu);
      if (!res || res->status != 200) {
        std::fprintf(stderr, "stream %d: %s\n", i, res ? std::to_string(res->status).c_str() : httplib::to_string(res.error()).c_str());
        ++out.failed;
        return;
      }
      out.ttft.push_back(my_ttft);
      out.itl.insert(out.itl.end(), my_itl.begin(), my_itl.end());
      generated += tokens;
    });
  for (auto& t : clients) t.join();
  out.wall = std::chrono::duration<double>(Clock::now() - t0).count();
  out.tps = static_cast<double>(generated) / out.wall;
  srv.stop();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: engine_server_bench MODEL [--streams N] [--tokens N] [--parallel N] [--batch N]\n");
    return 2;
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  auto opt = [&](const char* name, int def) {
    for (size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == name) return std::stoi(args[i + 1]);
    return def;
  };
  const int streams = opt("--streams", 32), tokens = opt("--tokens", 32), parallel = opt("--parallel", 32),
            batch = opt("--batch", 32);
  auto served = kaival::server::ServedModel::open(args[0]);
  int failed = 0;
  double base_tps = 0;
  for (const int b : {1, batch}) {
    const auto r = run_load(served, streams, tokens, parallel, b);
    failed += r.failed;
    if (b == 1) base_tps = r.tps;
    std::printf("%s\n",
                fmt::format("{{\"model\":\"{}\",\"streams\":{},\"tokens_per_stream\":{},\"parallel\":{},\"batch\":{},"
                            "\"threads\":{},\"failed\":{},\"wall_s\":{:.2f},\"throughput_tps\":{:.1f},"
                            "\"ttft_p50_ms\":{:.1f},\"ttft_p90_ms\":{:.1f},\"ttft_p99_ms\":{:.1f},\"itl_p50_ms\":{:.2f},"
                            "\"itl_p90_ms\":{:.2f},\"itl_p99_ms\":{:.2f},\"throughput_vs_unbatched\":{:.2f}}}",
                            args[0], streams, tokens, parallel, b, served->model.threads(), r.failed, r.wall, r.tps,
                            pct(r.ttft, 0.5) * 1e3, pct(r.ttft, 0.9) * 1e3, pct(r.ttft, 0.99) * 1e3,
                            pct(r.itl, 0.5) * 1e3, pct(r.itl, 0.9) * 1e3, pct(r.itl, 0.99) * 1e3,
                            base_tps > 0 ? r.tps / base_tps : 0.0)
                    .c_str());
    std::fflush(stdout);
    if (batch <= 1) break;
  }
  return failed ? 1 : 0;
}
