// kaival arena export  --db FILE --out DIR [--campaign NAME] [--resamples N] [--seed N]
// kaival arena load    --db FILE CAMPAIGN.yaml
// kaival arena user    --db FILE --name NAME --role admin|expert|voter [--affiliation A]   (password on stdin)
// kaival arena invite  --db FILE --role ROLE [--affiliation A]                              (prints the token)
// kaival arena suspects --db FILE --campaign NAME                                           (quarantines, never deletes)
// FILE may be a postgresql:// URL (docs/arena.md, PostgreSQL).
#include <cstdio>
#include <iostream>
#include <string>

#include "arena/store.h"
#include "cli/commands.h"
#include "core/error.h"

namespace kaival::cli {
namespace {

struct ArenaOptions {
  std::string db, out, campaign, name, role = "voter", affiliation, file;
  int resamples = 1000;
  uint64_t seed = 1;
};

arena::Role role_of(const std::string& s) {
  auto r = arena::parse_role(s);
  if (!r) fail("--role", "'{}' is not admin, expert or voter", s);
  return *r;
}

}  // namespace

void register_arena(CLI::App& app) {
  auto o = std::make_shared<ArenaOptions>();
  CLI::App* cmd = app.add_subcommand("arena", "Arena database tools: export, load campaigns, accounts");
  cmd->require_subcommand(1);

  CLI::App* ex = cmd->add_subcommand("export", "Write battles.jsonl, ratings.json, reviews.jsonl, expert_scores.json");
  ex->add_option("--db", o->db, "arena database: SQLite file or postgresql:// URL")->required();
  ex->add_option("--out", o->out, "output directory")->required();
  ex->add_option("--campaign", o->campaign, "arena campaign (default: all)");
  ex->add_option("--resamples", o->resamples, "bootstrap resamples (default 1000)");
  ex->add_option("--seed", o->seed, "bootstrap seed");
  ex->callback([o] {
    auto s = arena::ArenaStore::open(o->db);
    arena::ExportOptions eo;
    eo.resamples = o->resamples;
    eo.seed = o->seed;
    eo.campaign = o->campaign;
    s->export_files(o->out, eo);
    std::printf("wrote %s/{battles.jsonl,ratings.json,reviews.jsonl,expert_scores.json}\n", o->out.c_str());
  });

  CLI::App* ld = cmd->add_subcommand("load", "Load a campaign YAML file");
  ld->add_option("--db", o->db, "arena database: SQLite file or postgresql:// URL")->required();
  ld->add_option("file", o->file, "campaign YAML")->required();
  ld->callback([o] {
    auto s = arena::ArenaStore::open(o->db);
    arena::CampaignFile f = arena::load_campaign_file(o->file);
    int64_t id = s->add_campaign(f, 0);
    int short_items = f.kind == "review" ? s->assign_reviewers(id) : 0;
    std::printf("loaded %s campaign (id %lld)%s\n", f.kind.c_str(), static_cast<long long>(id),
                short_items ? "; some items are short of reviewers" : "");
  });

  CLI::App* us = cmd->add_subcommand("user", "Create an account; the password is read from stdin");
  us->add_option("--db", o->db, "arena database: SQLite file or postgresql:// URL")->required();
  us->add_option("--name", o->name, "account name")->required();
  us->add_option("--role", o->role, "admin, expert or voter");
  us->add_option("--affiliation", o->affiliation, "organisation (conflict-of-interest checks)");
  us->callback([o] {
    std::string password;
    std::getline(std::cin, password);
    auto s = arena::ArenaStore::open(o->db);
    int64_t id = s->create_account(o->name, password, role_of(o->role), o->affiliation);
    std::printf("created %s account '%s' (id %lld)\n", o->role.c_str(), o->name.c_str(), static_cast<long long>(id));
  });

  CLI::App* inv = cmd->add_subcommand("invite", "Create a one-time invitation token");
  inv->add_option("--db", o->db, "arena database: SQLite file or postgresql:// URL")->required();
  inv->add_option("--role", o->role, "admin, expert or voter");
  inv->add_option("--affiliation", o->affiliation, "organisation of the invitee");
  inv->callback([o] {
    auto s = arena::ArenaStore::open(o->db);
    std::printf("%s\n", s->create_invitation(role_of(o->role), o->affiliation, 0).c_str());
  });

  CLI::App* su = cmd->add_subcommand("suspects", "Quarantine votes of suspect voters");
  su->add_option("--db", o->db, "arena database: SQLite file or postgresql:// URL")->required();
  su->add_option("--campaign", o->campaign, "arena campaign")->required();
  su->callback([o] {
    auto s = arena::ArenaStore::open(o->db);
    auto c = s->campaign(o->campaign);
    if (!c || c->kind != "arena") fail(s->path(), "no arena campaign named '{}'", o->campaign);
    for (const auto& r : s->detect_suspects(c->id, {}, 0))
      std::printf("quarantined %s: %s (%d votes)\n", r.account.c_str(), r.reason.c_str(), r.votes);
  });
}

}  // namespace kaival::cli
