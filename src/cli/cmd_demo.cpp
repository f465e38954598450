#include "cli/commands.h"

namespace kaival::cli {
void register_demo(CLI::App& app) { app.add_subcommand("demo", "(being built)"); }
}  // namespace kaival::cli
