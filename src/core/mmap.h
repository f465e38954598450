#pragma once
// Read-only memory-mapped file. Weights are never read into heap memory as a
// whole: readers hand out spans into the mapping, and the OS pages them in.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace kaival {

class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  size_t size() const { return size_; }
  const uint8_t* data() const { return data_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  // Bounds-checked sub-span; throws FormatError naming the file when
  // [offset, offset+len) is not inside the file.
  std::span<const uint8_t> slice(uint64_t offset, uint64_t len) const;
  // Tell the kernel we will read [offset, offset+len) sequentially / are done.
  void advise_sequential(uint64_t offset, uint64_t len) const;
  void advise_dontneed(uint64_t offset, uint64_t len) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace kaival
