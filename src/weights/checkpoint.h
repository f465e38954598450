#pragma once
// A checkpoint: one model in any supported format (safetensors single or
// sharded, GGUF, PyTorch .bin), opened memory-mapped. Tensors are read one at a
// time, optionally in row blocks, and dequantized to F32.
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/mmap.h"
#include "weights/architecture.h"
#include "weights/gguf.h"
#include "weights/tensor.h"

namespace kaival::weights {

enum class Format { Safetensors, SafetensorsSharded, GGUF, PyTorch };
std::string_view format_name(Format f);  // "safetensors", "safetensors-sharded", "gguf", "pytorch"

class Checkpoint {
 public:
  // PATH is a model folder (config.json + weights), a .safetensors file, a
  // model.safetensors.index.json, a .gguf file, or a pytorch_model.bin.
  // Throws kaival::Error subclasses naming the file and the problem.
  static Checkpoint open(const std::string& path);

  Format format() const { return format_; }
  const std::string& path() const { return path_; }
  // The data files, in file_index order.
  std::vector<std::string> files() const;
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(std::string_view name) const;
  // Architecture from config.json or GGUF metadata (family "unknown" if none).
  const Architecture& architecture() const { return arch_; }
  // GGUF metadata when the checkpoint is a GGUF file.
  const GgufFile* gguf() const { return gguf_.get(); }
  // Folder holding tokenizer.json / tokenizer_config.json, if any.
  const std::string& folder() const { return folder_; }
  int64_t parameter_count() const;

  // The raw stored bytes of a tensor (bounds already validated at open).
  std::span<const uint8_t> raw(const TensorInfo& t) const;
  // Decode rows [row0, row0 + nrows) of `t` (rows = numel / cols, in stored
  // order, Q/K unpermutation applied) into `out` (nrows * cols floats).
  // Throws UnsupportedError "unsupported tensor type X in tensor Y".
  void read_rows(const TensorInfo& t, int64_t row0, int64_t nrows, float* out) const;
  std::vector<float> read_f32(const TensorInfo& t) const;
  // Hint that the pages of `t` are no longer needed (keeps RSS bounded when
  // streaming a large model).
  void release(const TensorInfo& t) const;

 private:
  // A read-only descriptor of a data file. read_rows() decodes through
  // pread() into a small buffer: for data read once, copying costs less than
  // mapping every page, and a file truncated behind our back gives an error
  // instead of SIGBUS.
  class FileHandle {
   public:
    FileHandle() = default;
    explicit FileHandle(const MappedFile& f);
    ~FileHandle();
    FileHandle(FileHandle&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    FileHandle& operator=(FileHandle&& o) noexcept;
    int fd() const { return fd_; }

   private:
    int fd_ = -1;
  };

  Format format_ = Format::Safetensors;
  std::string path_;
  std::string folder_;
  std::vector<MappedFile> maps_;
  std::vector<TensorInfo> tensors_;
  Architecture arch_;
  std::shared_ptr<GgufFile> gguf_;
  std::unordered_map<std::string, size_t> by_name_;  // index into tensors_
  std::vector<FileHandle> fds_;                      // parallel to maps_
};

// Decode `n` elements of type `t` starting at the beginning of `src` (which
// must hold byte_size(t, n) bytes) into `out`. n must be a multiple of the
// block size. Throws UnsupportedError for types without a decoder.
void dequantize(DType t, const uint8_t* src, int64_t n, float* out);

}  // namespace kaival::weights
