// Synthetic panels go through the real store and come out labelled synthetic.
#include "arena/simulate.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

using namespace kaival::arena;
namespace fs = std::filesystem;
using nlohmann::json;

TEST(ArenaSimulate, SyntheticPanelsRecoverTheTruthAndAreLabelled) {
  fs::path dir = fs::temp_directory_path() / ("kaival-arena-sim-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  StoreOptions so;
  so.fast_password_hashing = true;
  auto store = ArenaStore::open((dir.string() + ".db"), so);
  CampaignFile arena = load_campaign_file(std::string(KAIVAL_TESTDATA) + "/arena/arena_campaign.yaml");
  CampaignFile review = load_campaign_file(std::string(KAIVAL_TESTDATA) + "/arena/review_campaign.yaml");
  store->add_campaign(arena, 0);  // real (not synthetic): simulation must refuse it
  SyntheticVoters voters;
  voters.voters = 6;
  voters.votes_per_voter = 5;
  EXPECT_THROW(simulate_voters(*store, "demo-arena", voters), kaival::FormatError);
  EXPECT_EQ(store->vote_count(), 0);

  arena.arena.name = "sim-arena";
  arena.arena.synthetic = true;
  review.review.name = "sim-review";
  review.review.synthetic = true;
  store->add_campaign(arena, 0);
  store->add_campaign(review, 0);
  voters.voters = 12;
  voters.votes_per_voter = 25;
  voters.strength = {{"target-x", 1.2}, {"team-a", 0.4}, {"team-b", -0.6}};
  SimulationReport v = simulate_voters(*store, "sim-arena", voters);
  EXPECT_EQ(v.votes, 300);
  SyntheticExperts experts;
  experts.experts = 4;
  experts.quality = {{"team-a", 0.9}, {"team-b", 0.2}};
  SimulationReport e = simulate_experts(*store, "sim-review", experts);
  EXPECT_EQ(e.scores, 2 * 2 * 2);  // 2 items x 2 reviewers x 2 criteria

  ExportOptions o;
  o.resamples = 100;
  o.campaign = "sim-arena";
  store->export_files((dir / "out").string(), o);
  std::ifstream rin(dir / "out" / "ratings.json");
  json ratings = json::parse(rin);
  EXPECT_TRUE(ratings["synthetic"].get<bool>());
  std::vector<std::string> order;
  for (auto& m : ratings["models"]) order.push_back(m["model"]);
  EXPECT_EQ(order, (std::vector<std::string>{"target-x", "team-a", "team-b"}));
  std::ifstream ein(dir / "out" / "expert_scores.json");
  json expert = json::parse(ein);
  EXPECT_TRUE(expert["synthetic"].get<bool>());
  std::map<std::string, double> score;
  for (auto& m : expert["models"]) score[m["model"]] = m["score"];
  EXPECT_GT(score["team-a"], score["team-b"] + 30);
  store.reset();
  fs::remove_all(dir);
  fs::remove(dir.string() + ".db");
  fs::remove(dir.string() + ".db-wal");
  fs::remove(dir.string() + ".db-shm");
}
