#include "store/postgres.h"

#include <pqxx/pqxx>

#include "core/error.h"

namespace kaival::store {

bool is_postgres_url(std::string_view s) {
  return s.starts_with("postgresql://") || s.starts_with("postgres://");
}

std::string redact_url(std::string_view url) {
  std::string u(url);
  auto scheme = u.find("://");
  auto at = u.find('@');
  if (scheme == std::string::npos || at == std::string::npos || at < scheme) return u;
  auto colon = u.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return u;
  return u.substr(0, colon + 1) + "***" + u.substr(at);
}

struct PgDb::Impl {
  explicit Impl(const std::string& url) : conn(url) {}
  pqxx::connection conn;
  std::unique_ptr<pqxx::work> tx;  // declared after conn: destroyed (rolled back) first
};

PgDb::PgDb(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PgDb::PgDb(PgDb&&) noexcept = default;
PgDb& PgDb::operator=(PgDb&&) noexcept = default;
PgDb::~PgDb() = default;

PgDb PgDb::connect(const std::string& url) {
  std::string where = "postgres " + redact_url(url);
  try {
    PgDb db(std::make_unique<Impl>(url));
    db.where_ = where;
    return db;
  } catch (const std::exception& e) {
    std::string msg = e.what();
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    fail<IoError>(where, "cannot connect: {}", msg);
  }
}

namespace {
std::string one_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (auto& c : s)
    if (c == '\n') c = ' ';
  return s;
}
}  // namespace

PgResult PgDb::run(std::string_view sql, std::span<const PgValue> params) {
  try {
    std::vector<PgValue> p(params.begin(), params.end());
    auto go = [&](pqxx::transaction_base& tx) {
      return tx.exec_params(std::string(sql), pqxx::prepare::make_dynamic_params(p));
    };
    pqxx::result r;
    if (impl_->tx) {
      r = go(*impl_->tx);
    } else {
      pqxx::nontransaction tx(impl_->conn);
      r = go(tx);
    }
    PgResult out;
    out.affected = static_cast<int64_t>(r.affected_rows());
    out.rows.reserve(r.size());
    for (const auto& row : r) {
      PgRow vals;
      vals.reserve(row.size());
      for (const auto& f : row) vals.push_back(f.is_null() ? PgValue{} : PgValue{std::string(f.c_str(), f.size())});
      out.rows.push_back(std::move(vals));
    }
    return out;
  } catch (const pqxx::broken_connection& e) {
    fail<IoError>(where_, "connection lost: {}", one_line(e.what()));
  } catch (const pqxx::sql_error& e) {
    fail<IoError>(where_, "{} (in: {})", one_line(e.what()), one_line(std::string(sql.substr(0, 120))));
  } catch (const pqxx::usage_error& e) {  // e.g. a statement after an error inside a transaction
    fail<IoError>(where_, "{} (in: {})", one_line(e.what()), one_line(std::string(sql.substr(0, 120))));
  }
}

std::vector<PgRow> PgDb::query(std::string_view sql, std::span<const PgValue> params) {
  return run(sql, params).rows;
}

int64_t PgDb::exec(std::string_view sql, std::initializer_list<PgValue> params) {
  return run(sql, std::span<const PgValue>(params.begin(), params.size())).affected;
}

void PgDb::begin() {
  if (impl_->tx) fail<Error>(where_, "transaction already open");
  try {
    impl_->tx = std::make_unique<pqxx::work>(impl_->conn);
  } catch (const pqxx::broken_connection& e) {
    fail<IoError>(where_, "connection lost: {}", one_line(e.what()));
  } catch (const pqxx::sql_error& e) {
    fail<IoError>(where_, "BEGIN failed: {}", one_line(e.what()));
  }
}

void PgDb::commit() {
  if (!impl_->tx) fail<Error>(where_, "no transaction to commit");
  auto tx = std::move(impl_->tx);
  try {
    tx->commit();
  } catch (const pqxx::broken_connection& e) {
    fail<IoError>(where_, "connection lost at COMMIT: {}", one_line(e.what()));
  } catch (const pqxx::in_doubt_error& e) {
    fail<IoError>(where_, "COMMIT in doubt: {}", one_line(e.what()));
  } catch (const pqxx::sql_error& e) {
    fail<IoError>(where_, "COMMIT failed: {}", one_line(e.what()));
  }
}

void PgDb::rollback() noexcept {
  if (!impl_->tx) return;
  auto tx = std::move(impl_->tx);
  try {
    tx->abort();
  } catch (...) {  // the destructor of a lost connection's transaction must not throw either
  }
}

bool PgDb::in_transaction() const { return impl_->tx != nullptr; }

void PgDb::exec_script_in_transaction(std::string_view sql) {
  try {
    pqxx::work tx(impl_->conn);
    tx.exec(std::string(sql));
    tx.commit();
  } catch (const pqxx::broken_connection& e) {
    fail<IoError>(where_, "connection lost: {}", one_line(e.what()));
  } catch (const pqxx::sql_error& e) {
    fail<IoError>(where_, "{}", one_line(e.what()));
  }
}

int migrate(PgDb& db, std::string_view component, std::span<const Migration> migrations) {
  int latest = 0;
  for (const auto& m : migrations) {
    if (m.version != latest + 1)
      fail<Error>(db.where(), "migrations of {} must be numbered 1..N in order (found {} after {})", component,
                  m.version, latest);
    latest = m.version;
  }
  // One transaction per migration, each under a transaction-scoped advisory lock: concurrent
  // starters serialise here, and the second sees the first's version and skips.
  // CREATE TABLE IF NOT EXISTS itself races between sessions (duplicate pg_type rows): lock first.
  db.exec_script_in_transaction(
      "SELECT pg_advisory_xact_lock(hashtext('kaival_migrations'));\n"
      "CREATE TABLE IF NOT EXISTS kaival_migrations (component TEXT NOT NULL, version INTEGER NOT NULL, "
      "applied TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (component, version))");
  auto have = [&] {
    auto rows = db.query("SELECT COALESCE(MAX(version), 0) FROM kaival_migrations WHERE component = $1",
                         {std::string(component)});
    return std::stoi(rows.at(0).at(0).value_or("0"));
  };
  int current = have();
  if (current > latest)
    fail<UnsupportedError>(db.where(), "schema of {} is at version {}, newer than this kaival ({}); upgrade kaival",
                           component, current, latest);
  for (const auto& m : migrations) {
    if (m.version <= current) continue;
    // Quote the component as a literal for the script (letters and '_' only, checked here).
    for (char c : component)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_'))
        fail<Error>(db.where(), "bad migration component name '{}'", component);
    std::string script = fmt::format(
        "SELECT pg_advisory_xact_lock(hashtext('kaival_migrations'));\n"
        "DO $kaival$ BEGIN IF EXISTS (SELECT 1 FROM kaival_migrations WHERE component = '{0}' AND version = {1}) "
        "THEN RAISE EXCEPTION 'kaival_already_applied'; END IF; END $kaival$;\n"
        "{2};\n"
        "INSERT INTO kaival_migrations (component, version) VALUES ('{0}', {1});",
        component, m.version, m.sql);
    try {
      db.exec_script_in_transaction(script);
    } catch (const IoError& e) {
      // Another process applied it between our check and our lock: fine.
      if (std::string(e.what()).find("kaival_already_applied") == std::string::npos) throw;
    }
  }
  return latest;
}

}  // namespace kaival::store
