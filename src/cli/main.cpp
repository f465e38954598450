// kaival: one binary, subcommands. See README.md for the architecture.
#include <cstdio>
#include <exception>

#include "cli/commands.h"
#include "core/error.h"
#include "core/version.h"

int main(int argc, char** argv) {
  CLI::App app{"kaival: open evaluation and verification for sovereign foundation model programs"};
  app.set_version_flag("--version", std::string(kaival::kVersion));
  app.require_subcommand(1);
  kaival::cli::register_inspect(app);
  kaival::cli::register_tokenize(app);
  kaival::cli::register_demo(app);
  kaival::cli::register_lineage(app);
  kaival::cli::register_generate(app);
  kaival::cli::register_activations(app);
  kaival::cli::register_stage(app);
  kaival::cli::register_serve_model(app);
  kaival::cli::register_eval(app);
  kaival::cli::register_worker(app);
  kaival::cli::register_perf(app);
  kaival::cli::register_compare(app);
  kaival::cli::register_serve(app);
  kaival::cli::register_arena(app);
  kaival::cli::register_import_task(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const kaival::Error& e) {
    std::fprintf(stderr, "kaival: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kaival: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
