#pragma once
// `kaival demo`: a mini stage of five teams, end to end, on the committed tiny
// models and sample tasks only (no network, no outside service):
//   checkpoints in every format -> tokenizer -> a cohort with a secret
//   fine-tune and a foreign vision encoder -> independence analysis ->
//   benchmarks through the local OpenAI-compatible server -> serving speed ->
//   synthetic user and expert panels in the arena store -> the stage decision
//   and its static HTML report.
// The panels are simulated (an LLM judge with per-voter noise) and labelled
// synthetic in every file and page that shows them.
#include <cstdint>
#include <string>

namespace kaival::stage {

struct DemoOptions {
  std::string data_dir;  // the testdata/ folder (models/, demo/)
  std::string out_dir = "kaival-demo";
  bool quiet = false;    // no progress bars (tests)
  // Size of the run. The defaults are the demo; tests shrink them.
  int64_t items_per_task = -1;  // -1: every item of the sample tasks
  int perf_requests = 12;
  int voters = 40;
  int votes_per_voter = 15;
};

struct DemoOutcome {
  std::string report_html;    // <out>/report/index.html
  std::string stage_result;   // <out>/report/stage-result.json
  std::string arena_db;       // <out>/arena.db
  int flagged = 0;            // teams whose lineage verdict is not independent
  int ineligible = 0;         // teams the gates made ineligible
  double seconds = 0;
};

DemoOutcome run_demo(const DemoOptions& options);

}  // namespace kaival::stage
