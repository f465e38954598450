// Import of lm-evaluation-harness task YAML (eval/lmeval_import.h): hand-written
// files in lm-eval's format under testdata/eval/lmeval, run against the mock
// server to the same scores as kaival's own cards for the same tasks.
#include "eval/lmeval_import.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/runner.h"
#include "eval/task.h"
#include "mock_server.h"

namespace kaival::eval {
namespace {

namespace fs = std::filesystem;
using testing::MockServer;
using OJ = nlohmann::ordered_json;

const std::string kTasks = std::string(KAIVAL_SOURCE_DIR) + "/tasks/";
const std::string kData = std::string(KAIVAL_TESTDATA) + "/eval";
const std::string kLmeval = kData + "/lmeval/";

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("kaival_lmeval_" + tag + "_" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

RunOptions options(const MockServer& m, const std::string& local_dir) {
  RunOptions o;
  o.model_url = m.url();
  o.data.local_dir = local_dir;
  o.progress = false;
  o.client.concurrency = 4;
  o.client.backoff_initial_s = 0.01;
  return o;
}

double metric(const OJ& r, const std::string& task, const std::string& m) {
  return r.at("results").at(task).at(m + ",none").get<double>();
}

bool has_warning(const std::vector<std::string>& w, const std::string& needle) {
  for (const auto& x : w)
    if (x.find(needle) != std::string::npos) return true;
  return false;
}

TEST(LmevalImport, KobestBoolqSendsTheNativeCardsRequestsAndScoresTheSame) {
  MockServer mock;
  mock.favour("예");
  mock.start();
  TempDir dir("boolq");
  RunOptions o = options(mock, kData);
  o.cache_path = (dir.path / "cache.sqlite").string();
  auto native = run_eval({kTasks + "kobest_boolq.yaml"}, o);
  int64_t sent = mock.posts();
  auto imported = run_eval({kLmeval + "kobest_boolq.yaml"}, o);  // detected: no schema, lm-eval keys
  EXPECT_EQ(mock.posts(), sent);  // the same prompts and continuations: all answered from the cache
  EXPECT_DOUBLE_EQ(metric(imported, "kobest_boolq", "acc"), metric(native, "kobest_boolq", "acc"));
  EXPECT_DOUBLE_EQ(metric(imported, "kobest_boolq", "acc"), 2.0 / 3.0);  // two of the three samples say 예
  const auto& w = imported["results"]["kobest_boolq"]["warnings"];
  ASSERT_TRUE(w.is_array());
  bool f1 = false;
  for (const auto& x : w) f1 = f1 || x.get<std::string>().find("metric 'f1' is not mapped") != std::string::npos;
  EXPECT_TRUE(f1) << w.dump();
  auto card = load_card(kLmeval + "kobest_boolq.yaml");
  EXPECT_EQ(card.group, "kobest");
  EXPECT_EQ(card.version, "1.0");
  EXPECT_EQ(card.eval_split, "test");
  EXPECT_EQ(card.splits.at("test").hf_repo, "skt/kobest_v1");
  // The Hub's Parquet conversion of the dataset, as the datasets library would read it.
  EXPECT_EQ(card.splits.at("test").hf_revision, "refs/convert/parquet");
  EXPECT_EQ(card.splits.at("test").hf_path, "boolq/test/0000.parquet");
  EXPECT_EQ(card.splits.at("test").format, "parquet");
}

TEST(LmevalImport, HellaswagChoicesFromAFieldAndTheValidationSplit) {
  MockServer mock;
  mock.favour("tea");
  mock.start();
  TempDir dir("hellaswag");
  // lm-eval evaluates hellaswag on validation (test_split: null): the sample under that split name.
  fs::create_directories(dir.path / "hellaswag");
  fs::copy_file(kData + "/hellaswag/test.parquet", dir.path / "hellaswag" / "validation.parquet");
  RunOptions o = options(mock, dir.path.string());
  o.cache_path = (dir.path / "cache.sqlite").string();
  auto imported = run_eval({kLmeval + "hellaswag.yaml"}, o);
  int64_t sent = mock.posts();
  RunOptions native_opt = options(mock, kData);
  native_opt.cache_path = o.cache_path;
  auto native = run_eval({kTasks + "hellaswag.yaml"}, native_opt);
  EXPECT_EQ(mock.posts(), sent);  // the native card's requests are exactly the imported ones
  EXPECT_DOUBLE_EQ(metric(imported, "hellaswag", "acc"), metric(native, "hellaswag", "acc"));
  EXPECT_DOUBLE_EQ(metric(imported, "hellaswag", "acc_norm"), metric(native, "hellaswag", "acc_norm"));
  EXPECT_EQ(imported["results"]["hellaswag"]["n"], 1);
  auto imp = import_lmeval_task(kLmeval + "hellaswag.yaml");
  EXPECT_EQ(imp.card["eval_split"], "validation");
  EXPECT_EQ(imp.card["choices"], "{{ endings | tojson }}");
  EXPECT_TRUE(has_warning(imp.warnings, "dataset_kwargs.trust_remote_code"));
}

TEST(LmevalImport, Gsm8kWithIncludeFiltersAndWarnings) {
  MockServer mock;
  mock.add_answer("Tom has 3 boxes", "3 * 4 = 12.\n#### 12");
  mock.add_answer("A shirt costs", "1200 - 200 = 900.\n#### 900");
  mock.start();
  auto native = run_eval({kTasks + "gsm8k.yaml"}, options(mock, kData));
  auto imported = run_eval({kLmeval + "gsm8k.yaml"}, options(mock, kData));
  EXPECT_DOUBLE_EQ(metric(native, "gsm8k", "exact_match"), 0.5);
  EXPECT_DOUBLE_EQ(metric(imported, "gsm8k", "exact_match"), 0.5);
  auto imp = import_lmeval_task(kLmeval + "gsm8k.yaml");
  const OJ& c = imp.card;
  EXPECT_EQ(c["request"], "generate_until");
  EXPECT_EQ(c["group"], "math_word_problems");  // from the included parent
  EXPECT_EQ(c["version"], "3.0");
  EXPECT_EQ(c["generation"]["stop"], OJ::array({"Question:", "\n\n"}));
  EXPECT_EQ(c["generation"]["temperature"], 0.0);
  EXPECT_EQ(c["fewshot"]["k"], 5);
  EXPECT_EQ(c["fewshot"]["split"], "train");
  EXPECT_EQ(c["filters"][0]["type"], "regex");
  EXPECT_EQ(c["filters"][0]["pattern"], "#### (\\-?[0-9\\.\\,]+)");
  EXPECT_EQ(c["filters"].back(), "lower");  // ignore_case
  EXPECT_TRUE(has_warning(imp.warnings, "my_custom_key is not an lm-eval key"));
  EXPECT_TRUE(has_warning(imp.warnings, "repeats"));
  EXPECT_TRUE(has_warning(imp.warnings, "regexes_to_ignore is not applied"));
  EXPECT_TRUE(has_warning(imp.warnings, "'flexible-extract' dropped"));
  // The few-shot example (train.parquet) is in the prompt, answered with its target.
  bool saw_shot = false;
  for (const auto& p : mock.served_prompts())
    if (p.find("Question: Ann has 2 pens") != std::string::npos && p.find("Answer: 5\n\nQuestion: Tom") != std::string::npos)
      saw_shot = true;
  EXPECT_TRUE(saw_shot);
}

TEST(LmevalImport, PythonFunctionsAreRefusedNamingFileAndFunction) {
  try {
    import_lmeval_task(kLmeval + "hellaswag_python.yaml");
    FAIL() << "imported a !function";
  } catch (const UnsupportedError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("hellaswag_python.yaml"), std::string::npos) << m;
    EXPECT_NE(m.find("process_docs"), std::string::npos) << m;
    EXPECT_NE(m.find("utils.process_docs"), std::string::npos) << m;
    EXPECT_NE(m.find("utils.py"), std::string::npos) << m;
  }
  EXPECT_THROW(load_card(kLmeval + "hellaswag_python.yaml"), UnsupportedError);
}

TEST(LmevalImport, IncludeCyclesAndMissingParentsFail) {
  TempDir dir("cycle");
  std::ofstream(dir.path / "a.yaml") << "include: b.yaml\ntask: a\n";
  std::ofstream(dir.path / "b.yaml") << "include: a.yaml\ndoc_to_text: x\n";
  std::ofstream(dir.path / "c.yaml") << "include: nowhere.yaml\ntask: c\n";
  EXPECT_THROW(import_lmeval_task((dir.path / "a.yaml").string()), FormatError);
  EXPECT_THROW(import_lmeval_task((dir.path / "c.yaml").string()), IoError);
}

TEST(LmevalImport, CommandWritesACardThatLoadsAndListsWarnings) {
  TempDir dir("cli");
  fs::path out = dir.path / "gsm8k_card.yaml", err = dir.path / "stderr.txt";
  std::string cmd = std::string(KAIVAL_BINARY) + " import-task " + kLmeval + "gsm8k.yaml " + out.string() + " 2> " +
                    err.string();
  int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 0);
  std::stringstream ss;
  ss << std::ifstream(err).rdbuf();
  EXPECT_NE(ss.str().find("warning: my_custom_key"), std::string::npos) << ss.str();
  TaskCard card = load_card(out.string());
  EXPECT_EQ(card.name, "gsm8k");
  EXPECT_EQ(card.fewshot.k, 5);
  EXPECT_TRUE(card.warnings.empty());  // a kaival card now
  // And it scores like the file it came from.
  MockServer mock;
  mock.add_answer("Tom has 3 boxes", "#### 12");
  mock.start();
  auto r = run_eval({out.string()}, options(mock, kData));
  EXPECT_DOUBLE_EQ(metric(r, "gsm8k", "exact_match"), 0.5);
}

}  // namespace
}  // namespace kaival::eval
