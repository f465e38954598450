#pragma once
// Tokenizers of the common families, from tokenizer.json (+ tokenizer_config.json)
// or GGUF tokenizer.ggml.* metadata. Encoding must give exactly the ids of the
// reference implementations (HF tokenizers, llama.cpp).
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kaival::weights {
class GgufFile;
}

namespace kaival::tokenizer {

struct SpecialTokens {
  std::optional<int32_t> bos, eos, unk, pad, sep, cls, mask;
  bool add_bos = false;  // prepend BOS when encoding with add_special
  bool add_eos = false;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Model folder (tokenizer.json [+ tokenizer_config.json]), a tokenizer.json
  // file, or a .gguf file. Throws kaival::Error naming the file and problem.
  static std::unique_ptr<Tokenizer> open(const std::string& path);
  static std::unique_ptr<Tokenizer> from_gguf(const weights::GgufFile& gguf, const std::string& where);
  static std::unique_ptr<Tokenizer> from_tokenizer_json(const std::string& tokenizer_json_path,
                                                        const std::string& tokenizer_config_path = "");

  // `add_special`: add BOS/EOS etc. as the tokenizer's post-processor says.
  // `parse_special`: recognise special/added tokens written in the text.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special = true,
                                      bool parse_special = true) const = 0;
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special = false) const = 0;

  virtual std::string_view type() const = 0;  // "bpe", "spm", "unigram", "wordpiece"
  virtual size_t vocab_size() const = 0;
  virtual std::string_view token(int32_t id) const = 0;  // "" if out of range
  virtual std::optional<int32_t> token_id(std::string_view token) const = 0;
  virtual const SpecialTokens& special() const = 0;
  // Chat template kept verbatim (tokenizer_config.json chat_template or GGUF
  // tokenizer.chat_template); empty if none.
  virtual const std::string& chat_template() const = 0;
  // SHA-256 (hex) of that template's UTF-8 text, for reproducibility
  // manifests: the same hash means the same rendered prompts. Empty if none.
  std::string chat_template_sha256() const;
};

}  // namespace kaival::tokenizer
