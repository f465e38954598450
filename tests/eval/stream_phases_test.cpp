// Streaming for the tasks that have later phases: multi-turn chat and LLM-as-judge
// (eval/judge.h) run their follow-up turns and the judge per window of rows, so a
// run holds at most two windows (the one scored and the one read ahead), scores
// exactly as a run that takes every row in one window, and resumes from the
// response cache after being cut mid-window. Also: the read-ahead itself (same
// results with and without it, one window without it).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/runner.h"
#include "mock_server.h"
#include "../support/files.h"

namespace kaival::eval {
namespace {

namespace fs = std::filesystem;
using testing::MockFaults;
using testing::MockServer;
using OJ = nlohmann::ordered_json;

using kaival::testing_support::read_file;

size_t lines(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  size_t n = 0;
  std::string l;
  while (std::getline(f, l)) n += !l.empty();
  return n;
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("kaival_phases_" + tag + "_" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

// Row i: turn 1 asks about an even, odd or (every tenth, from 3) "weird" item; turn 2 follows up.
std::string kind(size_t i) { return i % 10 == 3 ? "weird" : i % 2 ? "odd" : "even"; }

void write_rows(const fs::path& dir, size_t rows) {
  std::ofstream d(dir / "rows.jsonl", std::ios::binary);
  for (size_t i = 0; i < rows; ++i)
    d << OJ{{"id", "r" + std::to_string(i)},
            {"q1", "item " + std::to_string(i) + " kind " + kind(i)},
            {"q2", "follow up on item " + std::to_string(i)},
            {"a", kind(i) == "even" ? "yes answer" : "no answer"}}
             .dump()
      << '\n';
}

// Two turns, judged with the LogicKor rubric (turn 1 against the row's answer as reference).
std::string judged_card(const fs::path& dir) {
  std::ofstream c(dir / "judged.yaml", std::ios::binary);
  c << "schema: kaival.task/1\nname: phases_judged\nversion: \"1.0\"\n"
       "splits:\n  test: {path: rows.jsonl, format: jsonl}\n"
       "request: generate_until\nchat: true\ndoc_id: \"{{ id }}\"\nprompt: \"{{ q1 }}\"\n"
       "turns: [\"{{ q2 }}\"]\ngeneration: {max_tokens: 8}\nmetrics: [judge]\n"
       "judge:\n  rubric: " << KAIVAL_SOURCE_DIR << "/tasks/rubrics/logickor.yaml\n"
       "  references: [\"{{ a }}\", \"\"]\n";
  return (dir / "judged.yaml").string();
}

// Two turns, not judged: exact match on the first turn's answer.
std::string multiturn_card(const fs::path& dir) {
  std::ofstream c(dir / "multiturn.yaml", std::ios::binary);
  c << "schema: kaival.task/1\nname: phases_multiturn\nversion: \"1.0\"\n"
       "splits:\n  test: {path: rows.jsonl, format: jsonl}\n"
       "request: generate_until\nchat: true\ndoc_id: \"{{ id }}\"\nprompt: \"{{ q1 }}\"\n"
       "turns: [\"{{ q2 }}\"]\ntarget: \"{{ a }}\"\ngeneration: {max_tokens: 8}\nmetrics: [exact_match]\n";
  return (dir / "multiturn.yaml").string();
}

// The model: turn-2 requests (they also hold turn 1) first.
void model_answers(MockServer& m) {
  m.add_answer("follow up on item", "second reply");
  m.add_answer("kind even", "yes answer");
  m.add_answer("kind odd", "no answer");
  m.add_answer("kind weird", "weird answer");
}

// The judge: a verdict per answer shown; "weird answer" gets no readable score (a judge failure).
void judge_answers(MockServer& j) {
  j.add_answer("[평가할 답변]\nsecond reply", "이어진 질문에 맞다. [[5]]");
  j.add_answer("[평가할 답변]\nyes answer", "정확하다. [[8]]");
  j.add_answer("[평가할 답변]\nno answer", "틀렸다. [[2]]");
}

RunOptions options(const MockServer& model, const MockServer* judge, const fs::path& out, size_t window,
                   RunStats* stats) {
  RunOptions o;
  o.model_url = model.url();
  if (judge) o.judge_url = judge->url();
  o.progress = false;
  o.client.concurrency = 2;
  o.client.max_retries = 0;
  o.client.backoff_initial_s = 0.001;
  o.out_dir = out.string();
  o.window = window;
  o.stats = stats;
  o.bootstrap = 100;
  return o;
}

class Phases : public ::testing::TestWithParam<bool> {};  // judged or multi-turn only

TEST_P(Phases, StreamedInWindowsScoresAsOneWindow) {
  constexpr size_t kRows = 50, kWindow = 8;
  const bool judged = GetParam();
  TempDir tmp(judged ? "judged" : "multiturn");
  write_rows(tmp.path, kRows);
  const std::string card = judged ? judged_card(tmp.path) : multiturn_card(tmp.path);
  const std::string task = judged ? "phases_judged" : "phases_multiturn";
  MockServer model, judge;
  model_answers(model);
  judge_answers(judge);
  model.start();
  judge.start();
  const MockServer* j = judged ? &judge : nullptr;

  RunStats whole;
  auto ref = run_eval({card}, options(model, j, tmp.path / "whole", kRows + 1, &whole));
  EXPECT_EQ(whole.max_items_held, kRows);  // the counter does see a whole-dataset window
  EXPECT_EQ(model.completed(), int64_t(2 * kRows));
  EXPECT_EQ(judge.completed(), judged ? int64_t(2 * kRows) : 0);

  RunStats streamed;
  auto a = run_eval({card}, options(model, j, tmp.path / "a", kWindow, &streamed));
  EXPECT_LE(streamed.max_items_held, 2 * kWindow);  // this window and the one read ahead
  EXPECT_LE(streamed.max_requests_held, 2 * kWindow);
  EXPECT_EQ(streamed.chunks, (kRows + kWindow - 1) / kWindow);
  EXPECT_GE(streamed.prefetched, 1u);

  RunStats one;
  RunOptions no_prefetch = options(model, j, tmp.path / "b", kWindow, &one);
  no_prefetch.prefetch = false;
  auto b = run_eval({card}, no_prefetch);
  EXPECT_LE(one.max_items_held, kWindow);
  EXPECT_EQ(one.prefetched, 0u);

  const auto& res = a["results"][task];
  EXPECT_EQ(res["n"].get<size_t>(), kRows);
  if (judged) {
    size_t weird = 0;
    for (size_t i = 0; i < kRows; ++i) weird += kind(i) == "weird";
    EXPECT_EQ(res["judge_failures"].get<size_t>(), weird);  // summed over the windows
    EXPECT_EQ(res["judge_model"], "mock-model");
    EXPECT_DOUBLE_EQ(res["judge_turn2,none"].get<double>(), 5.0);
  } else {
    EXPECT_GT(res["exact_match,none"].get<double>(), 0.0);
  }
  EXPECT_EQ(a["results"].dump(), ref["results"].dump());
  EXPECT_EQ(b["results"].dump(), ref["results"].dump());
  const std::string samples = "samples_" + task + ".jsonl";
  EXPECT_EQ(read_file(tmp.path / "a" / samples), read_file(tmp.path / "whole" / samples));
  EXPECT_EQ(read_file(tmp.path / "b" / samples), read_file(tmp.path / "whole" / samples));
  EXPECT_EQ(lines(tmp.path / "a" / samples), kRows);
  // Each later-phase request went out once per run: 2 turns (and 2 verdicts) per row.
  EXPECT_EQ(model.completed(), int64_t(3 * 2 * kRows));
  EXPECT_EQ(judge.completed(), judged ? int64_t(3 * 2 * kRows) : 0);
}

INSTANTIATE_TEST_SUITE_P(Stream, Phases, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "Judged" : "MultiTurn"; });

TEST(StreamPhases, JudgedRunCutMidWindowResumesWithoutResending) {
  constexpr size_t kRows = 40, kWindow = 8;
  TempDir tmp("resume");
  write_rows(tmp.path, kRows);
  const std::string card = judged_card(tmp.path);
  MockFaults slow;
  slow.latency_ms = 3;
  MockServer model(slow), judge;
  model_answers(model);
  judge_answers(judge);
  model.start();
  judge.start();

  auto ref = run_eval({card}, options(model, &judge, tmp.path / "ref", kWindow, nullptr));
  const int64_t m0 = model.completed(), j0 = judge.completed();
  ASSERT_EQ(m0, int64_t(2 * kRows));

  // Cut the run once 20 model answers are in: inside the second window's first turn (8 + 8 per
  // window), while the third window is being read ahead. Every later model request gets a 500.
  std::atomic<bool> done{false};
  std::thread cutter([&] {
    while (!done.load() && model.completed() - m0 < 20) std::this_thread::sleep_for(std::chrono::microseconds(200));
    MockFaults broken = slow;
    broken.error500_first = 1 << 30;
    model.set_faults(broken);
  });
  EXPECT_THROW(run_eval({card}, options(model, &judge, tmp.path / "a", kWindow, nullptr)), Error);
  done = true;
  cutter.join();
  const int64_t first_model = model.completed() - m0, first_judge = judge.completed() - j0;
  EXPECT_GE(first_model, 20);
  EXPECT_LT(first_model, int64_t(2 * kRows)) << "the run was not cut";
  EXPECT_LT(lines(tmp.path / "a" / "samples_phases_judged.jsonl"), kRows);

  model.set_faults(slow);
  const int64_t m1 = model.completed(), j1 = judge.completed();
  auto resumed = run_eval({card}, options(model, &judge, tmp.path / "a", kWindow, nullptr));
  // No answered request is sent again: the two runs together sent each request once.
  EXPECT_EQ(first_model + (model.completed() - m1), int64_t(2 * kRows));
  EXPECT_EQ(first_judge + (judge.completed() - j1), int64_t(2 * kRows));
  EXPECT_EQ(resumed["results"].dump(), ref["results"].dump());
  EXPECT_EQ(read_file(tmp.path / "a" / "samples_phases_judged.jsonl"), read_file(tmp.path / "ref" / "samples_phases_judged.jsonl"));
}

}  // namespace
}  // namespace kaival::eval
