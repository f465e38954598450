// kaival serve [--db FILE|postgresql://URL] [--host 127.0.0.1] [--port N] [--campaign FILE]...
//              [--secure-cookies] [--rate N] [--threads N] [--log]
// Runs the arena web service (blind voting, expert review, leaderboards) until
// SIGINT/SIGTERM. Prints "listening on http://HOST:PORT" on stdout once bound.
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "arena/store.h"
#include "cli/commands.h"
#include "cli/stop_signals.h"
#include "core/error.h"
#include "server/arena_server.h"

namespace kaival::cli {
namespace {

struct ServeOptions {
  std::string db = "kaival-arena.db";
  std::vector<std::string> campaigns;
  server::ArenaServerOptions server;
};

void run(const ServeOptions& o) {
  const StopSignals stop_signals;

  auto store = arena::ArenaStore::open(o.db);
  for (const auto& path : o.campaigns) {
    arena::CampaignFile f = arena::load_campaign_file(path);
    const std::string& name = f.kind == "arena" ? f.arena.name : f.review.name;
    if (store->campaign(name)) {
      std::fprintf(stderr, "kaival: campaign '%s' already loaded, keeping the stored one\n", name.c_str());
      continue;
    }
    int64_t id = 0;
    try {
      id = store->add_campaign(f, 0);
    } catch (const FormatError&) {
      // Another server on the same PostgreSQL loaded it a moment ago.
      if (!store->campaign(name)) throw;
      std::fprintf(stderr, "kaival: campaign '%s' already loaded, keeping the stored one\n", name.c_str());
      continue;
    }
    if (f.kind == "review") store->assign_reviewers(id);
  }
  server::ArenaServer srv(*store, o.server);
  const int port = srv.start();
  std::printf("listening on http://%s:%d\n", o.server.host.c_str(), port);
  std::fflush(stdout);
  stop_signals.wait();
  srv.stop();
  std::fprintf(stderr, "kaival: arena server stopped\n");
}

}  // namespace

void register_serve(CLI::App& app) {
  auto opts = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "Arena web service: blind votes, expert reviews, leaderboards");
  cmd->add_option("--db", opts->db,
                  "SQLite file or postgresql:// URL shared by many servers (created and migrated when missing)");
  add_bind_options(*cmd, opts->server.host, opts->server.port);
  cmd->add_option("--campaign", opts->campaigns, "campaign YAML file(s) to load at start");
  cmd->add_flag("--secure-cookies", opts->server.secure_cookies, "mark cookies Secure (behind a TLS proxy)");
  cmd->add_option("--rate", opts->server.requests_per_second_per_ip, "requests per second per IP");
  cmd->add_option("--burst", opts->server.burst_per_ip, "request burst per IP");
  cmd->add_option("--threads", opts->server.threads, "concurrent requests");
  cmd->add_flag("--log", opts->server.log_requests, "log method, path and status of each request to stderr");
  cmd->callback([opts] { run(*opts); });
}

}  // namespace kaival::cli
