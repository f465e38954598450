#pragma once
// Import of lm-evaluation-harness task YAML (docs/eval.md "Importing
// lm-evaluation-harness tasks"): the common fields become a kaival.task/1 card;
// whatever is not mapped is named in `warnings` (never dropped silently); Python
// hooks (`!function`) are refused with an error naming the file and function.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kaival::eval {

struct ImportedTask {
  nlohmann::ordered_json card;        // a kaival.task/1 card as JSON
  std::vector<std::string> warnings;  // unmapped keys and options, mapping assumptions
};

// An lm-eval task file: no `schema:`, and `task` with lm-eval keys (doc_to_text, output_type,
// dataset_path, include...).
bool looks_like_lmeval_task(const nlohmann::ordered_json& yaml);

// Reads `path` (following `include:` relative to each file) and maps it. Throws
// UnsupportedError / FormatError naming the file and key.
ImportedTask import_lmeval_task(const std::string& path);

// The card as YAML (strings double-quoted, so that "0" stays a string), with the warnings as comments.
std::string card_to_yaml(const ImportedTask& task, const std::string& source_path);

}  // namespace kaival::eval
