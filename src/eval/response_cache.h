#pragma once
// The eval response cache: one SQLite file per run (cache.sqlite in the output
// folder) mapping a request's hash to the server's answer, shared by the runner
// and the judge so a rerun resumes without resending what was answered.
// One connection per thread; an empty path gives a cache that holds nothing.
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "store/sqlite.h"

namespace kaival::eval {

// A request's key in the cache: hex SHA-256 of endpoint, "\n", compact JSON body.
std::string response_cache_key(const std::string& endpoint, const nlohmann::json& body);

class ResponseCache {
 public:
  // Opens (creating and migrating) `path`. Open one first on a single thread:
  // concurrent first migrations would race.
  explicit ResponseCache(const std::string& path);
  // The statements point at db_: the cache stays where it was built.
  ResponseCache(const ResponseCache&) = delete;
  ResponseCache& operator=(const ResponseCache&) = delete;
  // The stored answer for `hash`; nothing when absent or not valid JSON.
  std::optional<nlohmann::json> get(const std::string& hash);
  void put(const std::string& hash, const std::string& endpoint, const nlohmann::json& request,
           const nlohmann::json& response);

 private:
  std::optional<store::Db> db_;
  store::Stmt get_, put_;
};

}  // namespace kaival::eval
