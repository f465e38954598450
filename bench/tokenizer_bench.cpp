// Tokenizer encode throughput: kaival side of bench/tokenizer_bench.sh.
//   tokenizer_bench TOKENIZER(.json|folder|.gguf) CORPUS [--repeat N] [--threads T]
// Encodes every line of CORPUS (one encode call per line, with special tokens
// added as the tokenizer's post-processor says), single-threaded and then
// with T threads sharing the lines, and prints one JSON object per mode:
// {"impl":"kaival","mode":...,"seconds":...,"mb_per_s":...,"tokens":...}.
// The best of N repetitions is reported (the machine is shared and noisy).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> read_lines(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "tokenizer_bench: cannot read %s\n", path);
    std::exit(2);
  }
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(std::move(l));
  return lines;
}

// Encodes lines[i] for every i with (i / chunk) % threads == t, per thread t.
size_t encode_all(const kaival::tokenizer::Tokenizer& tok, const std::vector<std::string>& lines, int threads) {
  constexpr size_t kChunk = 1024;
  std::atomic<size_t> next{0}, tokens{0};
  auto work = [&] {
    size_t local = 0;
    for (size_t c; (c = next.fetch_add(kChunk)) < lines.size();)
      for (size_t i = c; i < std::min(lines.size(), c + kChunk); ++i) local += tok.encode(lines[i], true, true).size();
    tokens += local;
  };
  if (threads <= 1) {
    work();
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(work);
    for (auto& th : pool) th.join();
  }
  return tokens.load();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: tokenizer_bench TOKENIZER CORPUS [--repeat N] [--threads T]\n");
    return 2;
  }
  int repeat = 3, threads = 2;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--repeat") repeat = std::max(1, std::atoi(argv[i + 1]));
    if (std::string(argv[i]) == "--threads") threads = std::max(1, std::atoi(argv[i + 1]));
  }
  const auto tok = kaival::tokenizer::Tokenizer::open(argv[1]);
  const auto lines = read_lines(argv[2]);
  size_t bytes = 0;
  for (const auto& l : lines) bytes += l.size();
  for (int mode_threads : {1, threads}) {
    double best = 1e30;
    size_t tokens = 0;
    for (int r = 0; r < repeat; ++r) {
      const auto t0 = Clock::now();
      tokens = encode_all(*tok, lines, mode_threads);
      best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
    }
    std::printf("{\"impl\":\"kaival\",\"mode\":\"%s\",\"threads\":%d,\"lines\":%zu,\"bytes\":%zu,\"tokens\":%zu,"
                "\"seconds\":%.4f,\"mb_per_s\":%.3f}\n",
                mode_threads == 1 ? "single" : "batched", mode_threads, lines.size(), bytes, tokens, best,
                bytes / best / 1e6);
    std::fflush(stdout);
  }
  return 0;
}
