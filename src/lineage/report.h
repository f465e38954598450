#pragma once
// Lineage report: JSON (schemas/lineage-report.schema.json), a plain-language
// terminal summary in Korean and English, and a self-contained HTML page.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lineage/analysis.h"

namespace kaival::lineage {

struct InputInfo {
  std::string label, path, format;
  struct File {
    std::string path, sha256;
    uint64_t bytes = 0;
  };
  std::vector<File> files;
};
// Hashes every file of the model (weights, config.json, tokenizer files).
InputInfo describe_input(const Prepared& p, bool hash = true);

nlohmann::json pair_json(const PairResult& p, double alpha);
nlohmann::json report_json(const MultiResult& r, const std::vector<InputInfo>& inputs,
                           const std::vector<InputInfo>& control_inputs, const Options& opt);

// Plain-language summary (Korean and English) plus a per-component table.
std::string terminal_summary(const MultiResult& r, const Options& opt);
// Self-contained HTML page (inline SVG heatmap, no external assets).
std::string html_report(const nlohmann::json& report);

// -log10 p formatted for people ("1.2e-45", "< 1e-300", "0.43").
std::string format_p(double log10p);

}  // namespace kaival::lineage
