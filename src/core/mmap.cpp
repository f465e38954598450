#include "core/mmap.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace kaival {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail<IoError>(path, "cannot open: {}", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail<IoError>(path, "cannot stat: {}", std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail<IoError>(path, "not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      fail<IoError>(path, "cannot mmap: {}", std::strerror(e));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : path_(std::move(o.path_)), data_(o.data_), size_(o.size_) {
  o.data_ = nullptr;
  o.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    path_ = std::move(o.path_);
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

std::span<const uint8_t> MappedFile::slice(uint64_t offset, uint64_t len) const {
  if (offset > size_ || len > size_ - offset)
    fail(path_, "range [{}, +{}) is outside the file ({} bytes)", offset, len, size_);
  return {data_ + offset, static_cast<size_t>(len)};
}

static void advise(const uint8_t* base, size_t size, uint64_t offset, uint64_t len, int how) {
  if (!base || offset >= size) return;
  long page = ::sysconf(_SC_PAGESIZE);
  uint64_t start = offset & ~static_cast<uint64_t>(page - 1);
  uint64_t end = std::min<uint64_t>(size, offset + len);
  ::madvise(const_cast<uint8_t*>(base) + start, end - start, how);
}

void MappedFile::advise_sequential(uint64_t offset, uint64_t len) const {
  advise(data_, size_, offset, len, MADV_SEQUENTIAL);
  advise(data_, size_, offset, len, MADV_WILLNEED);
}

void MappedFile::advise_dontneed(uint64_t offset, uint64_t len) const {
  advise(data_, size_, offset, len, MADV_DONTNEED);
}

}  // namespace kaival
