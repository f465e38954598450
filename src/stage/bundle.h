#pragma once
// Evidence bundles: the program file and every input it names, copied with
// their hashes next to the stage result they produced, so anyone can re-run
// the decision (`kaival verify BUNDLE`) and get the same numbers.
#include <string>
#include <vector>

#include "stage/engine.h"

namespace kaival::stage {

// Writes DIR/program.yaml (as given), the inputs under their program-relative
// paths, DIR/stage-result.json (no timestamp) and DIR/manifest.json
// (kaival.bundle/1: every file with SHA-256 and size). Inputs must lie inside
// the program's folder. Returns the result it wrote.
StageResult write_bundle(const Program& program, const RunOptions& opt, const std::string& dir);

struct VerifyReport {
  bool ok = true;
  std::vector<std::string> problems;  // hash mismatches, missing files, differing numbers
};
// Checks the hashes in the manifest, re-runs the stage from the bundled files
// and compares every number with the bundled stage-result.json.
VerifyReport verify_bundle(const std::string& dir);

}  // namespace kaival::stage
