#include "lineage/vocab_align.h"

#include <array>
#include <unordered_map>

#include "tokenizer/tokenizer.h"

namespace kaival::lineage {
namespace {

// Decode one UTF-8 code point at s[i], advancing i; invalid bytes decode as
// themselves (0xFFFD would merge distinct tokens).
uint32_t next_code_point(std::string_view s, size_t& i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || i + len > s.size()) {
    ++i;
    return 0x110000u + c;  // outside Unicode: a raw byte
  }
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (int k = 1; k < len; ++k) {
    unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) {
      ++i;
      return 0x110000u + c;
    }
    cp = (cp << 6) | (cc & 0x3F);
  }
  i += len;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp >= 0x110000u) {
    out.push_back(static_cast<char>(cp - 0x110000u));
  } else if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves,
// the other 68 bytes were moved to U+0100.. in byte order.
struct ByteLevelTable {
  std::unordered_map<uint32_t, uint8_t> to_byte;
  ByteLevelTable() {
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      to_byte[printable ? b : next++] = static_cast<uint8_t>(b);
    }
  }
};

const ByteLevelTable& byte_level_table() {
  static const ByteLevelTable table;  // immutable after construction
  return table;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581
constexpr std::string_view kByteSpace = "\xC4\xA0";     // U+0120 "Ġ"
constexpr std::string_view kByteNewline = "\xC4\x8A";   // U+010A "Ċ"

}  // namespace

std::string_view spelling_name(TokenSpelling s) {
  switch (s) {
    case TokenSpelling::ByteLevel: return "byte-level";
    case TokenSpelling::SentencePiece: return "sentencepiece";
    case TokenSpelling::WordPiece: return "wordpiece";
    case TokenSpelling::Plain: return "plain";
  }
  return "plain";
}

TokenSpelling detect_spelling(const std::vector<std::string>& tokens, std::string_view type_hint) {
  size_t byte_level = 0, spm = 0, wordpiece = 0;
  for (const auto& t : tokens) {
    if (t.find(kByteSpace) != std::string::npos || t.find(kByteNewline) != std::string::npos) ++byte_level;
    if (t.find(kSpmSpace) != std::string::npos) ++spm;
    if (t.size() > 2 && t[0] == '#' && t[1] == '#') ++wordpiece;
  }
  if (type_hint == "wordpiece" || (wordpiece > tokens.size() / 20 && byte_level == 0 && spm == 0))
    return TokenSpelling::WordPiece;
  if (byte_level > spm && byte_level > 0) return TokenSpelling::ByteLevel;
  if (spm > 0) return TokenSpelling::SentencePiece;
  if (type_hint == "bpe") return TokenSpelling::ByteLevel;
  return TokenSpelling::Plain;
}

std::string normalize_token(std::string_view token, TokenSpelling spelling) {
  std::string out;
  switch (spelling) {
    case TokenSpelling::ByteLevel: {
      const auto& table = byte_level_table();
      // Special tokens such as <|endoftext|> are plain ASCII and map to themselves.
      for (size_t i = 0; i < token.size();) {
        uint32_t cp = next_code_point(token, i);
        auto it = table.to_byte.find(cp);
        if (it != table.to_byte.end())
          out.push_back(static_cast<char>(it->second));
        else
          append_utf8(out, cp);
      }
      return out;
    }
    case TokenSpelling::SentencePiece: {
      if (token.size() == 6 && token.substr(0, 3) == "<0x" && token[5] == '>') {
        int hi = hex_digit(token[3]), lo = hex_digit(token[4]);
        if (hi >= 0 && lo >= 0) return std::string(1, static_cast<char>(hi * 16 + lo));
      }
      for (size_t i = 0; i < token.size();) {
        if (token.substr(i, kSpmSpace.size()) == kSpmSpace) {
          out.push_back(' ');
          i += kSpmSpace.size();
        } else {
          out.push_back(token[i++]);
        }
      }
      return out;
    }
    case TokenSpelling::WordPiece: {
      bool special = token.size() > 1 && token.front() == '[' && token.back() == ']';
      if (token.size() > 2 && token[0] == '#' && token[1] == '#') return std::string(token.substr(2));
      if (special) return std::string(token);
      out = " ";
      out.append(token);
      return out;
    }
    case TokenSpelling::Plain: return std::string(token);
  }
  return std::string(token);
}

Vocab vocab_from_tokenizer(const tokenizer::Tokenizer& tok, std::string source) {
  Vocab v;
  v.source = std::move(source);
  size_t n = tok.vocab_size();
  v.tokens.reserve(n);
  for (size_t i = 0; i < n; ++i) v.tokens.emplace_back(tok.token(static_cast<int32_t>(i)));
  v.spelling = detect_spelling(v.tokens, tok.type());
  return v;
}

TokenPairs align_vocabularies(const Vocab& a, const Vocab& b) {
  std::unordered_map<std::string, int64_t> b_ids;
  b_ids.reserve(b.tokens.size() * 2);
  for (size_t i = 0; i < b.tokens.size(); ++i) {
    if (b.tokens[i].empty()) continue;
    b_ids.emplace(normalize_token(b.tokens[i], b.spelling), static_cast<int64_t>(i));
  }
  TokenPairs out;
  std::unordered_map<std::string, bool> seen;
  for (size_t i = 0; i < a.tokens.size(); ++i) {
    if (a.tokens[i].empty()) continue;
    std::string key = normalize_token(a.tokens[i], a.spelling);
    if (!seen.emplace(key, true).second) continue;
    auto it = b_ids.find(key);
    if (it == b_ids.end()) continue;
    out.a.push_back(static_cast<int64_t>(i));
    out.b.push_back(it->second);
    ++out.shared;
    if (it->second == static_cast<int64_t>(i)) ++out.same_id;
  }
  return out;
}

nlohmann::json tokenizer_evidence(const Vocab* a, const Vocab* b, const TokenPairs* pairs) {
  nlohmann::json j;
  j["a"] = a ? nlohmann::json{{"vocab_size", a->tokens.size()}, {"spelling", spelling_name(a->spelling)},
                              {"source", a->source}}
             : nlohmann::json(nullptr);
  j["b"] = b ? nlohmann::json{{"vocab_size", b->tokens.size()}, {"spelling", spelling_name(b->spelling)},
                              {"source", b->source}}
             : nlohmann::json(nullptr);
  if (!a || !b || !pairs) {
    j["shared_tokens"] = nullptr;
    j["overlap_fraction"] = nullptr;
    j["same_id_fraction"] = nullptr;
    j["same_merges"] = nullptr;
    j["note"] = "tokenizer missing for at least one model; rows compared by id only if the vocabularies have equal size";
    return j;
  }
  size_t smaller = std::min(a->tokens.size(), b->tokens.size());
  size_t union_size = a->tokens.size() + b->tokens.size() - static_cast<size_t>(pairs->shared);
  j["shared_tokens"] = pairs->shared;
  j["overlap_fraction"] = smaller ? static_cast<double>(pairs->shared) / static_cast<double>(smaller) : 0.0;
  j["jaccard"] = union_size ? static_cast<double>(pairs->shared) / static_cast<double>(union_size) : 0.0;
  j["same_id_fraction"] = pairs->shared ? static_cast<double>(pairs->same_id) / static_cast<double>(pairs->shared) : 0.0;
  if (a->merges.empty() || b->merges.empty()) {
    j["same_merges"] = nullptr;
  } else {
    size_t common = 0;
    while (common < a->merges.size() && common < b->merges.size() && a->merges[common] == b->merges[common]) ++common;
    j["same_merges"] = a->merges == b->merges;
    j["common_merge_prefix"] = common;
    j["merges"] = {a->merges.size(), b->merges.size()};
  }
  j["identical_vocabulary"] = a->tokens == b->tokens;
  return j;
}

}  // namespace kaival::lineage
