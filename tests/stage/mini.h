#pragma once
// A small program written to a temporary folder, for the edge cases (ties,
// missing results, gates, repechage, the specialized track). Values are set
// per test; results.json carries values only (no per-item samples).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace kaival::stage::testing {

struct MiniTeam {
  std::string id;
  double common = 0.8;   // accuracy on the common benchmark "x"
  double chosen = 0.7;   // accuracy on the team-chosen benchmark "y"
  double expert = 80;    // 0..100
  double user = 60;      // linear scale, 0..100
  std::string target = "t";
  bool has_common = true;
  std::string lineage;   // path of a lineage report, or ""
};

class MiniProgram {
 public:
  explicit MiniProgram(const std::string& name) {
    dir_ = std::filesystem::temp_directory_path() / fmt::format("kaival_stage_{}_{}", name, ::getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~MiniProgram() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string dir() const { return dir_.string(); }

  void write(const std::string& rel, const std::string& text) const {
    auto p = dir_ / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
  }

  // Writes program.yaml and the inputs; `extra` is appended inside the stage.
  std::string build(const std::vector<MiniTeam>& teams, int advance, double target_chosen = 0.7,
                    const std::string& stage_extra = "", const std::string& top_extra = "",
                    const std::string& target_released = "2025-10-01") const {
    std::string models, team_list, entries, evals;
    nlohmann::json expert = {{"schema", "kaival.expert-scores/1"}, {"models", nlohmann::json::array()}};
    nlohmann::json ratings = {{"schema", "kaival.arena-ratings/1"}, {"models", nlohmann::json::array()}};
    for (const auto& t : teams) {
      models += fmt::format("  - {{id: {}-m, released: 2025-12-01, open_source_level: weights}}\n", t.id);
      team_list += fmt::format("  - {{id: {}, model: {}-m}}\n", t.id, t.id);
      entries += fmt::format("      - team: {}\n        target: {}\n        chosen: [{{task: y}}]\n", t.id, t.target);
      if (!t.lineage.empty()) entries += fmt::format("        lineage: [{{report: {}}}]\n", t.lineage);
      evals += fmt::format("      {}-m: eval/{}\n", t.id, t.id);
      nlohmann::json res = {{"schema", "kaival.eval-results/1"}, {"model", {{"id", t.id + "-m"}}}, {"results", nlohmann::json::object()}};
      if (t.has_common) res["results"]["x"] = {{"acc,none", t.common}};
      res["results"]["y"] = {{"acc,none", t.chosen}};
      write("eval/" + t.id + "/results.json", res.dump());
      expert["models"].push_back({{"model", t.id + "-m"}, {"score", t.expert}});
      ratings["models"].push_back({{"model", t.id + "-m"}, {"rating", t.user}});
    }
    write("eval/t/results.json", nlohmann::json{{"schema", "kaival.eval-results/1"},
                                                {"results", {{"y", {{"acc,none", target_chosen}}}}}}.dump());
    write("expert.json", expert.dump());
    write("ratings.json", ratings.dump());
    std::string yaml = fmt::format(R"(schema: kaival.program/1
title: mini
models:
{}  - {{id: t, released: {}, foreign: true}}
tracks:
  - id: main
    parts:
      - id: benchmark
        weight: 40
        kind: benchmarks
        subparts:
          - {{id: common, weight: 30, benchmarks: [{{task: x}}]}}
          - {{id: chosen, weight: 10, score: relative_to_target, benchmarks: team}}
      - {{id: expert, weight: 35, kind: expert}}
      - {{id: user, weight: 25, kind: user, scale: linear}}
teams:
{}{}
bootstrap: {{replicates: 0}}
stages:
  - id: s1
    date: 2026-01-15
    advance: {}
    tie_breaks: ["part:expert"]
    expert_scores: expert.json
    ratings: ratings.json
    evals:
{}      t: eval/t
{}    entries:
{})",
                                   models, target_released, team_list, top_extra, advance, evals, stage_extra, entries);
    write("program.yaml", yaml);
    return (dir_ / "program.yaml").string();
  }

 private:
  std::filesystem::path dir_;
};

}  // namespace kaival::stage::testing
