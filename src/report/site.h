#pragma once
// The stage report as a static site: index.html (English) and index.ko.html
// (Korean), self-contained (inline CSS and SVG charts, no script, no network),
// every text escaped. Input is a kaival.stage-result/1 document.
#include <string>

#include <nlohmann/json.hpp>

namespace kaival::report {

// One page in `lang` ("en" or "ko").
std::string stage_page(const nlohmann::json& result, const std::string& lang);
// Writes DIR/index.html and DIR/index.ko.html.
void write_site(const nlohmann::json& result, const std::string& dir);

}  // namespace kaival::report
