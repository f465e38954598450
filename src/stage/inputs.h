#pragma once
// Readers for the artefacts a stage consumes: eval results and per-item
// samples, expert scores and reviews, arena ratings and battles, perf runs and
// lineage reports. Every file read is recorded with its SHA-256 so each number
// in the stage result can name where it came from.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kaival::stage {

// A file that fed the result: path relative to the program folder, content hash.
struct FileRef {
  std::string path;
  std::string sha256;
  std::string kind;  // program, eval-results, samples, expert-scores, reviews, ratings, battles, perf, lineage
};

// Where a number came from: a file and a key inside it (task/metric, model, item).
struct Source {
  std::string file, sha256, key;
};

class InputSet {
 public:
  explicit InputSet(std::string base_dir) : base_(std::move(base_dir)) {}
  // Reads a whole file (bounded), records it once; throws IoError naming it.
  const std::string& read(const std::string& resolved_path, const std::string& kind);
  Source source(const std::string& resolved_path, const std::string& key) const;
  std::string relative(const std::string& resolved_path) const;
  const std::vector<FileRef>& files() const { return files_; }

 private:
  std::string base_;
  std::vector<FileRef> files_;
  std::map<std::string, std::pair<size_t, std::unique_ptr<std::string>>> cache_;
};

// Parses JSON; errors name the file.
nlohmann::json parse_json_file(InputSet& in, const std::string& path, const std::string& kind);

struct TaskScores {
  bool has_value = false;
  double value = 0;  // results.json value (fraction or as the harness wrote it)
  Source value_source;
  std::vector<std::string> ids;  // per-item doc ids, in file order
  std::vector<double> items;     // per-item metric
  Source items_source;
};

// One model's eval output folder (kaival.eval-results/1).
class EvalResults {
 public:
  EvalResults(InputSet& in, const std::string& dir);
  const std::string& model_id() const { return model_; }
  // Value of task/metric and its per-item records (if samples_<task>.jsonl exists).
  TaskScores task(const std::string& task, const std::string& metric, const std::string& sample_metric);

 private:
  InputSet& in_;
  std::string dir_, results_path_, model_;
  nlohmann::json results_;
};

struct ScoreWithCi {
  double value = 0, ci_low = 0, ci_high = 0;
  bool has_ci = false;
  Source source;
};

struct PanelScores {  // expert_scores.json or ratings.json
  std::map<std::string, ScoreWithCi> by_model;
  bool synthetic = false;
  std::string method;
};
PanelScores read_expert_scores(InputSet& in, const std::string& path);
PanelScores read_ratings(InputSet& in, const std::string& path);

struct Review {
  std::string model, reviewer, item;
  double score = 0;
};
std::vector<Review> read_reviews(InputSet& in, const std::string& path, Source* src);

struct Battle {
  std::string a, b;
  double score_a = 0.5;  // 1 a wins, 0 b wins, 0.5 tie
};
// Skips battles flagged quarantined and "both_bad" votes (no preference).
std::vector<Battle> read_battles(InputSet& in, const std::string& path, Source* src);

struct Perf {
  nlohmann::json data;
  Source source;
  bool synthetic = false;
  std::optional<double> field(const std::string& dotted) const;
};
// A summary file is read as it is; a `kaival perf --out` measurement is summarized from one of
// its runs (the one at `concurrency`; 0: the file must hold exactly one run) into the same keys.
Perf read_perf(InputSet& in, const std::string& path, int concurrency = 0);

struct LineageFinding {
  std::string other;    // the model it was compared with
  std::string verdict;  // independent / partial / derived
  double log10_p = 0;
  std::vector<std::pair<std::string, std::string>> derived_components;  // name, kind
  std::map<std::string, std::pair<int, int>> kinds;  // kind -> (derived, compared)
  Source source;
};
// Pairs of the report that involve `label` (empty: the report's first input).
std::vector<LineageFinding> read_lineage(InputSet& in, const std::string& path, const std::string& label);

}  // namespace kaival::stage
