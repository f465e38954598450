// The HTTP client against every fault the mock server injects.
#include "eval/http_client.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include "core/error.h"
#include "eval/task.h"
#include "local_hub.h"
#include "mock_server.h"
#include "../support/files.h"

namespace kaival::eval {
namespace {

using testing::MockFaults;
using testing::MockServer;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

ClientOptions fast() {
  ClientOptions o;
  o.concurrency = 2;
  o.backoff_initial_s = 0.01;
  o.backoff_max_s = 0.05;
  o.timeout_ms = 2000;
  return o;
}

json completion(const std::string& prompt) {
  return {{"model", "mock-model"}, {"prompt", prompt}, {"max_tokens", 8}};
}

TEST(Client, HonoursRetryAfterOn429AndHalvesConcurrency) {
  MockFaults f;
  f.rate_limit_first = 1;
  f.retry_after = "1";
  MockServer mock(f);
  mock.add_answer("hello", "world");
  mock.start();
  ClientOptions o = fast();
  o.concurrency = 8;
  OpenAIClient c(mock.url(), o);
  auto t0 = Clock::now();
  auto r = c.post("completions", completion("hello"));
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(r["choices"][0]["text"], "world");
  EXPECT_GE(s, 0.95);  // the 429 asked for one second
  EXPECT_EQ(c.stats().throttled, 1);
  EXPECT_EQ(c.stats().requests, 2);
  EXPECT_EQ(c.current_limit(), 4);  // halved from 8
}

TEST(Client, Retries500ThenSucceeds) {
  MockFaults f;
  f.error500_first = 3;
  MockServer mock(f);
  mock.start();
  OpenAIClient c(mock.url(), fast());
  auto r = c.post("completions", completion("x"));
  EXPECT_EQ(r["choices"][0]["text"], "I do not know.");
  EXPECT_EQ(c.stats().retries, 3);
  EXPECT_EQ(mock.posts(), 4);
}

TEST(Client, GivesUpAfterMaxRetriesNamingTheUrl) {
  MockFaults f;
  f.error500_first = 100;
  MockServer mock(f);
  mock.start();
  ClientOptions o = fast();
  o.max_retries = 2;
  OpenAIClient c(mock.url(), o);
  try {
    c.post("completions", completion("x"));
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("/v1/completions"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("3 attempts"), std::string::npos) << e.what();
  }
  EXPECT_EQ(mock.posts(), 3);
}

TEST(Client, HangingRequestTimesOutAndIsRetried) {
  MockFaults f;
  f.hang_first = 1;
  f.hang_ms = 3000;
  MockServer mock(f);
  mock.add_answer("q", "a");
  mock.start();
  ClientOptions o = fast();
  o.timeout_ms = 300;
  OpenAIClient c(mock.url(), o);
  auto t0 = Clock::now();
  auto r = c.post("completions", completion("q"));
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(r["choices"][0]["text"], "a");
  EXPECT_LT(s, 2.0);
  EXPECT_EQ(c.stats().retries, 1);
}

TEST(Client, MalformedJsonIsRetried) {
  MockFaults f;
  f.malformed_first = 2;
  MockServer mock(f);
  mock.start();
  OpenAIClient c(mock.url(), fast());
  auto r = c.post("completions", completion("x"));
  EXPECT_TRUE(r.contains("choices"));
  EXPECT_EQ(c.stats().retries, 2);
}

TEST(Client, CutSseStreamIsRetriedAndTimed) {
  MockFaults f;
  f.cut_stream_first = 1;
  MockServer mock(f);
  mock.add_answer("story", "옛날 옛적에 호랑이가 살았어요.");
  mock.start();
  OpenAIClient c(mock.url(), fast());
  auto r = c.post_stream("completions", completion("story"));
  EXPECT_EQ(r.text, "옛날 옛적에 호랑이가 살았어요.");
  EXPECT_EQ(c.stats().retries, 1);
  EXPECT_GT(r.chunks, 3);
  EXPECT_EQ(r.itl_s.size(), static_cast<size_t>(r.chunks - 1));
  EXPECT_GE(r.e2e_s, r.ttft_s);
}

TEST(Client, ClientErrorsAreNotRetried) {
  MockServer mock;
  mock.start();
  OpenAIClient c(mock.url(), fast());
  // The mock answers 400 to a body that is not a JSON object.
  EXPECT_THROW(c.post("completions", json::array({1, 2})), IoError);
  EXPECT_EQ(mock.posts(), 1);
}

TEST(Client, LatencyBoundsThroughputByConcurrency) {
  MockFaults f;
  f.latency_ms = 50;
  MockServer mock(f);
  mock.start();
  ClientOptions o = fast();
  o.concurrency = 4;
  OpenAIClient c(mock.url(), o);
  auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int i = 0; i < 8; ++i) ts.emplace_back([&] { c.post("completions", completion("x")); });
  for (auto& t : ts) t.join();
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_GE(s, 0.095);  // 8 requests, 4 at a time, 50 ms each: at least two waves
  EXPECT_EQ(mock.completed(), 8);
}

using testing::hub_file;
using testing::LocalHub;

TEST(Hub, DownloadsOnceIntoTheCache) {
  namespace fs = std::filesystem;
  LocalHub hub;
  int hits = 0;
  hub.srv.Get("/datasets/org/ds/resolve/abc123/data/test.jsonl", [&](const httplib::Request&, httplib::Response& res) {
    ++hits;
    res.set_content("{\"q\": \"하나\"}\n{\"q\": \"둘\"}\n", "application/octet-stream");
  });
  hub.srv.set_keep_alive_max_count(1);
  hub.start();
  testing_support::TempDir tmp("hub");
  const fs::path cache = tmp.path / "cache";
  DataSource src = hub_file("org/ds", "abc123", "data/test.jsonl");
  LoadOptions lo = hub.options(cache);
  std::string p1 = hub_download(src, lo);
  std::string p2 = hub_download(src, lo);
  EXPECT_EQ(p1, p2);
  EXPECT_EQ(hits, 1);
  std::ifstream f(p1);
  std::string line;
  std::getline(f, line);
  EXPECT_EQ(line, "{\"q\": \"하나\"}");
  // A missing file is an IoError naming the URL; nothing is left in the cache.
  src.hf_path = "data/missing.jsonl";
  EXPECT_THROW(hub_download(src, lo), IoError);
  EXPECT_FALSE(fs::exists(cache / "hf/org/ds/abc123/data/missing.jsonl"));
  // A pinned hash that does not match is refused.
  src.hf_path = "data/test.jsonl";
  src.sha256 = std::string(64, '0');
  fs::remove_all(cache);
  EXPECT_THROW(hub_download(src, lo), IoError);
}

// The Hub's Parquet conversion lives on the branch refs/convert/parquet: one URL segment,
// escaped as %2F (as huggingface_hub sends it), and one cache folder.
TEST(Hub, ABranchWithSlashesIsOneEscapedSegment) {
  namespace fs = std::filesystem;
  LocalHub hub;
  std::vector<std::string> seen;
  hub.srv.Get(R"(/datasets/org/ds/resolve/(.+)/default/test/0000\.parquet)", [&](const httplib::Request& req, httplib::Response& res) {
    seen.push_back(req.target);  // as sent, before the server decodes it
    res.set_content("PAR1", "application/octet-stream");
  });
  hub.start();
  testing_support::TempDir tmp("hub_rev");
  const fs::path cache = tmp.path / "cache";
  const DataSource src = hub_file("org/ds", "refs/convert/parquet", "default/test/0000.parquet");
  std::string p = hub_download(src, hub.options(cache));
  hub.stop();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], "/datasets/org/ds/resolve/refs%2Fconvert%2Fparquet/default/test/0000.parquet");
  EXPECT_EQ(fs::path(p), cache / "hf/org/ds/refs%2Fconvert%2Fparquet/default/test/0000.parquet");
  EXPECT_EQ(fs::file_size(p), 4u);
}

// The Hub answers a resolve URL with X-Repo-Commit (then, for large files, a redirect to its
// file store, which does not send it): the commit is kept beside the cached file.
TEST(Hub, KeepsTheCommitTheHubResolvedTheRevisionTo) {
  namespace fs = std::filesystem;
  const std::string commit = "0123456789abcdef0123456789abcdef01234567";
  LocalHub hub;
  hub.srv.Get("/datasets/org/ds/resolve/main/big.jsonl", [&](const httplib::Request&, httplib::Response& res) {
    res.set_header("X-Repo-Commit", commit);
    res.set_redirect("/store/blob-1");
  });
  hub.srv.Get("/store/blob-1", [&](const httplib::Request&, httplib::Response& res) {
    res.set_header("X-Repo-Commit", std::string(40, 'f'));  // not the first: ignored
    res.set_content("{\"q\": 1}\n", "application/octet-stream");
  });
  hub.srv.Get("/datasets/org/ds/resolve/main/plain.jsonl", [&](const httplib::Request&, httplib::Response& res) {
    res.set_header("X-Repo-Commit", "not-a-commit");
    res.set_content("{\"q\": 2}\n", "application/octet-stream");
  });
  hub.start();
  testing_support::TempDir tmp("hub_commit");
  const fs::path cache = tmp.path / "cache";
  DataSource src = hub_file("org/ds", "main", "big.jsonl");
  std::string big = hub_download(src, hub.options(cache));
  EXPECT_EQ(testing_support::read_file(big), "{\"q\": 1}\n");
  EXPECT_EQ(hub_commit(big), commit);
  src.hf_path = "plain.jsonl";
  std::string plain = hub_download(src, hub.options(cache));
  EXPECT_EQ(hub_commit(plain), "");  // a malformed header is not recorded
  EXPECT_FALSE(fs::exists(plain + ".kaival.json"));
  EXPECT_EQ(hub_commit((cache / "nowhere.jsonl").string()), "");
}

}  // namespace
}  // namespace kaival::eval
