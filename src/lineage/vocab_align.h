#pragma once
// Vocabulary alignment: which token of model A is the same string as which
// token of model B, whatever the tokenizers' spelling conventions (byte-level
// BPE "Ġ", SentencePiece "▁" and <0xNN> byte tokens, WordPiece "##"). The
// pairs index embedding and head rows, so vocabularies that were extended,
// reduced or reordered still compare row by row.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace kaival::tokenizer {
class Tokenizer;
}

namespace kaival::lineage {

enum class TokenSpelling { ByteLevel, SentencePiece, WordPiece, Plain };
std::string_view spelling_name(TokenSpelling s);

// Guess a vocabulary's spelling convention from its tokens.
TokenSpelling detect_spelling(const std::vector<std::string>& tokens, std::string_view type_hint);
// The raw byte string a token stands for ("Ġthe" -> " the", "▁the" -> " the",
// "<0x0A>" -> "\n", "##ing" -> "ing", "the" in WordPiece -> " the").
std::string normalize_token(std::string_view token, TokenSpelling spelling);

struct Vocab {
  std::vector<std::string> tokens;  // by id
  TokenSpelling spelling = TokenSpelling::Plain;
  std::string source;               // where it came from, for the report
  // Merge rules as written (BPE), empty when unknown.
  std::vector<std::string> merges;
};
// Read the vocabulary of a tokenizer (all ids).
Vocab vocab_from_tokenizer(const tokenizer::Tokenizer& tok, std::string source);

struct TokenPairs {
  std::vector<int64_t> a, b;  // row indices, same length
  int64_t shared = 0;         // distinct normalized strings found in both
  int64_t same_id = 0;        // shared strings with the same id in both
};
// Pairs of ids whose normalized strings are equal (first id wins when two
// tokens of one vocabulary normalize to the same string).
TokenPairs align_vocabularies(const Vocab& a, const Vocab& b);

// Tokenizer evidence for the report (never decides a verdict on its own).
nlohmann::json tokenizer_evidence(const Vocab* a, const Vocab* b, const TokenPairs* pairs);

}  // namespace kaival::lineage
