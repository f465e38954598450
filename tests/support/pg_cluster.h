#pragma once
// One throwaway PostgreSQL cluster per test program, from the project's own
// scripts/pg: started the first time a test asks (initdb takes seconds),
// stopped after the last test. Header-only, shared by the test folders.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "store/postgres.h"

namespace kaival::pgtest {

// Runs a shell command; its stdout without trailing blanks, "" when it failed.
inline std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  if (pclose(p) != 0) out.clear();
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

class PgCluster {
 public:
  // A fresh, empty database on the cluster; "" when PostgreSQL is unusable
  // here (error() then says why).
  std::string fresh_database() {
    if (!start()) return "";
    if (++databases_ == 1) return url_;  // the cluster's own empty database: one CREATE DATABASE less
    std::string name = "db_" + std::to_string(databases_);
    store::PgDb::connect(url_).exec("CREATE DATABASE " + name);
    return url_.substr(0, url_.rfind('/') + 1) + name;
  }
  // The cluster's own database, shared by every caller (started if needed).
  std::string url() {
    start();
    return url_;
  }
  const std::string& error() const { return error_; }

  void stop() {
    if (!url_.empty())
      std::system((std::string(KAIVAL_SOURCE_DIR) + "/scripts/pg stop " + dir_ + " >/dev/null 2>&1").c_str());
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
    url_.clear();
    tried_ = false;
  }

 private:
  bool start() {
    if (!tried_) {
      tried_ = true;
      dir_ = "/tmp/kaival_pg_test_" + std::to_string(::getpid());
      url_ = run_capture(std::string(KAIVAL_SOURCE_DIR) + "/scripts/pg start " + dir_ + " 2>&1");
      if (!store::is_postgres_url(url_)) {
        error_ = url_.empty() ? "scripts/pg start failed" : url_;
        url_.clear();
      }
    }
    return !url_.empty();
  }
  std::string dir_, url_, error_;
  bool tried_ = false;
  int databases_ = 0;
};

// The program's cluster; a gtest environment stops it after the last test.
inline PgCluster& cluster() {
  static PgCluster c;
  return c;
}

struct StopCluster : ::testing::Environment {
  void TearDown() override { cluster().stop(); }
};
inline ::testing::Environment* const stop_cluster = ::testing::AddGlobalTestEnvironment(new StopCluster);

}  // namespace kaival::pgtest
