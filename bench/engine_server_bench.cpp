// Server under load: N concurrent streaming chat/completions clients against
// an in-process OpenAIServer on 127.0.0.1 (ephemeral port).
//   engine_server_bench MODEL [--streams 32] [--tokens 32] [--parallel 4]
// Prints throughput (generated tokens/s over the wall time), and TTFT and
// inter-token latency percentiles measured by the clients from SSE chunk
// arrival times.
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
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

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: engine_server_bench MODEL [--streams N] [--tokens N] [--parallel N]\n");
    return 2;
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  auto opt = [&](const char* name, int def) {
    for (size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == name) return std::stoi(args[i + 1]);
    return def;
  };
  const int streams = opt("--streams", 32), tokens = opt("--tokens", 32), parallel = opt("--parallel", 4);
  auto served = kaival::server::ServedModel::open(args[0]);
  kaival::server::ServerOptions o;
  o.max_running = parallel;
  o.max_waiting = streams;
  kaival::server::OpenAIServer srv(served, o);
  const int port = srv.start();

  std::mutex mu;
  std::vector<double> ttft, itl;
  int64_t generated = 0;
  int failed = 0;
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
      int64_t chunks = 0;
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
          ++chunks;
        }
        return true;
      };
      auto res = c.send(hreq);
      std::lock_guard lock(mu);
      if (!res || res->status != 200) {
        std::fprintf(stderr, "stream %d: %s\n", i, res ? std::to_string(res->status).c_str() : httplib::to_string(res.error()).c_str());
        ++failed;
        return;
      }
      ttft.push_back(my_ttft);
      itl.insert(itl.end(), my_itl.begin(), my_itl.end());
      generated += tokens;
    });
  for (auto& t : clients) t.join();
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  srv.stop();
  std::printf("%s\n",
              fmt::format("{{\"model\":\"{}\",\"streams\":{},\"tokens_per_stream\":{},\"parallel\":{},\"threads\":{},"
                          "\"failed\":{},\"wall_s\":{:.2f},\"throughput_tps\":{:.1f},\"ttft_p50_ms\":{:.1f},"
                          "\"ttft_p90_ms\":{:.1f},\"ttft_p99_ms\":{:.1f},\"itl_p50_ms\":{:.2f},\"itl_p90_ms\":{:.2f},"
                          "\"itl_p99_ms\":{:.2f}}}",
                          args[0], streams, tokens, parallel, served->model.threads(), failed, wall,
                          static_cast<double>(generated) / wall, pct(ttft, 0.5) * 1e3, pct(ttft, 0.9) * 1e3,
                          pct(ttft, 0.99) * 1e3, pct(itl, 0.5) * 1e3, pct(itl, 0.9) * 1e3, pct(itl, 0.99) * 1e3)
                  .c_str());
  return failed ? 1 : 0;
}
