// `kaival demo` end to end (shrunk: fewer items, requests and votes), checked
// on what it produced: the lineage catches the secret fine-tune and the
// foreign vision encoder, the gates make exactly those teams ineligible, the
// benchmarks went through the local server, the panels are labelled
// synthetic, and the report exists.
#include "stage/demo.h"

#include <filesystem>
#include <fstream>
#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "store/sqlite.h"
#include "../support/files.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json read_json(const fs::path& p) {
  std::ifstream f(p);
  EXPECT_TRUE(f.good()) << p;
  return json::parse(f);
}

using kaival::testing_support::read_file;

}  // namespace

TEST(StageDemo, MiniStageCatchesTheFineTuneAndTheForeignEncoder) {
  const fs::path out = fs::temp_directory_path() / ("kaival-demo-test-" + std::to_string(::getpid()));
  fs::remove_all(out);
  kaival::stage::DemoOptions o;
  o.data_dir = KAIVAL_TESTDATA;
  o.out_dir = out.string();
  o.quiet = true;
  o.items_per_task = 6;
  o.perf_requests = 2;
  o.voters = 8;
  o.votes_per_voter = 6;
  auto r = kaival::stage::run_demo(o);

  EXPECT_EQ(r.flagged, 2);
  EXPECT_EQ(r.ineligible, 2);

  // Lineage: Hana is derived from the foreign LM; Set is partial through the
  // vision encoder only; the others are independent of both foreign models.
  json lineage = read_json(out / "lineage" / "lineage.json");
  std::map<std::string, std::string> label;
  for (const auto& in : lineage["inputs"]) label[fs::path(in["label"].get<std::string>()).filename().string()] = in["label"];
  auto verdict = [&](const std::string& a, const std::string& b) -> json {
    for (const auto& p : lineage["pairs"])
      if ((p["a"] == label[a] && p["b"] == label[b]) || (p["a"] == label[b] && p["b"] == label[a])) return p;
    ADD_FAILURE() << "no pair " << a << " / " << b;
    return json::object();
  };
  EXPECT_EQ(verdict("finetune-a", "base-a")["verdict"], "derived");
  json set_vlm = verdict("set-vlm", "foreign-vlm");
  EXPECT_EQ(set_vlm["verdict"], "partial");
  for (const auto& c : set_vlm["components"])
    if (c["verdict"] == "derived") EXPECT_EQ(c["kind"], "vision_encoder") << c.dump();
  EXPECT_EQ(verdict("set-vlm", "base-a")["verdict"], "independent");
  for (const char* own : {"indep-s2", "indep-s3", "small-c"}) {
    EXPECT_EQ(verdict(own, "base-a")["verdict"], "independent") << own;
    EXPECT_EQ(verdict(own, "foreign-vlm")["verdict"], "independent") << own;
  }

  // Benchmarks ran through the server for every team and the target.
  for (const char* m : {"global-lm", "hana-lm", "dul-lm", "set-vlm", "net-lm", "daseot-lm"}) {
    json res = read_json(out / "eval" / m / "results.json");
    EXPECT_EQ(res["schema"], "kaival.eval-results/1") << m;
    EXPECT_EQ(res["results"]["demo_ko_particles"]["n"], 6) << m;
  }

  // Panels: synthetic, from the arena store.
  json ratings = read_json(out / "panel" / "ratings.json");
  EXPECT_EQ(ratings["synthetic"], true);
  EXPECT_EQ(ratings["models"].size(), 5u);
  json experts = read_json(out / "panel" / "expert_scores.json");
  EXPECT_EQ(experts["synthetic"], true);
  auto db = kaival::store::Db::open((out / "arena.db").string());
  auto n = db.prepare("SELECT count(*) FROM votes");
  ASSERT_TRUE(n.step());
  EXPECT_GT(n.int64(0), 30);

  // Stage: exactly Hana and Set are ineligible; three teams advance.
  json stage = read_json(r.stage_result);
  std::set<std::string> ineligible, advance;
  for (const auto& t : stage["teams"]) {
    if (t["decision"] == "ineligible") ineligible.insert(t["team"]);
    if (t["decision"] == "advance") advance.insert(t["team"]);
  }
  EXPECT_EQ(ineligible, (std::set<std::string>{"hana", "set"}));
  EXPECT_EQ(advance.size(), 3u);

  // The report exists in both languages and says the panels are synthetic.
  std::string html = read_file(r.report_html);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("ynthetic"), std::string::npos);
  EXPECT_TRUE(fs::exists(out / "report" / "index.ko.html"));
  fs::remove_all(out);
}
