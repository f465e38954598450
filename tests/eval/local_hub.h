#pragma once
// A local stand-in for the Hugging Face Hub on 127.0.0.1, for the download
// tests: routes are added to `srv` before start().
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include <httplib.h>

#include "eval/task.h"

namespace kaival::eval::testing {

struct LocalHub {
  httplib::Server srv;
  std::thread th;
  int port = 0;
  void start() {
    port = srv.bind_to_any_port("127.0.0.1");
    th = std::thread([this] { srv.listen_after_bind(); });
    while (!srv.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  void stop() {
    if (!th.joinable()) return;
    srv.stop();
    th.join();
  }
  ~LocalHub() { stop(); }
  // Options that download from this server into `cache`.
  LoadOptions options(const std::filesystem::path& cache) const {
    LoadOptions lo;
    lo.cache_dir = cache.string();
    lo.hf_endpoint = "http://127.0.0.1:" + std::to_string(port);
    return lo;
  }
};

// A card's Hub file: repo, revision and path.
inline DataSource hub_file(const std::string& repo, const std::string& revision, const std::string& path) {
  DataSource src;
  src.hf_repo = repo;
  src.hf_revision = revision;
  src.hf_path = path;
  return src;
}

}  // namespace kaival::eval::testing
