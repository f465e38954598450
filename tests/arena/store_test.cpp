// Arena store: accounts, campaigns, durable votes, caps, suspect voters,
// reviews with an append-only audit log, and the four export files, on SQLite
// and on PostgreSQL (a throwaway cluster from scripts/pg, one database per
// test); then two stores on one PostgreSQL voting on the same battles at once.
#include "arena/store.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/text.h"
#include "store/postgres.h"
#include "store/sql.h"
#include "../support/pg_cluster.h"

using namespace kaival::arena;
using kaival::csv_field;
using kaival::csv_row;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name)
      if (c == '/') c = '_';  // parameterized names: "Test/1"
    path = fs::temp_directory_path() / ("kaival-arena-" + std::to_string(::getpid()) + "-" + name);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string testdata(const std::string& name) { return std::string(KAIVAL_TESTDATA) + "/arena/" + name; }

std::unique_ptr<ArenaStore> open_at(const std::string& target) {
  StoreOptions o;
  o.fast_password_hashing = true;
  return ArenaStore::open(target, o);
}

enum class Backend { Sqlite, Postgres };

// Every ArenaStore test runs on both backends. `target()` is the SQLite file
// or the PostgreSQL URL; `raw()` opens it again for checks behind the store.
class ArenaStoreOn : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::Sqlite) {
      target_ = (d.path / "arena.db").string();
      return;
    }
    target_ = kaival::pgtest::cluster().fresh_database();
    if (target_.empty())
      GTEST_SKIP() << "PostgreSQL unavailable (scripts/pg: " << kaival::pgtest::cluster().error()
                   << "); install it with scripts/setup";
  }
  const std::string& target() const { return target_; }
  bool postgres() const { return GetParam() == Backend::Postgres; }
  std::unique_ptr<ArenaStore> open_store(const TempDir&) { return open_at(target_); }
  kaival::store::SqlDb raw() { return kaival::store::SqlDb::open(target_); }

  TempDir d;
  std::string target_;
};

std::string backend_name(const ::testing::TestParamInfo<Backend>& i) {
  return i.param == Backend::Sqlite ? "sqlite" : "postgres";
}

std::vector<json> read_jsonl(const fs::path& p) {
  std::ifstream in(p);
  std::vector<json> out;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

}  // namespace

TEST_P(ArenaStoreOn, AccountsUseArgon2idAndSessionsCarryCsrf) {
  auto s = open_store(d);
  int64_t id = s->create_account("alice", "correct horse battery", Role::Expert, "Beta AI");
  EXPECT_FALSE(s->check_password("alice", "wrong password"));
  auto a = s->check_password("alice", "correct horse battery");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->id, id);
  EXPECT_EQ(a->role, Role::Expert);
  EXPECT_THROW(s->create_account("alice", "another password", Role::Voter), kaival::FormatError);
  EXPECT_THROW(s->create_account("bob", "short", Role::Voter), kaival::FormatError);
  {
    kaival::store::SqlDb db = raw();
    auto st = db.prepare("SELECT pw_hash FROM accounts WHERE name='alice'");
    ASSERT_TRUE(st.step());
    EXPECT_EQ(st.text(0).rfind("$argon2id$", 0), 0u) << "not an Argon2id hash";
  }
  std::string token = s->create_session(id);
  auto sess = s->session(token);
  ASSERT_TRUE(sess);
  EXPECT_EQ(sess->account.name, "alice");
  EXPECT_EQ(sess->csrf.size(), 64u);
  EXPECT_FALSE(s->session(std::string(64, '0')));
  s->end_session(token);
  EXPECT_FALSE(s->session(token));

  std::string inv = s->create_invitation(Role::Voter, "", id);
  auto v = s->redeem_invitation(inv, "voter1", "a long password");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->role, Role::Voter);
  EXPECT_FALSE(s->redeem_invitation(inv, "voter2", "a long password")) << "invitation used twice";
}

TEST_P(ArenaStoreOn, IdentityLeaksAreFlaggedAndNeverServed) {
  auto s = open_store(d);
  int64_t admin = s->create_account("admin", "admin password", Role::Admin);
  int64_t cid = s->add_campaign(load_campaign_file(testdata("arena_campaign.yaml")), admin);
  EXPECT_THROW(s->add_campaign(load_campaign_file(testdata("arena_campaign.yaml")), admin), kaival::FormatError);
  for (int k = 0; k < 60; ++k) {
    auto b = s->new_battle(cid, admin, "127.0.0.1");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->answer_a.find("Alpha Labs"), std::string::npos);
    EXPECT_EQ(b->answer_b.find("Alpha Labs"), std::string::npos);
    EXPECT_NE(b->answer_a, b->answer_b);
  }
  CampaignModel m{"team-a", "Alpha Labs", {"AlphaChat"}, std::nullopt};
  EXPECT_TRUE(names_itself("built by ALPHA LABS", m));
  EXPECT_TRUE(names_itself("I am alphachat", m));
  EXPECT_FALSE(names_itself("I am a helpful assistant", m));
}

TEST_P(ArenaStoreOn, VotesAreStoredOnceAndChecked) {
  auto s = open_store(d);
  int64_t u1 = s->create_account("u1", "password one", Role::Voter);
  int64_t u2 = s->create_account("u2", "password two", Role::Voter);
  int64_t cid = s->add_campaign(load_campaign_file(testdata("arena_campaign.yaml")), u1);
  auto b = s->new_battle(cid, u1, "10.0.0.1");
  ASSERT_TRUE(b);
  EXPECT_EQ(s->vote({b->id, u2, "10.0.0.2", "model_a"}), VoteStatus::NotYourBattle);
  EXPECT_EQ(s->vote({b->id, u1, "10.0.0.1", "model_a"}), VoteStatus::Stored);
  EXPECT_EQ(s->vote({b->id, u1, "10.0.0.1", "model_b"}), VoteStatus::AlreadyVoted);
  EXPECT_EQ(s->vote({"nope", u1, "10.0.0.1", "tie"}), VoteStatus::UnknownBattle);
  auto b2 = s->new_battle(cid, u1, "10.0.0.1");
  EXPECT_THROW(s->vote({b2->id, u1, "10.0.0.1", "model_c"}), kaival::FormatError);
  EXPECT_EQ(s->vote_count(), 1);
}

TEST_P(ArenaStoreOn, CapsPerAccountAndPerIp) {
  auto s = open_store(d);
  int64_t u1 = s->create_account("u1", "password one", Role::Voter);
  int64_t u2 = s->create_account("u2", "password two", Role::Voter);
  CampaignFile f = load_campaign_file(testdata("arena_campaign.yaml"));
  f.arena.caps = {3, 5};
  int64_t cid = s->add_campaign(f, u1);
  auto vote = [&](int64_t who, const std::string& ip) {
    auto b = s->new_battle(cid, who, ip);
    return s->vote({b->id, who, ip, "tie"});
  };
  for (int k = 0; k < 3; ++k) EXPECT_EQ(vote(u1, "1.1.1.1"), VoteStatus::Stored);
  EXPECT_EQ(vote(u1, "2.2.2.2"), VoteStatus::AccountCapReached);
  EXPECT_EQ(vote(u2, "1.1.1.1"), VoteStatus::Stored);
  EXPECT_EQ(vote(u2, "1.1.1.1"), VoteStatus::Stored);
  EXPECT_EQ(vote(u2, "1.1.1.1"), VoteStatus::IpCapReached);
  EXPECT_EQ(s->vote_count(), 5);
}

TEST_P(ArenaStoreOn, CapsOfCampaignsWithDifferentLimitsCountEveryVote) {
  // The per-account count spans campaigns, and a count stops at the cap it was read for:
  // one cut short at campaign A's cap of 2 must not stand for campaign B's cap of 5.
  int64_t u = 0, a = 0, b = 0;
  {
    auto s = open_store(d);
    u = s->create_account("u", "password one", Role::Voter);
    CampaignFile fa = load_campaign_file(testdata("arena_campaign.yaml"));
    fa.arena.name = "cap-a";
    fa.arena.caps = {2, 100};
    a = s->add_campaign(fa, u);
    CampaignFile fb = fa;
    fb.arena.name = "cap-b";
    fb.arena.caps = {5, 100};
    b = s->add_campaign(fb, u);
    for (int k = 0; k < 3; ++k) {
      auto battle = s->new_battle(b, u, "1.1.1.1");
      EXPECT_EQ(s->vote({battle->id, u, "1.1.1.1", "tie"}), VoteStatus::Stored);
    }
  }
  auto s = open_store(d);  // a new server: nothing counted yet
  auto vote = [&](int64_t campaign) {
    auto battle = s->new_battle(campaign, u, "1.1.1.1");
    return s->vote({battle->id, u, "1.1.1.1", "tie"});
  };
  EXPECT_EQ(vote(a), VoteStatus::AccountCapReached);  // counted up to 2 only
  EXPECT_EQ(vote(b), VoteStatus::Stored);             // 4th
  EXPECT_EQ(vote(b), VoteStatus::Stored);             // 5th
  EXPECT_EQ(vote(b), VoteStatus::AccountCapReached);
  EXPECT_EQ(vote(a), VoteStatus::AccountCapReached);
  EXPECT_EQ(s->vote_count(), 5);
}

TEST_P(ArenaStoreOn, ConcurrentVotesShareCommitsAndEachIsStoredOnce) {
  auto s = open_store(d);
  int64_t u = s->create_account("u", "password one", Role::Voter);
  int64_t cid = s->add_campaign(load_campaign_file(testdata("arena_campaign.yaml")), u);
  constexpr int kThreads = 8, kPer = 25;
  std::vector<std::string> ids;
  for (int k = 0; k < kThreads * kPer; ++k) ids.push_back(s->new_battle(cid, u, "ip")->id);
  std::atomic<int> stored{0}, dup{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t)
    pool.emplace_back([&, t] {
      for (int k = 0; k < kPer; ++k) {
        // Each battle is voted twice from different threads: exactly one wins.
        const std::string& id = ids[(t * kPer + k)];
        const std::string& other = ids[((t + 1) % kThreads) * kPer + k];
        (s->vote({id, u, "ip", "model_a"}) == VoteStatus::Stored ? stored : dup)++;
        (s->vote({other, u, "ip", "model_b"}) == VoteStatus::Stored ? stored : dup)++;
      }
    });
  for (auto& th : pool) th.join();
  EXPECT_EQ(stored.load(), kThreads * kPer);
  EXPECT_EQ(dup.load(), kThreads * kPer);
  EXPECT_EQ(s->vote_count(), kThreads * kPer);
}

TEST_P(ArenaStoreOn, SuspectVotersAreQuarantinedNotDeletedAndAuditLogIsAppendOnly) {
  auto s = open_store(d);
  int64_t admin = s->create_account("admin", "admin password", Role::Admin);
  int64_t honest = s->create_account("honest", "password one", Role::Voter);
  int64_t lazy = s->create_account("lazy", "password two", Role::Voter);
  int64_t cid = s->add_campaign(load_campaign_file(testdata("arena_campaign.yaml")), admin);
  std::mt19937 rng(3);
  for (int k = 0; k < 40; ++k) {
    auto b = s->new_battle(cid, honest, "a");
    s->vote({b->id, honest, "a", rng() % 2 ? "model_a" : "model_b"});
    auto c = s->new_battle(cid, lazy, "b");
    s->vote({c->id, lazy, "b", "model_a"});  // always the left answer
  }
  SuspectRules rules;
  rules.too_fast_ms = 0;  // the test votes instantly; check only the side rule here
  auto found = s->detect_suspects(cid, rules, admin);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].account, "lazy");
  EXPECT_EQ(found[0].reason, "same_side");
  EXPECT_EQ(s->vote_count(), 80) << "quarantine must not delete";
  EXPECT_EQ(s->ratings(cid, 0, 1).battles, 40);
  rules.too_fast_ms = 60000;  // now everyone is "too fast"
  found = s->detect_suspects(cid, rules, admin);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].reason, "too_fast");
  EXPECT_EQ(s->ratings(cid, 0, 1).battles, 0);

  kaival::store::SqlDb db = raw();
  EXPECT_THROW(db.exec("UPDATE audit_log SET action='x'"), kaival::IoError);
  EXPECT_THROW(db.exec("DELETE FROM audit_log"), kaival::IoError);
  if (postgres()) {
    EXPECT_THROW(db.exec("TRUNCATE audit_log"), kaival::IoError);
    auto v = db.prepare("SELECT max(version) FROM kaival_migrations WHERE component='arena'");
    ASSERT_TRUE(v.step());
    EXPECT_EQ(v.int64(0), 4);
  } else {
    auto v = db.prepare("PRAGMA user_version");
    v.step();
    EXPECT_EQ(v.int64(0), 5);
  }
}

TEST_P(ArenaStoreOn, LivePromptMigrationUpgradesAStoreWithData) {
  // A store at the schema before live prompts (SQLite 3, PostgreSQL 2), holding a campaign prompt with two answers.
  auto all = ArenaStore::schema_migrations(postgres());
  auto before = all.first(postgres() ? 1 : 2);
  if (postgres()) {
    auto pg = kaival::store::PgDb::connect(target());
    kaival::store::migrate(pg, "arena", before);
  } else {
    auto db = kaival::store::Db::open(target());
    kaival::store::migrate(db, before);
  }
  {
    kaival::store::SqlDb db = raw();
    db.exec("INSERT INTO accounts(name, pw_hash, role, created_ms) VALUES ('old', 'x', 'voter', 0)");
    db.exec("INSERT INTO campaigns(name, kind, spec, created_ms) VALUES ('old-arena', 'arena', '{}', 0)");
    auto cid = db.prepare("SELECT id FROM campaigns");
    cid.step();
    db.prepare("INSERT INTO models(campaign_id, name) VALUES (?1, 'm1'), (?1, 'm2')").bind(1, cid.int64(0)).run();
    auto pid = db.prepare("INSERT INTO prompts(campaign_id, key, text) VALUES (?1, 'p1', 'old prompt') RETURNING id")
                   .bind(1, cid.int64(0))
                   .insert_returning_id();
    db.prepare("INSERT INTO answers(prompt_id, model, text) VALUES (?1, 'm1', 'one'), (?1, 'm2', 'two')")
        .bind(1, pid.value())
        .run();
  }
  auto s = open_store(d);
  int64_t cid = s->campaign("old-arena").value().id;
  int64_t voter = s->account_by_name("old").value().id;
  EXPECT_FALSE(s->live_campaign(cid).enabled);
  CampaignModel m1, m2;
  m1.id = "m1";
  m2.id = "m2";
  m2.organization = "Em Two Labs";
  LiveBattle live = s->add_live_battle(cid, voter, "10.0.0.1", "a voter's prompt", {m1, "uno"}, {m2, "dos"});
  ASSERT_TRUE(live.battle);
  EXPECT_EQ(live.battle->answer_b, "dos");
  EXPECT_EQ(s->vote({live.battle->id, voter, "10.0.0.1", "tie"}), VoteStatus::Stored);
  for (int k = 0; k < 10; ++k)
    EXPECT_EQ(s->new_battle(cid, voter, "10.0.0.1").value().prompt, "old prompt") << "live prompts are never re-served";
  LiveBattle leak = s->add_live_battle(cid, voter, "10.0.0.1", "who?", {m1, "fine"}, {m2, "By em two labs."});
  EXPECT_FALSE(leak.battle);
  EXPECT_EQ(leak.leaked, std::vector<std::string>{"m2"});
  s->record_live_failure(cid, voter, "m1: backend did not answer");
  EXPECT_EQ(s->live_attempts(voter, std::chrono::hours(1)), 3);
  EXPECT_EQ(s->ratings(cid, 0, 1).battles, 1);
  // Spending (the migration after live prompts) works on the upgraded store too.
  s->record_live_usage(cid, voter, {"m1", 10, 20, false});
  EXPECT_EQ(s->live_budget(cid).completion_tokens, 20);
  kaival::store::SqlDb db = raw();
  auto v = db.prepare(postgres() ? "SELECT max(version) FROM kaival_migrations WHERE component='arena'"
                                 : "PRAGMA user_version");
  ASSERT_TRUE(v.step());
  EXPECT_EQ(v.int64(0), static_cast<int64_t>(all.size()));
}

TEST_P(ArenaStoreOn, LiveUsageIsStoredAndCountedAgainstTheBudget) {
  auto s = open_store(d);
  int64_t admin = s->create_account("admin", "admin password", Role::Admin);
  int64_t voter = s->create_account("voter", "voter password", Role::Voter);
  auto file = parse_campaign(R"(kind: arena
name: spend
live_prompts: true
budget:
  max_completion_tokens: 100
  max_completion_tokens_per_model: 40
  max_cost: 1.0
  cost_per_1m_input: 1000
  cost_per_1m_output: 10000
models:
  - id: m1
    backend: {base_url: 'http://127.0.0.1:1', max_tokens: 10}
  - id: m2
    backend: {base_url: 'http://127.0.0.1:2', max_tokens: 10}
  - id: m3
    backend: {base_url: 'http://127.0.0.1:3', cost_per_1m_output: 0, max_tokens: 10}
)",
                             "spend.yaml");
  int64_t cid = s->add_campaign(file, admin);
  BudgetStatus fresh = s->live_budget(cid);
  EXPECT_EQ(fresh.completion_tokens, 0);
  EXPECT_EQ(fresh.remaining_tokens.value_or(-1), 100);
  EXPECT_FALSE(fresh.exhausted);
  EXPECT_EQ(fresh.available, (std::vector<std::string>{"m1", "m2", "m3"}));
  EXPECT_EQ(s->live_campaign(cid).budget.max_completion_tokens_per_model, 40);

  s->record_live_usage(cid, voter, {"m1", 50, 30, false});
  s->record_live_usage(cid, voter, {"m1", 10, 10, true});  // counted: the backend sent no usage
  s->record_live_usage(cid, voter, {"m3", 100, 25, false});
  BudgetStatus b = s->live_budget(cid);
  ASSERT_EQ(b.models.size(), 3u);
  EXPECT_EQ(b.models[0].model, "m1");
  EXPECT_EQ(b.models[0].requests, 2);
  EXPECT_EQ(b.models[0].prompt_tokens, 60);
  EXPECT_EQ(b.models[0].completion_tokens, 40);
  EXPECT_TRUE(b.models[0].spent) << "40 of 40 per model";
  EXPECT_EQ(b.models[0].remaining_tokens.value_or(-1), 0);
  EXPECT_NEAR(b.models[0].cost, (60 * 1000.0 + 40 * 10000.0) / 1e6, 1e-12);
  EXPECT_EQ(b.models[1].requests, 0);
  EXPECT_EQ(b.models[2].remaining_tokens.value_or(-1), 15);
  EXPECT_NEAR(b.models[2].cost, 100 * 1000.0 / 1e6, 1e-12) << "m3's own output price (0) overrides the default";
  EXPECT_EQ(b.completion_tokens, 65);
  EXPECT_EQ(b.remaining_tokens.value_or(-1), 35);
  EXPECT_NEAR(b.cost, 0.56, 1e-9);
  ASSERT_TRUE(b.remaining_cost);
  EXPECT_NEAR(*b.remaining_cost, 0.44, 1e-9);
  EXPECT_FALSE(b.exhausted);
  EXPECT_EQ(b.available, (std::vector<std::string>{"m2", "m3"}));

  // The money cap: 0.44 left, m2 spends 0.5 more.
  s->record_live_usage(cid, voter, {"m2", 0, 50, false});
  b = s->live_budget(cid);
  EXPECT_TRUE(b.exhausted);
  EXPECT_EQ(b.remaining_cost.value_or(-1), 0.0);
  EXPECT_TRUE(b.available.empty());
  EXPECT_TRUE(b.models[1].spent) << "50 over the per-model 40";

  kaival::store::SqlDb db = raw();
  auto rows = db.prepare("SELECT count(*), sum(counted), sum(completion_tokens) FROM live_usage WHERE campaign_id=?1");
  rows.bind(1, cid);
  ASSERT_TRUE(rows.step());
  EXPECT_EQ(rows.int64(0), 4);
  EXPECT_EQ(rows.int64(1), 1);
  EXPECT_EQ(rows.int64(2), 115);
}

// A live campaign of three models whose answers may take 10 tokens each; `budget` is its budget block.
int64_t add_reserving_campaign(ArenaStore& s, int64_t admin, const std::string& name, const std::string& budget) {
  return s.add_campaign(parse_campaign(fmt::format(R"(kind: arena
name: {}
live_prompts: true
budget: {}
models:
  - id: m1
    backend: {{base_url: 'http://127.0.0.1:1', max_tokens: 10}}
  - id: m2
    backend: {{base_url: 'http://127.0.0.1:2', max_tokens: 10}}
  - id: m3
    backend: {{base_url: 'http://127.0.0.1:3', max_tokens: 10}}
)",
                                                   name, budget),
                                       name + ".yaml"),
                        admin);
}

// `tries` pair starts at once, spread over `stores` (servers sharing the
// database: separate connections); returns the pairs that started.
std::vector<LivePair> start_at_once(std::vector<std::unique_ptr<ArenaStore>>& stores, int tries, int64_t cid,
                                    int64_t voter, const std::string& prompt) {
  std::mutex mu;
  std::vector<LivePair> started;
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < tries; ++k)
    threads.emplace_back([&, k] {
      ArenaStore& s = *stores[static_cast<size_t>(k) % stores.size()];
      ready.fetch_add(1);
      while (ready.load() < tries) std::this_thread::yield();  // all start together
      auto p = s.start_live_pair(cid, voter, prompt, std::chrono::minutes(5));
      std::lock_guard lk(mu);
      if (p) started.push_back(std::move(*p));
    });
  for (auto& t : threads) t.join();
  return started;
}

TEST_P(ArenaStoreOn, ConcurrentLivePairStartsNeverPassTheBudget) {
  std::vector<std::unique_ptr<ArenaStore>> stores;
  for (int k = 0; k < 4; ++k) stores.push_back(open_store(d));
  ArenaStore& s = *stores[0];
  int64_t admin = s.create_account("admin", "admin password", Role::Admin);
  int64_t voter = s.create_account("voter", "voter password", Role::Voter);
  // Tokens: a pair's worst case is 20 completion tokens, so 2 pairs fit in 50.
  int64_t tokens = add_reserving_campaign(s, admin, "tokens", "{max_completion_tokens: 50}");
  // Money: output 1 a token, input 0.1 a token. An answer to "hi" may cost
  // 10 + 0.1 x (2 bytes + 64 template tokens) = 16.6, a pair 33.2: 2 pairs fit in 70.
  int64_t money = add_reserving_campaign(s, admin, "money",
                                         "{max_cost: 70, cost_per_1m_input: 100000, cost_per_1m_output: 1000000}");
  EXPECT_EQ(live_worst_case(s.live_campaign(tokens).models[0], "hi").prompt_tokens, 2 + kChatTemplateTokens);

  std::vector<LivePair> started = start_at_once(stores, 12, tokens, voter, "hi");
  ASSERT_EQ(started.size(), 2u) << "12 servers' threads at once, room for 2 pairs";
  for (const auto& p : started) {
    EXPECT_NE(p.a.id, p.b.id);
    EXPECT_EQ(p.reservation.size(), 32u);
  }
  BudgetStatus b = s.live_budget(tokens);
  EXPECT_EQ(b.pairs_in_flight, 2);
  EXPECT_EQ(b.reserved_completion_tokens, 40);
  EXPECT_EQ(b.reserved_prompt_tokens, 4 * (2 + kChatTemplateTokens));
  EXPECT_EQ(b.completion_tokens, 0) << "nothing spent yet";
  EXPECT_EQ(b.remaining_tokens.value_or(-1), 10);
  EXPECT_TRUE(b.exhausted) << "10 left, a pair needs 20";
  EXPECT_FALSE(s.start_live_pair(tokens, voter, "hi", std::chrono::minutes(5)));

  // A pair finishes: its reservation (20) becomes its actual usage (7 + 3),
  // which makes room for exactly one more pair.
  s.finish_live_pair(tokens, voter, started[0].reservation,
                     {{started[0].a.id, 5, 7, false}, {started[0].b.id, 5, 3, false}});
  b = s.live_budget(tokens);
  EXPECT_EQ(b.pairs_in_flight, 1);
  EXPECT_EQ(b.reserved_completion_tokens, 20);
  EXPECT_EQ(b.completion_tokens, 10);
  EXPECT_EQ(b.remaining_tokens.value_or(-1), 20);
  std::vector<LivePair> more = start_at_once(stores, 8, tokens, voter, "hi");
  EXPECT_EQ(more.size(), 1u);
  b = s.live_budget(tokens);
  EXPECT_EQ(b.completion_tokens + b.reserved_completion_tokens, 50) << "spent + reserved never pass the cap";

  // The money cap, with the prompt's worst case in it.
  std::vector<LivePair> paid = start_at_once(stores, 12, money, voter, "hi");
  EXPECT_EQ(paid.size(), 2u);
  b = s.live_budget(money);
  EXPECT_NEAR(b.reserved_cost, 4 * 16.6, 1e-9);
  EXPECT_NEAR(b.remaining_cost.value_or(-1), 70 - 4 * 16.6, 1e-9);
  EXPECT_EQ(b.cost, 0.0);
  // A longer prompt reserves more. One pair finishes having cost nothing: 36.8
  // left. A 21-byte prompt's pair may cost 2 x (10 + 0.1 x 85) = 37: refused;
  // a 20-byte one's 36.8: fits exactly.
  s.finish_live_pair(money, voter, paid[0].reservation, {{paid[0].a.id, 0, 0, false}});
  EXPECT_NEAR(s.live_budget(money).remaining_cost.value_or(-1), 36.8, 1e-9);
  EXPECT_FALSE(s.start_live_pair(money, voter, std::string(21, 'x'), std::chrono::minutes(5)));
  EXPECT_TRUE(s.start_live_pair(money, voter, std::string(20, 'x'), std::chrono::minutes(5)));
  EXPECT_NEAR(s.live_budget(money).remaining_cost.value_or(-1), 0.0, 1e-9);
}

TEST_P(ArenaStoreOn, LiveReservationsOfAStoppedServerLapse) {
  auto s = open_store(d);
  int64_t admin = s->create_account("admin", "admin password", Role::Admin);
  int64_t voter = s->create_account("voter", "voter password", Role::Voter);
  int64_t cid = add_reserving_campaign(*s, admin, "lapse", "{max_completion_tokens: 20}");
  // A server takes the only pair's room, then dies before finishing it.
  ASSERT_TRUE(s->start_live_pair(cid, voter, "hi", std::chrono::milliseconds(1500)));
  s.reset();
  auto restarted = open_store(d);
  EXPECT_FALSE(restarted->start_live_pair(cid, voter, "hi", std::chrono::minutes(5))) << "still held";
  EXPECT_EQ(restarted->live_budget(cid).pairs_in_flight, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(1600));
  BudgetStatus b = restarted->live_budget(cid);
  EXPECT_EQ(b.pairs_in_flight, 0) << "lapsed";
  EXPECT_EQ(b.remaining_tokens.value_or(-1), 20);
  auto p = restarted->start_live_pair(cid, voter, "hi", std::chrono::minutes(5));
  ASSERT_TRUE(p);
  kaival::store::SqlDb db = raw();
  auto q = db.prepare("SELECT count(*) FROM live_reservations");
  ASSERT_TRUE(q.step());
  EXPECT_EQ(q.int64(0), 2) << "the lapsed rows are gone, the new pair's two are there";
  auto a = db.prepare("SELECT count(*) FROM audit_log WHERE action='live.reservation_lapsed'");
  ASSERT_TRUE(a.step());
  EXPECT_EQ(a.int64(0), 1);
  // Finishing a reservation twice, or after it lapsed, records the usage once and no more.
  restarted->finish_live_pair(cid, voter, p->reservation, {{p->a.id, 1, 2, false}});
  restarted->finish_live_pair(cid, voter, p->reservation, {});
  b = restarted->live_budget(cid);
  EXPECT_EQ(b.pairs_in_flight, 0);
  EXPECT_EQ(b.completion_tokens, 2);
}

TEST_P(ArenaStoreOn, ReviewAssignmentAvoidsConflictsAndEditsAreAudited) {
  auto s = open_store(d);
  int64_t admin = s->create_account("admin", "admin password", Role::Admin);
  int64_t e_alpha = s->create_account("e-alpha", "password one", Role::Expert, "Alpha Labs");
  int64_t e_beta = s->create_account("e-beta", "password two", Role::Expert, "beta ai");
  int64_t e_free = s->create_account("e-free", "password three", Role::Expert, "University");
  int64_t cid = s->add_campaign(load_campaign_file(testdata("review_campaign.yaml")), admin);
  EXPECT_EQ(s->assign_reviewers(cid), 0);
  auto of = [&](int64_t who) {
    std::vector<std::string> keys;
    for (auto& a : s->assignments(who)) keys.push_back(a.item_key);
    return keys;
  };
  EXPECT_EQ(of(e_alpha), (std::vector<std::string>{"report-b"}));
  EXPECT_EQ(of(e_beta), (std::vector<std::string>{"report-a"}));  // affiliation compared case-insensitively
  EXPECT_EQ(of(e_free), (std::vector<std::string>{"report-a", "report-b"}));
  int64_t item_a = s->assignments(e_beta)[0].item_id;
  EXPECT_THROW(s->submit_review(e_alpha, item_a, {{"rigor", {4, "x"}}}), kaival::FormatError) << "not assigned";
  EXPECT_THROW(s->submit_review(e_beta, item_a, {{"rigor", {6, "x"}}}), kaival::FormatError) << "off scale";
  EXPECT_THROW(s->submit_review(e_beta, item_a, {{"style", {3, "x"}}}), kaival::FormatError);
  int64_t before = s->audit_count();
  s->submit_review(e_beta, item_a, {{"rigor", {4, "solid ablations"}}, {"independence", {5, "own init"}}});
  s->submit_review(e_beta, item_a, {{"rigor", {3, "on reflection, one ablation missing"}}});
  EXPECT_EQ(s->audit_count(), before + 3);
  kaival::store::SqlDb db = raw();
  auto q = db.prepare("SELECT detail FROM audit_log WHERE action='review.edit'");
  ASSERT_TRUE(q.step());
  json edit = json::parse(q.text(0));
  EXPECT_EQ(edit["previous"]["score"], 4.0);
  EXPECT_EQ(edit["score"], 3.0);
}

TEST_P(ArenaStoreOn, ExportWritesTheFourFilesOfTheFormat) {
  auto s = open_store(d);
  int64_t admin = s->create_account("admin", "admin password", Role::Admin);
  int64_t e1 = s->create_account("e1", "password one", Role::Expert, "Uni A");
  int64_t e2 = s->create_account("e2", "password two", Role::Expert, "Uni B");
  int64_t arena = s->add_campaign(load_campaign_file(testdata("arena_campaign.yaml")), admin);
  int64_t review = s->add_campaign(load_campaign_file(testdata("review_campaign.yaml")), admin);
  s->assign_reviewers(review);
  // Voters who prefer target-x > team-a > team-b (95% of decisive votes).
  std::map<std::string, int> strength{{"target-x", 2}, {"team-a", 1}, {"team-b", 0}};
  int64_t v = s->create_account("v", "password v", Role::Voter);
  std::mt19937 rng(5);
  CampaignFile f = load_campaign_file(testdata("arena_campaign.yaml"));
  for (int k = 0; k < 90; ++k) {
    auto b = s->new_battle(arena, v, "ip");
    // The view does not say which model wrote which answer: find it by text.
    auto model_of = [&](const std::string& text) {
      for (auto& p : f.arena.prompts)
        for (auto& [m, t] : p.answers)
          if (t == text) return m;
      return std::string();
    };
    int sa = strength[model_of(b->answer_a)], sb = strength[model_of(b->answer_b)];
    // Mostly consistent voters: battles are drawn at random, so the order below must not hinge on luck.
    std::string w = rng() % 10 == 0 ? "tie" : (sa > sb) == (rng() % 20 != 0) ? "model_a" : "model_b";
    s->vote({b->id, v, "ip", w});
  }
  for (int64_t e : {e1, e2})
    for (auto& a : s->assignments(e))
      s->submit_review(e, a.item_id, {{"rigor", {a.model == "team-a" ? 4.0 : 2.0, "r"}}, {"independence", {3, "i"}}});
  ExportOptions o;
  o.resamples = 50;
  s->export_files((d.path / "out").string(), o);
  auto battles = read_jsonl(d.path / "out" / "battles.jsonl");
  EXPECT_EQ(battles.size(), 90u);
  for (auto& b : battles) {
    EXPECT_TRUE(b.contains("battle_id") && b.contains("voter") && b.contains("time") && b["flags"].is_array());
    EXPECT_NE(b["voter"], "v");
  }
  std::ifstream rin(d.path / "out" / "ratings.json");
  json ratings = json::parse(rin);
  EXPECT_EQ(ratings["schema"], "kaival.arena-ratings/1");
  EXPECT_EQ(ratings["method"], "bradley-terry");
  ASSERT_EQ(ratings["models"].size(), 3u);
  EXPECT_EQ(ratings["models"][0]["model"], "target-x");
  EXPECT_EQ(ratings["models"][2]["model"], "team-b");
  EXPECT_TRUE(ratings["manifest"].contains("inputs"));
  auto reviews = read_jsonl(d.path / "out" / "reviews.jsonl");
  EXPECT_EQ(reviews.size(), 8u);  // 2 items x 2 reviewers x 2 criteria
  std::ifstream ein(d.path / "out" / "expert_scores.json");
  json expert = json::parse(ein);
  EXPECT_EQ(expert["schema"], "kaival.expert-scores/1");
  EXPECT_EQ(expert["aggregation"], "trimmed-mean-10");
  ASSERT_EQ(expert["models"].size(), 2u);
  // team-a: rigor 4 -> 0.75 (w 2), independence 3 -> 0.5 (w 1): 100 * 2/3 = 66.67
  EXPECT_NEAR(expert["models"][0]["score"].get<double>(), 100.0 * (2 * 0.75 + 0.5) / 3, 1e-9);
  EXPECT_TRUE(expert["alpha"].contains("rigor"));
  EXPECT_FALSE(expert.value("synthetic", true));
  // The same tables as CSV: a header and one row per JSON record, in the same order.
  auto csv_lines = [&](const char* name) {
    std::ifstream in(d.path / "out" / name, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string> lines;
    size_t at = 0;
    while (at < all.size()) {
      size_t e = all.find("\r\n", at);
      EXPECT_NE(e, std::string::npos) << name << ": rows end with CRLF";
      if (e == std::string::npos) break;
      lines.push_back(all.substr(at, e - at));
      at = e + 2;
    }
    return lines;
  };
  auto bcsv = csv_lines("battles.csv");
  ASSERT_EQ(bcsv.size(), 91u);
  EXPECT_EQ(bcsv[0], "battle_id,campaign,prompt,model_a,model_b,winner,voter,time,flags");
  EXPECT_EQ(bcsv[1].substr(0, battles[0]["battle_id"].get<std::string>().size()), battles[0]["battle_id"].get<std::string>());
  auto rcsv = csv_lines("ratings.csv");
  ASSERT_EQ(rcsv.size(), 4u);
  EXPECT_EQ(rcsv[0], "rank,model,rating,ci_low,ci_high,battles,win_rate");
  EXPECT_EQ(rcsv[1].substr(0, 11), "1,target-x,");
  EXPECT_EQ(csv_lines("reviews.csv").size(), 9u);
  EXPECT_EQ(csv_lines("expert_scores.csv").size(), 3u);
}

INSTANTIATE_TEST_SUITE_P(Backends, ArenaStoreOn, ::testing::Values(Backend::Sqlite, Backend::Postgres), backend_name);

class ArenaStoreShared : public ArenaStoreOn {};

// Two servers sharing one PostgreSQL: two stores (two connections, two group
// commit queues) vote on the same battles from several threads at once. Every
// battle gets exactly one stored vote, it is the one that was acknowledged,
// and both stores agree on the counts and the leaderboard.
TEST_P(ArenaStoreShared, TwoStoresOnOneDatabaseVoteEachBattleOnce) {
  std::unique_ptr<ArenaStore> a, b;
  {  // both start at once on an empty database: migrations and salt must not race
    std::thread ta([&] { a = open_at(target()); });
    std::thread tb([&] { b = open_at(target()); });
    ta.join();
    tb.join();
  }
  ASSERT_TRUE(a && b);
  int64_t u = a->create_account("u", "password one", Role::Voter);
  EXPECT_THROW(b->create_account("u", "password two", Role::Voter), kaival::FormatError);
  int64_t cid = a->add_campaign(load_campaign_file(testdata("arena_campaign.yaml")), u);
  EXPECT_THROW(b->add_campaign(load_campaign_file(testdata("arena_campaign.yaml")), u), kaival::FormatError);
  ASSERT_TRUE(b->campaign("demo-arena"));
  constexpr int kBattles = 120, kThreads = 4;
  std::vector<std::string> ids;
  for (int k = 0; k < kBattles; ++k) ids.push_back((k % 2 ? a : b)->new_battle(cid, u, "ip")->id);
  std::mutex mu;
  std::map<std::string, std::string> acknowledged;  // battle -> winner of the vote reported Stored
  std::atomic<int> stored{0}, already{0}, other{0};
  auto voter = [&](ArenaStore* s, const char* winner, int t) {
    // Store a walks the battles forwards, store b backwards: they meet in the middle and race everywhere.
    for (int k = t; k < kBattles; k += kThreads) {
      const std::string& id = winner[6] == 'a' ? ids[k] : ids[kBattles - 1 - k];
      VoteStatus st;
      try {
        st = s->vote({id, u, "ip", winner});
      } catch (const std::exception& e) {
        ADD_FAILURE() << "vote failed: " << e.what();
        ++other;
        continue;
      }
      if (st == VoteStatus::Stored) {
        std::lock_guard lk(mu);
        EXPECT_TRUE(acknowledged.emplace(id, winner).second) << "two votes acknowledged for " << id;
        ++stored;
      } else {
        (st == VoteStatus::AlreadyVoted ? already : other)++;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t) {
    pool.emplace_back(voter, a.get(), "model_a", t);
    pool.emplace_back(voter, b.get(), "model_b", t);
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(stored.load(), kBattles);
  EXPECT_EQ(already.load(), kBattles);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(a->vote_count(), kBattles);
  EXPECT_EQ(b->vote_count(), kBattles);
  kaival::store::SqlDb db = raw();
  auto q = db.prepare("SELECT b.public_id, v.winner, count(*) OVER (PARTITION BY v.battle_id) "
                      "FROM votes v JOIN battles b ON b.id=v.battle_id");
  int rows = 0;
  while (q.step()) {
    ++rows;
    EXPECT_EQ(q.int64(2), 1);
    auto it = acknowledged.find(q.text(0));
    ASSERT_NE(it, acknowledged.end()) << "stored vote never acknowledged: " << q.text(0);
    EXPECT_EQ(q.text(1), it->second) << "the stored vote is not the acknowledged one";
  }
  EXPECT_EQ(rows, kBattles);
  auto ra = a->ratings(cid, 20, 7), rb = b->ratings(cid, 20, 7);
  EXPECT_EQ(ra.battles, kBattles);
  EXPECT_EQ(rb.battles, kBattles);
  ASSERT_EQ(ra.models, rb.models);
  for (size_t i = 0; i < ra.models.size(); ++i) {
    EXPECT_EQ(ra.board.models[i].battles, rb.board.models[i].battles);
    EXPECT_DOUBLE_EQ(ra.board.models[i].rating, rb.board.models[i].rating);
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, ArenaStoreShared, ::testing::Values(Backend::Postgres), backend_name);

TEST(Csv, QuotesAndDefusesFormulas) {
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
  EXPECT_EQ(csv_field("@SUM(A1)"), "'@SUM(A1)");
  EXPECT_EQ(csv_field("-1.5"), "-1.5");  // a number stays a number
  EXPECT_EQ(csv_field("-cmd"), "'-cmd");
  EXPECT_EQ(csv_field("한국어"), "한국어");
  EXPECT_EQ(csv_row({"a", "b c", ""}), "a,b c,\r\n");
}
