// The fixture program (YAML) and the stage result it produces conform to
// schemas/program.schema.json and schemas/stage-result.schema.json.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../support/json_schema.h"
#include "eval/yaml_json.h"
#include "stage/engine.h"
#include "stage/program.h"

using nlohmann::json;
using kaival::testing_support::join_errors;
using kaival::testing_support::JsonSchema;

namespace {

const std::string kSrc = KAIVAL_SOURCE_DIR;

json load_program_json(const std::string& path) { return json(kaival::eval::read_yaml_file(path)); }

}  // namespace

TEST(Schema, FixtureProgramConforms) {
  auto c = JsonSchema::load(kSrc + "/schemas/program.schema.json");
  json prog = load_program_json(std::string(KAIVAL_TESTDATA) + "/stage/first/program.yaml");
  auto errs = c.errors(prog);
  EXPECT_TRUE(errs.empty()) << join_errors(errs);
  // The checker is not vacuous: a misspelt key is caught.
  prog["stages"][0]["advnce"] = 3;
  EXPECT_FALSE(c.errors(prog).empty());
}

TEST(Schema, StageResultConforms) {
  auto c = JsonSchema::load(kSrc + "/schemas/stage-result.schema.json");
  auto p = kaival::stage::load_program(std::string(KAIVAL_TESTDATA) + "/stage/first/program.yaml");
  kaival::stage::RunOptions o;
  o.stage = "s1";
  o.replicates = 30;
  json doc = kaival::stage::run(p, o).doc;
  auto errs = c.errors(doc);
  EXPECT_TRUE(errs.empty()) << join_errors(errs);
  doc["teams"][0]["decision"] = "promoted";
  EXPECT_FALSE(c.errors(doc).empty());
}
