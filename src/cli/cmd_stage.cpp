// kaival stage run | bundle | verify: the stage decision, its evidence bundle
// and the re-computation that checks it. The work is in stage/ and report/.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "core/error.h"
#include "report/site.h"
#include "stage/bundle.h"
#include "stage/engine.h"
#include "stage/program.h"

namespace kaival::cli {

namespace fs = std::filesystem;

void register_stage(CLI::App& app) {
  struct Opts {
    std::string program, out, stage, bundle;
    int replicates = -1;
    bool no_site = false, quiet = false;
  };
  auto o = std::make_shared<Opts>();

  auto* stage = app.add_subcommand("stage", "Stage decisions from a program file (kaival.program/1)");
  stage->require_subcommand(1);
  auto* run = stage->add_subcommand("run", "Score a stage, decide who advances, write stage-result.json and the HTML report");
  run->add_option("program", o->program, "program file (YAML, kaival.program/1)")->required();
  run->add_option("--out", o->out, "output folder (stage-result.json, index.html, index.ko.html)")->required();
  run->add_option("--stage", o->stage, "stage id (default: the program's last stage)");
  run->add_option("--replicates", o->replicates, "bootstrap replicates (default: as the program says)")->check(CLI::Range(0, 100000));
  run->add_flag("--no-site", o->no_site, "write stage-result.json only");
  run->add_flag("--quiet", o->quiet, "no summary table");
  run->callback([o] {
    auto program = stage::load_program(o->program);
    stage::RunOptions opt;
    opt.stage = o->stage;
    opt.replicates = o->replicates;
    auto r = stage::run(program, opt);
    fs::create_directories(o->out);
    std::string json_path = (fs::path(o->out) / "stage-result.json").string();
    std::ofstream f(json_path, std::ios::binary);
    f << r.doc.dump(1) << "\n";
    if (!f) fail<IoError>(json_path, "write failed");
    if (!o->no_site) report::write_site(r.doc, o->out);
    if (!o->quiet) std::fputs(stage::summary_table(r).c_str(), stdout);
    std::printf("\n결과 result: %s\n", json_path.c_str());
    if (!o->no_site) std::printf("보고서 report: %s (open in a browser; no server needed)\n", (fs::path(o->out) / "index.html").string().c_str());
  });
  auto* rep = stage->add_subcommand("report", "Write the HTML report of an existing stage-result.json");
  rep->add_option("result", o->program, "stage-result.json")->required();
  rep->add_option("--out", o->out, "output folder")->required();
  rep->callback([o] {
    std::ifstream f(o->program, std::ios::binary);
    if (!f) fail<IoError>(o->program, "cannot open");
    nlohmann::json doc;
    try {
      doc = nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception& e) {
      fail(o->program, "not valid JSON: {}", e.what());
    }
    if (!doc.is_object() || doc.value("schema", "") != "kaival.stage-result/1") fail(o->program, "not a kaival.stage-result/1 document");
    try {
      report::write_site(doc, o->out);
    } catch (const nlohmann::json::exception& e) {
      fail(o->program, "not a complete stage result: {}", e.what());
    }
    std::printf("보고서 report: %s\n", (fs::path(o->out) / "index.html").string().c_str());
  });
  auto* check = stage->add_subcommand("check", "Validate a program file (rules, registry, moving-target rule) without scoring");
  check->add_option("program", o->program, "program file")->required();
  check->callback([o] {
    auto program = stage::load_program(o->program);
    std::printf("%s: valid kaival.program/1 (%zu models, %zu teams, %zu stages)\n", o->program.c_str(), program.models.size(),
                program.teams.size(), program.stages.size());
  });

  auto* bundle = app.add_subcommand("bundle", "Write an evidence bundle: the program, every input with hashes, and the stage result");
  bundle->add_option("program", o->program, "program file")->required();
  bundle->add_option("--out", o->out, "bundle folder")->required();
  bundle->add_option("--stage", o->stage, "stage id (default: the last)");
  bundle->add_option("--replicates", o->replicates, "bootstrap replicates (default: as the program says)")->check(CLI::Range(0, 100000));
  bundle->callback([o] {
    auto program = stage::load_program(o->program);
    stage::RunOptions opt;
    opt.stage = o->stage;
    opt.replicates = o->replicates;
    auto r = stage::write_bundle(program, opt, o->out);
    std::printf("bundle: %s (%zu input files + stage-result.json + manifest.json)\n", o->out.c_str(), r.inputs.size());
  });

  auto* verify = app.add_subcommand("verify", "Re-compute a bundle's stage result and confirm every number (exit 1 on any difference)");
  verify->add_option("bundle", o->bundle, "bundle folder")->required();
  verify->callback([o] {
    auto rep = stage::verify_bundle(o->bundle);
    if (rep.ok) {
      std::printf("verified: %s reproduces its stage result exactly (같은 결과 재현)\n", o->bundle.c_str());
      return;
    }
    std::fprintf(stderr, "verify FAILED for %s (%zu differences):\n", o->bundle.c_str(), rep.problems.size());
    for (const auto& p : rep.problems) std::fprintf(stderr, "  %s\n", p.c_str());
    throw CLI::RuntimeError(1);
  });
}

}  // namespace kaival::cli
