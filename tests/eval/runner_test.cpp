// kaival eval end to end against the mock server, on the hand-written samples
// under testdata/eval (each in its source's exact format). Expected scores are
// counted from the sample files and the mock's answer table, not from kaival.
#include "eval/runner.h"

#include <signal.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "core/error.h"
#include "mock_server.h"

namespace kaival::eval {
namespace {

namespace fs = std::filesystem;
using testing::MockFaults;
using testing::MockServer;
using OJ = nlohmann::ordered_json;

const std::string kTasks = std::string(KAIVAL_SOURCE_DIR) + "/tasks/";
const std::string kData = std::string(KAIVAL_TESTDATA) + "/eval";

std::vector<OJ> read_jsonl(const std::string& path) {
  std::vector<OJ> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) out.push_back(OJ::parse(line));
  return out;
}

RunOptions options(const MockServer& m) {
  RunOptions o;
  o.model_url = m.url();
  o.data.local_dir = kData;
  o.progress = false;
  o.client.concurrency = 4;
  o.client.backoff_initial_s = 0.01;
  return o;
}

double metric(const OJ& r, const std::string& task, const std::string& m) {
  return r.at("results").at(task).at(m + ",none").get<double>();
}

TEST(Runner, EveryShippedCardRunsOnItsSample) {
  MockServer mock;
  mock.start();
  for (const auto& e : fs::directory_iterator(kTasks)) {
    if (e.path().extension() != ".yaml") continue;
    SCOPED_TRACE(e.path().string());
    // An expanded card (KMMLU) runs the tasks that have a hand-written sample.
    std::string spec = e.path().string(), picked;
    auto cards = load_cards(spec);
    for (const auto& c : cards)
      if (fs::exists(fs::path(kData) / c.name)) picked += (picked.empty() ? "" : ",") + c.name;
    ASSERT_FALSE(picked.empty()) << "no sample under " << kData << " for any task of the card";
    if (cards.size() > 1) spec += "#" + picked;
    auto r = run_eval({spec}, options(mock));
    ASSERT_EQ(r["results"].size(), 1u);
    const auto& res = r["results"].begin().value();
    EXPECT_GT(res["n"].get<int>(), 0);
    for (auto it = res.begin(); it != res.end(); ++it)
      if (it.key().find(",none") != std::string::npos) {
        EXPECT_GE(it.value().get<double>(), 0.0);
        EXPECT_LE(it.value().get<double>(), 1.0);
      }
  }
}

TEST(Runner, LoglikelihoodPicksTheFavouredChoiceAndWritesResults) {
  MockServer mock;
  mock.favour("예");  // " 예" beats " 아니오" for every item
  mock.start();
  auto out = fs::temp_directory_path() / ("kaival_eval_ll_" + std::to_string(getpid()));
  fs::remove_all(out);
  RunOptions o = options(mock);
  o.out_dir = out.string();
  o.model_id = "team-a";
  auto r = run_eval({kTasks + "kobest_boolq.yaml"}, o);
  auto rows = read_jsonl(kData + "/kobest_boolq/test.jsonl");
  double yes = 0;
  for (const auto& row : rows) yes += row["label"].get<int>() == 1;
  EXPECT_DOUBLE_EQ(metric(r, "kobest_boolq", "acc"), yes / double(rows.size()));
  EXPECT_DOUBLE_EQ(metric(r, "kobest_boolq", "acc_norm"), yes / double(rows.size()));
  EXPECT_EQ(r["schema"], "kaival.eval-results/1");
  EXPECT_EQ(r["model"]["id"], "team-a");
  EXPECT_EQ(r["model"]["served_id"], "mock-model");
  EXPECT_EQ(r["results"]["kobest_boolq"]["n"], rows.size());
  EXPECT_EQ(r["configs"]["kobest_boolq"]["card_sha256"].get<std::string>().size(), 64u);
  // Files on disk.
  auto disk = OJ::parse(std::ifstream(out / "results.json"));
  EXPECT_EQ(disk["results"], r["results"]);
  auto samples = read_jsonl((out / "samples_kobest_boolq.jsonl").string());
  ASSERT_EQ(samples.size(), rows.size());
  std::set<std::string> ids;
  for (const auto& s : samples) {
    ids.insert(s["doc_id"].get<std::string>());
    EXPECT_EQ(s["request_hash"].get<std::string>().size(), 64u);
    EXPECT_TRUE(s["metrics"].contains("acc"));
  }
  EXPECT_EQ(ids.size(), rows.size());
  EXPECT_TRUE(fs::exists(out / "results.html"));
  // Rerun: everything comes from the cache.
  int64_t before = mock.posts();
  auto again = run_eval({kTasks + "kobest_boolq.yaml"}, o);
  EXPECT_EQ(mock.posts(), before);
  EXPECT_EQ(again["results"], r["results"]);
  fs::remove_all(out);
}

TEST(Runner, GenerativeKoreanAnswersAndNumbers) {
  MockServer mock;
  // KICE (labels ①-⑤): item 1 right via "정답은 ②", item 2 answers a non-label.
  mock.add_answer("봄이 오면", "지문에 따르면 정답은 ②입니다.");
  mock.add_answer("물은 100도", "정답: (가)");
  // HRM8K: right, right (full-width digits), wrong.
  mock.add_answer("사과 3개", "3 + 4 = 7\n정답: 7");
  mock.add_answer("연필이 12자루", "12 × 5\n정답： ６０");
  mock.add_answer("거스름돈", "정답: 3,000원");
  // GSM8K: both right, the second with a thousands separator.
  mock.add_answer("3 boxes", "3*4 = 12\n#### 12");
  mock.add_answer("$1,200", "1200-200\n#### 1,000");
  mock.start();
  auto r = run_eval({kTasks + "kice.yaml", kTasks + "hrm8k.yaml", kTasks + "gsm8k.yaml"}, options(mock));
  EXPECT_DOUBLE_EQ(metric(r, "kice", "acc"), 0.5);
  EXPECT_DOUBLE_EQ(metric(r, "hrm8k_gsm8k", "exact_match"), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(metric(r, "gsm8k", "exact_match"), 1.0);
  EXPECT_DOUBLE_EQ(r["groups"]["hrm8k"]["exact_match,none"].get<double>(), 2.0 / 3.0);
  // GSM8K is 5-shot from train (one row): its prompt carries the example and its answer.
  bool saw_shot = false;
  for (const auto& p : mock.served_prompts())
    if (p.find("Ann has 2 pens") != std::string::npos && p.find("#### 5") != std::string::npos &&
        p.find("Tom has 3 boxes") != std::string::npos)
      saw_shot = true;
  EXPECT_TRUE(saw_shot);
}

TEST(Runner, CircularModeNeedsEveryRotation) {
  MockServer mock;
  // recB2 (Photon) is answered right at every position; recA1 (1/2) only when it is listed first.
  for (const char* l : {"A", "B", "C", "D"}) mock.add_answer(std::string("(") + l + ") Photon", l);
  mock.add_answer("(A) 1/2", "A");
  mock.start();
  auto r = run_eval({kTasks + "gpqa_diamond.yaml"}, options(mock));
  EXPECT_DOUBLE_EQ(metric(r, "gpqa_diamond", "acc"), 0.5);
  EXPECT_EQ(mock.completed(), 8);  // two items x four rotations
}

TEST(Runner, HaeRaeScoresTheAnswerLetterAfterTheQuery) {
  // lm-evaluation-harness's scoring: the choices are " (A)".." (E)" after the query, answer "(A)".."(E)".
  // Favouring "(B)" makes every item pick (B): right for the second sample item only.
  MockServer mock;
  mock.favour("(B)");
  mock.start();
  auto r = run_eval({kTasks + "haerae_bench.yaml"}, options(mock));
  EXPECT_DOUBLE_EQ(metric(r, "haerae_bench", "acc"), 0.5);
  EXPECT_DOUBLE_EQ(metric(r, "haerae_bench", "acc_norm"), 0.5);
}

TEST(Runner, KmmluProAndReduxReadTheOneBasedSolutionString) {
  // solution is "1".."5" (a string in the loaders that read the Hub files); options are 5 (Pro) or 4 (Redux).
  MockServer mock;
  mock.add_answer("부가가치세", "정답은 ②입니다.");  // solution "2": right
  mock.add_answer("특허권", "③");                   // solution "3": right
  mock.add_answer("콘크리트", "정답: ②");            // solution "2": right
  mock.add_answer("광합성", "정답: ②");              // solution "1": wrong
  mock.start();
  auto r = run_eval({kTasks + "kmmlu_pro.yaml", kTasks + "kmmlu_redux.yaml"}, options(mock));
  EXPECT_DOUBLE_EQ(metric(r, "kmmlu_pro", "acc"), 1.0);
  EXPECT_DOUBLE_EQ(metric(r, "kmmlu_redux", "acc"), 0.5);
  EXPECT_DOUBLE_EQ(r["groups"]["kmmlu_pro_redux"]["acc,none"].get<double>(), 0.75);
}

TEST(Runner, MacroAndMicroGroupAggregation) {
  MockServer mock;
  mock.favour("예");   // boolq: the 2 of 3 items labelled 1 are right
  mock.favour("긍정");  // sentineg: the 1 of 2 items labelled 1 is right
  mock.start();
  auto r = run_eval({kTasks + "kobest_boolq.yaml", kTasks + "kobest_sentineg.yaml"}, options(mock));
  EXPECT_DOUBLE_EQ(metric(r, "kobest_boolq", "acc"), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(metric(r, "kobest_sentineg", "acc"), 0.5);
  EXPECT_EQ(r["groups"]["kobest"]["aggregation"], "macro");
  EXPECT_DOUBLE_EQ(r["groups"]["kobest"]["acc,none"].get<double>(), (2.0 / 3.0 + 0.5) / 2);  // micro would be 3/5
}

TEST(Runner, RefusesServerWithoutPromptLogprobs) {
  MockFaults f;
  f.no_logprobs = true;
  MockServer mock(f);
  mock.start();
  try {
    run_eval({kTasks + "kobest_copa.yaml"}, options(mock));
    FAIL() << "accepted a server without prompt logprobs";
  } catch (const UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("capability probe"), std::string::npos) << e.what();
  }
  EXPECT_EQ(mock.posts(), 1);  // only the probe was sent
}

// Writes a card with `n` two-choice items into dir.
std::string write_big_card(const fs::path& dir, int n) {
  fs::create_directories(dir / "bigtask");
  {
    std::ofstream d(dir / "bigtask" / "test.jsonl");
    for (int i = 0; i < n; ++i) d << OJ{{"q", "질문 " + std::to_string(i)}, {"label", i % 2}}.dump() << "\n";
  }
  auto card = dir / "big.yaml";
  std::ofstream(card) << "schema: kaival.task/1\nname: bigtask\nlicense: test\nsplits: {test: bigtask/test.jsonl}\n"
                         "request: loglikelihood\nprompt: \"{{ q }} 답:\"\nchoices: [\"아니오\", \"예\"]\n"
                         "answer_index: \"{{ label }}\"\n";
  return card.string();
}

TEST(Runner, KilledRunResumesWithoutResendingCompletedRequests) {
  auto dir = fs::temp_directory_path() / ("kaival_eval_kill_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const int n = 60;  // 60 x (2 choices + the context alone) + 1 probe
  std::string card = write_big_card(dir, n);
  MockFaults f;
  f.latency_ms = 3;
  MockServer mock(f);
  mock.favour("예");
  mock.start();
  std::string out = (dir / "out").string();
  auto spawn = [&]() {
    pid_t pid = fork();
    if (pid == 0) {
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, 1);
      dup2(devnull, 2);
      execl(KAIVAL_BINARY, KAIVAL_BINARY, "eval", "--model", mock.url().c_str(), "--task", card.c_str(), "--out",
            out.c_str(), "--concurrency", "2", "--no-progress", static_cast<char*>(nullptr));
      _exit(127);
    }
    return pid;
  };
  pid_t pid = spawn();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (mock.completed() < 50 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run finished before it was killed";
  const int64_t done_first = mock.completed();
  const int64_t posts_first = mock.posts();
  const int64_t total = n * 3 + 1;
  ASSERT_LT(done_first, total);
  pid = spawn();
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  const int64_t resent = mock.posts() - posts_first;
  // Every request answered before the kill and written to the cache is not sent again; at most the
  // two in flight at the moment of the kill (answered but not yet stored) are.
  EXPECT_LE(resent, total - done_first + 2);
  EXPECT_GE(resent, total - done_first);
  auto r = OJ::parse(std::ifstream(dir / "out" / "results.json"));
  EXPECT_DOUBLE_EQ(r["results"]["bigtask"]["acc,none"].get<double>(), 0.5);  // favoured "예" right on odd items
  EXPECT_EQ(r["results"]["bigtask"]["n"], n);
  mock.stop();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kaival::eval
