#pragma once
// Moving an arena store between backends: SQLite -> PostgreSQL when one
// machine is no longer enough (and back, for archives or a laptop copy).
// Every table is copied with its ids, so references, exported battle ids and
// salted voter ids (the salt lives in `meta`) stay the same. The target is
// written in one transaction and checked (row count and a content digest per
// table) before it commits: a failed copy leaves the target as it was.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace kaival::arena {

struct CopyProgress {
  std::string table;
  int64_t done = 0, total = 0;
};

struct CopyOptions {
  // Empty out a non-empty PostgreSQL target first (its audit log included);
  // without it a target holding any arena rows is refused.
  bool replace = false;
  int batch_rows = 500;  // rows per multi-row INSERT
  std::function<void(const CopyProgress&)> progress;  // after each batch; at least once per table
};

struct CopiedTable {
  std::string name;
  int64_t rows = 0;
  std::string digest;  // SHA-256 over the rows in key order, equal on both sides
};

struct CopyReport {
  std::vector<CopiedTable> tables;
  int schema_version = 0;  // the source's
};

// `from` and `to` are SQLite files or postgresql:// URLs. The source must be
// an arena store at exactly this build's schema version (run any kaival arena
// command on it with the matching build first); it is only read. Throws
// kaival::Error / IoError naming the file or URL (password redacted).
CopyReport copy_store(const std::string& from, const std::string& to, const CopyOptions& options = {});

// The tables copy_store copies, in dependency order.
std::vector<std::string> copied_tables();

}  // namespace kaival::arena
