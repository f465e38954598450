#pragma once
// The program file (`kaival.program/1`, YAML): the rules of a stage as data.
// Teams and models, targets, the calendar, scoring parts and weights, gates,
// the moving-target rule, advancement, tie-breaks, repechage entries and the
// specialized track. See docs/stage.md and schemas/program.schema.json.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kaival::stage {

// A calendar day (UTC). Ordering and month arithmetic are all the rules need.
struct Date {
  int year = 0, month = 0, day = 0;
  std::string str() const;
  auto operator<=>(const Date&) const = default;
  // The same day `months` earlier, clamped to the month's last day.
  Date minus_months(int months) const;
};
// Parses YYYY-MM-DD; throws FormatError naming `where`.
Date parse_date(const std::string& s, const std::string& where);

struct Bilingual {
  std::string ko, en;
  const std::string& get(const std::string& lang) const { return lang == "ko" && !ko.empty() ? ko : en; }
};

struct Ripple {
  double downloads = 0;
  double derivatives = 0;
};

struct ModelInfo {
  std::string id;
  Bilingual name;
  std::string organization;
  std::string license;
  std::string open_source_level;  // a key of the track's cost-share table, e.g. "weights+code+data"
  Date released;
  double params_billion = 0;
  bool foreign = false;
  Ripple ripple;
};

// Per-benchmark normalization: percent -> [0, 1] between a floor (chance) and a ceiling.
struct Normalization {
  double floor = 0, ceiling = 100;
  double apply(double percent) const;
};

struct BenchmarkRef {
  std::string task;
  std::string metric = "acc,none";  // key in results.json; per-item key is the part before ','
  double scale = 100;               // results.json value * scale = percent
  Normalization normalize;
  std::string sample_metric() const;
};

enum class SubScore { Absolute, RelativeToTarget };
enum class RelFormula { RatioOfMeans, MeanOfRatios };
const char* formula_name(RelFormula f);

struct Subpart {
  std::string id;
  Bilingual name;
  double weight = 0;
  SubScore score = SubScore::Absolute;
  RelFormula formula = RelFormula::RatioOfMeans;
  double full_at = 1.0;          // ratio that earns full points (relative_to_target)
  bool team_chosen = false;      // benchmarks come from each team's entry
  std::vector<BenchmarkRef> benchmarks;
};

enum class PartKind { Benchmarks, Expert, User, Index };
enum class UserScale { EloVsBest, Linear, RelativeToBest };

struct Part {
  std::string id;
  Bilingual name;
  double weight = 0;
  PartKind kind = PartKind::Benchmarks;
  std::vector<Subpart> subparts;        // Benchmarks
  UserScale user_scale = UserScale::EloVsBest;  // User
  double elo_scale = 400;
  std::string index;                    // Index: "frontier" or "diffusion"
};

struct Track {
  std::string id;
  Bilingual name;
  std::vector<Part> parts;
  std::map<std::string, double> cost_share;  // open-source level -> share of cost the team carries
};

enum class GateAction { Ineligible, Penalty };
struct Gate {
  std::string verdict;                      // "derived" or "partial"
  std::vector<std::string> component_kinds; // empty: any
  GateAction action = GateAction::Ineligible;
  double penalty_points = 0;
  std::string rule;                         // human text shown in reports
};

// One term of an index: a value on a 0..100(+) scale, weighted.
struct IndexTerm {
  std::string source;  // part:<id>, relative:<subpart id>, perf:<field>, ripple:downloads|derivatives
  double weight = 1;
  bool lower_is_better = false;
};
struct IndexDef {
  std::string id;
  Bilingual name;
  std::vector<IndexTerm> terms;
};

struct LineageRef {
  std::string report;  // path relative to the program file
  std::string label;   // the team model's label inside the report; empty: the first input
};

struct Entry {  // a team's participation in one stage
  std::string team;
  std::string model;   // defaults to the team's model
  std::string target;  // model id in the registry
  std::vector<BenchmarkRef> chosen;
  std::vector<LineageRef> lineage;
  std::string perf;    // path of a kaival.perf/1 file (summary, or `kaival perf --out` measurement)
  int perf_concurrency = 0;  // which run of a measurement (its concurrency); 0: the file's only run
  bool repechage = false;
};

struct Stage {
  std::string id;
  int number = 1;
  Bilingual name;
  Date date;
  std::string track;
  int advance = 0;
  std::vector<Entry> entries;
  std::map<std::string, std::string> evals;  // model id -> eval results directory
  std::string expert_scores, reviews, ratings, battles;  // paths ("" = absent)
  std::vector<std::string> tie_breaks;  // part:<id>, index:frontier|diffusion, benchmark:<subpart>
};

enum class MissingPolicy { Zero, Error };

struct Program {
  std::string path;   // as given
  std::string dir;    // folder relative paths resolve against
  std::string sha256;
  Bilingual title;
  std::vector<ModelInfo> models;
  struct Team {
    std::string id;
    Bilingual name;
    std::string model;
    std::string track;
  };
  std::vector<Team> teams;
  std::vector<Track> tracks;
  std::vector<Gate> gates;
  struct MovingTarget {
    int max_age_months = 6;
    int from_stage = 1;
  } moving_target;
  std::vector<Stage> stages;
  IndexDef frontier, diffusion;
  struct Bootstrap {
    int replicates = 1000;
    uint64_t seed = 20260115;
    double level = 0.95;
  } bootstrap;
  struct Sensitivity {
    double weight_delta = 2.0;  // points moved between parts
  } sensitivity;
  int precision = 1;  // decimals totals are compared at (as published)
  // Expected SHA-256 of input files (path relative to the program): a changed
  // artefact is an error, not a silently different decision.
  std::map<std::string, std::string> pins;
  MissingPolicy missing = MissingPolicy::Zero;

  const ModelInfo* model(const std::string& id) const;
  const Team* team(const std::string& id) const;
  const Track* track(const std::string& id) const;
  const Stage* stage(const std::string& id) const;  // "" = last stage
  std::string resolve(const std::string& rel) const;  // path relative to dir
};

// Loads and validates; errors name the file and the key path ("stages[0].entries[2].target").
Program load_program(const std::string& path);
Program parse_program(const std::string& yaml_text, const std::string& path, const std::string& dir);

}  // namespace kaival::stage
