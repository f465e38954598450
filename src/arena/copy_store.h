#pragma once
// Moving an arena store between backends: SQLite -> PostgreSQL when one
// machine is no longer enough (and back, for archives or a laptop copy).
// Every table is copied with its ids, so references, exported battle ids and
// salted voter ids (the salt lives in `meta`) stay the same. The target is
// written in one transaction and checked (row count and a content digest per
// table) before it commits: a failed copy leaves the target as it was.
// Copying again into a target that holds an earlier copy of the same store
// adds only the new rows: rows with a key the target has must be equal there
// (else an error names the table and key, and nothing is written), so a
// source still in use can be caught up before servers move to the target.
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
  // without it a target holding arena rows takes only the source's new rows.
  bool replace = false;
  int batch_rows = 500;  // rows per multi-row INSERT
  std::function<void(const CopyProgress&)> progress;  // after each batch; at least once per table
};

struct CopiedTable {
  std::string name;
  int64_t rows = 0;     // in the source
  std::string digest;   // of the source's rows (an order-independent sum of SHA-256s)
  int64_t added = 0;    // rows new to the target
  int64_t skipped = 0;  // rows the target held already, checked equal
};

struct CopyReport {
  std::vector<CopiedTable> tables;
  int schema_version = 0;  // the source's
  bool incremental = false;  // the target held an earlier copy: only new rows were added
};

// `from` and `to` are SQLite files or postgresql:// URLs. The source must be
// an arena store at exactly this build's schema version (run any kaival arena
// command on it with the matching build first); it is only read. Throws
// kaival::Error / IoError naming the file or URL (password redacted).
CopyReport copy_store(const std::string& from, const std::string& to, const CopyOptions& options = {});

// The tables copy_store copies, in dependency order.
std::vector<std::string> copied_tables();

}  // namespace kaival::arena
