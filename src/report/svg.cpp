#include "report/svg.h"

#include <cmath>

#include <fmt/format.h>

#include "core/text.h"

namespace kaival::report {

std::string escape(std::string_view s) { return html_escape(s); }

std::string px(double v) {
  if (!std::isfinite(v)) return "0";
  return fmt::format("{:.1f}", v);
}

const char* part_colour(size_t i) {
  static const char* c[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"};
  return c[i % 8];
}

}  // namespace kaival::report
