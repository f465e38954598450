// LLM-as-judge and multi-turn chat (eval/judge.h, eval/rubric.h) end to end:
// LogicKor's two turns against a mock model server, scored by a second mock
// server acting as the judge. Expected numbers come from the judge replies the
// test itself sets, not from kaival.
#include "eval/judge.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/runner.h"
#include "mock_server.h"
#include "store/sqlite.h"

namespace kaival::eval {
namespace {

namespace fs = std::filesystem;
using testing::MockServer;
using OJ = nlohmann::ordered_json;

const std::string kTasks = std::string(KAIVAL_SOURCE_DIR) + "/tasks/";
const std::string kData = std::string(KAIVAL_TESTDATA) + "/eval";

// A fresh directory under the system temp dir, removed at the end of the test.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("kaival_judge_" + tag + "_" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::vector<OJ> read_jsonl(const fs::path& path) {
  std::vector<OJ> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) out.push_back(OJ::parse(line));
  return out;
}

// The model under test: answers each LogicKor sample turn (testdata/eval/logickor). Turn-2 keys
// come first: a turn-2 request also holds the turn-1 question.
void model_answers(MockServer& m) {
  m.add_answer("그렇다면 가장 작은 사람은?", "민수입니다.");
  m.add_answer("그 문장을 영어로 옮겨 주세요.", "Autumn leaves fall softly.");
  m.add_answer("누가 가장 큰가?", "철수가 가장 큽니다.");
  m.add_answer("가을을 주제로 한 문장을 써 주세요.", "가을 낙엽이 조용히 떨어진다.");
}

// The judge: a score per answer it is shown (the rubric prints the answer under [평가할 답변]).
void judge_answers(MockServer& j, const std::string& turn2_item1, const std::string& turn2_item2) {
  j.add_answer("[평가할 답변]\n철수가 가장 큽니다.", "추론이 정확하다. [[8]]");
  j.add_answer("[평가할 답변]\n가을 낙엽이", "조건을 충족하지만 평범하다.\n점수: [[6]]");
  j.add_answer("[평가할 답변]\n민수입니다.", turn2_item1);
  j.add_answer("[평가할 답변]\nAutumn leaves", turn2_item2);
}

RunOptions options(const MockServer& model, const MockServer& judge, const fs::path& out) {
  RunOptions o;
  o.model_url = model.url();
  o.judge_url = judge.url();
  o.data.local_dir = kData;
  o.progress = false;
  o.client.concurrency = 4;
  o.client.backoff_initial_s = 0.01;
  o.out_dir = out.string();
  return o;
}

double metric(const OJ& r, const std::string& m) { return r.at("results").at("logickor").at(m + ",none").get<double>(); }

TEST(Judge, LogicKorTwoTurnsPerTurnAndOverallMeans) {
  MockServer model, judge;
  model_answers(model);
  judge_answers(judge, "두 번째 질문에 맞다. [[4]]", "영어로 옮기라는 요구에 맞다. [[2]]");
  model.start();
  judge.start();
  TempDir out("twoturn");
  auto r = run_eval({kTasks + "logickor.yaml"}, options(model, judge, out.path));
  EXPECT_DOUBLE_EQ(metric(r, "judge_turn1"), 7.0);  // (8 + 6) / 2
  EXPECT_DOUBLE_EQ(metric(r, "judge_turn2"), 3.0);  // (4 + 2) / 2
  EXPECT_DOUBLE_EQ(metric(r, "judge"), 5.0);        // items (8+4)/2 and (6+2)/2
  EXPECT_GT(r["results"]["logickor"]["judge_turn1_stderr,none"].get<double>(), 0.0);  // bootstrap over 8 and 6
  EXPECT_EQ(r["results"]["logickor"]["judge_failures"], 0);
  EXPECT_EQ(r["results"]["logickor"]["judge_model"], "mock-model");
  EXPECT_EQ(r["results"]["logickor"]["judge_rubric"], "logickor@1.0");
  EXPECT_EQ(r["results"]["logickor"]["n"], 2);
  // Turn 2 went to the model as a chat with its own first answer in the history.
  bool saw_history = false;
  for (const auto& p : model.served_prompts())
    if (p.find("누가 가장 큰가?") != std::string::npos && p.find("철수가 가장 큽니다.") != std::string::npos &&
        p.find("그렇다면 가장 작은 사람은?") != std::string::npos)
      saw_history = true;
  EXPECT_TRUE(saw_history);
  EXPECT_EQ(model.posts(), 4);  // 2 items x 2 turns
  EXPECT_EQ(judge.posts(), 4);  // one judge request per turn
  // The judge of turn 2 sees the reference and the earlier exchange.
  bool saw_context = false;
  for (const auto& p : judge.served_prompts())
    if (p.find("[앞선 대화]") != std::string::npos && p.find("민수입니다.") != std::string::npos &&
        p.find("[참고 답안]\n민수") != std::string::npos)
      saw_context = true;
  EXPECT_TRUE(saw_context);
  // Samples: per-turn answers, judge scores and rationales.
  auto samples = read_jsonl(out.path / "samples_logickor.jsonl");
  ASSERT_EQ(samples.size(), 2u);
  const auto& t = samples[0]["turns"];
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(samples[0]["doc_id"], "1");
  EXPECT_EQ(t[0]["answer"], "철수가 가장 큽니다.");
  EXPECT_EQ(t[0]["judge_score"], 8.0);
  EXPECT_EQ(t[0]["judge_rationale"], "추론이 정확하다. [[8]]");
  EXPECT_EQ(t[1]["answer"], "민수입니다.");
  EXPECT_EQ(t[1]["judge_score"], 4.0);
  EXPECT_EQ(samples[0]["metrics"]["judge"], 6.0);
  // Judge requests: temperature 0 and a fixed seed, in the run's cache.
  auto db = store::Db::open((out.path / "cache.sqlite").string());
  auto st = db.prepare("SELECT request FROM responses WHERE request LIKE '%[평가할 답변]%'");
  int judged = 0;
  while (st.step()) {
    auto req = nlohmann::json::parse(st.text(0));
    EXPECT_EQ(req["temperature"], 0);
    EXPECT_EQ(req["seed"], 1234);
    EXPECT_EQ(req["messages"][0]["role"], "system");
    ++judged;
  }
  EXPECT_EQ(judged, 4);
}

TEST(Judge, ResumeSendsNothingTwice) {
  MockServer model, judge;
  model_answers(model);
  judge_answers(judge, "[[4]]", "[[2]]");
  model.start();
  judge.start();
  TempDir out("resume");
  auto first = run_eval({kTasks + "logickor.yaml"}, options(model, judge, out.path));
  int64_t model_posts = model.posts(), judge_posts = judge.posts();
  ASSERT_EQ(model_posts, 4);
  ASSERT_EQ(judge_posts, 4);
  auto second = run_eval({kTasks + "logickor.yaml"}, options(model, judge, out.path));
  EXPECT_EQ(model.posts(), model_posts);  // zero requests: every turn and every verdict is cached
  EXPECT_EQ(judge.posts(), judge_posts);
  EXPECT_EQ(second["results"], first["results"]);
}

TEST(Judge, UnreadableRepliesAreMissingAndCounted) {
  MockServer model, judge;
  model_answers(model);
  // Turn 2: one score outside the 1-10 scale, one reply without a score.
  judge_answers(judge, "훌륭하다 [[11]]", "I cannot grade this.");
  model.start();
  judge.start();
  TempDir out("failures");
  auto r = run_eval({kTasks + "logickor.yaml"}, options(model, judge, out.path));
  const auto& res = r["results"]["logickor"];
  EXPECT_EQ(res["judge_failures"], 2);
  EXPECT_DOUBLE_EQ(metric(r, "judge_turn1"), 7.0);
  EXPECT_FALSE(res.contains("judge_turn2,none"));  // no score at all: no mean
  EXPECT_DOUBLE_EQ(metric(r, "judge"), 7.0);       // each item's scored turns only
  auto samples = read_jsonl(out.path / "samples_logickor.jsonl");
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_TRUE(samples[0]["turns"][1]["judge_score"].is_null());
  EXPECT_NE(samples[0]["turns"][1]["judge_error"].get<std::string>().find("outside the scale"), std::string::npos);
  EXPECT_NE(samples[1]["turns"][1]["judge_error"].get<std::string>().find("no score"), std::string::npos);
  EXPECT_TRUE(samples[1]["metrics"]["judge_turn2"].is_null());
}

TEST(Judge, WithoutAJudgeTheTurnsRunAndTheMetricIsSkippedWithAWarning) {
  MockServer model;
  model_answers(model);
  model.start();
  RunOptions o;
  o.model_url = model.url();
  o.data.local_dir = kData;
  o.progress = false;
  auto r = run_eval({kTasks + "logickor.yaml"}, o);
  const auto& res = r["results"]["logickor"];
  EXPECT_FALSE(res.contains("judge,none"));
  ASSERT_TRUE(res.contains("warnings"));
  EXPECT_NE(res["warnings"][0].get<std::string>().find("--judge"), std::string::npos);
  EXPECT_EQ(model.posts(), 4);
}

fs::path write(const fs::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
  return p;
}

TEST(Rubric, WeightedCriteriaAndTheirOwnScores) {
  TempDir dir("rubric");
  auto path = write(dir.path / "r.yaml", R"Y(schema: kaival.rubric/1
name: two
scale: {min: 0, max: 10}
criteria:
  - {name: correctness, description: right, weight: 2, anchors: {0: wrong, 10: right}}
  - {name: fluency, description: reads well}
prompt: "Q: {{ question }} A: {{ answer }} ({{ criteria | length }} criteria, {{ scale.min }}-{{ scale.max }}, anchor {{ criteria[0].anchors[1].score }})"
)Y");
  Rubric r = load_rubric(path.string());
  auto msgs = judge_messages(r, JudgeInput{"q?", "a!", "", {}, 1});
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_EQ(msgs[0]["content"], "Q: q? A: a! (2 criteria, 0-10, anchor 10)");
  auto v = parse_judge_reply(r, "[[correctness: 9]] ... [[fluency: 3]]");
  ASSERT_TRUE(v.score.has_value());
  EXPECT_DOUBLE_EQ(*v.score, (2 * 9 + 3) / 3.0);
  EXPECT_EQ(v.criteria["fluency"], 3.0);
  // The last score wins (a judge may quote the format first); one criterion missing: no score.
  EXPECT_DOUBLE_EQ(*parse_judge_reply(r, "[[correctness: 1]] [[correctness: 5]] [[fluency: 5]]").score, 5.0);
  auto missing = parse_judge_reply(r, "[[correctness: 9]]");
  EXPECT_FALSE(missing.score.has_value());
  EXPECT_NE(missing.error.find("fluency"), std::string::npos);
}

TEST(Rubric, BrokenCardsFailNamingTheProblem) {
  TempDir dir("rubric_bad");
  auto expect_error = [&](const std::string& text, const std::string& needle) {
    auto p = write(dir.path / "bad.yaml", text);
    try {
      load_rubric(p.string());
      ADD_FAILURE() << "loaded: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("bad.yaml"), std::string::npos) << e.what();
    }
  };
  expect_error("schema: kaival.rubric/2\nname: x\ncriteria: [{name: a}]\nprompt: p\n", "newer");
  expect_error("schema: kaival.rubric/1\nname: x\ncriteria: []\nprompt: p\n", "criteria");
  expect_error("schema: kaival.rubric/1\nname: x\ncriteria: [{name: a}]\n", "prompt");
  expect_error("schema: kaival.rubric/1\nname: x\ncriteria: [{name: a}]\nprompt: p\nextract: '(['\n", "regex");
  expect_error("schema: kaival.rubric/1\nname: x\ncriteria: [{name: a}]\nprompt: p\ngeneration: {temperature: 1}\n",
               "temperature");
  expect_error("schema: kaival.rubric/1\nname: x\ncriteria: [{name: a, anchors: {11: too high}}]\nprompt: p\n", "anchor");
}

}  // namespace
}  // namespace kaival::eval
