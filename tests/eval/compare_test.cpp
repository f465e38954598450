// kaival compare on hand-made results whose ratios and test outcomes are
// worked out by hand below.
#include "eval/compare.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <gtest/gtest.h>

#include "core/error.h"

namespace kaival::eval {
namespace {

namespace fs = std::filesystem;
using OJ = nlohmann::ordered_json;

// Writes results.json + samples for `scores[task]` = per-item 0/1 values.
void write_run(const fs::path& dir, const std::string& model, const std::map<std::string, std::vector<int>>& scores) {
  fs::create_directories(dir);
  OJ res = OJ::object();
  for (const auto& [task, v] : scores) {
    double mean = 0;
    std::ofstream s(dir / ("samples_" + task + ".jsonl"));
    for (size_t i = 0; i < v.size(); ++i) {
      mean += v[i];
      s << OJ{{"task", task}, {"doc_id", std::to_string(i)}, {"metrics", {{"acc", double(v[i])}}}}.dump() << "\n";
    }
    res[task] = {{"acc,none", mean / double(v.size())}, {"acc_stderr,none", 0.1}, {"n", v.size()}, {"alias", task}};
  }
  OJ r = {{"schema", "kaival.eval-results/1"}, {"model", {{"id", model}}}, {"results", res}, {"groups", OJ::object()}};
  std::ofstream(dir / "results.json") << r.dump();
}

TEST(Compare, RatioOfMeansPerBenchmarkAndPairedTest) {
  auto dir = fs::temp_directory_path() / ("kaival_compare_" + std::to_string(getpid()));
  fs::remove_all(dir);
  // t1: team right on items 0-7 (0.8), target on 0-4 (0.5): three items differ, all in the team's favour.
  // t2: both right on the same six items (0.6).
  write_run(dir / "team", "team-a", {{"t1", {1, 1, 1, 1, 1, 1, 1, 1, 0, 0}}, {"t2", {1, 1, 1, 1, 1, 1, 0, 0, 0, 0}}});
  write_run(dir / "target", "target-x", {{"t1", {1, 1, 1, 1, 1, 0, 0, 0, 0, 0}}, {"t2", {1, 1, 1, 1, 1, 1, 0, 0, 0, 0}}});
  auto c = compare_results((dir / "team").string(), (dir / "target" / "results.json").string(), {});
  ASSERT_EQ(c["benchmarks"].size(), 2u);
  const auto& t1 = c["benchmarks"][0];
  const auto& t2 = c["benchmarks"][1];
  EXPECT_DOUBLE_EQ(t1["ratio"].get<double>(), 0.8 / 0.5);
  EXPECT_DOUBLE_EQ(t2["ratio"].get<double>(), 1.0);
  EXPECT_EQ(t1["matched"], 10);
  // Sign flips of three +1 differences: |mean| >= 0.3 only when all three agree: p = 2/8.
  EXPECT_NEAR(t1["p_value"].get<double>(), 0.25, 0.04);
  EXPECT_DOUBLE_EQ(t2["p_value"].get<double>(), 1.0);
  EXPECT_LE(t1["ci_low"].get<double>(), 1.6);
  EXPECT_GE(t1["ci_high"].get<double>(), 1.6);
  EXPECT_DOUBLE_EQ(t2["ci_low"].get<double>(), 1.0);  // identical items: every resample has ratio 1
  // Overall: mean(0.8, 0.6) / mean(0.5, 0.6) = 0.7 / 0.55.
  EXPECT_NEAR(c["overall"]["ratio"].get<double>(), 0.7 / 0.55, 1e-12);
  EXPECT_LE(c["overall"]["ci_low"].get<double>(), 0.7 / 0.55);
  EXPECT_FALSE(compare_table(c).empty());
  // A benchmark the target lacks is an error naming the file.
  CompareOptions o;
  o.tasks = {"t3"};
  EXPECT_THROW(compare_results((dir / "team").string(), (dir / "target").string(), o), FormatError);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace kaival::eval
