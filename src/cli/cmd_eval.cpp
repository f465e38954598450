// kaival eval --model URL --task CARD [--task CARD]... [--limit N] [--concurrency N]
//             [--out DIR] [--cache FILE] [--model-id NAME] [--served-model NAME]
//             [--timeout S] [--max-retries N] [--data-cache DIR] [--data-dir DIR] [--no-progress]
// Runs task cards against an OpenAI-compatible server; prints a table and
// writes results.json, samples_<task>.jsonl and results.html under DIR.
// Responses are cached (DIR/cache.sqlite by default): rerunning after a crash
// or kill -9 sends only the requests that had not completed.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "eval/runner.h"

namespace kaival::cli {

void register_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Run benchmark task cards against an OpenAI-compatible server");
  struct Opts {
    eval::RunOptions run;
    std::vector<std::string> tasks;
    double timeout_s = 300;
    bool no_progress = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->run.model_url, "server URL, e.g. http://127.0.0.1:8080 (with or without /v1)")->required();
  cmd->add_option("--task", o->tasks, "task card (YAML), repeatable")->required();
  cmd->add_option("--limit", o->run.limit, "first N items per task");
  cmd->add_option("--concurrency", o->run.client.concurrency, "requests in flight at most")->check(CLI::Range(1, 1024));
  cmd->add_option("--out", o->run.out_dir, "output directory");
  cmd->add_option("--cache", o->run.cache_path, "SQLite response cache (default OUT/cache.sqlite)");
  cmd->add_option("--model-id", o->run.model_id, "the program's name for the model (default: the served id)");
  cmd->add_option("--served-model", o->run.served_model, "the request's \"model\" (default: first of GET /v1/models)");
  cmd->add_option("--timeout", o->timeout_s, "per-request timeout in seconds");
  cmd->add_option("--max-retries", o->run.client.max_retries, "retries per request (429, 5xx, timeouts, cut streams)");
  cmd->add_option("--data-cache", o->run.data.cache_dir, "where Hugging Face Hub dataset files are cached");
  cmd->add_option("--data-dir", o->run.data.local_dir,
                  "read every split from DIR/<task>/<split>.<format> instead of its source");
  cmd->add_flag("--no-progress", o->no_progress, "no progress bar on stderr");
  cmd->callback([o] {
    o->run.client.timeout_ms = static_cast<int>(o->timeout_s * 1000);
    o->run.progress = !o->no_progress;
    auto results = eval::run_eval(o->tasks, o->run);
    std::fputs(eval::results_table(results).c_str(), stdout);
    if (!o->run.out_dir.empty()) std::fprintf(stderr, "wrote %s/results.json\n", o->run.out_dir.c_str());
  });
}

}  // namespace kaival::cli
