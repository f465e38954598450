// kaival demo: a small end-to-end run on the committed fixtures only (no
// network, no outside service). Today it covers what exists: reading every
// checkpoint format, tokenizing Korean and English, and the independence
// (lineage) analysis of four "team" models against a "foreign" model. It says
// plainly which parts of a stage it does not run yet.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/commands.h"
#include "core/error.h"
#include "core/text.h"
#include "lineage/analysis.h"
#include "lineage/report.h"
#include "tokenizer/tokenizer.h"
#include "weights/checkpoint.h"

namespace kaival::cli {

namespace fs = std::filesystem;

namespace {

struct DemoTeam {
  const char* team;
  const char* folder;  // under testdata/models
  const char* truth;   // what the fixture generator made it (shown after the verdict)
};

// The foreign model every team is checked against, and the mini cohort. One
// team secretly continued training the foreign model.
constexpr const char* kForeign = "base-a";
constexpr DemoTeam kTeams[] = {
    {"Team Hana (하나)", "finetune-a", "continued training of the foreign model"},
    {"Team Dul (둘)", "indep-s2", "trained from its own initialisation, same data"},
    {"Team Set (셋)", "indep-b", "trained from its own initialisation, other data"},
    {"Team Net (넷)", "small-c", "smaller model of its own"},
};

void step(int n, int total, const std::string& what) {
  std::printf("\n[%d/%d] %s\n", n, total, what.c_str());
  std::fflush(stdout);
}

void inspect_formats(const fs::path& models) {
  const std::vector<fs::path> paths = {
      models / kForeign, models / "base-a-sharded", models / "base-a-pt" / "pytorch_model.bin",
      models / "base-a-gguf" / "base-a-F16.gguf", models / "base-a-gguf" / "base-a-Q8_0.gguf",
      models / "base-a-gguf" / "base-a-Q4_K.gguf"};
  std::printf("  %-44s %-20s %-8s %10s %8s\n", "checkpoint", "format", "family", "parameters", "tensors");
  for (const auto& p : paths) {
    auto ck = weights::Checkpoint::open(p.string());
    std::printf("  %-44s %-20s %-8s %10lld %8zu\n", fs::relative(p, models).string().c_str(),
                std::string(weights::format_name(ck.format())).c_str(), ck.architecture().family.c_str(),
                static_cast<long long>(ck.parameter_count()), ck.tensors().size());
  }
}

void tokenize_sample(const fs::path& models) {
  auto tok = tokenizer::Tokenizer::open((models / kForeign).string());
  const std::string text = "독자 AI 파운데이션 모델 evaluation, 2026.";
  auto ids = tok->encode(text);
  std::printf("  tokenizer: %s, %zu tokens in vocabulary\n", std::string(tok->type()).c_str(),
              tok->vocab_size());
  std::printf("  \"%s\" -> %zu ids:", text.c_str(), ids.size());
  for (auto id : ids) std::printf(" %d", id);
  std::printf("\n  decoded back: \"%s\"\n", tok->decode(ids, true).c_str());
}

int run_lineage(const fs::path& models, const fs::path& out) {
  lineage::Options opt;
  // Prepare each model once; analyze_all compares every pair (teams against
  // the foreign model, and teams among themselves for the report).
  std::vector<lineage::Prepared> all;
  all.push_back(lineage::prepare((models / kForeign).string(), opt));
  for (const auto& t : kTeams) all.push_back(lineage::prepare((models / t.folder).string(), opt));
  auto multi = lineage::analyze_all(all, {}, opt);

  int caught = 0;
  std::printf("  %s %-12s %-14s %s\n", pad_right("team", 18).c_str(), "verdict", "p (combined)",
              "what the fixture really is");
  for (size_t i = 0; i < std::size(kTeams); ++i) {
    const std::string& label = all[i + 1].label;
    for (const auto& r : multi.pairs) {
      if (!((r.a == label && r.b == all[0].label) || (r.b == label && r.a == all[0].label))) continue;
      std::printf("  %s %-12s %-14s %s\n", pad_right(kTeams[i].team, 18).c_str(), r.verdict.c_str(),
                  lineage::format_p(r.log10p).c_str(), kTeams[i].truth);
      if (r.verdict != "independent") ++caught;
    }
  }
  std::vector<lineage::InputInfo> inputs;
  for (const auto& p : all) inputs.push_back(lineage::describe_input(p));
  auto report = lineage::report_json(multi, inputs, {}, opt);
  fs::create_directories(out);
  std::ofstream(out / "lineage.json") << report.dump(2) << "\n";
  std::ofstream(out / "lineage.html") << lineage::html_report(report);
  return caught;
}

void run_demo(const std::string& data_dir, const std::string& out_dir) {
  const fs::path models = fs::path(data_dir) / "models";
  if (!fs::is_directory(models / kForeign))
    fail<IoError>(models.string(), "fixture models not found (pass --data to the testdata folder)");
  const auto t0 = std::chrono::steady_clock::now();
  const int total = 3;
  std::printf("kaival demo: a mini independence check on the committed tiny models\n");

  step(1, total, "Reading the foreign model in every supported format");
  inspect_formats(models);

  step(2, total, "Tokenizing Korean and English with the model's own tokenizer");
  tokenize_sample(models);

  step(3, total, "Independence (독자성) analysis: each team's model against the foreign model");
  int flagged = run_lineage(models, out_dir);

  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\n%d of %zu teams flagged as not independent. Lineage report: %s/lineage.html (JSON: lineage.json)\n",
              flagged, std::size(kTeams), out_dir.c_str());
  std::printf("Done in %.1f s.\n\n", secs);
  std::printf(
      "Not covered by this demo yet (not built): benchmarks through the local OpenAI-compatible\n"
      "server, the human evaluation web service, and the stage engine with its HTML report.\n"
      "See README.md, section \"Not built yet\".\n");
}

}  // namespace

void register_demo(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "Run a small end-to-end check on the committed fixtures");
  auto data = std::make_shared<std::string>(std::string(KAIVAL_SOURCE_DIR) + "/testdata");
  auto out = std::make_shared<std::string>("kaival-demo");
  cmd->add_option("--data", *data, "Folder holding the fixtures (testdata/)");
  cmd->add_option("--out", *out, "Where to write the reports");
  cmd->callback([data, out] { run_demo(*data, *out); });
}

}  // namespace kaival::cli
