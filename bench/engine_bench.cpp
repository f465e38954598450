// Engine speed and memory on a Llama-shaped model with random weights.
//
//   engine_bench write DIR [--preset 0.7b|tiny]  writes DIR/llama-{F16,Q8_0,Q4_K}.gguf
//   engine_bench run FILE [--threads 2] [--prompt 128] [--gen 32] [--rounds 2]
//
// `write` makes GGUF files the way llama.cpp lays them out (llama
// architecture, SPM vocabulary with byte tokens so llama.cpp can load them,
// F32 norms, random but well-formed blocks). `run` loads a file in a forked
// child and prints one JSON line: load seconds, prompt-processing and
// generation tokens/s (best of --rounds), peak RSS, file size and the KV
// cache size, so bench/engine_bench.sh can compare with llama.cpp.
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "engine/matmul.h"
#include "engine/model.h"
#include "engine/qdot.h"
#include "weights/checkpoint.h"
#include "weights/dequant.h"
#include "weights/dtype.h"

namespace {

using kaival::weights::DType;

struct Shape {
  int64_t hidden, layers, heads, kv_heads, ffn, vocab;
};
constexpr Shape k07b{1536, 24, 24, 8, 4096, 32000};  // ~0.7B parameters
constexpr Shape kTiny{256, 2, 4, 2, 512, 1024};

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

// A finite F16 of magnitude about 2^-9..2^-6 (small random weights keep
// activations in range without normalising anything).
uint16_t small_f16(Rng& r) {
  const uint64_t v = r.next();
  return static_cast<uint16_t>(((v & 1) << 15) | ((6 + (v >> 1) % 3) << 10) | ((v >> 8) & 0x3FF));
}

class Writer {
 public:
  explicit Writer(const std::string& path) : f_(path, std::ios::binary) {
    if (!f_) throw std::runtime_error("cannot write " + path);
  }
  template <typename T>
  void put(T v) {
    f_.write(reinterpret_cast<const char*>(&v), sizeof v);
    pos_ += sizeof v;
  }
  void bytes(const void* p, size_t n) {
    f_.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
    pos_ += n;
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    bytes(s.data(), s.size());
  }
  void pad(uint64_t align) {
    static const char zeros[64] = {};
    bytes(zeros, (align - pos_ % align) % align);
  }
  uint64_t pos() const { return pos_; }

 private:
  std::ofstream f_;
  uint64_t pos_ = 0;
};

struct TensorSpec {
  std::string name;
  int64_t rows, cols;  // cols = ne[0]
  DType type;
};

uint32_t ggml_id(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q8_0: return 8;
    case DType::Q4_K: return 12;
    case DType::Q6_K: return 14;
    default: throw std::runtime_error("type not written by this bench");
  }
}

// Random blocks of `type` with finite scales.
void fill(DType type, Rng& rng, std::vector<uint8_t>& buf) {
  for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
    const uint64_t v = rng.next();
    std::memcpy(buf.data() + i, &v, 8);
  }
  const auto& tr = kaival::weights::traits(type);
  auto f16_at = [&](size_t off, uint16_t v) { std::memcpy(buf.data() + off, &v, 2); };
  const size_t blocks = buf.size() / tr.block_bytes;
  for (size_t b = 0; b < blocks; ++b) {
    const size_t at = b * tr.block_bytes;
    switch (type) {
      case DType::F32: {
        const float one = 1.0f;
        std::memcpy(buf.data() + at, &one, 4);
        break;
      }
      case DType::F16: f16_at(at, small_f16(rng)); break;
      case DType::Q8_0: f16_at(at, static_cast<uint16_t>(0x0800 | (rng.next() & 0x3FF))); break;  // ~1e-4
      case DType::Q4_K:
        f16_at(at, static_cast<uint16_t>(0x1000 | (rng.next() & 0x3FF)));      // d ~5e-4
        f16_at(at + 2, static_cast<uint16_t>(0x1000 | (rng.next() & 0x3FF)));  // dmin
        break;
      case DType::Q6_K: f16_at(at + 208, static_cast<uint16_t>(0x0C00 | (rng.next() & 0x3FF))); break;
      default: break;
    }
  }
}

void write_gguf(const std::string& path, const Shape& s, DType type) {
  std::vector<TensorSpec> specs;
  specs.push_back({"token_embd.weight", s.vocab, s.hidden, type});
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = fmt::format("blk.{}.", l);
    const int64_t hd = s.hidden / s.heads;
    specs.push_back({p + "attn_norm.weight", 1, s.hidden, DType::F32});
    specs.push_back({p + "attn_q.weight", s.hidden, s.hidden, type});
    specs.push_back({p + "attn_k.weight", s.kv_heads * hd, s.hidden, type});
    specs.push_back({p + "attn_v.weight", s.kv_heads * hd, s.hidden, type});
    specs.push_back({p + "attn_output.weight", s.hidden, s.hidden, type});
    specs.push_back({p + "ffn_norm.weight", 1, s.hidden, DType::F32});
    specs.push_back({p + "ffn_gate.weight", s.ffn, s.hidden, type});
    specs.push_back({p + "ffn_up.weight", s.ffn, s.hidden, type});
    specs.push_back({p + "ffn_down.weight", s.hidden, s.ffn, type});
  }
  specs.push_back({"output_norm.weight", 1, s.hidden, DType::F32});
  // llama.cpp's Q4_K_M keeps the output matrix in Q6_K.
  specs.push_back({"output.weight", s.vocab, s.hidden, type == DType::Q4_K ? DType::Q6_K : type});

  Writer w(path);
  w.put<uint32_t>(0x46554747);
  w.put<uint32_t>(3);
  w.put<uint64_t>(specs.size());
  struct Kv {
    std::string key;
    uint32_t u32 = 0;
    float f32 = 0;
    std::string s;
    int kind;  // 0 u32, 1 f32, 2 string
  };
  const uint32_t file_type = type == DType::F16 ? 1 : type == DType::Q8_0 ? 7 : 15;
  const std::vector<Kv> kvs = {
      {"general.architecture", 0, 0, "llama", 2},
      {"general.name", 0, 0, "kaival-engine-bench", 2},
      {"general.file_type", file_type, 0, "", 0},
      {"llama.context_length", 4096, 0, "", 0},
      {"llama.embedding_length", static_cast<uint32_t>(s.hidden), 0, "", 0},
      {"llama.block_count", static_cast<uint32_t>(s.layers), 0, "", 0},
      {"llama.feed_forward_length", static_cast<uint32_t>(s.ffn), 0, "", 0},
      {"llama.attention.head_count", static_cast<uint32_t>(s.heads), 0, "", 0},
      {"llama.attention.head_count_kv", static_cast<uint32_t>(s.kv_heads), 0, "", 0},
      {"llama.rope.dimension_count", static_cast<uint32_t>(s.hidden / s.heads), 0, "", 0},
      {"llama.vocab_size", static_cast<uint32_t>(s.vocab), 0, "", 0},
      {"llama.rope.freq_base", 0, 10000.0f, "", 1},
      {"llama.attention.layer_norm_rms_epsilon", 0, 1e-5f, "", 1},
      {"tokenizer.ggml.model", 0, 0, "llama", 2},
      {"tokenizer.ggml.bos_token_id", 1, 0, "", 0},
      {"tokenizer.ggml.eos_token_id", 2, 0, "", 0},
      {"tokenizer.ggml.unknown_token_id", 0, 0, "", 0},
  };
  w.put<uint64_t>(kvs.size() + 3);
  for (const auto& kv : kvs) {
    w.str(kv.key);
    if (kv.kind == 0) {
      w.put<uint32_t>(4);
      w.put<uint32_t>(kv.u32);
    } else if (kv.kind == 1) {
      w.put<uint32_t>(6);
      w.put<float>(kv.f32);
    } else {
      w.put<uint32_t>(8);
      w.str(kv.s);
    }
  }
  // SPM vocabulary: <unk> <s> </s>, the 256 byte tokens, then plain pieces.
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  for (int b = 0; b < 256; ++b) tokens.push_back(fmt::format("<0x{:02X}>", b));
  for (int64_t i = static_cast<int64_t>(tokens.size()); i < s.vocab; ++i) tokens.push_back(fmt::format("\u2581t{}", i));
  w.str("tokenizer.ggml.tokens");
  w.put<uint32_t>(9);
  w.put<uint32_t>(8);
  w.put<uint64_t>(tokens.size());
  for (const auto& t : tokens) w.str(t);
  w.str("tokenizer.ggml.scores");
  w.put<uint32_t>(9);
  w.put<uint32_t>(6);
  w.put<uint64_t>(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) w.put<float>(-static_cast<float>(i));
  w.str("tokenizer.ggml.token_type");
  w.put<uint32_t>(9);
  w.put<uint32_t>(5);
  w.put<uint64_t>(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) w.put<int32_t>(i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1);

  constexpr uint64_t kAlign = 32;
  std::vector<uint64_t> sizes;
  uint64_t off = 0;
  for (const auto& t : specs) {
    const auto& tr = kaival::weights::traits(t.type);
    const uint64_t bytes = static_cast<uint64_t>(t.rows * t.cols) / tr.block_elems * tr.block_bytes;
    w.str(t.name);
    const bool vec = t.rows == 1;
    w.put<uint32_t>(vec ? 1 : 2);
    w.put<uint64_t>(static_cast<uint64_t>(t.cols));
    if (!vec) w.put<uint64_t>(static_cast<uint64_t>(t.rows));
    w.put<uint32_t>(ggml_id(t.type));
    w.put<uint64_t>(off);
    sizes.push_back(bytes);
    off = (off + bytes + kAlign - 1) / kAlign * kAlign;
  }
  w.pad(kAlign);
  Rng rng{0x9E3779B97F4A7C15ull};
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < specs.size(); ++i) {
    buf.assign(sizes[i], 0);
    fill(specs[i].type, rng, buf);
    if (specs[i].type == DType::F32)
      for (size_t k = 0; k < buf.size(); k += 4) {
        const float one = 1.0f;
        std::memcpy(buf.data() + k, &one, 4);
      }
    w.bytes(buf.data(), buf.size());
    w.pad(kAlign);
  }
}

// A VmRSS / VmHWM line of /proc/self/status, in MiB.
double rss_mb(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key + ":", 0) == 0) return std::stod(line.substr(key.size() + 1)) / 1024.0;
  return 0;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

int run(const std::string& file, int threads, int prompt, int gen, int rounds) {
  using Clock = std::chrono::steady_clock;
  int fds[2];
  if (pipe(fds) != 0) return 1;
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string out;
    try {
      const double base_rss = rss_mb("VmRSS");
      const auto t0 = Clock::now();
      const auto ckpt = kaival::weights::Checkpoint::open(file);
      const auto model = kaival::engine::Model::load(ckpt, threads);
      const double load = seconds_since(t0);
      const double loaded_hwm = rss_mb("VmHWM"), loaded_rss = rss_mb("VmRSS");
      const auto& c = model.config();
      std::vector<int32_t> ids(static_cast<size_t>(prompt));
      Rng rng{42};
      for (auto& id : ids) id = static_cast<int32_t>(3 + rng.next() % static_cast<uint64_t>(c.vocab - 3));
      auto cache = model.new_cache(prompt + gen + 1);
      double pp = 0, tg = 0;
      for (int r = 0; r < rounds; ++r) {
        cache.clear();
        auto t = Clock::now();
        auto logits = model.forward(ids, cache, false);
        pp = std::max(pp, prompt / seconds_since(t));
        t = Clock::now();
        for (int g = 0; g < gen; ++g) {
          const int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
          logits = model.forward(std::span<const int32_t>(&next, 1), cache, false);
        }
        tg = std::max(tg, gen / seconds_since(t));
      }
      const double kv_bytes = 2.0 * c.layers * (prompt + gen + 1) * c.kv_heads * c.head_dim * 4;
      rusage ru{};
      getrusage(RUSAGE_SELF, &ru);
      struct stat st{};
      stat(file.c_str(), &st);
      out = fmt::format(
          "{{\"file\":\"{}\",\"threads\":{},\"prompt\":{},\"gen\":{},\"load_s\":{:.3f},\"pp_tps\":{:.2f},"
          "\"tg_tps\":{:.2f},\"peak_rss_mb\":{:.1f},\"file_mb\":{:.1f},\"kv_mb\":{:.1f},\"weights_mb\":{:.1f},"
          "\"base_rss_mb\":{:.1f},\"after_load_rss_mb\":{:.1f},\"after_load_peak_mb\":{:.1f},\"dot\":\"{}\",\"dequant\":\"{}\","
          "\"qdot\":\"{}\"}}\n",
          file, model.threads(), prompt, gen, load, pp, tg, ru.ru_maxrss / 1024.0, st.st_size / 1048576.0,
          kv_bytes / 1048576.0, model.weight_bytes() / 1048576.0, base_rss, loaded_rss, loaded_hwm, kaival::engine::dot_isa(),
          kaival::weights::isa_name(kaival::weights::dequantize_isa()),
          kaival::engine::qdot::isa_name(kaival::engine::qdot::best_isa()));
    } catch (const std::exception& e) {
      out = fmt::format("{{\"file\":\"{}\",\"error\":\"{}\"}}\n", file, e.what());
    }
    if (write(fds[1], out.data(), out.size()) < 0) _exit(1);
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  std::fputs(out.c_str(), stdout);
  return out.find("\"error\"") == std::string::npos ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto opt = [&](const char* name, int def) {
    for (size_t i = 0; i + 1 < args.size(); ++i)
      if (args[i] == name) return std::stoi(args[i + 1]);
    return def;
  };
  try {
    if (args.size() >= 2 && args[0] == "write") {
      bool tiny = false;
      for (size_t i = 0; i + 1 < args.size(); ++i)
        if (args[i] == "--preset") tiny = args[i + 1] == "tiny";
      const Shape& s = tiny ? kTiny : k07b;
      for (DType t : {DType::F16, DType::Q8_0, DType::Q4_K}) {
        const std::string path = args[1] + "/llama-" + std::string(kaival::weights::dtype_name(t)) + ".gguf";
        write_gguf(path, s, t);
        std::printf("wrote %s\n", path.c_str());
      }
      return 0;
    }
    if (args.size() >= 2 && args[0] == "run")
      return run(args[1], opt("--threads", 2), opt("--prompt", 128), opt("--gen", 32), opt("--rounds", 2));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "engine_bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: engine_bench write DIR [--preset 0.7b|tiny] | run FILE [--threads N] [--prompt N] "
                       "[--gen N] [--rounds N]\n");
  return 2;
}
