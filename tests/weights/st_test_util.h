#pragma once
// Test helpers shared by the weights tests: a tiny safetensors writer that is
// independent of the reader, and a per-test temporary folder.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../support/files.h"

namespace kaival::testutil {

namespace fs = std::filesystem;

// A tiny safetensors writer, independent of the reader: tensors are laid out
// in order, and the header JSON may be overridden to produce broken files.
struct StTensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

template <typename T>
std::vector<uint8_t> le_bytes(std::initializer_list<T> vals) {
  std::vector<uint8_t> out;
  for (T v : vals) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // test hosts are little-endian (x86-64, arm64)
    out.insert(out.end(), b, b + sizeof(T));
  }
  return out;
}

inline nlohmann::json header_for(const std::vector<StTensor>& ts) {
  nlohmann::json h = nlohmann::json::object();
  uint64_t off = 0;
  for (const auto& t : ts) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
    off += t.bytes.size();
  }
  return h;
}

inline std::vector<uint8_t> file_bytes(const std::string& header, const std::vector<uint8_t>& data,
                                std::optional<uint64_t> header_len = std::nullopt) {
  std::vector<uint8_t> out = le_bytes<uint64_t>({header_len.value_or(header.size())});
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

inline std::vector<uint8_t> data_of(const std::vector<StTensor>& ts) {
  std::vector<uint8_t> d;
  for (const auto& t : ts) d.insert(d.end(), t.bytes.begin(), t.bytes.end());
  return d;
}

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("kaival_st_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

using kaival::testing_support::write_file;
inline void write_file(const std::string& path, const std::vector<uint8_t>& bytes) {
  write_file(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

inline void write_st(const std::string& path, const std::vector<StTensor>& ts) {
  write_file(path, file_bytes(header_for(ts).dump(), data_of(ts)));
}

}  // namespace kaival::testutil
