#include "arena/copy_store.h"

#include <array>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
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
  size_t key_columns = 1;  // the primary key: the first columns (id, or the keyless tables' own)
};

constexpr Col I = Col::Int, R = Col::Real, T = Col::Text;

// Every table of the arena schema (both backends, current version), parents
// before children so that foreign keys hold row by row. Not live_reservations:
// the budget held by pairs in flight on the source's servers, which become
// live_usage rows when they finish (and reach the target with the next copy).
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
      {"models", false, {{"campaign_id", I}, {"name", T}, {"organization", T}}, 2},
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
      {"assignments", false, {{"item_id", I}, {"account_id", I}}, 2},
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

// A row as bytes, the same on both backends: for digests and for comparing rows.
std::string encode(const Row& r) {
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
  return enc;
}

// A row's primary key for messages: "id=12", "campaign_id=1, name=m1".
std::string describe_key(const TableSpec& t, const Row& r) {
  std::string out;
  for (size_t c = 0; c < t.key_columns; ++c) {
    const Value& v = r[c];
    std::string text = std::holds_alternative<int64_t>(v)       ? std::to_string(std::get<int64_t>(v))
                       : std::holds_alternative<std::string>(v) ? std::get<std::string>(v)
                                                                : "NULL";
    if (text.size() > 40) text = text.substr(0, 16) + "...";  // token hashes
    out += (out.empty() ? "" : ", ") + fmt::format("{}={}", t.columns[c].name, text);
  }
  return out;
}

// An order-independent digest of a table: the lane-wise sum (mod 2^64) of each
// row's SHA-256. Equal on both sides iff the same multiset of rows, short of a
// collision; no ORDER BY, so text collations cannot make two equal tables differ.
// Sums add up: the digest of old rows plus that of the rows added is the whole's.
struct Digest {
  std::array<uint64_t, 4> lanes{};

  void add(const Digest& d) {
    for (size_t k = 0; k < 4; ++k) lanes[k] += d.lanes[k];
  }
  void add(const Row& r) {
    const std::string enc = encode(r);
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
      dst.exec("TRUNCATE " + all + ", live_reservations");  // the replaced store's pairs in flight go too
      dst.exec("ALTER TABLE audit_log ENABLE TRIGGER USER");
    }
  }
  // A store that a server has opened holds only its salt in meta: that counts
  // as empty, and the source's salt replaces it (exported voter ids stay the same).
  // Otherwise the target holds an earlier copy: only new rows are added, and
  // its meta (the salt) must match the source's like every other row.
  bool empty = true;
  for (const auto& t : specs)
    if (std::string(t.name) != "meta" && count_rows(dst, t.name) > 0) empty = false;
  if (empty) dst.exec("DELETE FROM meta");
  report.incremental = !empty;

  const size_t batch = static_cast<size_t>(std::max(1, options.batch_rows));
  struct Expected {
    int64_t rows = 0;
    Digest digest;  // the target's rows before the copy, plus those added
  };
  std::vector<Expected> expected(specs.size());
  for (size_t k = 0; k < specs.size(); ++k) {
    const TableSpec& t = specs[k];
    Expected& want = expected[k];
    CopiedTable out{t.name};
    CopyProgress p{t.name, 0, count_rows(src, t.name)};
    Digest digest;
    auto key_of = [&](const Row& r) { return encode(Row(r.begin(), r.begin() + static_cast<long>(t.key_columns))); };
    std::map<std::string, Row> held;  // keyless tables (small): the target's rows by key
    if (!empty)
      for_each_row(dst, t, [&](Row r) {
        want.digest.add(r);
        ++want.rows;
        if (!t.has_id) held.emplace(key_of(r), std::move(r));
      });
    SqlStmt full = dst.prepare(insert_sql(t, batch));
    std::optional<SqlStmt> in_range;  // the target's rows in a batch's id range
    if (!empty && t.has_id)
      in_range.emplace(dst.prepare("SELECT " + column_list(t) + " FROM " + t.name + " WHERE id >= ?1 AND id <= ?2"));
    std::vector<Row> pending;
    int64_t reported = -1;
    auto report_progress = [&] {
      if (options.progress && p.done != reported) options.progress(p);
      reported = p.done;
    };
    // Keeps in `pending` only the rows the target lacks; the others must be equal there.
    auto drop_held = [&] {
      std::map<int64_t, Row> there;
      if (t.has_id) {  // source rows come in id order
        in_range->reset();
        in_range->bind(1, std::get<int64_t>(pending.front()[0])).bind(2, std::get<int64_t>(pending.back()[0]));
        while (in_range->step()) {
          Row r = read_row(*in_range, t);
          int64_t id = std::get<int64_t>(r[0]);
          there.emplace(id, std::move(r));
        }
      }
      std::vector<Row> fresh;
      for (Row& r : pending) {
        const Row* other = nullptr;
        if (t.has_id) {
          auto it = there.find(std::get<int64_t>(r[0]));
          if (it != there.end()) other = &it->second;
        } else {
          auto it = held.find(key_of(r));
          if (it != held.end()) other = &it->second;
        }
        if (!other) {
          fresh.push_back(std::move(r));
          continue;
        }
        if (encode(*other) != encode(r))
          fail(dst_where, "{} row {} differs between the source and the target's earlier copy (changed since, or "
                          "another store); nothing was written. Copy into a new database, or pass --replace to "
                          "empty a PostgreSQL target first", t.name, describe_key(t, r));
        ++out.skipped;
      }
      pending = std::move(fresh);
    };
    auto flush = [&] {
      if (pending.empty()) return;
      const auto read = static_cast<int64_t>(pending.size());
      if (!empty) drop_held();
      if (!pending.empty()) {
        std::optional<SqlStmt> tail;
        SqlStmt* s = &full;
        if (pending.size() != batch) {
          tail.emplace(dst.prepare(insert_sql(t, pending.size())));
          s = &*tail;
        }
        int i = 1;
        for (const Row& r : pending) {
          want.digest.add(r);
          for (const Value& v : r) bind_value(*s, i++, v);
        }
        try {
          s->run();
        } catch (const IoError& e) {
          if (empty) throw;
          // A new row that clashes with one the target got elsewhere (say, the same account name).
          fail<IoError>(dst_where, "adding new {} rows from {}: {}; nothing was written", t.name,
                        describe_key(t, pending.front()), e.problem());
        }
        want.rows += static_cast<int64_t>(pending.size());
        out.added += static_cast<int64_t>(pending.size());
      }
      p.done += read;
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
    out.rows = p.done;
    out.digest = digest.hex();
    report.tables.push_back(std::move(out));
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
    const Expected& want = expected[k];
    if (n != want.rows || d.hex() != want.digest.hex())
      fail<IoError>(dst_where, "verification failed for {}: {} rows (digest {}) where {} rows (digest {}) were "
                               "expected; nothing was committed", t.name, n, d.hex().substr(0, 12), want.rows,
                    want.digest.hex().substr(0, 12));
  }
  tx.commit();
  src.rollback();  // ends the read snapshot
  return report;
}

}  // namespace kaival::arena
