#include "cli/commands.h"

namespace kaival::cli {
void register_tokenize(CLI::App& app) { app.add_subcommand("tokenize", "(being built)"); }
}  // namespace kaival::cli
