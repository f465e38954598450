#pragma once
// Text normalizers of tokenizer.json ("normalizer"): NFC/NFD/NFKC/NFKD,
// Lowercase, Strip, StripAccents, Replace (string or regex), Prepend, Nmt,
// BertNormalizer and Sequence. Like Hugging Face tokenizers, a normalizer is
// applied to each piece of text between added tokens separately.
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kaival::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Normalizes `text` in place. Invalid UTF-8 is first replaced by U+FFFD.
  virtual void apply(std::string& text) const = 0;
};

// Builds the normalizer described by a tokenizer.json "normalizer" value.
// Returns nullptr for JSON null. Throws FormatError (bad JSON shape) or
// UnsupportedError (unknown type) naming `where`.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& where);

enum class NormalForm { NFC, NFD, NFKC, NFKD };
std::string unicode_normalize(std::string_view text, NormalForm form);
// Per-character full lowercase mapping (Rust's char::to_lowercase).
std::string lowercase(std::string_view text);

}  // namespace kaival::tokenizer
