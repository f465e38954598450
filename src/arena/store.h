#pragma once
// The arena's durable state: accounts, sessions, campaigns, prompts, answers,
// battles, votes, expert reviews and an append-only audit log, in SQLite (WAL,
// synchronous=FULL) or PostgreSQL. A vote is acknowledged only after the transaction that
// stores it has committed; concurrent votes share one commit (group commit).
// Thread-safe: one connection behind a mutex.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "arena/bradley_terry.h"
#include "arena/campaign.h"
#include "arena/expert_scores.h"
#include "store/sql.h"

namespace kaival::arena {

enum class Role { Admin, Expert, Voter };
const char* role_name(Role r);
std::optional<Role> parse_role(const std::string& s);

struct Account {
  int64_t id = 0;
  std::string name;
  Role role = Role::Voter;
  std::string affiliation;
};

struct Session {
  std::string csrf;  // per-session token every POST must echo
  Account account;
};

struct CampaignInfo {
  int64_t id = 0;
  std::string name, title, kind;
  bool synthetic = false;
};

struct BattleView {
  std::string id;  // unguessable public id
  std::string prompt;
  std::string answer_a, answer_b;  // as shown: left = a, right = b
  // Server side only (synthetic panels, tests): pages never render these.
  std::string model_a, model_b;
};

enum class VoteStatus { Stored, AlreadyVoted, UnknownBattle, NotYourBattle, AccountCapReached, IpCapReached };
const char* vote_status_name(VoteStatus s);

struct VoteRequest {
  std::string battle_id;
  int64_t account_id = 0;
  std::string ip;
  std::string winner;  // model_a | model_b | tie | both_bad
};

struct SuspectRules {
  int min_votes = 10;
  double same_side_share = 0.95;   // share of decisive votes for one side
  int64_t too_fast_ms = 1500;       // median time from serving a battle to the vote
  double against_consensus = 0.25;  // agreement with confident predictions below this
  double confident = 0.75;          // predicted win probability that counts as confident
  int min_confident = 10;
};

struct SuspectReport {
  int64_t account_id = 0;
  std::string account;
  std::string reason;  // same_side | too_fast | against_consensus
  int votes = 0;
};

// A campaign's live-prompt settings, as loaded (campaign spec).
struct LiveCampaign {
  bool enabled = false;
  int max_prompt_chars = 0;
  int per_account_per_hour = 0;
  std::vector<CampaignModel> models;  // the campaign's models that have a backend
  LiveBudget budget;
};

// What one backend request of a live prompt cost (stored for budgets).
struct LiveUsage {
  std::string model;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  bool counted = false;  // estimated by kaival: the backend sent no usage
};

// Spending on live prompts against the campaign's budget: spent (the
// backends' usage) and reserved (the worst case of pairs in flight).
struct BudgetStatus {
  struct Model {
    std::string model;
    int64_t requests = 0, prompt_tokens = 0, completion_tokens = 0;
    double cost = 0;
    int64_t reserved_answers = 0, reserved_prompt_tokens = 0, reserved_completion_tokens = 0;
    double reserved_cost = 0;
    std::optional<int64_t> remaining_tokens;  // per-model cap left after spent and reserved (none: no cap)
    bool spent = false;                       // its per-model cap has no room for one more answer
  };
  LiveBudget limits;
  std::vector<Model> models;  // the campaign's models with a backend
  int64_t prompt_tokens = 0, completion_tokens = 0;
  double cost = 0;
  int64_t pairs_in_flight = 0;  // unexpired reservations
  int64_t reserved_prompt_tokens = 0, reserved_completion_tokens = 0;
  double reserved_cost = 0;
  std::optional<int64_t> remaining_tokens;  // campaign cap left after spent and reserved (none: no cap)
  std::optional<double> remaining_cost;
  bool exhausted = false;                   // a campaign-wide cap has no room for the cheapest pair
  std::vector<std::string> available;       // models with room for one more answer (none when exhausted)
};

// A live pair that may start: two models (random pair, random sides) and,
// when the campaign has a budget, the reservation of its worst case.
struct LivePair {
  CampaignModel a, b;
  std::string reservation;  // empty: no budget, nothing reserved
};

// The most a live answer may cost, reserved before it is asked: max_tokens
// completion tokens, and the prompt's bytes (system prompt included) plus a
// chat-template allowance as prompt tokens (no tokenizer makes more tokens
// than bytes, save the template's own).
LiveUsage live_worst_case(const CampaignModel& model, const std::string& prompt);
inline constexpr int64_t kChatTemplateTokens = 64;

// One model's answer to a live prompt.
struct LiveAnswer {
  CampaignModel model;
  std::string text;
};

struct LiveBattle {
  std::optional<BattleView> battle;  // empty when an answer named its own model
  std::vector<std::string> leaked;   // those models (their answers are stored flagged, never served)
};

struct ReviewAssignment {
  int64_t item_id = 0;
  std::string item_key, title, content, model, campaign;
  int64_t campaign_id = 0;
  bool done = false;
};

struct StoreOptions {
  // Argon2id cost. Interactive by default; tests and synthetic panels may use
  // the minimum to stay fast (never for real accounts).
  bool fast_password_hashing = false;
};

struct ExportOptions {
  int resamples = 1000;
  uint64_t seed = 1;
  std::string campaign;  // arena campaign name; empty = all arena campaigns
};

class ArenaStore {
 public:
  // An SQLite file, or a postgresql:// URL: many servers on many machines may
  // share one PostgreSQL database (votes stay exactly once per battle).
  static std::unique_ptr<ArenaStore> open(const std::string& path, const StoreOptions& options = {});
  ~ArenaStore();
  const std::string& path() const { return path_; }  // for PostgreSQL, the URL without password

  // Accounts and sessions. Passwords are stored only as Argon2id hashes.
  int64_t create_account(const std::string& name, const std::string& password, Role role,
                         const std::string& affiliation = "");
  std::optional<Account> check_password(const std::string& name, const std::string& password);
  std::optional<Account> account(int64_t id);
  std::optional<Account> account_by_name(const std::string& name);
  // Returns the session token (only its hash is stored).
  std::string create_session(int64_t account_id, std::chrono::seconds ttl = std::chrono::hours(12));
  std::optional<Session> session(const std::string& token);
  void end_session(const std::string& token);
  std::string create_invitation(Role role, const std::string& affiliation, int64_t by_account);
  // Creates the account for a valid, unused invitation; nullopt otherwise.
  std::optional<Account> redeem_invitation(const std::string& token, const std::string& name,
                                           const std::string& password);

  // Campaigns. Arena answers that name their own model or company are stored
  // flagged (identity_leak) and never served.
  int64_t add_campaign(const CampaignFile& file, int64_t by_account);
  std::vector<CampaignInfo> campaigns();
  std::optional<CampaignInfo> campaign(const std::string& name);
  void flag_identity_leak(int64_t campaign_id, const std::string& prompt, const std::string& model, int64_t by_account);

  // Battles and votes.
  std::optional<BattleView> new_battle(int64_t campaign_id, int64_t account_id, const std::string& ip);
  VoteStatus vote(const VoteRequest& request);

  // Live prompts. A voter's prompt and both answers are stored in one
  // transaction: the prompt (owned by the voter, never served to anyone else),
  // the answers (identity leaks flagged as for loaded answers) and, when
  // neither leaks, the battle, which then takes the normal vote path. Every
  // attempt, failed ones included, is audited; live_attempts counts them for
  // the per-account cap.
  LiveCampaign live_campaign(int64_t campaign_id);
  LiveBattle add_live_battle(int64_t campaign_id, int64_t account_id, const std::string& ip, const std::string& prompt,
                             const LiveAnswer& a, const LiveAnswer& b);
  void record_live_failure(int64_t campaign_id, int64_t account_id, const std::string& reason);
  int64_t live_attempts(int64_t account_id, std::chrono::milliseconds window);
  // Usage of every live backend request (answered, failed or voided alike).
  void record_live_usage(int64_t campaign_id, int64_t account_id, const LiveUsage& usage);
  // Picks two of the campaign's live models for `prompt` and, when it has a
  // budget, reserves the pair's worst case (live_worst_case, both answers) in
  // the transaction that checks it against spent + reserved, so concurrent
  // pairs (on any server sharing the store) never pass a cap. nullopt: no pair
  // fits. The reservation lapses after `hold` (a crashed server's pairs must
  // not lock the budget); expired ones are deleted by the next start.
  std::optional<LivePair> start_live_pair(int64_t campaign_id, int64_t account_id, const std::string& prompt,
                                          std::chrono::milliseconds hold);
  // Replaces a pair's reservation (may be empty, or expired already) with what
  // its backends actually used, in one transaction.
  void finish_live_pair(int64_t campaign_id, int64_t account_id, const std::string& reservation,
                        const std::vector<LiveUsage>& usage);
  BudgetStatus live_budget(int64_t campaign_id);
  int64_t vote_count();
  std::vector<SuspectReport> detect_suspects(int64_t campaign_id, const SuspectRules& rules, int64_t by_account);

  // Ratings from the votes that count (not quarantined, no identity leak).
  struct Ratings {
    std::vector<std::string> models;
    Leaderboard board;
    int64_t battles = 0;
  };
  Ratings ratings(int64_t campaign_id, int resamples, uint64_t seed);

  // Expert reviews. Assigns each item to reviewers_per_item experts without a
  // conflict of interest (same affiliation), least-loaded first; returns the
  // number of items still short of reviewers.
  int assign_reviewers(int64_t campaign_id);
  std::vector<ReviewAssignment> assignments(int64_t account_id);
  Rubric rubric(int64_t campaign_id);
  // Scores per criterion with rationale; edits replace the current score and
  // the old and new values go to the audit log. Throws FormatError for an
  // unassigned item or out-of-scale score.
  void submit_review(int64_t account_id, int64_t item_id, const std::map<std::string, std::pair<double, std::string>>& scores);
  ExpertSummary expert_summary(int64_t campaign_id, const ExpertScoreOptions& options);

  void audit(int64_t actor, const std::string& action, const std::string& detail_json);
  int64_t audit_count();

  // Writes battles.jsonl, ratings.json, reviews.jsonl, expert_scores.json (docs/formats.md).
  void export_files(const std::string& dir, const ExportOptions& options);

  // The schema migrations (SQLite or PostgreSQL), for upgrade tests.
  static std::span<const store::Migration> schema_migrations(bool postgres);

 private:
  ArenaStore(store::SqlDb db, std::string path, StoreOptions options);
  std::string salted(const std::string& what);  // salted SHA-256 for voter ids and IPs
  // Spent and reserved against `live`'s budget, read in one statement (one
  // snapshot: a pair finishing meanwhile is seen once, as reserved or as spent).
  BudgetStatus budget_locked(int64_t campaign_id, const LiveCampaign& live, int64_t now);
  struct PendingVote;
  void commit_votes(std::vector<PendingVote*>& batch);

  std::mutex db_mu_;
  store::SqlDb db_;
  std::string path_;
  StoreOptions options_;
  std::string salt_;
  // Group commit: the first waiting voter commits everyone queued behind it.
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::vector<PendingVote*> queue_;
  bool committing_ = false;
  // Votes counted against the per-account and per-IP caps ("a<id>", "i<hash>"),
  // kept between batches (under db_mu_) so a cap check does not rescan the
  // votes table. SQLite has one writing server, so a count stays exact as this
  // server adds votes; it is read again after kCapRecountMs to let votes leave
  // the window (until then a count can be too high, never too low). PostgreSQL
  // has other servers voting too: there each batch reads its counts afresh.
  // A count read with LIMIT L that came back as L is only a lower bound
  // (exact = false): enough to refuse under a cap <= L, read again for a larger cap.
  struct CapCount {
    int64_t votes = 0;
    int64_t read_ms = 0;
    bool exact = false;
  };
  static constexpr int64_t kCapRecountMs = 10000;
  std::unordered_map<std::string, CapCount> cap_counts_;
};

}  // namespace kaival::arena
