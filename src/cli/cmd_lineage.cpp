// kaival lineage A B [MORE...] [--controls X ...] [--json FILE] [--html FILE] [--fail-on derived|partial]
#include <cblas.h>
#include <malloc.h>

#include <cstdio>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "core/error.h"
#include "lineage/analysis.h"
#include "lineage/report.h"

namespace kaival::cli {

namespace {

struct LineageArgs {
  std::vector<std::string> models;
  std::vector<std::string> controls;
  std::string json_path, html_path, fail_on;
  double alpha = 0.01;
  bool no_hash = false;
  bool quiet = false;
};

void write_file(const std::string& path, const std::string& text) {
  if (path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return;
  }
  std::ofstream f(path, std::ios::binary);
  if (!f) fail<IoError>(path, "cannot open for writing");
  f << text;
  if (!f) fail<IoError>(path, "write failed");
}

void run(const LineageArgs& args) {
  // Large per-layer buffers are freed and allocated again for every layer:
  // keep them in the heap instead of fresh mappings (fresh pages fault, which
  // is slow on virtual machines).
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  // The two models are read on two threads; BLAS threads on top of them
  // would only spin.
  openblas_set_num_threads(1);
  lineage::Options opt;
  opt.alpha = args.alpha;
  if (!args.quiet) opt.progress = [](const std::string& s) { std::fprintf(stderr, "lineage: %s\n", s.c_str()); };

  std::vector<lineage::Prepared> models, controls;
  for (const auto& p : args.models) models.push_back(lineage::prepare(p, opt));
  for (const auto& p : args.controls) controls.push_back(lineage::prepare(p, opt));

  // Hash the inputs on the other core while the analysis runs.
  auto describe = [&](const std::vector<lineage::Prepared>& v) {
    std::vector<lineage::InputInfo> out;
    for (const auto& p : v) out.push_back(lineage::describe_input(p, !args.no_hash));
    return out;
  };
  auto hashed_models = std::async(std::launch::async, describe, std::cref(models));
  auto hashed_controls = std::async(std::launch::async, describe, std::cref(controls));

  lineage::MultiResult result = lineage::analyze_all(models, controls, opt);
  auto inputs = hashed_models.get();
  auto control_inputs = hashed_controls.get();

  std::string summary = lineage::terminal_summary(result, opt);
  std::fwrite(summary.data(), 1, summary.size(), stdout);
  std::fflush(stdout);

  nlohmann::json report = lineage::report_json(result, inputs, control_inputs, opt);
  if (!args.json_path.empty()) write_file(args.json_path, report.dump(1) + "\n");
  if (!args.html_path.empty()) write_file(args.html_path, lineage::html_report(report));

  if (!args.fail_on.empty()) {
    for (const auto& p : result.pairs) {
      bool hit = p.verdict == "derived" || (args.fail_on == "partial" && p.verdict == "partial");
      if (hit) throw CLI::RuntimeError(3);
    }
  }
}

}  // namespace

void register_lineage(CLI::App& app) {
  auto args = std::make_shared<LineageArgs>();
  CLI::App* sub = app.add_subcommand(
      "lineage", "Independence analysis: which components of one model were reused or derived from another");
  sub->add_option("models", args->models, "two or more model folders or files (safetensors, GGUF, pytorch_model.bin)")
      ->required()
      ->expected(2, -1);
  sub->add_option("--controls", args->controls,
                  "unrelated models of the same architecture, reported as an empirical reference");
  sub->add_option("--json", args->json_path, "write the JSON report (schemas/lineage-report.schema.json); '-' for stdout");
  sub->add_option("--html", args->html_path, "write a self-contained HTML report");
  sub->add_option("--fail-on", args->fail_on, "exit 3 when a pair is derived (or derived/partial)")
      ->check(CLI::IsMember({"derived", "partial"}));
  sub->add_option("--alpha", args->alpha, "significance level after multiple-testing correction (default 0.01)")
      ->check(CLI::Range(1e-12, 0.5));
  sub->add_flag("--no-hash", args->no_hash, "skip SHA-256 of the input files");
  sub->add_flag("--quiet", args->quiet, "no progress on stderr");
  sub->callback([args] { run(*args); });
}

}  // namespace kaival::cli
