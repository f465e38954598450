#pragma once
// Campaign files (YAML). An arena campaign lists models and a prompt set with
// pre-generated answers; models may name an OpenAI-compatible backend, which
// fills missing answers (`kaival arena answer`) and answers voters' own prompts
// when the campaign allows live prompts. A review campaign carries a rubric and items, each to
// be assigned to at least k reviewers outside the item's affiliation.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "arena/expert_scores.h"

namespace kaival::arena {

// Where a model answers: an OpenAI-compatible server (POST <base_url>/v1/chat/completions).
// Files and the database hold only the *name* of the environment variable with
// the API key, never the key.
struct ModelBackend {
  std::string base_url;     // http(s)://host:port or .../v1
  std::string model;        // served model name; defaults to the campaign model id
  std::string api_key_env;  // e.g. TEAM_A_API_KEY; empty: no Authorization header
  std::string system;       // optional system prompt
  std::optional<double> temperature, top_p;
  int max_tokens = 512;
  double timeout_s = 60;    // per request (the voter waits for it)
  // Price per million tokens (prompt / completion); unset: the campaign budget's default.
  std::optional<double> cost_per_1m_input, cost_per_1m_output;
};

// Spending limits on live prompts (campaign `budget:`); 0 means no limit.
struct LiveBudget {
  int64_t max_completion_tokens = 0;            // all backends together
  int64_t max_completion_tokens_per_model = 0;  // each model's backend
  double max_cost = 0;                          // in the prices' currency
  double cost_per_1m_input = 0, cost_per_1m_output = 0;  // default price of every backend
  bool limited() const { return max_completion_tokens > 0 || max_completion_tokens_per_model > 0 || max_cost > 0; }
};

struct CampaignModel {
  std::string id;                    // the program file's model id
  std::string organization;          // for identity-leak detection
  std::vector<std::string> aliases;  // other names that reveal the model (e.g. product names)
  std::optional<ModelBackend> backend;
};

struct CampaignPrompt {
  std::string id;
  std::string text;
  std::map<std::string, std::string> answers;  // model id -> answer (may be missing: `kaival arena answer`)
};

struct VoteCaps {
  int per_account_per_day = 1000;
  int per_ip_per_hour = 3000;
  int live_prompts_per_account_per_hour = 20;  // they cost money: every attempt counts
};

struct ArenaCampaign {
  std::string name, title;
  bool synthetic = false;
  std::vector<CampaignModel> models;
  std::vector<CampaignPrompt> prompts;
  VoteCaps caps;
  bool live_prompts = false;    // voters may type their own prompt (needs two models with a backend)
  int max_prompt_chars = 2000;  // longest live prompt, in Unicode code points
  LiveBudget budget;            // live prompts stop when it is spent
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
