// kaival compare TEAM_RESULTS TARGET_RESULTS [--task T]... [--json FILE] [--resamples N]
// A team relative to its target: ratio of simple means over the benchmark set
// and per benchmark, bootstrap CIs over items, paired sign-flip test over
// items matched by doc_id. Arguments are results.json files or their folders.
#include <cstdio>
#include <fstream>

#include "cli/commands.h"
#include "core/error.h"
#include "eval/compare.h"

namespace kaival::cli {

void register_compare(CLI::App& app) {
  auto* cmd = app.add_subcommand("compare", "Compare a team's eval results with its target model's");
  struct Opts {
    std::string team, target, json_out;
    eval::CompareOptions c;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("team", o->team, "team results.json (or its folder)")->required();
  cmd->add_option("target", o->target, "target model results.json (or its folder)")->required();
  cmd->add_option("--task", o->c.tasks, "benchmark set (default: every shared task)");
  cmd->add_option("--resamples", o->c.resamples, "bootstrap / permutation draws")->check(CLI::Range(100, 100000));
  cmd->add_option("--json", o->json_out, "write the comparison as JSON");
  cmd->callback([o] {
    auto c = eval::compare_results(o->team, o->target, o->c);
    std::fputs(eval::compare_table(c).c_str(), stdout);
    if (!o->json_out.empty()) {
      std::ofstream f(o->json_out);
      f << c.dump(2) << '\n';
      if (!f) fail<IoError>(o->json_out, "cannot write");
    }
  });
}

}  // namespace kaival::cli
