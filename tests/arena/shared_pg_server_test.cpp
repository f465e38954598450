// Two arena web servers on 127.0.0.1 sharing one PostgreSQL database (from
// scripts/pg), as behind a load balancer: voters sign in on one and vote on
// both, and every battle is also submitted to both servers at the same moment.
// Afterwards every acknowledged vote is stored exactly once, with the winner
// of the request that was acknowledged, and no battle has two votes.
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "arena/store.h"
#include "server/arena_server.h"
#include "store/sql.h"
#include "../support/pg_cluster.h"

using namespace kaival;
using nlohmann::json;

namespace {

std::string testdata(const std::string& name) { return std::string(KAIVAL_TESTDATA) + "/arena/" + name; }

// One signed-in voter with a connection to each server; the session (and its
// CSRF token) lives in the shared database, so it is valid on both.
struct Voter {
  std::vector<std::unique_ptr<httplib::Client>> servers;
  httplib::Headers headers;
  Voter(const std::vector<int>& ports, const std::string& name, const std::string& password) {
    for (int p : ports) servers.push_back(std::make_unique<httplib::Client>("127.0.0.1", p));
    auto r = servers[0]->Post("/api/login", json{{"name", name}, {"password", password}}.dump(), "application/json");
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
    if (!r || r->status != 200) return;
    std::string set = r->get_header_value("Set-Cookie");
    headers = {{"Cookie", set.substr(0, set.find(';'))}, {"X-CSRF-Token", json::parse(r->body)["csrf"]}};
  }
  httplib::Result post(size_t server, const std::string& path, const json& body) {
    return servers[server]->Post(path.c_str(), headers, body.dump(), "application/json");
  }
};

}  // namespace

TEST(SharedPostgres, TwoServersStoreEachAcknowledgedVoteExactlyOnce) {
  const std::string url = pgtest::cluster().fresh_database();
  ASSERT_FALSE(url.empty()) << "PostgreSQL unavailable: " << pgtest::cluster().error();
  arena::StoreOptions so;
  so.fast_password_hashing = true;
  auto store_a = arena::ArenaStore::open(url, so);
  auto store_b = arena::ArenaStore::open(url, so);  // its own connection, as on another machine
  int64_t admin = store_a->create_account("admin", "admin password", arena::Role::Admin);
  store_a->add_campaign(arena::load_campaign_file(testdata("arena_campaign.yaml")), admin);
  constexpr int kVoters = 8, kBattlesPerVoter = 30;
  for (int k = 0; k < kVoters; ++k)
    store_b->create_account("voter" + std::to_string(k), "voter password", arena::Role::Voter);

  server::ArenaServerOptions o;
  o.requests_per_second_per_ip = 1e6;  // all clients share 127.0.0.1
  o.burst_per_ip = 1e6;
  server::ArenaServer srv_a(*store_a, o), srv_b(*store_b, o);
  std::vector<int> ports = {srv_a.start(), srv_b.start()};

  struct Outcome {
    int acked = 0;          // 200 answers for this battle
    int refused = 0;        // 409: already voted
    std::string winner;     // the acknowledged request's
  };
  std::mutex mu;
  std::map<std::string, Outcome> outcomes;
  std::atomic<int> other_status{0};
  std::vector<std::thread> pool;
  for (int k = 0; k < kVoters; ++k)
    pool.emplace_back([&, k] {
      Voter v(ports, "voter" + std::to_string(k), "voter password");
      for (int n = 0; n < kBattlesPerVoter; ++n) {
        auto b = v.post(n % 2, "/api/arena/demo-arena/battle", json::object());  // served by either server
        if (!b || b->status != 200) {
          ++other_status;
          continue;
        }
        std::string id = json::parse(b->body)["battle"];
        // The same battle to both servers at once, with different winners.
        std::optional<httplib::Result> on_b_slot;
        std::thread second([&] { on_b_slot.emplace(v.post(1, "/api/arena/demo-arena/vote", {{"battle", id}, {"winner", "model_b"}})); });
        auto on_a = v.post(0, "/api/arena/demo-arena/vote", {{"battle", id}, {"winner", "model_a"}});
        second.join();
        httplib::Result& on_b = *on_b_slot;
        std::lock_guard lk(mu);
        Outcome& out = outcomes[id];
        for (auto* r : {&on_a, &on_b}) {
          if (!*r) {
            ++other_status;
          } else if ((*r)->status == 200) {
            ++out.acked;
            out.winner = r == &on_a ? "model_a" : "model_b";
          } else if ((*r)->status == 409) {
            ++out.refused;
          } else {
            ++other_status;
          }
        }
      }
    });
  for (auto& t : pool) t.join();
  srv_a.stop();
  srv_b.stop();

  EXPECT_EQ(other_status.load(), 0) << "every request got 200 or 409";
  ASSERT_EQ(outcomes.size(), static_cast<size_t>(kVoters * kBattlesPerVoter));
  int acked = 0, won_on_b = 0;
  for (const auto& [id, out] : outcomes) {
    EXPECT_EQ(out.acked, 1) << id << ": acknowledged by both servers or by neither";
    EXPECT_EQ(out.refused, 1) << id;
    acked += out.acked;
    won_on_b += out.winner == "model_b";
  }
  std::printf("two servers: %d votes acknowledged, %d of them by the second server\n", acked, won_on_b);

  // Behind the servers: one vote per acknowledged battle, with its winner.
  EXPECT_EQ(store_a->vote_count(), acked);
  store::SqlDb db = store::SqlDb::open(url);
  auto q = db.prepare("SELECT b.public_id, v.winner, count(*) OVER (PARTITION BY v.battle_id) "
                      "FROM votes v JOIN battles b ON b.id=v.battle_id");
  int rows = 0;
  while (q.step()) {
    ++rows;
    auto it = outcomes.find(q.text(0));
    ASSERT_NE(it, outcomes.end()) << "a vote for a battle no client was served: " << q.text(0);
    EXPECT_EQ(q.int64(2), 1) << q.text(0);
    EXPECT_EQ(q.text(1), it->second.winner) << q.text(0) << ": stored winner is not the acknowledged one";
  }
  EXPECT_EQ(rows, acked);
}
