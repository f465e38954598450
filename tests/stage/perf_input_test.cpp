// A `kaival perf --out` measurement as a stage input: a real sweep against the local
// server on a fixture model, read by the stage engine through one of its runs.
#include <filesystem>

#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/perf.h"
#include "stage/engine.h"
#include "stage/inputs.h"
#include "stage/program.h"
#include "../support/errors.h"
#include "../support/files.h"
#include "../support/fixture_sweep.h"

namespace kaival::stage {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// One sweep (concurrency 1 and 2) of the fixture model, as `kaival perf --out` writes it.
const json& measurement() {
  static const json m = json::parse(eval::perf_json(testing_support::sweep_fixture_model({.per_hour = 2.5})).dump());
  return m;
}

// A copy of the first-stage fixture with the measurement beside hana's summary.
struct Folder {
  testing_support::TempDir tmp{"stage_perf"};
  const fs::path& dir = tmp.path;
  Folder() {
    fs::copy(std::string(KAIVAL_TESTDATA) + "/stage/first", dir, fs::copy_options::recursive);
    testing_support::write_file(dir / "s1/perf/hana-measured.json", measurement().dump(1));
  }
  std::string file() const { return (dir / "s1/perf/hana-measured.json").string(); }
};

const json& run_at(const json& m, int concurrency) {
  for (const auto& r : m["runs"])
    if (r["concurrency"] == concurrency) return r;
  throw std::runtime_error("no run");
}

TEST(PerfInput, MeasurementRunsBecomeTheSummaryKeys) {
  Folder f;
  const json& m = measurement();
  ASSERT_EQ(m["runs"].size(), 2u);
  InputSet in(f.dir.string());
  Perf p = read_perf(in, f.file(), 2);
  const json& r = run_at(m, 2);
  ASSERT_EQ(r["completed"], 4);
  EXPECT_EQ(p.field("ttft_ms.median"), r["ttft_ms"]["median"].get<double>());
  EXPECT_EQ(p.field("ttft_ms.p99"), r["ttft_ms"]["p99"].get<double>());
  EXPECT_EQ(p.field("e2e_ms.mean"), r["e2e_ms"]["mean"].get<double>());
  EXPECT_EQ(p.field("output_tokens_per_s"), r["output_throughput"].get<double>());
  EXPECT_EQ(p.field("requests_per_s"), r["request_throughput"].get<double>());
  EXPECT_EQ(p.field("requests"), 4.0);
  // The machine's price per hour over the run's output throughput.
  ASSERT_TRUE(p.field("cost_per_1m_tokens"));
  EXPECT_NEAR(*p.field("cost_per_1m_tokens"), 2.5 / 3600 / r["output_throughput"].get<double>() * 1e6,
              1e-9 * *p.field("cost_per_1m_tokens"));
  EXPECT_FALSE(p.field("goodput_rps"));  // no SLO given: no goodput, not zero
  EXPECT_FALSE(p.synthetic);
  EXPECT_EQ(p.data["manifest"]["run_concurrency"], 2);
  EXPECT_EQ(p.data["model"], "base-a");
  // The other run gives its own figures.
  EXPECT_EQ(read_perf(in, f.file(), 1).field("output_tokens_per_s"), run_at(m, 1)["output_throughput"].get<double>());
}

TEST(PerfInput, AmbiguousOrMissingRunsNameTheFileAndTheLevels) {
  Folder f;
  InputSet in(f.dir.string());
  auto problem = [&](const std::string& path, int c) {
    return testing_support::error_text<FormatError>([&] { read_perf(in, path, c); });
  };
  std::string e = problem(f.file(), 0);
  EXPECT_NE(e.find("hana-measured.json"), std::string::npos) << e;
  EXPECT_NE(e.find("concurrency 1, 2"), std::string::npos) << e;
  e = problem(f.file(), 8);
  EXPECT_NE(e.find("no run at concurrency 8 (runs at 1, 2)"), std::string::npos) << e;
  // A summary has no runs to pick from.
  e = problem((f.dir / "s1/perf/dul.json").string(), 2);
  EXPECT_NE(e.find("dul.json"), std::string::npos) << e;
  // A lying run is a FormatError, not a crash.
  json bad = measurement();
  bad["runs"][0]["ttft_ms"]["median"] = "fast";
  testing_support::write_file(f.dir / "bad.json", bad.dump());
  e = problem((f.dir / "bad.json").string(), 1);
  EXPECT_NE(e.find("ttft_ms.median: expected a number"), std::string::npos) << e;
}

// The program names one run of the measurement; the diffusion index's perf terms use it,
// relative to the best entry, and cite the file.
TEST(PerfInput, StageScoresATeamFromItsMeasurement) {
  Folder f;
  const fs::path prog = f.dir / "program.yaml";
  std::string text = testing_support::read_file(prog.string());
  const std::string from = "perf: s1/perf/hana.json";
  ASSERT_NE(text.find(from), std::string::npos);
  text.replace(text.find(from), from.size(), "perf: {file: s1/perf/hana-measured.json, concurrency: 2}");
  testing_support::write_file(prog, text);
  RunOptions o;
  o.stage = "s1";
  o.replicates = 20;
  StageResult res = run(load_program(prog.string()), o);
  const json& r = run_at(measurement(), 2);
  const double tps = r["output_throughput"].get<double>();
  InputSet in(f.dir.string());
  const double dul_tps = *read_perf(in, (f.dir / "s1/perf/dul.json").string()).field("output_tokens_per_s");
  ASSERT_GT(tps, dul_tps);  // the tiny fixture model outruns the fixture's 7B-class figures
  auto term = [&](const std::string& team, const std::string& source) -> const json& {
    for (const auto& t : res.doc["teams"])
      if (t["team"] == team)
        for (const auto& x : t["diffusion_index"]["terms"])
          if (x["source"] == source) return x;
    throw std::runtime_error("no term " + source + " for " + team);
  };
  const json& hana = term("hana", "perf:output_tokens_per_s");
  EXPECT_TRUE(hana["available"].get<bool>());
  EXPECT_DOUBLE_EQ(hana["value"].get<double>(), 100.0);  // the best entry
  EXPECT_EQ(hana["from"]["file"], "s1/perf/hana-measured.json");
  EXPECT_NEAR(term("dul", "perf:output_tokens_per_s")["value"].get<double>(), 100 * dul_tps / tps, 1e-9);
  EXPECT_TRUE(term("hana", "perf:ttft_ms.median")["available"].get<bool>());
  EXPECT_TRUE(term("hana", "perf:cost_per_1m_tokens")["available"].get<bool>());
  // A program that names a run the file does not have fails, naming it.
  text.replace(text.find("concurrency: 2}"), 15, "concurrency: 3}");
  testing_support::write_file(prog, text);
  try {
    run(load_program(prog.string()), o);
    FAIL() << "concurrency 3 is not in the file";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("no run at concurrency 3"), std::string::npos) << e.what();
  }
}

TEST(PerfInput, ProgramPerfMappingIsStrict) {
  Folder f;
  const fs::path prog = f.dir / "program.yaml";
  std::string base = testing_support::read_file(prog.string());
  auto error_with = [&](const std::string& perf) {
    std::string text = base;
    const std::string from = "perf: s1/perf/hana.json";
    text.replace(text.find(from), from.size(), "perf: " + perf);
    return testing_support::error_text<FormatError>([&] { parse_program(text, "prog.yaml", f.dir.string()); });
  };
  EXPECT_EQ(error_with("{file: s1/perf/hana-measured.json, concurrency: 2}"), "no error");
  EXPECT_NE(error_with("{file: x.json, concurrency: 0}").find("not a concurrency"), std::string::npos);
  EXPECT_NE(error_with("{file: x.json, concurrency: 1.5}").find("not a concurrency"), std::string::npos);
  EXPECT_NE(error_with("{file: x.json}").find("concurrency"), std::string::npos);
  EXPECT_NE(error_with("{file: x.json, concurrency: 2, rate: 3}").find("unknown key"), std::string::npos);
}

}  // namespace
}  // namespace kaival::stage
