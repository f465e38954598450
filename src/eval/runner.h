#pragma once
// Runs task cards against an OpenAI-compatible server and writes
// `kaival.eval-results/1` (docs/formats.md): results.json, samples_<task>.jsonl,
// results.html. Every response is cached in SQLite under the SHA-256 of the
// request (endpoint path + JSON body), so a run killed with kill -9 resumes
// without sending a completed request again.
//
// In-process use (the demo):
//   kaival::eval::RunOptions opt;
//   opt.model_url = "http://127.0.0.1:8080";   // with or without /v1
//   opt.out_dir = "out/eval";                   // "" writes nothing
//   auto results = kaival::eval::run_eval({"tasks/kobest_boolq.yaml"}, opt);
//   std::cout << kaival::eval::results_table(results);
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/http_client.h"
#include "eval/task.h"

namespace kaival::eval {

// What a run held at once (the streaming bound; tests check it).
// Counted while rows are alive, so the window being scored and the one read ahead add up.
struct RunStats {
  size_t max_items_held = 0;     // dataset rows (items) in memory at once
  size_t max_requests_held = 0;  // requests (bodies and answers) in memory at once
  size_t chunks = 0;             // windows sent
  size_t prefetched = 0;         // windows read ahead on the background thread
};

struct RunOptions {
  std::string model_url;
  std::string model_id;      // the program's name for the model; default: the served id
  std::string served_model;  // the request's "model"; default: the first id of GET /v1/models
  int64_t limit = -1;        // first N items per task
  ClientOptions client;
  std::string out_dir;
  std::string cache_path;  // default <out_dir>/cache.sqlite (":memory:" when out_dir is empty)
  LoadOptions data;
  bool progress = true;  // progress bar on stderr
  int bootstrap = 1000;
  // Many machines (eval/queue.h): with a postgresql:// URL the requests go to that queue and
  // `kaival worker` processes answer them; this process works too unless work_here is false.
  // run_name defaults to a hash of the model URL, served model, limit, and the cards' and
  // datasets' SHA-256 (what determines the requests), so a rerun resumes.
  std::string store_url;
  std::string run_name;
  bool work_here = true;
  // LLM-as-judge (metric `judge`, eval/judge.h): an OpenAI-compatible server and its model id
  // (default: the first of its GET /v1/models). Without a URL judged metrics are skipped, with a warning.
  std::string judge_url;
  std::string judge_model;
  // Rows read, sent and scored per window (memory is O(window), not O(dataset)); 0: max(64, 8 x
  // concurrency). Every kind of task streams: multi-turn and judged tasks run their later turns
  // and the judge per window; distributed runs enqueue each window as it is read.
  size_t window = 0;
  // Read (and, with a store, enqueue) the next window on a background thread while this one is
  // sent and scored: at most two windows in memory.
  bool prefetch = true;
  RunStats* stats = nullptr;  // filled at the end of the run when set
};

nlohmann::ordered_json run_eval(const std::vector<std::string>& card_paths, const RunOptions& opt);

// A fixed-width terminal table of task, metric, value, stderr, n.
std::string results_table(const nlohmann::ordered_json& results);
// A small self-contained HTML page of the same.
std::string results_html(const nlohmann::ordered_json& results);

// Sum of the log-probabilities of the tokens after `context` in an echoed
// completion (`logprobs` object of choices[0]); text_offset may count bytes
// (llama.cpp, kaival) or characters (vLLM): the unit is detected from the
// tokens. Throws UnsupportedError when the server sent no prompt logprobs.
// `echoed_text` (choices[0].text) realigns offsets that count an unshown "<|bos|>". kaival's
// runner itself splits context and continuation by token counts (usage.prompt_tokens of the
// context alone), which does not depend on offsets; this function is the offset-based variant.
double continuation_logprob(const nlohmann::json& logprobs, const std::string& context, const std::string& full,
                            const std::string& where, const std::string* echoed_text = nullptr);

}  // namespace kaival::eval
