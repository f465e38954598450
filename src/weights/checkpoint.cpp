#include "weights/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>

#include "core/error.h"
#include "weights/pytorch.h"
#include "weights/safetensors.h"

namespace kaival::weights {

namespace fs = std::filesystem;

std::string_view format_name(Format f) {
  switch (f) {
    case Format::Safetensors: return "safetensors";
    case Format::SafetensorsSharded: return "safetensors-sharded";
    case Format::GGUF: return "gguf";
    case Format::PyTorch: return "pytorch";
  }
  return "unknown";
}

namespace {

constexpr uint64_t kMaxJsonFile = 256ull << 20;

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string read_small_file(const std::string& path) {
  MappedFile f(path);
  if (f.size() > kMaxJsonFile) fail(path, "file is {} bytes, too large for a JSON file", f.size());
  return std::string(reinterpret_cast<const char*>(f.data()), f.size());
}

nlohmann::json read_json(const std::string& path) {
  std::string text = read_small_file(path);
  check_json_depth(text, 64, path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(path, "not valid JSON: {}", e.what());
  }
}

enum class FileKind { SafetensorsFile, SafetensorsIndex, PyTorchFile, PyTorchIndex, GgufFile };

// What a single file is, from its magic bytes (and the name for index files).
FileKind classify_file(const std::string& path) {
  std::string name = fs::path(path).filename().string();
  if (ends_with(name, ".index.json")) {
    ShardIndex idx = parse_shard_index(read_small_file(path), path);
    return ends_with(idx.shards.front(), ".safetensors") ? FileKind::SafetensorsIndex : FileKind::PyTorchIndex;
  }
  MappedFile f(path);
  auto b = f.bytes();
  if (b.size() >= 4 && std::memcmp(b.data(), "GGUF", 4) == 0) return FileKind::GgufFile;
  if (b.size() >= 4 && std::memcmp(b.data(), "PK\x03\x04", 4) == 0) return FileKind::PyTorchFile;
  if (ends_with(name, ".safetensors") || (b.size() > 8 && b[8] == '{')) return FileKind::SafetensorsFile;
  if (ends_with(name, ".bin") || ends_with(name, ".pt") || ends_with(name, ".pth")) return FileKind::PyTorchFile;
  fail<UnsupportedError>(path, "unrecognized file: not safetensors, GGUF or a PyTorch zip checkpoint");
}

// The weights file of a model folder, by the names Hugging Face and llama.cpp use.
std::string pick_weights(const std::string& dir) {
  for (const char* name : {"model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json",
                           "pytorch_model.bin"}) {
    fs::path p = fs::path(dir) / name;
    if (fs::is_regular_file(p)) return p.string();
  }
  std::vector<std::string> st, gguf;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    std::string n = e.path().filename().string();
    if (ends_with(n, ".safetensors")) st.push_back(e.path().string());
    if (ends_with(n, ".gguf")) gguf.push_back(e.path().string());
  }
  if (ec) fail<IoError>(dir, "cannot list folder: {}", ec.message());
  std::sort(st.begin(), st.end());
  std::sort(gguf.begin(), gguf.end());
  if (st.size() == 1) return st.front();
  if (st.size() > 1)
    fail<UnsupportedError>(dir, "{} .safetensors files but no model.safetensors.index.json; pass one file",
                           st.size());
  if (gguf.size() == 1) return gguf.front();
  if (gguf.size() > 1) fail<UnsupportedError>(dir, "{} .gguf files; pass one of them", gguf.size());
  fail(dir, "no model weights found (model.safetensors[.index.json], pytorch_model.bin[.index.json] or *.gguf)");
}

uint64_t checked_numel(const TensorInfo& t, const std::string& where) {
  uint64_t n = 1;
  for (int64_t d : t.shape) {
    if (d < 0) fail(where, "tensor '{}': negative dimension {}", t.name, d);
    if (d != 0 && n > (uint64_t{1} << 62) / static_cast<uint64_t>(d))
      fail(where, "tensor '{}': element count overflows", t.name);
    n *= static_cast<uint64_t>(d);
  }
  return n;
}

// HF row r of a Q/K weight (or element r of its bias) is stored at this row by
// llama.cpp's converter, which did
//   w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols)
// so HF row (h, j, i) = h*head_dim + j*half + i lands at h*head_dim + 2*i + j.
int64_t permuted_row(int64_t r, int64_t head_dim) {
  int64_t half = head_dim / 2;
  int64_t h = r / head_dim, rem = r % head_dim;
  int64_t j = rem / half, i = rem % half;
  return h * head_dim + 2 * i + j;
}

// Bytes read per pread() when decoding: large enough that system calls are
// cheap, small enough to stay in L2 next to the decoded floats.
constexpr uint64_t kReadChunk = 64 << 10;

void read_exact(int fd, uint64_t offset, uint8_t* dst, uint64_t len, const std::string& where) {
  while (len > 0) {
    ssize_t r = ::pread(fd, dst, static_cast<size_t>(len), static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail<IoError>(where, "read failed at offset {}: {}", offset, std::strerror(errno));
    }
    if (r == 0) fail<IoError>(where, "file ended at offset {}: it changed after it was opened", offset);
    dst += r;
    offset += static_cast<uint64_t>(r);
    len -= static_cast<uint64_t>(r);
  }
}

// Decodes `n` elements stored at [offset, ...) of the file: read in chunks of
// whole blocks, one dequantize() call per chunk.
void decode_span(int fd, const std::string& where, DType dt, uint64_t offset, int64_t n, float* out) {
  const DTypeTraits& tr = traits(dt);
  const uint64_t blocks = static_cast<uint64_t>(n) / tr.block_elems;
  const uint64_t chunk_blocks = std::max<uint64_t>(1, kReadChunk / tr.block_bytes);
  std::unique_ptr<uint8_t[]> buf(new uint8_t[std::min(blocks, chunk_blocks) * tr.block_bytes]);
  for (uint64_t b = 0; b < blocks; b += chunk_blocks) {
    const uint64_t nb = std::min(chunk_blocks, blocks - b);
    read_exact(fd, offset + b * tr.block_bytes, buf.get(), nb * tr.block_bytes, where);
    dequantize(dt, buf.get(), static_cast<int64_t>(nb * tr.block_elems), out + b * tr.block_elems);
  }
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& path) {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) fail<IoError>(path, "no such file or directory");

  Checkpoint ck;
  ck.path_ = path;
  std::string weights = fs::is_directory(st) ? pick_weights(path) : path;
  fs::path dir_path = fs::path(weights).parent_path();
  const std::string dir = dir_path.empty() ? std::string(".") : dir_path.string();
  FileKind kind = classify_file(weights);

  auto load_shards = [&](bool safetensors) {
    ShardIndex idx = parse_shard_index(read_small_file(weights), weights);
    std::set<std::string> names;
    for (uint32_t k = 0; k < idx.shards.size(); ++k) {
      std::string shard = (fs::path(dir) / idx.shards[k]).string();
      ck.maps_.emplace_back(shard);
      const MappedFile& m = ck.maps_.back();
      std::vector<TensorInfo> ts =
          safetensors ? parse_safetensors(m.bytes(), shard, k).tensors : read_pytorch_zip(m, k);
      for (auto& t : ts) {
        auto it = idx.weight_map.find(t.name);
        if (it != idx.weight_map.end() && it->second != idx.shards[k])
          fail(shard, "tensor '{}' is here but the index puts it in '{}'", t.name, it->second);
        if (!names.insert(t.name).second) fail(shard, "tensor '{}' appears in several shards", t.name);
        ck.tensors_.push_back(std::move(t));
      }
    }
    for (const auto& [name, shard] : idx.weight_map)
      if (!names.count(name)) fail(weights, "tensor '{}' is listed in the index but missing from '{}'", name, shard);
  };

  switch (kind) {
    case FileKind::SafetensorsFile:
      ck.format_ = Format::Safetensors;
      ck.maps_.emplace_back(weights);
      ck.tensors_ = parse_safetensors(ck.maps_[0].bytes(), weights, 0).tensors;
      break;
    case FileKind::SafetensorsIndex:
      ck.format_ = Format::SafetensorsSharded;
      load_shards(true);
      break;
    case FileKind::PyTorchFile:
      ck.format_ = Format::PyTorch;
      ck.maps_.emplace_back(weights);
      ck.tensors_ = read_pytorch_zip(ck.maps_[0], 0);
      break;
    case FileKind::PyTorchIndex:
      ck.format_ = Format::PyTorch;
      load_shards(false);
      break;
    case FileKind::GgufFile:
      ck.format_ = Format::GGUF;
      ck.maps_.emplace_back(weights);
      ck.gguf_ = GgufFile::parse(ck.maps_[0], 0);
      ck.tensors_ = ck.gguf_->tensors;
      break;
  }

  // Never trust a reader's description blindly: every tensor must lie inside
  // its file and have exactly the bytes its type and shape need.
  for (size_t k = 0; k < ck.tensors_.size(); ++k) {
    const TensorInfo& t = ck.tensors_[k];
    if (t.file_index >= ck.maps_.size()) fail(weights, "tensor '{}' refers to a missing file", t.name);
    const MappedFile& m = ck.maps_[t.file_index];
    uint64_t numel = checked_numel(t, m.path());
    if (t.offset > m.size() || t.nbytes > m.size() - t.offset)
      fail(m.path(), "tensor '{}': bytes [{}, +{}) lie outside the file ({} bytes)", t.name, t.offset, t.nbytes,
           m.size());
    if (t.dtype != DType::Unsupported) {
      auto need = byte_size(t.dtype, numel);
      if (!need || *need != t.nbytes)
        fail(m.path(), "tensor '{}': {} x {} elements does not match its {} bytes", t.name, t.type_name, numel,
             t.nbytes);
    }
    if (!ck.by_name_.emplace(t.name, k).second) fail(m.path(), "duplicate tensor name '{}'", t.name);
  }

  if (ck.format_ == Format::GGUF) {
    ck.arch_ = architecture_from_gguf(*ck.gguf_, weights);
  } else {
    fs::path config = fs::path(dir) / "config.json";
    if (fs::is_regular_file(config)) ck.arch_ = architecture_from_config(read_json(config.string()), config.string());
    if (fs::is_regular_file(config) || fs::is_regular_file(fs::path(dir) / "tokenizer.json") ||
        fs::is_regular_file(fs::path(dir) / "tokenizer_config.json"))
      ck.folder_ = dir;
  }
  assign_roles(ck.tensors_, ck.arch_, ck.format_ == Format::GGUF);
  for (const auto& m : ck.maps_) ck.fds_.emplace_back(m);
  return ck;
}

Checkpoint::FileHandle::FileHandle(const MappedFile& f) {
  fd_ = ::open(f.path().c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) fail<IoError>(f.path(), "cannot open: {}", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || static_cast<uint64_t>(st.st_size) != f.size()) {
    ::close(fd_);
    fd_ = -1;
    fail<IoError>(f.path(), "file changed while it was being opened");
  }
  ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
}

Checkpoint::FileHandle::~FileHandle() {
  if (fd_ >= 0) ::close(fd_);
}

Checkpoint::FileHandle& Checkpoint::FileHandle::operator=(FileHandle&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

std::vector<std::string> Checkpoint::files() const {
  std::vector<std::string> out;
  for (const auto& m : maps_) out.push_back(m.path());
  return out;
}

const TensorInfo* Checkpoint::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

int64_t Checkpoint::parameter_count() const {
  int64_t n = 0;
  for (const auto& t : tensors_) n += t.numel();
  return n;
}

std::span<const uint8_t> Checkpoint::raw(const TensorInfo& t) const {
  if (t.file_index >= maps_.size()) fail(path_, "tensor '{}' refers to a missing file", t.name);
  return maps_[t.file_index].slice(t.offset, t.nbytes);
}

void Checkpoint::read_rows(const TensorInfo& t, int64_t row0, int64_t nrows, float* out) const {
  std::span<const uint8_t> bytes = raw(t);
  const std::string& where = maps_[t.file_index].path();
  if (t.dtype == DType::Unsupported)
    fail<UnsupportedError>(where, "unsupported tensor type {} in tensor {}", t.type_name, t.name);
  const int64_t rows = t.rows(), cols = t.cols();
  if (row0 < 0 || nrows < 0 || row0 > rows || nrows > rows - row0)
    fail(where, "tensor '{}': rows [{}, +{}) outside its {} rows", t.name, row0, nrows, rows);
  if (nrows == 0 || cols == 0) return;
  const DTypeTraits& tr = traits(t.dtype);
  if (cols % tr.block_elems != 0)
    fail(where, "tensor '{}': row length {} is not a multiple of the {} block size {}", t.name, cols, tr.name,
         tr.block_elems);
  const uint64_t row_bytes = static_cast<uint64_t>(cols / tr.block_elems) * tr.block_bytes;
  if (static_cast<uint64_t>(rows) * row_bytes != bytes.size())
    fail(where, "tensor '{}': {} rows of {} bytes do not match its {} bytes", t.name, rows, row_bytes, bytes.size());
  const int fd = fds_[t.file_index].fd();

  if (t.unpermute_heads <= 0) {  // one contiguous span
    decode_span(fd, where, t.dtype, t.offset + static_cast<uint64_t>(row0) * row_bytes, nrows * cols, out);
    return;
  }

  const int64_t heads = t.unpermute_heads;
  if (t.shape.size() == 1) {
    // A permuted bias: the "rows" of the permutation are its elements.
    const int64_t n = cols;
    if (n % (2 * heads) != 0)
      fail(where, "tensor '{}': {} elements cannot be split into {} heads of pairs", t.name, n, heads);
    std::vector<float> stored(static_cast<size_t>(n));
    decode_span(fd, where, t.dtype, t.offset, n, stored.data());
    for (int64_t r = 0; r < n; ++r) out[r] = stored[static_cast<size_t>(permuted_row(r, n / heads))];
    return;
  }
  if (rows % (2 * heads) != 0)
    fail(where, "tensor '{}': {} rows cannot be split into {} heads of pairs", t.name, rows, heads);
  // Rows never leave their head, so read head by head the stored rows that
  // hold the requested ones (at most twice as many for a short range, exactly
  // the head for a whole one), then decode row by row into HF order.
  const int64_t head_dim = rows / heads;
  std::unique_ptr<uint8_t[]> buf;
  uint64_t buf_bytes = 0;
  for (int64_t r = row0; r < row0 + nrows;) {
    const int64_t head_end = std::min(row0 + nrows, (r / head_dim + 1) * head_dim);
    int64_t lo = permuted_row(r, head_dim), hi = lo;
    for (int64_t k = r; k < head_end; ++k) {
      lo = std::min(lo, permuted_row(k, head_dim));
      hi = std::max(hi, permuted_row(k, head_dim));
    }
    const uint64_t span = static_cast<uint64_t>(hi - lo + 1) * row_bytes;
    if (span > buf_bytes) {
      buf.reset(new uint8_t[span]);
      buf_bytes = span;
    }
    read_exact(fd, t.offset + static_cast<uint64_t>(lo) * row_bytes, buf.get(), span, where);
    for (int64_t k = r; k < head_end; ++k)
      dequantize(t.dtype, buf.get() + static_cast<uint64_t>(permuted_row(k, head_dim) - lo) * row_bytes, cols,
                 out + (k - row0) * cols);
    r = head_end;
  }
}

std::vector<float> Checkpoint::read_f32(const TensorInfo& t) const {
  if (t.dtype == DType::Unsupported)  // before allocating for a tensor we cannot decode
    fail<UnsupportedError>(t.file_index < maps_.size() ? maps_[t.file_index].path() : path_,
                           "unsupported tensor type {} in tensor {}", t.type_name, t.name);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  read_rows(t, 0, t.rows(), out.data());
  return out;
}

void Checkpoint::release(const TensorInfo& t) const {
  if (t.file_index < maps_.size()) maps_[t.file_index].advise_dontneed(t.offset, t.nbytes);
}

}  // namespace kaival::weights
