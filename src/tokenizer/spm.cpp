#include "tokenizer/spm.h"

#include <algorithm>
#include <cctype>
#include <unordered_map>

#include <nlohmann/json.hpp>
#include <xxhash.h>

#include "core/error.h"
#include "tokenizer/factories.h"
#include "tokenizer/normalize.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/special.h"
#include "tokenizer/unigram.h"
#include "tokenizer/utf8.h"
#include "weights/gguf.h"

namespace kaival::tokenizer {

// ---------------------------------------------------------------- utilities

std::string byte_piece(uint8_t b) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string{'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
}

std::optional<uint8_t> parse_byte_piece(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  int hi = nibble(p[3]), lo = nibble(p[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<uint8_t>(hi * 16 + lo);
}

size_t utf8_char_len(std::string_view text, size_t pos) {
  const auto c = static_cast<uint8_t>(text[pos]);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp, min;
  if ((c & 0xE0) == 0xC0) {
    n = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 1;
  }
  if (pos + n > text.size()) return 1;
  for (size_t i = 1; i < n; ++i) {
    const auto d = static_cast<uint8_t>(text[pos + i]);
    if ((d & 0xC0) != 0x80) return 1;
    cp = (cp << 6) | (d & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 1;
  return n;
}

void escape_spaces(std::string_view text, std::string& out) {
  out.reserve(out.size() + text.size() + text.size() / 4);
  for (char c : text) {
    if (c == ' ')
      out += kSpaceMark;
    else
      out += c;
  }
}

// ---------------------------------------------------------------- TokenVocab

TokenVocab::TokenVocab(std::span<const std::string_view> texts) { build(texts.size(), texts.data()); }

TokenVocab::TokenVocab(std::span<const std::string> texts) {
  std::vector<std::string_view> views(texts.begin(), texts.end());
  build(views.size(), views.data());
}

uint64_t TokenVocab::hash(std::string_view s) { return XXH3_64bits(s.data(), s.size()); }

void TokenVocab::build(size_t n, const std::string_view* texts) {
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) total += texts[i].size();
  if (total >= UINT32_MAX || n >= INT32_MAX / 2)
    throw FormatError("", "token vocabulary too large");
  arena_.reserve(total);
  offsets_.reserve(n + 1);
  offsets_.push_back(0);
  for (size_t i = 0; i < n; ++i) {
    arena_ += texts[i];
    offsets_.push_back(static_cast<uint32_t>(arena_.size()));
    max_len_ = std::max(max_len_, texts[i].size());
  }
  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  slots_.assign(cap, 0);
  const size_t mask = cap - 1;
  for (size_t id = 0; id < n; ++id) {
    const std::string_view s = text(static_cast<int32_t>(id));
    const uint64_t h = hash(s);
    const uint64_t tag = h >> 32 << 32;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      uint64_t& slot = slots_[i];
      if (slot == 0) {
        slot = tag | (id + 1);
        break;
      }
      if ((slot & ~0xFFFFFFFFULL) == tag && text(static_cast<int32_t>((slot & 0xFFFFFFFF) - 1)) == s) {
        slot = tag | (id + 1);  // the last id of a repeated text wins
        break;
      }
    }
  }
}

int32_t TokenVocab::find(std::string_view s) const {
  if (slots_.empty()) return -1;
  const uint64_t h = hash(s);
  const uint64_t tag = h >> 32 << 32;
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const uint64_t slot = slots_[i];
    if (slot == 0) return -1;
    if ((slot & ~0xFFFFFFFFULL) == tag) {
      const auto id = static_cast<int32_t>((slot & 0xFFFFFFFF) - 1);
      if (text(id) == s) return id;
    }
  }
}

// ---------------------------------------------------------------- ScoreMerger

ScoreMerger::ScoreMerger(const TokenVocab* vocab, std::vector<float> scores, int32_t unk_id)
    : vocab_(vocab), scores_(std::move(scores)) {
  scores_.resize(vocab_->size(), 0.0f);
  for (int b = 0; b < 256; ++b) {
    // llama.cpp: the <0xXX> piece, else the byte as a one-character token.
    int32_t id = vocab_->find(byte_piece(static_cast<uint8_t>(b)));
    if (id < 0) id = vocab_->find(std::string(1, static_cast<char>(b)));
    byte_ids_[b] = id >= 0 ? id : unk_id;
  }
}

namespace {

struct SpmSymbol {
  uint32_t start, len;
  int32_t prev, next;
  int32_t id;  // token of the merged text; -1 until known
};

struct SpmBigram {
  float score;
  int32_t left, right;
  uint32_t size;
  int32_t id;
};

// Max-heap order: highest score first, then leftmost (llama.cpp's comparator).
struct SpmBigramLess {
  bool operator()(const SpmBigram& a, const SpmBigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

void ScoreMerger::encode(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  // llama.cpp splits by the lead byte's length without validating the rest.
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  std::vector<SpmSymbol> syms;
  syms.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    const size_t len = std::min<size_t>(kLen[static_cast<uint8_t>(text[off]) >> 4], text.size() - off);
    const auto i = static_cast<int32_t>(syms.size());
    syms.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(len), i - 1,
                    off + len == text.size() ? -1 : i + 1, -1});
    off += len;
  }

  std::vector<SpmBigram> heap;
  heap.reserve(syms.size());
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const std::string_view piece = text.substr(syms[l].start, syms[l].len + syms[r].len);
    const int32_t id = vocab_->find(piece);
    if (id < 0) return;
    heap.push_back({scores_[id], l, r, static_cast<uint32_t>(piece.size()), id});
    std::push_heap(heap.begin(), heap.end(), SpmBigramLess{});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(syms.size()); ++i) try_add(i - 1, i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), SpmBigramLess{});
    const SpmBigram b = heap.back();
    heap.pop_back();
    SpmSymbol& l = syms[b.left];
    SpmSymbol& r = syms[b.right];
    // Stale when either side has merged since the bigram was queued.
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.size) continue;
    l.len += r.len;
    l.id = b.id;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  for (int32_t i = 0; i != -1; i = syms[i].next) {
    const SpmSymbol& s = syms[i];
    int32_t id = s.id >= 0 ? s.id : vocab_->find(text.substr(s.start, s.len));
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    for (uint32_t k = 0; k < s.len; ++k) {
      const int32_t bid = byte_ids_[static_cast<uint8_t>(text[s.start + k])];
      if (bid >= 0) out.push_back(bid);
    }
  }
}

// ---------------------------------------------------------------- RankMerger

namespace {
inline uint64_t pair_key(int32_t l, int32_t r) {
  return static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32 | static_cast<uint32_t>(r);
}
inline uint64_t mix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  return k;
}
}  // namespace

RankMerger::RankMerger(const TokenVocab* vocab, std::span<const Merge> merges, Options opt)
    : vocab_(vocab), opt_(opt) {
  size_t cap = 16;
  while (cap < 2 * merges.size()) cap *= 2;
  table_.assign(cap, Slot{kEmpty, 0, -1});
  const size_t mask = cap - 1;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const Merge& m = merges[rank];
    const uint64_t key = pair_key(m.left, m.right);
    for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
      Slot& s = table_[i];
      if (s.key == kEmpty || s.key == key) {  // a repeated pair: the last one wins
        s = Slot{key, static_cast<uint32_t>(rank), m.result};
        break;
      }
    }
  }
  for (int b = 0; b < 256; ++b) byte_ids_[b] = vocab_->find(byte_piece(static_cast<uint8_t>(b)));
  for (int c = 0; c < 128; ++c) ascii_ids_[c] = vocab_->find(std::string(1, static_cast<char>(c)));
}

const RankMerger::Slot* RankMerger::lookup(int32_t left, int32_t right) const {
  const uint64_t key = pair_key(left, right);
  const size_t mask = table_.size() - 1;
  for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
    const Slot& s = table_[i];
    if (s.key == key) return &s;
    if (s.key == kEmpty) return nullptr;
  }
}

namespace {

struct BpeSymbol {
  int32_t id;
  uint32_t len;
  int32_t prev, next;
};

struct BpeCandidate {
  uint32_t rank;
  int32_t pos;
  int32_t result;
};

// Max-heap order: lowest rank first, then leftmost (HF tokenizers' Merge order).
struct BpeCandidateLess {
  bool operator()(const BpeCandidate& a, const BpeCandidate& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.pos > b.pos);
  }
};

}  // namespace

void RankMerger::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (opt_.ignore_merges) {
    const int32_t id = vocab_->find(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  std::vector<BpeSymbol> syms;
  syms.reserve(word.size());
  auto add = [&](int32_t id, uint32_t len) {
    const auto i = static_cast<int32_t>(syms.size());
    if (i > 0) syms.back().next = i;
    syms.push_back({id, len, i - 1, -1});
  };

  bool unk_pending = false;
  uint32_t unk_len = 0;
  for (size_t pos = 0; pos < word.size();) {
    const size_t n = utf8_char_len(word, pos);
    const std::string_view ch = word.substr(pos, n);
    pos += n;
    const auto c0 = static_cast<uint8_t>(ch[0]);
    const int32_t id = c0 < 0x80 ? ascii_ids_[c0] : vocab_->find(ch);
    if (id >= 0) {
      if (unk_pending) add(opt_.unk_id, unk_len), unk_pending = false;
      add(id, static_cast<uint32_t>(n));
      continue;
    }
    if (opt_.byte_fallback) {
      bool all = true;
      for (char c : ch) all = all && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        // As HF does: a pending unk is not flushed before the bytes.
        for (char c : ch) add(byte_ids_[static_cast<uint8_t>(c)], 1);
        continue;
      }
    }
    if (opt_.unk_id >= 0) {
      if (!unk_pending) {
        unk_pending = true;
        unk_len = static_cast<uint32_t>(n);
      } else if (opt_.fuse_unk) {
        unk_len += static_cast<uint32_t>(n);
      } else {
        add(opt_.unk_id, unk_len);
        unk_len = static_cast<uint32_t>(n);
      }
    }
  }
  if (unk_pending) add(opt_.unk_id, unk_len);

  std::vector<BpeCandidate> heap;
  heap.reserve(syms.size());
  auto push = [&](int32_t pos, const Slot* s) {
    heap.push_back({s->rank, pos, s->result});
    std::push_heap(heap.begin(), heap.end(), BpeCandidateLess{});
  };
  for (size_t i = 0; i + 1 < syms.size(); ++i)
    if (const Slot* s = lookup(syms[i].id, syms[i + 1].id)) push(static_cast<int32_t>(i), s);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), BpeCandidateLess{});
    const BpeCandidate top = heap.back();
    heap.pop_back();
    BpeSymbol& cur = syms[top.pos];
    if (cur.len == 0 || cur.next == -1) continue;
    const int32_t next_pos = cur.next;
    const BpeSymbol right = syms[next_pos];
    const Slot* s = lookup(cur.id, right.id);
    if (s == nullptr || s->result != top.result) continue;  // an expired entry
    cur.id = top.result;
    cur.len += right.len;
    cur.next = right.next;
    syms[next_pos].len = 0;
    if (right.next >= 0) syms[right.next].prev = top.pos;
    if (cur.prev >= 0)
      if (const Slot* p = lookup(syms[cur.prev].id, cur.id)) push(cur.prev, p);
    if (cur.next >= 0)
      if (const Slot* p = lookup(cur.id, syms[cur.next].id)) push(top.pos, p);
  }
  for (const BpeSymbol& s : syms)
    if (s.len != 0) out.push_back(s.id);
}

}  // namespace kaival::tokenizer

namespace kaival::tokenizer {

// ---------------------------------------------------------------- GgufSpecialSplitter

GgufSpecialSplitter::GgufSpecialSplitter(const TokenVocab& vocab, std::vector<Entry> entries) {
  std::erase_if(entries, [&](const Entry& e) { return vocab.text(e.id).empty(); });
  std::stable_sort(entries.begin(), entries.end(), [&](const Entry& a, const Entry& b) {
    return vocab.text(a.id).size() > vocab.text(b.id).size();
  });
  entries_ = std::move(entries);
  root_child_.assign(256, -1);
  node_entry_.assign(1, -1);
  std::unordered_map<uint64_t, int32_t> edges;
  for (size_t e = 0; e < entries_.size(); ++e) {
    const std::string_view t = vocab.text(entries_[e].id);
    texts_.emplace_back(t);
    int32_t node = 0;
    for (size_t k = 0; k < t.size(); ++k) {
      const auto b = static_cast<uint8_t>(t[k]);
      int32_t next;
      if (k == 0) {
        next = root_child_[b];
        if (next < 0) root_child_[b] = next = static_cast<int32_t>(node_entry_.size());
      } else {
        auto [it, fresh] = edges.try_emplace(static_cast<uint64_t>(node) << 8 | b,
                                             static_cast<int32_t>(node_entry_.size()));
        next = it->second;
      }
      if (next == static_cast<int32_t>(node_entry_.size())) node_entry_.push_back(-1);
      node = next;
    }
    // The same text twice: the first in priority order takes every match.
    if (node_entry_[node] < 0) node_entry_[node] = static_cast<int32_t>(e);
  }
  edges_.assign(edges.begin(), edges.end());
  std::sort(edges_.begin(), edges_.end());
}

int32_t GgufSpecialSplitter::child(int32_t node, uint8_t b) const {
  const uint64_t key = static_cast<uint64_t>(node) << 8 | b;
  auto it = std::lower_bound(edges_.begin(), edges_.end(), std::pair<uint64_t, int32_t>{key, INT32_MIN});
  return it != edges_.end() && it->first == key ? it->second : -1;
}

void GgufSpecialSplitter::split(std::string_view text, bool parse_special, std::vector<Piece>& out) const {
  out.clear();
  if (text.empty()) return;
  // Which eligible tokens occur at all (one trie walk per position; memory
  // stays O(tokens) whatever the text).
  std::vector<uint8_t> seen(entries_.size(), 0);
  bool any = false;
  if (!entries_.empty()) {
    for (size_t pos = 0; pos < text.size(); ++pos) {
      int32_t node = root_child_[static_cast<uint8_t>(text[pos])];
      for (size_t k = pos + 1; node >= 0; ++k) {
        const int32_t e = node_entry_[node];
        if (e >= 0 && !seen[e] && (parse_special || entries_[e].user_defined)) seen[e] = 1, any = true;
        if (k == text.size()) break;
        node = child(node, static_cast<uint8_t>(text[k]));
      }
    }
  }
  if (!any) {
    out.push_back({-1, text});
    return;
  }
  // llama.cpp takes the tokens one by one (longest first) and splits every
  // raw fragment at each non-overlapping occurrence, left to right. The same
  // result: accept an occurrence when all its bytes are still raw.
  constexpr int32_t kRaw = -1, kStripped = -2, kCovered = -3;
  std::vector<int32_t> owner(text.size(), kRaw);
  auto is_space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  for (size_t e = 0; e < entries_.size(); ++e) {
    if (!seen[e]) continue;
    const std::string_view needle = texts_[e];
    const size_t len = needle.size();
    for (size_t start = text.find(needle); start != std::string_view::npos; start = text.find(needle, start + 1)) {
      bool free = true;
      for (size_t k = 0; k < len && free; ++k) free = owner[start + k] == kRaw;
      if (!free) continue;
      owner[start] = static_cast<int32_t>(e);
      for (size_t k = 1; k < len; ++k) owner[start + k] = kCovered;
      if (entries_[e].lstrip)
        for (size_t j = start; j > 0 && owner[j - 1] == kRaw && is_space(text[j - 1]); --j) owner[j - 1] = kStripped;
      if (entries_[e].rstrip)
        for (size_t j = start + len; j < text.size() && owner[j] == kRaw && is_space(text[j]); ++j)
          owner[j] = kStripped;
    }
  }
  size_t run = 0;  // start of the current raw run
  for (size_t pos = 0; pos < text.size();) {
    const int32_t o = owner[pos];
    if (o == kRaw) {
      ++pos;
      continue;
    }
    if (pos > run) out.push_back({-1, text.substr(run, pos - run)});
    if (o >= 0) {
      out.push_back({entries_[o].id, text.substr(pos, texts_[o].size())});
      pos += texts_[o].size();
    } else {
      ++pos;
    }
    run = pos;
  }
  if (run < text.size()) out.push_back({-1, text.substr(run)});
}

// ---------------------------------------------------------------- GGUF vocab

GgufVocab load_gguf_vocab(const weights::GgufFile& gguf, const std::string& where, SpecialTokens& special) {
  GgufVocab v;
  const weights::GgufValue* tokens_value = gguf.get("tokenizer.ggml.tokens");
  if (tokens_value == nullptr || tokens_value->as_array() == nullptr)
    fail(where, "GGUF has no tokenizer.ggml.tokens array");
  std::vector<std::string> tokens = gguf.get_strings("tokenizer.ggml.tokens");
  const size_t n = tokens.size();
  if (n == 0 || n != tokens_value->as_array()->items.size())
    fail(where, "tokenizer.ggml.tokens must be a non-empty array of strings");
  if (n >= (1u << 30)) fail(where, "tokenizer.ggml.tokens has {} entries, too many", n);
  for (size_t i = 0; i < n; ++i)  // what llama.cpp does with empty tokens
    if (tokens[i].empty()) tokens[i] = fmt::format("[EMPTY_{}]", i);
  v.vocab = TokenVocab(std::span<const std::string>(tokens));

  if (gguf.get("tokenizer.ggml.scores") != nullptr) {
    v.scores = gguf.get_floats("tokenizer.ggml.scores");
    if (v.scores.size() != n)
      fail(where, "tokenizer.ggml.scores has {} entries for {} tokens", v.scores.size(), n);
  } else {
    v.scores.assign(n, 0.0f);
  }
  v.types.assign(n, GgufTokenType::Normal);
  if (gguf.get("tokenizer.ggml.token_type") != nullptr) {
    const std::vector<int64_t> types = gguf.get_ints("tokenizer.ggml.token_type");
    if (types.size() != n)
      fail(where, "tokenizer.ggml.token_type has {} entries for {} tokens", types.size(), n);
    for (size_t i = 0; i < n; ++i)
      v.types[i] = types[i] >= 0 && types[i] <= 6 ? static_cast<GgufTokenType>(types[i]) : GgufTokenType::Undefined;
  }

  auto id_key = [&](const char* key, std::optional<int32_t>& slot) {
    if (gguf.get(key) == nullptr) return;
    const std::optional<int64_t> id = gguf.get_int(key);
    // llama.cpp keeps ids of any value but ignores those outside the vocab.
    slot = id && *id >= 0 && static_cast<uint64_t>(*id) < n ? std::optional<int32_t>(static_cast<int32_t>(*id))
                                                             : std::nullopt;
  };
  id_key("tokenizer.ggml.bos_token_id", special.bos);
  id_key("tokenizer.ggml.eos_token_id", special.eos);
  id_key("tokenizer.ggml.unknown_token_id", special.unk);
  id_key("tokenizer.ggml.seperator_token_id", special.sep);  // sic, the GGUF key
  id_key("tokenizer.ggml.padding_token_id", special.pad);
  id_key("tokenizer.ggml.cls_token_id", special.cls);
  id_key("tokenizer.ggml.mask_token_id", special.mask);
  for (std::optional<int32_t>* slot : {&special.bos, &special.eos, &special.unk, &special.sep, &special.pad,
                                       &special.cls, &special.mask})
    if (*slot && static_cast<size_t>(**slot) >= n) slot->reset();
  if (auto b = gguf.get_int("tokenizer.ggml.add_bos_token")) special.add_bos = *b != 0;
  if (auto b = gguf.get_int("tokenizer.ggml.add_eos_token")) special.add_eos = *b != 0;
  if (auto b = gguf.get_int("tokenizer.ggml.add_space_prefix")) v.add_space_prefix = *b != 0;
  if (auto t = gguf.get_string("tokenizer.chat_template")) v.chat_template = *t;
  if (auto name = gguf.get_string("general.name")) {
    v.model_name = *name;
    for (char& c : v.model_name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return v;
}

// ---------------------------------------------------------------- GGUF SPM tokenizer

namespace {

class GgufSpmTokenizer final : public Tokenizer {
 public:
  GgufSpmTokenizer(const weights::GgufFile& gguf, const std::string& where) {
    special_.bos = 1, special_.eos = 2, special_.unk = 0;  // llama.cpp's defaults for "llama"
    special_.add_bos = true;
    special_.add_eos = false;
    GgufVocab v = load_gguf_vocab(gguf, where, special_);
    vocab_ = std::move(v.vocab);
    types_ = std::move(v.types);
    chat_template_ = std::move(v.chat_template);
    add_space_prefix_ = v.add_space_prefix.value_or(true);
    merger_ = ScoreMerger(&vocab_, std::move(v.scores), special_.unk.value_or(-1));

    // Phi-3 vocabs: llama.cpp makes its special tokens swallow the whitespace after them.
    const bool phi3 = v.model_name.find("phi-3") != std::string::npos || v.model_name.find("phi3") != std::string::npos;
    std::vector<GgufSpecialSplitter::Entry> entries;
    for (size_t id = 0; id < types_.size(); ++id) {
      const GgufTokenType t = types_[id];
      if (t != GgufTokenType::Control && t != GgufTokenType::UserDefined && t != GgufTokenType::Unknown) continue;
      GgufSpecialSplitter::Entry e{static_cast<int32_t>(id), t == GgufTokenType::UserDefined};
      if (phi3) {
        const std::string_view text = vocab_.text(e.id);
        e.rstrip = text != "<unk>" && text != "<s>" && text != "<|endoftext|>";
      }
      entries.push_back(e);
    }
    splitter_ = GgufSpecialSplitter(vocab_, std::move(entries));
  }
  GgufSpmTokenizer(const GgufSpmTokenizer&) = delete;
  GgufSpmTokenizer& operator=(const GgufSpmTokenizer&) = delete;

  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const override {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    if (add_special && special_.add_bos && special_.bos) out.push_back(*special_.bos);
    std::vector<GgufSpecialSplitter::Piece> pieces;
    splitter_.split(text, parse_special, pieces);
    std::string escaped;
    bool prev_special = true;  // the first raw fragment gets the space prefix
    for (const auto& p : pieces) {
      if (p.token >= 0) {
        out.push_back(p.token);
        prev_special = true;
        continue;
      }
      escaped.clear();
      if (add_space_prefix_ && prev_special) escaped = kSpaceMark;
      escape_spaces(p.text, escaped);
      merger_.encode(escaped, out);
      prev_special = false;
    }
    if (add_special && special_.add_eos && special_.eos) out.push_back(*special_.eos);
    return out;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::string out;
    bool first = true;
    for (int32_t id : ids) {
      if (id < 0 || static_cast<size_t>(id) >= vocab_.size()) continue;
      const std::string_view text = vocab_.text(id);
      const size_t before = out.size();
      switch (types_[id]) {
        case GgufTokenType::Normal:
          for (size_t i = 0; i < text.size();) {
            if (text.substr(i, 3) == kSpaceMark) {
              out += ' ';
              i += 3;
            } else {
              out += text[i++];
            }
          }
          break;
        case GgufTokenType::Byte:
          if (auto b = parse_byte_piece(text)) out += static_cast<char>(*b);
          break;
        case GgufTokenType::UserDefined:
          out += text;
          break;
        case GgufTokenType::Control:
        case GgufTokenType::Unknown:
          if (!skip_special) out += text;
          break;
        default:
          break;  // unused / undefined tokens render as nothing (llama.cpp)
      }
      // SentencePiece drops the prefix space it added, from the first piece.
      if (first && out.size() > before) {
        if (add_space_prefix_ && types_[id] == GgufTokenType::Normal && out[before] == ' ') out.erase(before, 1);
        first = false;
      }
    }
    return out;
  }

  std::string_view type() const override { return "spm"; }
  size_t vocab_size() const override { return vocab_.size(); }
  std::string_view token(int32_t id) const override { return vocab_.text(id); }
  std::optional<int32_t> token_id(std::string_view token) const override {
    const int32_t id = vocab_.find(token);
    return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
  }
  const SpecialTokens& special() const override { return special_; }
  const std::string& chat_template() const override { return chat_template_; }

 private:
  TokenVocab vocab_;
  std::vector<GgufTokenType> types_;
  ScoreMerger merger_;
  GgufSpecialSplitter splitter_;
  SpecialTokens special_;
  std::string chat_template_;
  bool add_space_prefix_ = true;
};

}  // namespace

std::unique_ptr<Tokenizer> spm_from_gguf(const weights::GgufFile& gguf, const std::string& where) {
  return std::make_unique<GgufSpmTokenizer>(gguf, where);
}

}  // namespace kaival::tokenizer

// ======================================================== tokenizer.json side

namespace kaival::tokenizer {

using json = nlohmann::json;

namespace {

const json* find_key(const json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

std::string string_field(const json& j, const char* key, const std::string& dflt) {
  const json* v = find_key(j, key);
  return v && v->is_string() ? v->get<std::string>() : dflt;
}

// Replaces every occurrence of `from` (non-empty) by `to`.
void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty() || s.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(s.size());
  size_t prev = 0;
  for (size_t pos; (pos = s.find(from, prev)) != std::string::npos; prev = pos + from.size()) {
    out.append(s, prev, pos - prev);
    out += to;
  }
  out.append(s, prev, std::string::npos);
  s = std::move(out);
}

// HF's WordPiece decoder cleanup (clean_up_tokenization).
void cleanup_tokenization(std::string& s) {
  static const std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},     {" ?", "?"},       {" !", "!"},          {" ,", ","},    {" ' ", "'"},    {" n't", "n't"},
      {" 'm", "'m"},   {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
  };
  for (const auto& [from, to] : kRules) replace_all(s, from, to);
}

}  // namespace

// ---------------------------------------------------------------- SpmDecoder

SpmDecoder SpmDecoder::sentencepiece(bool strip_leading_space) {
  SpmDecoder d;
  Step replace, bytes, fuse, strip;
  replace.kind = Step::Replace;
  replace.from = kSpaceMark;
  replace.to = " ";
  bytes.kind = Step::ByteFallback;
  fuse.kind = Step::Fuse;
  strip.kind = Step::Strip;
  strip.content = " ";
  strip.start = 1;
  d.steps_ = {replace, bytes, fuse};
  if (strip_leading_space) d.steps_.push_back(strip);
  return d;
}

SpmDecoder SpmDecoder::from_json(const json& j, const std::string& where) {
  SpmDecoder d;
  if (j.is_null()) {
    d.join_with_space_ = true;
    return d;
  }
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    fail(where, "decoder must be an object with a \"type\"");
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    const json* subs = find_key(j, "decoders");
    if (!subs || !subs->is_array()) fail(where, "Sequence decoder needs a \"decoders\" array");
    for (const json& sub : *subs) {
      SpmDecoder part = from_json(sub, where);
      d.steps_.insert(d.steps_.end(), part.steps_.begin(), part.steps_.end());
    }
    return d;
  }
  Step s;
  if (type == "Replace") {
    const json* pat = find_key(j, "pattern");
    if (!pat || !pat->is_object() || !pat->contains("String") || !(*pat)["String"].is_string())
      fail<UnsupportedError>(where, "Replace decoder supports only a \"String\" pattern");
    s.kind = Step::Replace;
    s.from = (*pat)["String"].get<std::string>();
    s.to = string_field(j, "content", "");
  } else if (type == "ByteFallback") {
    s.kind = Step::ByteFallback;
  } else if (type == "Fuse") {
    s.kind = Step::Fuse;
  } else if (type == "Strip") {
    s.kind = Step::Strip;
    s.content = string_field(j, "content", " ");
    if (s.content.empty() || utf8::valid_len(s.content, 0) != s.content.size())
      fail(where, "Strip decoder \"content\" must be one character");
    auto count = [&](const char* key) -> size_t {
      const json* v = find_key(j, key);
      if (!v) return 0;
      if (!v->is_number_integer() || v->get<int64_t>() < 0) fail(where, "Strip decoder \"{}\" must be a count", key);
      return v->get<size_t>();
    };
    s.start = count("start");
    s.stop = count("stop");
  } else if (type == "Metaspace") {
    s.kind = Step::Metaspace;
    s.from = string_field(j, "replacement", std::string(kSpaceMark));
    if (s.from.empty()) fail(where, "Metaspace decoder replacement must not be empty");
    const json* scheme = find_key(j, "prepend_scheme");
    if (scheme && scheme->is_string()) {
      s.prepend = scheme->get<std::string>() != "never";
    } else {
      const json* add = find_key(j, "add_prefix_space");
      s.prepend = !(add && add->is_boolean()) || add->get<bool>();
    }
  } else if (type == "WordPiece") {
    s.kind = Step::WordPiece;
    s.from = string_field(j, "prefix", "##");
    const json* c = find_key(j, "cleanup");
    s.cleanup = !(c && c->is_boolean()) || c->get<bool>();
  } else {
    fail<UnsupportedError>(where, "unsupported decoder type \"{}\" for this model", type);
  }
  d.steps_.push_back(std::move(s));
  return d;
}

std::string SpmDecoder::decode(std::vector<std::string> tokens) const {
  if (join_with_space_) {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
    return out;
  }
  for (const Step& s : steps_) {
    switch (s.kind) {
      case Step::Replace:
        for (auto& t : tokens) replace_all(t, s.from, s.to);
        break;
      case Step::ByteFallback: {
        // Runs of <0xXX> tokens become their bytes when those are valid UTF-8,
        // else one U+FFFD per byte.
        std::vector<std::string> out;
        std::string bytes;
        size_t n_bytes = 0;
        auto flush = [&] {
          if (n_bytes == 0) return;
          if (utf8::is_valid(bytes)) {
            out.push_back(bytes);
          } else {
            for (size_t k = 0; k < n_bytes; ++k) out.emplace_back("\xEF\xBF\xBD");
          }
          bytes.clear();
          n_bytes = 0;
        };
        for (auto& t : tokens) {
          if (auto b = parse_byte_piece(t)) {
            bytes += static_cast<char>(*b);
            ++n_bytes;
          } else {
            flush();
            out.push_back(std::move(t));
          }
        }
        flush();
        tokens = std::move(out);
        break;
      }
      case Step::Fuse: {
        std::string all;
        for (const auto& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case Step::Strip:
        for (auto& t : tokens) {
          const std::string_view c = s.content;
          size_t b = 0, e = t.size();
          for (size_t k = 0; k < s.start && std::string_view(t).substr(b, c.size()) == c; ++k) b += c.size();
          for (size_t k = 0; k < s.stop && e >= b + c.size() && std::string_view(t).substr(e - c.size(), c.size()) == c; ++k)
            e -= c.size();
          t = t.substr(b, e - b);
        }
        break;
      case Step::Metaspace:
        // HF drops every replacement character of the first token (when a
        // prefix was prepended) and turns the others into spaces.
        for (size_t i = 0; i < tokens.size(); ++i) replace_all(tokens[i], s.from, i == 0 && s.prepend ? "" : " ");
        break;
      case Step::WordPiece:
        for (size_t i = 0; i < tokens.size(); ++i) {
          std::string& t = tokens[i];
          if (i != 0) {
            if (!s.from.empty() && t.compare(0, s.from.size(), s.from) == 0)
              t.erase(0, s.from.size());
            else
              t.insert(0, " ");
          }
          if (s.cleanup) cleanup_tokenization(t);
        }
        break;
    }
  }
  std::string out;
  for (const auto& t : tokens) out += t;
  return out;
}

// ---------------------------------------------------------------- JsonPipelineTokenizer

std::vector<std::string_view> vocab_texts_by_id(const json& vocab, const std::string& where) {
  if (!vocab.is_object()) fail(where, "model \"vocab\" must be an object of token: id");
  const size_t n = vocab.size();
  int64_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer()) fail(where, "vocab id of \"{}\" is not an integer", it.key());
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || static_cast<uint64_t>(id) > 4 * n + 1024)
      fail(where, "vocab id {} of \"{}\" is out of range for {} tokens", id, it.key(), n);
    max_id = std::max(max_id, id);
  }
  std::vector<std::string_view> texts(static_cast<size_t>(max_id + 1));
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const std::string& key = it.key();
    texts[it.value().get<size_t>()] = key;  // keys live as long as `vocab`
  }
  return texts;
}

namespace {

// The single-sequence part of a tokenizer.json post-processor: ids before
// and after the text.
struct PostTemplate {
  std::vector<int32_t> prefix, suffix;
};

int32_t pair_id(const json& pair, const char* what, const std::string& where) {
  if (!pair.is_array() || pair.size() != 2 || !pair[1].is_number_integer())
    fail(where, "post_processor \"{}\" must be [token, id]", what);
  const int64_t id = pair[1].get<int64_t>();
  if (id < 0 || id > INT32_MAX) fail(where, "post_processor \"{}\" id {} is out of range", what, id);
  return static_cast<int32_t>(id);
}

void parse_post(const json& j, const std::string& where, PostTemplate& t) {
  if (j.is_null()) return;
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    fail(where, "post_processor must be an object with a \"type\"");
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    const json* subs = find_key(j, "processors");
    if (!subs || !subs->is_array()) fail(where, "Sequence post_processor needs a \"processors\" array");
    for (const json& sub : *subs) parse_post(sub, where, t);
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    const json* cls = find_key(j, "cls");
    const json* sep = find_key(j, "sep");
    if (!cls || !sep) fail(where, "{} needs \"cls\" and \"sep\"", type);
    t.prefix.push_back(pair_id(*cls, "cls", where));
    t.suffix.push_back(pair_id(*sep, "sep", where));
  } else if (type == "TemplateProcessing") {
    const json* single = find_key(j, "single");
    const json* specials = find_key(j, "special_tokens");
    if (!single || !single->is_array()) fail(where, "TemplateProcessing needs a \"single\" array");
    bool after = false;
    for (const json& item : *single) {
      if (const json* seq = find_key(item, "Sequence")) {
        (void)seq;
        after = true;
        continue;
      }
      const json* st = find_key(item, "SpecialToken");
      if (!st || !st->contains("id") || !(*st)["id"].is_string())
        fail(where, "TemplateProcessing item must be a Sequence or a SpecialToken");
      const std::string name = (*st)["id"].get<std::string>();
      const json* entry = specials ? find_key(*specials, name.c_str()) : nullptr;
      const json* ids = entry ? find_key(*entry, "ids") : nullptr;
      if (!ids || !ids->is_array()) fail(where, "TemplateProcessing special token \"{}\" has no ids", name);
      for (const json& id : *ids) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
          fail(where, "TemplateProcessing special token \"{}\" has a bad id", name);
        (after ? t.suffix : t.prefix).push_back(id.get<int32_t>());
      }
    }
  } else if (type != "ByteLevel") {
    fail<UnsupportedError>(where, "unsupported post_processor type \"{}\"", type);
  }
}

// tokenizer_config.json's "bos_token" etc.: a string or {"content": ...}.
std::optional<std::string> config_token(const json& config, const char* key) {
  const json* v = find_key(config, key);
  if (!v) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  if (const json* c = find_key(*v, "content"); c && c->is_string()) return c->get<std::string>();
  return std::nullopt;
}

}  // namespace

struct JsonPipelineTokenizer::Impl {
  std::vector<AddedToken> added;
  std::unordered_map<std::string, int32_t> added_by_text;
  std::unordered_map<int32_t, size_t> added_by_id;  // -> index into `added`
  AddedTokenMatcher matcher;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre;
  PostTemplate post;
  SpmDecoder decoder;
  size_t vocab_size = 0;
};

JsonPipelineTokenizer::JsonPipelineTokenizer() : impl_(std::make_unique<Impl>()) {}
JsonPipelineTokenizer::~JsonPipelineTokenizer() = default;

void JsonPipelineTokenizer::init_pipeline(const json& tj, const json& config, const std::string& where,
                                          const TokenVocab* model_vocab, std::optional<int32_t> model_unk) {
  model_vocab_ = model_vocab;
  Impl& m = *impl_;
  m.added = parse_added_tokens(tj.value("added_tokens", json()), where);
  m.vocab_size = model_vocab->size();
  for (size_t i = 0; i < m.added.size(); ++i) {
    const AddedToken& a = m.added[i];
    m.added_by_text[a.content] = a.id;
    m.added_by_id[a.id] = i;
    m.vocab_size = std::max(m.vocab_size, static_cast<size_t>(a.id) + 1);
  }
  m.matcher = AddedTokenMatcher(m.added);
  m.normalizer = make_spm_normalizer(tj.value("normalizer", json()), where);
  m.pre = make_pre_tokenizer(tj.value("pre_tokenizer", json()), where);
  parse_post(tj.value("post_processor", json()), where, m.post);
  for (int32_t id : m.post.prefix)
    if (static_cast<size_t>(id) >= m.vocab_size) fail(where, "post_processor id {} is outside the vocabulary", id);
  for (int32_t id : m.post.suffix)
    if (static_cast<size_t>(id) >= m.vocab_size) fail(where, "post_processor id {} is outside the vocabulary", id);
  m.decoder = SpmDecoder::from_json(tj.value("decoder", json()), where);

  auto resolve = [&](const char* key, std::optional<int32_t>& slot) {
    if (auto text = config_token(config, key))
      if (auto id = token_id(*text)) slot = *id;
  };
  resolve("bos_token", special_.bos);
  resolve("eos_token", special_.eos);
  resolve("unk_token", special_.unk);
  resolve("pad_token", special_.pad);
  resolve("sep_token", special_.sep);
  resolve("cls_token", special_.cls);
  resolve("mask_token", special_.mask);
  if (!special_.unk) special_.unk = model_unk;
  // BERT-style templates name CLS/SEP even without a config.
  if (!special_.cls && m.post.prefix.size() == 1 && token(m.post.prefix[0]) == "[CLS]") special_.cls = m.post.prefix[0];
  if (!special_.sep && m.post.suffix.size() == 1 && token(m.post.suffix[0]) == "[SEP]") special_.sep = m.post.suffix[0];
  auto contains = [](const std::vector<int32_t>& v, std::optional<int32_t> id) {
    return id && std::find(v.begin(), v.end(), *id) != v.end();
  };
  special_.add_bos = contains(m.post.prefix, special_.bos);
  special_.add_eos = contains(m.post.suffix, special_.eos);

  if (const json* ct = find_key(config, "chat_template")) {
    if (ct->is_string()) {
      chat_template_ = ct->get<std::string>();
    } else if (ct->is_array()) {  // named templates: keep "default", else all of them as JSON
      for (const json& t : *ct)
        if (t.is_object() && t.value("name", "") == "default" && t.contains("template") && t["template"].is_string())
          chat_template_ = t["template"].get<std::string>();
      if (chat_template_.empty()) chat_template_ = ct->dump();
    }
  }
}

std::vector<int32_t> JsonPipelineTokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  const Impl& m = *impl_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special) out.insert(out.end(), m.post.prefix.begin(), m.post.prefix.end());
  std::vector<TextSegment> segments;
  m.matcher.split(text, parse_special, segments);
  PreTokenized pt;
  PreScratch scratch;
  std::string normalized;
  for (const TextSegment& seg : segments) {
    if (seg.id >= 0) {
      out.push_back(seg.id);
      continue;
    }
    normalized.assign(seg.text);
    if (m.normalizer) m.normalizer->apply(normalized);
    pt.reset(normalized, seg.text.data() == text.data());
    if (m.pre) m.pre->apply(pt, scratch);
    pt.unmap_bytes();
    for (size_t i = 0; i < pt.pieces.size(); ++i) encode_word(pt.piece(i), out);
  }
  if (add_special) out.insert(out.end(), m.post.suffix.begin(), m.post.suffix.end());
  return out;
}

std::string JsonPipelineTokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const Impl& m = *impl_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (auto it = m.added_by_id.find(id); it != m.added_by_id.end()) {
      const AddedToken& a = m.added[it->second];
      if (!(skip_special && a.special)) tokens.push_back(a.content);
      continue;
    }
    const std::string_view t = model_vocab_->text(id);
    if (!t.empty()) tokens.emplace_back(t);
  }
  return m.decoder.decode(std::move(tokens));
}

size_t JsonPipelineTokenizer::vocab_size() const { return impl_->vocab_size; }

std::string_view JsonPipelineTokenizer::token(int32_t id) const {
  if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end()) return impl_->added[it->second].content;
  return model_vocab_->text(id);
}

std::optional<int32_t> JsonPipelineTokenizer::token_id(std::string_view token) const {
  if (auto it = impl_->added_by_text.find(std::string(token)); it != impl_->added_by_text.end()) return it->second;
  const int32_t id = model_vocab_->find(token);
  return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
}

// ---------------------------------------------------------------- SPM-style BPE

namespace {

bool json_has_type(const json& j, std::string_view type) {
  if (j.is_object()) {
    if (auto it = j.find("type"); it != j.end() && it->is_string() && it->get<std::string>() == type) return true;
    for (const auto& [k, v] : j.items())
      if (json_has_type(v, type)) return true;
  } else if (j.is_array()) {
    for (const auto& v : j)
      if (json_has_type(v, type)) return true;
  }
  return false;
}

bool json_mentions(const json& j, std::string_view text) {
  if (j.is_string()) return j.get<std::string>().find(text) != std::string::npos;
  if (j.is_object() || j.is_array())
    for (const auto& v : j)
      if (json_mentions(v, text)) return true;
  return false;
}

class JsonSpmTokenizer final : public JsonPipelineTokenizer {
 public:
  JsonSpmTokenizer(const json& tj, const json& config, const std::string& where) {
    const json* model = find_key(tj, "model");
    if (!model || !model->is_object()) fail(where, "tokenizer.json has no \"model\" object");
    const json* vocab = find_key(*model, "vocab");
    if (!vocab) fail(where, "BPE model has no \"vocab\"");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
      if (const json* v = find_key(*model, key); v && !(v->is_string() && v->get<std::string>().empty()))
        fail<UnsupportedError>(where, "SentencePiece-style BPE with \"{}\" is not supported", key);
    vocab_ = TokenVocab(vocab_texts_by_id(*vocab, where));

    RankMerger::Options opt;
    auto flag = [&](const char* key) {
      const json* v = find_key(*model, key);
      return v && v->is_boolean() && v->get<bool>();
    };
    opt.fuse_unk = flag("fuse_unk");
    opt.byte_fallback = flag("byte_fallback");
    opt.ignore_merges = flag("ignore_merges");
    std::optional<int32_t> unk;
    if (const json* u = find_key(*model, "unk_token"); u && u->is_string()) {
      const int32_t id = vocab_.find(u->get<std::string>());
      if (id >= 0) unk = id;
    }
    opt.unk_id = unk.value_or(-1);

    const json* merges = find_key(*model, "merges");
    std::vector<RankMerger::Merge> list;
    if (merges) {
      if (!merges->is_array()) fail(where, "BPE \"merges\" must be an array");
      list.reserve(merges->size());
      std::string joined;
      for (const json& mj : *merges) {
        std::string_view a, b;
        if (mj.is_string()) {  // "a b"
          const std::string& s = mj.get_ref<const std::string&>();
          const size_t sp = s.find(' ');
          if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
            fail(where, "merge \"{}\" is not two tokens separated by one space", s);
          a = std::string_view(s).substr(0, sp);
          b = std::string_view(s).substr(sp + 1);
        } else if (mj.is_array() && mj.size() == 2 && mj[0].is_string() && mj[1].is_string()) {
          a = mj[0].get_ref<const std::string&>();
          b = mj[1].get_ref<const std::string&>();
        } else {
          fail(where, "each merge must be \"a b\" or [a, b]");
        }
        joined.assign(a);
        joined += b;
        const int32_t ia = vocab_.find(a), ib = vocab_.find(b), ij = vocab_.find(joined);
        if (ia < 0 || ib < 0 || ij < 0) fail(where, "merge \"{} {}\" uses a token missing from the vocab", a, b);
        list.push_back({ia, ib, ij});
      }
    }
    merger_ = RankMerger(&vocab_, list, opt);
    init_pipeline(tj, config, where, &vocab_, unk);
  }

  std::string_view type() const override { return "spm"; }

 protected:
  void encode_word(std::string_view word, std::vector<int32_t>& out) const override { merger_.encode_word(word, out); }

 private:
  TokenVocab vocab_;
  RankMerger merger_;
};

}  // namespace

bool is_spm_style_bpe(const json& tj) {
  const json* model = find_key(tj, "model");
  if (!model || string_field(*model, "type", "BPE") != "BPE") return false;
  const json pre = tj.value("pre_tokenizer", json());
  const json dec = tj.value("decoder", json());
  if (json_has_type(pre, "ByteLevel") || json_has_type(dec, "ByteLevel")) return false;
  const json* bf = find_key(*model, "byte_fallback");
  if (bf && bf->is_boolean() && bf->get<bool>()) return true;
  return json_has_type(pre, "Metaspace") || json_has_type(dec, "Metaspace") ||
         json_mentions(tj.value("normalizer", json()), kSpaceMark) || json_mentions(dec, kSpaceMark);
}

std::unique_ptr<Tokenizer> spm_from_json(const json& tj, const json& config, const std::string& where) {
  return std::make_unique<JsonSpmTokenizer>(tj, config, where);
}

}  // namespace kaival::tokenizer
