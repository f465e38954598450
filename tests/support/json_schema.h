#pragma once
// A small JSON Schema (draft 2020-12) checker for tests: the keywords the files in
// schemas/ use, and a few close relatives. A keyword it does not implement is an
// error, never ignored, and so is a $ref it cannot resolve, so a schema cannot pass
// a document by accident. Not a general validator: no $id-based resolution (a $ref
// is "#/json/pointer" or "file.json#/json/pointer", the file next to the schema),
// no $dynamicRef, unevaluated*, dependent*, if/then/else, format assertions.
//
//   auto schema = JsonSchema::load(std::string(KAIVAL_SOURCE_DIR) + "/schemas/perf.schema.json");
//   auto errs = schema.errors(doc);   // empty when `doc` conforms; else "$.runs[0].ttft_ms: missing p99", ...
//   EXPECT_TRUE(errs.empty()) << join_errors(errs);
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kaival::testing_support {

class JsonSchema {
 public:
  // The schema in `root`; relative file references resolve against `base_dir`.
  explicit JsonSchema(nlohmann::json root, std::filesystem::path base_dir = {})
      : base_dir_(std::move(base_dir)), docs_(std::make_shared<std::map<std::string, nlohmann::json>>()) {
    (*docs_)[""] = std::move(root);
  }

  static JsonSchema load(const std::filesystem::path& file) {
    return JsonSchema(read_json(file), file.parent_path());
  }

  // What makes `doc` not conform, one line each ("$.a.b[2]: ..."); empty when it conforms.
  std::vector<std::string> errors(const nlohmann::json& doc) const {
    std::vector<std::string> errs;
    check(doc, root(), "", "$", errs);
    return errs;
  }
  std::vector<std::string> errors(const nlohmann::ordered_json& doc) const { return errors(nlohmann::json(doc)); }

  // Problems in the schema itself, over every subschema: keywords this checker does not
  // implement and $refs it cannot resolve. Empty for every file in schemas/ (a test checks).
  std::vector<std::string> lint() const {
    std::vector<std::string> errs;
    lint_node(root(), "", "#", errs);
    return errs;
  }

 private:
  static nlohmann::json read_json(const std::filesystem::path& file) {
    std::ifstream f(file, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open schema " + file.string());
    try {
      return nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(file.string() + ": " + e.what());
    }
  }

  const nlohmann::json& root() const { return docs_->at(""); }

  // The subschema a $ref names, and the file it lives in ("" = the root document);
  // nullptr when it cannot be resolved.
  const nlohmann::json* resolve(const std::string& ref, const std::string& in_file, std::string* file_out) const {
    auto hash = ref.find('#');
    std::string file = ref.substr(0, hash);
    std::string pointer = hash == std::string::npos ? "" : ref.substr(hash + 1);
    if (file.empty()) file = in_file;
    if (!docs_->count(file)) {
      std::filesystem::path p = base_dir_ / file;
      if (!std::filesystem::exists(p)) return nullptr;
      (*docs_)[file] = read_json(p);
    }
    const nlohmann::json& doc = docs_->at(file);
    try {
      nlohmann::json::json_pointer ptr(pointer);
      if (!doc.contains(ptr)) return nullptr;
      *file_out = file;
      return &doc.at(ptr);
    } catch (const nlohmann::json::exception&) {
      return nullptr;
    }
  }

  static bool is_type(const nlohmann::json& v, const std::string& t) {
    if (t == "object") return v.is_object();
    if (t == "array") return v.is_array();
    if (t == "string") return v.is_string();
    if (t == "number") return v.is_number();
    if (t == "integer")  // 2020-12: a number with a zero fractional part is an integer
      return v.is_number_integer() || (v.is_number_float() && std::isfinite(v.get<double>()) &&
                                       v.get<double>() == std::floor(v.get<double>()));
    if (t == "boolean") return v.is_boolean();
    if (t == "null") return v.is_null();
    return false;
  }

  const std::regex& regex(const std::string& pattern) const {
    auto it = regexes_.find(pattern);
    if (it == regexes_.end()) it = regexes_.emplace(pattern, std::regex(pattern, std::regex::ECMAScript)).first;
    return it->second;
  }

  static const std::set<std::string>& known_keywords() {
    static const std::set<std::string> k = {
        // annotations and structure
        "$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples",
        // applicators and assertions implemented below
        "$ref", "oneOf", "anyOf", "allOf", "not", "const", "enum", "type", "pattern", "minLength", "maxLength",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "required", "properties", "patternProperties",
        "additionalProperties", "minProperties", "maxProperties", "items", "minItems", "maxItems", "uniqueItems"};
    return k;
  }

  // False (with an error) unless `s` is an object; its keywords this checker lacks are errors.
  static bool is_schema_object(const nlohmann::json& s, const std::string& at, std::vector<std::string>& errs) {
    if (!s.is_object()) {
      errs.push_back(at + ": the schema here is not an object");
      return false;
    }
    for (auto it = s.begin(); it != s.end(); ++it)
      if (!known_keywords().count(it.key())) errs.push_back(at + ": schema keyword '" + it.key() + "' is not supported");
    return true;
  }

  static size_t cp_len(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
  }

  void check(const nlohmann::json& v, const nlohmann::json& s, const std::string& file, const std::string& at,
             std::vector<std::string>& errs) const {
    if (s.is_boolean()) {
      if (!s.get<bool>()) errs.push_back(at + ": not allowed (schema false)");
      return;
    }
    if (!is_schema_object(s, at, errs)) return;
    if (s.contains("$ref")) {
      std::string target_file;
      const std::string ref = s["$ref"].get<std::string>();
      if (const nlohmann::json* target = resolve(ref, file, &target_file)) check(v, *target, target_file, at, errs);
      else errs.push_back(at + ": $ref '" + ref + "' does not resolve");
    }
    auto matches = [&](const nlohmann::json& sub, std::vector<std::string>* why = nullptr) {
      std::vector<std::string> e;
      check(v, sub, file, at, e);
      if (why && !e.empty()) why->push_back(e.front());
      return e.empty();
    };
    if (s.contains("allOf"))
      for (const auto& sub : s["allOf"]) check(v, sub, file, at, errs);
    if (s.contains("anyOf")) {
      std::vector<std::string> why;
      bool any = false;
      for (const auto& sub : s["anyOf"]) any = matches(sub, &why) || any;
      if (!any) errs.push_back(at + ": matches none of anyOf (" + join(why, "; ") + ")");
    }
    if (s.contains("oneOf")) {
      std::vector<std::string> why;
      int n = 0;
      for (const auto& sub : s["oneOf"]) n += matches(sub, &why);
      if (n != 1)
        errs.push_back(at + ": matches " + std::to_string(n) + " of oneOf's alternatives, not exactly one" +
                       (n == 0 ? " (" + join(why, "; ") + ")" : ""));
    }
    if (s.contains("not") && matches(s["not"])) errs.push_back(at + ": matches the schema under 'not'");
    if (s.contains("const") && v != s["const"]) errs.push_back(at + ": " + v.dump() + " is not " + s["const"].dump());
    if (s.contains("enum") && std::find(s["enum"].begin(), s["enum"].end(), v) == s["enum"].end())
      errs.push_back(at + ": " + v.dump() + " is not one of " + s["enum"].dump());
    if (s.contains("type")) {
      const nlohmann::json& t = s["type"];
      bool ok = false;
      if (t.is_array()) {
        for (const auto& x : t) ok = ok || is_type(v, x.get<std::string>());
      } else {
        ok = is_type(v, t.get<std::string>());
      }
      if (!ok) {
        errs.push_back(at + ": " + std::string(v.type_name()) + " where the schema wants " + t.dump());
        return;  // the other assertions would only repeat it
      }
    }
    if (v.is_string()) {
      const std::string str = v.get<std::string>();
      if (s.contains("pattern") && !std::regex_search(str, regex(s["pattern"].get<std::string>())))
        errs.push_back(at + ": \"" + str + "\" does not match " + s["pattern"].get<std::string>());
      if (s.contains("minLength") && cp_len(str) < s["minLength"].get<size_t>()) errs.push_back(at + ": shorter than minLength");
      if (s.contains("maxLength") && cp_len(str) > s["maxLength"].get<size_t>()) errs.push_back(at + ": longer than maxLength");
    }
    if (v.is_number()) {
      const double x = v.get<double>();
      if (s.contains("minimum") && x < s["minimum"].get<double>()) errs.push_back(at + ": " + v.dump() + " below minimum " + s["minimum"].dump());
      if (s.contains("maximum") && x > s["maximum"].get<double>()) errs.push_back(at + ": " + v.dump() + " above maximum " + s["maximum"].dump());
      if (s.contains("exclusiveMinimum") && x <= s["exclusiveMinimum"].get<double>())
        errs.push_back(at + ": " + v.dump() + " not above exclusiveMinimum " + s["exclusiveMinimum"].dump());
      if (s.contains("exclusiveMaximum") && x >= s["exclusiveMaximum"].get<double>())
        errs.push_back(at + ": " + v.dump() + " not below exclusiveMaximum " + s["exclusiveMaximum"].dump());
    }
    if (v.is_object()) {
      for (const auto& r : s.value("required", nlohmann::json::array()))
        if (!v.contains(r.get<std::string>())) errs.push_back(at + ": missing required '" + r.get<std::string>() + "'");
      if (s.contains("minProperties") && v.size() < s["minProperties"].get<size_t>()) errs.push_back(at + ": fewer properties than minProperties");
      if (s.contains("maxProperties") && v.size() > s["maxProperties"].get<size_t>()) errs.push_back(at + ": more properties than maxProperties");
      const nlohmann::json none = nlohmann::json::object();
      const nlohmann::json& props = s.contains("properties") ? s["properties"] : none;
      const nlohmann::json& pats = s.contains("patternProperties") ? s["patternProperties"] : none;
      for (auto it = v.begin(); it != v.end(); ++it) {
        const std::string at_key = at + "." + it.key();
        bool evaluated = false;
        if (props.contains(it.key())) {
          evaluated = true;
          check(it.value(), props[it.key()], file, at_key, errs);
        }
        for (auto p = pats.begin(); p != pats.end(); ++p)
          if (std::regex_search(it.key(), regex(p.key()))) {
            evaluated = true;
            check(it.value(), p.value(), file, at_key, errs);
          }
        if (!evaluated && s.contains("additionalProperties")) {
          const nlohmann::json& ap = s["additionalProperties"];
          if (ap.is_boolean() && !ap.get<bool>()) errs.push_back(at_key + ": not allowed (additionalProperties: false)");
          else check(it.value(), ap, file, at_key, errs);
        }
      }
    }
    if (v.is_array()) {
      if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>())
        errs.push_back(at + ": " + std::to_string(v.size()) + " items, fewer than minItems " + s["minItems"].dump());
      if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>())
        errs.push_back(at + ": " + std::to_string(v.size()) + " items, more than maxItems " + s["maxItems"].dump());
      if (s.value("uniqueItems", false))
        for (size_t i = 0; i < v.size(); ++i)
          for (size_t j = i + 1; j < v.size(); ++j)
            if (v[i] == v[j]) errs.push_back(at + ": items " + std::to_string(i) + " and " + std::to_string(j) + " are equal");
      if (s.contains("items"))
        for (size_t i = 0; i < v.size(); ++i) check(v[i], s["items"], file, at + "[" + std::to_string(i) + "]", errs);
    }
  }

  void lint_node(const nlohmann::json& s, const std::string& file, const std::string& at, std::vector<std::string>& errs) const {
    if (s.is_boolean() || !is_schema_object(s, at, errs)) return;
    if (s.contains("$ref")) {
      std::string target_file;
      if (!resolve(s["$ref"].get<std::string>(), file, &target_file))
        errs.push_back(at + ": $ref '" + s["$ref"].get<std::string>() + "' does not resolve");
    }
    for (const char* map_kw : {"$defs", "properties", "patternProperties"})
      if (s.contains(map_kw))
        for (auto it = s[map_kw].begin(); it != s[map_kw].end(); ++it)
          lint_node(it.value(), file, at + "/" + map_kw + "/" + it.key(), errs);
    for (const char* list_kw : {"oneOf", "anyOf", "allOf"})
      if (s.contains(list_kw))
        for (size_t i = 0; i < s[list_kw].size(); ++i)
          lint_node(s[list_kw][i], file, at + "/" + list_kw + "/" + std::to_string(i), errs);
    for (const char* sub_kw : {"items", "additionalProperties", "not"})
      if (s.contains(sub_kw)) lint_node(s[sub_kw], file, at + "/" + sub_kw, errs);
    if (s.contains("pattern")) lint_pattern(s["pattern"], at + "/pattern", errs);
    if (s.contains("patternProperties"))
      for (auto it = s["patternProperties"].begin(); it != s["patternProperties"].end(); ++it)
        lint_pattern(it.key(), at + "/patternProperties", errs);
  }

  void lint_pattern(const nlohmann::json& p, const std::string& at, std::vector<std::string>& errs) const {
    try {
      regex(p.get<std::string>());
    } catch (const std::exception& e) {
      errs.push_back(at + ": bad pattern " + p.dump() + ": " + e.what());
    }
  }

  static std::string join(const std::vector<std::string>& v, const std::string& sep) {
    std::string out;
    for (const auto& x : v) out += (out.empty() ? "" : sep) + x;
    return out;
  }

  std::filesystem::path base_dir_;
  // Loaded documents by file name relative to base_dir_ ("" = the root), shared by copies.
  std::shared_ptr<std::map<std::string, nlohmann::json>> docs_;
  mutable std::map<std::string, std::regex> regexes_;
};

// The first `max` errors, one per line, for a test's failure message.
inline std::string join_errors(const std::vector<std::string>& errs, size_t max = 10) {
  std::string out = std::to_string(errs.size()) + " schema error(s)";
  for (size_t i = 0; i < errs.size() && i < max; ++i) out += "\n  " + errs[i];
  return out;
}

}  // namespace kaival::testing_support
