#include "tokenizer/byte_level.h"

#include "tokenizer/utf8.h"

namespace kaival::tokenizer {

ByteLevelMap::ByteLevelMap() {
  bytes_.fill(-1);
  auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
  int next = 256;
  for (int b = 0; b < 256; ++b) chars_[b] = printable(b) ? b : next++;
  for (int b = 0; b < 256; ++b) {
    std::string s;
    utf8::append(s, chars_[b]);
    utf8_len_[b] = static_cast<uint8_t>(s.size());
    for (size_t k = 0; k < s.size(); ++k) utf8_[b][k] = s[k];
    bytes_[chars_[b]] = static_cast<int16_t>(b);
  }
}

const ByteLevelMap& ByteLevelMap::instance() {
  static const ByteLevelMap map;
  return map;
}

void ByteLevelMap::encode_append(std::string_view raw, std::string& out) const {
  for (unsigned char c : raw) out.append(utf8_[c].data(), utf8_len_[c]);
}

bool ByteLevelMap::decode_append(std::string_view mapped, std::string& out) const {
  const size_t start = out.size();
  for (size_t i = 0; i < mapped.size();) {
    const auto d = utf8::decode(mapped, i);
    const int b = d.valid ? byte_of(d.cp) : -1;
    if (b < 0) {
      out.resize(start);
      return false;
    }
    out += static_cast<char>(b);
    i += d.len;
  }
  return true;
}

}  // namespace kaival::tokenizer
