#include "store/sqlite.h"

#include <array>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "core/error.h"

using namespace kaival::store;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("kaival-store-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

constexpr std::array<Migration, 2> kMigrations{{
    {1, "CREATE TABLE vote(id INTEGER PRIMARY KEY, who TEXT NOT NULL, score REAL, body BLOB)"},
    {2, "CREATE UNIQUE INDEX vote_who ON vote(who)"},
}};

}  // namespace

TEST(StoreSqlite, TypedRoundTripAndNulls) {
  Db db = Db::open(":memory:");
  migrate(db, kMigrations);
  auto ins = db.prepare("INSERT INTO vote(who, score, body) VALUES (?1, ?2, ?3)");
  std::vector<uint8_t> blob{0, 1, 2, 255};
  ins.bind(1, "한국어 voter").bind(2, 2.5).bind_blob(3, blob).run();
  ins.bind(1, std::string("b")).bind(2, std::optional<double>{}).bind_blob(3, {}).run();
  EXPECT_EQ(db.last_insert_rowid(), 2);

  auto sel = db.prepare("SELECT who, score, body FROM vote ORDER BY id");
  ASSERT_TRUE(sel.step());
  EXPECT_EQ(sel.text(0), "한국어 voter");
  EXPECT_DOUBLE_EQ(sel.real(1), 2.5);
  EXPECT_EQ(sel.blob(2), blob);
  ASSERT_TRUE(sel.step());
  EXPECT_TRUE(sel.is_null(1));
  EXPECT_FALSE(sel.is_null(2));  // an empty blob is not NULL
  EXPECT_TRUE(sel.blob(2).empty());
  EXPECT_FALSE(sel.step());
}

TEST(StoreSqlite, ConstraintViolationIsAnErrorNamingTheFileAndStatementStaysUsable) {
  TempDir dir;
  std::string path = (dir.path / "arena.db").string();
  Db db = Db::open(path);
  migrate(db, kMigrations);
  auto ins = db.prepare("INSERT INTO vote(who) VALUES (?1)");
  ins.bind(1, "x").run();
  try {
    ins.bind(1, "x").run();
    FAIL() << "duplicate accepted";
  } catch (const kaival::IoError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("UNIQUE"), std::string::npos) << e.what();
  }
  ins.bind(1, "y").run();
  auto n = db.prepare("SELECT count(*) FROM vote");
  ASSERT_TRUE(n.step());
  EXPECT_EQ(n.int64(0), 2);
}

TEST(StoreSqlite, TransactionRollsBackUnlessCommitted) {
  Db db = Db::open(":memory:");
  migrate(db, kMigrations);
  {
    Transaction tx(db);
    db.prepare("INSERT INTO vote(who) VALUES ('lost')").run();
  }
  {
    Transaction tx(db);
    db.prepare("INSERT INTO vote(who) VALUES ('kept')").run();
    tx.commit();
  }
  auto s = db.prepare("SELECT group_concat(who) FROM vote");
  ASSERT_TRUE(s.step());
  EXPECT_EQ(s.text(0), "kept");
}

TEST(StoreSqlite, MigrationsAreIncrementalAndANewerDatabaseIsRefused) {
  TempDir dir;
  std::string path = (dir.path / "m.db").string();
  {
    Db db = Db::open(path);
    EXPECT_EQ(migrate(db, std::span(kMigrations).first(1)), 1);
    db.prepare("INSERT INTO vote(who) VALUES ('a')").run();
  }
  {
    Db db = Db::open(path);
    EXPECT_EQ(migrate(db, kMigrations), 2);  // applies only the second; data survives
    auto s = db.prepare("SELECT count(*) FROM vote");
    ASSERT_TRUE(s.step());
    EXPECT_EQ(s.int64(0), 1);
  }
  {
    Db db = Db::open(path);
    EXPECT_THROW(migrate(db, std::span(kMigrations).first(1)), kaival::UnsupportedError);
  }
  constexpr std::array<Migration, 1> gap{{{2, "SELECT 1"}}};
  Db mem = Db::open(":memory:");
  EXPECT_THROW(migrate(mem, gap), kaival::Error);
}

TEST(StoreSqlite, WalLetsAReaderSeeCommittedRowsFromAnotherConnection) {
  TempDir dir;
  std::string path = (dir.path / "wal.db").string();
  Db writer = Db::open(path);
  migrate(writer, kMigrations);
  Db reader = Db::open(path);
  auto mode = reader.prepare("PRAGMA journal_mode");
  ASSERT_TRUE(mode.step());
  EXPECT_EQ(mode.text(0), "wal");
  std::thread t([&] {
    auto ins = writer.prepare("INSERT INTO vote(who) VALUES (?1)");
    for (int i = 0; i < 50; ++i) ins.bind(1, std::to_string(i)).run();
  });
  t.join();
  auto n = reader.prepare("SELECT count(*) FROM vote");
  ASSERT_TRUE(n.step());
  EXPECT_EQ(n.int64(0), 50);
}

TEST(StoreSqlite, MissingDirectoryAndBadSqlAreClearErrors) {
  EXPECT_THROW(Db::open("/nonexistent-dir-kaival/x.db"), kaival::IoError);
  Db db = Db::open(":memory:");
  try {
    db.prepare("SELEC nonsense");
    FAIL();
  } catch (const kaival::IoError& e) {
    EXPECT_NE(std::string(e.what()).find("syntax"), std::string::npos) << e.what();
  }
}

TEST(StoreSqlite, ReusedStatementsStartAfreshAndTwinsInUseAreSeparate) {
  Db db = Db::open(":memory:");
  migrate(db, kMigrations);
  auto ins = db.prepare("INSERT INTO vote(who, score) VALUES (?1, ?2)");
  for (int i = 0; i < 3; ++i) ins.bind(1, "v" + std::to_string(i)).bind(2, double(i)).run();
  const std::string by_score = "SELECT who FROM vote WHERE score >= ?1 ORDER BY id";
  {
    // Two of the same text at once: each has its own cursor and bindings.
    auto a = db.prepare(by_score);
    auto b = db.prepare(by_score);
    a.bind(1, 0.0);
    b.bind(1, 2.0);
    ASSERT_TRUE(a.step());
    ASSERT_TRUE(b.step());
    EXPECT_EQ(a.text(0), "v0");
    EXPECT_EQ(b.text(0), "v2");
    ASSERT_TRUE(a.step());
    EXPECT_EQ(a.text(0), "v1");
    EXPECT_FALSE(b.step());
  }  // both go back mid-way (a) and done (b)
  // The kept statement comes back reset: first row again, no binding left
  // (score >= NULL matches nothing).
  auto again = db.prepare(by_score);
  EXPECT_FALSE(again.step());
  again.reset();
  again.bind(1, 1.0);
  ASSERT_TRUE(again.step());
  EXPECT_EQ(again.text(0), "v1");
}

TEST(StoreSqlite, AStatementDroppedMidReadReleasesItsLock) {
  // Without WAL a reading statement holds a shared lock that keeps any other
  // connection from committing; a statement kept for reuse must not.
  TempDir dir;
  std::string path = (dir.path / "journal.db").string();
  OpenOptions no_wal;
  no_wal.wal = false;
  no_wal.busy_timeout_ms = 0;
  Db a = Db::open(path, no_wal);
  migrate(a, kMigrations);
  auto ins = a.prepare("INSERT INTO vote(who) VALUES (?1)");
  for (int i = 0; i < 3; ++i) ins.bind(1, std::to_string(i)).run();
  {
    auto sel = a.prepare("SELECT who FROM vote");
    ASSERT_TRUE(sel.step());  // the read is open here
  }
  Db b = Db::open(path, no_wal);
  EXPECT_NO_THROW(b.prepare("INSERT INTO vote(who) VALUES ('other')").run());
  auto n = a.prepare("SELECT count(*) FROM vote");
  ASSERT_TRUE(n.step());
  EXPECT_EQ(n.int64(0), 4);
}

TEST(StoreSqlite, StatementsSurviveTheirDbBeingMoved) {
  Db first = Db::open(":memory:");
  migrate(first, kMigrations);
  first.prepare("INSERT INTO vote(who) VALUES ('x')").run();  // kept in first's cache
  auto live = first.prepare("SELECT count(*) FROM vote");
  Db second = std::move(first);  // the cache moves; `live` belongs to the moved-from Db
  live = Stmt();                 // finalized, not kept by a Db that no longer has a connection
  auto n = second.prepare("SELECT count(*) FROM vote");
  ASSERT_TRUE(n.step());
  EXPECT_EQ(n.int64(0), 1);
  second.prepare("INSERT INTO vote(who) VALUES ('y')").run();  // from the moved cache
  n.reset();
  ASSERT_TRUE(n.step());
  EXPECT_EQ(n.int64(0), 2);
}
