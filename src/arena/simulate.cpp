#include "arena/simulate.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.h"

namespace kaival::arena {

namespace {

CampaignInfo synthetic_campaign(ArenaStore& store, const std::string& name, const std::string& kind) {
  auto c = store.campaign(name);
  if (!c || c->kind != kind) fail(store.path(), "no {} campaign named '{}'", kind, name);
  if (!c->synthetic) fail(store.path(), "campaign '{}' is not marked synthetic: simulated panels refused", name);
  return *c;
}

int64_t synthetic_account(ArenaStore& store, const std::string& name, Role role, const std::string& affiliation) {
  if (auto a = store.account_by_name(name)) return a->id;
  // Nobody signs in as a synthetic account: a random password nobody knows.
  std::random_device rd;
  std::string password = "synthetic-" + std::to_string(rd()) + "-" + std::to_string(rd());
  return store.create_account(name, password, role, affiliation);
}

}  // namespace

SimulationReport simulate_voters(ArenaStore& store, const std::string& campaign, const SyntheticVoters& o) {
  CampaignInfo c = synthetic_campaign(store, campaign, "arena");
  SimulationReport r;
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  auto strength = [&](const std::string& m) {
    auto it = o.strength.find(m);
    return it == o.strength.end() ? 0.0 : it->second;
  };
  for (int v = 0; v < o.voters; ++v) {
    int64_t id = synthetic_account(store, "synthetic-voter-" + std::to_string(v + 1), Role::Voter, "");
    ++r.accounts;
    std::string ip = "synthetic-" + std::to_string(v + 1);
    for (int k = 0; k < o.votes_per_voter; ++k) {
      auto b = store.new_battle(c.id, id, ip);
      if (!b) return r;
      double x = u(rng);
      std::string winner;
      if (x < o.both_bad_rate) {
        winner = "both_bad";
      } else if (x < o.both_bad_rate + o.tie_rate) {
        winner = "tie";
      } else {
        double p = 1.0 / (1.0 + std::exp(strength(b->model_b) - strength(b->model_a)));
        winner = u(rng) < p ? "model_a" : "model_b";
      }
      if (store.vote({b->id, id, ip, winner}) == VoteStatus::Stored) ++r.votes;
    }
  }
  return r;
}

SimulationReport simulate_experts(ArenaStore& store, const std::string& campaign, const SyntheticExperts& o) {
  CampaignInfo c = synthetic_campaign(store, campaign, "review");
  SimulationReport r;
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<double> noise(0.0, o.noise), offset(0.0, o.severity);
  std::vector<std::pair<int64_t, double>> experts;
  for (int e = 0; e < o.experts; ++e) {
    std::string n = std::to_string(e + 1);
    experts.push_back({synthetic_account(store, "synthetic-expert-" + n, Role::Expert, "synthetic-org-" + n), offset(rng)});
    ++r.accounts;
  }
  store.assign_reviewers(c.id);
  Rubric rubric = store.rubric(c.id);
  for (const auto& [id, bias] : experts) {
    for (const auto& a : store.assignments(id)) {
      if (a.campaign_id != c.id) continue;
      auto q = o.quality.find(a.model);
      double quality = q == o.quality.end() ? 0.5 : q->second;
      std::map<std::string, std::pair<double, std::string>> scores;
      for (const auto& cr : rubric.criteria) {
        double v = std::round(cr.min + quality * (cr.max - cr.min) + bias + noise(rng));
        v = std::clamp(v, cr.min, cr.max);
        scores[cr.name] = {v, "synthetic reviewer: simulated score"};
      }
      store.submit_review(id, a.item_id, scores);
      r.scores += static_cast<int64_t>(scores.size());
    }
  }
  return r;
}

}  // namespace kaival::arena
