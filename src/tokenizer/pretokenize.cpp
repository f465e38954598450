#include "tokenizer/pretokenize.h"

#include <functional>
#include <optional>

#include <unicode/uchar.h>
#include <unicode/uscript.h>
#include <utf8proc.h>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace kaival::tokenizer {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

void PreTokenized::reset(std::string_view text, bool first) {
  buf.assign(text);
  pieces.clear();
  if (!text.empty()) pieces.emplace_back(0, static_cast<uint32_t>(text.size()));
  first_segment = first;
  byte_level = byte_mapped = false;
}

void PreTokenized::map_bytes() {
  if (!byte_level || byte_mapped) return;
  const auto& map = ByteLevelMap::instance();
  std::string out;
  out.reserve(buf.size() * 2);
  for (auto& [b, e] : pieces) {
    const auto nb = static_cast<uint32_t>(out.size());
    map.encode_append(std::string_view(buf).substr(b, e - b), out);
    b = nb;
    e = static_cast<uint32_t>(out.size());
  }
  buf = std::move(out);
  byte_mapped = true;
}

void PreTokenized::unmap_bytes() {
  if (!byte_mapped) return;
  const auto& map = ByteLevelMap::instance();
  std::string out;
  out.reserve(buf.size());
  for (auto& [b, e] : pieces) {
    const auto nb = static_cast<uint32_t>(out.size());
    // Pieces only hold mapped characters, so this always succeeds.
    map.decode_append(std::string_view(buf).substr(b, e - b), out);
    b = nb;
    e = static_cast<uint32_t>(out.size());
  }
  buf = std::move(out);
  byte_mapped = false;
}

namespace {

using json = nlohmann::json;
using Span = PreTokenized::Span;

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const json& j, const std::string& where, Behavior dflt) {
  if (!j.is_string()) return dflt;
  const auto s = j.get<std::string>();
  if (s == "Removed") return Behavior::Removed;
  if (s == "Isolated") return Behavior::Isolated;
  if (s == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::MergedWithNext;
  if (s == "Contiguous") return Behavior::Contiguous;
  fail(where, "unknown split behavior \"{}\"", s);
}

// Splits the piece [pb, pe) given its delimiter matches (absolute, sorted,
// non-overlapping) as Hugging Face's NormalizedString::split does.
void split_piece(uint32_t pb, uint32_t pe, const std::vector<Regex::Span>& matches, Behavior behavior, bool invert,
                 std::vector<Span>& out) {
  if (behavior == Behavior::Isolated) {  // fast path: every part is kept
    uint32_t prev = pb;
    for (auto [b, e] : matches) {
      if (b > prev) out.emplace_back(prev, b);
      out.emplace_back(b, e);
      prev = e;
    }
    if (pe > prev) out.emplace_back(prev, pe);
    return;
  }
  struct Part {
    uint32_t b, e;
    bool is_match;
  };
  std::vector<Part> parts;
  parts.reserve(matches.size() * 2 + 1);
  uint32_t prev = pb;
  for (auto [b, e] : matches) {
    if (b > prev) parts.push_back({prev, b, invert});
    parts.push_back({b, e, !invert});
    prev = e;
  }
  if (pe > prev) parts.push_back({prev, pe, invert});

  const size_t start = out.size();
  switch (behavior) {
    case Behavior::Removed:
      for (const auto& p : parts)
        if (!p.is_match) out.emplace_back(p.b, p.e);
      break;
    case Behavior::Contiguous: {
      bool prev_match = false, any = false;
      for (const auto& p : parts) {
        if (any && p.is_match == prev_match) out.back().second = p.e;
        else out.emplace_back(p.b, p.e);
        any = true;
        prev_match = p.is_match;
      }
      break;
    }
    case Behavior::MergedWithPrevious: {
      bool prev_match = false;
      for (const auto& p : parts) {
        if (p.is_match && !prev_match && out.size() > start) out.back().second = p.e;
        else out.emplace_back(p.b, p.e);
        prev_match = p.is_match;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool prev_match = false;
      std::vector<Span> rev;
      for (size_t k = parts.size(); k-- > 0;) {
        const auto& p = parts[k];
        if (p.is_match && !prev_match && !rev.empty()) rev.back().first = p.b;
        else rev.emplace_back(p.b, p.e);
        prev_match = p.is_match;
      }
      out.insert(out.end(), rev.rbegin(), rev.rend());
      break;
    }
    case Behavior::Isolated:
      break;
  }
  // Drop empty parts.
  size_t w = start;
  for (size_t r = start; r < out.size(); ++r)
    if (out[r].second > out[r].first) out[w++] = out[r];
  out.resize(w);
}

// Base for steps that split each piece by a set of delimiter matches.
class Splitter : public PreTokenizer {
 public:
  Splitter(Behavior b, bool invert) : behavior_(b), invert_(invert) {}
  void apply(PreTokenized& pt, PreScratch& s) const override {
    pt.map_bytes();
    s.pieces.clear();
    for (const auto& [b, e] : pt.pieces) {
      s.matches.clear();
      find(std::string_view(pt.buf).substr(0, e), b, s);
      split_piece(b, e, s.matches, behavior_, invert_, s.pieces);
    }
    pt.pieces.swap(s.pieces);
  }

 protected:
  // Appends delimiter matches found in text[b, text.size()) to s.matches.
  virtual void find(std::string_view text, uint32_t b, PreScratch& s) const = 0;

 private:
  Behavior behavior_;
  bool invert_;
};

class RegexSplit final : public Splitter {
 public:
  RegexSplit(std::string_view pattern, const std::string& where, Behavior b, bool invert)
      : Splitter(b, invert), re_(pattern, where) {}

 protected:
  void find(std::string_view text, uint32_t b, PreScratch& s) const override {
    const size_t first = s.matches.size();
    re_.find_all(text.substr(b), s.matches, s.regex);
    for (size_t k = first; k < s.matches.size(); ++k) {
      s.matches[k].first += b;
      s.matches[k].second += b;
    }
  }

 private:
  Regex re_;
};

class StringSplit final : public Splitter {
 public:
  StringSplit(std::string lit, Behavior b, bool invert) : Splitter(b, invert), lit_(std::move(lit)) {}

 protected:
  void find(std::string_view text, uint32_t b, PreScratch& s) const override {
    if (lit_.empty()) return;
    for (size_t pos = b; (pos = text.find(lit_, pos)) != std::string_view::npos; pos += lit_.size())
      s.matches.emplace_back(static_cast<uint32_t>(pos), static_cast<uint32_t>(pos + lit_.size()));
  }

 private:
  std::string lit_;
};

// Each character satisfying the predicate is its own delimiter match.
class CharSplit final : public Splitter {
 public:
  CharSplit(std::function<bool(char32_t)> pred, Behavior b) : Splitter(b, false), pred_(std::move(pred)) {}

 protected:
  void find(std::string_view text, uint32_t b, PreScratch& s) const override {
    for (size_t i = b; i < text.size();) {
      const auto d = utf8::decode(text, i);
      if (d.valid && pred_(d.cp)) s.matches.emplace_back(static_cast<uint32_t>(i), static_cast<uint32_t>(i + d.len));
      i += d.len;
    }
  }

 private:
  std::function<bool(char32_t)> pred_;
};

utf8proc_category_t category(char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)); }

bool is_numeric(char32_t c) {  // Rust char::is_numeric: Nd, Nl, No
  if (c < 0x80) return c >= '0' && c <= '9';
  const auto k = category(c);
  return k == UTF8PROC_CATEGORY_ND || k == UTF8PROC_CATEGORY_NL || k == UTF8PROC_CATEGORY_NO;
}

bool is_unicode_punct(char32_t c) {
  switch (category(c)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

bool is_ascii_punct(char32_t c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

bool is_punctuation(char32_t c) { return is_ascii_punct(c) || is_unicode_punct(c); }

class SequencePre final : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void apply(PreTokenized& pt, PreScratch& s) const override {
    for (const auto& st : steps_) st->apply(pt, s);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

class ByteLevelPre final : public PreTokenizer {
 public:
  ByteLevelPre(bool add_prefix_space, bool use_regex, const std::string& where)
      : add_prefix_space_(add_prefix_space) {
    if (use_regex) re_ = std::make_unique<Regex>(kGpt2Pattern, where);
  }
  void apply(PreTokenized& pt, PreScratch& s) const override {
    if (pt.byte_mapped) pt.unmap_bytes();  // a second ByteLevel works on the raw bytes again
    if (add_prefix_space_) {
      s.buf.clear();
      for (auto& [b, e] : pt.pieces) {
        const auto nb = static_cast<uint32_t>(s.buf.size());
        if (pt.buf[b] != ' ') s.buf += ' ';
        s.buf.append(pt.buf, b, e - b);
        b = nb;
        e = static_cast<uint32_t>(s.buf.size());
      }
      pt.buf.swap(s.buf);
    }
    if (re_) {
      s.pieces.clear();
      for (const auto& [b, e] : pt.pieces) {
        s.matches.clear();
        re_->find_all(std::string_view(pt.buf).substr(b, e - b), s.matches, s.regex);
        for (auto& m : s.matches) {
          m.first += b;
          m.second += b;
        }
        split_piece(b, e, s.matches, Behavior::Isolated, false, s.pieces);
      }
      pt.pieces.swap(s.pieces);
    }
    pt.byte_level = true;
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> re_;
};

// Replaces spaces by the replacement character (U+2581 by default), prepends
// one per the prepend scheme, and optionally splits before each replacement.
class MetaspacePre final : public PreTokenizer {
 public:
  enum class Prepend { Always, First, Never };
  MetaspacePre(std::string repl, Prepend scheme, bool split)
      : repl_(std::move(repl)), scheme_(scheme), split_(split), splitter_(repl_, Behavior::MergedWithNext, false) {}
  void apply(PreTokenized& pt, PreScratch& s) const override {
    pt.map_bytes();
    s.buf.clear();
    for (auto& [b, e] : pt.pieces) {
      const auto nb = static_cast<uint32_t>(s.buf.size());
      const std::string_view piece = std::string_view(pt.buf).substr(b, e - b);
      const bool prepend = scheme_ == Prepend::Always || (scheme_ == Prepend::First && pt.first_segment && b == 0);
      // HF checks for a leading replacement after spaces were replaced.
      if (prepend && !piece.empty() && piece[0] != ' ' && piece.substr(0, repl_.size()) != repl_) s.buf += repl_;
      for (char c : piece) {
        if (c == ' ') s.buf += repl_;
        else s.buf += c;
      }
      b = nb;
      e = static_cast<uint32_t>(s.buf.size());
    }
    pt.buf.swap(s.buf);
    if (split_) splitter_.apply(pt, s);
  }

 private:
  std::string repl_;
  Prepend scheme_;
  bool split_;
  StringSplit splitter_;
};

// Splits where the Unicode script changes, as Hugging Face's UnicodeScripts
// (SentencePiece's IsValidSentencePiece rule): Hiragana, Katakana and U+30FC
// count as Han, and a plain space belongs to every script, so "Apples are
// りんご" splits as "Apples are " + "りんご". Scripts come from ICU, limited to
// Unicode 9 as HF's table is.
class ScriptSplit final : public PreTokenizer {
 public:
  void apply(PreTokenized& pt, PreScratch& s) const override {
    pt.map_bytes();
    s.pieces.clear();
    for (const auto& [b, e] : pt.pieces) {
      const std::string_view text(pt.buf);
      constexpr int kNone = -2, kAny = -1;
      int last = kNone;
      // Hugging Face cuts at the first character that has a script and keeps
      // only what follows, so leading any-script text (spaces, new emoji) is
      // dropped and an all-space piece vanishes. Reproduced for identical ids.
      std::optional<uint32_t> start;
      for (uint32_t i = b; i < e;) {
        const auto d = utf8::decode(text.substr(0, e), i);
        const int script = script_of(d.cp);
        if (script != kAny && last != script) {
          if (start && *start < i) s.pieces.emplace_back(*start, i);
          start = i;
        }
        if (script != kAny) last = script;
        i += d.len;
      }
      if (start && e > *start) s.pieces.emplace_back(*start, e);
    }
    pt.pieces.swap(s.pieces);
  }

 private:
  static int script_of(char32_t c) {
    if (c == ' ') return -1;
    if (c == 0x30FC) return USCRIPT_HAN;
    // HF's table stops at Unicode 9 and calls everything else "any script"
    // (emoji such as U+1F999 included); ICU knows newer characters.
    UVersionInfo age;
    u_charAge(static_cast<UChar32>(c), age);
    if (age[0] == 0 || age[0] > 9) return -1;
    UErrorCode err = U_ZERO_ERROR;
    const UScriptCode code = uscript_getScript(static_cast<UChar32>(c), &err);
    if (U_FAILURE(err) || code == USCRIPT_UNKNOWN) return -1;  // private use, noncharacters
    if (code == USCRIPT_HIRAGANA || code == USCRIPT_KATAKANA) return USCRIPT_HAN;
    return code;
  }
};

// Cuts every piece into chunks of `length` characters (the last may be
// shorter), as Hugging Face's FixedLength.
class FixedLengthSplit final : public PreTokenizer {
 public:
  explicit FixedLengthSplit(size_t length) : length_(length) {}
  void apply(PreTokenized& pt, PreScratch& s) const override {
    pt.map_bytes();
    s.pieces.clear();
    const std::string_view text(pt.buf);
    for (const auto& [b, e] : pt.pieces) {
      uint32_t start = b;
      size_t chars = 0;
      for (uint32_t i = b; i < e;) {
        i += utf8::decode(text.substr(0, e), i).len;
        if (++chars == length_) {
          s.pieces.emplace_back(start, i);
          start = i;
          chars = 0;
        }
      }
      if (e > start) s.pieces.emplace_back(start, e);
    }
    pt.pieces.swap(s.pieces);
  }

 private:
  size_t length_;
};

bool get_bool(const json& j, const char* key, bool dflt) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : dflt;
}

}  // namespace

namespace {
constexpr int kMaxNesting = 32;  // real files nest Sequences once; bound hostile input
std::unique_ptr<PreTokenizer> make_pre_tokenizer_at(const json& j, const std::string& where, int depth);
}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& where) {
  return make_pre_tokenizer_at(j, where, 0);
}

namespace {
std::unique_ptr<PreTokenizer> make_pre_tokenizer_at(const json& j, const std::string& where, int depth) {
  if (j.is_null()) return nullptr;
  if (depth > kMaxNesting) fail(where, "pre_tokenizer Sequences nested deeper than {}", kMaxNesting);
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    fail(where, "pre_tokenizer must be an object with a \"type\"");
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    auto it = j.find("pretokenizers");
    if (it == j.end() || !it->is_array()) fail(where, "Sequence pre_tokenizer needs a \"pretokenizers\" array");
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const auto& sub : *it)
      if (auto p = make_pre_tokenizer_at(sub, where, depth + 1)) steps.push_back(std::move(p));
    return std::make_unique<SequencePre>(std::move(steps));
  }
  if (type == "Split") {
    const Behavior b = parse_behavior(j.value("behavior", json()), where, Behavior::Isolated);
    const bool invert = get_bool(j, "invert", false);
    auto pat = j.find("pattern");
    if (pat == j.end() || !pat->is_object()) fail(where, "Split pre_tokenizer needs a \"pattern\" object");
    if (pat->contains("Regex") && (*pat)["Regex"].is_string())
      return std::make_unique<RegexSplit>((*pat)["Regex"].get<std::string>(), where, b, invert);
    if (pat->contains("String") && (*pat)["String"].is_string()) {
      if (!invert) return std::make_unique<StringSplit>((*pat)["String"].get<std::string>(), b, false);
      return std::make_unique<RegexSplit>(regex_escape((*pat)["String"].get<std::string>()), where, b, true);
    }
    fail(where, "Split pattern must have \"String\" or \"Regex\"");
  }
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelPre>(get_bool(j, "add_prefix_space", true), get_bool(j, "use_regex", true), where);
  if (type == "Digits") {
    const bool individual = get_bool(j, "individual_digits", false);
    return std::make_unique<CharSplit>(is_numeric, individual ? Behavior::Isolated : Behavior::Contiguous);
  }
  if (type == "Punctuation")
    return std::make_unique<CharSplit>(is_punctuation,
                                       parse_behavior(j.value("behavior", json()), where, Behavior::Isolated));
  if (type == "Whitespace") return std::make_unique<RegexSplit>(R"(\w+|[^\w\s]+)", where, Behavior::Removed, true);
  if (type == "WhitespaceSplit") return std::make_unique<CharSplit>(utf8::is_white_space, Behavior::Removed);
  if (type == "CharDelimiterSplit") {
    const std::string d = j.value("delimiter", std::string());
    if (d.empty() || !utf8::is_valid(d)) fail(where, "CharDelimiterSplit needs a one-character \"delimiter\"");
    const char32_t c = utf8::decode(d, 0).cp;
    return std::make_unique<CharSplit>([c](char32_t x) { return x == c; }, Behavior::Removed);
  }
  if (type == "BertPreTokenizer") {
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    steps.push_back(std::make_unique<CharSplit>(utf8::is_white_space, Behavior::Removed));
    steps.push_back(std::make_unique<CharSplit>(is_punctuation, Behavior::Isolated));
    return std::make_unique<SequencePre>(std::move(steps));
  }
  if (type == "Metaspace") {
    std::string repl = j.value("replacement", std::string("\xE2\x96\x81"));
    if (repl.empty()) fail(where, "Metaspace replacement must not be empty");
    MetaspacePre::Prepend scheme = get_bool(j, "add_prefix_space", true) ? MetaspacePre::Prepend::Always
                                                                         : MetaspacePre::Prepend::Never;
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
      const auto s = j["prepend_scheme"].get<std::string>();
      scheme = s == "first" ? MetaspacePre::Prepend::First
               : s == "never" ? MetaspacePre::Prepend::Never
                              : MetaspacePre::Prepend::Always;
    }
    return std::make_unique<MetaspacePre>(std::move(repl), scheme, get_bool(j, "split", true));
  }
  if (type == "UnicodeScripts") return std::make_unique<ScriptSplit>();
  if (type == "FixedLength") {
    auto it = j.find("length");
    if (it == j.end()) return std::make_unique<FixedLengthSplit>(5);  // HF's default
    if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > (1 << 20))
      fail(where, "FixedLength pre_tokenizer needs a \"length\" between 1 and {}", 1u << 20);
    return std::make_unique<FixedLengthSplit>(it->get<size_t>());
  }
  fail<UnsupportedError>(where, "unsupported pre_tokenizer type \"{}\"", type);
}

}  // namespace

}  // namespace kaival::tokenizer
