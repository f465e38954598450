#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace kaival::tokenizer {

struct RegexScratch::Impl {
  pcre2_match_data* md = nullptr;
  ~Impl() {
    if (md) pcre2_match_data_free(md);
  }
};

RegexScratch::RegexScratch() = default;
RegexScratch::~RegexScratch() = default;

Regex::Regex(std::string_view pattern, const std::string& where) : pattern_(pattern) {
  const std::string translated = translate_oniguruma(pattern);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  // MULTILINE: Oniguruma's ^ and $ always match at line boundaries.
  const uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_MULTILINE;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(), opts,
                                   &err, &err_off, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail(where, "regex /{}/ does not compile at offset {}: {}", std::string(pattern), err_off,
         reinterpret_cast<const char*>(msg));
  }
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Regex::find_all(std::string_view text, std::vector<Span>& out, RegexScratch& scratch) const {
  if (!scratch.impl_) scratch.impl_ = std::make_unique<RegexScratch::Impl>();
  auto& s = *scratch.impl_;
  if (!s.md) {
    s.md = pcre2_match_data_create(1, nullptr);
    if (!s.md) throw std::bad_alloc();
  }
  auto* code = static_cast<const pcre2_code*>(code_);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    int rc = jit_ ? pcre2_jit_match(code, subject, text.size(), pos, 0, s.md, nullptr)
                  : pcre2_match(code, subject, text.size(), pos, 0, s.md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      // Long runs (e.g. 100k spaces under a look-ahead) overflow the default
      // 32 KiB JIT stack; the interpreter keeps its backtracking on the heap.
      rc = pcre2_match(code, subject, text.size(), pos, PCRE2_NO_JIT, s.md, nullptr);
    }
    if (rc < 0) break;  // PCRE2_ERROR_NOMATCH or a limit: no further matches
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(static_cast<uint32_t>(b), static_cast<uint32_t>(e));
      pos = e;
    } else {
      // Empty match: step over one character and search again.
      const size_t len = utf8::valid_len(text, b);
      pos = b + (len ? len : 1);
    }
  }
}

std::string translate_oniguruma(std::string_view p) {
  static constexpr std::string_view kWord = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";
  std::string out;
  out.reserve(p.size() + 16);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char n = p[++i];
      if (n == 's') {
        out += in_class ? "\\s\\x{85}" : "[\\s\\x{85}]";
      } else if (n == 'S' && !in_class) {
        out += "[^\\s\\x{85}]";
      } else if (n == 'w') {
        out += in_class ? std::string(kWord) : "[" + std::string(kWord) + "]";
      } else if (n == 'W' && !in_class) {
        out += "[^" + std::string(kWord) + "]";
      } else {
        out += c;
        out += n;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {
      // POSIX class [:alpha:] inside a class: copy through the closing ":]".
      const size_t end = p.find(":]", i + 2);
      if (end != std::string_view::npos) {
        out.append(p.substr(i, end + 2 - i));
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

std::string regex_escape(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}-/#").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace kaival::tokenizer
