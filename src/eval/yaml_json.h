#pragma once
// YAML -> JSON for rubric cards and imported lm-evaluation-harness task files.
// Unlike a plain conversion it keeps what those files say with tags: a quoted
// scalar stays a string, and a `!function module.name` scalar becomes
// {"!function": "module.name"} so that the importer can name it in an error.
#include <string>

#include <nlohmann/json.hpp>

namespace kaival::eval {

// Parses a YAML file; throws IoError (unreadable) or FormatError naming the file.
// `text_out` receives the file's bytes (for hashing).
nlohmann::ordered_json read_yaml_file(const std::string& path, std::string* text_out = nullptr);

}  // namespace kaival::eval
