// kaival serve-model MODEL [--host 127.0.0.1] [--port N] [--ctx N] [--parallel N] [--batch N]
//                    [--queue N] [--name ID]
// Serves a local model over an OpenAI-compatible HTTP API until SIGINT/SIGTERM.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/stop_signals.h"
#include "server/openai_server.h"

namespace kaival::cli {
namespace {

struct ServeCliOptions {
  std::string model, name;
  server::ServerOptions server;
};

void run(const ServeCliOptions& o) {
  const StopSignals stop_signals;  // before the server's threads start

  const auto served = server::ServedModel::open(o.model, o.name);
  server::OpenAIServer srv(served, o.server);
  const int port = srv.start();
  std::fprintf(stderr, "%s\n",
               fmt::format("kaival: serving '{}' on http://{}:{}/v1 (context {} tokens, {} parallel, batches of {})",
                           served->id, o.server.host, port, srv.context(), o.server.max_running,
                           std::max(1, o.server.max_batch))
                   .c_str());
  std::fflush(stderr);
  stop_signals.wait();
  std::fprintf(stderr, "kaival: stopping\n");
  srv.stop();
}

}  // namespace

void register_serve_model(CLI::App& app) {
  auto o = std::make_shared<ServeCliOptions>();
  auto* cmd = app.add_subcommand("serve-model", "Serve a local model over an OpenAI-compatible HTTP API");
  cmd->add_option("model", o->model, "model folder, weights file or .gguf")->required();
  add_bind_options(*cmd, o->server.host, o->server.port);
  cmd->add_option("--ctx", o->server.context, "context length per request; 0 = the model's (at most 4096)")
      ->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("--parallel", o->server.max_running, "requests generating at the same time")
      ->capture_default_str()->check(CLI::Range(1, 256));
  cmd->add_option("--batch", o->server.max_batch,
                  "sequences decoded together in one step (continuous batching); 1 = off")
      ->capture_default_str()->check(CLI::Range(1, 256));
  cmd->add_option("--queue", o->server.max_waiting, "requests that may wait for a slot (more get 503)")
      ->capture_default_str()->check(CLI::Range(0, 4096));
  cmd->add_option("--name", o->name, "model id reported to clients (default: folder or file name)");
  cmd->callback([o] { run(*o); });
}

}  // namespace kaival::cli
