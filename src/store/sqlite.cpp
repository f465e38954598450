#include "store/sqlite.h"

#include <sqlite3.h>

#include "core/error.h"

namespace kaival::store {

// ---- Db ----

Db Db::open(const std::string& path, const OpenOptions& options) {
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_NOMUTEX;
  flags |= options.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    fail<IoError>(path, "cannot open SQLite database: {}", msg);
  }
  Db out(db, path);
  sqlite3_busy_timeout(db, options.busy_timeout_ms);
  sqlite3_extended_result_codes(db, 1);
  if (!options.read_only) {
    if (options.wal && path != ":memory:") out.exec("PRAGMA journal_mode=WAL");
    out.exec(options.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  }
  out.exec("PRAGMA foreign_keys=ON");
  return out;
}

Db::Db(Db&& o) noexcept : db_(o.db_), path_(std::move(o.path_)), idle_(std::move(o.idle_)) {
  o.db_ = nullptr;
  o.idle_.clear();
}

Db& Db::operator=(Db&& o) noexcept {
  if (this != &o) {
    drop_cache();
    sqlite3_close_v2(db_);
    db_ = o.db_;
    path_ = std::move(o.path_);
    idle_ = std::move(o.idle_);
    o.db_ = nullptr;
    o.idle_.clear();
  }
  return *this;
}

Db::~Db() {
  drop_cache();
  sqlite3_close_v2(db_);
}

void Db::drop_cache() noexcept {
  for (auto& [sql, s] : idle_) sqlite3_finalize(s);
  idle_.clear();
}

void Db::keep(sqlite3_stmt* s) const noexcept {
  // A Db moved from no longer owns the connection: its statements just go.
  if (db_ == nullptr || idle_.size() >= kMaxCached) {
    sqlite3_finalize(s);
    return;
  }
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  try {
    if (!idle_.try_emplace(sqlite3_sql(s), s).second) sqlite3_finalize(s);  // a twin is already idle
  } catch (...) {
    sqlite3_finalize(s);
  }
}

void Db::exec(std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  if (sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    fail<IoError>(path_, "SQLite exec failed: {} (in: {:.80})", msg, s);
  }
}

Stmt Db::prepare(std::string_view sql) const {
  if (auto it = idle_.find(sql); it != idle_.end()) {
    sqlite3_stmt* s = it->second;
    idle_.erase(it);
    return Stmt(s, this);
  }
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &s, nullptr) !=
      SQLITE_OK)
    fail<IoError>(path_, "SQLite prepare failed: {} (in: {:.80})", sqlite3_errmsg(db_), sql);
  return Stmt(s, this);
}

int64_t Db::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
int Db::changes() const { return sqlite3_changes(db_); }

// ---- Stmt ----

Stmt::Stmt(Stmt&& o) noexcept : stmt_(o.stmt_), db_(o.db_) { o.stmt_ = nullptr; }

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    release();
    stmt_ = o.stmt_;
    db_ = o.db_;
    o.stmt_ = nullptr;
  }
  return *this;
}

Stmt::~Stmt() { release(); }

void Stmt::release() noexcept {
  if (stmt_ == nullptr) return;
  if (db_ != nullptr)
    db_->keep(stmt_);
  else
    sqlite3_finalize(stmt_);
  stmt_ = nullptr;
}

void Stmt::fail_here(std::string_view what) const {
  std::string sql = stmt_ ? sqlite3_sql(stmt_) : "";
  fail<IoError>(db_->path(), "SQLite {}: {} (in: {:.80})", what, sqlite3_errmsg(db_->handle()), sql);
}

Stmt& Stmt::bind(int i, int64_t v) {
  if (sqlite3_bind_int64(stmt_, i, v) != SQLITE_OK) fail_here("bind");
  return *this;
}

Stmt& Stmt::bind(int i, double v) {
  if (sqlite3_bind_double(stmt_, i, v) != SQLITE_OK) fail_here("bind");
  return *this;
}

Stmt& Stmt::bind(int i, std::string_view text) {
  if (sqlite3_bind_text64(stmt_, i, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8) != SQLITE_OK)
    fail_here("bind");
  return *this;
}

Stmt& Stmt::bind_blob(int i, std::span<const uint8_t> blob) {
  // A zero-length blob must still be a blob, not NULL: pass a non-null pointer.
  static const uint8_t empty = 0;
  const void* p = blob.empty() ? &empty : blob.data();
  if (sqlite3_bind_blob64(stmt_, i, p, blob.size(), SQLITE_TRANSIENT) != SQLITE_OK) fail_here("bind");
  return *this;
}

Stmt& Stmt::bind_null(int i) {
  if (sqlite3_bind_null(stmt_, i) != SQLITE_OK) fail_here("bind");
  return *this;
}

bool Stmt::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  std::string sql = sqlite3_sql(stmt_);
  std::string msg = sqlite3_errmsg(db_->handle());
  sqlite3_reset(stmt_);
  fail<IoError>(db_->path(), "SQLite step failed: {} (in: {:.80})", msg, sql);
}

void Stmt::run() {
  try {
    while (step()) {
    }
  } catch (...) {
    reset();
    throw;
  }
  reset();
}

void Stmt::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int Stmt::columns() const { return sqlite3_column_count(stmt_); }
bool Stmt::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
int64_t Stmt::int64(int col) const { return sqlite3_column_int64(stmt_, col); }
double Stmt::real(int col) const { return sqlite3_column_double(stmt_, col); }

std::string Stmt::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  int n = sqlite3_column_bytes(stmt_, col);
  return p ? std::string(p, static_cast<size_t>(n)) : std::string();
}

std::vector<uint8_t> Stmt::blob(int col) const {
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(stmt_, col));
  int n = sqlite3_column_bytes(stmt_, col);
  return p ? std::vector<uint8_t>(p, p + n) : std::vector<uint8_t>();
}

// ---- Transaction ----

Transaction::Transaction(Db& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }

Transaction::~Transaction() {
  if (!done_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

// ---- migrations ----

int migrate(Db& db, std::span<const Migration> migrations) {
  auto current = [&] {
    Stmt s = db.prepare("PRAGMA user_version");
    s.step();
    return static_cast<int>(s.int64(0));
  };
  int latest = 0;
  for (const auto& m : migrations) {
    if (m.version != latest + 1)
      fail<Error>(db.path(), "migrations must be numbered 1..N in order (found {} after {})", m.version, latest);
    latest = m.version;
  }
  int have = current();
  if (have > latest)
    fail<UnsupportedError>(db.path(), "database schema version {} is newer than this kaival ({}); upgrade kaival",
                           have, latest);
  for (const auto& m : migrations) {
    if (m.version <= have) continue;
    Transaction tx(db);
    db.exec(m.sql);
    db.exec(fmt::format("PRAGMA user_version={}", m.version));
    tx.commit();
  }
  return latest;
}

}  // namespace kaival::store
