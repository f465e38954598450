#pragma once
// Added/special tokens: finding them in text before the model runs. Semantics
// follow Hugging Face's AddedVocabulary (leftmost-longest matches; lstrip,
// rstrip and single_word options) which llama.cpp's special-token partition
// also approximates.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace kaival::tokenizer {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;      // skipped by parse_special=false and decode(skip_special)
  bool lstrip = false;       // swallow whitespace on the left
  bool rstrip = false;       // swallow whitespace on the right
  bool single_word = false;  // only match when not inside a word
  bool normalized = false;   // matched against normalized text (else raw text)
};

// Parses tokenizer.json "added_tokens". Throws FormatError naming `where`.
std::vector<AddedToken> parse_added_tokens(const nlohmann::json& arr, const std::string& where);

// One piece of input: either plain text (id < 0) or a recognised added token.
struct TextSegment {
  std::string_view text;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(const std::vector<AddedToken>& tokens);

  bool empty() const { return nodes_.size() <= 1; }

  // Splits `text` into plain-text pieces and tokens. With parse_special=false
  // special tokens are left in the text (non-special added tokens still match).
  // Appends to `out`; empty text pieces are not produced.
  void split(std::string_view text, bool parse_special, std::vector<TextSegment>& out) const;

 private:
  struct Node {
    std::vector<std::pair<uint8_t, uint32_t>> next;  // sorted by byte
    int32_t token = -1;                              // index into tokens_
  };
  struct Match {
    size_t begin, end;
    int32_t token;
  };
  // Leftmost-longest match starting at or after `from`.
  bool find(std::string_view text, size_t from, Match& m) const;

  std::vector<Node> nodes_{1};
  std::vector<AddedToken> tokens_;
  bool first_byte_[256] = {};
};

// Reads special-token names and the chat template from tokenizer_config.json
// (null json: nothing). Token names are resolved with `id_of`; names that do
// not resolve are ignored. add_bos/add_eos are left as they are: what encode
// adds is decided by the tokenizer's own post-processor.
void read_tokenizer_config(const nlohmann::json& config,
                           const std::function<std::optional<int32_t>(std::string_view)>& id_of,
                           SpecialTokens& special, std::string& chat_template);

// Reads tokenizer.ggml.{bos,eos,unknown,seperator,padding,cls,mask}_token_id,
// add_bos_token/add_eos_token and tokenizer.chat_template. Ids outside
// [0, n_tokens) are ignored.
void read_gguf_special(const weights::GgufFile& gguf, size_t n_tokens, SpecialTokens& special,
                       std::string& chat_template);

}  // namespace kaival::tokenizer
