#include "eval/response_cache.h"

#include "core/hash.h"

namespace kaival::eval {

using json = nlohmann::json;

namespace {
constexpr store::Migration kCacheMigrations[] = {
    {1, "CREATE TABLE responses (hash TEXT PRIMARY KEY, endpoint TEXT NOT NULL, request TEXT NOT NULL, "
        "response TEXT NOT NULL, created TEXT NOT NULL)"},
};

std::string text_of(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }
}  // namespace

std::string response_cache_key(const std::string& endpoint, const json& body) {
  return sha256_hex(endpoint + "\n" + text_of(body));
}

ResponseCache::ResponseCache(const std::string& path) {
  if (path.empty()) return;
  // WAL + synchronous=NORMAL: a committed answer survives kill -9 (only power loss may drop
  // the last few), without an fsync per response.
  store::OpenOptions oo;
  oo.synchronous_full = false;
  db_.emplace(store::Db::open(path, oo));
  store::migrate(*db_, kCacheMigrations);
  get_ = db_->prepare("SELECT response FROM responses WHERE hash = ?1");
  put_ = db_->prepare("INSERT OR REPLACE INTO responses (hash, endpoint, request, response, created) "
                      "VALUES (?1, ?2, ?3, ?4, datetime('now'))");
}

std::optional<json> ResponseCache::get(const std::string& hash) {
  if (!db_) return std::nullopt;
  get_.reset();
  get_.bind(1, hash);
  if (!get_.step()) return std::nullopt;
  auto j = json::parse(get_.text(0), nullptr, false);
  get_.reset();
  if (j.is_discarded()) return std::nullopt;
  return j;
}

void ResponseCache::put(const std::string& hash, const std::string& endpoint, const json& request,
                        const json& response) {
  if (!db_) return;
  put_.bind(1, hash).bind(2, endpoint).bind(3, text_of(request)).bind(4, text_of(response));
  put_.run();
}

}  // namespace kaival::eval
