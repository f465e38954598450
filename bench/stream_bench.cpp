// Weights streaming benchmark (issue 3, "Speed").
//
// Generates a BF16 safetensors file and a Q4_K GGUF file of about --size-mb
// each (llama-like layers: q/k/v/o, gate/up/down, norms), then for each file:
//   read:   plain sequential read() of the whole file into a 4 MiB buffer,
//           one thread;
//   stream: Checkpoint::open, then every tensor decoded to F32 with read_rows
//           in row blocks of at most 256 KiB of output by --threads threads
//           sharing work items of ~4 MiB, then release() (mmap+read_rows);
//           and, for comparison, the same with each row block's bytes read
//           by pread() into a small buffer and decoded by dequantize()
//           (pread+dequantize), which touches no mapping.
// Both are measured warm by default: the file is read once before anything is
// timed, and read/stream alternate for --rounds rounds. With --cold the file
// is evicted from the page cache (posix_fadvise DONTNEED) before every timed
// read and stream, so both read from storage. Each stream runs in a forked child so that its peak RSS
// (getrusage ru_maxrss of the child) is its own.
//
// Usage: stream_bench [--size-mb 1024] [--dir /tmp/kaival_stream_bench]
//                     [--threads 2] [--rounds 2] [--keep] [--reuse] [--cold] [--only safetensors|gguf]
//                     [--hidden 4096] [--ffn 11008] [--path checkpoint|pread|both]
// --keep leaves the generated files in --dir; --reuse also skips generating
// a file that is already there.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "core/numeric.h"
#include "weights/checkpoint.h"
#include "weights/dequant.h"

namespace fs = std::filesystem;
using kaival::weights::Checkpoint;
using kaival::weights::TensorInfo;

namespace {

struct Options {
  uint64_t size_mb = 1024;
  std::string dir = (fs::temp_directory_path() / "kaival_stream_bench").string();
  int threads = 2;
  int rounds = 2;
  bool keep = false;
  bool cold = false;
  bool reuse = false;
  std::string only;
  std::string path = "both";  // checkpoint, pread or both
  int64_t hidden = 4096, ffn = 11008, heads = 32, kv_heads = 8;
};

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// ---- model layout -------------------------------------------------------------

struct Spec {
  std::string hf, gguf;  // tensor names in each convention
  int64_t rows, cols;    // cols = 1 for a vector
};

std::vector<Spec> layer_specs(const Options& o, int layer) {
  const int64_t h = o.hidden, kv = o.hidden / o.heads * o.kv_heads;
  auto hf = [&](const char* n) { return fmt::format("model.layers.{}.{}.weight", layer, n); };
  auto gg = [&](const char* n) { return fmt::format("blk.{}.{}.weight", layer, n); };
  return {
      {hf("input_layernorm"), gg("attn_norm"), 1, h},
      {hf("self_attn.q_proj"), gg("attn_q"), h, h},
      {hf("self_attn.k_proj"), gg("attn_k"), kv, h},
      {hf("self_attn.v_proj"), gg("attn_v"), kv, h},
      {hf("self_attn.o_proj"), gg("attn_output"), h, h},
      {hf("post_attention_layernorm"), gg("ffn_norm"), 1, h},
      {hf("mlp.gate_proj"), gg("ffn_gate"), o.ffn, h},
      {hf("mlp.up_proj"), gg("ffn_up"), o.ffn, h},
      {hf("mlp.down_proj"), gg("ffn_down"), h, o.ffn},
  };
}

// Norm vectors stay F32 in GGUF, as llama.cpp writes them.
bool is_vector(const Spec& s) { return s.rows == 1; }

std::vector<Spec> model_specs(const Options& o, uint64_t bytes_per_elem_num, uint64_t bytes_per_elem_den) {
  uint64_t per_layer = 0;
  for (const Spec& s : layer_specs(o, 0)) per_layer += static_cast<uint64_t>(s.rows * s.cols);
  per_layer = per_layer * bytes_per_elem_num / bytes_per_elem_den;
  int layers = static_cast<int>(std::max<uint64_t>(1, (o.size_mb << 20) / per_layer));
  std::vector<Spec> all;
  for (int l = 0; l < layers; ++l)
    for (Spec& s : layer_specs(o, l)) all.push_back(std::move(s));
  return all;
}

// ---- file generation -------------------------------------------------------------

struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

class Writer {
 public:
  explicit Writer(const std::string& path) : f_(std::fopen(path.c_str(), "wb")), path_(path) {
    if (!f_) throw std::runtime_error("cannot create " + path);
  }
  ~Writer() {
    if (f_) std::fclose(f_);
  }
  void write(const void* p, size_t n) {
    if (std::fwrite(p, 1, n, f_) != n) throw std::runtime_error("write failed: " + path_);
  }
  template <typename T>
  void put(T v) { write(&v, sizeof v); }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    write(s.data(), s.size());
  }
  void zeros(size_t n) {
    std::vector<char> z(n, 0);
    write(z.data(), n);
  }

 private:
  std::FILE* f_;
  std::string path_;
};

// Random finite BF16 values of moderate magnitude.
void fill_bf16(Rng& rng, uint16_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    uint64_t r = rng.next();
    p[i] = static_cast<uint16_t>((r & 0x807F) | ((118 + (r >> 8) % 8) << 7));
  }
}

// Random Q4_K blocks with small finite half scales.
void fill_q4k(Rng& rng, uint8_t* p, size_t blocks) {
  for (size_t b = 0; b < blocks; ++b, p += 144) {
    for (size_t i = 0; i < 144; i += 8) {
      uint64_t r = rng.next();
      std::memcpy(p + i, &r, std::min<size_t>(8, 144 - i));
    }
    uint16_t d = kaival::f32_to_f16(1e-3f * static_cast<float>(1 + rng.next() % 100));
    uint16_t dmin = kaival::f32_to_f16(1e-3f * static_cast<float>(1 + rng.next() % 100));
    std::memcpy(p, &d, 2);
    std::memcpy(p + 2, &dmin, 2);
  }
}

constexpr size_t kChunk = 8 << 20;

void write_safetensors(const Options& o, const std::string& path) {
  std::vector<Spec> specs = model_specs(o, 2, 1);
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  uint64_t off = 0;
  for (const Spec& s : specs) {
    uint64_t n = static_cast<uint64_t>(s.rows * s.cols) * 2;
    nlohmann::ordered_json shape = is_vector(s) ? nlohmann::ordered_json::array({s.cols})
                                                : nlohmann::ordered_json::array({s.rows, s.cols});
    header[s.hf] = {{"dtype", "BF16"}, {"shape", shape}, {"data_offsets", {off, off + n}}};
    off += n;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  Writer w(path);
  w.put<uint64_t>(h.size());
  w.write(h.data(), h.size());
  Rng rng{0x9E3779B97F4A7C15ull};
  std::vector<uint16_t> buf(kChunk / 2);
  for (uint64_t left = off; left > 0;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(left, kChunk));
    fill_bf16(rng, buf.data(), n / 2);
    w.write(buf.data(), n);
    left -= n;
  }
}

void write_gguf(const Options& o, const std::string& path) {
  std::vector<Spec> specs = model_specs(o, 144, 256);
  constexpr uint64_t kAlign = 32;
  Writer w(path);
  uint64_t pos = 0;
  auto count = [&](uint64_t n) { pos += n; };
  w.put<uint32_t>(0x46554747);
  w.put<uint32_t>(3);
  w.put<uint64_t>(specs.size());
  const std::pair<const char*, int64_t> ints[] = {
      {"llama.block_count", static_cast<int64_t>(specs.size() / 9)}, {"llama.embedding_length", o.hidden},
      {"llama.feed_forward_length", o.ffn}, {"llama.attention.head_count", o.heads},
      {"llama.attention.head_count_kv", o.kv_heads}};
  w.put<uint64_t>(1 + std::size(ints));
  count(24);
  std::string key = "general.architecture", arch = "llama";
  w.str(key);
  w.put<uint32_t>(8);
  w.str(arch);
  count(8 + key.size() + 4 + 8 + arch.size());
  for (const auto& [k, v] : ints) {
    w.str(k);
    w.put<uint32_t>(4);
    w.put<uint32_t>(static_cast<uint32_t>(v));
    count(8 + std::strlen(k) + 8);
  }
  uint64_t off = 0;
  std::vector<uint64_t> sizes;
  for (const Spec& s : specs) {
    bool vec = is_vector(s);
    uint64_t n = static_cast<uint64_t>(s.rows * s.cols);
    uint64_t bytes = vec ? n * 4 : n / 256 * 144;
    w.str(s.gguf);
    w.put<uint32_t>(vec ? 1 : 2);
    w.put<uint64_t>(static_cast<uint64_t>(s.cols));
    if (!vec) w.put<uint64_t>(static_cast<uint64_t>(s.rows));
    w.put<uint32_t>(vec ? 0 : 12);  // F32 or Q4_K
    w.put<uint64_t>(off);
    count(8 + s.gguf.size() + 4 + (vec ? 8 : 16) + 4 + 8);
    sizes.push_back(bytes);
    off = (off + bytes + kAlign - 1) / kAlign * kAlign;
  }
  w.zeros(static_cast<size_t>((kAlign - pos % kAlign) % kAlign));
  Rng rng{0xD1B54A32D192ED03ull};
  std::vector<uint8_t> buf;
  for (size_t i = 0; i < specs.size(); ++i) {
    uint64_t bytes = sizes[i];
    buf.resize(static_cast<size_t>(bytes));
    if (is_vector(specs[i])) {
      std::vector<float> ones(static_cast<size_t>(bytes / 4), 1.0f);
      std::memcpy(buf.data(), ones.data(), bytes);
    } else {
      fill_q4k(rng, buf.data(), static_cast<size_t>(bytes / 144));
    }
    w.write(buf.data(), buf.size());
    if (i + 1 < specs.size()) w.zeros(static_cast<size_t>((kAlign - bytes % kAlign) % kAlign));
  }
}

// ---- measurements -------------------------------------------------------------------

// The buffer is allocated (and its pages touched) by the caller, outside the
// timed region.
uint64_t read_file(const std::string& path, std::vector<char>& buf) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  uint64_t total = 0;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) throw std::runtime_error("read failed: " + path);
    if (n == 0) break;
    total += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return total;
}

struct StreamResult {
  double seconds = 0;
  double checksum = 0;
  int64_t elements = 0;
};

// Rows per pread: about 1 MiB, a whole number of decode blocks.
int64_t reads_per_block(int64_t row_bytes, int64_t block) {
  return std::max<int64_t>(1, (1 << 20) / std::max<int64_t>(1, row_bytes)) / block * block;
}

// How stream() gets the stored bytes of a row block.
enum class Path {
  Checkpoint,  // Checkpoint::read_rows on the memory mapping, release() after each tensor
  Pread,       // pread() of the row block's bytes into a small buffer, then dequantize()
};
const char* path_name(Path p) { return p == Path::Checkpoint ? "mmap+read_rows" : "pread+dequantize"; }

// The tensors are cut into work items of about 4 MiB of stored bytes; the
// threads take items in file order from a shared counter (no barrier per
// tensor), decode each in row blocks of at most 256 KiB of F32 (stays in L2)
// and add two values of each block to a checksum (the decoded data is not
// consumed further: this measures the reader). With
// Path::Checkpoint the thread that finishes a tensor's last item releases the
// tensor's pages. Path::Pread skips the Q/K unpermutation (row order does not
// change the work).
StreamResult stream(const std::string& path, int threads, Path mode) {
  double t0 = now();
  Checkpoint ck = Checkpoint::open(path);
  const std::vector<TensorInfo>& tensors = ck.tensors();
  std::vector<int> fds;
  if (mode == Path::Pread)
    for (const std::string& f : ck.files()) {
      fds.push_back(::open(f.c_str(), O_RDONLY | O_CLOEXEC));
      if (fds.back() < 0) throw std::runtime_error("cannot open " + f);
    }
  struct Item {
    size_t tensor;
    int64_t row0, rows;
  };
  std::vector<Item> items;
  std::vector<std::atomic<int>> pending(tensors.size());
  StreamResult r;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorInfo& t = tensors[i];
    const int64_t rows = t.rows();
    const int64_t row_bytes = std::max<int64_t>(1, static_cast<int64_t>(t.nbytes) / std::max<int64_t>(1, rows));
    const int64_t per_item = std::max<int64_t>(1, (4 << 20) / row_bytes);
    int n = 0;
    for (int64_t row = 0; row < rows; row += per_item, ++n) items.push_back({i, row, std::min(per_item, rows - row)});
    pending[i] = n;
    if (n == 0 && mode == Path::Checkpoint) ck.release(t);
    r.elements += t.numel();
  }
  // Per-thread buffers sized once for the largest block (resizing a vector
  // would zero-fill and, past malloc's mmap threshold, fault in fresh pages).
  int64_t max_out = 1, max_raw = 1;
  for (const TensorInfo& t : tensors) {
    const int64_t cols = std::max<int64_t>(1, t.cols()), rows = t.rows();
    const int64_t row_bytes = static_cast<int64_t>(t.nbytes) / std::max<int64_t>(1, rows);
    const int64_t block = std::max<int64_t>(1, (256 << 10) / (cols * 4));
    max_out = std::max(max_out, std::min(block, std::max<int64_t>(1, rows)) * cols);
    max_raw = std::max(max_raw, std::max(reads_per_block(row_bytes, block), block) * row_bytes);
  }
  std::atomic<size_t> next{0};
  std::vector<double> sums(static_cast<size_t>(threads), 0.0);
  std::vector<std::string> errors(static_cast<size_t>(threads));
  auto work = [&](int k) {
    std::unique_ptr<float[]> out(new float[static_cast<size_t>(max_out)]);
    std::unique_ptr<uint8_t[]> raw(mode == Path::Pread ? new uint8_t[static_cast<size_t>(max_raw)] : nullptr);
    double s = 0;
    try {
      for (size_t it; (it = next.fetch_add(1)) < items.size();) {
        const Item& item = items[it];
        const TensorInfo& t = tensors[item.tensor];
        const int64_t cols = std::max<int64_t>(1, t.cols());
        const int64_t row_bytes = static_cast<int64_t>(t.nbytes) / std::max<int64_t>(1, t.rows());
        const int64_t block = std::max<int64_t>(1, (256 << 10) / (cols * 4));
        // pread in reads of ~1 MiB (syscalls are not free), decode in blocks.
        const int64_t per_read = reads_per_block(row_bytes, block);
        int64_t read0 = item.row0, read_rows = 0;
        for (int64_t row = item.row0, end = item.row0 + item.rows; row < end; row += block) {
          int64_t n = std::min(block, end - row);
          if (mode == Path::Checkpoint) {
            ck.read_rows(t, row, n, out.get());
          } else {
            if (row >= read0 + read_rows) {
              read0 = row;
              read_rows = std::min(std::max(per_read, block), end - row);
              const size_t len = static_cast<size_t>(read_rows * row_bytes);
              off_t at = static_cast<off_t>(t.offset + static_cast<uint64_t>(row * row_bytes));
              if (::pread(fds[t.file_index], raw.get(), len, at) != static_cast<ssize_t>(len))
                throw std::runtime_error("short pread");
            }
            kaival::weights::dequantize(t.dtype, raw.get() + (row - read0) * row_bytes, n * cols, out.get());
          }
          s += out[0] + out[static_cast<size_t>(n * cols - 1)];
        }
        if (pending[item.tensor].fetch_sub(1) == 1 && mode == Path::Checkpoint) ck.release(t);
      }
    } catch (const std::exception& e) {
      errors[static_cast<size_t>(k)] = e.what();
      next = items.size();
    }
    sums[static_cast<size_t>(k)] = s;
  };
  std::vector<std::thread> pool;
  for (int k = 1; k < threads; ++k) pool.emplace_back(work, k);
  work(0);
  for (auto& th : pool) th.join();
  for (int fd : fds) ::close(fd);
  for (const std::string& e : errors)
    if (!e.empty()) throw std::runtime_error(e);
  r.seconds = now() - t0;
  for (double s : sums) r.checksum += s;
  return r;
}

struct ChildResult {
  StreamResult s;
  long maxrss_kb = 0;
  double cpu_seconds = 0;  // user + system time of the child, all threads
  bool ok = false;
  char error[256] = {};
};

// Runs stream() in a child process so ru_maxrss measures that run alone.
ChildResult stream_in_child(const std::string& path, int threads, Path mode) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
  std::fflush(stdout);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::close(fds[0]);
    ChildResult c;
    try {
      c.s = stream(path, threads, mode);
      c.ok = true;
    } catch (const std::exception& e) {
      std::snprintf(c.error, sizeof c.error, "%s", e.what());
    }
    ssize_t w = ::write(fds[1], &c, sizeof c);
    ::_exit(w == static_cast<ssize_t>(sizeof c) ? 0 : 1);
  }
  ::close(fds[1]);
  ChildResult c;
  ssize_t got = ::read(fds[0], &c, sizeof c);
  ::close(fds[0]);
  int status = 0;
  struct rusage ru {};
  ::wait4(pid, &status, 0, &ru);
  if (got != static_cast<ssize_t>(sizeof c)) throw std::runtime_error("stream child failed");
  if (!c.ok) throw std::runtime_error(std::string("stream failed: ") + c.error);
  c.maxrss_kb = ru.ru_maxrss;
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6; };
  c.cpu_seconds = secs(ru.ru_utime) + secs(ru.ru_stime);
  return c;
}

int64_t largest_tensor_f32_bytes(const std::string& path) {
  Checkpoint ck = Checkpoint::open(path);
  int64_t m = 0;
  for (const TensorInfo& t : ck.tensors()) m = std::max(m, t.numel() * 4);
  return m;
}

double cpu_now() {
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

void run_file(const Options& o, const std::string& label, const std::string& path) {
  const double gb = static_cast<double>(fs::file_size(path)) / 1e9;
  const double largest_mib = static_cast<double>(largest_tensor_f32_bytes(path)) / (1 << 20);
  std::vector<char> buf(4 << 20, 1);
  if (!o.cold) read_file(path, buf);  // warm the page cache
  std::vector<Path> modes;
  if (o.path != "pread") modes.push_back(Path::Checkpoint);
  if (o.path != "checkpoint") modes.push_back(Path::Pread);
  std::vector<double> reads, read_cpu;
  std::vector<std::vector<double>> streams(modes.size());
  std::vector<ChildResult> last(modes.size());
  for (int round = 0; round < o.rounds; ++round) {
    if (o.cold) kaival::bench::evict_page_cache(path);
    double t0 = now(), c0 = cpu_now();
    read_file(path, buf);
    reads.push_back(now() - t0);
    read_cpu.push_back(cpu_now() - c0);
    for (size_t m = 0; m < modes.size(); ++m) {
      if (o.cold) kaival::bench::evict_page_cache(path);
      last[m] = stream_in_child(path, o.threads, modes[m]);
      streams[m].push_back(last[m].s.seconds);
    }
  }
  auto fmt_list = [](const std::vector<double>& v) {
    std::string s;
    for (double x : v) s += fmt::format(" {:.3f}", x);
    return s;
  };
  const double read_best = *std::min_element(reads.begin(), reads.end());
  fmt::print("{:<12} {:.3f} GB, largest tensor {:.1f} MiB as F32\n", label, gb, largest_mib);
  fmt::print("  {:<18} {:>6.2f} GB/s  (rounds s:{}; cpu s:{})\n", "read()", gb / read_best, fmt_list(reads),
             fmt_list(read_cpu));
  for (size_t m = 0; m < modes.size(); ++m) {
    const double best = *std::min_element(streams[m].begin(), streams[m].end());
    const double rss = static_cast<double>(last[m].maxrss_kb) / 1024.0;
    fmt::print("  {:<18} {:>6.2f} GB/s  ratio {:.2f} (target >= 0.70)  peak RSS {:.1f} MiB (target < {:.1f})  "
               "{:.2f} Gelem/s  (rounds s:{}; cpu s last: {:.3f})  checksum {:.6g}\n",
               path_name(modes[m]), gb / best, read_best / best, rss, 64.0 + largest_mib,
               static_cast<double>(last[m].s.elements) / 1e9 / best, fmt_list(streams[m]), last[m].cpu_seconds,
               last[m].s.checksum);
  }
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value for " + a);
      return argv[++i];
    };
    if (a == "--size-mb") o.size_mb = std::stoull(val());
    else if (a == "--dir") o.dir = val();
    else if (a == "--threads") o.threads = std::max(1, std::stoi(val()));
    else if (a == "--rounds") o.rounds = std::max(1, std::stoi(val()));
    else if (a == "--keep") o.keep = true;
    else if (a == "--reuse") o.reuse = o.keep = true;
    else if (a == "--cold") o.cold = true;
    else if (a == "--only") o.only = val();
    else if (a == "--path") o.path = val();
    else if (a == "--hidden") o.hidden = std::stoll(val());
    else if (a == "--ffn") o.ffn = std::stoll(val());
    else throw std::runtime_error("unknown option " + a);
  }
  if (o.hidden % 256 || o.ffn % 256 || o.hidden % o.heads)
    throw std::runtime_error("--hidden and --ffn must be multiples of 256 (Q4_K rows)");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options o = parse_args(argc, argv);
    fs::create_directories(o.dir);
    fmt::print("stream_bench: {} MiB per file, {} threads, {} rounds, dequantize isa {}, {} hardware threads\n",
               o.size_mb, o.threads, o.rounds, kaival::weights::isa_name(kaival::weights::dequantize_isa()), std::thread::hardware_concurrency());
    fmt::print("{}\n", o.cold ? "cold: file evicted from the page cache before every timed read and stream"
                              : "warm page cache (file read once before timing)");
    struct Target {
      std::string label, path;
      void (*write)(const Options&, const std::string&);
    };
    std::vector<Target> targets = {
        {"safetensors", (fs::path(o.dir) / "bf16.safetensors").string(), write_safetensors},
        {"gguf", (fs::path(o.dir) / "q4k.gguf").string(), write_gguf},
    };
    for (const Target& t : targets) {
      if (!o.only.empty() && o.only != t.label) continue;
      double g0 = now();
      if (o.reuse && fs::exists(t.path)) {
        fmt::print("{:<12} reusing {}\n", t.label, t.path);
      } else {
        t.write(o, t.path);
        fmt::print("{:<12} generated {} in {:.1f} s\n", t.label, t.path, now() - g0);
      }
      run_file(o, t.label, t.path);
      if (!o.keep) fs::remove(t.path);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stream_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
