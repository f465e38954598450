#pragma once
// Terminal text helpers: tables with Korean text need display widths, not
// byte counts (Hangul and CJK take two columns).
#include <string>
#include <string_view>

namespace kaival {

// Columns a UTF-8 string occupies in a terminal (invalid bytes count as one).
size_t display_width(std::string_view s);
// `s` padded with spaces on the right to `width` columns (never truncated).
std::string pad_right(std::string_view s, size_t width);

}  // namespace kaival
