#include "arena/copy_store.h"

#include <array>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <variant>

#include <sodium.h>

#include "arena/store.h"
#include "core/error.h"
#include "store/postgres.h"
#include "store/sql.h"

namespace kaival::arena {

namespace {

using store::SqlDb;
using store::SqlStmt;

// Column types as the copy reads and binds them: integer, real, text.
enum class Col { Int, Real, Text };

struct Column {
  const char* name;
  Col type;
};

struct TableSpec {
  const char* name;
  bool has_id;  // an integer `id` primary key (keyset paging, PostgreSQL identity)
  std::vector<Column> columns;
};

constexpr Col I = Col::Int, R = Col::Real, T = Col::Text;

// Every table of the arena schema (both backends, current version), parents
// before children so that foreign keys hold row by row.
const std::vector<TableSpec>& tables() {
  static const std::vector<TableSpec> kTables = {
      {"meta", false, {{"key", T}, {"value", T}}},
      {"accounts", true,
       {{"id", I}, {"name", T}, {"pw_hash", T}, {"role", T}, {"affiliation", T}, {"created_ms", I}, {"disabled", I}}},
      {"invitations", false,
       {{"token_hash", T}, {"role", T}, {"affiliation", T}, {"created_by", I}, {"created_ms", I}, {"account_id", I}}},
      {"sessions", false, {{"token_hash", T}, {"account_id", I}, {"csrf", T}, {"created_ms", I}, {"expires_ms", I}}},
      {"campaigns", true,
       {{"id", I}, {"name", T}, {"kind", T}, {"title", T}, {"spec", T}, {"synthetic", I}, {"created_ms", I}}},
      {"models", false, {{"campaign_id", I}, {"name", T}, {"organization", T}}},
      {"prompts", true, {{"id", I}, {"campaign_id", I}, {"key", T}, {"text", T}, {"live_account", I}}},
      {"answers", true, {{"id", I}, {"prompt_id", I}, {"model", T}, {"text", T}, {"identity_leak", I}}},
      {"battles", true,
       {{"id", I}, {"public_id", T}, {"campaign_id", I}, {"prompt_id", I}, {"answer_a", I}, {"answer_b", I},
        {"account_id", I}, {"ip_hash", T}, {"served_ms", I}}},
      {"votes", true,
       {{"id", I}, {"battle_id", I}, {"account_id", I}, {"ip_hash", T}, {"winner", T}, {"created_ms", I},
        {"latency_ms", I}, {"quarantined", I}, {"quarantine_reason", T}}},
      {"review_items", true,
       {{"id", I}, {"campaign_id", I}, {"key", T}, {"model", T}, {"title", T}, {"content", T}, {"affiliation", T}}},
      {"assignments", false, {{"item_id", I}, {"account_id", I}}},
      {"reviews", true,
       {{"id", I}, {"item_id", I}, {"account_id", I}, {"criterion", T}, {"score", R}, {"rationale", T},
        {"created_ms", I}}},
      {"audit_log", true, {{"id", I}, {"time_ms", I}, {"actor", I}, {"action", T}, {"detail", T}}},
      {"live_usage", true,
       {{"id", I}, {"campaign_id", I}, {"model", T}, {"account_id", I}, {"time_ms", I}, {"prompt_tokens", I},
        {"completion_tokens", I}, {"counted", I}}},
  };
  return kTables;
}

using Value = std::variant<std::monostate, int64_t, double, std::string>;
using Row = std::vector<Value>;

Row read_row(const SqlStmt& s, const TableSpec& t) {
  Row r;
  r.reserve(t.columns.size());
  for (size_t c = 0; c < t.columns.size(); ++c) {
    int col = static_cast<int>(c);
    if (s.is_null(col)) {
      r.emplace_back(std::monostate{});
      continue;
    }
    switch (t.columns[c].type) {
      case Col::Int: r.emplace_back(s.int64(col)); break;
      case Col::Real: r.emplace_back(s.real(col)); break;
      case Col::Text: r.emplace_back(s.text(col)); break;
    }
  }
  return r;
}

void bind_value(SqlStmt& s, int i, const Value& v) {
  if (std::holds_alternative<int64_t>(v))
    s.bind(i, std::get<int64_t>(v));
  else if (std::holds_alternative<double>(v))
    s.bind(i, std::get<double>(v));
  else if (std::holds_alternative<std::string>(v))
    s.bind(i, std::get<std::string>(v));
  else
    s.bind_null(i);
}

// An order-independent digest of a table: the lane-wise sum (mod 2^64) of each
// row's SHA-256. Equal on both sides iff the same multiset of rows, short of a
// collision; no ORDER BY, so text collations cannot make two equal tables differ.
struct Digest {
  std::array<uint64_t, 4> lanes{};

  void add(const Row& r) {
    std::string enc;
    for (const Value& v : r) {
      if (std::holds_alternative<std::monostate>(v)) {
        enc += "N;";
      } else if (std::holds_alternative<int64_t>(v)) {
        enc += fmt::format("i{};", std::get<int64_t>(v));
      } else if (std::holds_alternative<double>(v)) {
        enc += fmt::format("r{};", std::get<double>(v));  // shortest text that reads back the same
      } else {
        const std::string& s = std::get<std::string>(v);
        enc += fmt::format("t{}:", s.size());
        enc += s;
      }
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, reinterpret_cast<const unsigned char*>(enc.data()), enc.size());
    for (size_t k = 0; k < 4; ++k) {
      uint64_t x = 0;
      std::memcpy(&x, h + 8 * k, 8);
      lanes[k] += x;
    }
  }
  std::string hex() const { return fmt::format("{:016x}{:016x}{:016x}{:016x}", lanes[0], lanes[1], lanes[2], lanes[3]); }
};

std::string column_list(const TableSpec& t) {
  std::string s;
  for (const auto& c : t.columns) s += (s.empty() ? "" : ", ") + std::string(c.name);
  return s;
}

int64_t count_rows(SqlDb& db, const std::string& table) {
  SqlStmt s = db.prepare("SELECT count(*) FROM " + table);
  s.step();
  return s.int64(0);
}

// Reads a whole table in pages (PostgreSQL buffers each result whole): by id
// where there is one, else in one statement (the small keyless tables).
template <typename F>
void for_each_row(SqlDb& db, const TableSpec& t, F&& f) {
  const std::string cols = column_list(t);
  if (!t.has_id) {
    SqlStmt s = db.prepare("SELECT " + cols + " FROM " + t.name);
    while (s.step()) f(read_row(s, t));
    return;
  }
  SqlStmt s = db.prepare("SELECT " + cols + " FROM " + t.name + " WHERE id > ?1 ORDER BY id LIMIT 5000");
  int64_t after = std::numeric_limits<int64_t>::min();
  for (;;) {
    s.reset();
    s.bind(1, after);
    int64_t n = 0;
    while (s.step()) {
      Row r = read_row(s, t);
      after = std::get<int64_t>(r[0]);  // id is the first column and never NULL
      f(std::move(r));
      ++n;
    }
    if (n < 5000) return;
  }
}

std::string insert_sql(const TableSpec& t, size_t rows) {
  std::string sql = "INSERT INTO " + std::string(t.name) + "(" + column_list(t) + ") VALUES ";
  int p = 1;
  for (size_t r = 0; r < rows; ++r) {
    sql += r ? ",(" : "(";
    for (size_t c = 0; c < t.columns.size(); ++c) sql += (c ? ",?" : "?") + std::to_string(p++);
    sql += ")";
  }
  return sql;
}

int latest_version(bool postgres) {
  auto m = ArenaStore::schema_migrations(postgres);
  return m.empty() ? 0 : m.back().version;
}

// The source's arena schema version; refuses anything but this build's.
int check_source_schema(SqlDb& db, const std::string& from) {
  const bool pg = db.is_postgres();
  int version = 0;
  if (pg) {
    SqlStmt reg = db.prepare("SELECT to_regclass('kaival_migrations') IS NOT NULL");
    reg.step();
    if (reg.int64(0)) {
      SqlStmt v = db.prepare("SELECT COALESCE(MAX(version), 0) FROM kaival_migrations WHERE component='arena'");
      v.step();
      version = static_cast<int>(v.int64(0));
    }
  } else {
    SqlStmt v = db.prepare("PRAGMA user_version");
    v.step();
    version = static_cast<int>(v.int64(0));
    SqlStmt has = db.prepare("SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN ('votes','battles','audit_log')");
    has.step();
    if (has.int64(0) != 3) version = 0;
  }
  const int want = latest_version(pg);
  if (version == 0) fail(from, "not a kaival arena store (no arena schema found)");
  if (version < want)
    fail(from, "arena schema version {} is older than this build's {}; upgrade it first by running any "
               "`kaival arena` command (e.g. export) on it with this build", version, want);
  if (version > want)
    fail(from, "arena schema version {} is newer than this build's {}; copy it with the kaival build that wrote it",
         version, want);
  return version;
}

void open_target_schema(SqlDb& db) {
  if (db.is_postgres())
    store::migrate(*db.postgres(), "arena", ArenaStore::schema_migrations(true));
  else
    store::migrate(*db.sqlite(), ArenaStore::schema_migrations(false));
}

}  // namespace

std::vector<std::string> copied_tables() {
  std::vector<std::string> out;
  for (const auto& t : tables()) out.push_back(t.name);
  return out;
}

CopyReport copy_store(const std::string& from, const std::string& to, const CopyOptions& options) {
  namespace fs = std::filesystem;
  if (sodium_init() < 0) fail<IoError>(from, "libsodium failed to initialise");
  if (from == to) fail(to, "source and target are the same store");
  const bool from_pg = store::is_postgres_url(from), to_pg = store::is_postgres_url(to);
  if (!from_pg && !fs::is_regular_file(from)) fail<IoError>(from, "no such SQLite file");
  if (options.replace && !to_pg)
    fail(to, "--replace empties PostgreSQL targets only; for an SQLite target remove the file instead");

  store::OpenOptions read_only;
  read_only.read_only = true;
  SqlDb src = SqlDb::open(from, read_only);
  const std::string src_where = src.where();
  CopyReport report;
  report.schema_version = check_source_schema(src, src_where);

  SqlDb dst = SqlDb::open(to);
  const std::string dst_where = dst.where();
  open_target_schema(dst);

  // One snapshot of the source (servers may still be writing to it).
  if (from_pg) {
    src.begin();
    src.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY");
  } else {
    src.exec("BEGIN");  // deferred: the first SELECT fixes the snapshot
  }

  store::SqlTransaction tx(dst);
  const auto& specs = tables();
  if (to_pg) {
    // Keep servers that share the target out until the copy has committed.
    std::string all;
    for (const auto& t : specs) all += (all.empty() ? "" : ", ") + std::string(t.name);
    dst.exec("LOCK TABLE " + all + " IN EXCLUSIVE MODE");
    if (options.replace) {
      // The audit log refuses TRUNCATE through its trigger; lift it for this
      // transaction only (ALTER TABLE is transactional on PostgreSQL).
      dst.exec("ALTER TABLE audit_log DISABLE TRIGGER USER");
      dst.exec("TRUNCATE " + all);
      dst.exec("ALTER TABLE audit_log ENABLE TRIGGER USER");
    }
  }
  // A store that a server has opened holds only its salt in meta: that counts
  // as empty, and the source's salt replaces it (exported voter ids stay the same).
  for (const auto& t : specs) {
    if (std::string(t.name) == "meta") continue;
    if (int64_t n = count_rows(dst, t.name))
      fail(dst_where, "target is not empty ({} rows in {}); copy into a new database, or pass --replace to "
                      "empty it first", n, t.name);
  }
  dst.exec("DELETE FROM meta");

  const size_t batch = static_cast<size_t>(std::max(1, options.batch_rows));
  for (const auto& t : specs) {
    CopyProgress p{t.name, 0, count_rows(src, t.name)};
    Digest digest;
    SqlStmt full = dst.prepare(insert_sql(t, batch));
    std::vector<Row> pending;
    int64_t reported = -1;
    auto report_progress = [&] {
      if (options.progress && p.done != reported) options.progress(p);
      reported = p.done;
    };
    auto flush = [&] {
      if (pending.empty()) return;
      std::optional<SqlStmt> tail;
      SqlStmt* s = &full;
      if (pending.size() != batch) {
        tail.emplace(dst.prepare(insert_sql(t, pending.size())));
        s = &*tail;
      }
      int i = 1;
      for (const Row& r : pending)
        for (const Value& v : r) bind_value(*s, i++, v);
      s->run();
      p.done += static_cast<int64_t>(pending.size());
      pending.clear();
      report_progress();
    };
    for_each_row(src, t, [&](Row r) {
      digest.add(r);
      pending.push_back(std::move(r));
      if (pending.size() == batch) flush();
    });
    flush();
    report_progress();  // once more only for an empty table
    report.tables.push_back({t.name, p.done, digest.hex()});
  }

  if (to_pg) {
    // Explicit ids leave the identity sequences behind: new rows must start after the copied ones.
    for (const auto& t : specs)
      if (t.has_id)
        dst.prepare(fmt::format("SELECT setval(pg_get_serial_sequence('{0}', 'id'), COALESCE(MAX(id), 0) + 1, false) "
                                "FROM {0}", t.name))
            .run();
  }

  // Verify inside the transaction: a mismatch rolls everything back.
  for (size_t k = 0; k < specs.size(); ++k) {
    const TableSpec& t = specs[k];
    Digest d;
    int64_t n = 0;
    for_each_row(dst, t, [&](Row r) {
      d.add(r);
      ++n;
    });
    const CopiedTable& c = report.tables[k];
    if (n != c.rows || d.hex() != c.digest)
      fail<IoError>(dst_where, "verification failed for {}: {} rows (digest {}) copied from {} rows (digest {}); "
                               "nothing was committed", t.name, n, d.hex().substr(0, 12), c.rows, c.digest.substr(0, 12));
  }
  tx.commit();
  src.rollback();  // ends the read snapshot
  return report;
}

}  // namespace kaival::arena
