// kaival arena export  --db FILE --out DIR [--campaign NAME] [--resamples N] [--seed N]
// kaival arena load    --db FILE CAMPAIGN.yaml
// kaival arena user    --db FILE --name NAME --role admin|expert|voter [--affiliation A]   (password on stdin)
// kaival arena invite  --db FILE --role ROLE [--affiliation A]                              (prints the token)
// kaival arena suspects --db FILE --campaign NAME                                           (quarantines, never deletes)
// kaival arena answer  CAMPAIGN.yaml --out FILLED.yaml [--workers N] [--retries N]       (asks models' backends)
// kaival arena copy-store --from FILE|URL --to FILE|URL [--replace]                        (SQLite <-> PostgreSQL)
// FILE may be a postgresql:// URL (docs/arena.md, PostgreSQL).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "arena/backend.h"
#include "arena/copy_store.h"
#include "arena/store.h"
#include "cli/commands.h"
#include "core/error.h"

namespace kaival::cli {
namespace {

struct ArenaOptions {
  std::string db, out, campaign, name, role = "voter", affiliation, file;
  int resamples = 1000;
  uint64_t seed = 1;
  int workers = 4, retries = 3;
  std::string from, to;
  bool replace = false;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<IoError>(path, "cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Answers already in an earlier --out of the same campaign (same prompt id and
// text): a rerun asks only for what is still missing.
int resume_from(const std::string& out, arena::ArenaCampaign& c) {
  if (!std::filesystem::exists(out)) return 0;
  arena::CampaignFile prev = arena::load_campaign_file(out);
  if (prev.kind != "arena" || prev.arena.name != c.name)
    fail(out, "exists and is not an answered copy of campaign '{}'; remove it or choose another --out", c.name);
  std::map<std::string, const arena::CampaignPrompt*> by_id;
  for (const auto& p : prev.arena.prompts) by_id[p.id] = &p;
  int taken = 0;
  for (auto& p : c.prompts) {
    auto it = by_id.find(p.id);
    if (it == by_id.end() || it->second->text != p.text) continue;
    for (const auto& [model, text] : it->second->answers)
      if (p.answers.emplace(model, text).second) ++taken;
  }
  return taken;
}

void write_atomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
    if (!o) fail<IoError>(tmp, "cannot write");
    o << text;
    o.flush();
    if (!o) fail<IoError>(tmp, "write failed");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail<IoError>(path, "cannot replace: {}", ec.message());
}

void answer_campaign(const ArenaOptions& o) {
  std::string text = read_text(o.file);
  arena::CampaignFile f = arena::parse_campaign(text, o.file);
  if (f.kind != "arena") fail(o.file, "kind: '{}': only arena campaigns have answers", f.kind);
  arena::ArenaCampaign& c = f.arena;
  int resumed = resume_from(o.out, c);
  if (resumed) std::fprintf(stderr, "kept %d answers from %s\n", resumed, o.out.c_str());
  arena::FillOptions fo;
  fo.workers = std::max(1, o.workers);
  fo.pool.concurrency = fo.workers;
  fo.pool.max_retries = std::max(0, o.retries);
  const bool tty = ::isatty(2);
  int last_decile = -1;
  fo.progress = [&](const arena::FillProgress& p) {
    int finished = p.done + p.failed;
    if (tty) {
      std::fprintf(stderr, "\ranswers %d/%d (%d failed)", finished, p.total, p.failed);
      if (finished == p.total) std::fputc('\n', stderr);
    } else if (int d = finished * 10 / p.total; d != last_decile) {
      last_decile = d;
      std::fprintf(stderr, "answers %d/%d (%d failed)\n", finished, p.total, p.failed);
    }
  };
  arena::FillResult r = arena::fill_answers(c, fo);
  // Written also after failures: the answers that came back are kept for the rerun.
  write_atomically(o.out, arena::with_answers(text, c, o.file));
  if (r.skipped)
    std::fprintf(stderr, "%d answers missing for models without a backend (their prompts still serve the others)\n",
                 r.skipped);
  if (r.failed) {
    for (const auto& e : r.errors) std::fprintf(stderr, "  %s\n", e.c_str());
    fail<IoError>(o.out, "{} of {} answers failed (listed above); the {} that came back are saved: rerun the same "
                         "command to ask only for the rest", r.failed, r.asked, r.answered);
  }
  std::printf("wrote %s: %d new answers (%d kept from before)\n", o.out.c_str(), r.answered, resumed);
}

void copy_store(const ArenaOptions& o) {
  arena::CopyOptions co;
  co.replace = o.replace;
  const bool tty = ::isatty(2);
  int last_decile = -1;
  co.progress = [&](const arena::CopyProgress& p) {
    if (p.total < 10000) return;  // only large tables are worth watching
    if (tty) {
      std::fprintf(stderr, "\r%s %lld/%lld", p.table.c_str(), static_cast<long long>(p.done),
                   static_cast<long long>(p.total));
      if (p.done >= p.total) std::fputc('\n', stderr);
    } else if (int d = static_cast<int>(p.done * 10 / p.total); d != last_decile) {
      last_decile = d;
      std::fprintf(stderr, "%s %lld/%lld\n", p.table.c_str(), static_cast<long long>(p.done),
                   static_cast<long long>(p.total));
    }
    if (p.done >= p.total) last_decile = -1;
  };
  arena::CopyReport r = arena::copy_store(o.from, o.to, co);
  int64_t total = 0, added = 0;
  for (const auto& t : r.tables) {
    std::printf("%-17s %10lld rows  digest %s", t.name.c_str(), static_cast<long long>(t.rows), t.digest.c_str());
    if (r.incremental)
      std::printf("  %lld new, %lld there already", static_cast<long long>(t.added), static_cast<long long>(t.skipped));
    std::printf("\n");
    total += t.rows;
    added += t.added;
  }
  if (r.incremental)
    std::printf("added %lld new rows of %lld (the target held an earlier copy; rows it had were checked equal; source "
                "schema version %d); counts and digests verified on the target before commit\n",
                static_cast<long long>(added), static_cast<long long>(total), r.schema_version);
  else
    std::printf("copied %lld rows (source schema version %d); counts and digests verified on the target before commit\n",
                static_cast<long long>(total), r.schema_version);
}

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

  CLI::App* an = cmd->add_subcommand("answer", "Fill a campaign's missing answers from its models' backends");
  an->add_option("file", o->file, "arena campaign YAML (models with backend blocks)")->required();
  an->add_option("--out", o->out, "the campaign with answers (YAML); an existing one is resumed")->required();
  an->add_option("--workers", o->workers, "requests in flight (default 4)");
  an->add_option("--retries", o->retries, "retries per request (default 3)");
  an->callback([o] { answer_campaign(*o); });

  CLI::App* cp = cmd->add_subcommand("copy-store", "Copy a whole arena store, e.g. SQLite to PostgreSQL, ids kept; into an earlier copy: only the new rows");
  cp->add_option("--from", o->from, "source store: SQLite file or postgresql:// URL (only read)")->required();
  cp->add_option("--to", o->to, "target store: postgresql:// URL or new SQLite file; must be empty")->required();
  cp->add_flag("--replace", o->replace, "empty a non-empty PostgreSQL target first (its audit log too)");
  cp->callback([o] { copy_store(*o); });

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
