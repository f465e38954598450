#include "arena/store.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <unordered_map>

#include <nlohmann/json.hpp>
#include <sodium.h>

#include "arena/quantile.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/text.h"
#include "core/version.h"
#include "store/postgres.h"

namespace kaival::arena {

using nlohmann::json;
using Stmt = store::SqlStmt;
using Transaction = store::SqlTransaction;

namespace {

// Versioned schema. Never edit a released migration: append a new one.
constexpr std::array<store::Migration, 5> kMigrations{{
    {1, R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE accounts(
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, pw_hash TEXT NOT NULL,
  role TEXT NOT NULL CHECK(role IN ('admin','expert','voter')),
  affiliation TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL, disabled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE invitations(
  token_hash TEXT PRIMARY KEY, role TEXT NOT NULL CHECK(role IN ('admin','expert','voter')),
  affiliation TEXT NOT NULL DEFAULT '', created_by INTEGER, created_ms INTEGER NOT NULL,
  account_id INTEGER REFERENCES accounts(id));
CREATE TABLE sessions(
  token_hash TEXT PRIMARY KEY, account_id INTEGER NOT NULL REFERENCES accounts(id),
  csrf TEXT NOT NULL, created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL);
CREATE TABLE campaigns(
  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, kind TEXT NOT NULL CHECK(kind IN ('arena','review')),
  title TEXT NOT NULL DEFAULT '', spec TEXT NOT NULL, synthetic INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL);
CREATE TABLE models(
  campaign_id INTEGER NOT NULL REFERENCES campaigns(id), name TEXT NOT NULL, organization TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(campaign_id, name));
CREATE TABLE prompts(
  id INTEGER PRIMARY KEY, campaign_id INTEGER NOT NULL REFERENCES campaigns(id), key TEXT NOT NULL,
  text TEXT NOT NULL, UNIQUE(campaign_id, key));
CREATE TABLE answers(
  id INTEGER PRIMARY KEY, prompt_id INTEGER NOT NULL REFERENCES prompts(id), model TEXT NOT NULL,
  text TEXT NOT NULL, identity_leak INTEGER NOT NULL DEFAULT 0, UNIQUE(prompt_id, model));
CREATE TABLE battles(
  id INTEGER PRIMARY KEY, public_id TEXT NOT NULL UNIQUE, campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
  prompt_id INTEGER NOT NULL REFERENCES prompts(id), answer_a INTEGER NOT NULL REFERENCES answers(id),
  answer_b INTEGER NOT NULL REFERENCES answers(id), account_id INTEGER NOT NULL REFERENCES accounts(id),
  ip_hash TEXT NOT NULL, served_ms INTEGER NOT NULL);
CREATE TABLE votes(
  id INTEGER PRIMARY KEY, battle_id INTEGER NOT NULL UNIQUE REFERENCES battles(id),
  account_id INTEGER NOT NULL REFERENCES accounts(id), ip_hash TEXT NOT NULL,
  winner TEXT NOT NULL CHECK(winner IN ('model_a','model_b','tie','both_bad')),
  created_ms INTEGER NOT NULL, latency_ms INTEGER NOT NULL,
  quarantined INTEGER NOT NULL DEFAULT 0, quarantine_reason TEXT);
CREATE INDEX votes_account ON votes(account_id, created_ms);
CREATE INDEX votes_ip ON votes(ip_hash, created_ms);
CREATE TABLE review_items(
  id INTEGER PRIMARY KEY, campaign_id INTEGER NOT NULL REFERENCES campaigns(id), key TEXT NOT NULL,
  model TEXT NOT NULL, title TEXT NOT NULL, content TEXT NOT NULL, affiliation TEXT NOT NULL DEFAULT '',
  UNIQUE(campaign_id, key));
CREATE TABLE assignments(
  item_id INTEGER NOT NULL REFERENCES review_items(id), account_id INTEGER NOT NULL REFERENCES accounts(id),
  PRIMARY KEY(item_id, account_id));
CREATE TABLE reviews(
  id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL REFERENCES review_items(id),
  account_id INTEGER NOT NULL REFERENCES accounts(id), criterion TEXT NOT NULL, score REAL NOT NULL,
  rationale TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL, UNIQUE(item_id, account_id, criterion));
CREATE TABLE audit_log(
  id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, actor INTEGER, action TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
)sql"},
    {2, R"sql(
CREATE INDEX battles_account ON battles(account_id);
CREATE INDEX battles_campaign ON battles(campaign_id);
CREATE INDEX assignments_account ON assignments(account_id);
)sql"},
    // Live prompts: owned by the voter who typed them (NULL: the campaign's
    // prompt set); attempts are counted from the audit log per actor.
    {3, R"sql(
ALTER TABLE prompts ADD COLUMN live_account INTEGER REFERENCES accounts(id);
CREATE INDEX audit_log_actor ON audit_log(actor, time_ms);
)sql"},
    // Live spending: one row per backend request, for the campaign budget.
    {4, R"sql(
CREATE TABLE live_usage(
  id INTEGER PRIMARY KEY, campaign_id INTEGER NOT NULL REFERENCES campaigns(id), model TEXT NOT NULL,
  account_id INTEGER REFERENCES accounts(id), time_ms INTEGER NOT NULL,
  prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, counted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX live_usage_campaign ON live_usage(campaign_id, model);
)sql"},
    // Live pairs in flight: each answer's worst case, reserved against the
    // budget when the pair starts and replaced by live_usage when it ends.
    {5, R"sql(
CREATE TABLE live_reservations(
  id INTEGER PRIMARY KEY, pair TEXT NOT NULL, campaign_id INTEGER NOT NULL REFERENCES campaigns(id),
  model TEXT NOT NULL, account_id INTEGER REFERENCES accounts(id), created_ms INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL);
CREATE INDEX live_reservations_campaign ON live_reservations(campaign_id, expires_ms);
CREATE INDEX live_reservations_pair ON live_reservations(pair);
)sql"},
}};

// The same schema for PostgreSQL: identity ids, BIGINT times, DOUBLE PRECISION
// scores, and the append-only audit log as a trigger function. Never edit a
// released migration: append a new one (numbered separately from SQLite's).
constexpr std::array<store::Migration, 4> kPgMigrations{{
    {1, R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE accounts(
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE, pw_hash TEXT NOT NULL,
  role TEXT NOT NULL CHECK(role IN ('admin','expert','voter')),
  affiliation TEXT NOT NULL DEFAULT '', created_ms BIGINT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE invitations(
  token_hash TEXT PRIMARY KEY, role TEXT NOT NULL CHECK(role IN ('admin','expert','voter')),
  affiliation TEXT NOT NULL DEFAULT '', created_by BIGINT, created_ms BIGINT NOT NULL,
  account_id BIGINT REFERENCES accounts(id));
CREATE TABLE sessions(
  token_hash TEXT PRIMARY KEY, account_id BIGINT NOT NULL REFERENCES accounts(id),
  csrf TEXT NOT NULL, created_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL);
CREATE TABLE campaigns(
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL CHECK(kind IN ('arena','review')),
  title TEXT NOT NULL DEFAULT '', spec TEXT NOT NULL, synthetic INTEGER NOT NULL DEFAULT 0,
  created_ms BIGINT NOT NULL);
CREATE TABLE models(
  campaign_id BIGINT NOT NULL REFERENCES campaigns(id), name TEXT NOT NULL, organization TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(campaign_id, name));
CREATE TABLE prompts(
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
  key TEXT NOT NULL, text TEXT NOT NULL, UNIQUE(campaign_id, key));
CREATE TABLE answers(
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, prompt_id BIGINT NOT NULL REFERENCES prompts(id),
  model TEXT NOT NULL, text TEXT NOT NULL, identity_leak INTEGER NOT NULL DEFAULT 0, UNIQUE(prompt_id, model));
CREATE TABLE battles(
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, public_id TEXT NOT NULL UNIQUE,
  campaign_id BIGINT NOT NULL REFERENCES campaigns(id), prompt_id BIGINT NOT NULL REFERENCES prompts(id),
  answer_a BIGINT NOT NULL REFERENCES answers(id), answer_b BIGINT NOT NULL REFERENCES answers(id),
  account_id BIGINT NOT NULL REFERENCES accounts(id), ip_hash TEXT NOT NULL, served_ms BIGINT NOT NULL);
CREATE TABLE votes(
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, battle_id BIGINT NOT NULL UNIQUE REFERENCES battles(id),
  account_id BIGINT NOT NULL REFERENCES accounts(id), ip_hash TEXT NOT NULL,
  winner TEXT NOT NULL CHECK(winner IN ('model_a','model_b','tie','both_bad')),
  created_ms BIGINT NOT NULL, latency_ms BIGINT NOT NULL,
  quarantined INTEGER NOT NULL DEFAULT 0, quarantine_reason TEXT);
CREATE INDEX votes_account ON votes(account_id, created_ms);
CREATE INDEX votes_ip ON votes(ip_hash, created_ms);
CREATE TABLE review_items(
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
  key TEXT NOT NULL, model TEXT NOT NULL, title TEXT NOT NULL, content TEXT NOT NULL,
  affiliation TEXT NOT NULL DEFAULT '', UNIQUE(campaign_id, key));
CREATE TABLE assignments(
  item_id BIGINT NOT NULL REFERENCES review_items(id), account_id BIGINT NOT NULL REFERENCES accounts(id),
  PRIMARY KEY(item_id, account_id));
CREATE TABLE reviews(
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, item_id BIGINT NOT NULL REFERENCES review_items(id),
  account_id BIGINT NOT NULL REFERENCES accounts(id), criterion TEXT NOT NULL, score DOUBLE PRECISION NOT NULL,
  rationale TEXT NOT NULL DEFAULT '', created_ms BIGINT NOT NULL, UNIQUE(item_id, account_id, criterion));
CREATE TABLE audit_log(
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, time_ms BIGINT NOT NULL, actor BIGINT,
  action TEXT NOT NULL, detail TEXT NOT NULL);
CREATE FUNCTION arena_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN RAISE EXCEPTION 'audit log is append-only'; END $f$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE PROCEDURE arena_audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE PROCEDURE arena_audit_log_append_only();
CREATE INDEX battles_account ON battles(account_id);
CREATE INDEX battles_campaign ON battles(campaign_id);
CREATE INDEX assignments_account ON assignments(account_id);
)sql"},
    {2, R"sql(
ALTER TABLE prompts ADD COLUMN live_account BIGINT REFERENCES accounts(id);
CREATE INDEX audit_log_actor ON audit_log(actor, time_ms);
)sql"},
    {3, R"sql(
CREATE TABLE live_usage(
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, campaign_id BIGINT NOT NULL REFERENCES campaigns(id),
  model TEXT NOT NULL, account_id BIGINT REFERENCES accounts(id), time_ms BIGINT NOT NULL,
  prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL, counted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX live_usage_campaign ON live_usage(campaign_id, model);
)sql"},
    {4, R"sql(
CREATE TABLE live_reservations(
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, pair TEXT NOT NULL,
  campaign_id BIGINT NOT NULL REFERENCES campaigns(id), model TEXT NOT NULL, account_id BIGINT REFERENCES accounts(id),
  created_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL, prompt_tokens BIGINT NOT NULL,
  completion_tokens BIGINT NOT NULL);
CREATE INDEX live_reservations_campaign ON live_reservations(campaign_id, expires_ms);
CREATE INDEX live_reservations_pair ON live_reservations(pair);
)sql"},
}};

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string iso_time(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms % 1000));
}

std::string random_hex(size_t bytes) {
  std::vector<unsigned char> b(bytes);
  randombytes_buf(b.data(), b.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s.push_back(kHex[c >> 4]);
    s.push_back(kHex[c & 15]);
  }
  return s;
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

Outcome outcome_of(const std::string& w) {
  if (w == "model_a") return Outcome::WinA;
  if (w == "model_b") return Outcome::WinB;
  if (w == "tie") return Outcome::Tie;
  return Outcome::BothBad;
}

json rubric_json(const Rubric& r) {
  json a = json::array();
  for (const auto& c : r.criteria) {
    json anchors = json::object();
    for (const auto& [k, v] : c.anchors) anchors[fmt::format("{}", k)] = v;
    a.push_back({{"name", c.name}, {"weight", c.weight}, {"min", c.min}, {"max", c.max}, {"anchors", anchors}});
  }
  return a;
}

Rubric rubric_from(const json& a) {
  Rubric r;
  for (const auto& c : a) {
    Criterion cr{c.at("name"), c.at("weight"), c.at("min"), c.at("max"), {}};
    for (const auto& [k, v] : c.at("anchors").items()) cr.anchors[std::stod(k)] = v.get<std::string>();
    r.criteria.push_back(std::move(cr));
  }
  return r;
}

double json_number(double v) { return std::isfinite(v) ? v : 0.0; }

json live_model_json(const CampaignModel& m) {
  const ModelBackend& b = *m.backend;
  json j = {{"id", m.id}, {"organization", m.organization}, {"aliases", m.aliases},
            {"base_url", b.base_url}, {"model", b.model}, {"api_key_env", b.api_key_env}, {"system", b.system},
            {"max_tokens", b.max_tokens}, {"timeout_s", b.timeout_s}};
  if (b.temperature) j["temperature"] = *b.temperature;
  if (b.top_p) j["top_p"] = *b.top_p;
  if (b.cost_per_1m_input) j["cost_per_1m_input"] = *b.cost_per_1m_input;
  if (b.cost_per_1m_output) j["cost_per_1m_output"] = *b.cost_per_1m_output;
  return j;
}

CampaignModel live_model_from(const json& j) {
  CampaignModel m;
  m.id = j.at("id");
  m.organization = j.value("organization", "");
  m.aliases = j.value("aliases", std::vector<std::string>{});
  ModelBackend b;
  b.base_url = j.at("base_url");
  b.model = j.value("model", m.id);
  b.api_key_env = j.value("api_key_env", "");
  b.system = j.value("system", "");
  b.max_tokens = j.value("max_tokens", 512);
  b.timeout_s = j.value("timeout_s", 60.0);
  if (j.contains("temperature")) b.temperature = j["temperature"].get<double>();
  if (j.contains("top_p")) b.top_p = j["top_p"].get<double>();
  if (j.contains("cost_per_1m_input")) b.cost_per_1m_input = j["cost_per_1m_input"].get<double>();
  if (j.contains("cost_per_1m_output")) b.cost_per_1m_output = j["cost_per_1m_output"].get<double>();
  m.backend = std::move(b);
  return m;
}

}  // namespace

const char* role_name(Role r) {
  switch (r) {
    case Role::Admin: return "admin";
    case Role::Expert: return "expert";
    default: return "voter";
  }
}

std::optional<Role> parse_role(const std::string& s) {
  if (s == "admin") return Role::Admin;
  if (s == "expert") return Role::Expert;
  if (s == "voter") return Role::Voter;
  return std::nullopt;
}

const char* vote_status_name(VoteStatus s) {
  switch (s) {
    case VoteStatus::Stored: return "stored";
    case VoteStatus::AlreadyVoted: return "already_voted";
    case VoteStatus::UnknownBattle: return "unknown_battle";
    case VoteStatus::NotYourBattle: return "not_your_battle";
    case VoteStatus::AccountCapReached: return "account_cap";
    default: return "ip_cap";
  }
}

struct ArenaStore::PendingVote {
  VoteRequest request;
  VoteStatus status = VoteStatus::UnknownBattle;
  bool done = false;
  std::exception_ptr error;
};

std::unique_ptr<ArenaStore> ArenaStore::open(const std::string& path, const StoreOptions& options) {
  if (sodium_init() < 0) fail<IoError>(path, "libsodium failed to initialise");
  store::SqlDb db = store::SqlDb::open(path);
  if (db.is_postgres())
    store::migrate(*db.postgres(), "arena", kPgMigrations);
  else
    store::migrate(*db.sqlite(), kMigrations);
  std::string where = db.where();
  return std::unique_ptr<ArenaStore>(new ArenaStore(std::move(db), std::move(where), options));
}

ArenaStore::ArenaStore(store::SqlDb db, std::string path, StoreOptions options)
    : db_(std::move(db)), path_(std::move(path)), options_(options) {
  // A per-database salt: exported voter ids cannot be joined across databases.
  // Servers starting together on one PostgreSQL: the first insert wins, all read it back.
  for (int attempt = 0; attempt < 2; ++attempt) {
    Stmt s = db_.prepare("SELECT value FROM meta WHERE key='salt'");
    if (s.step()) {
      salt_ = s.text(0);
      return;
    }
    db_.prepare("INSERT INTO meta(key, value) VALUES ('salt', ?1) ON CONFLICT DO NOTHING").bind(1, random_hex(32)).run();
  }
  fail<IoError>(path_, "arena store has no salt after creating one");
}

ArenaStore::~ArenaStore() = default;

std::string ArenaStore::salted(const std::string& what) { return sha256_hex(salt_ + ":" + what).substr(0, 24); }

void ArenaStore::audit(int64_t actor, const std::string& action, const std::string& detail) {
  std::lock_guard lk(db_mu_);
  db_.prepare("INSERT INTO audit_log(time_ms, actor, action, detail) VALUES (?1, ?2, ?3, ?4)")
      .bind(1, now_ms())
      .bind(2, actor)
      .bind(3, action)
      .bind(4, detail)
      .run();
}

int64_t ArenaStore::audit_count() {
  std::lock_guard lk(db_mu_);
  Stmt s = db_.prepare("SELECT count(*) FROM audit_log");
  s.step();
  return s.int64(0);
}

// ---- accounts ----

int64_t ArenaStore::create_account(const std::string& name, const std::string& password, Role role,
                                   const std::string& affiliation) {
  if (name.empty() || name.size() > 64) fail("arena account", "name must be 1..64 bytes");
  if (password.size() < 8 || password.size() > 1024) fail("arena account", "password must be 8..1024 bytes");
  char hash[crypto_pwhash_STRBYTES];
  unsigned long long ops = options_.fast_password_hashing ? crypto_pwhash_OPSLIMIT_MIN : crypto_pwhash_OPSLIMIT_INTERACTIVE;
  size_t mem = options_.fast_password_hashing ? crypto_pwhash_MEMLIMIT_MIN : crypto_pwhash_MEMLIMIT_INTERACTIVE;
  if (crypto_pwhash_str_alg(hash, password.data(), password.size(), ops, mem, crypto_pwhash_ALG_ARGON2ID13) != 0)
    fail<IoError>("arena account", "password hashing ran out of memory");
  std::lock_guard lk(db_mu_);
  // The unique name decides, also between servers sharing one PostgreSQL.
  auto inserted = db_.prepare("INSERT INTO accounts(name, pw_hash, role, affiliation, created_ms) "
                              "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(name) DO NOTHING RETURNING id")
                      .bind(1, name)
                      .bind(2, std::string(hash))
                      .bind(3, role_name(role))
                      .bind(4, affiliation)
                      .bind(5, now_ms())
                      .insert_returning_id();
  if (!inserted) fail("arena account", "name '{}' is taken", name);
  int64_t id = *inserted;
  db_.prepare("INSERT INTO audit_log(time_ms, actor, action, detail) VALUES (?1, ?2, 'account.create', ?3)")
      .bind(1, now_ms())
      .bind(2, id)
      .bind(3, json{{"account", id}, {"role", role_name(role)}}.dump())
      .run();
  return id;
}

namespace {
std::optional<Account> account_row(Stmt& s) {
  if (!s.step()) return std::nullopt;
  Account a;
  a.id = s.int64(0);
  a.name = s.text(1);
  a.role = parse_role(s.text(2)).value_or(Role::Voter);
  a.affiliation = s.text(3);
  return a;
}
}  // namespace

std::optional<Account> ArenaStore::check_password(const std::string& name, const std::string& password) {
  std::string hash;
  std::optional<Account> a;
  {
    std::lock_guard lk(db_mu_);
    Stmt s = db_.prepare("SELECT id, name, role, affiliation, pw_hash FROM accounts WHERE name=?1 AND disabled=0");
    s.bind(1, name);
    a = account_row(s);
    if (a) hash = s.text(4);
  }
  if (!a || password.size() > 1024) return std::nullopt;
  if (crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) != 0) return std::nullopt;
  return a;
}

std::optional<Account> ArenaStore::account(int64_t id) {
  std::lock_guard lk(db_mu_);
  Stmt s = db_.prepare("SELECT id, name, role, affiliation FROM accounts WHERE id=?1 AND disabled=0");
  s.bind(1, id);
  return account_row(s);
}

std::optional<Account> ArenaStore::account_by_name(const std::string& name) {
  std::lock_guard lk(db_mu_);
  Stmt s = db_.prepare("SELECT id, name, role, affiliation FROM accounts WHERE name=?1 AND disabled=0");
  s.bind(1, name);
  return account_row(s);
}

std::string ArenaStore::create_session(int64_t account_id, std::chrono::seconds ttl) {
  std::string token = random_hex(32);
  std::lock_guard lk(db_mu_);
  int64_t now = now_ms();
  db_.prepare("DELETE FROM sessions WHERE expires_ms < ?1").bind(1, now).run();
  db_.prepare("INSERT INTO sessions(token_hash, account_id, csrf, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)")
      .bind(1, sha256_hex(token))
      .bind(2, account_id)
      .bind(3, random_hex(32))
      .bind(4, now)
      .bind(5, now + static_cast<int64_t>(ttl.count()) * 1000)
      .run();
  return token;
}

std::optional<Session> ArenaStore::session(const std::string& token) {
  if (token.size() != 64) return std::nullopt;
  std::lock_guard lk(db_mu_);
  Stmt s = db_.prepare(
      "SELECT a.id, a.name, a.role, a.affiliation, s.csrf FROM sessions s JOIN accounts a ON a.id = s.account_id "
      "WHERE s.token_hash=?1 AND s.expires_ms > ?2 AND a.disabled=0");
  s.bind(1, sha256_hex(token)).bind(2, now_ms());
  auto a = account_row(s);
  if (!a) return std::nullopt;
  return Session{s.text(4), *a};
}

void ArenaStore::end_session(const std::string& token) {
  std::lock_guard lk(db_mu_);
  db_.prepare("DELETE FROM sessions WHERE token_hash=?1").bind(1, sha256_hex(token)).run();
}

std::string ArenaStore::create_invitation(Role role, const std::string& affiliation, int64_t by_account) {
  std::string token = random_hex(16);
  std::lock_guard lk(db_mu_);
  db_.prepare("INSERT INTO invitations(token_hash, role, affiliation, created_by, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)")
      .bind(1, sha256_hex(token))
      .bind(2, role_name(role))
      .bind(3, affiliation)
      .bind(4, by_account)
      .bind(5, now_ms())
      .run();
  db_.prepare("INSERT INTO audit_log(time_ms, actor, action, detail) VALUES (?1, ?2, 'invitation.create', ?3)")
      .bind(1, now_ms())
      .bind(2, by_account)
      .bind(3, json{{"role", role_name(role)}, {"affiliation", affiliation}}.dump())
      .run();
  return token;
}

std::optional<Account> ArenaStore::redeem_invitation(const std::string& token, const std::string& name,
                                                     const std::string& password) {
  std::string role, affiliation;
  {
    std::lock_guard lk(db_mu_);
    Stmt s = db_.prepare("SELECT role, affiliation FROM invitations WHERE token_hash=?1 AND account_id IS NULL");
    s.bind(1, sha256_hex(token));
    if (!s.step()) return std::nullopt;
    role = s.text(0);
    affiliation = s.text(1);
  }
  int64_t id = create_account(name, password, parse_role(role).value_or(Role::Voter), affiliation);
  std::lock_guard lk(db_mu_);
  db_.prepare("UPDATE invitations SET account_id=?1 WHERE token_hash=?2 AND account_id IS NULL")
      .bind(1, id)
      .bind(2, sha256_hex(token))
      .run();
  if (db_.changes() != 1) {  // redeemed concurrently: keep the account out
    db_.prepare("UPDATE accounts SET disabled=1 WHERE id=?1").bind(1, id).run();
    return std::nullopt;
  }
  Stmt s = db_.prepare("SELECT id, name, role, affiliation FROM accounts WHERE id=?1");
  s.bind(1, id);
  return account_row(s);
}

// ---- campaigns ----

int64_t ArenaStore::add_campaign(const CampaignFile& f, int64_t by_account) {
  std::lock_guard lk(db_mu_);
  Transaction tx(db_);
  const std::string& name = f.kind == "arena" ? f.arena.name : f.review.name;
  // ON CONFLICT: two servers loading the same campaign at once get one copy and one clear error.
  auto insert_campaign = [&](const char* kind, const std::string& title, bool synthetic, const json& spec,
                             int64_t now) {
    auto id = db_.prepare("INSERT INTO campaigns(name, kind, title, spec, synthetic, created_ms) "
                          "VALUES (?1,?2,?3,?4,?5,?6) ON CONFLICT(name) DO NOTHING RETURNING id")
                  .bind(1, name).bind(2, kind).bind(3, title).bind(4, spec.dump()).bind(5, synthetic ? 1 : 0)
                  .bind(6, now).insert_returning_id();
    if (!id) fail("arena campaign", "a campaign named '{}' exists already", name);
    return *id;
  };
  json spec;
  int64_t id = 0;
  int64_t now = now_ms();
  if (f.kind == "arena") {
    const ArenaCampaign& c = f.arena;
    spec = {{"caps", {{"votes_per_account_per_day", c.caps.per_account_per_day},
                      {"votes_per_ip_per_hour", c.caps.per_ip_per_hour},
                      {"live_prompts_per_account_per_hour", c.caps.live_prompts_per_account_per_hour}}}};
    // Backends (names of key variables, never keys) and aliases, for live prompts.
    json backends = json::array();
    for (const auto& m : c.models)
      if (m.backend) backends.push_back(live_model_json(m));
    if (!backends.empty()) spec["backends"] = backends;
    spec["live"] = {{"enabled", c.live_prompts}, {"max_prompt_chars", c.max_prompt_chars}};
    if (c.budget.limited() || c.budget.cost_per_1m_input > 0 || c.budget.cost_per_1m_output > 0)
      spec["budget"] = {{"max_completion_tokens", c.budget.max_completion_tokens},
                        {"max_completion_tokens_per_model", c.budget.max_completion_tokens_per_model},
                        {"max_cost", c.budget.max_cost},
                        {"cost_per_1m_input", c.budget.cost_per_1m_input},
                        {"cost_per_1m_output", c.budget.cost_per_1m_output}};
    id = insert_campaign("arena", c.title, c.synthetic, spec, now);
    std::map<std::string, const CampaignModel*> models;
    Stmt im = db_.prepare("INSERT INTO models(campaign_id, name, organization) VALUES (?1, ?2, ?3)");
    for (const auto& m : c.models) {
      im.bind(1, id).bind(2, m.id).bind(3, m.organization).run();
      models[m.id] = &m;
    }
    Stmt ip = db_.prepare("INSERT INTO prompts(campaign_id, key, text) VALUES (?1, ?2, ?3) RETURNING id");
    Stmt ia = db_.prepare("INSERT INTO answers(prompt_id, model, text, identity_leak) VALUES (?1, ?2, ?3, ?4)");
    int leaks = 0;
    for (const auto& p : c.prompts) {
      int64_t pid = ip.bind(1, id).bind(2, p.id).bind(3, p.text).insert_returning_id().value();
      for (const auto& [model, text] : p.answers) {
        bool leak = names_itself(text, *models.at(model));
        leaks += leak;
        ia.bind(1, pid).bind(2, model).bind(3, text).bind(4, leak ? 1 : 0).run();
      }
    }
    spec["identity_leaks"] = leaks;
  } else {
    const ReviewCampaign& c = f.review;
    spec = {{"rubric", rubric_json(c.rubric)}, {"reviewers_per_item", c.reviewers_per_item}};
    id = insert_campaign("review", c.title, c.synthetic, spec, now);
    Stmt ii = db_.prepare(
        "INSERT INTO review_items(campaign_id, key, model, title, content, affiliation) VALUES (?1,?2,?3,?4,?5,?6)");
    for (const auto& it : c.items)
      ii.bind(1, id).bind(2, it.id).bind(3, it.model).bind(4, it.title).bind(5, it.content).bind(6, it.affiliation).run();
  }
  db_.prepare("INSERT INTO audit_log(time_ms, actor, action, detail) VALUES (?1, ?2, 'campaign.create', ?3)")
      .bind(1, now).bind(2, by_account).bind(3, json{{"campaign", name}, {"kind", f.kind}, {"spec", spec}}.dump()).run();
  tx.commit();
  return id;
}

namespace {
// A row of SELECT id, name, title, kind, synthetic FROM campaigns.
CampaignInfo campaign_row(const Stmt& s) { return {s.int64(0), s.text(1), s.text(2), s.text(3), s.int64(4) != 0}; }
}  // namespace

std::vector<CampaignInfo> ArenaStore::campaigns() {
  std::lock_guard lk(db_mu_);
  std::vector<CampaignInfo> out;
  Stmt s = db_.prepare("SELECT id, name, title, kind, synthetic FROM campaigns ORDER BY id");
  while (s.step()) out.push_back(campaign_row(s));
  return out;
}

std::optional<CampaignInfo> ArenaStore::campaign(const std::string& name) {
  std::lock_guard lk(db_mu_);
  Stmt s = db_.prepare("SELECT id, name, title, kind, synthetic FROM campaigns WHERE name=?1");
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  return campaign_row(s);
}

void ArenaStore::flag_identity_leak(int64_t campaign_id, const std::string& prompt, const std::string& model,
                                    int64_t by_account) {
  std::lock_guard lk(db_mu_);
  Transaction tx(db_);
  db_.prepare("UPDATE answers SET identity_leak=1 WHERE model=?1 AND prompt_id IN "
              "(SELECT id FROM prompts WHERE campaign_id=?2 AND key=?3)")
      .bind(1, model).bind(2, campaign_id).bind(3, prompt).run();
  if (db_.changes() == 0) fail("arena campaign", "no answer of '{}' to prompt '{}'", model, prompt);
  db_.prepare("INSERT INTO audit_log(time_ms, actor, action, detail) VALUES (?1, ?2, 'answer.identity_leak', ?3)")
      .bind(1, now_ms()).bind(2, by_account)
      .bind(3, json{{"campaign", campaign_id}, {"prompt", prompt}, {"model", model}}.dump()).run();
  tx.commit();
}

// ---- battles and votes ----

std::optional<BattleView> ArenaStore::new_battle(int64_t campaign_id, int64_t account_id, const std::string& ip) {
  std::lock_guard lk(db_mu_);
  Stmt p = db_.prepare(
      "SELECT p.id, p.text FROM prompts p WHERE p.campaign_id=?1 AND p.live_account IS NULL AND "
      "(SELECT count(*) FROM answers a WHERE a.prompt_id=p.id AND a.identity_leak=0) >= 2 "
      "ORDER BY random() LIMIT 1");
  p.bind(1, campaign_id);
  if (!p.step()) return std::nullopt;
  int64_t prompt_id = p.int64(0);
  BattleView v;
  v.prompt = p.text(1);
  Stmt a = db_.prepare(
      "SELECT id, text, model FROM answers WHERE prompt_id=?1 AND identity_leak=0 ORDER BY random() LIMIT 2");
  a.bind(1, prompt_id);
  a.step();
  int64_t ida = a.int64(0);
  v.answer_a = a.text(1);
  v.model_a = a.text(2);
  a.step();
  int64_t idb = a.int64(0);
  v.answer_b = a.text(1);
  v.model_b = a.text(2);
  v.id = random_hex(16);
  auto insert = [&] {
    db_.prepare("INSERT INTO battles(public_id, campaign_id, prompt_id, answer_a, answer_b, account_id, ip_hash, served_ms) "
                "VALUES (?1,?2,?3,?4,?5,?6,?7,?8)")
        .bind(1, v.id).bind(2, campaign_id).bind(3, prompt_id).bind(4, ida).bind(5, idb)
        .bind(6, account_id).bind(7, salted("ip:" + ip)).bind(8, now_ms()).run();
  };
  // A served battle need not be durable on its own (a vote on a lost battle is
  // refused, never half-stored); the vote's FULL commit syncs its WAL frames.
  // (PostgreSQL: its WAL is ordered too, so the vote's commit flushes the battle.)
  if (db_.is_postgres()) {
    Transaction tx(db_);
    db_.exec("SET LOCAL synchronous_commit = off");
    insert();
    tx.commit();
    return v;
  }
  db_.exec("PRAGMA synchronous=NORMAL");
  try {
    insert();
  } catch (...) {
    db_.exec("PRAGMA synchronous=FULL");
    throw;
  }
  db_.exec("PRAGMA synchronous=FULL");
  return v;
}

// ---- live prompts ----

LiveCampaign ArenaStore::live_campaign(int64_t campaign_id) {
  std::string spec_text;
  {
    std::lock_guard lk(db_mu_);
    Stmt s = db_.prepare("SELECT spec FROM campaigns WHERE id=?1 AND kind='arena'");
    s.bind(1, campaign_id);
    if (!s.step()) return {};
    spec_text = s.text(0);
  }
  json spec = json::parse(spec_text);
  LiveCampaign live;
  json l = spec.value("live", json::object());
  live.enabled = l.value("enabled", false);
  live.max_prompt_chars = l.value("max_prompt_chars", 2000);
  live.per_account_per_hour = spec.value("caps", json::object()).value("live_prompts_per_account_per_hour", 20);
  for (const auto& m : spec.value("backends", json::array())) live.models.push_back(live_model_from(m));
  json b = spec.value("budget", json::object());
  live.budget.max_completion_tokens = b.value("max_completion_tokens", int64_t{0});
  live.budget.max_completion_tokens_per_model = b.value("max_completion_tokens_per_model", int64_t{0});
  live.budget.max_cost = b.value("max_cost", 0.0);
  live.budget.cost_per_1m_input = b.value("cost_per_1m_input", 0.0);
  live.budget.cost_per_1m_output = b.value("cost_per_1m_output", 0.0);
  return live;
}

LiveBattle ArenaStore::add_live_battle(int64_t campaign_id, int64_t account_id, const std::string& ip,
                                       const std::string& prompt, const LiveAnswer& a, const LiveAnswer& b) {
  if (a.model.id == b.model.id) fail("arena live prompt", "both answers come from '{}'", a.model.id);
  LiveBattle out;
  const bool leak_a = names_itself(a.text, a.model), leak_b = names_itself(b.text, b.model);
  if (leak_a) out.leaked.push_back(a.model.id);
  if (leak_b) out.leaked.push_back(b.model.id);
  std::string key = "live-" + random_hex(8);
  std::lock_guard lk(db_mu_);
  Transaction tx(db_);
  int64_t now = now_ms();
  int64_t pid = db_.prepare("INSERT INTO prompts(campaign_id, key, text, live_account) VALUES (?1,?2,?3,?4) RETURNING id")
                    .bind(1, campaign_id).bind(2, key).bind(3, prompt).bind(4, account_id)
                    .insert_returning_id().value();
  Stmt ia = db_.prepare("INSERT INTO answers(prompt_id, model, text, identity_leak) VALUES (?1,?2,?3,?4) RETURNING id");
  int64_t ida = ia.bind(1, pid).bind(2, a.model.id).bind(3, a.text).bind(4, leak_a ? 1 : 0).insert_returning_id().value();
  ia.reset();
  int64_t idb = ia.bind(1, pid).bind(2, b.model.id).bind(3, b.text).bind(4, leak_b ? 1 : 0).insert_returning_id().value();
  json detail = {{"campaign", campaign_id}, {"prompt", key}};
  if (out.leaked.empty()) {
    BattleView v;
    v.id = random_hex(16);
    v.prompt = prompt;
    v.answer_a = a.text;
    v.answer_b = b.text;
    v.model_a = a.model.id;
    v.model_b = b.model.id;
    db_.prepare("INSERT INTO battles(public_id, campaign_id, prompt_id, answer_a, answer_b, account_id, ip_hash, served_ms) "
                "VALUES (?1,?2,?3,?4,?5,?6,?7,?8)")
        .bind(1, v.id).bind(2, campaign_id).bind(3, pid).bind(4, ida).bind(5, idb)
        .bind(6, account_id).bind(7, salted("ip:" + ip)).bind(8, now).run();
    out.battle = std::move(v);
  } else {
    detail["models"] = out.leaked;
  }
  db_.prepare("INSERT INTO audit_log(time_ms, actor, action, detail) VALUES (?1, ?2, ?3, ?4)")
      .bind(1, now).bind(2, account_id).bind(3, out.leaked.empty() ? "live.battle" : "live.identity_leak")
      .bind(4, detail.dump()).run();
  tx.commit();
  return out;
}

void ArenaStore::record_live_failure(int64_t campaign_id, int64_t account_id, const std::string& reason) {
  audit(account_id, "live.failed", json{{"campaign", campaign_id}, {"reason", reason.substr(0, 300)}}.dump(
                                       -1, ' ', false, json::error_handler_t::replace));
}

int64_t ArenaStore::live_attempts(int64_t account_id, std::chrono::milliseconds window) {
  std::lock_guard lk(db_mu_);
  Stmt s = db_.prepare("SELECT count(*) FROM audit_log WHERE actor=?1 AND time_ms > ?2 AND "
                       "action IN ('live.battle', 'live.identity_leak', 'live.failed')");
  s.bind(1, account_id).bind(2, now_ms() - static_cast<int64_t>(window.count()));
  s.step();
  return s.int64(0);
}

namespace {

void insert_usage(store::SqlDb& db, int64_t campaign_id, int64_t account_id, const LiveUsage& u, int64_t now) {
  db.prepare("INSERT INTO live_usage(campaign_id, model, account_id, time_ms, prompt_tokens, completion_tokens, counted) "
             "VALUES (?1,?2,?3,?4,?5,?6,?7)")
      .bind(1, campaign_id).bind(2, u.model).bind(3, account_id).bind(4, now)
      .bind(5, std::max<int64_t>(0, u.prompt_tokens)).bind(6, std::max<int64_t>(0, u.completion_tokens))
      .bind(7, u.counted ? 1 : 0).run();
}

struct Price {
  double in = 0, out = 0;  // per million tokens
  double of(int64_t prompt_tokens, int64_t completion_tokens) const {
    return (static_cast<double>(prompt_tokens) * in + static_cast<double>(completion_tokens) * out) / 1e6;
  }
};

Price price_of(const ModelBackend* b, const LiveBudget& lim) {
  return {b && b->cost_per_1m_input ? *b->cost_per_1m_input : lim.cost_per_1m_input,
          b && b->cost_per_1m_output ? *b->cost_per_1m_output : lim.cost_per_1m_output};
}

// Sums of prices in floating point: equal to the cap counts as fitting.
bool within_cost(double total, double cap) { return total <= cap * (1 + 1e-12); }

struct PairFit {
  std::vector<std::pair<size_t, size_t>> pairs;  // indices into live.models, i < j, whose worst case fits every cap
  std::vector<bool> model_fits;                  // one more worst-case answer fits the model's own cap
  bool campaign_room = false;                    // some pair fits the campaign-wide caps
};

// `st.models` starts with live.models, in order (budget_locked).
PairFit fit_pairs(const LiveCampaign& live, const BudgetStatus& st, const std::string& prompt) {
  const LiveBudget& lim = live.budget;
  const size_t n = live.models.size();
  PairFit fit;
  std::vector<LiveUsage> worst(n);
  std::vector<double> worst_cost(n);
  for (size_t i = 0; i < n; ++i) {
    const CampaignModel& m = live.models[i];
    worst[i] = live_worst_case(m, prompt);
    worst_cost[i] = price_of(m.backend ? &*m.backend : nullptr, lim).of(worst[i].prompt_tokens, worst[i].completion_tokens);
    const BudgetStatus::Model& used = st.models[i];
    fit.model_fits.push_back(lim.max_completion_tokens_per_model <= 0 ||
                             used.completion_tokens + used.reserved_completion_tokens + worst[i].completion_tokens <=
                                 lim.max_completion_tokens_per_model);
  }
  const int64_t tokens = st.completion_tokens + st.reserved_completion_tokens;
  const double cost = st.cost + st.reserved_cost;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) {
      bool campaign = (lim.max_completion_tokens <= 0 ||
                       tokens + worst[i].completion_tokens + worst[j].completion_tokens <= lim.max_completion_tokens) &&
                      (lim.max_cost <= 0 || within_cost(cost + worst_cost[i] + worst_cost[j], lim.max_cost));
      fit.campaign_room |= campaign;
      if (campaign && fit.model_fits[i] && fit.model_fits[j]) fit.pairs.push_back({i, j});
    }
  return fit;
}

}  // namespace

LiveUsage live_worst_case(const CampaignModel& model, const std::string& prompt) {
  LiveUsage u;
  u.model = model.id;
  const ModelBackend* b = model.backend ? &*model.backend : nullptr;
  u.prompt_tokens = static_cast<int64_t>((b ? b->system.size() : 0) + prompt.size()) + kChatTemplateTokens;
  u.completion_tokens = b ? std::max<int64_t>(0, b->max_tokens) : 0;
  return u;
}

void ArenaStore::record_live_usage(int64_t campaign_id, int64_t account_id, const LiveUsage& u) {
  std::lock_guard lk(db_mu_);
  insert_usage(db_, campaign_id, account_id, u, now_ms());
}

BudgetStatus ArenaStore::budget_locked(int64_t campaign_id, const LiveCampaign& live, int64_t now) {
  BudgetStatus st;
  st.limits = live.budget;
  const LiveBudget& lim = live.budget;
  std::map<std::string, BudgetStatus::Model> used;
  Stmt s = db_.prepare(
      "SELECT model, reserved, count(*), COALESCE(sum(prompt_tokens), 0), COALESCE(sum(completion_tokens), 0) FROM ("
      "SELECT model, 0 AS reserved, prompt_tokens, completion_tokens FROM live_usage WHERE campaign_id=?1 "
      "UNION ALL SELECT model, 1 AS reserved, prompt_tokens, completion_tokens FROM live_reservations "
      "WHERE campaign_id=?1 AND expires_ms > ?2) u GROUP BY model, reserved");
  s.bind(1, campaign_id).bind(2, now);
  while (s.step()) {
    BudgetStatus::Model& m = used[s.text(0)];
    m.model = s.text(0);
    if (s.int64(1)) {
      m.reserved_answers = s.int64(2);
      m.reserved_prompt_tokens = s.int64(3);
      m.reserved_completion_tokens = s.int64(4);
    } else {
      m.requests = s.int64(2);
      m.prompt_tokens = s.int64(3);
      m.completion_tokens = s.int64(4);
    }
  }
  auto add = [&](BudgetStatus::Model m, const ModelBackend* b) {
    Price p = price_of(b, lim);
    m.cost = p.of(m.prompt_tokens, m.completion_tokens);
    m.reserved_cost = p.of(m.reserved_prompt_tokens, m.reserved_completion_tokens);
    if (lim.max_completion_tokens_per_model > 0) {
      m.remaining_tokens = std::max<int64_t>(
          0, lim.max_completion_tokens_per_model - m.completion_tokens - m.reserved_completion_tokens);
      m.spent = *m.remaining_tokens == 0;
    }
    st.prompt_tokens += m.prompt_tokens;
    st.completion_tokens += m.completion_tokens;
    st.cost += m.cost;
    st.reserved_prompt_tokens += m.reserved_prompt_tokens;
    st.reserved_completion_tokens += m.reserved_completion_tokens;
    st.reserved_cost += m.reserved_cost;
    st.pairs_in_flight += m.reserved_answers;
    st.models.push_back(std::move(m));
  };
  for (const auto& m : live.models) {
    auto it = used.find(m.id);
    BudgetStatus::Model row;
    row.model = m.id;
    if (it != used.end()) {
      row = it->second;
      used.erase(it);
    }
    add(std::move(row), &*m.backend);
  }
  for (auto& [name, row] : used) add(std::move(row), nullptr);  // a model no longer in the spec still cost money
  st.pairs_in_flight /= 2;  // two answers a pair
  if (lim.max_completion_tokens > 0)
    st.remaining_tokens =
        std::max<int64_t>(0, lim.max_completion_tokens - st.completion_tokens - st.reserved_completion_tokens);
  if (lim.max_cost > 0) st.remaining_cost = std::max(0.0, lim.max_cost - st.cost - st.reserved_cost);
  // Flags for a prompt of no text: what a pair needs at the least.
  PairFit fit = fit_pairs(live, st, "");
  for (size_t i = 0; i < live.models.size(); ++i) st.models[i].spent = st.models[i].spent || !fit.model_fits[i];
  st.exhausted = (lim.max_completion_tokens > 0 || lim.max_cost > 0) && !fit.campaign_room;
  if (!st.exhausted)
    for (size_t i = 0; i < live.models.size(); ++i)
      if (fit.model_fits[i]) st.available.push_back(live.models[i].id);
  return st;
}

BudgetStatus ArenaStore::live_budget(int64_t campaign_id) {
  LiveCampaign live = live_campaign(campaign_id);
  std::lock_guard lk(db_mu_);
  return budget_locked(campaign_id, live, now_ms());
}

std::optional<LivePair> ArenaStore::start_live_pair(int64_t campaign_id, int64_t account_id, const std::string& prompt,
                                                     std::chrono::milliseconds hold) {
  LiveCampaign live = live_campaign(campaign_id);
  if (live.models.size() < 2) return std::nullopt;
  // A random pair of those that fit, random sides: every fitting pair alike.
  auto pick = [&](const std::vector<std::pair<size_t, size_t>>& pairs) {
    auto [i, j] = pairs[randombytes_uniform(static_cast<uint32_t>(pairs.size()))];
    if (randombytes_uniform(2)) std::swap(i, j);
    return LivePair{live.models[i], live.models[j], ""};
  };
  if (!live.budget.limited()) {
    std::vector<std::pair<size_t, size_t>> all;
    for (size_t i = 0; i < live.models.size(); ++i)
      for (size_t j = i + 1; j < live.models.size(); ++j) all.push_back({i, j});
    return pick(all);
  }
  std::lock_guard lk(db_mu_);
  Transaction tx(db_);  // SQLite: BEGIN IMMEDIATE, the writer lock for check and reservation
  // PostgreSQL: servers sharing the store reserve against one campaign one at a time.
  if (db_.is_postgres()) db_.prepare("SELECT id FROM campaigns WHERE id=?1 FOR UPDATE").bind(1, campaign_id).run();
  const int64_t now = now_ms();
  db_.prepare("DELETE FROM live_reservations WHERE campaign_id=?1 AND expires_ms <= ?2").bind(1, campaign_id).bind(2, now).run();
  if (int64_t lapsed = db_.changes())  // pairs of a server that stopped without finishing them
    db_.prepare("INSERT INTO audit_log(time_ms, actor, action, detail) VALUES (?1, NULL, 'live.reservation_lapsed', ?2)")
        .bind(1, now).bind(2, json{{"campaign", campaign_id}, {"answers", lapsed}}.dump()).run();
  BudgetStatus st = budget_locked(campaign_id, live, now);
  PairFit fit = fit_pairs(live, st, prompt);
  if (fit.pairs.empty()) {
    tx.commit();  // keeps the lapsed reservations' removal
    return std::nullopt;
  }
  LivePair pair = pick(fit.pairs);
  pair.reservation = random_hex(16);
  Stmt ins = db_.prepare(
      "INSERT INTO live_reservations(pair, campaign_id, model, account_id, created_ms, expires_ms, prompt_tokens, "
      "completion_tokens) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)");
  for (const CampaignModel* m : {&pair.a, &pair.b}) {
    LiveUsage w = live_worst_case(*m, prompt);
    ins.bind(1, pair.reservation).bind(2, campaign_id).bind(3, m->id).bind(4, account_id).bind(5, now)
        .bind(6, now + static_cast<int64_t>(hold.count())).bind(7, w.prompt_tokens).bind(8, w.completion_tokens).run();
  }
  tx.commit();
  return pair;
}

void ArenaStore::finish_live_pair(int64_t campaign_id, int64_t account_id, const std::string& reservation,
                                  const std::vector<LiveUsage>& usage) {
  std::lock_guard lk(db_mu_);
  Transaction tx(db_);
  if (!reservation.empty()) db_.prepare("DELETE FROM live_reservations WHERE pair=?1").bind(1, reservation).run();
  const int64_t now = now_ms();
  for (const LiveUsage& u : usage) insert_usage(db_, campaign_id, account_id, u, now);
  tx.commit();
}

std::span<const store::Migration> ArenaStore::schema_migrations(bool postgres) {
  if (postgres) return kPgMigrations;
  return kMigrations;
}

VoteStatus ArenaStore::vote(const VoteRequest& request) {
  PendingVote pv;
  pv.request = request;
  std::unique_lock lk(queue_mu_);
  queue_.push_back(&pv);
  while (!pv.done) {
    if (committing_) {
      queue_cv_.wait(lk);
      continue;
    }
    committing_ = true;
    std::vector<PendingVote*> batch;
    batch.swap(queue_);
    lk.unlock();
    std::exception_ptr err;
    try {
      commit_votes(batch);
    } catch (...) {
      err = std::current_exception();
    }
    lk.lock();
    for (PendingVote* v : batch) {
      v->done = true;
      if (err) v->error = err;
    }
    committing_ = false;
    queue_cv_.notify_all();
  }
  if (pv.error) std::rethrow_exception(pv.error);
  return pv.status;
}

void ArenaStore::commit_votes(std::vector<PendingVote*>& batch) {
  // One order on every server: concurrent batches on one PostgreSQL take the
  // votes' unique-index entries in the same order, so they wait, not deadlock.
  std::sort(batch.begin(), batch.end(),
            [](const PendingVote* a, const PendingVote* b) { return a->request.battle_id < b->request.battle_id; });
  std::lock_guard lk(db_mu_);
  auto once = [&] {
    Transaction tx(db_);
    int64_t now = now_ms();
    Stmt find = db_.prepare("SELECT id, account_id, served_ms, campaign_id FROM battles WHERE public_id=?1");
    Stmt spec = db_.prepare("SELECT spec FROM campaigns WHERE id=?1");
    Stmt voted = db_.prepare("SELECT 1 FROM votes WHERE battle_id=?1");
    // Counting stops at the cap: the work per vote is bounded by the cap, not
    // by how many votes the account or address has ever cast.
    Stmt by_account = db_.prepare(
        "SELECT count(*) FROM (SELECT 1 FROM votes WHERE account_id=?1 AND created_ms > ?2 LIMIT ?3) AS recent");
    Stmt by_ip =
        db_.prepare("SELECT count(*) FROM (SELECT 1 FROM votes WHERE ip_hash=?1 AND created_ms > ?2 LIMIT ?3) AS recent");
    // Each campaign's caps parsed once per batch; each account's and address's
    // count read once (see cap_counts_), then kept up to date as votes go in.
    struct Caps {
      int64_t per_account_day, per_ip_hour;
    };
    std::unordered_map<int64_t, Caps> caps_of;
    const bool shared_store = db_.is_postgres();
    if (shared_store || cap_counts_.size() > 100000) cap_counts_.clear();
    // One key counts every campaign's votes, and campaigns' caps differ: a
    // count cut short by a smaller cap is read again for a larger one.
    auto counted = [&](Stmt& q, std::string key, const auto& value, int64_t window_ms, int64_t cap) -> int64_t& {
      CapCount& c = cap_counts_[std::move(key)];
      if (c.read_ms == 0 || now - c.read_ms >= kCapRecountMs || (!c.exact && c.votes < cap)) {
        q.reset();
        q.bind(1, value).bind(2, now - window_ms).bind(3, cap).step();
        const int64_t n = q.int64(0);
        c = {n, now, n < cap};
      }
      return c.votes;
    };
    // The unique battle_id decides between servers racing on one battle: the
    // loser's insert waits for the winner's commit, then inserts nothing.
    Stmt insert = db_.prepare(
        "INSERT INTO votes(battle_id, account_id, ip_hash, winner, created_ms, latency_ms) VALUES (?1,?2,?3,?4,?5,?6) "
        "ON CONFLICT(battle_id) DO NOTHING");
    for (PendingVote* v : batch) {
      const VoteRequest& r = v->request;
      if (r.winner != "model_a" && r.winner != "model_b" && r.winner != "tie" && r.winner != "both_bad")
        fail("arena vote", "winner '{}' is not model_a, model_b, tie or both_bad", r.winner);
      find.reset();
      find.bind(1, r.battle_id);
      if (!find.step()) {
        v->status = VoteStatus::UnknownBattle;
        continue;
      }
      int64_t battle = find.int64(0), owner = find.int64(1), served = find.int64(2), campaign = find.int64(3);
      if (owner != r.account_id) {
        v->status = VoteStatus::NotYourBattle;
        continue;
      }
      auto cap = caps_of.find(campaign);
      if (cap == caps_of.end()) {
        spec.reset();
        spec.bind(1, campaign).step();
        json c = json::parse(spec.text(0)).value("caps", json::object());
        cap = caps_of.emplace(campaign, Caps{c.value("votes_per_account_per_day", int64_t{1000}),
                                             c.value("votes_per_ip_per_hour", int64_t{3000})}).first;
      }
      voted.reset();
      if (voted.bind(1, battle).step()) {
        v->status = VoteStatus::AlreadyVoted;
        continue;
      }
      std::string ip_hash = salted("ip:" + r.ip);
      int64_t& account_votes = counted(by_account, fmt::format("a{}", r.account_id), r.account_id, 86400000,
                                       cap->second.per_account_day);
      if (account_votes >= cap->second.per_account_day) {
        v->status = VoteStatus::AccountCapReached;
        continue;
      }
      int64_t& ip_votes = counted(by_ip, "i" + ip_hash, ip_hash, 3600000, cap->second.per_ip_hour);
      if (ip_votes >= cap->second.per_ip_hour) {
        v->status = VoteStatus::IpCapReached;
        continue;
      }
      insert.bind(1, battle).bind(2, r.account_id).bind(3, ip_hash).bind(4, r.winner).bind(5, now)
          .bind(6, std::max<int64_t>(0, now - served)).run();
      v->status = db_.changes() == 1 ? VoteStatus::Stored : VoteStatus::AlreadyVoted;
      if (v->status == VoteStatus::Stored) {
        ++account_votes;
        ++ip_votes;
      }
    }
    tx.commit();  // SQLite synchronous=FULL / PostgreSQL synchronous_commit: durable before any ack
  };
  for (int attempt = 1;; ++attempt) {
    try {
      once();
      return;
    } catch (const IoError& e) {
      cap_counts_.clear();  // they counted votes the rollback took back
      // PostgreSQL may still pick this batch as a deadlock victim (say, against an
      // admin's bulk update): it was rolled back whole, so running it again is safe.
      std::string_view m = e.what();
      bool retry = db_.is_postgres() && attempt < 3 &&
                   (m.find("deadlock detected") != m.npos || m.find("could not serialize") != m.npos);
      if (!retry) throw;
    } catch (...) {
      cap_counts_.clear();
      throw;
    }
  }
}

int64_t ArenaStore::vote_count() {
  std::lock_guard lk(db_mu_);
  Stmt s = db_.prepare("SELECT count(*) FROM votes");
  s.step();
  return s.int64(0);
}

namespace {
struct VoteRow {
  int64_t account;
  std::string name, model_a, model_b, winner;
  int64_t latency;
};
}  // namespace

ArenaStore::Ratings ArenaStore::ratings(int64_t campaign_id, int resamples, uint64_t seed) {
  Ratings r;
  std::vector<Battle> battles;
  {
    std::lock_guard lk(db_mu_);
    Stmt m = db_.prepare("SELECT name FROM models WHERE campaign_id=?1 ORDER BY name");
    m.bind(1, campaign_id);
    while (m.step()) r.models.push_back(m.text(0));
    std::map<std::string, int> index;
    for (size_t i = 0; i < r.models.size(); ++i) index[r.models[i]] = static_cast<int>(i);
    Stmt s = db_.prepare(
        "SELECT aa.model, ab.model, v.winner FROM votes v JOIN battles b ON b.id=v.battle_id "
        "JOIN answers aa ON aa.id=b.answer_a JOIN answers ab ON ab.id=b.answer_b "
        "WHERE b.campaign_id=?1 AND v.quarantined=0 AND aa.identity_leak=0 AND ab.identity_leak=0");
    s.bind(1, campaign_id);
    while (s.step()) battles.push_back({index.at(s.text(0)), index.at(s.text(1)), outcome_of(s.text(2))});
  }
  r.battles = static_cast<int64_t>(battles.size());
  BootstrapOptions boot;
  boot.resamples = resamples;
  boot.seed = seed;
  r.board = rate(aggregate(static_cast<int>(r.models.size()), battles), {}, boot);
  return r;
}

std::vector<SuspectReport> ArenaStore::detect_suspects(int64_t campaign_id, const SuspectRules& rules,
                                                       int64_t by_account) {
  Ratings consensus = ratings(campaign_id, 0, 1);
  std::map<std::string, double> rating;
  for (size_t i = 0; i < consensus.models.size(); ++i) rating[consensus.models[i]] = consensus.board.models[i].rating;
  std::map<int64_t, std::vector<VoteRow>> by_voter;
  std::lock_guard lk(db_mu_);
  {
    Stmt s = db_.prepare(
        "SELECT v.account_id, acc.name, aa.model, ab.model, v.winner, v.latency_ms FROM votes v "
        "JOIN battles b ON b.id=v.battle_id JOIN accounts acc ON acc.id=v.account_id "
        "JOIN answers aa ON aa.id=b.answer_a JOIN answers ab ON ab.id=b.answer_b "
        "WHERE b.campaign_id=?1 AND v.quarantined=0");
    s.bind(1, campaign_id);
    while (s.step())
      by_voter[s.int64(0)].push_back({s.int64(0), s.text(1), s.text(2), s.text(3), s.text(4), s.int64(5)});
  }
  std::vector<SuspectReport> out;
  for (const auto& [account, votes] : by_voter) {
    if (static_cast<int>(votes.size()) < rules.min_votes) continue;
    int a = 0, b = 0, confident = 0, agree = 0;
    std::vector<double> lat;
    for (const auto& v : votes) {
      lat.push_back(static_cast<double>(v.latency));
      if (v.winner != "model_a" && v.winner != "model_b") continue;
      (v.winner == "model_a" ? a : b)++;
      double p = expected_score(rating[v.model_a], rating[v.model_b]);
      if (p >= rules.confident || p <= 1 - rules.confident) {
        ++confident;
        agree += (p > 0.5) == (v.winner == "model_a");
      }
    }
    std::string reason;
    int decisive = a + b;
    if (decisive >= rules.min_votes && std::max(a, b) >= rules.same_side_share * decisive)
      reason = "same_side";
    else if (quantile(lat, 0.5) < static_cast<double>(rules.too_fast_ms))
      reason = "too_fast";
    else if (confident >= rules.min_confident && agree < rules.against_consensus * confident)
      reason = "against_consensus";
    if (reason.empty()) continue;
    Transaction tx(db_);
    db_.prepare("UPDATE votes SET quarantined=1, quarantine_reason=?1 WHERE account_id=?2 AND quarantined=0 AND "
                "battle_id IN (SELECT id FROM battles WHERE campaign_id=?3)")
        .bind(1, reason).bind(2, account).bind(3, campaign_id).run();
    db_.prepare("INSERT INTO audit_log(time_ms, actor, action, detail) VALUES (?1, ?2, 'votes.quarantine', ?3)")
        .bind(1, now_ms()).bind(2, by_account)
        .bind(3, json{{"account", account}, {"campaign", campaign_id}, {"reason", reason},
                      {"votes", votes.size()}}.dump())
        .run();
    tx.commit();
    out.push_back({account, votes.front().name, reason, static_cast<int>(votes.size())});
  }
  return out;
}

// ---- expert reviews ----

int ArenaStore::assign_reviewers(int64_t campaign_id) {
  std::lock_guard lk(db_mu_);
  Transaction tx(db_);
  Stmt c = db_.prepare("SELECT spec FROM campaigns WHERE id=?1 AND kind='review'");
  c.bind(1, campaign_id);
  if (!c.step()) fail("arena reviews", "no review campaign with id {}", campaign_id);
  int k = json::parse(c.text(0)).value("reviewers_per_item", 3);
  struct Expert {
    int64_t id;
    std::string affiliation;
    int64_t load;
  };
  std::vector<Expert> experts;
  Stmt e = db_.prepare(
      "SELECT a.id, a.affiliation, (SELECT count(*) FROM assignments s WHERE s.account_id=a.id) FROM accounts a "
      "WHERE a.role='expert' AND a.disabled=0 ORDER BY a.id");
  while (e.step()) experts.push_back({e.int64(0), lower(e.text(1)), e.int64(2)});
  Stmt items = db_.prepare("SELECT id, affiliation FROM review_items WHERE campaign_id=?1 ORDER BY id");
  items.bind(1, campaign_id);
  std::vector<std::pair<int64_t, std::string>> list;
  while (items.step()) list.push_back({items.int64(0), lower(items.text(1))});
  Stmt have = db_.prepare("SELECT account_id FROM assignments WHERE item_id=?1");
  Stmt add = db_.prepare("INSERT INTO assignments(item_id, account_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING");
  int short_items = 0;
  for (const auto& [item, affiliation] : list) {
    std::set<int64_t> assigned;
    have.reset();
    have.bind(1, item);
    while (have.step()) assigned.insert(have.int64(0));
    std::vector<Expert*> eligible;
    for (auto& x : experts)
      if (!assigned.count(x.id) && (affiliation.empty() || x.affiliation != affiliation)) eligible.push_back(&x);
    std::stable_sort(eligible.begin(), eligible.end(), [](const Expert* a, const Expert* b) { return a->load < b->load; });
    for (Expert* x : eligible) {
      if (static_cast<int>(assigned.size()) >= k) break;
      add.bind(1, item).bind(2, x->id).run();
      assigned.insert(x->id);
      x->load++;
    }
    if (static_cast<int>(assigned.size()) < k) ++short_items;
  }
  tx.commit();
  return short_items;
}

std::vector<ReviewAssignment> ArenaStore::assignments(int64_t account_id) {
  std::lock_guard lk(db_mu_);
  std::vector<ReviewAssignment> out;
  Stmt s = db_.prepare(
      "SELECT i.id, i.key, i.title, i.content, i.model, c.name, c.id, "
      "EXISTS(SELECT 1 FROM reviews r WHERE r.item_id=i.id AND r.account_id=?1) "
      "FROM assignments a JOIN review_items i ON i.id=a.item_id JOIN campaigns c ON c.id=i.campaign_id "
      "WHERE a.account_id=?1 ORDER BY i.id");
  s.bind(1, account_id);
  while (s.step())
    out.push_back({s.int64(0), s.text(1), s.text(2), s.text(3), s.text(4), s.text(5), s.int64(6), s.int64(7) != 0});
  return out;
}

Rubric ArenaStore::rubric(int64_t campaign_id) {
  std::lock_guard lk(db_mu_);
  Stmt c = db_.prepare("SELECT spec FROM campaigns WHERE id=?1 AND kind='review'");
  c.bind(1, campaign_id);
  if (!c.step()) fail("arena reviews", "no review campaign with id {}", campaign_id);
  return rubric_from(json::parse(c.text(0)).at("rubric"));
}

void ArenaStore::submit_review(int64_t account_id, int64_t item_id,
                               const std::map<std::string, std::pair<double, std::string>>& scores) {
  int64_t campaign_id = 0;
  {
    std::lock_guard lk(db_mu_);
    Stmt s = db_.prepare(
        "SELECT i.campaign_id FROM assignments a JOIN review_items i ON i.id=a.item_id "
        "WHERE a.item_id=?1 AND a.account_id=?2");
    s.bind(1, item_id).bind(2, account_id);
    if (!s.step()) fail("arena review", "item {} is not assigned to this reviewer", item_id);
    campaign_id = s.int64(0);
  }
  Rubric rub = rubric(campaign_id);
  for (const auto& [criterion, sr] : scores) {
    const Criterion* c = rub.find(criterion);
    if (!c) fail("arena review", "unknown criterion '{}'", criterion);
    if (!(sr.first >= c->min && sr.first <= c->max))
      fail("arena review", "score {} for '{}' outside {}..{}", sr.first, criterion, c->min, c->max);
    if (sr.second.size() > 20000) fail("arena review", "rationale for '{}' longer than 20000 bytes", criterion);
  }
  std::lock_guard lk(db_mu_);
  Transaction tx(db_);
  int64_t now = now_ms();
  Stmt old = db_.prepare("SELECT score, rationale FROM reviews WHERE item_id=?1 AND account_id=?2 AND criterion=?3");
  Stmt log = db_.prepare("INSERT INTO audit_log(time_ms, actor, action, detail) VALUES (?1, ?2, ?3, ?4)");
  for (const auto& [criterion, sr] : scores) {
    old.reset();
    old.bind(1, item_id).bind(2, account_id).bind(3, criterion);
    json detail{{"item", item_id}, {"criterion", criterion}, {"score", sr.first}, {"rationale", sr.second}};
    std::string action = "review.submit";
    if (old.step()) {
      action = "review.edit";
      detail["previous"] = {{"score", old.real(0)}, {"rationale", old.text(1)}};
      db_.prepare("UPDATE reviews SET score=?1, rationale=?2, created_ms=?3 WHERE item_id=?4 AND account_id=?5 AND criterion=?6")
          .bind(1, sr.first).bind(2, sr.second).bind(3, now).bind(4, item_id).bind(5, account_id).bind(6, criterion).run();
    } else {
      db_.prepare("INSERT INTO reviews(item_id, account_id, criterion, score, rationale, created_ms) VALUES (?1,?2,?3,?4,?5,?6)")
          .bind(1, item_id).bind(2, account_id).bind(3, criterion).bind(4, sr.first).bind(5, sr.second).bind(6, now).run();
    }
    log.bind(1, now).bind(2, account_id).bind(3, action).bind(4, detail.dump()).run();
  }
  tx.commit();
}

ExpertSummary ArenaStore::expert_summary(int64_t campaign_id, const ExpertScoreOptions& options) {
  Rubric rub = rubric(campaign_id);
  std::map<std::string, std::string> item_model;
  std::vector<Score> scores;
  {
    std::lock_guard lk(db_mu_);
    Stmt i = db_.prepare("SELECT key, model FROM review_items WHERE campaign_id=?1");
    i.bind(1, campaign_id);
    while (i.step()) item_model[i.text(0)] = i.text(1);
    Stmt s = db_.prepare(
        "SELECT i.key, r.account_id, r.criterion, r.score FROM reviews r JOIN review_items i ON i.id=r.item_id "
        "WHERE i.campaign_id=?1 ORDER BY r.id");
    s.bind(1, campaign_id);
    while (s.step()) scores.push_back({s.text(0), salted("account:" + std::to_string(s.int64(1))), s.text(2), s.real(3)});
  }
  return summarize_expert_reviews(rub, item_model, scores, options);
}

// ---- export ----

void ArenaStore::export_files(const std::string& dir, const ExportOptions& o) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail<IoError>(dir, "cannot create export directory: {}", ec.message());
  std::vector<CampaignInfo> arenas, reviews;
  for (auto& c : campaigns()) {
    if (c.kind == "arena" && (o.campaign.empty() || c.name == o.campaign)) arenas.push_back(c);
    if (c.kind == "review") reviews.push_back(c);
  }
  if (!o.campaign.empty() && arenas.empty()) fail(path_, "no arena campaign named '{}'", o.campaign);
  bool synthetic = false;
  for (auto& c : arenas) synthetic |= c.synthetic;
  for (auto& c : reviews) synthetic |= c.synthetic;

  auto write = [&](const std::string& name, const std::string& text) {
    std::string p = (fs::path(dir) / name).string();
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) fail<IoError>(p, "cannot write export file");
    return sha256_hex(text);
  };
  auto manifest = [&](const json& inputs, const json& params) {
    auto t = std::chrono::system_clock::now();
    return json{{"kaival_version", kVersion},
                {"inputs", inputs},
                {"parameters", params},
                {"time", iso_time(std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count())}};
  };

  // Every table goes out as JSON (for the stage engine) and as CSV (for spreadsheets and citizens).
  auto num = [](double x) { return std::isnan(x) ? std::string() : fmt::format("{}", x); };
  // battles.jsonl: every voted battle, with its flags.
  std::string battles;
  std::string battles_csv = csv_row({"battle_id", "campaign", "prompt", "model_a", "model_b", "winner", "voter", "time", "flags"});
  std::vector<Battle> counted;
  std::vector<std::string> models;
  std::map<std::string, int> index;
  {
    std::lock_guard lk(db_mu_);
    for (const auto& c : arenas) {
      Stmt m = db_.prepare("SELECT name FROM models WHERE campaign_id=?1 ORDER BY name");
      m.bind(1, c.id);
      while (m.step())
        if (index.emplace(m.text(0), static_cast<int>(models.size())).second) models.push_back(m.text(0));
    }
    for (const auto& c : arenas) {
      Stmt s = db_.prepare(
          "SELECT b.public_id, aa.model, ab.model, v.winner, v.account_id, v.created_ms, v.quarantined, "
          "aa.identity_leak + ab.identity_leak, p.key FROM votes v JOIN battles b ON b.id=v.battle_id "
          "JOIN answers aa ON aa.id=b.answer_a JOIN answers ab ON ab.id=b.answer_b JOIN prompts p ON p.id=b.prompt_id "
          "WHERE b.campaign_id=?1 ORDER BY v.id");
      s.bind(1, c.id);
      while (s.step()) {
        json flags = json::array();
        if (s.int64(6)) flags.push_back("quarantined");
        if (s.int64(7)) flags.push_back("identity_leak");
        json line{{"battle_id", s.text(0)}, {"campaign", c.name}, {"prompt", s.text(8)},
                  {"model_a", s.text(1)}, {"model_b", s.text(2)}, {"winner", s.text(3)},
                  {"voter", salted("account:" + std::to_string(s.int64(4)))},
                  {"time", iso_time(s.int64(5))}, {"flags", flags}};
        battles += line.dump() + "\n";
        std::string flag_list;
        for (const auto& f : flags) flag_list += (flag_list.empty() ? "" : ";") + f.get<std::string>();
        battles_csv += csv_row({line["battle_id"].get<std::string>(), c.name, line["prompt"].get<std::string>(),
                                line["model_a"].get<std::string>(), line["model_b"].get<std::string>(),
                                line["winner"].get<std::string>(), line["voter"].get<std::string>(),
                                line["time"].get<std::string>(), flag_list});
        if (flags.empty()) counted.push_back({index.at(s.text(1)), index.at(s.text(2)), outcome_of(s.text(3))});
      }
    }
  }
  std::string battles_sha = write("battles.jsonl", battles);
  write("battles.csv", battles_csv);

  BootstrapOptions boot;
  boot.resamples = o.resamples;
  boot.seed = o.seed;
  Leaderboard lb = rate(aggregate(static_cast<int>(models.size()), counted), {}, boot);
  json rated = json::array();
  for (size_t i = 0; i < models.size(); ++i) {
    const ModelRating& m = lb.models[i];
    rated.push_back({{"model", models[i]}, {"rating", json_number(m.rating)}, {"ci_low", json_number(m.ci_low)},
                     {"ci_high", json_number(m.ci_high)}, {"rank", m.rank}, {"battles", m.battles},
                     {"win_rate", json_number(m.win_rate)}});
  }
  std::sort(rated.begin(), rated.end(), [](const json& a, const json& b) { return a["rating"] > b["rating"]; });
  std::string ratings_csv = csv_row({"rank", "model", "rating", "ci_low", "ci_high", "battles", "win_rate"});
  for (const auto& r : rated) {
    auto d = [&](const char* k) { return r[k].is_number() ? num(r[k].get<double>()) : std::string(); };
    ratings_csv += csv_row({std::to_string(r["rank"].get<int64_t>()), r["model"].get<std::string>(), d("rating"),
                            d("ci_low"), d("ci_high"), std::to_string(r["battles"].get<int64_t>()), d("win_rate")});
  }
  json win_rate = json::object();
  for (size_t i = 0; i < models.size(); ++i)
    for (size_t j = 0; j < models.size(); ++j)
      if (!std::isnan(lb.win_rate[i][j])) win_rate[models[i]][models[j]] = lb.win_rate[i][j];
  json ratings{{"schema", "kaival.arena-ratings/1"}, {"synthetic", synthetic}, {"models", rated},
               {"method", "bradley-terry"}, {"bootstrap", o.resamples}, {"ties", "half"},
               {"battles_counted", counted.size()}, {"win_rate", win_rate},
               {"manifest", manifest(json::array({{{"path", "battles.jsonl"}, {"sha256", battles_sha}}}),
                                     {{"resamples", o.resamples}, {"seed", o.seed}, {"scale", 400}, {"base", 1000},
                                      {"campaign", o.campaign}, {"excluded_flags", {"quarantined", "identity_leak"}}})}};
  write("ratings.json", ratings.dump(2) + "\n");
  write("ratings.csv", ratings_csv);

  // reviews.jsonl and expert_scores.json over every review campaign.
  std::string review_lines;
  std::string reviews_csv = csv_row({"campaign", "item", "model", "reviewer", "criterion", "score", "rationale", "time"});
  {
    std::lock_guard lk(db_mu_);
    for (const auto& c : reviews) {
      Stmt s = db_.prepare(
          "SELECT i.key, i.model, r.account_id, r.criterion, r.score, r.rationale, r.created_ms FROM reviews r "
          "JOIN review_items i ON i.id=r.item_id WHERE i.campaign_id=?1 ORDER BY r.id");
      s.bind(1, c.id);
      while (s.step()) {
        json line{{"campaign", c.name}, {"item", s.text(0)}, {"model", s.text(1)},
                  {"reviewer", salted("account:" + std::to_string(s.int64(2)))}, {"criterion", s.text(3)},
                  {"score", s.real(4)}, {"rationale", s.text(5)}, {"time", iso_time(s.int64(6))}};
        review_lines += line.dump() + "\n";
        reviews_csv += csv_row({c.name, s.text(0), s.text(1), line["reviewer"].get<std::string>(), s.text(3),
                                num(s.real(4)), s.text(5), line["time"].get<std::string>()});
      }
    }
  }
  std::string reviews_sha = write("reviews.jsonl", review_lines);
  write("reviews.csv", reviews_csv);
  std::string expert_csv = csv_row({"campaign", "model", "score", "ci_low", "ci_high", "reviews", "items"});
  json expert_models = json::array(), alpha = json::object(), severity = json::array();
  ExpertScoreOptions eo;
  eo.resamples = o.resamples;
  eo.seed = o.seed;
  for (const auto& c : reviews) {
    ExpertSummary sum = expert_summary(c.id, eo);
    for (const auto& m : sum.models)
      expert_models.push_back({{"model", m.model}, {"score", json_number(m.score)}, {"ci_low", json_number(m.ci_low)},
                               {"ci_high", json_number(m.ci_high)}, {"reviews", m.reviews}, {"items", m.items},
                               {"campaign", c.name}});
    for (const auto& m : sum.models)
      expert_csv += csv_row({c.name, m.model, num(m.score), num(m.ci_low), num(m.ci_high), std::to_string(m.reviews),
                             std::to_string(m.items)});
    for (const auto& [crit, a] : sum.alpha) {
      std::string key = reviews.size() > 1 ? c.name + "/" + crit : crit;
      alpha[key] = {{"interval", std::isnan(a.interval) ? json() : json(a.interval)},
                    {"ordinal", std::isnan(a.ordinal) ? json() : json(a.ordinal)}};
    }
    for (const auto& s : sum.severity)
      severity.push_back({{"campaign", c.name}, {"reviewer", s.reviewer}, {"severity", s.severity}, {"sd", s.sd},
                          {"compared", s.compared}, {"scores", s.scores}});
  }
  json expert{{"schema", "kaival.expert-scores/1"}, {"synthetic", synthetic}, {"models", expert_models},
              {"alpha", alpha}, {"aggregation", "trimmed-mean-10"}, {"reviewer_severity", severity},
              {"manifest", manifest(json::array({{{"path", "reviews.jsonl"}, {"sha256", reviews_sha}}}),
                                    {{"resamples", o.resamples}, {"seed", o.seed}, {"trim", 0.1},
                                     {"total", "weighted mean of criterion scores rescaled to 0-100"}})}};
  write("expert_scores.json", expert.dump(2) + "\n");
  write("expert_scores.csv", expert_csv);
}

}  // namespace kaival::arena
