#include "cli/stop_signals.h"

#include <pthread.h>

#include <ctime>

namespace kaival::cli {

StopSignals::StopSignals() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
}

void StopSignals::wait() const {
  int sig = 0;
  sigwait(&set_, &sig);
}

bool StopSignals::wait_for(std::chrono::milliseconds timeout) const {
  const auto s = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  const timespec tick{static_cast<time_t>(s.count()), static_cast<long>((timeout - s).count()) * 1000 * 1000};
  return sigtimedwait(&set_, nullptr, &tick) > 0;
}

void add_bind_options(CLI::App& cmd, std::string& host, int& port) {
  cmd.add_option("--host", host, "address to bind")->capture_default_str();
  cmd.add_option("--port", port, "port; 0 = any free port (printed)")->capture_default_str()
      ->check(CLI::Range(0, 65535));
}

}  // namespace kaival::cli
