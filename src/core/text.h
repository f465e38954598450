#pragma once
// Text helpers: terminal tables with Korean text need display widths, not
// byte counts (Hangul and CJK take two columns); HTML escaping; timestamps.
#include <initializer_list>
#include <string>
#include <string_view>

namespace kaival {

// Columns a UTF-8 string occupies in a terminal (invalid bytes count as one).
size_t display_width(std::string_view s);
// `s` padded with spaces on the right to `width` columns (never truncated).
std::string pad_right(std::string_view s, size_t width);

// Text made safe inside HTML elements and quoted attributes: & < > " ' are
// escaped, NUL becomes U+FFFD. Every page kaival writes goes through this.
std::string html_escape(std::string_view s);

// One CSV field (RFC 4180): quoted when it holds a comma, quote, CR or LF, or
// starts or ends with a space. A field that a spreadsheet would run as a
// formula (leading = + - @ TAB CR) gets a leading apostrophe, since exported
// texts (rationales, prompts) come from untrusted users.
std::string csv_field(std::string_view s);
// Fields joined by commas, ended by CRLF.
std::string csv_row(std::initializer_list<std::string_view> fields);

// The current UTC time as ISO 8601 ("2026-11-25T17:30:00Z"), for manifests.
std::string utc_now_iso();

}  // namespace kaival
