#include "eval/rubric.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "core/hash.h"
#include "core/jinja.h"
#include "eval/score.h"
#include "eval/yaml_json.h"

namespace kaival::eval {

namespace {

using OJson = nlohmann::ordered_json;

std::string text_field(const OJson& o, const char* key, const std::string& where, bool required = false) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) {
    if (required) fail(where, "missing required field '{}'", key);
    return "";
  }
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number()) return it->dump();
  fail(where, "field '{}' must be a string", key);
}

double number_field(const OJson& o, const char* key, const std::string& where, double def) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return def;
  if (!it->is_number()) fail(where, "field '{}' must be a number", key);
  return it->get<double>();
}

std::string escape_regex(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string("\\^$.|?*+()[]{}").find(c) != std::string::npos) out += '\\';
    out += c;
  }
  return out;
}

std::string pattern_for(const Rubric& r, const Criterion& c) {
  std::string p = r.extract;
  if (p.empty())
    p = r.criteria.size() == 1 ? R"((?s).*\[\[\s*([+-]?\d+(?:\.\d+)?)\s*\]\])"
                               : R"((?s).*\[\[\s*{criterion}\s*:\s*([+-]?\d+(?:\.\d+)?)\s*\]\])";
  for (size_t at = p.find("{criterion}"); at != std::string::npos; at = p.find("{criterion}", at)) {
    std::string name = escape_regex(c.name);
    p.replace(at, 11, name);
    at += name.size();
  }
  return p;
}

// 7 renders as "7", not "7.0".
OJson number(double x) {
  if (std::floor(x) == x && std::fabs(x) < 1e15) return static_cast<int64_t>(x);
  return x;
}

jinja::Options rubric_template_options() { return jinja::Options{}; }  // trim/lstrip blocks: prose templates

}  // namespace

Rubric load_rubric(const std::string& path) {
  std::string text;
  OJson j = read_yaml_file(path, &text);
  Rubric r;
  r.file = path;
  r.sha256 = sha256_hex(text);
  if (!j.is_object()) fail(path, "a rubric card is a YAML mapping");
  std::string schema = text_field(j, "schema", path, true);
  if (schema.rfind("kaival.rubric/", 0) != 0) fail(path, "schema '{}' is not kaival.rubric/N", schema);
  if (schema != "kaival.rubric/1") throw UnsupportedError(path, "schema '" + schema + "' is newer than kaival.rubric/1");
  r.name = text_field(j, "name", path, true);
  r.version = j.contains("version") ? text_field(j, "version", path) : "1";
  if (j.contains("scale")) {
    const OJson& s = j["scale"];
    if (!s.is_object()) fail(path, "'scale' must be a mapping with min and max");
    r.min = number_field(s, "min", path + ": scale", 1);
    r.max = number_field(s, "max", path + ": scale", 10);
  }
  if (!(r.min < r.max)) fail(path, "scale: min {} must be below max {}", r.min, r.max);
  if (!j.contains("criteria") || !j["criteria"].is_array() || j["criteria"].empty())
    fail(path, "'criteria' must be a non-empty list");
  for (const auto& c : j["criteria"]) {
    std::string where = path + ": criteria[" + std::to_string(r.criteria.size()) + "]";
    if (!c.is_object()) fail(where, "a criterion is a mapping with name, description, weight, anchors");
    Criterion k;
    k.name = text_field(c, "name", where, true);
    k.description = text_field(c, "description", where);
    k.weight = number_field(c, "weight", where, 1.0);
    if (!(k.weight > 0)) fail(where, "weight must be positive");
    if (c.contains("anchors")) {
      if (!c["anchors"].is_object()) fail(where, "'anchors' maps a score to what it means");
      for (auto it = c["anchors"].begin(); it != c["anchors"].end(); ++it) {
        char* end = nullptr;
        double v = std::strtod(it.key().c_str(), &end);
        if (*end != '\0' || v < r.min || v > r.max) fail(where, "anchor '{}' is not a score within the scale", it.key());
        k.anchors.emplace_back(v, it.value().is_string() ? it.value().get<std::string>() : it.value().dump());
      }
      std::sort(k.anchors.begin(), k.anchors.end());
    }
    for (const auto& other : r.criteria)
      if (other.name == k.name) fail(where, "criterion '{}' named twice", k.name);
    r.criteria.push_back(std::move(k));
  }
  r.system = text_field(j, "system", path);
  r.prompt = text_field(j, "prompt", path, true);
  if (j.contains("extract")) {
    const OJson& e = j["extract"];
    r.extract = e.is_object() ? text_field(e, "regex", path + ": extract", true) : text_field(j, "extract", path);
  }
  if (j.contains("generation")) {
    if (!j["generation"].is_object()) fail(path, "'generation' must be a mapping");
    r.generation = j["generation"];
    for (const char* fixed : {"temperature", "seed", "messages", "model", "stream"})
      if (r.generation.contains(fixed)) fail(path, "generation.{} is fixed by kaival (temperature 0, seed: use 'seed')", fixed);
  }
  if (j.contains("seed")) {
    if (!j["seed"].is_number_integer()) fail(path, "'seed' must be an integer");
    r.seed = j["seed"].get<uint64_t>();
  }
  static const char* known[] = {"schema", "name", "version", "description", "license", "scale", "criteria",
                                "system", "prompt", "extract", "generation", "seed"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find(std::begin(known), std::end(known), it.key()) == std::end(known))
      fail(path, "unknown field '{}'", it.key());
  // Templates and patterns must be usable now, not after the model's answers are in.
  jinja::Template::parse(r.prompt, path + ":prompt", rubric_template_options());
  if (!r.system.empty()) jinja::Template::parse(r.system, path + ":system", rubric_template_options());
  for (const auto& c : r.criteria) {
    std::string p = pattern_for(r, c);
    try {
      apply_filters({Filter{"regex", p, 1, ""}}, "", {});  // compiles the pattern
    } catch (const FormatError& e) {
      fail(path, "extract: {}", e.what());
    }
  }
  return r;
}

nlohmann::json judge_messages(const Rubric& r, const JudgeInput& in) {
  OJson ctx = OJson::object();
  ctx["question"] = in.question;
  ctx["answer"] = in.answer;
  ctx["reference"] = in.reference;
  ctx["turn"] = in.turn;
  OJson hist = OJson::array();
  for (const auto& [q, a] : in.history) hist.push_back({{"question", q}, {"answer", a}});
  ctx["history"] = hist;
  ctx["scale"] = {{"min", number(r.min)}, {"max", number(r.max)}};
  OJson crit = OJson::array();
  for (const auto& c : r.criteria) {
    OJson anchors = OJson::array();
    for (const auto& [score, meaning] : c.anchors) anchors.push_back({{"score", number(score)}, {"text", meaning}});
    crit.push_back({{"name", c.name}, {"description", c.description}, {"weight", number(c.weight)}, {"anchors", anchors}});
  }
  ctx["criteria"] = crit;
  nlohmann::json msgs = nlohmann::json::array();
  auto opt = rubric_template_options();
  if (!r.system.empty())
    msgs.push_back({{"role", "system"}, {"content", jinja::Template::parse(r.system, r.file + ":system", opt).render(ctx)}});
  msgs.push_back({{"role", "user"}, {"content", jinja::Template::parse(r.prompt, r.file + ":prompt", opt).render(ctx)}});
  return msgs;
}

JudgeVerdict parse_judge_reply(const Rubric& r, const std::string& reply) {
  JudgeVerdict v;
  const std::string kNone = "\x01";  // no match (a score is never this)
  double sum = 0, weights = 0;
  for (const auto& c : r.criteria) {
    std::string got = apply_filters({Filter{"regex", pattern_for(r, c), 1, kNone}}, reply, {});
    if (got == kNone || got.empty()) {
      v.error = "no score for '" + c.name + "' in the judge's reply";
      v.criteria[c.name] = nullptr;
      continue;
    }
    char* end = nullptr;
    double x = std::strtod(got.c_str(), &end);
    if (*end != '\0' || !std::isfinite(x) || x < r.min || x > r.max) {
      v.error = "score '" + got + "' for '" + c.name + "' is outside the scale";
      v.criteria[c.name] = nullptr;
      continue;
    }
    v.criteria[c.name] = x;
    sum += c.weight * x;
    weights += c.weight;
  }
  if (v.error.empty()) v.score = sum / weights;
  return v;
}

}  // namespace kaival::eval
