#pragma once
// What the long-running commands (serve, serve-model, worker) share: the stop
// signals taken synchronously, and the bind-address options.
#include <signal.h>

#include <chrono>
#include <string>

#include <CLI/CLI.hpp>

namespace kaival::cli {

// SIGINT and SIGTERM, blocked from construction in the constructing thread and
// in every thread it starts afterwards (threads inherit the mask), so they are
// taken here by wait(), never by an async handler. Construct it before starting
// server or worker threads.
class StopSignals {
 public:
  StopSignals();
  // Until SIGINT or SIGTERM arrives.
  void wait() const;
  // At most `timeout`; true when SIGINT or SIGTERM arrived.
  bool wait_for(std::chrono::milliseconds timeout) const;

 private:
  sigset_t set_{};
};

// --host and --port of a server's listening address (port 0: any free port).
void add_bind_options(CLI::App& cmd, std::string& host, int& port);

}  // namespace kaival::cli
