#pragma once
// One SQL interface over SQLite (store::Db) and PostgreSQL (store::PgDb), for
// code that must run on either: a single machine with a file, or many servers
// sharing one PostgreSQL. Statements use SQLite's ?1..?N placeholders; on
// PostgreSQL they become $1..$N, values travel as text, and the statement runs
// on its first step() with the whole result buffered. Write portable SQL
// (INSERT ... ON CONFLICT DO NOTHING, RETURNING id; no last_insert_rowid) and
// keep the schema DDL per backend. One SqlDb per thread, as below it.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "store/sqlite.h"

namespace kaival::store {

class PgDb;

class SqlStmt {
 public:
  SqlStmt(SqlStmt&&) noexcept;
  SqlStmt& operator=(SqlStmt&&) noexcept;
  ~SqlStmt();

  SqlStmt& bind(int i, int64_t v);
  SqlStmt& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  SqlStmt& bind(int i, double v);
  SqlStmt& bind(int i, std::string_view text);
  SqlStmt& bind(int i, const char* text) { return bind(i, std::string_view(text)); }
  SqlStmt& bind(int i, const std::string& text) { return bind(i, std::string_view(text)); }
  SqlStmt& bind_null(int i);
  template <typename T>
  SqlStmt& bind(int i, const std::optional<T>& v) {
    return v ? bind(i, *v) : bind_null(i);
  }

  bool step();  // true while a row is available; throws IoError on errors
  void run();   // runs to the end, then reset()
  void reset();  // clears the cursor and the bindings
  // Runs an INSERT ... RETURNING id, then reset(); nullopt when no row came
  // back (ON CONFLICT DO NOTHING skipped it).
  std::optional<int64_t> insert_returning_id();

  // Columns of the current row (0-based). NULL reads as 0 / "" (as in SQLite);
  // PostgreSQL's booleans read as 1 / 0.
  bool is_null(int col) const;
  int64_t int64(int col) const;
  double real(int col) const;
  std::string text(int col) const;

 private:
  friend class SqlDb;
  struct Pg;
  SqlStmt() = default;
  Stmt lite_;
  std::unique_ptr<Pg> pg_;
};

class SqlDb {
 public:
  // A postgresql:// or postgres:// URL connects to PostgreSQL; anything else
  // opens (or creates) an SQLite file. No schema is applied here.
  static SqlDb open(const std::string& path_or_url, const OpenOptions& sqlite_options = {});
  explicit SqlDb(Db db);
  explicit SqlDb(PgDb db);
  SqlDb(SqlDb&&) noexcept;
  SqlDb& operator=(SqlDb&&) noexcept;
  ~SqlDb();

  bool is_postgres() const { return pg_ != nullptr; }
  Db* sqlite() { return lite_ ? &*lite_ : nullptr; }
  PgDb* postgres();
  // The file, or the URL without its password: safe for messages.
  const std::string& where() const;

  SqlStmt prepare(std::string_view sql);
  // Statements without parameters (SQLite: several at once; PostgreSQL: one).
  void exec(std::string_view sql);
  // Rows changed by the last INSERT/UPDATE/DELETE run on this connection.
  int64_t changes() const;

  // SQLite: BEGIN IMMEDIATE (the writer lock up front). PostgreSQL: a
  // read-committed transaction; rely on unique constraints, not read-then-write.
  void begin();
  void commit();
  void rollback() noexcept;

 private:
  struct PgConn;
  std::optional<Db> lite_;
  std::unique_ptr<PgConn> pg_;
};

// begin() ... commit(); rolls back in the destructor unless committed.
class SqlTransaction {
 public:
  explicit SqlTransaction(SqlDb& db) : db_(db) { db_.begin(); }
  SqlTransaction(const SqlTransaction&) = delete;
  SqlTransaction& operator=(const SqlTransaction&) = delete;
  ~SqlTransaction() {
    if (!done_) db_.rollback();
  }
  void commit() {
    done_ = true;  // a failed COMMIT has ended the transaction either way
    db_.commit();
  }

 private:
  SqlDb& db_;
  bool done_ = false;
};

// "?1 ... ?12" -> "$1 ... $12", leaving quoted literals and identifiers alone;
// `params` receives the highest placeholder number.
std::string to_postgres_placeholders(std::string_view sql, int* params = nullptr);

}  // namespace kaival::store
