#pragma once
// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): Split (regex or string,
// all five delimiter behaviours, invert), ByteLevel, Digits, Punctuation,
// Whitespace, WhitespaceSplit, BertPreTokenizer, CharDelimiterSplit,
// Metaspace, UnicodeScripts, FixedLength and Sequence. Semantics follow Hugging Face tokenizers.
//
// Pieces are spans of one buffer, so splitting never copies text. ByteLevel
// does not rewrite the text eagerly: it only marks the pieces as byte-level,
// and a later step that needs the mapped characters (e.g. Digits after
// ByteLevel, as in Falcon) materialises them.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/regex.h"

namespace kaival::tokenizer {

struct PreTokenized {
  using Span = std::pair<uint32_t, uint32_t>;  // [begin, end) into buf
  std::string buf;
  std::vector<Span> pieces;
  bool first_segment = true;  // buf starts the input text (Metaspace "first")
  bool byte_level = false;    // a ByteLevel step ran: pieces are byte sequences
  bool byte_mapped = false;   // buf holds GPT-2 mapped characters, not raw bytes

  void reset(std::string_view text, bool first);
  std::string_view piece(size_t i) const { return std::string_view(buf).substr(pieces[i].first, pieces[i].second - pieces[i].first); }
  // Converts mapped characters back to raw bytes (no-op unless byte_mapped).
  void unmap_bytes();
  // Rewrites buf as mapped characters (no-op unless byte_level && !byte_mapped).
  void map_bytes();
};

struct PreScratch {
  RegexScratch regex;
  std::vector<Regex::Span> matches;
  std::vector<PreTokenized::Span> pieces;
  std::string buf;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void apply(PreTokenized& pt, PreScratch& scratch) const = 0;
};

// Builds the pre-tokenizer of a tokenizer.json "pre_tokenizer" value; nullptr
// for JSON null. Throws FormatError / UnsupportedError naming `where`.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j, const std::string& where);

// GPT-2's pre-tokenizer regex, used by ByteLevel(use_regex=true).
extern const char* const kGpt2Pattern;

}  // namespace kaival::tokenizer
