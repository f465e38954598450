#pragma once
// Rubric cards (`schema: kaival.rubric/1`, YAML; docs/eval.md "LLM-as-judge"):
// what a judge model is asked and how its score is read back. A rubric names
// criteria (each with a description, anchors and a weight) on one scale, a
// judge prompt in kaival's Jinja subset, and a regex that finds each
// criterion's score in the judge's reply.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace kaival::eval {

struct Criterion {
  std::string name, description;
  double weight = 1.0;
  std::vector<std::pair<double, std::string>> anchors;  // (score, what it means), ascending
};

struct Rubric {
  std::string file, sha256, name, version = "1";
  double min = 1, max = 10;
  std::vector<Criterion> criteria;
  std::string system;  // optional system message (template)
  std::string prompt;  // user message (template); variables: see docs/eval.md
  // One capture group: the score. "{criterion}" stands for the (regex-escaped)
  // criterion name. Default: the last [[N]] for one criterion, the last
  // [[name: N]] per criterion for several.
  std::string extract;
  nlohmann::ordered_json generation = nlohmann::ordered_json::object();  // extra request fields
  uint64_t seed = 1234;  // sent as the request's "seed"; temperature is always 0
};

// Reads and validates a rubric card; throws FormatError / UnsupportedError naming the file and field.
Rubric load_rubric(const std::string& path);

// One turn to be judged; `history` holds the earlier turns as (question, answer).
struct JudgeInput {
  std::string question, answer, reference;
  std::vector<std::pair<std::string, std::string>> history;
  int turn = 1;
};

// The chat messages of the judge request.
nlohmann::json judge_messages(const Rubric& r, const JudgeInput& in);

// A judge's reply read back: the weighted score (nullopt when any criterion's
// score is missing or outside the scale) and each criterion's score.
struct JudgeVerdict {
  std::optional<double> score;
  nlohmann::ordered_json criteria = nlohmann::ordered_json::object();
  std::string error;  // why `score` is missing
};
JudgeVerdict parse_judge_reply(const Rubric& r, const std::string& reply);

}  // namespace kaival::eval
