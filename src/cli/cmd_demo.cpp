// kaival demo: a mini stage end to end on the committed fixtures only (no
// network, no outside service). The work is in stage/demo.cpp.
#include <memory>
#include <string>

#include "cli/commands.h"
#include "stage/demo.h"

namespace kaival::cli {

void register_demo(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "Run a mini stage of five teams end to end on the committed tiny models");
  auto o = std::make_shared<stage::DemoOptions>();
  o->data_dir = std::string(KAIVAL_SOURCE_DIR) + "/testdata";
  cmd->add_option("--data", o->data_dir, "Folder holding the fixtures (testdata/)");
  cmd->add_option("--out", o->out_dir, "Where to write models, results, panels and the report");
  cmd->add_flag("--quiet", o->quiet, "No progress output");
  cmd->callback([o] { stage::run_demo(*o); });
}

}  // namespace kaival::cli
