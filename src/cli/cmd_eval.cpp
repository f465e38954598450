// kaival eval --model URL --task CARD [--task CARD]... [--limit N] [--concurrency N]
//             [--out DIR] [--cache FILE] [--model-id NAME] [--served-model NAME]
//             [--timeout S] [--max-retries N] [--data-cache DIR] [--data-dir DIR] [--no-progress] [--window N]
//             [--no-prefetch]
//             [--judge URL] [--judge-model NAME] [--store postgresql://... [--run NAME] [--no-work]]
// Runs task cards against an OpenAI-compatible server; prints a table and
// writes results.json, samples_<task>.jsonl and results.html under DIR.
// Responses are cached (DIR/cache.sqlite by default): rerunning after a crash
// or kill -9 sends only the requests that had not completed.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "eval/runner.h"
#include "store/postgres.h"

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
  cmd->add_option("--task", o->tasks, "task card (YAML), repeatable; CARD#name1,name2 picks tasks of an expanded card (tasks/kmmlu.yaml#kmmlu_law)")->required();
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
  cmd->add_option("--judge", o->run.judge_url, "OpenAI-compatible judge server for tasks with metric 'judge'");
  cmd->add_option("--judge-model", o->run.judge_model, "the judge request's \"model\" (default: first of its GET /v1/models)");
  cmd->add_option("--store", o->run.store_url,
                  "postgresql://... : queue the requests there for `kaival worker` processes on any machine");
  cmd->add_option("--window", o->run.window,
                  "rows read, sent and scored at a time; memory is O(window) (default max(64, 8 x concurrency))");
  cmd->add_flag("--no-prefetch", [o](int64_t) { o->run.prefetch = false; },
                "do not read the next window while this one is sent and scored (one window in memory, not two)");
  cmd->add_option("--run", o->run.run_name,
                  "queue run name (default: a hash of the model URL, the cards and the datasets)");
  cmd->add_flag("--no-work", [o](int64_t) { o->run.work_here = false; },
                "with --store: only enqueue, wait and score; workers answer every request");
  cmd->callback([o] {
    if (!o->run.store_url.empty() && !store::is_postgres_url(o->run.store_url))
      throw CLI::ValidationError("--store", "expects a postgresql:// URL (SQLite is the default without --store)");
    o->run.client.timeout_ms = static_cast<int>(o->timeout_s * 1000);
    o->run.progress = !o->no_progress;
    auto results = eval::run_eval(o->tasks, o->run);
    std::fputs(eval::results_table(results).c_str(), stdout);
    for (auto it = results["results"].begin(); it != results["results"].end(); ++it) {
      if (it.value().contains("judge_failures") && it.value()["judge_failures"].get<int64_t>() > 0)
        std::fprintf(stderr, "%s: %lld judge replies without a readable score (left out of the means)\n", it.key().c_str(),
                     static_cast<long long>(it.value()["judge_failures"].get<int64_t>()));
      if (it.value().contains("warnings"))
        for (const auto& w : it.value()["warnings"]) std::fprintf(stderr, "%s: warning: %s\n", it.key().c_str(), w.get<std::string>().c_str());
    }
    if (!o->run.out_dir.empty()) std::fprintf(stderr, "wrote %s/results.json\n", o->run.out_dir.c_str());
  });
}

}  // namespace kaival::cli
