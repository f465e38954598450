// Program-file validation and the edge cases of the rules: ties, missing
// results, ineligible teams, repechage entries, the moving target, the
// specialized track.
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/hash.h"
#include "stage/engine.h"
#include "stage/program.h"
#include "mini.h"
#include "../support/files.h"

using nlohmann::json;
using namespace kaival::stage;
using kaival::stage::testing::MiniProgram;
using kaival::stage::testing::MiniTeam;

namespace {

const std::string kProgram = std::string(KAIVAL_TESTDATA) + "/stage/first/program.yaml";

std::string fixture_text() { return kaival::testing_support::read_file(kProgram); }

std::string replace(std::string s, const std::string& from, const std::string& to) {
  auto p = s.find(from);
  EXPECT_NE(p, std::string::npos) << from;
  if (p != std::string::npos) s.replace(p, from.size(), to);
  return s;
}

// The error message of parsing `text` as if it were the fixture program.
std::string error_of(const std::string& text) {
  try {
    parse_program(text, "prog.yaml", ".");
  } catch (const kaival::FormatError& e) {
    return e.what();
  }
  return "";
}

const json& team(const StageResult& r, const std::string& id) {
  for (const auto& t : r.doc["teams"])
    if (t["team"] == id) return t;
  throw std::runtime_error("no team " + id);
}

}  // namespace

TEST(Program, LoadsTheFixture) {
  Program p = load_program(kProgram);
  EXPECT_EQ(p.teams.size(), 6u);
  EXPECT_EQ(p.stages.size(), 2u);
  ASSERT_NE(p.track("main"), nullptr);
  const auto& parts = p.track("main")->parts;
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].weight + parts[1].weight + parts[2].weight, 100);
  EXPECT_EQ(parts[0].subparts[2].team_chosen, true);
  EXPECT_EQ(p.model("gx-3")->released.str(), "2026-04-10");
  EXPECT_TRUE(p.stage("s2")->entries[3].repechage);
  EXPECT_EQ(p.gates.size(), 3u);
  EXPECT_EQ(p.track("main")->cost_share.at("weights+code+data"), 0.1);
}

TEST(Program, TargetReleasedTooEarlyNamesTeamAndModel) {
  // Stage 2 (2026-08-01) needs targets released on or after 2026-02-01.
  std::string text = replace(fixture_text(), "        target: gy-2\n        chosen: [{task: hle}, {task: ifbench}, {task: clicK}]\n        lineage: [{report: lineage/dul.json}]",
                             "        target: gz-3\n        chosen: [{task: hle}, {task: ifbench}, {task: clicK}]\n        lineage: [{report: lineage/dul.json}]");
  std::string e = error_of(text);
  EXPECT_NE(e.find("prog.yaml"), std::string::npos) << e;
  EXPECT_NE(e.find("stages[1].entries[1].target"), std::string::npos) << e;
  EXPECT_NE(e.find("team 'dul'"), std::string::npos) << e;
  EXPECT_NE(e.find("'gz-3'"), std::string::npos) << e;
  EXPECT_NE(e.find("2025-09-30"), std::string::npos) << e;
  EXPECT_NE(e.find("moving-target"), std::string::npos) << e;
  // The first stage is exempt in this program (from_stage: 2): gy-1 (2025-07-15) is fine there.
  EXPECT_EQ(error_of(fixture_text()), "");
  // From stage 1, gy-1 released exactly six months before 2026-01-15 is still allowed...
  std::string from1 = replace(fixture_text(), "from_stage: 2", "from_stage: 1");
  EXPECT_EQ(error_of(from1), "");
  // ...one day older is not.
  e = error_of(replace(from1, "released: 2025-07-15", "released: 2025-07-14"));
  EXPECT_NE(e.find("stages[0].entries[1].target"), std::string::npos) << e;
  EXPECT_NE(e.find("team 'dul' names target model 'gy-1' released 2025-07-14"), std::string::npos) << e;
}

TEST(Program, RepechageMustBeMarked) {
  std::string e = error_of(replace(fixture_text(), "        repechage: true\n", ""));
  EXPECT_NE(e.find("team 'yeoseot' was not in stage 's1' and is not marked repechage"), std::string::npos) << e;
}

TEST(Program, StrictKeysAndPaths) {
  std::string e = error_of(replace(fixture_text(), "advance: 3", "advnce: 3"));
  EXPECT_NE(e.find("stages[0].advnce: unknown key"), std::string::npos) << e;
  e = error_of(replace(fixture_text(), "weight: 20", "weight: 25"));
  EXPECT_NE(e.find("subpart weights add up to 45 but the part weighs 40"), std::string::npos) << e;
  e = error_of(replace(fixture_text(), "schema: kaival.program/1", "schema: kaival.program/2"));
  EXPECT_NE(e.find("newer"), std::string::npos) << e;
  e = error_of(replace(fixture_text(), "released: 2026-04-10", "released: 2026-13-10"));
  EXPECT_NE(e.find("models[9].released"), std::string::npos) << e;
  e = error_of(replace(fixture_text(), "{id: hana, name: {ko: 팀 하나, en: Team Hana}, model: hana-llm}",
                       "{id: hana, name: {ko: 팀 하나, en: Team Hana}, model: nope}"));
  EXPECT_NE(e.find("teams[0].model: model 'nope' is not in the model registry"), std::string::npos) << e;
  e = error_of(replace(fixture_text(), "action: ineligible\n    rule: trained", "action: expel\n    rule: trained"));
  EXPECT_NE(e.find("gates[0].action: 'expel' is not one of"), std::string::npos) << e;
  e = error_of("schema: kaival.program/1\nmodels: [");
  EXPECT_NE(e.find("not valid YAML"), std::string::npos) << e;
  e = error_of("- just a list");
  EXPECT_NE(e.find("top level"), std::string::npos) << e;
  EXPECT_THROW(load_program("/nonexistent/program.yaml"), kaival::IoError);
}

TEST(Rules, TieBrokenByExpertPart) {
  MiniProgram m("tie");
  // Both total 77.0: A = 24 + 10 + 28 + 15; B = 22.5 + 10 + 29.5 + 15.
  std::vector<MiniTeam> t = {{"a", 0.8, 0.7, 80, 60}, {"b", 0.75, 0.7, 100 * 29.5 / 35, 60}, {"c", 0.5, 0.6, 50, 40}};
  auto r = run(load_program(m.build(t, 1)));
  EXPECT_DOUBLE_EQ(team(r, "a")["total_published"].get<double>(), 77.0);
  EXPECT_DOUBLE_EQ(team(r, "b")["total_published"].get<double>(), 77.0);
  EXPECT_EQ(team(r, "b")["rank"], 1);
  EXPECT_EQ(team(r, "b")["decision"], "advance");
  EXPECT_EQ(team(r, "a")["rank"], 2);
  EXPECT_EQ(team(r, "a")["decision"], "eliminate");
  EXPECT_FALSE(team(r, "a")["tie_at_cut"].get<bool>());
}

TEST(Rules, UnresolvedTieAtTheCutAdvancesBoth) {
  MiniProgram m("tie2");
  std::vector<MiniTeam> t = {{"a", 0.8, 0.7, 80, 60}, {"b", 0.8, 0.7, 80, 60}, {"c", 0.5, 0.6, 50, 40}};
  auto r = run(load_program(m.build(t, 1)));
  EXPECT_EQ(team(r, "a")["rank"], 1);
  EXPECT_EQ(team(r, "b")["rank"], 1);
  EXPECT_EQ(team(r, "a")["decision"], "advance");
  EXPECT_EQ(team(r, "b")["decision"], "advance");
  EXPECT_TRUE(team(r, "b")["tie_at_cut"].get<bool>());
  EXPECT_EQ(team(r, "c")["rank"], 3);
}

TEST(Rules, MissingResultScoresZeroWithAWarningOrFails) {
  MiniProgram m("missing");
  std::vector<MiniTeam> t = {{"a", 0.8, 0.7, 80, 60}, {"b", 0.8, 0.7, 80, 60}};
  t[1].has_common = false;
  auto r = run(load_program(m.build(t, 1)));
  const json& b = team(r, "b");
  EXPECT_DOUBLE_EQ(b["parts"][0]["subparts"][0]["points"].get<double>(), 0.0);
  EXPECT_TRUE(b["parts"][0]["subparts"][0]["benchmarks"][0]["missing"].get<bool>());
  EXPECT_DOUBLE_EQ(b["total"].get<double>(), 24 + 10 + 28 + 15 - 24);
  ASSERT_FALSE(r.warnings.empty());
  EXPECT_NE(r.warnings[0].find("team 'b': model 'b-m' has no result for x"), std::string::npos) << r.warnings[0];
  // missing_results: error makes it a hard failure naming team and task.
  MiniProgram m2("missing2");
  try {
    run(load_program(m2.build(t, 1, 0.7, "", "missing_results: error\n")));
    FAIL() << "expected an error";
  } catch (const kaival::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("team 'b': model 'b-m' has no result for x"), std::string::npos) << e.what();
  }
}

TEST(Rules, DerivedLineageMakesATeamIneligible) {
  MiniProgram m("derived");
  // A real lineage report: finetune-a continued training of base-a.
  std::ifstream f(std::string(KAIVAL_TESTDATA) + "/stage/first/lineage/derived.json");
  std::ostringstream s;
  s << f.rdbuf();
  m.write("derived.json", s.str());
  std::vector<MiniTeam> t = {{"a", 0.9, 0.9, 95, 90}, {"b", 0.7, 0.7, 70, 60}, {"c", 0.6, 0.6, 60, 50}};
  t[0].lineage = "derived.json";
  std::string gates = "gates:\n  - {verdict: derived, action: ineligible, rule: fine-tuned foreign model}\n";
  auto r = run(load_program(m.build(t, 1, 0.7, "", gates)));
  EXPECT_EQ(team(r, "a")["decision"], "ineligible");
  EXPECT_EQ(team(r, "a")["rank"], 0);
  EXPECT_EQ(team(r, "a")["gates"][0]["verdict"], "derived");
  EXPECT_EQ(team(r, "b")["decision"], "advance");  // the best eligible team takes the place
  EXPECT_EQ(r.doc["ranking"].back(), "a");
  // No lineage report while gates exist: a warning, not a silent pass.
  bool warned = false;
  for (const auto& w : r.warnings) warned |= w.find("team 'b': no lineage report") != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST(Rules, TargetScoredRelativeAndCapped) {
  MiniProgram m("ratio");
  std::vector<MiniTeam> t = {{"a", 0.8, 0.77, 80, 60}, {"b", 0.8, 0.63, 80, 60}};
  auto r = run(load_program(m.build(t, 1, 0.70)));
  const json& a = team(r, "a")["parts"][0]["subparts"][1];
  EXPECT_NEAR(a["ratio_of_means"].get<double>(), 1.1, 1e-12);
  EXPECT_DOUBLE_EQ(a["points"].get<double>(), 10.0);  // capped at full points
  EXPECT_NEAR(team(r, "b")["parts"][0]["subparts"][1]["points"].get<double>(), 9.0, 1e-12);
}

TEST(Rules, SpecializedTrackWeightsAndCostShare) {
  MiniProgram m("special");
  std::vector<MiniTeam> t = {{"a", 0.8, 0.7, 80, 60}, {"b", 0.6, 0.35, 70, 30}};
  std::string prog = m.build(t, 1);
  std::ifstream f(prog);
  std::ostringstream s;
  s << f.rdbuf();
  std::string y = s.str();
  // Replace the track: technology/experience 30 (experts), goals 30 (vs target), market/ripple 40 (diffusion index).
  auto a = y.find("tracks:"), b = y.find("teams:");
  y.replace(a, b - a, R"(tracks:
  - id: special
    name: {ko: 특화 모델, en: Specialized model}
    parts:
      - {id: technology, weight: 30, kind: expert}
      - id: goals
        weight: 30
        kind: benchmarks
        subparts: [{id: goal, weight: 30, score: relative_to_target, formula: mean_of_ratios, full_at: 0.95, benchmarks: team}]
      - {id: market, weight: 40, kind: index, index: diffusion}
    cost_share: {weights+code+data: 0.1, weights: 0.25}
indices:
  diffusion:
    terms:
      - {source: "ripple:downloads", weight: 1}
)");
  y = replace(y, "    date: 2026-01-15\n", "    date: 2026-01-15\n    track: special\n");
  y = replace(y, "\nteams:\n  - {id: a, model: a-m}\n  - {id: b, model: b-m}", "\nteams:\n  - {id: a, model: a-m, track: special}\n  - {id: b, model: b-m, track: special}");
  y = replace(y, "{id: a-m, released: 2025-12-01, open_source_level: weights}", "{id: a-m, released: 2025-12-01, open_source_level: weights+code+data, ripple: {downloads: 1000}}");
  y = replace(y, "{id: b-m, released: 2025-12-01, open_source_level: weights}", "{id: b-m, released: 2025-12-01, open_source_level: weights, ripple: {downloads: 31}}");
  y = replace(y, "    ratings: ratings.json\n", "");
  y = replace(y, "tie_breaks: [\"part:expert\"]", "tie_breaks: [\"part:technology\"]");
  m.write("program.yaml", y);
  auto r = run(load_program(prog));
  const json& ta = team(r, "a");
  EXPECT_DOUBLE_EQ(ta["cost_share"].get<double>(), 0.1);
  EXPECT_DOUBLE_EQ(team(r, "b")["cost_share"].get<double>(), 0.25);
  EXPECT_NEAR(ta["parts"][0]["points"].get<double>(), 30 * 0.8, 1e-12);
  EXPECT_NEAR(ta["parts"][1]["points"].get<double>(), 30.0, 1e-12);              // 1.0 >= 0.95: full
  EXPECT_NEAR(team(r, "b")["parts"][1]["points"].get<double>(), 30 * 0.5 / 0.95, 1e-12);
  EXPECT_NEAR(ta["parts"][2]["points"].get<double>(), 40.0, 1e-12);              // best downloads
  EXPECT_NEAR(team(r, "b")["parts"][2]["points"].get<double>(), 40 * std::log1p(31) / std::log1p(1000), 1e-9);
  EXPECT_EQ(r.doc["stage"]["track"], "special");
}

TEST(Rules, BadInputFilesNameTheFile) {
  MiniProgram m("bad");
  std::vector<MiniTeam> t = {{"a"}, {"b"}};
  std::string prog = m.build(t, 1);
  m.write("expert.json", "{\"models\": [{\"model\": \"a-m\", \"score\": \"high\"}]}");
  try {
    run(load_program(prog));
    FAIL();
  } catch (const kaival::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("expert.json: models[0].score: expected a number"), std::string::npos) << e.what();
  }
  m.write("expert.json", "{not json");
  EXPECT_THROW(run(load_program(prog)), kaival::FormatError);
  std::filesystem::remove(std::filesystem::path(m.dir()) / "expert.json");
  EXPECT_THROW(run(load_program(prog)), kaival::IoError);
}

TEST(Rules, PinnedInputHashes) {
  MiniProgram m("pins");
  std::vector<MiniTeam> t = {{"a"}, {"b", 0.7}};
  m.build(t, 1);  // writes the inputs so their hash is known
  std::string sha = kaival::sha256_file(m.dir() + "/expert.json");
  std::string prog = m.build(t, 1, 0.7, "", "pins: {expert.json: " + sha + "}\n");
  auto r = run(load_program(prog));
  EXPECT_EQ(team(r, "a")["decision"], "advance");
  m.write("expert.json", "{\"models\": [{\"model\": \"a-m\", \"score\": 10}, {\"model\": \"b-m\", \"score\": 99}]}");
  try {
    run(load_program(prog));
    FAIL() << "a changed pinned file must be an error";
  } catch (const kaival::FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("expert.json: sha256 is"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("pins " + sha), std::string::npos) << e.what();
  }
  std::string e = error_of(replace(fixture_text(), "precision: 1", "precision: 1\npins: {x.json: abc}"));
  EXPECT_NE(e.find("pins.x.json: expected a lowercase hex SHA-256"), std::string::npos) << e;
}
