#pragma once
// GPT-2's reversible byte <-> printable character mapping used by byte-level
// BPE vocabularies: every byte value gets a visible Unicode character (bytes
// that are already printable Latin-1 map to themselves, the others to U+0100+),
// so that token strings never contain raw control bytes or spaces.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace kaival::tokenizer {

class ByteLevelMap {
 public:
  static const ByteLevelMap& instance();  // immutable table, built once

  char32_t char_of(uint8_t b) const { return chars_[b]; }
  // UTF-8 encoding of char_of(b) (1 or 2 bytes).
  std::string_view utf8_of(uint8_t b) const { return {utf8_[b].data(), utf8_len_[b]}; }
  // Byte for a mapped character, or -1 if `c` is not in the map.
  int byte_of(char32_t c) const { return c < 324 ? bytes_[c] : -1; }

  // Raw bytes -> mapped UTF-8 text.
  void encode_append(std::string_view raw, std::string& out) const;
  // Mapped text -> raw bytes. Returns false (out unchanged) when a character
  // of `mapped` is not in the map, e.g. for added tokens written as plain text.
  bool decode_append(std::string_view mapped, std::string& out) const;

 private:
  ByteLevelMap();
  std::array<char32_t, 256> chars_{};
  std::array<std::array<char, 2>, 256> utf8_{};
  std::array<uint8_t, 256> utf8_len_{};
  std::array<int16_t, 324> bytes_{};
};

}  // namespace kaival::tokenizer
