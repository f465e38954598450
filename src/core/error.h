#pragma once
// Typed errors with context. Every error that reaches the user names the file
// (or other input) and the problem, on one line.
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace kaival {

class Error : public std::runtime_error {
 public:
  Error(std::string where, std::string problem)
      : std::runtime_error(where.empty() ? problem : where + ": " + problem),
        where_(std::move(where)),
        problem_(std::move(problem)) {}
  const std::string& where() const { return where_; }
  const std::string& problem() const { return problem_; }

 private:
  std::string where_;
  std::string problem_;
};

// The input is malformed, truncated or lies about itself.
class FormatError : public Error {
 public:
  using Error::Error;
};

// The input is valid but uses something kaival does not support (yet).
class UnsupportedError : public Error {
 public:
  using Error::Error;
};

// I/O failed (missing file, permission, mmap failure).
class IoError : public Error {
 public:
  using Error::Error;
};

template <typename E = FormatError, typename... Args>
[[noreturn]] void fail(const std::string& where, fmt::format_string<Args...> f, Args&&... args) {
  throw E(where, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace kaival
