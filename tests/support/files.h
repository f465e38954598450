#pragma once
// Whole-file read and write for tests, so each test file need not carry its
// own copy. Both throw when the file cannot be opened: a missing file then
// fails the test with its path instead of comparing as empty text.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include <unistd.h>

namespace kaival::testing_support {

// The bytes of `path`, unchanged (binary mode).
inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path.string() + " for reading");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Replaces `path` with exactly `text`.
inline void write_file(const std::filesystem::path& path, std::string_view text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error("cannot open " + path.string() + " for writing");
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

// A fresh directory under the system temp folder, named by `tag` and the process id, removed
// with everything in it when the object goes.
struct TempDir {
  explicit TempDir(const std::string& tag)
      : path(std::filesystem::temp_directory_path() / ("kaival_" + tag + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path path;
};

}  // namespace kaival::testing_support
