#pragma once
// UTF-8 helpers shared by the tokenizers. Input text is untrusted: every
// decoder here tolerates invalid sequences instead of reading past the end.
#include <cstdint>
#include <string>
#include <string_view>

namespace kaival::tokenizer::utf8 {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when the bytes
// there are not a well-formed sequence (overlongs, surrogates, > U+10FFFF and
// truncated sequences are all invalid).
inline size_t valid_len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) -> uint8_t { return static_cast<uint8_t>(s[k]); };
  const size_t n = s.size();
  const uint8_t c = b(i);
  if (c < 0x80) return 1;
  auto cont = [&](size_t k, uint8_t lo = 0x80, uint8_t hi = 0xBF) {
    return k < n && b(k) >= lo && b(k) <= hi;
  };
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    uint8_t lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return cont(i + 1, lo, hi) && cont(i + 2) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return cont(i + 1, lo, hi) && cont(i + 2) && cont(i + 3) ? 4 : 0;
  }
  return 0;
}

// Number of bytes that form the "maximal subpart" of an invalid sequence at
// s[i] (Unicode's recommendation, also Rust's from_utf8_lossy): each such
// subpart becomes one U+FFFD.
inline size_t invalid_len(std::string_view s, size_t i) {
  const size_t n = s.size();
  const uint8_t c = static_cast<uint8_t>(s[i]);
  size_t need = 0;
  uint8_t lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) need = 1;
  else if (c >= 0xE0 && c <= 0xEF) { need = 2; lo = c == 0xE0 ? 0xA0 : 0x80; hi = c == 0xED ? 0x9F : 0xBF; }
  else if (c >= 0xF0 && c <= 0xF4) { need = 3; lo = c == 0xF0 ? 0x90 : 0x80; hi = c == 0xF4 ? 0x8F : 0xBF; }
  else return 1;
  size_t k = i + 1;
  for (size_t j = 0; j < need && k < n; ++j, ++k) {
    const uint8_t d = static_cast<uint8_t>(s[k]);
    if (j == 0 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) break;
  }
  return k - i;
}

struct Decoded {
  char32_t cp;   // U+FFFD when invalid
  uint32_t len;  // bytes consumed (>= 1)
  bool valid;
};

inline Decoded decode(std::string_view s, size_t i) {
  const size_t len = valid_len(s, i);
  if (len == 0) return {0xFFFD, static_cast<uint32_t>(invalid_len(s, i)), false};
  const auto b = [&](size_t k) -> char32_t { return static_cast<uint8_t>(s[k]); };
  char32_t cp;
  switch (len) {
    case 1: cp = b(i); break;
    case 2: cp = ((b(i) & 0x1F) << 6) | (b(i + 1) & 0x3F); break;
    case 3: cp = ((b(i) & 0x0F) << 12) | ((b(i + 1) & 0x3F) << 6) | (b(i + 2) & 0x3F); break;
    default:
      cp = ((b(i) & 0x07) << 18) | ((b(i + 1) & 0x3F) << 12) | ((b(i + 2) & 0x3F) << 6) | (b(i + 3) & 0x3F);
  }
  return {cp, static_cast<uint32_t>(len), true};
}

inline void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

inline bool is_valid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = valid_len(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

// Bytes -> valid UTF-8, each invalid maximal subpart replaced by U+FFFD.
inline std::string lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t len = valid_len(s, i);
    if (len) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      i += invalid_len(s, i);
    }
  }
  return out;
}

// Unicode White_Space (what Rust's char::is_whitespace and Oniguruma's \s use).
inline bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

}  // namespace kaival::tokenizer::utf8
