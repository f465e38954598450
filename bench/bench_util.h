// Small helpers shared by the bench programs.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

namespace kaival::bench {

// Drops a file's clean pages from the page cache (posix_fadvise DONTNEED, no
// root needed), so that the next read of it comes from storage: how "cold"
// measurements are taken on machines where /proc/sys/vm/drop_caches is not
// writable.
inline void evict_page_cache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  int rc = ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
  if (rc != 0) throw std::runtime_error("posix_fadvise(DONTNEED) failed on " + path);
}

}  // namespace kaival::bench
