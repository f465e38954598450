#pragma once
// Each subcommand lives in its own cmd_*.cpp and registers itself on the app.
// The CLI stays thin: parse options, call libkaival, print.
#include <CLI/CLI.hpp>

namespace kaival::cli {

void register_inspect(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_demo(CLI::App& app);
void register_lineage(CLI::App& app);
void register_generate(CLI::App& app);
void register_activations(CLI::App& app);
void register_stage(CLI::App& app);
void register_serve_model(CLI::App& app);
void register_eval(CLI::App& app);
void register_worker(CLI::App& app);
void register_perf(CLI::App& app);
void register_compare(CLI::App& app);
void register_serve(CLI::App& app);
void register_arena(CLI::App& app);
void register_import_task(CLI::App& app);

}  // namespace kaival::cli
