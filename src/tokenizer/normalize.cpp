#include "tokenizer/normalize.h"

#include <utf8proc.h>

#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"
#include "tokenizer/wordpiece.h"

namespace kaival::tokenizer {
namespace {

using json = nlohmann::json;

void make_valid(std::string& s) {
  if (!utf8::is_valid(s)) s = utf8::lossy(s);
}

template <typename F>
void for_each_cp(std::string_view s, F&& f) {
  for (size_t i = 0; i < s.size();) {
    const auto d = utf8::decode(s, i);
    f(d.cp);
    i += d.len;
  }
}

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void apply(std::string& text) const override {
    for (const auto& p : parts_) p->apply(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

class FormNormalizer final : public Normalizer {
 public:
  explicit FormNormalizer(NormalForm f) : form_(f) {}
  void apply(std::string& text) const override { text = unicode_normalize(text, form_); }

 private:
  NormalForm form_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  void apply(std::string& text) const override { text = lowercase(text); }
};

class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void apply(std::string& text) const override {
    make_valid(text);
    size_t b = 0, e = text.size();
    if (left_) {
      while (b < e) {
        const auto d = utf8::decode(text, b);
        if (!utf8::is_white_space(d.cp)) break;
        b += d.len;
      }
    }
    if (right_) {
      while (e > b) {
        size_t k = e - 1;
        while (k > b && (static_cast<uint8_t>(text[k]) & 0xC0) == 0x80) --k;
        if (!utf8::is_white_space(utf8::decode(text, k).cp)) break;
        e = k;
      }
    }
    text = text.substr(b, e - b);
  }

 private:
  bool left_, right_;
};

// Removes combining marks (Mn), as HF's StripAccents does (usually after NFD).
class StripAccentsNormalizer final : public Normalizer {
 public:
  void apply(std::string& text) const override {
    make_valid(text);
    std::string out;
    out.reserve(text.size());
    for_each_cp(text, [&](char32_t c) {
      if (utf8proc_category(static_cast<utf8proc_int32_t>(c)) != UTF8PROC_CATEGORY_MN) utf8::append(out, c);
    });
    text = std::move(out);
  }
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::string literal, std::unique_ptr<Regex> re, std::string content)
      : literal_(std::move(literal)), re_(std::move(re)), content_(std::move(content)) {}
  void apply(std::string& text) const override {
    make_valid(text);
    std::string out;
    out.reserve(text.size());
    size_t prev = 0;
    if (re_) {
      RegexScratch scratch;
      std::vector<Regex::Span> spans;
      re_->find_all(text, spans, scratch);
      for (auto [b, e] : spans) {
        out.append(text, prev, b - prev);
        out += content_;
        prev = e;
      }
    } else if (!literal_.empty()) {
      for (size_t pos; (pos = text.find(literal_, prev)) != std::string::npos; prev = pos + literal_.size()) {
        out.append(text, prev, pos - prev);
        out += content_;
      }
    }
    out.append(text, prev, std::string::npos);
    text = std::move(out);
  }

 private:
  std::string literal_;
  std::unique_ptr<Regex> re_;
  std::string content_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string p) : prefix_(std::move(p)) {}
  void apply(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

// SentencePiece's NMT normalization: drop some control characters and map
// the remaining special spaces to ' ' (HF "Nmt").
class NmtNormalizer final : public Normalizer {
 public:
  void apply(std::string& text) const override {
    make_valid(text);
    std::string out;
    out.reserve(text.size());
    for_each_cp(text, [&](char32_t c) {
      if ((c >= 0x0001 && c <= 0x0008) || c == 0x000B || (c >= 0x000E && c <= 0x001F) || c == 0x007F ||
          c == 0x008F || c == 0x009F)
        return;
      if (c == 0x0009 || c == 0x000A || c == 0x000C || c == 0x000D || c == 0x1680 || (c >= 0x200B && c <= 0x200F) ||
          c == 0x2028 || c == 0x2029 || c == 0x2581 || c == 0xFEFF || c == 0xFFFD)
        c = ' ';
      utf8::append(out, c);
    });
    text = std::move(out);
  }
};

bool get_bool(const json& j, const char* key, bool dflt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  return it->is_boolean() ? it->get<bool>() : dflt;
}

std::string get_string(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) fail(where, "normalizer field \"{}\" must be a string", key);
  return it->get<std::string>();
}

}  // namespace

std::string unicode_normalize(std::string_view text, NormalForm form) {
  std::string in(text);
  make_valid(in);
  utf8proc_option_t opts = static_cast<utf8proc_option_t>(UTF8PROC_STABLE);
  switch (form) {
    case NormalForm::NFC: opts = static_cast<utf8proc_option_t>(opts | UTF8PROC_COMPOSE); break;
    case NormalForm::NFD: opts = static_cast<utf8proc_option_t>(opts | UTF8PROC_DECOMPOSE); break;
    case NormalForm::NFKC: opts = static_cast<utf8proc_option_t>(opts | UTF8PROC_COMPOSE | UTF8PROC_COMPAT); break;
    case NormalForm::NFKD: opts = static_cast<utf8proc_option_t>(opts | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT); break;
  }
  // ASCII is invariant under every normal form.
  bool ascii = true;
  for (unsigned char c : in) ascii &= c < 0x80;
  if (ascii) return in;
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(in.data()),
                              static_cast<utf8proc_ssize_t>(in.size()), &out, opts);
  if (n < 0) return in;  // cannot happen on valid UTF-8
  std::string res(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return res;
}

std::string lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const unsigned char b = static_cast<unsigned char>(text[i]);
    if (b < 0x80) {
      out += static_cast<char>(b >= 'A' && b <= 'Z' ? b + 32 : b);
      ++i;
      continue;
    }
    const auto d = utf8::decode(text, i);
    i += d.len;
    if (d.cp == 0x130) {  // the one unconditional multi-character lowercase: I with dot
      out += "i\xCC\x87";
      continue;
    }
    utf8::append(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(d.cp))));
  }
  return out;
}

namespace {
std::unique_ptr<Normalizer> make_normalizer_at(const json& j, const std::string& where, int depth);
}

std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& where) {
  return make_normalizer_at(j, where, 0);
}

namespace {
// Real files nest Sequences one or two deep; a bound keeps hostile nesting
// from exhausting the stack.
constexpr int kMaxNesting = 32;

std::unique_ptr<Normalizer> make_normalizer_at(const json& j, const std::string& where, int depth) {
  if (j.is_null()) return nullptr;
  if (depth > kMaxNesting) fail(where, "normalizer Sequences nested deeper than {}", kMaxNesting);
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    fail(where, "normalizer must be an object with a \"type\"");
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    auto it = j.find("normalizers");
    if (it == j.end() || !it->is_array()) fail(where, "Sequence normalizer needs a \"normalizers\" array");
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const auto& sub : *it)
      if (auto n = make_normalizer_at(sub, where, depth + 1)) parts.push_back(std::move(n));
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "NFC") return std::make_unique<FormNormalizer>(NormalForm::NFC);
  if (type == "NFD") return std::make_unique<FormNormalizer>(NormalForm::NFD);
  if (type == "NFKC") return std::make_unique<FormNormalizer>(NormalForm::NFKC);
  if (type == "NFKD") return std::make_unique<FormNormalizer>(NormalForm::NFKD);
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (type == "Nmt") return std::make_unique<NmtNormalizer>();
  if (type == "Strip")
    return std::make_unique<StripNormalizer>(get_bool(j, "strip_left", true), get_bool(j, "strip_right", true));
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(get_string(j, "prepend", where));
  if (type == "Replace") {
    auto pat = j.find("pattern");
    if (pat == j.end() || !pat->is_object()) fail(where, "Replace normalizer needs a \"pattern\" object");
    std::string content = get_string(j, "content", where);
    if (pat->contains("String") && (*pat)["String"].is_string())
      return std::make_unique<ReplaceNormalizer>((*pat)["String"].get<std::string>(), nullptr, std::move(content));
    if (pat->contains("Regex") && (*pat)["Regex"].is_string())
      return std::make_unique<ReplaceNormalizer>(
          "", std::make_unique<Regex>((*pat)["Regex"].get<std::string>(), where), std::move(content));
    fail(where, "Replace normalizer pattern must have \"String\" or \"Regex\"");
  }
  if (type == "BertNormalizer") {
    const bool lower = get_bool(j, "lowercase", true);
    // strip_accents null means "follow lowercase".
    const bool strip = get_bool(j, "strip_accents", lower);
    // One implementation of HF's exact rules, shared with the WordPiece loaders.
    return make_bert_normalizer(get_bool(j, "clean_text", true), get_bool(j, "handle_chinese_chars", true), strip,
                                lower);
  }
  fail<UnsupportedError>(where, "unsupported normalizer type \"{}\"", type);
}

}  // namespace

}  // namespace kaival::tokenizer
