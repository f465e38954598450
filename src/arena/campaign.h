#pragma once
// Campaign files (YAML). An arena campaign lists models and a prompt set with
// pre-generated answers; a review campaign carries a rubric and items, each to
// be assigned to at least k reviewers outside the item's affiliation.
#include <map>
#include <string>
#include <vector>

#include "arena/expert_scores.h"

namespace kaival::arena {

struct CampaignModel {
  std::string id;                    // the program file's model id
  std::string organization;          // for identity-leak detection
  std::vector<std::string> aliases;  // other names that reveal the model (e.g. product names)
};

struct CampaignPrompt {
  std::string id;
  std::string text;
  std::map<std::string, std::string> answers;  // model id -> answer
};

struct VoteCaps {
  int per_account_per_day = 1000;
  int per_ip_per_hour = 3000;
};

struct ArenaCampaign {
  std::string name, title;
  bool synthetic = false;
  std::vector<CampaignModel> models;
  std::vector<CampaignPrompt> prompts;
  VoteCaps caps;
};

struct ReviewItem {
  std::string id, model, title, content;
  std::string affiliation;  // reviewers of this affiliation have a conflict of interest
};

struct ReviewCampaign {
  std::string name, title;
  bool synthetic = false;
  Rubric rubric;
  int reviewers_per_item = 3;
  std::vector<ReviewItem> items;
};

struct CampaignFile {
  std::string kind;  // "arena" or "review"
  ArenaCampaign arena;
  ReviewCampaign review;
};

// `where` names the source in errors (a path, or "upload").
CampaignFile parse_campaign(const std::string& yaml_text, const std::string& where);
CampaignFile load_campaign_file(const std::string& path);

// True when `answer` names its own model (id or alias) or organization,
// case-insensitively for ASCII letters.
bool names_itself(const std::string& answer, const CampaignModel& model);

}  // namespace kaival::arena
