// Durability: a child `kaival serve` is killed with SIGKILL while clients are
// voting; after a restart every acknowledged vote is in the database, none twice.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "arena/store.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Starts `kaival serve` on an ephemeral port; returns pid and port.
std::pair<pid_t, int> spawn_server(const std::string& db) {
  int out[2];
  if (pipe(out) != 0) return {-1, 0};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    execl(KAIVAL_BINARY, KAIVAL_BINARY, "serve", "--db", db.c_str(), "--port", "0", "--rate", "100000", "--burst",
          "100000", static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string line;
  char c;
  while (read(out[0], &c, 1) == 1 && c != '\n') line += c;
  close(out[0]);
  size_t colon = line.rfind(':');
  int port = colon == std::string::npos ? 0 : std::atoi(line.c_str() + colon + 1);
  return {pid, port};
}

struct Child {
  pid_t pid = -1;
  ~Child() { stop(SIGKILL); }
  void stop(int sig) {
    if (pid > 0) {
      kill(pid, sig);
      waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }
};

}  // namespace

TEST(ArenaDurability, KillNineMidLoadKeepsEveryAcknowledgedVoteOnce) {
  fs::path dir = fs::temp_directory_path() / ("kaival-arena-kill-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string db = (dir / "arena.db").string();
  {
    kaival::arena::StoreOptions so;
    so.fast_password_hashing = true;
    auto s = kaival::arena::ArenaStore::open(db, so);
    int64_t admin = s->create_account("voter", "voter password", kaival::arena::Role::Voter);
    s->add_campaign(kaival::arena::load_campaign_file(std::string(KAIVAL_TESTDATA) + "/arena/arena_campaign.yaml"), admin);
  }
  Child child;
  int port;
  std::tie(child.pid, port) = spawn_server(db);
  ASSERT_GT(port, 0);

  constexpr int kClients = 8;
  std::vector<std::vector<std::string>> acked(kClients);
  std::atomic<bool> killed{false};
  std::atomic<int> acked_count{0};
  std::vector<std::thread> pool;
  for (int k = 0; k < kClients; ++k)
    pool.emplace_back([&, k] {
      httplib::Client c("127.0.0.1", port);
      c.set_connection_timeout(1);
      c.set_read_timeout(2);
      auto r = c.Post("/api/login", json{{"name", "voter"}, {"password", "voter password"}}.dump(), "application/json");
      if (!r || r->status != 200) return;
      std::string cookie = r->get_header_value("Set-Cookie");
      httplib::Headers h{{"Cookie", cookie.substr(0, cookie.find(';'))},
                         {"X-CSRF-Token", json::parse(r->body)["csrf"].get<std::string>()}};
      while (!killed) {
        auto b = c.Post("/api/arena/demo-arena/battle", h, "{}", "application/json");
        if (!b || b->status != 200) continue;
        std::string id = json::parse(b->body)["battle"];
        auto v = c.Post("/api/arena/demo-arena/vote", h, json{{"battle", id}, {"winner", "tie"}}.dump(), "application/json");
        if (v && v->status == 200) {  // acknowledged: must survive
          acked[k].push_back(id);
          acked_count++;
        }
      }
    });
  // Kill mid-load: once votes flow (however slow the machine), not at a fixed time.
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (acked_count < 40 && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  child.stop(SIGKILL);
  killed = true;
  for (auto& t : pool) t.join();
  std::set<std::string> all;
  for (auto& a : acked) all.insert(a.begin(), a.end());
  ASSERT_GT(all.size(), 10u) << "too few votes before the kill to mean anything";

  // Restart on the same database (recovers the WAL), then check from outside.
  std::tie(child.pid, port) = spawn_server(db);
  ASSERT_GT(port, 0);
  httplib::Client c("127.0.0.1", port);
  auto lb = c.Get("/api/leaderboard/demo-arena");
  ASSERT_TRUE(lb);
  EXPECT_GE(json::parse(lb->body)["battles"].get<size_t>(), all.size());
  child.stop(SIGTERM);
  kaival::store::Db raw = kaival::store::Db::open(db);
  auto q = raw.prepare("SELECT count(*) FROM votes v JOIN battles b ON b.id=v.battle_id WHERE b.public_id=?1");
  for (const auto& id : all) {
    q.reset();
    q.bind(1, id).step();
    EXPECT_EQ(q.int64(0), 1) << id;
  }
  std::printf("kill -9: %zu acknowledged votes, all present once after restart\n", all.size());
  fs::remove_all(dir);
}
