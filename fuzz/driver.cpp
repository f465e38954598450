// Deterministic mutation fuzzer driver for LLVMFuzzerTestOneInput targets.
// It runs every file of a seed corpus, then a bounded number of mutations
// (bit flips, byte sets to boundary values, inserted/deleted/duplicated
// ranges, splices of two seeds, integers overwritten with huge or negative
// values) from a fixed seed, so a CI run is reproducible. Built with
// ASan+UBSan, any memory error aborts the run. With KAIVAL_LIBFUZZER the same
// targets link clang's coverage-guided libFuzzer instead.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<uint8_t> read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void mutate(std::vector<uint8_t>& d, const std::vector<std::vector<uint8_t>>& seeds, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  int rounds = 1 + static_cast<int>(rng() % 4);
  for (int r = 0; r < rounds; ++r) {
    switch (rng() % 8) {
      case 0:  // flip a bit
        if (!d.empty()) d[pick(d.size())] ^= static_cast<uint8_t>(1u << (rng() % 8));
        break;
      case 1: {  // boundary byte
        static const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff, '"', '{', '[', ':', ','};
        if (!d.empty()) d[pick(d.size())] = vals[pick(sizeof vals)];
        break;
      }
      case 2: {  // overwrite 4 or 8 bytes with an interesting integer
        static const uint64_t vals[] = {0, 1, 0xffffffffull, 0x7fffffffull, 0xffffffffffffffffull,
                                        0x7fffffffffffffffull, 1ull << 32, 1ull << 40, 0x100, 31, 33};
        size_t w = (rng() & 1) ? 8 : 4;
        if (d.size() >= w) {
          uint64_t v = vals[pick(sizeof vals / sizeof vals[0])];
          std::memcpy(d.data() + pick(d.size() - w + 1), &v, w);
        }
        break;
      }
      case 3:  // truncate
        if (!d.empty()) d.resize(pick(d.size()));
        break;
      case 4: {  // delete a range
        if (d.size() > 1) {
          size_t a = pick(d.size()), n = 1 + pick(std::min<size_t>(64, d.size() - a));
          d.erase(d.begin() + a, d.begin() + a + std::min(n, d.size() - a));
        }
        break;
      }
      case 5: {  // duplicate a range
        if (!d.empty() && d.size() < (1u << 20)) {
          size_t a = pick(d.size()), n = 1 + pick(std::min<size_t>(64, d.size() - a));
          std::vector<uint8_t> chunk(d.begin() + a, d.begin() + a + std::min(n, d.size() - a));
          d.insert(d.begin() + pick(d.size() + 1), chunk.begin(), chunk.end());
        }
        break;
      }
      case 6: {  // splice with another seed
        const auto& o = seeds[pick(seeds.size())];
        if (!o.empty()) {
          size_t cut = pick(d.size() + 1), from = pick(o.size());
          d.resize(cut);
          d.insert(d.end(), o.begin() + from, o.end());
        }
        break;
      }
      default:  // random byte
        if (!d.empty()) d[pick(d.size())] = static_cast<uint8_t>(rng());
        break;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string corpus;
  long iterations = 10000;
  double max_seconds = 60;
  uint64_t seed = 12345;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--corpus") corpus = argv[i + 1];
    else if (a == "--iterations") iterations = std::stol(argv[i + 1]);
    else if (a == "--max-seconds") max_seconds = std::stod(argv[i + 1]);
    else if (a == "--seed") seed = std::stoull(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s --corpus DIR [--iterations N] [--max-seconds S] [--seed N]\n", argv[0]);
      return 2;
    }
  }
  std::vector<std::vector<uint8_t>> seeds;
  if (!corpus.empty() && std::filesystem::is_directory(corpus)) {
    std::vector<std::filesystem::path> files;
    for (auto& e : std::filesystem::directory_iterator(corpus))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (auto& p : files) seeds.push_back(read_file(p));
  }
  if (seeds.empty()) seeds.push_back({});
  for (auto& s : seeds) LLVMFuzzerTestOneInput(s.data(), s.size());
  std::mt19937_64 rng(seed);
  auto start = std::chrono::steady_clock::now();
  long done = 0;
  for (; done < iterations; ++done) {
    std::vector<uint8_t> d = seeds[rng() % seeds.size()];
    mutate(d, seeds, rng);
    LLVMFuzzerTestOneInput(d.data(), d.size());
    if ((done & 63) == 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > max_seconds)
      break;
  }
  std::printf("fuzz: %zu seeds, %ld mutated inputs, no crash\n", seeds.size(), done);
  return 0;
}
