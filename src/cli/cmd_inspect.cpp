#include "cli/commands.h"

namespace kaival::cli {
void register_inspect(CLI::App& app) { app.add_subcommand("inspect", "(being built)"); }
}  // namespace kaival::cli
