#pragma once
// Synthetic panels for demos and tests: simulated voters and experts act
// through the same store API as people (battles served, votes committed,
// reviews audited). Only campaigns marked `synthetic: true` accept them, so
// simulated data can never mix into a real campaign, and every export of such
// a campaign carries "synthetic": true.
#include <cstdint>
#include <map>
#include <string>

#include "arena/store.h"

namespace kaival::arena {

struct SyntheticVoters {
  std::map<std::string, double> strength;  // model -> latent log-strength (Bradley-Terry scale); missing = 0
  int voters = 49;
  int votes_per_voter = 40;
  double tie_rate = 0.1;
  double both_bad_rate = 0.02;
  uint64_t seed = 1;
};

struct SyntheticExperts {
  std::map<std::string, double> quality;  // model -> true quality in [0, 1]; missing = 0.5
  int experts = 10;
  double noise = 0.5;     // standard deviation of a score, in scale points
  double severity = 0.4;  // standard deviation of per-expert offsets
  uint64_t seed = 1;
};

struct SimulationReport {
  int accounts = 0;
  int64_t votes = 0;
  int64_t scores = 0;
};

// Votes from `voters` synthetic accounts ("synthetic-voter-N"). Throws
// FormatError when the campaign is not an arena campaign marked synthetic.
SimulationReport simulate_voters(ArenaStore& store, const std::string& campaign, const SyntheticVoters& options);
// Creates synthetic experts ("synthetic-expert-N", one affiliation each),
// assigns reviewers and submits a score with rationale for every criterion.
SimulationReport simulate_experts(ArenaStore& store, const std::string& campaign, const SyntheticExperts& options);

}  // namespace kaival::arena
