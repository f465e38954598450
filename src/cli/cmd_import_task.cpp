// kaival import-task IN.yaml OUT.yaml
// Maps an lm-evaluation-harness task file (with its include: parents) to a
// kaival.task/1 card; prints every key or option it could not map.
#include <cstdio>
#include <fstream>
#include <string>

#include "cli/commands.h"
#include "core/error.h"
#include "eval/lmeval_import.h"
#include "eval/task.h"

namespace kaival::cli {

void register_import_task(CLI::App& app) {
  auto* cmd = app.add_subcommand("import-task", "Convert an lm-evaluation-harness task YAML into a kaival task card");
  struct Opts {
    std::string in, out;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("IN", o->in, "lm-evaluation-harness task YAML")->required()->check(CLI::ExistingFile);
  cmd->add_option("OUT", o->out, "kaival.task/1 card to write")->required();
  cmd->callback([o] {
    auto imported = eval::import_lmeval_task(o->in);
    std::string yaml = eval::card_to_yaml(imported, o->in);
    {
      std::ofstream f(o->out, std::ios::binary);
      f << yaml;
      if (!f) fail<IoError>(o->out, "cannot write");
    }
    eval::load_card(o->out);  // the written card must load
    for (const auto& w : imported.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    std::fprintf(stderr, "wrote %s (%zu warnings)\n", o->out.c_str(), imported.warnings.size());
  });
}

}  // namespace kaival::cli
