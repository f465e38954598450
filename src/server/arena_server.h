#pragma once
// The arena web service (`kaival serve`): blind side-by-side voting, expert
// review, leaderboards, admin pages; server-rendered HTML in Korean and
// English plus a small JSON API used by tests and load generators.
//
//   GET  /                      campaigns               GET /leaderboard/<c>  public ratings, charts
//   GET  /login  POST /login    sign in (double-submit CSRF cookie)
//   GET  /join   POST /join     redeem an invitation    POST /logout
//   GET  /arena/<c>             a new blind pair        POST /arena/<c>/vote
//   GET  /review, /review/<id>  assigned items          POST /review/<id>
//   GET  /admin                 POST /admin/campaign, /admin/invite, /admin/suspects/<c>, /admin/assign/<c>
//   POST /api/login             {"name","password"} -> {"csrf"} + session cookie
//   POST /api/arena/<c>/battle  -> {"battle","prompt","answer_a","answer_b"}   (X-CSRF-Token header)
//   POST /api/arena/<c>/vote    {"battle","winner"} -> {"status"}             (X-CSRF-Token header)
//   POST /arena/<c>/live        a voter's own prompt (form field `prompt`): both answers, then the vote form
//   POST /api/arena/<c>/live    {"prompt"} -> {"battle","prompt","answer_a","answer_b"} (X-CSRF-Token header)
//   POST /api/arena/<c>/live/stream {"prompt"} -> server-sent events: both answers piece by piece, then
//                               the battle id (or why the pair is void); the page's script uses it
//   GET  /api/admin/budget/<c>  live spending against the campaign's budget: spent and reserved (admins)
//   GET  /api/leaderboard/<c>   ratings as JSON
// Every POST needs the session's CSRF token (form field `csrf` or header
// X-CSRF-Token); admin and expert pages check the role on the server.
#include <cstddef>
#include <memory>
#include <string>

#include "arena/store.h"

namespace kaival::server {

struct ArenaServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;                            // 0: ephemeral, returned by start()
  bool secure_cookies = false;             // add `Secure` (set when served behind TLS)
  size_t max_body_bytes = size_t{2} << 20; // larger requests get 413
  int threads = 32;                        // concurrent requests (votes wait for their commit)
  double requests_per_second_per_ip = 50;  // token bucket; over it: 429
  double burst_per_ip = 200;
  int logins_per_minute_per_ip = 20;
  int leaderboard_resamples = 200;         // web view; exports use 1,000
  bool log_requests = false;               // method, path (never the query) and status to stderr
  int live_retries = 1;                    // per backend request of a live prompt (the voter waits)
};

class ArenaServer {
 public:
  ArenaServer(arena::ArenaStore& store, ArenaServerOptions options = {});
  ~ArenaServer();
  ArenaServer(const ArenaServer&) = delete;
  ArenaServer& operator=(const ArenaServer&) = delete;

  // Binds and serves on background threads; returns the port. Throws IoError.
  int start();
  // Blocks serving on the calling thread (for `kaival serve`); returns after stop().
  void run_blocking();
  void stop();  // idempotent

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kaival::server
