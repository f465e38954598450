#pragma once
// BERT WordPiece: each word becomes its longest vocabulary prefix, then the
// longest continuation piece of the rest, and so on (greedy longest match
// first). A word that cannot be covered, or that is longer than
// max_input_chars_per_word characters, becomes the unknown token.
//   tokenizer.json: pieces after the first carry the "##" prefix.
//   GGUF ("bert"):  llama.cpp's converter stores word-initial pieces as
//                   "▁piece" and continuation pieces without "##".
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/normalize.h"
#include "tokenizer/spm.h"

namespace kaival::tokenizer {

class WordPieceModel {
 public:
  struct Options {
    std::string word_prefix;                  // before the first piece ("▁" in GGUF)
    std::string continuation_prefix = "##";   // before the others
    int32_t unk_id = -1;                      // -1: uncoverable words are dropped
    size_t max_input_chars_per_word = 100;
  };
  WordPieceModel() = default;
  WordPieceModel(const TokenVocab* vocab, Options opt) : vocab_(vocab), opt_(std::move(opt)) {}
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

 private:
  const TokenVocab* vocab_ = nullptr;
  Options opt_;
};

// Hugging Face's BertNormalizer, character by character as HF does it:
// clean_text drops NUL, U+FFFD and "other" characters (Cc except \t \n \r,
// Cf, Co; unassigned code points stay) before mapping whitespace to ' ';
// then CJK padding, accent stripping (NFD, drop Mn) and lowercasing.
std::unique_ptr<Normalizer> make_bert_normalizer(bool clean_text, bool handle_chinese_chars, bool strip_accents,
                                                 bool lowercase);

}  // namespace kaival::tokenizer
