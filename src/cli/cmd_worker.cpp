// kaival worker --store postgresql://... [--run NAME] [--concurrency N] [--shard N]
//               [--lease S] [--max-attempts N] [--idle-exit S] [--id NAME]
// Answers queued eval requests (see `kaival eval --store`): claims shards with
// FOR UPDATE SKIP LOCKED, sends them to the run's server, stores the answers.
// SIGINT/SIGTERM: finish the requests in flight, then exit 0; claims not
// answered go back to the queue when their lease runs out.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "cli/commands.h"
#include "cli/stop_signals.h"
#include "eval/queue.h"
#include "store/postgres.h"

namespace kaival::cli {

void register_worker(CLI::App& app) {
  auto* cmd = app.add_subcommand("worker", "Answer eval requests queued in PostgreSQL (many machines, one run)");
  auto o = std::make_shared<eval::WorkerOptions>();
  cmd->add_option("--store", o->store_url, "postgresql://user@host:port/db")->required();
  cmd->add_option("--run", o->run, "only this run (default: any run with work)");
  cmd->add_option("--concurrency", o->concurrency, "requests in flight")->check(CLI::Range(1, 1024));
  cmd->add_option("--shard", o->shard, "requests claimed at a time")->check(CLI::Range(1, 100000));
  cmd->add_option("--lease", o->lease_s, "seconds before an unanswered claim returns to the queue")
      ->check(CLI::Range(0.5, 86400.0));
  cmd->add_option("--max-attempts", o->max_attempts, "claims per request before it is marked failed")
      ->check(CLI::Range(1, 100));
  cmd->add_option("--idle-exit", o->idle_exit_s, "exit after this many seconds with nothing to claim (default: never)");
  cmd->add_option("--id", o->worker_id, "worker name in the queue (default host:pid)");
  cmd->add_flag("--progress", o->progress, "counts on stderr");
  cmd->callback([o] {
    if (!store::is_postgres_url(o->store_url))
      throw CLI::ValidationError("--store", "expects a postgresql:// URL");
    // Stop signals are taken by a waiting thread (sigwait), never by an async handler.
    const StopSignals stop_signals;
    std::atomic<bool> stop{false};
    std::atomic<bool> done{false};
    std::thread waiter([&] {
      // Wake up periodically so that the thread ends when the worker finishes on its own.
      while (!done.load()) {
        if (stop_signals.wait_for(std::chrono::milliseconds(200))) {
          stop = true;
          std::fprintf(stderr, "worker: stopping after the requests in flight\n");
        }
      }
    });
    eval::WorkerOptions wo = *o;
    wo.stop = &stop;
    eval::WorkerStats st;
    try {
      st = eval::run_worker(wo);
    } catch (...) {
      done = true;
      waiter.join();
      throw;
    }
    done = true;
    waiter.join();
    std::fprintf(stderr, "worker: %lld answered, %lld lost to another worker, %lld failed\n",
                 static_cast<long long>(st.answered), static_cast<long long>(st.lost),
                 static_cast<long long>(st.failed));
  });
}

}  // namespace kaival::cli
