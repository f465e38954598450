#include "report/svg.h"

#include <cmath>

#include <fmt/format.h>

namespace kaival::report {

std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string px(double v) {
  if (!std::isfinite(v)) return "0";
  return fmt::format("{:.1f}", v);
}

const char* part_colour(size_t i) {
  static const char* c[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"};
  return c[i % 8];
}

}  // namespace kaival::report
