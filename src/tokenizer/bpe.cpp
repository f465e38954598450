#include "tokenizer/bpe.h"

#include <queue>

#include <fmt/format.h>
#include <xxhash.h>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace kaival::tokenizer {

// ---- StringIdMap ----

void StringIdMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  if (cap > slots_.size()) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{});
    for (const auto& s : old) {
      if (s.id < 0) continue;
      size_t i = s.hash & (cap - 1);
      while (slots_[i].id >= 0) i = (i + 1) & (cap - 1);
      slots_[i] = s;
    }
  }
}

void StringIdMap::grow() { reserve(slots_.empty() ? 8 : slots_.size()); }

void StringIdMap::set(std::string_view key, int32_t id) {
  if ((size_ + 1) * 2 > slots_.size()) grow();
  const uint64_t h = XXH3_64bits(key.data(), key.size());
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.id < 0) {
      s = {h, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(key.size()), id};
      arena_.append(key);
      ++size_;
      return;
    }
    if (s.hash == h && std::string_view(arena_).substr(s.off, s.len) == key) {
      s.id = id;
      return;
    }
  }
}

std::optional<int32_t> StringIdMap::find(std::string_view key) const {
  if (slots_.empty()) return std::nullopt;
  const uint64_t h = XXH3_64bits(key.data(), key.size());
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.id < 0) return std::nullopt;
    if (s.hash == h && s.len == key.size() && std::string_view(arena_).substr(s.off, s.len) == key) return s.id;
  }
}

// ---- BpeModel ----

namespace {
inline uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
inline uint64_t mix(uint64_t k) {  // splitmix64 finaliser
  k ^= k >> 31;
  k *= 0x7fb5d329728ea185ULL;
  k ^= k >> 27;
  k *= 0x81dadef4bc2dd44dULL;
  k ^= k >> 33;
  return k;
}
}  // namespace

BpeModel::BpeModel(const std::vector<std::pair<std::string, int32_t>>& vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions opts,
                   const std::string& where, bool strict)
    : opts_(std::move(opts)) {
  vocab_.reserve(vocab.size());
  for (const auto& [tok, id] : vocab) vocab_.set(tok, id);

  const auto& map = ByteLevelMap::instance();
  raw_vocab_.reserve(vocab.size());
  std::string raw;
  for (const auto& [tok, id] : vocab) {
    raw.clear();
    if (map.decode_append(tok, raw)) raw_vocab_.set(raw, id);
  }
  for (int b = 0; b < 256; ++b) {
    byte_ids_[b] = vocab_.find(map.utf8_of(static_cast<uint8_t>(b))).value_or(-1);
    fallback_ids_[b] = vocab_.find(fmt::format("<0x{:02X}>", b)).value_or(-1);
  }

  size_t cap = 16;
  while (cap < merges.size() * 2) cap <<= 1;
  merges_.assign(cap, MergeSlot{});
  merge_mask_ = cap - 1;
  const size_t prefix_len = opts_.continuing_subword_prefix.size();
  uint32_t rank = 0;
  for (const auto& [a, b] : merges) {
    const auto ia = vocab_.find(a), ib = vocab_.find(b);
    if ((!ia || !ib) && !strict) {
      ++rank;
      continue;
    }
    if (!ia || !ib) fail(where, "merge \"{} {}\" uses a token that is not in the vocabulary", a, b);
    std::string merged = a;
    // With a continuing-subword prefix ("##"), "a ##b" merges to "a" + "b".
    if (prefix_len && b.compare(0, prefix_len, opts_.continuing_subword_prefix) == 0) merged += b.substr(prefix_len);
    else merged += b;
    const auto im = vocab_.find(merged);
    if (!im && !strict) {
      ++rank;
      continue;
    }
    if (!im) fail(where, "merge \"{} {}\" makes \"{}\", which is not in the vocabulary", a, b, merged);
    const uint64_t key = pair_key(*ia, *ib);
    for (uint64_t i = mix(key) & merge_mask_;; i = (i + 1) & merge_mask_) {
      auto& s = merges_[i];
      if (s.key == key || s.key == ~uint64_t{0}) {
        if (s.key != key) ++merge_count_;
        s = {key, rank, *im};  // a repeated pair takes its later rank, as in HF
        break;
      }
    }
    ++rank;
  }
}

inline std::pair<uint32_t, int32_t> BpeModel::lookup(int32_t a, int32_t b) const {
  const uint64_t key = pair_key(a, b);
  for (uint64_t i = mix(key) & merge_mask_;; i = (i + 1) & merge_mask_) {
    const auto& s = merges_[i];
    if (s.key == key) return {s.rank, s.id};
    if (s.key == ~uint64_t{0}) return {kNoRank, -1};
  }
}

void BpeModel::initial_symbols(std::string_view piece, bool bytes, std::vector<int32_t>& syms) const {
  if (bytes) {
    for (unsigned char c : piece) {
      const int32_t id = byte_ids_[c];
      if (id >= 0) syms.push_back(id);
      else if (opts_.unk && !(opts_.fuse_unk && !syms.empty() && syms.back() == *opts_.unk)) syms.push_back(*opts_.unk);
    }
    return;
  }
  const bool affixes = !opts_.continuing_subword_prefix.empty() || !opts_.end_of_word_suffix.empty();
  std::string key;
  for (size_t i = 0; i < piece.size();) {
    const size_t len = std::max<size_t>(1, utf8::valid_len(piece, i) ? utf8::valid_len(piece, i) : utf8::invalid_len(piece, i));
    std::string_view ch = piece.substr(i, len);
    std::optional<int32_t> id;
    if (affixes) {
      key.clear();
      if (i > 0) key += opts_.continuing_subword_prefix;
      key += ch;
      if (i + len == piece.size()) key += opts_.end_of_word_suffix;
      id = vocab_.find(key);
    } else {
      id = vocab_.find(ch);
    }
    i += len;
    if (id) {
      syms.push_back(*id);
      continue;
    }
    if (opts_.byte_fallback) {
      bool all = true;
      for (unsigned char c : ch) all &= fallback_ids_[c] >= 0;
      if (all) {
        for (unsigned char c : ch) syms.push_back(fallback_ids_[c]);
        continue;
      }
    }
    if (opts_.unk && !(opts_.fuse_unk && !syms.empty() && syms.back() == *opts_.unk)) syms.push_back(*opts_.unk);
  }
}

// Repeatedly merges the adjacent pair of lowest rank (leftmost on ties). Short
// words keep the pair ranks in an array; long ones use a heap.
void BpeModel::merge(std::vector<int32_t>& syms) const {
  size_t n = syms.size();
  if (n < 2) return;
  constexpr size_t kShort = 128;
  if (n > kShort) return merge_long(syms);
  uint32_t rank[kShort];
  int32_t result[kShort];
  for (size_t i = 0; i + 1 < n; ++i) std::tie(rank[i], result[i]) = lookup(syms[i], syms[i + 1]);
  while (n > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < n; ++i)
      if (rank[i] < rank[best]) best = i;
    if (rank[best] == kNoRank) break;
    syms[best] = result[best];
    for (size_t i = best + 1; i + 1 < n; ++i) {
      syms[i] = syms[i + 1];
      rank[i] = rank[i + 1];
      result[i] = result[i + 1];
    }
    --n;
    if (best + 1 < n) std::tie(rank[best], result[best]) = lookup(syms[best], syms[best + 1]);
    if (best > 0) std::tie(rank[best - 1], result[best - 1]) = lookup(syms[best - 1], syms[best]);
  }
  syms.resize(n);
}

void BpeModel::merge_long(std::vector<int32_t>& syms) const {
  const size_t n = syms.size();
  std::vector<int32_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  struct Cand {
    uint32_t rank;
    int32_t pos, left, right;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<>> heap;
  auto push = [&](int32_t i) {
    if (i < 0 || next[i] < 0) return;
    const auto [r, id] = lookup(syms[i], syms[next[i]]);
    if (r != kNoRank) heap.push({r, i, syms[i], syms[next[i]]});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(static_cast<int32_t>(i));
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    const int32_t j = next[c.pos];
    if (!alive[c.pos] || j < 0 || syms[c.pos] != c.left || syms[j] != c.right) continue;  // stale
    syms[c.pos] = lookup(c.left, c.right).second;
    alive[j] = false;
    next[c.pos] = next[j];
    if (next[j] >= 0) prev[next[j]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  size_t w = 0;
  for (int32_t i = 0; i >= 0; i = next[i]) syms[w++] = syms[i];
  syms.resize(w);
}

void BpeModel::encode(std::string_view piece, bool bytes, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (opts_.ignore_merges) {
    const auto id = bytes ? raw_vocab_.find(piece) : vocab_.find(piece);
    if (id) {
      out.push_back(*id);
      return;
    }
  }
  const size_t start = out.size();
  // Build and merge the symbols in place at the end of `out`.
  std::vector<int32_t> syms;
  syms.reserve(piece.size());
  initial_symbols(piece, bytes, syms);
  merge(syms);
  out.insert(out.end(), syms.begin(), syms.end());
  (void)start;
}

}  // namespace kaival::tokenizer
