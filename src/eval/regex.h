#pragma once
// One compiled UTF-8 PCRE2 pattern with Unicode classes (\s, \d, \b behave as
// in Python 3's re), shared by the answer filters (score.cpp) and the IFEval
// checks (ifeval.cpp).
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct pcre2_real_code_8;
struct pcre2_real_match_data_8;

namespace kaival::eval {

class Regex {
 public:
  // A pattern that does not compile is a FormatError naming `what` and the pattern.
  explicit Regex(const std::string& pattern, std::string_view what = "regex");
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Group `g` of the first match at or after `start`; false if none.
  // `match_end` is where a following search should start (past an empty match).
  bool search(const std::string& s, size_t start, int g, std::string* out, size_t* match_end = nullptr,
              size_t* group_begin = nullptr);
  // Non-overlapping matches left to right as byte ranges (re.finditer). Text
  // that is not valid UTF-8 matches nothing.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view s) const;
  size_t count(std::string_view s) const { return find_all(s).size(); }
  bool found(std::string_view s) const { return !find_all(s).empty(); }

 private:
  pcre2_real_code_8* code_ = nullptr;
  pcre2_real_match_data_8* md_ = nullptr;  // for search()
};

// `s` with every regex metacharacter escaped, to match it literally.
std::string escape_regex(std::string_view s);

}  // namespace kaival::eval
