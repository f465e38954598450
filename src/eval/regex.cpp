#include "eval/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

#include <fmt/format.h>

#include "core/error.h"

namespace kaival::eval {

Regex::Regex(const std::string& pattern, std::string_view what) {
  int err = 0;
  PCRE2_SIZE off = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &err,
                        &off, nullptr);
  if (!code_) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof buf);
    throw FormatError(fmt::format("{} '{}'", what, pattern),
                      fmt::format("at offset {}: {}", off, reinterpret_cast<char*>(buf)));
  }
  md_ = pcre2_match_data_create_from_pattern(code_, nullptr);
}

Regex::~Regex() {
  pcre2_match_data_free(md_);
  pcre2_code_free(code_);
}

bool Regex::search(const std::string& s, size_t start, int g, std::string* out, size_t* match_end,
                   size_t* group_begin) {
  int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.c_str()), s.size(), start, 0, md_, nullptr);
  if (rc < 0) return false;
  PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md_);
  if (g >= rc || ov[2 * g] == PCRE2_UNSET) {
    if (out) out->clear();
  } else if (out) {
    *out = s.substr(ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
  }
  if (match_end) *match_end = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
  if (group_begin) *group_begin = (g < rc && ov[2 * g] != PCRE2_UNSET) ? ov[2 * g] : ov[0];
  return true;
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view s) const {
  // Own match data: find_all is const and may run on several threads.
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
      pcre2_match_data_create_from_pattern(code_, nullptr), &pcre2_match_data_free);
  std::vector<std::pair<size_t, size_t>> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), pos, 0, md.get(), nullptr);
    if (rc < 0) break;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    out.emplace_back(ov[0], ov[1]);
    if (ov[1] > ov[0]) {
      pos = ov[1];
    } else {  // empty match: step over one whole code point
      pos = ov[1] + 1;
      while (pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) ++pos;
    }
  }
  return out;
}

std::string escape_regex(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}/#-").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace kaival::eval
