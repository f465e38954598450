// Lineage analysis speed and memory (issue 4, "Speed and memory").
//
// Generates two 1B-parameter-shaped BF16 safetensors models (Llama-3.2-1B
// shape by default: hidden 2048, 16 layers, 32 heads / 8 KV heads, FFN 8192,
// vocabulary 128256, tied embeddings). B is derived from A: MLP units and KV
// head groups permuted in every layer, plus Gaussian noise of --noise times
// each tensor's scale. Then, in the same run:
//   read:     plain sequential read() of both files into a 4 MiB buffer, one
//             thread (the baseline);
//   lineage:  the full `kaival lineage A B --no-hash` analysis in-process
//             (prepare both models, analyse the pair, build the JSON report)
//             in a forked child, so its wall time and peak RSS (ru_maxrss)
//             are its own.
// Both are measured warm by default: the files are read once before timing and
// the two measurements alternate for --rounds rounds; the best round of each is
// kept. With --cold, both files are evicted from the page cache
// (posix_fadvise DONTNEED, no root needed) before each timed read and each
// analysis, so both measure reading from storage, as with real 7B-70B models
// that do not fit in memory.
// Input hashing (SHA-256, on by default in the CLI) is timed separately.
//
// Usage: lineage_bench [--dir /tmp/kaival_lineage_bench] [--rounds 2] [--keep] [--reuse] [--cold]
//                      [--hidden 2048] [--layers 16] [--ffn 8192] [--heads 32] [--kv-heads 8]
//                      [--vocab 128256] [--noise 0.2]
#include <fcntl.h>
#include <cblas.h>
#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "core/hash.h"
#include "lineage/analysis.h"
#include "lineage/report.h"
#include "weights/safetensors_writer.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Options {
  std::string dir = (fs::temp_directory_path() / "kaival_lineage_bench").string();
  int rounds = 2;
  bool keep = false, reuse = false, cold = false;
  int64_t hidden = 2048, layers = 16, ffn = 8192, heads = 32, kv_heads = 8, vocab = 128256;
  double noise = 0.2;
};

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// Deterministic fast normal-ish values: sum of four uniforms, centred and scaled.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
  float normal() {
    uint64_t x = next();
    float a = static_cast<float>(x & 0xffff) + static_cast<float>((x >> 16) & 0xffff) +
              static_cast<float>((x >> 32) & 0xffff) + static_cast<float>(x >> 48);
    return (a / 65536.0f - 2.0f) * 1.7320508f;  // variance of 4 uniforms is 1/3
  }
};

struct Spec {
  std::string name;
  std::vector<int64_t> shape;
  int layer = -1;
  std::string kind;  // embed, norm, q, k, v, o, gate, up, down
};

std::vector<Spec> specs(const Options& o) {
  std::vector<Spec> out;
  const int64_t h = o.hidden, hd = o.hidden / o.heads, kv = hd * o.kv_heads;
  out.push_back({"model.embed_tokens.weight", {o.vocab, h}, -1, "embed"});
  for (int l = 0; l < o.layers; ++l) {
    auto n = [&](const char* s) { return fmt::format("model.layers.{}.{}.weight", l, s); };
    out.push_back({n("input_layernorm"), {h}, l, "norm"});
    out.push_back({n("self_attn.q_proj"), {h, h}, l, "q"});
    out.push_back({n("self_attn.k_proj"), {kv, h}, l, "k"});
    out.push_back({n("self_attn.v_proj"), {kv, h}, l, "v"});
    out.push_back({n("self_attn.o_proj"), {h, h}, l, "o"});
    out.push_back({n("post_attention_layernorm"), {h}, l, "norm"});
    out.push_back({n("mlp.gate_proj"), {o.ffn, h}, l, "gate"});
    out.push_back({n("mlp.up_proj"), {o.ffn, h}, l, "up"});
    out.push_back({n("mlp.down_proj"), {h, o.ffn}, l, "down"});
  }
  out.push_back({"model.norm.weight", {h}, -1, "norm"});
  return out;
}

// Model A's tensor i: Gaussian with a per-residual-coordinate scale (trained
// weights have coordinates of unequal weight), norms near 1.
void tensor_a(const Options& o, const std::vector<Spec>& sp, size_t i, std::vector<float>& v) {
  const Spec& s = sp[i];
  int64_t n = 1;
  for (auto d : s.shape) n *= d;
  v.resize(static_cast<size_t>(n));
  Rng rng(1000 + i);
  std::vector<float> colscale(static_cast<size_t>(o.hidden));
  Rng cs(7);
  for (auto& c : colscale) c = 0.7f + 0.6f * static_cast<float>(cs.next() % 1000) / 1000.0f;
  if (s.kind == "norm") {
    for (auto& x : v) x = 1.0f + 0.05f * rng.normal();
    return;
  }
  const int64_t cols = s.shape[1];
  const bool residual_cols = s.kind != "o" && s.kind != "down";
  for (int64_t r = 0; r < s.shape[0]; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      float sc = residual_cols ? colscale[static_cast<size_t>(c)] : colscale[static_cast<size_t>(r)];
      v[static_cast<size_t>(r * cols + c)] = 0.02f * sc * rng.normal();
    }
}

// The permutations B applies in layer l: MLP units, and KV groups (with their
// query heads).
struct LayerPerm {
  std::vector<int64_t> units, qrows, kvrows;
};
LayerPerm layer_perm(const Options& o, int l) {
  LayerPerm p;
  Rng rng(50000 + l);
  p.units.resize(static_cast<size_t>(o.ffn));
  std::iota(p.units.begin(), p.units.end(), 0);
  for (int64_t i = o.ffn - 1; i > 0; --i) std::swap(p.units[i], p.units[rng.next() % (i + 1)]);
  std::vector<int64_t> groups(static_cast<size_t>(o.kv_heads));
  std::iota(groups.begin(), groups.end(), 0);
  for (int64_t i = o.kv_heads - 1; i > 0; --i) std::swap(groups[i], groups[rng.next() % (i + 1)]);
  const int64_t hd = o.hidden / o.heads, per = o.heads / o.kv_heads;
  for (int64_t g : groups) {
    for (int64_t h = g * per; h < (g + 1) * per; ++h)
      for (int64_t i = 0; i < hd; ++i) p.qrows.push_back(h * hd + i);
    for (int64_t i = 0; i < hd; ++i) p.kvrows.push_back(g * hd + i);
  }
  return p;
}

void tensor_b(const Options& o, const std::vector<Spec>& sp, size_t i, std::vector<float>& v) {
  std::vector<float> a;
  tensor_a(o, sp, i, a);
  const Spec& s = sp[i];
  v = a;
  if (s.shape.size() == 2 && s.layer >= 0) {
    LayerPerm p = layer_perm(o, s.layer);
    const int64_t cols = s.shape[1];
    auto rows_from = [&](const std::vector<int64_t>& rp) {
      for (int64_t r = 0; r < static_cast<int64_t>(rp.size()); ++r)
        std::memcpy(&v[static_cast<size_t>(r * cols)], &a[static_cast<size_t>(rp[r] * cols)], sizeof(float) * cols);
    };
    auto cols_from = [&](const std::vector<int64_t>& cp) {
      for (int64_t r = 0; r < s.shape[0]; ++r)
        for (int64_t c = 0; c < cols; ++c) v[static_cast<size_t>(r * cols + c)] = a[static_cast<size_t>(r * cols + cp[c])];
    };
    if (s.kind == "gate" || s.kind == "up") rows_from(p.units);
    if (s.kind == "down") cols_from(p.units);
    if (s.kind == "q") rows_from(p.qrows);
    if (s.kind == "k" || s.kind == "v") rows_from(p.kvrows);
    if (s.kind == "o") cols_from(p.qrows);
  }
  if (s.kind != "norm") {
    Rng rng(90000 + i);
    for (auto& x : v) x += static_cast<float>(o.noise) * 0.02f * rng.normal();
  }
}

void write_model(const Options& o, const fs::path& dir, bool derived) {
  fs::create_directories(dir);
  json cfg = {{"architectures", {"LlamaForCausalLM"}},
              {"model_type", "llama"},
              {"hidden_size", o.hidden},
              {"intermediate_size", o.ffn},
              {"num_hidden_layers", o.layers},
              {"num_attention_heads", o.heads},
              {"num_key_value_heads", o.kv_heads},
              {"vocab_size", o.vocab},
              {"max_position_embeddings", 8192},
              {"rms_norm_eps", 1e-5},
              {"rope_theta", 500000.0},
              {"tie_word_embeddings", true},
              {"torch_dtype", "bfloat16"}};
  std::ofstream(dir / "config.json") << cfg.dump(1);
  auto sp = specs(o);
  std::vector<kaival::weights::TensorToWrite> out;
  for (const auto& s : sp) out.push_back({s.name, "BF16", s.shape, {}});
  kaival::weights::write_safetensors_streaming((dir / "model.safetensors").string(), out,
                                               [&](size_t i, std::vector<float>& v) {
                                                 if (derived)
                                                   tensor_b(o, sp, i, v);
                                                 else
                                                   tensor_a(o, sp, i, v);
                                               });
}

void evict(const std::vector<std::string>& files) {
  for (const auto& f : files) kaival::bench::evict_page_cache(f);
}

double plain_read(const std::vector<std::string>& files) {
  std::vector<char> buf(4u << 20);
  double t0 = now();
  for (const auto& f : files) {
    int fd = ::open(f.c_str(), O_RDONLY);
    if (fd < 0) throw std::runtime_error("cannot open " + f);
    while (::read(fd, buf.data(), buf.size()) > 0) {
    }
    ::close(fd);
  }
  return now() - t0;
}

double cpu_self() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

struct ChildResult {
  double cpu_seconds = 0;
  double seconds = 0;
  long max_rss_kb = 0;
  std::string verdict;
};

ChildResult run_lineage(const std::string& a, const std::string& b) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe");
  pid_t pid = fork();
  if (pid == 0) {
    ::close(fds[0]);
    mallopt(M_MMAP_THRESHOLD, 256 << 20);  // as `kaival lineage` does
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    openblas_set_num_threads(1);
    double t0 = now();
    kaival::lineage::Options opt;
    std::vector<kaival::lineage::Prepared> models;
    models.push_back(kaival::lineage::prepare(a, opt));
    models.push_back(kaival::lineage::prepare(b, opt));
    auto result = kaival::lineage::analyze_all(models, {}, opt);
    std::vector<kaival::lineage::InputInfo> inputs;
    for (const auto& m : models) inputs.push_back(kaival::lineage::describe_input(m, false));
    json rep = kaival::lineage::report_json(result, inputs, {}, opt);
    std::string text = rep.dump();
    double dt = now() - t0;
    std::string msg = fmt::format("{} {}", dt, result.pairs[0].verdict);
    if (::write(fds[1], msg.data(), msg.size()) < 0) _exit(2);
    _exit(0);
  }
  ::close(fds[1]);
  char buf[256] = {0};
  ssize_t n = ::read(fds[0], buf, sizeof buf - 1);
  ::close(fds[0]);
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  ChildResult r;
  if (n <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("lineage child failed");
  char verdict[64] = {0};
  std::sscanf(buf, "%lf %63s", &r.seconds, verdict);
  r.verdict = verdict;
  r.max_rss_kb = ru.ru_maxrss;
  r.cpu_seconds = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return std::string(i + 1 < argc ? argv[++i] : ""); };
    if (a == "--dir") o.dir = next();
    else if (a == "--rounds") o.rounds = std::stoi(next());
    else if (a == "--keep") o.keep = true;
    else if (a == "--reuse") o.reuse = o.keep = true;
    else if (a == "--cold") o.cold = true;
    else if (a == "--hidden") o.hidden = std::stoll(next());
    else if (a == "--layers") o.layers = std::stoll(next());
    else if (a == "--ffn") o.ffn = std::stoll(next());
    else if (a == "--heads") o.heads = std::stoll(next());
    else if (a == "--kv-heads") o.kv_heads = std::stoll(next());
    else if (a == "--vocab") o.vocab = std::stoll(next());
    else if (a == "--noise") o.noise = std::stod(next());
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  fs::path da = fs::path(o.dir) / "a", db = fs::path(o.dir) / "b";
  for (auto [dir, derived] : {std::pair{da, false}, std::pair{db, true}}) {
    if (o.reuse && fs::exists(dir / "model.safetensors")) continue;
    double t0 = now();
    std::fprintf(stderr, "generating %s ...\n", dir.c_str());
    write_model(o, dir, derived);
    std::fprintf(stderr, "  %.1f s\n", now() - t0);
  }
  std::vector<std::string> files = {(da / "model.safetensors").string(), (db / "model.safetensors").string()};
  uint64_t bytes = fs::file_size(files[0]) + fs::file_size(files[1]);
  if (!o.cold) plain_read(files);  // warm the page cache

  double best_read = 1e30, best_lineage = 1e30, read_cpu = 1e30, lineage_cpu = 1e30;
  long rss = 0;
  std::string verdict;
  for (int r = 0; r < o.rounds; ++r) {
    if (o.cold) evict(files);
    double c0 = cpu_self();
    double t = plain_read(files);
    read_cpu = std::min(read_cpu, cpu_self() - c0);
    best_read = std::min(best_read, t);
    if (o.cold) evict(files);
    ChildResult c = run_lineage(da.string(), db.string());
    best_lineage = std::min(best_lineage, c.seconds);
    lineage_cpu = std::min(lineage_cpu, c.cpu_seconds);
    rss = std::max(rss, c.max_rss_kb);
    verdict = c.verdict;
    std::fprintf(stderr, "round %d: read %.2f s, lineage %.2f s (%.2f s CPU, peak RSS %.0f MB), verdict %s\n", r + 1, t,
                 c.seconds, c.cpu_seconds, c.max_rss_kb / 1024.0, c.verdict.c_str());
  }
  double t0 = now();
  for (const auto& f : files) kaival::sha256_file(f);
  double hash_s = now() - t0;
  json out = {{"bytes", bytes},
              {"page_cache", o.cold ? "cold (evicted before each measurement)" : "warm"},
              {"shape", {{"hidden", o.hidden}, {"layers", o.layers}, {"ffn", o.ffn}, {"heads", o.heads},
                         {"kv_heads", o.kv_heads}, {"vocab", o.vocab}}},
              {"plain_read_s", best_read},
              {"plain_read_gb_per_s", bytes / best_read / 1e9},
              {"lineage_s", best_lineage},
              {"ratio", best_lineage / best_read},
              {"plain_read_cpu_s", read_cpu},
              {"lineage_cpu_s", lineage_cpu},
              {"lineage_cpu_per_core_over_read", lineage_cpu / 2.0 / best_read},
              {"peak_rss_mb", rss / 1024.0},
              {"verdict", verdict},
              {"sha256_both_files_s", hash_s},
              {"cores", std::thread::hardware_concurrency()}};
  std::printf("%s\n", out.dump(1).c_str());
  if (!o.keep) fs::remove_all(o.dir);
  return 0;
}
