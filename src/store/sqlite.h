#pragma once
// A thin RAII layer over sqlite3: prepared statements with typed binds,
// transactions, and versioned migrations. Errors are kaival::IoError naming
// the database file and SQLite's message. One Db per thread (SQLite's
// "multi-thread" mode); share a file between threads by opening it again.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace kaival::store {

struct OpenOptions {
  bool wal = true;              // write-ahead log: readers never block the writer
  bool synchronous_full = true;  // a committed transaction survives power loss / kill -9
  int busy_timeout_ms = 5000;   // wait this long for another connection's lock
  bool read_only = false;
};

class Db;

// A statement of one Db. It must not outlive that Db object: when destroyed it
// goes back to the Db's cache (finalized instead if the Db was moved from).
class Stmt {
 public:
  Stmt() = default;
  Stmt(Stmt&& o) noexcept;
  Stmt& operator=(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt();

  // Parameters are 1-based, as in SQL's ?1, ?2...
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Stmt& bind(int i, double v);
  Stmt& bind(int i, std::string_view text);
  Stmt& bind(int i, const char* text) { return bind(i, std::string_view(text)); }
  Stmt& bind(int i, const std::string& text) { return bind(i, std::string_view(text)); }
  Stmt& bind_blob(int i, std::span<const uint8_t> blob);
  Stmt& bind_null(int i);
  template <typename T>
  Stmt& bind(int i, const std::optional<T>& v) {
    return v ? bind(i, *v) : bind_null(i);
  }

  // Advances; true while a row is available. Throws on error (incl. constraint violations).
  bool step();
  // Runs a statement that returns no rows (or ignores them), then resets it for reuse.
  void run();
  void reset();  // clears the cursor and the bindings

  int columns() const;
  bool is_null(int col) const;
  int64_t int64(int col) const;
  double real(int col) const;
  std::string text(int col) const;
  std::vector<uint8_t> blob(int col) const;

 private:
  friend class Db;
  Stmt(sqlite3_stmt* s, const Db* db) : stmt_(s), db_(db) {}
  void release() noexcept;  // back to the Db's cache (reset), or finalized
  [[noreturn]] void fail_here(std::string_view what) const;
  sqlite3_stmt* stmt_ = nullptr;
  const Db* db_ = nullptr;
};

class Db {
 public:
  // ":memory:" opens a private in-memory database.
  static Db open(const std::string& path, const OpenOptions& options = {});
  Db(Db&& o) noexcept;
  Db& operator=(Db&& o) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  void exec(std::string_view sql);  // one or more statements, no parameters
  // Compiled statements are kept, reset, when a Stmt is destroyed and reused by
  // the next prepare() of the same text: compiling costs more than running the
  // short statements a server runs per request.
  Stmt prepare(std::string_view sql) const;
  int64_t last_insert_rowid() const;
  int changes() const;  // rows changed by the last statement
  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_; }

 private:
  friend class Stmt;
  struct TextHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  void keep(sqlite3_stmt* s) const noexcept;
  void drop_cache() noexcept;
  sqlite3* db_ = nullptr;
  std::string path_;
  // Idle compiled statements by SQL text; one in use is not here, so two live
  // Stmts never share one. Bounded: past kMaxCached a statement is finalized.
  static constexpr size_t kMaxCached = 256;
  mutable std::unordered_map<std::string, sqlite3_stmt*, TextHash, std::equal_to<>> idle_;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back in the destructor unless committed.
class Transaction {
 public:
  explicit Transaction(Db& db);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();
  void commit();

 private:
  Db& db_;
  bool done_ = false;
};

// Schema migrations numbered 1..N, applied in order inside one transaction
// each; the applied version is kept in PRAGMA user_version. A database newer
// than the code (user_version > N) is refused with an error naming the file.
struct Migration {
  int version;
  std::string_view sql;
};
int migrate(Db& db, std::span<const Migration> migrations);

}  // namespace kaival::store
