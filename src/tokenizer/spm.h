#pragma once
// SentencePiece-family building blocks, shared by the SPM, Unigram and
// WordPiece tokenizers:
//   TokenVocab   token texts in one arena with a flat hash index
//   ScoreMerger  llama.cpp's "llama" (SPM) vocab: merge the adjacent pair whose
//                concatenation is the highest-scoring token, bytes as <0xXX>
//   RankMerger   tokenizer.json BPE with merges, byte fallback and unk fusing
//                (Hugging Face tokenizers' BPE model)
//   SpmDecoder   tokenizer.json decoders of SentencePiece-style models
//                (Replace, ByteFallback, Fuse, Strip, Metaspace, WordPiece)
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/tokenizer.h"

namespace kaival::tokenizer {

inline constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // "▁" U+2581

// "<0xXX>" (upper-case hex), the SentencePiece byte-fallback piece of `b`.
std::string byte_piece(uint8_t b);
// The byte of a "<0xXX>" piece, if `piece` is one.
std::optional<uint8_t> parse_byte_piece(std::string_view piece);
// Length of the UTF-8 sequence starting at text[pos]: the full length when
// the sequence is valid, else 1 (so invalid bytes stand alone).
size_t utf8_char_len(std::string_view text, size_t pos);
// Replace every ' ' with "▁" (appending to `out`).
void escape_spaces(std::string_view text, std::string& out);

// Token texts indexed by id, stored back to back; find() is a flat
// open-addressing hash lookup that never allocates.
class TokenVocab {
 public:
  TokenVocab() = default;
  // texts[id]. When a text repeats, find() returns the last id, as both
  // llama.cpp and Hugging Face tokenizers do when they build their maps.
  explicit TokenVocab(std::span<const std::string_view> texts);
  explicit TokenVocab(std::span<const std::string> texts);

  size_t size() const { return offsets_.empty() ? 0 : offsets_.size() - 1; }
  std::string_view text(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= size()) return {};
    return std::string_view(arena_).substr(offsets_[id], offsets_[id + 1] - offsets_[id]);
  }
  int32_t find(std::string_view s) const;  // -1 when absent
  size_t max_len() const { return max_len_; }

 private:
  void build(size_t n, const std::string_view* texts);
  static uint64_t hash(std::string_view s);

  std::string arena_;
  std::vector<uint32_t> offsets_;
  std::vector<uint64_t> slots_;  // (hash high 32 bits << 32) | (id + 1); 0 = empty
  size_t max_len_ = 0;
};

// llama.cpp's SPM tokenizer: start from UTF-8 characters (by lead byte, as
// llama.cpp splits them), repeatedly merge the adjacent pair whose
// concatenation is the highest-scoring vocabulary token (ties: leftmost), then
// emit each piece's token or its bytes as <0xXX> tokens.
class ScoreMerger {
 public:
  ScoreMerger() = default;
  ScoreMerger(const TokenVocab* vocab, std::vector<float> scores, int32_t unk_id);
  // `text` is already escaped ("▁" for spaces). Appends ids to `out`.
  void encode(std::string_view text, std::vector<int32_t>& out) const;

 private:
  const TokenVocab* vocab_ = nullptr;
  std::vector<float> scores_;
  int32_t byte_ids_[256] = {};
};

// Hugging Face BPE on one pre-tokenized word: characters (or their <0xXX>
// bytes when byte_fallback and the character is not a token; else unk, fused),
// then merges applied by rank (lowest first, ties: leftmost).
class RankMerger {
 public:
  struct Options {
    int32_t unk_id = -1;  // -1: characters without a token are dropped
    bool fuse_unk = false;
    bool byte_fallback = false;
    bool ignore_merges = false;  // a word that is a token is taken whole
  };
  struct Merge {
    int32_t left, right, result;
  };
  RankMerger() = default;
  // merges[i] has rank i.
  RankMerger(const TokenVocab* vocab, std::span<const Merge> merges, Options opt);
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

 private:
  struct Slot {
    uint64_t key;  // left << 32 | right; kEmpty when unused
    uint32_t rank;
    int32_t result;
  };
  static constexpr uint64_t kEmpty = ~0ULL;
  const Slot* lookup(int32_t left, int32_t right) const;

  const TokenVocab* vocab_ = nullptr;
  Options opt_;
  std::vector<Slot> table_;
  int32_t byte_ids_[256] = {};
  int32_t ascii_ids_[128] = {};  // one-character ASCII tokens (hot path)
};

// GGUF tokenizer.ggml.token_type values.
enum class GgufTokenType : int32_t {
  Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

// llama.cpp's split of raw text on special tokens (control, user-defined and
// unknown tokens): longest tokens first, every occurrence in what is still raw
// text; lstrip/rstrip tokens swallow the whitespace beside them. Without
// parse_special only user-defined tokens are split out.
class GgufSpecialSplitter {
 public:
  struct Entry {
    int32_t id;
    bool user_defined;
    bool lstrip = false, rstrip = false;
  };
  struct Piece {
    int32_t token;          // >= 0: a special token; -1: raw text
    std::string_view text;  // the raw text (or the token's text)
  };
  GgufSpecialSplitter() = default;
  GgufSpecialSplitter(const TokenVocab& vocab, std::vector<Entry> entries);
  bool empty() const { return entries_.empty(); }
  void split(std::string_view text, bool parse_special, std::vector<Piece>& out) const;

 private:
  int32_t child(int32_t node, uint8_t b) const;
  std::vector<Entry> entries_;     // in priority order (longest first)
  std::vector<std::string> texts_;  // text per entry
  // Byte trie over the entries' texts: node -> entry index ending there (-1).
  std::vector<int32_t> node_entry_;
  std::vector<int32_t> root_child_;  // 256 children of the root
  std::vector<std::pair<uint64_t, int32_t>> edges_;  // sorted (node << 8 | byte) -> child
};

// The tokenizer.ggml.* arrays and special ids of a GGUF file, validated.
struct GgufVocab {
  TokenVocab vocab;
  std::vector<float> scores;          // one per token (0 when the file has none)
  std::vector<GgufTokenType> types;   // one per token (Normal when the file has none)
  std::optional<bool> add_space_prefix;  // tokenizer.ggml.add_space_prefix
  std::string chat_template;
  std::string model_name;             // general.name, lower-cased
};
// `special` holds the family's default ids; GGUF keys override them, and ids
// outside the vocabulary are dropped.
GgufVocab load_gguf_vocab(const weights::GgufFile& gguf, const std::string& where,
                          SpecialTokens& special);

// The decoder chain of a SentencePiece-style tokenizer.json, applied to the
// token strings of the ids (Hugging Face's decode_chain semantics).
class SpmDecoder {
 public:
  SpmDecoder() = default;
  // Throws UnsupportedError naming `where` for a decoder it does not know.
  static SpmDecoder from_json(const nlohmann::json& decoder, const std::string& where);
  // The default chain of a SentencePiece vocab: "▁" -> " ", bytes, fuse, and
  // strip one leading space when `strip_leading_space`.
  static SpmDecoder sentencepiece(bool strip_leading_space);
  std::string decode(std::vector<std::string> tokens) const;

 private:
  bool join_with_space_ = false;  // no decoder at all: HF joins tokens with " "
  struct Step {
    enum Kind { Replace, ByteFallback, Fuse, Strip, Metaspace, WordPiece } kind = Fuse;
    std::string from, to;         // Replace; Metaspace replacement in `from`
    std::string content;          // Strip: the character stripped
    size_t start = 0, stop = 0;   // Strip counts
    bool prepend = true;          // Metaspace: strip the first token's space
    bool cleanup = false;         // WordPiece
  };
  std::vector<Step> steps_;
};

// A tokenizer.json pipeline around a model that maps words to ids: added
// tokens, normalizer, pre-tokenizer, post-processor template, decoder, and
// the special tokens / chat template of tokenizer_config.json. The SPM-style
// BPE, Unigram and WordPiece tokenizers derive from it.
class JsonPipelineTokenizer : public Tokenizer {
 public:
  ~JsonPipelineTokenizer() override;
  std::vector<int32_t> encode(std::string_view text, bool add_special = true,
                              bool parse_special = true) const override;
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const override;
  size_t vocab_size() const override;
  std::string_view token(int32_t id) const override;
  std::optional<int32_t> token_id(std::string_view token) const override;
  const SpecialTokens& special() const override { return special_; }
  const std::string& chat_template() const override { return chat_template_; }

 protected:
  JsonPipelineTokenizer();
  // Call once the model vocabulary is built (it must outlive this object).
  // `model_unk` is the model's unknown token, if any.
  void init_pipeline(const nlohmann::json& tj, const nlohmann::json& config, const std::string& where,
                     const TokenVocab* model_vocab, std::optional<int32_t> model_unk);
  // Appends the ids of one pre-tokenized word.
  virtual void encode_word(std::string_view word, std::vector<int32_t>& out) const = 0;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  const TokenVocab* model_vocab_ = nullptr;
  SpecialTokens special_;
  std::string chat_template_;
};

// The ids of a tokenizer.json "model.vocab" object ({token: id}) as texts by
// id; ids must be dense enough (gaps become empty texts).
std::vector<std::string_view> vocab_texts_by_id(const nlohmann::json& vocab, const std::string& where);

}  // namespace kaival::tokenizer
