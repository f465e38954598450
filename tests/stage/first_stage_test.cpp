// The stage engine on the fixture shaped after the published K-AI first-stage
// figures, checked against (a) the published numbers themselves and (b) an
// independent Python computation (testdata/stage/make_fixture.py ->
// testdata/stage/first/expected.json).
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/hash.h"
#include "stage/engine.h"
#include "stage/program.h"

using nlohmann::json;
using namespace kaival::stage;

namespace {

const std::string kDir = std::string(KAIVAL_TESTDATA) + "/stage/first";

json expected() {
  std::ifstream f(kDir + "/expected.json");
  return json::parse(f);
}

// One run per stage, shared by the tests (the bootstrap is the slow part).
const StageResult& result(const std::string& stage) {
  static std::map<std::string, StageResult> cache;
  auto it = cache.find(stage);
  if (it == cache.end()) {
    Program p = load_program(kDir + "/program.yaml");
    RunOptions o;
    o.stage = stage;
    o.replicates = 200;
    it = cache.emplace(stage, run(p, o)).first;
  }
  return it->second;
}

const json& team(const std::string& stage, const std::string& id) {
  for (const auto& t : result(stage).doc["teams"])
    if (t["team"] == id) return t;
  throw std::runtime_error("no team " + id);
}

double part(const json& t, const std::string& id) {
  for (const auto& p : t["parts"])
    if (p["id"] == id) return p["points"];
  return NAN;
}

const json& subpart(const json& t, const std::string& id) {
  for (const auto& p : t["parts"])
    if (p.contains("subparts"))
      for (const auto& s : p["subparts"])
        if (s["id"] == id) return s;
  throw std::runtime_error("no subpart " + id);
}

double r1(double v) { return std::round(v * 10) / 10; }
double r2(double v) { return std::round(v * 100) / 100; }

}  // namespace

TEST(FirstStage, ReproducesPublishedTopTeamFigures) {
  const json& hana = team("s1", "hana");
  // Published: benchmark 33.6 + expert 31.6 + user 25.0 = 90.2.
  EXPECT_DOUBLE_EQ(r1(part(hana, "benchmark")), 33.6);
  EXPECT_DOUBLE_EQ(r1(part(hana, "expert")), 31.6);
  EXPECT_DOUBLE_EQ(r1(part(hana, "user")), 25.0);
  EXPECT_DOUBLE_EQ(hana["total_published"].get<double>(), 90.2);
  // Published: averages 72.03 against 69.37 give 103.8%.
  const json& chosen = subpart(hana, "team_chosen");
  EXPECT_DOUBLE_EQ(r2(chosen["team_mean"].get<double>()), 72.03);
  EXPECT_DOUBLE_EQ(r2(chosen["target_mean"].get<double>()), 69.37);
  EXPECT_DOUBLE_EQ(r1(100 * chosen["ratio_of_means"].get<double>()), 103.8);
  EXPECT_EQ(chosen["formula"], "ratio_of_means");
  // Published cohort average 79.7.
  EXPECT_DOUBLE_EQ(r1(result("s1").doc["average_total"].get<double>()), 79.7);
  EXPECT_EQ(hana["rank"], 1);
  EXPECT_EQ(hana["decision"], "advance");
}

TEST(FirstStage, MatchesIndependentReferenceForEveryTeam) {
  json ex = expected();
  for (const char* stage : {"s1", "s2"}) {
    for (auto it = ex[stage].begin(); it != ex[stage].end(); ++it) {
      SCOPED_TRACE(std::string(stage) + " " + it.key());
      const json& e = it.value();
      const json& t = team(stage, it.key());
      EXPECT_NEAR(part(t, "benchmark"), e["benchmark"].get<double>(), 1e-9);
      EXPECT_NEAR(part(t, "expert"), e["expert"].get<double>(), 1e-9);
      EXPECT_NEAR(part(t, "user"), e["user"].get<double>(), 1e-6);
      EXPECT_NEAR(subpart(t, "korean")["points"].get<double>(), e["korean"].get<double>(), 1e-9);
      EXPECT_NEAR(subpart(t, "global")["points"].get<double>(), e["global"].get<double>(), 1e-9);
      EXPECT_NEAR(subpart(t, "team_chosen")["ratio_of_means"].get<double>(), e["ratio_of_means"].get<double>(), 1e-9);
      EXPECT_NEAR(subpart(t, "team_chosen")["mean_of_ratios"].get<double>(), e["mean_of_ratios"].get<double>(), 1e-9);
      EXPECT_NEAR(t["penalty"].get<double>(), e["penalty"].get<double>(), 1e-12);
      EXPECT_NEAR(t["total"].get<double>(), e["total"].get<double>(), 1e-6);
      EXPECT_EQ(t["rank"], e["rank"]);
      EXPECT_EQ(t["decision"], e["decision"]);
      EXPECT_EQ(t["eligible"], e["eligible"]);
      EXPECT_NEAR(t["frontier_index"]["value"].get<double>(), e["frontier"].get<double>(), 1e-6);
      EXPECT_NEAR(t["diffusion_index"]["value"].get<double>(), e["diffusion"].get<double>(), 1e-6);
    }
  }
}

TEST(FirstStage, GatesFromLineageReports) {
  const json& net = team("s1", "net");  // frozen foreign vision encoder
  EXPECT_FALSE(net["eligible"].get<bool>());
  EXPECT_EQ(net["decision"], "ineligible");
  ASSERT_EQ(net["gates"].size(), 1u);
  EXPECT_EQ(net["gates"][0]["components"][0], "vision_encoder");
  EXPECT_EQ(net["gates"][0]["source"]["file"], "lineage/net.json");
  const json& set = team("s1", "set");  // reused embedding: penalty, still eligible
  EXPECT_TRUE(set["eligible"].get<bool>());
  EXPECT_DOUBLE_EQ(set["penalty"].get<double>(), 2.0);
  EXPECT_EQ(team("s1", "hana")["gates"].size(), 0u);
  EXPECT_EQ(team("s1", "hana")["lineage"][0]["verdict"], "independent");
}

TEST(FirstStage, RepechageEntryInSecondStage) {
  const json& y = team("s2", "yeoseot");
  EXPECT_TRUE(y["repechage"].get<bool>());
  EXPECT_EQ(y["decision"], "advance");
  EXPECT_FALSE(team("s2", "hana")["repechage"].get<bool>());
  EXPECT_EQ(result("s2").doc["teams"].size(), 4u);
}

TEST(FirstStage, EveryNumberNamesItsSourceWithTheFileHash) {
  const json& hana = team("s1", "hana");
  const json& b = subpart(hana, "team_chosen")["benchmarks"][0];
  EXPECT_EQ(b["team_source"]["file"], "s1/eval/hana-llm/results.json");
  EXPECT_EQ(b["team_source"]["key"], "results.livecodebench.acc,none");
  EXPECT_EQ(b["team_source"]["sha256"], kaival::sha256_file(kDir + "/s1/eval/hana-llm/results.json"));
  EXPECT_EQ(b["target_items_source"]["file"], "s1/eval/gx-2/samples_livecodebench.jsonl");
  EXPECT_EQ(b["paired_items"], 160);
  for (const auto& p : hana["parts"])
    if (p["kind"] == "expert" || p["kind"] == "user") {
      ASSERT_FALSE(p["sources"].empty());
      EXPECT_EQ(p["sources"][0]["sha256"].get<std::string>().size(), 64u);
      EXPECT_TRUE(p["synthetic"].get<bool>());
    }
  // Every input listed with its hash.
  for (const auto& f : result("s1").doc["inputs"])
    EXPECT_EQ(f["sha256"], kaival::sha256_file(kDir + "/" + f["file"].get<std::string>())) << f["file"];
  EXPECT_EQ(result("s1").doc["program"]["sha256"], kaival::sha256_file(kDir + "/program.yaml"));
}

TEST(FirstStage, IntervalsContainThePointAndNarrowWithMoreItems) {
  for (const auto& t : result("s1").doc["teams"]) {
    ASSERT_TRUE(t["total_ci"].is_array());
    EXPECT_LE(t["total_ci"][0].get<double>(), t["total"].get<double>() + 1e-9);
    EXPECT_GE(t["total_ci"][1].get<double>(), t["total"].get<double>() - 1e-9);
    EXPECT_GT(t["total_ci"][1].get<double>() - t["total_ci"][0].get<double>(), 0.1);
  }
  // Binomial spread: ~0.8 accuracy on 100 items has a 95% interval about ±8 points.
  const json& ko = subpart(team("s1", "hana"), "korean")["benchmarks"][0];
  double w = ko["normalized_ci"][1].get<double>() - ko["normalized_ci"][0].get<double>();
  EXPECT_GT(w, 0.10);
  EXPECT_LT(w, 0.22);
}

TEST(FirstStage, SensitivityFlagsTheCloseCut) {
  const json& s = result("s1").doc["sensitivity"];
  // Set (76.0, advances) and Daseot (75.3, out) sit 0.7 apart: within the intervals.
  std::set<std::string> close;
  for (const auto& w : s["within_ci"]) close.insert(w["team"]);
  EXPECT_TRUE(close.count("set"));
  EXPECT_TRUE(close.count("daseot"));
  EXPECT_FALSE(close.count("hana"));
  EXPECT_NEAR(s["cut"].get<double>(), (team("s1", "set")["total"].get<double>() + team("s1", "daseot")["total"].get<double>()) / 2, 1e-9);
  double p_set = team("s1", "set")["advance_probability"], p_hana = team("s1", "hana")["advance_probability"];
  EXPECT_GT(p_hana, 0.99);
  EXPECT_LT(p_set, 0.95);
  EXPECT_GT(p_set, 0.2);
  // Moving weight from expert to benchmark helps Daseot? Every listed flip names a real team.
  for (const auto& w : s["weight_changes"])
    for (const auto& f : w["flips"]) EXPECT_NE(f["from"], f["to"]);
}

TEST(FirstStage, DeterministicForVerify) {
  Program p = load_program(kDir + "/program.yaml");
  RunOptions o;
  o.stage = "s1";
  o.replicates = 20;
  o.timestamp = false;
  auto a = run(p, o), b = run(p, o);
  EXPECT_EQ(a.doc.dump(), b.doc.dump());
  EXPECT_TRUE(diff_results(a.doc, b.doc).empty());
  json c = a.doc;
  c["teams"][0]["total"] = 1.0;
  auto d = diff_results(a.doc, c);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].find("/teams/0/total"), std::string::npos);
}

TEST(FirstStage, SummaryTableIsBilingual) {
  std::string s = summary_table(result("s1"));
  EXPECT_NE(s.find("팀 하나"), std::string::npos);
  EXPECT_NE(s.find("90.2"), std::string::npos);
  EXPECT_NE(s.find("103.8%"), std::string::npos);
  EXPECT_NE(s.find("부적격 ineligible"), std::string::npos);
  EXPECT_NE(s.find("SYNTHETIC"), std::string::npos);
}
