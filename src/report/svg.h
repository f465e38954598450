#pragma once
// Small helpers for inline SVG charts and escaped HTML text.
#include <string>
#include <string_view>

namespace kaival::report {

// Escapes & < > " ' for text and attribute values.
std::string escape(std::string_view s);
// A number for SVG coordinates: fixed, short, locale-independent.
std::string px(double v);
// Colour for part index i (colour-blind-safe palette).
const char* part_colour(size_t i);

}  // namespace kaival::report
