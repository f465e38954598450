#pragma once
// Runs a shell command for tests that drive the `kaival` binary, capturing what it writes.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace kaival::testing_support {

struct CommandResult {
  int code = -1;    // the exit status; -1 when it could not start or did not exit
  std::string out;  // its stdout (add 2>&1 to the command for stderr too)
};

inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return r;
  std::array<char, 65536> buf;
  for (size_t n; (n = std::fread(buf.data(), 1, buf.size(), p)) > 0;) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace kaival::testing_support
