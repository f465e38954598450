#pragma once
// PostgreSQL, the store for many users and many workers on many machines
// (libpqxx underneath, kept out of this header). Values travel as text, with
// std::nullopt for NULL, so callers need no libpqxx types. Errors are
// kaival::IoError naming the server (URL without password) and PostgreSQL's
// message. One PgDb per thread, as with libpq connections.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "store/sqlite.h"  // Migration

namespace kaival::store {

using PgValue = std::optional<std::string>;
using PgRow = std::vector<PgValue>;

struct PgResult {
  std::vector<PgRow> rows;
  int64_t affected = 0;  // rows inserted, updated or deleted
};

bool is_postgres_url(std::string_view s);  // postgresql:// or postgres://
// The URL with any password replaced by "***", for messages and logs.
std::string redact_url(std::string_view url);

class PgDb {
 public:
  static PgDb connect(const std::string& url);
  PgDb(PgDb&&) noexcept;
  PgDb& operator=(PgDb&&) noexcept;
  ~PgDb();

  // One statement with $1..$n parameters, in its own transaction (autocommit),
  // or inside the transaction begin() opened.
  std::vector<PgRow> query(std::string_view sql, std::span<const PgValue> params = {});
  std::vector<PgRow> query(std::string_view sql, std::initializer_list<PgValue> params) {
    return query(sql, std::span<const PgValue>(params.begin(), params.size()));
  }
  // Rows affected.
  int64_t exec(std::string_view sql, std::initializer_list<PgValue> params = {});
  // Rows and affected-row count of one statement.
  PgResult run(std::string_view sql, std::span<const PgValue> params);
  // Several statements inside one transaction (BEGIN ... COMMIT; ROLLBACK on error).
  void exec_script_in_transaction(std::string_view sql);

  // An explicit read-committed transaction: query/exec/run join it until
  // commit() or rollback(). After an SQL error only rollback() is useful.
  void begin();
  void commit();
  void rollback() noexcept;
  bool in_transaction() const;

  const std::string& where() const { return where_; }

 private:
  struct Impl;
  explicit PgDb(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string where_;
};

// Applies migrations 1..N that `component` ("eval_queue", "arena", ...) has not
// applied yet, each in its own transaction, under an advisory lock so that
// workers starting together do not race; versions are kept in the table
// kaival_migrations(component, version). A database newer than the code is refused.
int migrate(PgDb& db, std::string_view component, std::span<const Migration> migrations);

}  // namespace kaival::store
