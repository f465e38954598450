#include "store/sql.h"

#include <sqlite3.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "core/error.h"
#include "store/postgres.h"

namespace kaival::store {

std::string to_postgres_placeholders(std::string_view sql, int* params) {
  std::string out;
  out.reserve(sql.size());
  int highest = 0;
  char quote = 0;
  for (size_t i = 0; i < sql.size(); ++i) {
    char c = sql[i];
    if (quote) {
      if (c == quote) quote = 0;  // a doubled quote re-enters at once: same result
      out.push_back(c);
    } else if (c == '\'' || c == '"') {
      quote = c;
      out.push_back(c);
    } else if (c == '?' && i + 1 < sql.size() && sql[i + 1] >= '0' && sql[i + 1] <= '9') {
      size_t j = i + 1;
      int n = 0;
      while (j < sql.size() && sql[j] >= '0' && sql[j] <= '9') n = n * 10 + (sql[j++] - '0');
      highest = std::max(highest, n);
      out += '$';
      out.append(sql.substr(i + 1, j - i - 1));
      i = j - 1;
    } else {
      out.push_back(c);
    }
  }
  if (params) *params = highest;
  return out;
}

// ---- SqlDb ----

struct SqlDb::PgConn {
  explicit PgConn(PgDb d) : db(std::move(d)) {}
  PgDb db;
  int64_t last_changes = 0;
};

struct SqlStmt::Pg {
  PgDb* db = nullptr;
  int64_t* last_changes = nullptr;
  std::string sql;  // with $N placeholders
  std::vector<PgValue> params;
  std::vector<PgRow> rows;
  bool executed = false;
  size_t next = 0;  // index of the row after the current one

  const std::string* cell(int col) const {
    if (next == 0 || next > rows.size()) return nullptr;
    const PgRow& r = rows[next - 1];
    if (col < 0 || static_cast<size_t>(col) >= r.size() || !r[col]) return nullptr;
    return &*r[col];
  }
  void set(int i, PgValue v) {
    if (i < 1 || static_cast<size_t>(i) > params.size())
      fail<IoError>(db->where(), "bind index {} outside 1..{} (in: {:.80})", i, params.size(), sql);
    params[i - 1] = std::move(v);
  }
};

SqlDb SqlDb::open(const std::string& path_or_url, const OpenOptions& sqlite_options) {
  if (is_postgres_url(path_or_url)) return SqlDb(PgDb::connect(path_or_url));
  return SqlDb(Db::open(path_or_url, sqlite_options));
}

SqlDb::SqlDb(Db db) : lite_(std::move(db)) {}
SqlDb::SqlDb(PgDb db) : pg_(std::make_unique<PgConn>(std::move(db))) {}
SqlDb::SqlDb(SqlDb&&) noexcept = default;
SqlDb& SqlDb::operator=(SqlDb&&) noexcept = default;
SqlDb::~SqlDb() = default;

PgDb* SqlDb::postgres() { return pg_ ? &pg_->db : nullptr; }

const std::string& SqlDb::where() const { return pg_ ? pg_->db.where() : lite_->path(); }

SqlStmt SqlDb::prepare(std::string_view sql) {
  SqlStmt s;
  if (!pg_) {
    s.lite_ = lite_->prepare(sql);
    return s;
  }
  s.pg_ = std::make_unique<SqlStmt::Pg>();
  int n = 0;
  s.pg_->sql = to_postgres_placeholders(sql, &n);
  s.pg_->params.resize(static_cast<size_t>(n));
  s.pg_->db = &pg_->db;
  s.pg_->last_changes = &pg_->last_changes;
  return s;
}

void SqlDb::exec(std::string_view sql) {
  if (pg_)
    pg_->last_changes = pg_->db.exec(sql);
  else
    lite_->exec(sql);
}

int64_t SqlDb::changes() const { return pg_ ? pg_->last_changes : lite_->changes(); }

void SqlDb::begin() {
  if (pg_)
    pg_->db.begin();
  else
    lite_->exec("BEGIN IMMEDIATE");
}

void SqlDb::commit() {
  if (pg_) {
    pg_->db.commit();
    return;
  }
  try {
    lite_->exec("COMMIT");
  } catch (...) {
    rollback();
    throw;
  }
}

void SqlDb::rollback() noexcept {
  if (pg_)
    pg_->db.rollback();
  else if (lite_ && !sqlite3_get_autocommit(lite_->handle()))
    sqlite3_exec(lite_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

// ---- SqlStmt ----

SqlStmt::SqlStmt(SqlStmt&&) noexcept = default;
SqlStmt& SqlStmt::operator=(SqlStmt&&) noexcept = default;
SqlStmt::~SqlStmt() = default;

SqlStmt& SqlStmt::bind(int i, int64_t v) {
  if (pg_)
    pg_->set(i, std::to_string(v));
  else
    lite_.bind(i, v);
  return *this;
}

SqlStmt& SqlStmt::bind(int i, double v) {
  if (pg_)
    pg_->set(i, fmt::format("{}", v));  // shortest text that reads back as the same double
  else
    lite_.bind(i, v);
  return *this;
}

SqlStmt& SqlStmt::bind(int i, std::string_view text) {
  if (pg_)
    pg_->set(i, std::string(text));
  else
    lite_.bind(i, text);
  return *this;
}

SqlStmt& SqlStmt::bind_null(int i) {
  if (pg_)
    pg_->set(i, std::nullopt);
  else
    lite_.bind_null(i);
  return *this;
}

bool SqlStmt::step() {
  if (!pg_) return lite_.step();
  Pg& p = *pg_;
  if (!p.executed) {
    PgResult r = p.db->run(p.sql, p.params);
    p.rows = std::move(r.rows);
    *p.last_changes = r.affected;
    p.executed = true;
    p.next = 0;
  }
  if (p.next >= p.rows.size()) {
    p.next = p.rows.size() + 1;  // past the end: columns read as NULL
    return false;
  }
  ++p.next;
  return true;
}

namespace {
// Resets the statement on every way out of a scope, return or throw, so that a
// failed run leaves it ready for reuse too (reset() does not throw).
struct ResetOnExit {
  SqlStmt& stmt;
  ~ResetOnExit() { stmt.reset(); }
};
}  // namespace

void SqlStmt::run() {
  const ResetOnExit reset_after{*this};
  while (step()) {
  }
}

void SqlStmt::reset() {
  if (!pg_) {
    lite_.reset();
    return;
  }
  pg_->executed = false;
  pg_->rows.clear();
  pg_->next = 0;
  for (auto& v : pg_->params) v.reset();
}

std::optional<int64_t> SqlStmt::insert_returning_id() {
  const ResetOnExit reset_after{*this};
  std::optional<int64_t> id;
  if (step()) id = int64(0);
  while (step()) {
  }
  return id;
}

bool SqlStmt::is_null(int col) const { return pg_ ? pg_->cell(col) == nullptr : lite_.is_null(col); }

int64_t SqlStmt::int64(int col) const {
  if (!pg_) return lite_.int64(col);
  const std::string* v = pg_->cell(col);
  if (!v || v->empty()) return 0;
  if (*v == "t") return 1;
  if (*v == "f") return 0;
  int64_t out = 0;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || end != v->data() + v->size()) {
    double d = real(col);  // numeric or float text
    return static_cast<int64_t>(d);
  }
  return out;
}

double SqlStmt::real(int col) const {
  if (!pg_) return lite_.real(col);
  const std::string* v = pg_->cell(col);
  if (!v) return 0.0;
  const std::string& s = *v;
  if (s == "t") return 1.0;
  if (s == "f") return 0.0;
  return std::strtod(s.c_str(), nullptr);  // also reads NaN and Infinity
}

std::string SqlStmt::text(int col) const {
  if (!pg_) return lite_.text(col);
  const std::string* v = pg_->cell(col);
  return v ? *v : std::string();
}

}  // namespace kaival::store
