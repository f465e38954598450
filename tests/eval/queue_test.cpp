// Many machines, one run: the PostgreSQL request queue (eval/queue.h) against a
// throwaway PostgreSQL started by the project's own scripts/pg, the mock
// server, and real `kaival worker` processes, one of them killed with SIGKILL
// mid-run. Expected scores come from a single-machine run of the same cards.
#include "eval/queue.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/runner.h"
#include "mock_server.h"
#include "store/postgres.h"
#include "../support/files.h"
#include "../support/pg_cluster.h"

namespace kaival::eval {
namespace {

namespace fs = std::filesystem;
using testing::MockFaults;
using testing::MockServer;
using OJ = nlohmann::ordered_json;

// One PostgreSQL cluster for the whole suite (initdb takes seconds).
class PgQueue : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { url_ = pgtest::cluster().url(); }
  void SetUp() override {
    ASSERT_TRUE(store::is_postgres_url(url_)) << "scripts/pg start failed: " << pgtest::cluster().error();
  }
  static std::string url_;
};
std::string PgQueue::url_;

QueuedRequest req(const std::string& prompt) {
  nlohmann::json body = {{"model", "mock"}, {"prompt", prompt}, {"max_tokens", 4}, {"temperature", 0}};
  std::string b = body.dump();
  return {"h-" + prompt, "completions", b};
}

TEST_F(PgQueue, EnqueueIsIdempotentAndOneWorkerAnswersEverything) {
  MockServer mock;
  mock.add_answer("alpha", "A!");
  mock.add_answer("beta", "B!");
  mock.start();
  RequestQueue q(url_);
  std::vector<QueuedRequest> reqs = {req("alpha"), req("beta"), req("gamma")};
  auto p = q.enqueue("idem", mock.url(), ClientOptions{}, reqs);
  EXPECT_EQ(p.total, 3);
  EXPECT_EQ(p.done, 0);
  reqs.push_back(req("alpha"));  // the same request again adds nothing
  p = q.enqueue("idem", mock.url(), ClientOptions{}, reqs);
  EXPECT_EQ(p.total, 3);
  // The same run name for another server is refused, naming the run.
  try {
    q.enqueue("idem", "http://127.0.0.1:1", ClientOptions{}, reqs);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'idem'"), std::string::npos) << e.what();
  }
  WorkerOptions wo;
  wo.store_url = url_;
  wo.run = "idem";
  wo.idle_exit_s = 0;
  wo.concurrency = 2;
  auto st = run_worker(wo);
  EXPECT_EQ(st.answered, 3);
  EXPECT_EQ(mock.completed(), 3);
  p = q.progress("idem");
  EXPECT_EQ(p.done, 3);
  auto answers = q.responses("idem");
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(answers.at("h-alpha")["choices"][0]["text"], "A!");
  EXPECT_EQ(answers.at("h-beta")["choices"][0]["text"], "B!");
  // A second worker finds nothing to do and sends nothing.
  st = run_worker(wo);
  EXPECT_EQ(st.answered, 0);
  EXPECT_EQ(mock.completed(), 3);
}

TEST_F(PgQueue, FailedRequestsAreRetriedThenReportedByName) {
  MockFaults f;
  f.error500_first = 1000;  // every request fails
  MockServer mock(f);
  mock.start();
  ClientOptions c;
  c.max_retries = 0;
  c.backoff_initial_s = 0.001;
  std::vector<QueuedRequest> reqs = {req("doomed")};
  WorkerOptions wo;
  wo.store_url = url_;
  wo.run = "doomed";
  wo.idle_exit_s = 0.2;
  wo.max_attempts = 2;
  RequestQueue q(url_);
  q.enqueue("doomed", mock.url(), c, reqs);
  auto st = run_worker(wo);
  EXPECT_EQ(st.failed, 2);  // claimed twice, then marked failed
  auto p = q.progress("doomed", 2);
  EXPECT_EQ(p.failed, 1);
  auto fails = q.failures("doomed");
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_NE(fails[0].find("h-doomed"), std::string::npos) << fails[0];
  EXPECT_NE(fails[0].find("500"), std::string::npos) << fails[0];
}

// The shipped KoBEST BoolQ card reading its split as JSON Lines, so that a test can write many
// rows without a Parquet writer; the card is otherwise the one users run.
std::string jsonl_card(const fs::path& dir) {
  std::string text = testing_support::read_file(std::string(KAIVAL_SOURCE_DIR) + "/tasks/kobest_boolq.yaml");
  const std::string from = "format: parquet";
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos);
  if (at != std::string::npos) text.replace(at, from.size(), "format: jsonl");
  const fs::path card = dir / "kobest_boolq.yaml";
  testing_support::write_file(card, text);
  return card.string();
}

TEST_F(PgQueue, ThreeWorkersOneKilledEveryItemScoredOnce) {
  // 40 KoBEST BoolQ items in the source's format: 3 requests each (two choices + the context).
  fs::path data = fs::temp_directory_path() / ("kaival_queue_data_" + std::to_string(getpid()));
  fs::remove_all(data);
  fs::create_directories(data / "kobest_boolq");
  {
    std::ofstream f(data / "kobest_boolq" / "test.jsonl");
    for (int i = 0; i < 40; ++i)
      f << OJ{{"paragraph", "문단 " + std::to_string(i) + " 은 사실을 말한다."},
              {"question", "질문 " + std::to_string(i) + " 은 참인가요?"},
              {"label", i % 3 == 0 ? 0 : 1}}
               .dump()
        << "\n";
  }
  MockFaults faults;
  faults.latency_ms = 120;
  MockServer mock(faults);
  mock.favour("예");
  mock.start();

  RunOptions o;
  o.model_url = mock.url();
  o.data.local_dir = data.string();
  o.progress = false;
  o.bootstrap = 100;
  o.client.concurrency = 8;
  o.client.backoff_initial_s = 0.01;
  const std::string card = jsonl_card(data);

  // Reference: one machine, SQLite cache in memory.
  OJ local = run_eval({card}, o);
  const int64_t local_posts = mock.completed();

  // Distributed: the coordinator only enqueues, waits and scores; three worker processes answer.
  fs::path out = fs::temp_directory_path() / ("kaival_queue_out_" + std::to_string(getpid()));
  fs::remove_all(out);
  RunOptions d = o;
  d.store_url = url_;
  d.run_name = "boolq-3w";
  d.work_here = false;
  d.out_dir = out.string();
  OJ dist;
  std::exception_ptr coord_error;
  std::thread coordinator([&] {
    try {
      dist = run_eval({card}, d);
    } catch (...) {
      coord_error = std::current_exception();
    }
  });
  std::vector<pid_t> workers;
  for (int w = 0; w < 3; ++w) {
    pid_t pid = fork();
    if (pid == 0) {
      std::string id = "w" + std::to_string(w);
      execl(KAIVAL_BINARY, KAIVAL_BINARY, "worker", "--store", url_.c_str(), "--run", "boolq-3w", "--concurrency",
            "2", "--shard", "4", "--lease", "1.5", "--idle-exit", "2", "--id", id.c_str(), (char*)nullptr);
      _exit(127);
    }
    ASSERT_GT(pid, 0);
    workers.push_back(pid);
  }
  // Kill worker 0 once a quarter of the run is answered: it holds a claimed shard then.
  RequestQueue q(url_);
  auto t0 = std::chrono::steady_clock::now();
  bool killed = false;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
    auto p = q.progress("boolq-3w");
    if (p.total > 0 && p.done * 4 >= p.total) {
      kill(workers[0], SIGKILL);
      killed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  coordinator.join();
  for (pid_t pid : workers) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (pid != workers[0]) EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "worker exit " << status;
  }
  ASSERT_TRUE(killed);
  if (coord_error) std::rethrow_exception(coord_error);

  // Same scores as on one machine, over every item.
  ASSERT_TRUE(dist.contains("results"));
  EXPECT_EQ(dist["results"]["kobest_boolq"]["n"], 40);
  EXPECT_EQ(dist["results"]["kobest_boolq"]["acc,none"], local["results"]["kobest_boolq"]["acc,none"]);
  EXPECT_EQ(dist["results"]["kobest_boolq"]["acc_norm,none"], local["results"]["kobest_boolq"]["acc_norm,none"]);
  EXPECT_EQ(dist["manifest"]["store"]["run"], "boolq-3w");
  // Each item scored exactly once in the samples log.
  std::multiset<std::string> ids;
  std::ifstream s(out / "samples_kobest_boolq.jsonl");
  std::string line;
  while (std::getline(s, line))
    if (!line.empty()) ids.insert(OJ::parse(line)["doc_id"].get<std::string>());
  EXPECT_EQ(ids.size(), 40u);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 40u);
  // In the store: every request answered once; the dead worker's claims were taken over.
  store::PgDb db = store::PgDb::connect(url_);
  auto rows = db.query(
      "SELECT count(*), count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE attempts > 1), "
      "count(DISTINCT worker) FROM eval_requests WHERE run = 'boolq-3w'");
  int64_t total = std::stoll(*rows[0][0]);
  EXPECT_EQ(total, 120);
  EXPECT_EQ(std::stoll(*rows[0][1]), total);
  EXPECT_GE(std::stoll(*rows[0][2]), 1) << "no claim of the killed worker was taken over";
  EXPECT_GE(std::stoll(*rows[0][3]), 2);
  // The mock answered each request once, plus at most the killed worker's in-flight ones.
  int64_t dist_posts = mock.completed() - local_posts;
  EXPECT_GE(dist_posts, total);
  // +1: the coordinator's loglikelihood capability probe; +4: one shard answered twice
  // when the killed worker had sent requests whose answers were never accepted.
  EXPECT_LE(dist_posts, total + 1 + 4);
  fs::remove_all(out);
  fs::remove_all(data);
}

// A streamed distributed run: the coordinator enqueues each window as it reads it (the next one
// while this one is answered) and holds at most two windows of rows; the default run name
// hashes the run's inputs, so the same command again resumes with nothing to send.
TEST_F(PgQueue, StreamedStoreRunHoldsTwoWindowsAndResumes) {
  fs::path data = fs::temp_directory_path() / ("kaival_queue_stream_" + std::to_string(getpid()));
  fs::remove_all(data);
  fs::create_directories(data / "kobest_boolq");
  {
    std::ofstream f(data / "kobest_boolq" / "test.jsonl");
    for (int i = 0; i < 40; ++i)
      f << OJ{{"paragraph", "단락 " + std::to_string(i) + " 의 내용."},
              {"question", "물음 " + std::to_string(i) + " 은 맞나요?"},
              {"label", i % 4 == 0 ? 0 : 1}}
               .dump()
        << "\n";
  }
  MockServer mock;
  mock.favour("예");
  mock.start();
  RunOptions o;
  o.model_url = mock.url();
  o.data.local_dir = data.string();
  o.progress = false;
  o.bootstrap = 100;
  o.client.concurrency = 4;
  const std::string card = jsonl_card(data);
  OJ local = run_eval({card}, o);

  RunOptions d = o;
  d.store_url = url_;
  d.window = 8;
  RunStats st;
  d.stats = &st;
  OJ dist = run_eval({card}, d);
  EXPECT_LE(st.max_items_held, 16u);
  EXPECT_LE(st.max_requests_held, 16u * 3);
  EXPECT_EQ(st.chunks, 5u);
  EXPECT_GE(st.prefetched, 4u);
  EXPECT_EQ(dist["results"]["kobest_boolq"]["n"], 40);
  EXPECT_EQ(dist["results"].dump(), local["results"].dump());
  const std::string run = dist["manifest"]["store"]["run"].get<std::string>();
  EXPECT_EQ(run.rfind("run-", 0), 0u) << run;
  store::PgDb db = store::PgDb::connect(url_);
  auto rows = db.query("SELECT count(*), count(*) FILTER (WHERE state = 'done') FROM eval_requests WHERE run = $1", {run});
  EXPECT_EQ(std::stoll(*rows[0][0]), 120);
  EXPECT_EQ(std::stoll(*rows[0][1]), 120);

  // Again: the same run name, every answer already in the store (only the capability probe is sent).
  const int64_t before = mock.completed();
  OJ again = run_eval({card}, d);
  EXPECT_LE(mock.completed() - before, 1);
  EXPECT_EQ(again["manifest"]["store"]["run"], run);
  EXPECT_EQ(again["results"].dump(), local["results"].dump());
  fs::remove_all(data);
}

TEST(PgUrl, RedactsPasswords) {
  EXPECT_EQ(store::redact_url("postgresql://u:secret@h:5/db"), "postgresql://u:***@h:5/db");
  EXPECT_EQ(store::redact_url("postgresql://u@h:5/db"), "postgresql://u@h:5/db");
  EXPECT_TRUE(store::is_postgres_url("postgres://x"));
  EXPECT_FALSE(store::is_postgres_url("/tmp/x.sqlite"));
}

TEST(PgUrl, UnreachableServerIsAClearError) {
  try {
    store::PgDb::connect("postgresql://kaival:pw@127.0.0.1:1/none?connect_timeout=2");
    FAIL() << "expected an error";
  } catch (const IoError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cannot connect"), std::string::npos) << m;
    EXPECT_EQ(m.find("pw"), std::string::npos) << "password leaked: " << m;
  }
}

}  // namespace
}  // namespace kaival::eval
