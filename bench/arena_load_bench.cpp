// Arena vote acknowledgement under load (issue 7: 2,000 votes/s, p99 < 50 ms on
// SQLite), with the load generator's own cost measured and kept small.
//
// The server (ArenaServer on a fresh SQLite store, synchronous=FULL, WAL,
// group commit) runs in this process on 127.0.0.1. Each vote is two API
// requests, as a browser makes them: POST .../battle (a new blind pair), then
// POST .../vote. Two load generators drive it for --seconds each, one after
// the other in the same run:
//   epoll:   one thread with --connections keep-alive sockets and a small
//            HTTP/1.1 state machine (a few microseconds per request);
//   threads: --connections httplib clients, one thread each (the generator
//            of tests/arena/server_test.cpp; its threads compete with the
//            server's for the cores).
// Reported per generator: acknowledged votes/s, vote latency percentiles
// (vote request sent -> 200 read), the generator's CPU and the rest of the
// process's CPU (the server's), from which the server's CPU per vote and the
// rate 2 cores would sustain with the server alone on them are derived.
// Every acknowledged vote is checked to be stored exactly once.
//
// Usage: arena_load_bench [--seconds 3] [--connections 32] [--server-threads 32]
//                         [--only threads|epoll]
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "arena/campaign.h"
#include "arena/store.h"
#include "server/arena_server.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace kaival;

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  double seconds = 3;
  int connections = 32;
  int server_threads = 32;
  std::string only;
};

double process_cpu() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

double thread_cpu() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Session {
  std::string cookie, csrf;
};

Session login(int port) {
  httplib::Client cli("127.0.0.1", port);
  auto r = cli.Post("/api/login", json{{"name", "voter"}, {"password", "voter password"}}.dump(), "application/json");
  if (!r || r->status != 200)
    throw std::runtime_error(r ? fmt::format("login failed: {} {}", r->status, r->body) : std::string("login failed: no answer"));
  std::string set = r->get_header_value("Set-Cookie");
  return {set.substr(0, set.find(';')), json::parse(r->body)["csrf"].get<std::string>()};
}

struct Result {
  std::vector<std::string> acked;
  std::vector<double> latency_ms;
  double wall = 0, generator_cpu = 0, process_cpu = 0;
  int64_t errors = 0;
};

// --- generator 1: one httplib client per thread --------------------------------------------------
Result run_threads(int port, const std::vector<Session>& sessions, double seconds) {
  Result out;
  std::vector<Result> per(sessions.size());
  std::vector<double> cpu(sessions.size());
  const double c0 = process_cpu();
  const Clock::time_point t0 = Clock::now();
  const Clock::time_point until = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> pool;
  for (size_t k = 0; k < sessions.size(); ++k)
    pool.emplace_back([&, k] {
      const double tc0 = thread_cpu();
      httplib::Client cli("127.0.0.1", port);
      httplib::Headers h{{"Cookie", sessions[k].cookie}, {"X-CSRF-Token", sessions[k].csrf}};
      while (Clock::now() < until) {
        auto b = cli.Post("/api/arena/demo-arena/battle", h, "{}", "application/json");
        if (!b || b->status != 200) {
          ++per[k].errors;
          continue;
        }
        std::string id = json::parse(b->body)["battle"];
        auto s = Clock::now();
        auto r = cli.Post("/api/arena/demo-arena/vote", h, json{{"battle", id}, {"winner", "model_b"}}.dump(),
                          "application/json");
        if (r && r->status == 200) {
          per[k].acked.push_back(id);
          per[k].latency_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
        } else {
          ++per[k].errors;
        }
      }
      cpu[k] = thread_cpu() - tc0;
    });
  for (auto& t : pool) t.join();
  out.wall = std::chrono::duration<double>(Clock::now() - t0).count();
  out.process_cpu = process_cpu() - c0;
  for (size_t k = 0; k < per.size(); ++k) {
    out.acked.insert(out.acked.end(), per[k].acked.begin(), per[k].acked.end());
    out.latency_ms.insert(out.latency_ms.end(), per[k].latency_ms.begin(), per[k].latency_ms.end());
    out.errors += per[k].errors;
    out.generator_cpu += cpu[k];
  }
  return out;
}

// --- generator 2: one thread, epoll, keep-alive sockets ------------------------------------------
struct Conn {
  int fd = -1;
  const Session* session = nullptr;
  std::string out, in;
  size_t sent = 0;
  bool voting = false;  // waiting for the vote's answer (else the battle's)
  std::string battle;
  Clock::time_point vote_sent;
};

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    throw std::runtime_error(fmt::format("connect failed: {}", std::strerror(errno)));
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

std::string request(const Session& s, const std::string& path, const std::string& body) {
  return fmt::format(
      "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {}\r\nX-CSRF-Token: {}\r\nContent-Type: application/json\r\n"
      "Content-Length: {}\r\n\r\n{}",
      path, s.cookie, s.csrf, body.size(), body);
}

// A whole response in `in`: returns {status, body, close}; status 0 while incomplete.
struct Parsed {
  int status = 0;
  std::string body;
  bool close = false;
  size_t used = 0;
};

Parsed parse_response(const std::string& in) {
  Parsed p;
  size_t end = in.find("\r\n\r\n");
  if (end == std::string::npos) return p;
  std::string head = in.substr(0, end);
  std::string lower = head;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  size_t cl = lower.find("\r\ncontent-length:");
  size_t len = cl == std::string::npos ? 0 : std::stoul(head.substr(cl + 17));
  if (in.size() < end + 4 + len) return p;
  p.status = std::stoi(head.substr(9, 3));
  p.body = in.substr(end + 4, len);
  p.close = lower.find("\r\nconnection: close") != std::string::npos;
  p.used = end + 4 + len;
  return p;
}

Result run_epoll(int port, const std::vector<Session>& sessions, double seconds) {
  Result out;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<Conn> conns(sessions.size());
  auto arm = [&](size_t k, bool want_write) {
    epoll_event ev{};
    ev.events = want_write ? EPOLLOUT : EPOLLIN;
    ev.data.u64 = k;
    epoll_ctl(ep, EPOLL_CTL_MOD, conns[k].fd, &ev);
  };
  auto open_conn = [&](size_t k) {
    Conn& c = conns[k];
    c.fd = connect_to(port);
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u64 = k;
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  };
  auto send_battle = [&](size_t k) {
    Conn& c = conns[k];
    c.out = request(*c.session, "/api/arena/demo-arena/battle", "{}");
    c.sent = 0;
    c.voting = false;
  };
  const double c0 = process_cpu(), tc0 = thread_cpu();
  const Clock::time_point t0 = Clock::now();
  const Clock::time_point until = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (size_t k = 0; k < conns.size(); ++k) {
    conns[k].session = &sessions[k];
    open_conn(k);
    send_battle(k);
  }
  size_t open = conns.size();
  // Closes connection k; reopens it unless the time is up. False: k is done.
  auto close_conn = [&](size_t k) {
    Conn& c = conns[k];
    epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    c.in.clear();
    if (Clock::now() >= until) {
      c.fd = -1;
      --open;
      return false;
    }
    open_conn(k);
    return true;
  };
  std::vector<epoll_event> evs(conns.size());
  char buf[16384];
  while (open > 0) {
    int n = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 1000);
    if (n < 0 && errno != EINTR) throw std::runtime_error("epoll_wait failed");
    for (int i = 0; i < n; ++i) {
      const size_t k = evs[i].data.u64;
      Conn& c = conns[k];
      if (c.fd < 0) continue;
      if (evs[i].events & EPOLLOUT) {
        ssize_t w = ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (w > 0) c.sent += static_cast<size_t>(w);
        if (c.sent == c.out.size()) arm(k, false);
        continue;
      }
      ssize_t r = ::recv(c.fd, buf, sizeof buf, 0);
      if (r <= 0) {
        if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        ++out.errors;  // closed without an answer: reconnect and start a new pair
        if (close_conn(k)) send_battle(k);
        continue;
      }
      c.in.append(buf, static_cast<size_t>(r));
      Parsed p = parse_response(c.in);
      if (p.status == 0) continue;
      c.in.erase(0, p.used);
      if (!c.voting) {
        if (p.status == 200) {
          c.battle = json::parse(p.body)["battle"].get<std::string>();
          c.out = request(*c.session, "/api/arena/demo-arena/vote",
                          json{{"battle", c.battle}, {"winner", "model_b"}}.dump());
          c.sent = 0;
          c.voting = true;
          c.vote_sent = Clock::now();
        } else {
          ++out.errors;
          send_battle(k);
        }
      } else {
        if (p.status == 200) {
          out.acked.push_back(c.battle);
          out.latency_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - c.vote_sent).count());
        } else {
          ++out.errors;
        }
        send_battle(k);
      }
      if (p.close || Clock::now() >= until) {  // the server ends keep-alive after some requests
        close_conn(k);
        continue;
      }
      arm(k, true);
    }
  }
  out.wall = std::chrono::duration<double>(Clock::now() - t0).count();
  out.generator_cpu = thread_cpu() - tc0;
  out.process_cpu = process_cpu() - c0;
  ::close(ep);
  return out;
}

double pct(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&] { return std::string(i + 1 < argc ? argv[++i] : ""); };
    if (a == "--seconds") o.seconds = std::stod(next());
    else if (a == "--connections") o.connections = std::stoi(next());
    else if (a == "--server-threads") o.server_threads = std::stoi(next());
    else if (a == "--only") o.only = next();
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  fs::path dir = fs::temp_directory_path() / ("kaival-arena-load-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  try {
    arena::StoreOptions so;
    so.fast_password_hashing = true;
    auto store = arena::ArenaStore::open((dir / "arena.db").string(), so);
    int64_t admin = store->create_account("admin", "admin password", arena::Role::Admin);
    store->create_account("voter", "voter password", arena::Role::Voter);
    arena::CampaignFile cf =
        arena::load_campaign_file(std::string(KAIVAL_SOURCE_DIR) + "/testdata/arena/arena_campaign.yaml");
    cf.arena.caps = {100000000, 100000000};
    store->add_campaign(cf, admin);
    server::ArenaServerOptions so2;
    so2.requests_per_second_per_ip = 1e9;
    so2.burst_per_ip = 1e9;
    so2.logins_per_minute_per_ip = 100000;
    so2.threads = o.server_threads;
    server::ArenaServer srv(*store, so2);
    const int port = srv.start();
    std::vector<Session> sessions;
    for (int k = 0; k < o.connections; ++k) sessions.push_back(login(port));
    fmt::print("arena_load_bench: {} connections, {} server threads, {:.1f} s per generator, {} cores, load {}\n",
               o.connections, o.server_threads, o.seconds, std::thread::hardware_concurrency(),
               [] {
                 double l[3] = {0, 0, 0};
                 getloadavg(l, 3);
                 return fmt::format("{:.2f} {:.2f} {:.2f}", l[0], l[1], l[2]);
               }());
    std::set<std::string> all;
    int64_t acked_total = 0;
    for (std::string gen : {"epoll", "threads"}) {
      if (!o.only.empty() && o.only != gen) continue;
      Result r = gen == "threads" ? run_threads(port, sessions, o.seconds) : run_epoll(port, sessions, o.seconds);
      const double votes = static_cast<double>(r.acked.size());
      const double server_cpu = r.process_cpu - r.generator_cpu;
      const double per_vote_ms = votes > 0 ? server_cpu / votes * 1e3 : 0;
      fmt::print(
          "{:<8} {:>7.0f} votes/s ({} in {:.2f} s, {} errors)  vote ack p50 {:.1f} ms  p99 {:.1f} ms  | CPU s: "
          "generator {:.2f}, server {:.2f} -> server {:.3f} ms/vote, 2 cores for the server alone: ~{:.0f} votes/s\n",
          gen, votes / r.wall, r.acked.size(), r.wall, r.errors, pct(r.latency_ms, 0.5), pct(r.latency_ms, 0.99),
          r.generator_cpu, server_cpu, per_vote_ms, per_vote_ms > 0 ? 2000.0 / per_vote_ms : 0.0);
      acked_total += static_cast<int64_t>(r.acked.size());
      all.insert(r.acked.begin(), r.acked.end());
    }
    srv.stop();
    const bool once = static_cast<int64_t>(all.size()) == acked_total && store->vote_count() == acked_total;
    fmt::print("stored votes {} = acknowledged {}: {}\n", store->vote_count(), acked_total, once ? "yes" : "NO");
    store.reset();
    fs::remove_all(dir);
    return once ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "arena_load_bench: %s\n", e.what());
    fs::remove_all(dir);
    return 1;
  }
}
