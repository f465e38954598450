#pragma once
// Byte-pair encoding model (GPT-2 style byte-level BPE, and BPE over
// characters): vocabulary, merge ranks and the merge algorithm. The tokenizer
// that wraps it (normalizer, pre-tokenizer, added tokens, post-processing,
// decoding) is built by bpe_from_json / bpe_from_gguf (factories.h).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kaival::tokenizer {

// Open-addressing hash map from byte strings to ids; keys live in one arena.
class StringIdMap {
 public:
  void reserve(size_t n);
  // Inserts or overwrites.
  void set(std::string_view key, int32_t id);
  std::optional<int32_t> find(std::string_view key) const;
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t off = 0, len = 0;
    int32_t id = -1;  // -1: empty
  };
  void grow();
  std::vector<Slot> slots_;
  std::string arena_;
  size_t size_ = 0;
};

struct BpeOptions {
  bool ignore_merges = false;  // a piece that is itself in the vocabulary is not merged (llama 3)
  std::optional<int32_t> unk;  // id for characters missing from the vocabulary (else dropped)
  bool fuse_unk = false;
  bool byte_fallback = false;  // missing characters become <0xXX> tokens
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
};

class BpeModel {
 public:
  // `vocab`: (token, id) pairs; `merges`: pairs in rank order. A merge that
  // names a token missing from vocab throws FormatError naming `where` when
  // `strict` (HF's behaviour), and is skipped otherwise (llama.cpp's).
  BpeModel(const std::vector<std::pair<std::string, int32_t>>& vocab,
           const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions opts,
           const std::string& where, bool strict = true);

  // Appends the ids of one pre-tokenized piece. `bytes`: the piece is raw
  // bytes of a byte-level tokenizer (each byte is its GPT-2 character);
  // otherwise it is UTF-8 text whose characters are looked up directly.
  void encode(std::string_view piece, bool bytes, std::vector<int32_t>& out) const;

  std::optional<int32_t> id_of(std::string_view token) const { return vocab_.find(token); }
  size_t merge_count() const { return merge_count_; }

 private:
  struct MergeSlot {
    uint64_t key = ~uint64_t{0};  // (left << 32) | right; all ones: empty
    uint32_t rank = 0;
    int32_t id = -1;
  };
  static constexpr uint32_t kNoRank = UINT32_MAX;
  // Rank and result of merging (a, b), or kNoRank.
  inline std::pair<uint32_t, int32_t> lookup(int32_t a, int32_t b) const;
  void merge(std::vector<int32_t>& syms) const;
  void merge_long(std::vector<int32_t>& syms) const;
  void initial_symbols(std::string_view piece, bool bytes, std::vector<int32_t>& syms) const;

  BpeOptions opts_;
  StringIdMap vocab_;      // token text -> id
  StringIdMap raw_vocab_;  // byte-level tokens as raw bytes -> id (for ignore_merges on raw pieces)
  int32_t byte_ids_[256];  // byte -> id of its GPT-2 character token (-1 if absent)
  int32_t fallback_ids_[256];  // byte -> id of "<0xXX>" (-1 if absent)
  std::vector<MergeSlot> merges_;
  uint64_t merge_mask_ = 0;
  size_t merge_count_ = 0;
};

}  // namespace kaival::tokenizer
