#include "tokenizer/special.h"

#include <algorithm>

#include <utf8proc.h>

#include "core/error.h"
#include "weights/gguf.h"
#include "tokenizer/utf8.h"

namespace kaival::tokenizer {
namespace {

// Word characters for single_word: Rust's char::is_alphanumeric or '_'.
bool is_word_char(char32_t c) {
  if (c == '_') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

// Start of the character that ends at `end` (exclusive).
size_t prev_char(std::string_view s, size_t end) {
  size_t k = end - 1;
  while (k > 0 && end - k < 4 && (static_cast<uint8_t>(s[k]) & 0xC0) == 0x80) --k;
  return k;
}

bool ends_with_word(std::string_view s, size_t end) {
  if (end == 0) return false;
  return is_word_char(utf8::decode(s, prev_char(s, end)).cp);
}

bool starts_with_word(std::string_view s, size_t begin) {
  if (begin >= s.size()) return false;
  return is_word_char(utf8::decode(s, begin).cp);
}

}  // namespace

std::vector<AddedToken> parse_added_tokens(const nlohmann::json& arr, const std::string& where) {
  std::vector<AddedToken> out;
  if (arr.is_null()) return out;
  if (!arr.is_array()) fail(where, "\"added_tokens\" must be an array");
  for (const auto& t : arr) {
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
        !t["content"].is_string())
      fail(where, "each added token needs an integer \"id\" and a string \"content\"");
    AddedToken a;
    const int64_t id = t["id"].get<int64_t>();
    if (id < 0 || id > INT32_MAX) fail(where, "added token id {} is out of range", id);
    a.id = static_cast<int32_t>(id);
    a.content = t["content"].get<std::string>();
    auto flag = [&](const char* k, bool d) { return t.contains(k) && t[k].is_boolean() ? t[k].get<bool>() : d; };
    a.special = flag("special", false);
    a.lstrip = flag("lstrip", false);
    a.rstrip = flag("rstrip", false);
    a.single_word = flag("single_word", false);
    a.normalized = flag("normalized", !a.special);
    out.push_back(std::move(a));
  }
  return out;
}

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>& tokens) {
  for (const auto& t : tokens) {
    if (t.content.empty()) continue;
    uint32_t node = 0;
    for (unsigned char c : t.content) {
      auto& next = nodes_[node].next;
      auto it = std::lower_bound(next.begin(), next.end(), c, [](const auto& p, uint8_t v) { return p.first < v; });
      if (it != next.end() && it->first == c) {
        node = it->second;
      } else {
        const auto child = static_cast<uint32_t>(nodes_.size());
        next.insert(it, {c, child});
        nodes_.emplace_back();
        node = child;
      }
    }
    // A later duplicate of the same content replaces the earlier one, as in HF.
    if (nodes_[node].token >= 0) {
      tokens_[static_cast<size_t>(nodes_[node].token)] = t;
    } else {
      nodes_[node].token = static_cast<int32_t>(tokens_.size());
      tokens_.push_back(t);
    }
    first_byte_[static_cast<unsigned char>(t.content[0])] = true;
  }
}

bool AddedTokenMatcher::find(std::string_view text, size_t from, Match& m) const {
  for (size_t i = from; i < text.size(); ++i) {
    if (!first_byte_[static_cast<unsigned char>(text[i])]) continue;
    uint32_t node = 0;
    int32_t best = -1;
    size_t best_end = 0;
    for (size_t k = i; k < text.size(); ++k) {
      const auto& next = nodes_[node].next;
      const auto c = static_cast<uint8_t>(text[k]);
      auto it = std::lower_bound(next.begin(), next.end(), c, [](const auto& p, uint8_t v) { return p.first < v; });
      if (it == next.end() || it->first != c) break;
      node = it->second;
      if (nodes_[node].token >= 0) {
        best = nodes_[node].token;
        best_end = k + 1;
      }
    }
    if (best >= 0) {
      m = {i, best_end, best};
      return true;
    }
  }
  return false;
}

void AddedTokenMatcher::split(std::string_view text, bool parse_special, std::vector<TextSegment>& out) const {
  size_t done = 0;  // text before this offset has been emitted
  size_t from = 0;  // where to search for the next match
  Match m{};
  while (!empty() && from < text.size() && find(text, from, m)) {
    from = m.end;
    const AddedToken& tok = tokens_[static_cast<size_t>(m.token)];
    if (tok.special && !parse_special) continue;
    if (tok.single_word && (ends_with_word(text, m.begin) || starts_with_word(text, m.end))) continue;
    size_t b = m.begin, e = m.end;
    if (tok.lstrip) {
      while (b > done) {
        const size_t k = prev_char(text, b);
        if (!utf8::is_white_space(utf8::decode(text, k).cp)) break;
        b = k;
      }
    }
    if (tok.rstrip) {
      while (e < text.size()) {
        const auto d = utf8::decode(text, e);
        if (!utf8::is_white_space(d.cp)) break;
        e += d.len;
      }
      from = e;
    }
    if (b > done) out.push_back({text.substr(done, b - done), -1});
    out.push_back({text.substr(b, e - b), tok.id});
    done = e;
  }
  if (done < text.size()) out.push_back({text.substr(done), -1});
}

void read_tokenizer_config(const nlohmann::json& config,
                           const std::function<std::optional<int32_t>(std::string_view)>& id_of,
                           SpecialTokens& special, std::string& chat_template) {
  if (!config.is_object()) return;
  auto name_of = [&](const char* key) -> std::optional<std::string> {
    auto it = config.find(key);
    if (it == config.end()) return std::nullopt;
    if (it->is_string()) return it->get<std::string>();
    if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
      return (*it)["content"].get<std::string>();
    return std::nullopt;
  };
  auto resolve = [&](const char* key, std::optional<int32_t>& slot) {
    if (auto name = name_of(key))
      if (auto id = id_of(*name)) slot = *id;
  };
  resolve("bos_token", special.bos);
  resolve("eos_token", special.eos);
  resolve("unk_token", special.unk);
  resolve("pad_token", special.pad);
  resolve("sep_token", special.sep);
  resolve("cls_token", special.cls);
  resolve("mask_token", special.mask);
  if (auto it = config.find("chat_template"); it != config.end()) {
    if (it->is_string()) {
      chat_template = it->get<std::string>();
    } else if (it->is_array()) {
      // Older format: a list of named templates; the one named "default" is
      // what applies without a name.
      for (const auto& t : *it)
        if (t.is_object() && t.value("name", "") == "default" && t.contains("template") && t["template"].is_string())
          chat_template = t["template"].get<std::string>();
    }
  }
}

void read_gguf_special(const weights::GgufFile& gguf, size_t n_tokens, SpecialTokens& special,
                       std::string& chat_template) {
  auto id = [&](const char* key, std::optional<int32_t>& slot) {
    if (auto v = gguf.get_int(key); v && *v >= 0 && static_cast<uint64_t>(*v) < n_tokens)
      slot = static_cast<int32_t>(*v);
  };
  id("tokenizer.ggml.bos_token_id", special.bos);
  id("tokenizer.ggml.eos_token_id", special.eos);
  id("tokenizer.ggml.unknown_token_id", special.unk);
  id("tokenizer.ggml.seperator_token_id", special.sep);
  id("tokenizer.ggml.padding_token_id", special.pad);
  id("tokenizer.ggml.cls_token_id", special.cls);
  id("tokenizer.ggml.mask_token_id", special.mask);
  if (auto v = gguf.get_int("tokenizer.ggml.add_bos_token")) special.add_bos = *v != 0;
  if (auto v = gguf.get_int("tokenizer.ggml.add_eos_token")) special.add_eos = *v != 0;
  if (auto t = gguf.get_string("tokenizer.chat_template")) chat_template = *t;
}

}  // namespace kaival::tokenizer
