#pragma once
// Unigram language-model tokenization (SentencePiece unigram, as in T5,
// ALBERT, XLM-R): the segmentation of a word into vocabulary pieces with the
// highest total log-probability (Viterbi over the lattice of all pieces that
// occur in it). A character no piece starts with costs (lowest score - 10)
// as the unknown token; adjacent unknown characters fuse into one unknown
// piece, which byte fallback spells as <0xXX> tokens when the vocab has them.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/normalize.h"
#include "tokenizer/spm.h"

namespace kaival::tokenizer {

class UnigramModel {
 public:
  struct Options {
    int32_t unk_id = -1;  // -1: unknown characters are dropped
    bool byte_fallback = false;
  };
  UnigramModel() = default;
  UnigramModel(const TokenVocab* vocab, std::vector<double> scores, Options opt);
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

 private:
  // Byte trie of all pieces, children of a node sorted by byte.
  struct Node {
    uint32_t first_edge = 0, n_edges = 0;
    int32_t id = -1;  // piece ending here
  };
  struct Edge {
    uint8_t byte;
    uint32_t child;
  };
  int32_t child(const Node& n, uint8_t b) const;

  const TokenVocab* vocab_ = nullptr;
  std::vector<double> scores_;
  Options opt_;
  double unk_score_ = 0;
  std::vector<Node> nodes_;
  std::vector<Edge> edges_;
  int32_t byte_ids_[256] = {};
};

// SentencePiece's compiled normalization rules (tokenizer.json "Precompiled",
// as in T5, ALBERT, XLM-R): a darts-clone double-array trie mapping UTF-8
// sequences to replacement strings. Applied as Hugging Face applies it: per
// extended grapheme cluster shorter than 6 bytes, the shortest rule matching
// a prefix of the cluster replaces the whole cluster; otherwise per character.
class PrecompiledNormalizer final : public Normalizer {
 public:
  // `charsmap`: the decoded bytes (u32 trie size, trie units, replacements).
  // Throws FormatError naming `where` when they are malformed.
  PrecompiledNormalizer(std::string_view charsmap, const std::string& where);
  void apply(std::string& text) const override;
  // The replacement of the shortest rule matching a prefix of `s`, if any.
  std::optional<std::string_view> transform(std::string_view s) const;

 private:
  std::vector<uint32_t> units_;
  std::string replacements_;  // '\0'-terminated strings
};

// make_normalizer (normalize.h) plus this family's own "Precompiled" and
// "BertNormalizer" (HF's exact clean_text rules), also inside a Sequence.
std::unique_ptr<Normalizer> make_spm_normalizer(const nlohmann::json& j, const std::string& where);

}  // namespace kaival::tokenizer
