#include "stage/bundle.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "core/hash.h"
#include "core/version.h"

namespace kaival::stage {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  if (!f) fail<IoError>(p.string(), "cannot write");
  f << text;
  if (!f) fail<IoError>(p.string(), "write failed");
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) fail<IoError>(p.string(), "cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A bundle path must stay inside the bundle: relative, no "..".
bool safe_relative(const std::string& rel) {
  fs::path p(rel);
  if (rel.empty() || p.is_absolute()) return false;
  for (const auto& c : p)
    if (c == "..") return false;
  return true;
}

}  // namespace

StageResult write_bundle(const Program& program, const RunOptions& opt_in, const std::string& dir) {
  RunOptions opt = opt_in;
  opt.timestamp = false;
  StageResult r = run(program, opt);
  fs::path out(dir);
  fs::create_directories(out);
  json files = json::array();
  std::string program_rel;
  for (const auto& f : r.inputs) {
    if (!safe_relative(f.path))
      fail(program.path, "input '{}' lies outside the program's folder; a bundle needs every input below it", f.path);
    fs::path src = fs::path(program.dir) / f.path;
    std::string text = read_text(src);
    if (sha256_hex(text) != f.sha256) fail(f.path, "changed while the bundle was written");
    write_text(out / f.path, text);
    files.push_back({{"path", f.path}, {"sha256", f.sha256}, {"bytes", text.size()}, {"kind", f.kind}});
    if (f.kind == "program") program_rel = f.path;
  }
  std::string result_text = r.doc.dump(1) + "\n";
  write_text(out / "stage-result.json", result_text);
  json manifest = {{"schema", "kaival.bundle/1"},
                   {"kaival_version", std::string(kVersion)},
                   {"program", program_rel},
                   {"stage", r.doc["stage"]["id"]},
                   {"replicates", r.doc["bootstrap"]["replicates"]},
                   {"files", files},
                   {"result", {{"path", "stage-result.json"}, {"sha256", sha256_hex(result_text)}}}};
  write_text(out / "manifest.json", manifest.dump(1) + "\n");
  return r;
}

VerifyReport verify_bundle(const std::string& dir) {
  VerifyReport rep;
  fs::path root(dir);
  json manifest;
  std::string mpath = (root / "manifest.json").string();
  try {
    manifest = json::parse(read_text(root / "manifest.json"));
  } catch (const json::exception& e) {
    fail(mpath, "not valid JSON: {}", e.what());
  }
  if (!manifest.is_object() || manifest.value("schema", "") != "kaival.bundle/1") fail(mpath, "not a kaival.bundle/1 manifest");
  if (!manifest.contains("files") || !manifest["files"].is_array() || !manifest.contains("program") ||
      !manifest["program"].is_string() || !manifest.contains("stage") || !manifest["stage"].is_string() ||
      !manifest.contains("replicates") || !manifest["replicates"].is_number_integer())
    fail(mpath, "manifest needs files, program, stage and replicates");
  for (const auto& f : manifest["files"]) {
    if (!f.is_object() || !f.contains("path") || !f["path"].is_string() || !f.contains("sha256") || !f["sha256"].is_string())
      fail(mpath, "files: each entry needs path and sha256");
    std::string rel = f["path"];
    if (!safe_relative(rel)) fail(mpath, "file path '{}' leaves the bundle", rel);
    fs::path p = root / rel;
    if (!fs::exists(p)) {
      rep.problems.push_back(fmt::format("{}: missing", rel));
      continue;
    }
    std::string got = sha256_file(p.string());
    if (got != f["sha256"].get<std::string>())
      rep.problems.push_back(fmt::format("{}: sha256 {} but the manifest says {}", rel, got, f["sha256"].get<std::string>()));
  }
  std::string prel = manifest["program"];
  if (!safe_relative(prel)) fail(mpath, "program path '{}' leaves the bundle", prel);
  json stored;
  std::string rpath = (root / "stage-result.json").string();
  try {
    stored = json::parse(read_text(root / "stage-result.json"));
  } catch (const json::exception& e) {
    fail(rpath, "not valid JSON: {}", e.what());
  }
  if (rep.problems.empty()) {  // recompute only from intact inputs
    Program program = load_program((root / prel).string());
    RunOptions opt;
    opt.stage = manifest["stage"];
    opt.replicates = manifest["replicates"];
    opt.timestamp = false;
    StageResult r = run(program, opt);
    for (auto& d : diff_results(stored, r.doc)) rep.problems.push_back("stage-result.json " + d);
  }
  rep.ok = rep.problems.empty();
  return rep;
}

}  // namespace kaival::stage
