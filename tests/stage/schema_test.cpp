// The fixture program (YAML) and the stage result it produces conform to
// schemas/program.schema.json and schemas/stage-result.schema.json.
#include <fstream>
#include <regex>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "stage/engine.h"
#include "stage/program.h"

using nlohmann::json;

namespace {

const std::string kSrc = KAIVAL_SOURCE_DIR;

// A small JSON Schema checker for the keywords these schemas use.
class Checker {
 public:
  explicit Checker(json root) : root_(std::move(root)) {}
  void check(const json& v, const json& s, const std::string& path, std::vector<std::string>& errs) const {
    if (s.contains("$ref")) {
      std::string ref = s["$ref"];  // "#/$defs/x"
      check(v, root_["$defs"][ref.substr(8)], path, errs);
      return;
    }
    if (s.contains("oneOf")) {
      int ok = 0;
      for (const auto& alt : s["oneOf"]) {
        std::vector<std::string> e;
        check(v, alt, path, e);
        ok += e.empty();
      }
      if (ok != 1) errs.push_back(path + ": matches " + std::to_string(ok) + " of oneOf");
      return;
    }
    if (s.contains("const") && v != s["const"]) errs.push_back(path + ": not " + s["const"].dump());
    if (s.contains("enum") && std::find(s["enum"].begin(), s["enum"].end(), v) == s["enum"].end())
      errs.push_back(path + ": " + v.dump() + " not in enum");
    if (s.contains("type")) {
      bool ok = false;
      auto types = s["type"].is_array() ? s["type"] : json::array({s["type"]});
      for (const auto& t : types) ok |= is_type(v, t);
      if (!ok) {
        errs.push_back(path + ": wrong type " + std::string(v.type_name()));
        return;
      }
    }
    if (v.is_string() && s.contains("pattern") && !std::regex_search(v.get<std::string>(), std::regex(s["pattern"].get<std::string>())))
      errs.push_back(path + ": does not match " + s["pattern"].get<std::string>());
    if (v.is_number() && s.contains("minimum") && v.get<double>() < s["minimum"].get<double>()) errs.push_back(path + ": below minimum");
    if (v.is_number() && s.contains("maximum") && v.get<double>() > s["maximum"].get<double>()) errs.push_back(path + ": above maximum");
    if (v.is_object()) {
      for (const auto& r : s.value("required", json::array()))
        if (!v.contains(r.get<std::string>())) errs.push_back(path + ": missing " + r.get<std::string>());
      const json props = s.value("properties", json::object());
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (props.contains(it.key())) check(it.value(), props[it.key()], path + "." + it.key(), errs);
        else if (s.contains("additionalProperties")) {
          const json& ap = s["additionalProperties"];
          if (ap.is_boolean() && !ap.get<bool>()) errs.push_back(path + "." + it.key() + ": not allowed");
          else if (ap.is_object()) check(it.value(), ap, path + "." + it.key(), errs);
        }
      }
    }
    if (v.is_array()) {
      if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) errs.push_back(path + ": too few items");
      if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) errs.push_back(path + ": too many items");
      if (s.contains("items"))
        for (size_t i = 0; i < v.size(); ++i) check(v[i], s["items"], path + "[" + std::to_string(i) + "]", errs);
    }
  }
  std::vector<std::string> errors(const json& v) const {
    std::vector<std::string> e;
    check(v, root_, "$", e);
    return e;
  }

 private:
  static bool is_type(const json& v, const std::string& t) {
    if (t == "object") return v.is_object();
    if (t == "array") return v.is_array();
    if (t == "string") return v.is_string();
    if (t == "number") return v.is_number();
    if (t == "integer") return v.is_number_integer() || (v.is_number_float() && v.get<double>() == std::floor(v.get<double>()));
    if (t == "boolean") return v.is_boolean();
    if (t == "null") return v.is_null();
    return false;
  }
  json root_;
};

json load_json(const std::string& p) {
  std::ifstream f(p);
  return json::parse(f);
}

// YAML -> JSON with YAML 1.2 core-schema scalars (bool, int, float, else string).
json to_json(const YAML::Node& n) {
  if (n.IsMap()) {
    json o = json::object();
    for (auto it = n.begin(); it != n.end(); ++it) o[it->first.as<std::string>()] = to_json(it->second);
    return o;
  }
  if (n.IsSequence()) {
    json a = json::array();
    for (const auto& x : n) a.push_back(to_json(x));
    return a;
  }
  if (n.IsNull()) return nullptr;
  std::string s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted
  if (s == "true") return true;
  if (s == "false") return false;
  static const std::regex integer("[-+]?[0-9]+"), real("[-+]?([0-9]*\\.[0-9]+|[0-9]+\\.?)([eE][-+]?[0-9]+)?");
  if (std::regex_match(s, integer)) return std::stoll(s);
  if (std::regex_match(s, real)) return std::stod(s);
  return s;
}

}  // namespace

TEST(Schema, FixtureProgramConforms) {
  Checker c(load_json(kSrc + "/schemas/program.schema.json"));
  json prog = to_json(YAML::LoadFile(std::string(KAIVAL_TESTDATA) + "/stage/first/program.yaml"));
  auto errs = c.errors(prog);
  EXPECT_TRUE(errs.empty()) << errs.size() << " errors, first: " << (errs.empty() ? "" : errs[0]);
  // The checker is not vacuous: a misspelt key is caught.
  prog["stages"][0]["advnce"] = 3;
  EXPECT_FALSE(c.errors(prog).empty());
}

TEST(Schema, StageResultConforms) {
  Checker c(load_json(kSrc + "/schemas/stage-result.schema.json"));
  auto p = kaival::stage::load_program(std::string(KAIVAL_TESTDATA) + "/stage/first/program.yaml");
  kaival::stage::RunOptions o;
  o.stage = "s1";
  o.replicates = 30;
  json doc = kaival::stage::run(p, o).doc;
  auto errs = c.errors(doc);
  EXPECT_TRUE(errs.empty()) << errs.size() << " errors, first: " << (errs.empty() ? "" : errs[0]);
  doc["teams"][0]["decision"] = "promoted";
  EXPECT_FALSE(c.errors(doc).empty());
}
