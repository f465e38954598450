// Moving an arena store: an SQLite store filled through the real ArenaStore
// API is copied to PostgreSQL (throwaway cluster from scripts/pg) and back;
// ratings, exports, sessions and passwords must come out the same, new rows
// must get fresh ids, copying again adds only new rows, and bad sources and
// other stores' targets are refused.
#include "arena/copy_store.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "arena/store.h"
#include "core/error.h"
#include "store/sql.h"
#include "store/sqlite.h"
#include "../support/pg_cluster.h"

using namespace kaival::arena;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string testdata(const std::string& name) { return std::string(KAIVAL_TESTDATA) + "/arena/" + name; }

std::unique_ptr<ArenaStore> open_at(const std::string& target) {
  StoreOptions o;
  o.fast_password_hashing = true;
  return ArenaStore::open(target, o);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// An export with the wall-clock manifest times blanked (the only field that may differ).
std::map<std::string, std::string> export_of(ArenaStore& s, const fs::path& dir) {
  ExportOptions eo;
  eo.resamples = 50;
  eo.seed = 7;
  s.export_files(dir.string(), eo);
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string(), text = slurp(e.path());
    if (e.path().extension() == ".json") {
      json j = json::parse(text);
      j["manifest"]["time"] = "";
      text = j.dump(2);
    }
    out[name] = text;
  }
  return out;
}

class CopyStore : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("kaival-copy-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string pg() {
    std::string url = kaival::pgtest::cluster().fresh_database();
    if (url.empty()) ADD_FAILURE() << "PostgreSQL unavailable: " << kaival::pgtest::cluster().error();
    return url;
  }
  // Accounts, an invitation, a session, an arena campaign with votes (one
  // voter's quarantined), a review campaign with reviews and an edit.
  struct Filled {
    int64_t admin = 0, arena = 0, review = 0;
    std::string session;
  };
  Filled fill(ArenaStore& s) {
    Filled f;
    f.admin = s.create_account("admin", "admin password", Role::Admin);
    int64_t honest = s.create_account("honest", "password one", Role::Voter);
    int64_t lazy = s.create_account("lazy", "password two", Role::Voter);
    int64_t e1 = s.create_account("expert1", "expert password", Role::Expert, "University");
    int64_t e2 = s.create_account("expert2", "expert password", Role::Expert, "Institute");
    s.create_account("expert3", "expert password", Role::Expert, "Alpha Labs");
    s.create_invitation(Role::Voter, "Somewhere", f.admin);
    f.session = s.create_session(honest);
    f.arena = s.add_campaign(load_campaign_file(testdata("arena_campaign.yaml")), f.admin);
    f.review = s.add_campaign(load_campaign_file(testdata("review_campaign.yaml")), f.admin);
    std::mt19937 rng(5);
    const char* winners[] = {"model_a", "model_b", "tie", "both_bad"};
    for (int k = 0; k < 30; ++k) {
      auto b = s.new_battle(f.arena, honest, "10.0.0.1");
      EXPECT_EQ(s.vote({b->id, honest, "10.0.0.1", winners[rng() % 4]}), VoteStatus::Stored);
      auto c = s.new_battle(f.arena, lazy, "10.0.0.2");
      EXPECT_EQ(s.vote({c->id, lazy, "10.0.0.2", "model_a"}), VoteStatus::Stored);
    }
    s.new_battle(f.arena, honest, "10.0.0.1");  // served, never voted
    SuspectRules rules;
    rules.too_fast_ms = 0;
    EXPECT_EQ(s.detect_suspects(f.arena, rules, f.admin).size(), 1u) << "lazy's votes are quarantined";
    s.assign_reviewers(f.review);
    for (int64_t e : {e1, e2})
      for (const auto& a : s.assignments(e))
        s.submit_review(e, a.item_id, {{"rigor", {3.5, "some evidence"}}, {"independence", {4, "own init"}}});
    auto a = s.assignments(e1);
    EXPECT_FALSE(a.empty());
    if (!a.empty()) s.submit_review(e1, a[0].item_id, {{"rigor", {1.25, "changed my mind"}}});  // an edit
    return f;
  }
  fs::path dir_;
};

TEST_F(CopyStore, SqliteToPostgresAndBackKeepsEverything) {
  const std::string lite = (dir_ / "arena.db").string();
  Filled f;
  {
    auto s = open_at(lite);
    f = fill(*s);
  }
  const std::string url = pg();
  if (url.empty()) return;

  int progress_calls = 0;
  CopyOptions co;
  co.batch_rows = 7;  // several full batches and a tail in the bigger tables
  co.progress = [&](const CopyProgress& p) {
    ++progress_calls;
    EXPECT_LE(p.done, p.total) << p.table;
  };
  CopyReport r = copy_store(lite, url, co);
  EXPECT_EQ(r.schema_version, ArenaStore::schema_migrations(false).back().version);
  ASSERT_EQ(r.tables.size(), copied_tables().size());
  EXPECT_GT(progress_calls, static_cast<int>(r.tables.size()));

  // Every table has the same rows on both sides (counted behind the stores).
  kaival::store::SqlDb a = kaival::store::SqlDb::open(lite), b = kaival::store::SqlDb::open(url);
  std::map<std::string, int64_t> reported;
  for (const auto& t : r.tables) reported[t.name] = t.rows;
  for (const auto& t : copied_tables()) {
    auto qa = a.prepare("SELECT count(*) FROM " + t), qb = b.prepare("SELECT count(*) FROM " + t);
    qa.step();
    qb.step();
    EXPECT_EQ(qa.int64(0), qb.int64(0)) << t;
    EXPECT_EQ(qa.int64(0), reported[t]) << t;
  }
  EXPECT_EQ(reported["votes"], 60);
  EXPECT_GT(reported["reviews"], 0);
  EXPECT_GT(reported["sessions"], 0);
  EXPECT_EQ(reported["battles"], 61);
  auto q = b.prepare("SELECT count(*) FROM votes WHERE quarantined=1");
  q.step();
  EXPECT_EQ(q.int64(0), 30) << "quarantined votes are copied, still quarantined";

  auto src = open_at(lite);
  auto dst = open_at(url);
  auto ra = src->ratings(f.arena, 100, 3), rb = dst->ratings(f.arena, 100, 3);
  EXPECT_EQ(ra.models, rb.models);
  EXPECT_EQ(ra.battles, 30);
  EXPECT_EQ(ra.battles, rb.battles);
  ASSERT_EQ(ra.board.models.size(), rb.board.models.size());
  for (size_t i = 0; i < ra.board.models.size(); ++i) {
    EXPECT_EQ(ra.board.models[i].rating, rb.board.models[i].rating);
    EXPECT_EQ(ra.board.models[i].ci_low, rb.board.models[i].ci_low);
    EXPECT_EQ(ra.board.models[i].battles, rb.board.models[i].battles);
  }
  auto ea = export_of(*src, dir_ / "export-sqlite"), eb = export_of(*dst, dir_ / "export-pg");
  EXPECT_EQ(ea.size(), 8u);
  for (const auto& [name, text] : ea) EXPECT_EQ(text, eb[name]) << name << " differs after the copy";

  // Sessions and passwords carried over; new rows get fresh ids after the copied ones.
  auto sess = dst->session(f.session);
  ASSERT_TRUE(sess);
  EXPECT_EQ(sess->account.name, "honest");
  EXPECT_TRUE(dst->check_password("lazy", "password two"));
  int64_t newbie = dst->create_account("newbie", "new password", Role::Voter);
  EXPECT_EQ(newbie, 7);
  auto nb = dst->new_battle(f.arena, newbie, "10.0.0.9");
  ASSERT_TRUE(nb);
  EXPECT_EQ(dst->vote({nb->id, newbie, "10.0.0.9", "tie"}), VoteStatus::Stored);
  EXPECT_EQ(dst->vote_count(), 61);
  EXPECT_EQ(dst->audit_count(), src->audit_count() + 1);

  // And back into a new SQLite file: the same export again (with the extra vote).
  const std::string back = (dir_ / "back.db").string();
  CopyReport r2 = copy_store(url, back);
  auto again = open_at(back);
  EXPECT_EQ(again->vote_count(), 61);
  auto e2 = export_of(*again, dir_ / "export-back"), e3 = export_of(*dst, dir_ / "export-pg2");
  for (const auto& [name, text] : e3) EXPECT_EQ(text, e2[name]) << name << " differs after copying back";
}

TEST_F(CopyStore, CopyingAgainAddsOnlyNewRowsAndKeepsRatingsEqual) {
  const std::string lite = (dir_ / "arena.db").string();
  Filled f;
  {
    auto s = open_at(lite);
    f = fill(*s);
  }
  const std::string url = pg();
  if (url.empty()) return;
  { auto server = open_at(url); }  // a server opened it: only its salt, which counts as empty
  CopyReport first = copy_store(lite, url);
  EXPECT_FALSE(first.incremental);

  // Copied again at once: nothing new, every row checked equal.
  CopyReport same = copy_store(lite, url);
  EXPECT_TRUE(same.incremental);
  for (const auto& t : same.tables) {
    EXPECT_EQ(t.added, 0) << t.name;
    EXPECT_EQ(t.skipped, t.rows) << t.name;
  }

  // The source keeps serving: a new voter, new battles and votes, live spending.
  int64_t honest = 0;
  {
    auto s = open_at(lite);
    honest = s->account_by_name("honest")->id;
    int64_t late = s->create_account("late", "late password", Role::Voter);
    const char* winners[] = {"model_a", "model_b", "tie"};
    for (int k = 0; k < 12; ++k) {
      int64_t who = k % 2 ? late : honest;
      auto b = s->new_battle(f.arena, who, "10.0.0.7");
      ASSERT_TRUE(b);
      EXPECT_EQ(s->vote({b->id, who, "10.0.0.7", winners[k % 3]}), VoteStatus::Stored);
    }
    s->record_live_usage(f.arena, late, {"model-x", 3, 4, false});
  }
  CopyReport r = copy_store(lite, url);
  EXPECT_TRUE(r.incremental);
  std::map<std::string, CopiedTable> by;
  for (const auto& t : r.tables) by[t.name] = t;
  EXPECT_EQ(by["votes"].added, 12);
  EXPECT_EQ(by["votes"].skipped, 60);
  EXPECT_EQ(by["battles"].added, 12);
  EXPECT_EQ(by["accounts"].added, 1);
  EXPECT_EQ(by["live_usage"].added, 1);
  EXPECT_EQ(by["reviews"].added, 0);
  EXPECT_EQ(by["meta"].added, 0) << "the salt is the same";

  // Both sides now hold the same rows, and rate the models the same.
  kaival::store::SqlDb a = kaival::store::SqlDb::open(lite), b = kaival::store::SqlDb::open(url);
  for (const auto& t : copied_tables()) {
    auto qa = a.prepare("SELECT count(*) FROM " + t), qb = b.prepare("SELECT count(*) FROM " + t);
    qa.step();
    qb.step();
    EXPECT_EQ(qa.int64(0), qb.int64(0)) << t;
  }
  auto src = open_at(lite);
  auto dst = open_at(url);
  EXPECT_EQ(dst->vote_count(), 72);
  auto ra = src->ratings(f.arena, 100, 3), rb = dst->ratings(f.arena, 100, 3);
  EXPECT_EQ(ra.battles, 42);
  EXPECT_EQ(ra.battles, rb.battles);
  ASSERT_EQ(ra.board.models.size(), rb.board.models.size());
  for (size_t i = 0; i < ra.board.models.size(); ++i) {
    EXPECT_EQ(ra.board.models[i].rating, rb.board.models[i].rating);
    EXPECT_EQ(ra.board.models[i].ci_high, rb.board.models[i].ci_high);
  }
  auto ea = export_of(*src, dir_ / "export-sqlite"), eb = export_of(*dst, dir_ / "export-pg");
  for (const auto& [name, text] : ea) EXPECT_EQ(text, eb[name]) << name << " differs after the second copy";
  // New rows on the target continue after the copied ids.
  int64_t newbie = dst->create_account("newbie", "new password", Role::Voter);
  EXPECT_EQ(newbie, 8) << "six filled, one late";

  // A row changed in the source since the earlier copy: refused, naming table and key; nothing written.
  std::string winner;
  {
    auto w = a.prepare("SELECT winner FROM votes WHERE id=3");
    ASSERT_TRUE(w.step());
    winner = w.text(0);
  }
  a.prepare("UPDATE votes SET winner=?1 WHERE id=3").bind(1, winner == "tie" ? "model_b" : "tie").run();
  ASSERT_TRUE(src->new_battle(f.arena, honest, "10.0.0.7"));  // battles come before votes: copied, then rolled back
  try {
    copy_store(lite, url);
    ADD_FAILURE() << "a conflicting row must be refused";
  } catch (const kaival::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("votes row id=3 differs"), std::string::npos) << m;
    EXPECT_NE(m.find("127.0.0.1"), std::string::npos) << "names the target: " << m;
    EXPECT_NE(m.find("--replace"), std::string::npos) << m;
  }
  auto battles = b.prepare("SELECT count(*) FROM battles");
  ASSERT_TRUE(battles.step());
  EXPECT_EQ(battles.int64(0), 61 + 12) << "nothing of the refused copy was written";
  EXPECT_EQ(dst->vote_count(), 72);
}

TEST_F(CopyStore, AnotherStoresTargetIsRefusedUnlessReplaced) {
  const std::string lite = (dir_ / "arena.db").string();
  {
    auto s = open_at(lite);
    fill(*s);
  }
  const std::string url = pg();
  if (url.empty()) return;
  {
    auto other = open_at(url);  // another store, with its own salt and an account
    other->create_account("extra", "extra password", Role::Voter);
  }
  try {
    copy_store(lite, url);
    FAIL() << "a copy into another store's database must be refused";
  } catch (const kaival::Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("meta row key=salt differs"), std::string::npos) << m;
    EXPECT_NE(m.find("127.0.0.1"), std::string::npos) << "names the target: " << m;
    EXPECT_NE(m.find("--replace"), std::string::npos) << m;
  }
  CopyOptions co;
  co.replace = true;
  CopyReport r = copy_store(lite, url, co);
  EXPECT_FALSE(r.incremental);
  auto s = open_at(url);
  EXPECT_FALSE(s->account_by_name("extra")) << "--replace empties the target first";
  EXPECT_EQ(s->vote_count(), 60);
  int64_t audit = 0;
  for (const auto& t : r.tables)
    if (t.name == "audit_log") audit = t.rows;
  EXPECT_EQ(s->audit_count(), audit);
  // The audit log is append-only again after the replace.
  kaival::store::SqlDb db = kaival::store::SqlDb::open(url);
  EXPECT_THROW(db.exec("DELETE FROM audit_log"), kaival::IoError);

  // An SQLite target that holds another store's data is refused too.
  const std::string lite2 = (dir_ / "second.db").string();
  { open_at(lite2)->create_account("someone", "some password", Role::Voter); }
  EXPECT_THROW(copy_store(lite, lite2), kaival::Error);
}

TEST_F(CopyStore, WrongOrMissingSourceIsRefusedWithItsName) {
  const std::string url = pg();
  if (url.empty()) return;
  auto expect_refused = [&](const std::string& from, const std::string& words) {
    try {
      copy_store(from, url);
      ADD_FAILURE() << "copy from " << from << " must be refused";
    } catch (const kaival::Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find(from), std::string::npos) << "names the source: " << m;
      EXPECT_NE(m.find(words), std::string::npos) << m;
    }
  };
  expect_refused((dir_ / "missing.db").string(), "no such SQLite file");

  // An older schema (before live prompts) and one from a newer build.
  auto all = ArenaStore::schema_migrations(false);
  const std::string old = (dir_ / "old.db").string();
  {
    auto db = kaival::store::Db::open(old);
    kaival::store::migrate(db, all.subspan(0, all.size() - 1));
  }
  expect_refused(old, fmt::format("schema version {} is older than this build's {}", all.size() - 1, all.size()));
  const std::string newer = (dir_ / "newer.db").string();
  {
    open_at(newer);
    kaival::store::Db::open(newer).exec("PRAGMA user_version=99");
  }
  expect_refused(newer, "schema version 99 is newer");
  const std::string other = (dir_ / "other.db").string();
  kaival::store::Db::open(other).exec("CREATE TABLE t(x)");
  expect_refused(other, "not a kaival arena store");
  // Nothing was written to the target by any refused copy.
  kaival::store::SqlDb db = kaival::store::SqlDb::open(url);
  auto q = db.prepare("SELECT to_regclass('accounts') IS NULL");
  q.step();
  EXPECT_EQ(q.int64(0), 1);
}

TEST_F(CopyStore, CommandLinePrintsCountsAndNamesBadInput) {
  const std::string lite = (dir_ / "arena.db").string();
  {
    auto s = open_at(lite);
    fill(*s);
  }
  const std::string url = pg();
  if (url.empty()) return;
  std::string out = kaival::pgtest::run_capture(std::string(KAIVAL_BINARY) + " arena copy-store --from " + lite +
                                                " --to " + url + " 2>&1");
  EXPECT_NE(out.find("votes"), std::string::npos) << out;
  EXPECT_NE(out.find("60 rows"), std::string::npos) << out;
  EXPECT_NE(out.find("verified"), std::string::npos) << out;
  // Again: only what is new (nothing), with the counts per table.
  std::string again = kaival::pgtest::run_capture(std::string(KAIVAL_BINARY) + " arena copy-store --from " + lite +
                                                  " --to " + url + " 2>&1");
  EXPECT_NE(again.find("added 0 new rows"), std::string::npos) << again;
  EXPECT_NE(again.find("0 new, 60 there already"), std::string::npos) << again;
  // Refusals exit non-zero (run_capture then returns nothing): check the message by hand.
  const std::string other = (dir_ / "other.db").string();
  { open_at(other)->create_account("someone", "some password", Role::Voter); }
  std::string cmd = std::string(KAIVAL_BINARY) + " arena copy-store --from " + other + " --to " + url + " 2>&1; echo rc=$?";
  std::string err = kaival::pgtest::run_capture(cmd);
  EXPECT_NE(err.find("differs"), std::string::npos) << err;
  EXPECT_EQ(err.find("rc=0"), std::string::npos) << err;
}

}  // namespace
