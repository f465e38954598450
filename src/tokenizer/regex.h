#pragma once
// Regular expressions for tokenizer pre-tokenizers and normalizers: PCRE2 with
// UTF + UCP + JIT. Patterns come from tokenizer.json, which Hugging Face runs
// with Oniguruma; the few classes where the two engines differ (\s, \w) are
// rewritten so that matches agree (see translate_oniguruma).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kaival::tokenizer {

// Per-thread matching state (PCRE2 match data and JIT stack). Regex objects
// are immutable and shared between threads; each thread brings its scratch.
class RegexScratch {
 public:
  RegexScratch();
  ~RegexScratch();
  RegexScratch(const RegexScratch&) = delete;
  RegexScratch& operator=(const RegexScratch&) = delete;

 private:
  friend class Regex;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class Regex {
 public:
  // Throws FormatError naming `where` if the pattern does not compile.
  Regex(std::string_view pattern, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  using Span = std::pair<uint32_t, uint32_t>;  // [begin, end) byte offsets
  // Appends every non-empty, non-overlapping match in `text`, left to right.
  // Invalid UTF-8 in `text` never matches a character class but is tolerated.
  void find_all(std::string_view text, std::vector<Span>& out, RegexScratch& scratch) const;

  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

// Rewrites an Oniguruma pattern so that PCRE2 (UTF+UCP) matches the same
// characters: \s also matches U+0085 and \w follows Unicode's word definition
// (letters, marks, decimal digits, connector punctuation).
std::string translate_oniguruma(std::string_view pattern);

// Escapes a literal string for use inside a pattern.
std::string regex_escape(std::string_view literal);

}  // namespace kaival::tokenizer
