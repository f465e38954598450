#include "tokenizer/unigram.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include "core/error.h"
#include "tokenizer/factories.h"
#include "tokenizer/utf8.h"
#include "tokenizer/wordpiece.h"

namespace kaival::tokenizer {

using json = nlohmann::json;

namespace {
constexpr double kUnkPenalty = 10.0;  // SentencePiece's and HF's unknown-piece penalty
}

UnigramModel::UnigramModel(const TokenVocab* vocab, std::vector<double> scores, Options opt)
    : vocab_(vocab), scores_(std::move(scores)), opt_(opt) {
  const size_t n = vocab_->size();
  scores_.resize(n, 0.0);
  double min_score = std::numeric_limits<double>::infinity();
  for (double s : scores_) min_score = std::min(min_score, s);
  unk_score_ = (n ? min_score : 0.0) - kUnkPenalty;

  // Build the trie level by level from the pieces sorted by text, so every
  // node's children are contiguous and sorted.
  std::vector<int32_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return vocab_->text(a) < vocab_->text(b); });
  nodes_.emplace_back();
  // Work items: (node, depth, [lo, hi) range of `order` sharing the prefix).
  struct Item {
    uint32_t node, depth, lo, hi;
  };
  std::vector<Item> queue{{0, 0, 0, static_cast<uint32_t>(n)}};
  for (size_t q = 0; q < queue.size(); ++q) {
    const Item it = queue[q];
    uint32_t lo = it.lo;
    // Pieces that end exactly at this depth (the last of equal texts wins).
    while (lo < it.hi && vocab_->text(order[lo]).size() == it.depth) nodes_[it.node].id = order[lo++];
    nodes_[it.node].first_edge = static_cast<uint32_t>(edges_.size());
    for (uint32_t a = lo; a < it.hi;) {
      const auto b = static_cast<uint8_t>(vocab_->text(order[a])[it.depth]);
      uint32_t z = a + 1;
      while (z < it.hi && static_cast<uint8_t>(vocab_->text(order[z])[it.depth]) == b) ++z;
      const auto child = static_cast<uint32_t>(nodes_.size());
      nodes_.emplace_back();
      edges_.push_back({b, child});
      queue.push_back({child, it.depth + 1, a, z});
      a = z;
    }
    nodes_[it.node].n_edges = static_cast<uint32_t>(edges_.size()) - nodes_[it.node].first_edge;
  }
  for (int b = 0; b < 256; ++b) byte_ids_[b] = vocab_->find(byte_piece(static_cast<uint8_t>(b)));
}

int32_t UnigramModel::child(const Node& n, uint8_t b) const {
  const Edge* first = edges_.data() + n.first_edge;
  const Edge* last = first + n.n_edges;
  const Edge* e = std::lower_bound(first, last, b, [](const Edge& x, uint8_t v) { return x.byte < v; });
  return e != last && e->byte == b ? static_cast<int32_t>(e->child) : -1;
}

void UnigramModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  const size_t size = word.size();
  if (size == 0) return;
  struct Best {
    double score = 0;
    int32_t id = -1;
    int32_t start = -1;  // -1: no path reaches this position yet
  };
  std::vector<Best> best(size + 1);
  best[0].start = 0;
  for (size_t start = 0; start < size;) {
    const size_t char_len = utf8_char_len(word, start);
    const double base = best[start].score;
    bool has_single = false;
    int32_t node = 0;
    for (size_t k = start; k < size; ++k) {
      node = child(nodes_[node], static_cast<uint8_t>(word[k]));
      if (node < 0) break;
      const int32_t id = nodes_[node].id;
      if (id < 0) continue;
      Best& target = best[k + 1];
      const double cand = base + scores_[id];
      if (target.start < 0 || cand > target.score) target = {cand, id, static_cast<int32_t>(start)};
      if (k + 1 - start == char_len) has_single = true;
    }
    if (!has_single) {
      Best& target = best[start + char_len];
      const double cand = base + unk_score_;
      if (target.start < 0 || cand > target.score) target = {cand, opt_.unk_id, static_cast<int32_t>(start)};
    }
    start += char_len;
  }

  // Walk back; adjacent unknown pieces fuse into one.
  struct Piece {
    uint32_t begin, end;
    int32_t id;
  };
  std::vector<Piece> pieces;
  for (size_t end = size; end > 0;) {
    const Best& b = best[end];
    const auto begin = static_cast<uint32_t>(b.start);
    const bool unk = b.id == opt_.unk_id;
    if (unk && !pieces.empty() && pieces.back().id == opt_.unk_id && pieces.back().begin == end)
      pieces.back().begin = begin;
    else
      pieces.push_back({begin, static_cast<uint32_t>(end), b.id});
    end = begin;
  }
  for (auto it = pieces.rbegin(); it != pieces.rend(); ++it) {
    const std::string_view text = word.substr(it->begin, it->end - it->begin);
    if (it->id != opt_.unk_id || it->id < 0) {
      if (it->id >= 0) out.push_back(it->id);
      continue;
    }
    // An unknown piece: the piece's own token if its text is one (e.g. the
    // unk token written out), else its bytes, else unk.
    const int32_t id = vocab_->find(text);
    if (id >= 0) {
      out.push_back(id);
      continue;
    }
    bool bytes = opt_.byte_fallback;
    for (char c : text) bytes = bytes && byte_ids_[static_cast<uint8_t>(c)] >= 0;
    if (bytes) {
      for (char c : text) out.push_back(byte_ids_[static_cast<uint8_t>(c)]);
    } else {
      out.push_back(opt_.unk_id);
    }
  }
}

// ---------------------------------------------------------------- Precompiled

namespace {

std::string base64_decode(std::string_view in, const std::string& where) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) fail(where, "precompiled_charsmap is not valid base64");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

class SequenceOfNormalizers final : public Normalizer {
 public:
  explicit SequenceOfNormalizers(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void apply(std::string& text) const override {
    for (const auto& p : parts_) p->apply(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

// Normalizers this family implements itself (the rest come from normalize.h).
bool is_own_type(const json& j) {
  if (!j.is_object()) return false;
  const std::string type = j.value("type", "");
  if (type == "Precompiled" || type == "BertNormalizer") return true;
  if (auto it = j.find("normalizers"); it != j.end() && it->is_array())
    for (const json& sub : *it)
      if (is_own_type(sub)) return true;
  return false;
}

bool json_bool(const json& j, const char* key, bool dflt) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : dflt;
}

}  // namespace

PrecompiledNormalizer::PrecompiledNormalizer(std::string_view map, const std::string& where) {
  if (map.size() < 4) fail(where, "precompiled_charsmap is too short");
  const uint32_t trie_size = static_cast<uint8_t>(map[0]) | static_cast<uint8_t>(map[1]) << 8 |
                             static_cast<uint8_t>(map[2]) << 16 | static_cast<uint32_t>(static_cast<uint8_t>(map[3])) << 24;
  const size_t n_units = trie_size / 4;
  if (n_units == 0 || n_units > (map.size() - 4) / 4)
    fail(where, "precompiled_charsmap trie of {} bytes does not fit in {} bytes", trie_size, map.size());
  units_.resize(n_units);
  for (size_t i = 0; i < n_units; ++i) {
    const char* p = map.data() + 4 + 4 * i;
    units_[i] = static_cast<uint8_t>(p[0]) | static_cast<uint8_t>(p[1]) << 8 | static_cast<uint8_t>(p[2]) << 16 |
                static_cast<uint32_t>(static_cast<uint8_t>(p[3])) << 24;
  }
  replacements_.assign(map.substr(4 + 4 * n_units));
  if (!utf8::is_valid(replacements_)) fail(where, "precompiled_charsmap replacements are not valid UTF-8");
}

std::optional<std::string_view> PrecompiledNormalizer::transform(std::string_view s) const {
  // darts-clone unit layout: label in bits 0-7 (bit 31 set for leaves),
  // has-leaf flag in bit 8, offset in bits 10-31 (scaled by bit 9).
  auto offset = [](uint32_t u) -> size_t { return static_cast<size_t>(u >> 10) << ((u & (1u << 9)) >> 6); };
  size_t pos = offset(units_[0]);
  for (char ch : s) {
    const auto c = static_cast<uint8_t>(ch);
    if (c == 0) break;
    pos ^= c;
    if (pos >= units_.size()) break;
    const uint32_t unit = units_[pos];
    if ((unit & ((1u << 31) | 0xFF)) != c) break;
    pos ^= offset(unit);
    if (pos >= units_.size()) break;
    if ((unit >> 8) & 1) {  // the first (shortest) match wins
      const size_t at = units_[pos] & ((1u << 31) - 1);
      if (at > replacements_.size()) return std::nullopt;
      const size_t end = replacements_.find('\0', at);
      return std::string_view(replacements_).substr(at, (end == std::string::npos ? replacements_.size() : end) - at);
    }
  }
  return std::nullopt;
}

void PrecompiledNormalizer::apply(std::string& text) const {
  if (!utf8::is_valid(text)) text = utf8::lossy(text);
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  utf8proc_int32_t state = 0, prev = -1;
  size_t g = 0;  // start of the current grapheme cluster
  auto flush = [&](size_t end) {
    const std::string_view cluster = std::string_view(text).substr(g, end - g);
    if (cluster.empty()) return;
    if (cluster.size() < 6)
      if (auto r = transform(cluster)) {
        out += *r;
        return;
      }
    for (size_t i = 0; i < cluster.size();) {
      const size_t n = utf8::valid_len(cluster, i);
      const std::string_view ch = cluster.substr(i, n);
      if (auto r = transform(ch))
        out += *r;
      else
        out += ch;
      i += n;
    }
  };
  for (size_t i = 0; i < text.size();) {
    const auto d = utf8::decode(text, i);
    const auto cp = static_cast<utf8proc_int32_t>(d.cp);
    if (prev >= 0 && utf8proc_grapheme_break_stateful(prev, cp, &state)) {
      flush(i);
      g = i;
    }
    prev = cp;
    i += d.len;
  }
  flush(text.size());
  text = std::move(out);
}

std::unique_ptr<Normalizer> make_spm_normalizer(const json& j, const std::string& where) {
  if (!is_own_type(j)) return make_normalizer(j, where);
  if (j.value("type", "") == "BertNormalizer") {
    const bool lower = json_bool(j, "lowercase", true);
    return make_bert_normalizer(json_bool(j, "clean_text", true), json_bool(j, "handle_chinese_chars", true),
                                json_bool(j, "strip_accents", lower), lower);  // null: follow lowercase
  }
  if (j.value("type", "") == "Precompiled") {
    const auto it = j.find("precompiled_charsmap");
    if (it == j.end() || it->is_null() || (it->is_string() && it->get_ref<const std::string&>().empty()))
      return nullptr;  // no rules: nothing to do
    if (!it->is_string()) fail(where, "precompiled_charsmap must be a base64 string");
    return std::make_unique<PrecompiledNormalizer>(base64_decode(it->get_ref<const std::string&>(), where), where);
  }
  std::vector<std::unique_ptr<Normalizer>> parts;
  for (const json& sub : j.at("normalizers"))
    if (auto n = make_spm_normalizer(sub, where)) parts.push_back(std::move(n));
  return std::make_unique<SequenceOfNormalizers>(std::move(parts));
}

namespace {

class JsonUnigramTokenizer final : public JsonPipelineTokenizer {
 public:
  JsonUnigramTokenizer(const json& tj, const json& config, const std::string& where) {
    const json& model = tj.at("model");
    const auto vocab = model.find("vocab");
    if (vocab == model.end() || !vocab->is_array()) fail(where, "Unigram model needs a \"vocab\" array");
    std::vector<std::string_view> texts;
    std::vector<double> scores;
    texts.reserve(vocab->size());
    scores.reserve(vocab->size());
    for (const json& e : *vocab) {
      if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number())
        fail(where, "Unigram vocab entries must be [piece, score]");
      texts.push_back(e[0].get_ref<const std::string&>());
      const double s = e[1].get<double>();
      if (!std::isfinite(s)) fail(where, "Unigram score of \"{}\" is not finite", texts.back());
      scores.push_back(s);
    }
    vocab_ = TokenVocab(texts);
    UnigramModel::Options opt;
    std::optional<int32_t> unk;
    if (auto u = model.find("unk_id"); u != model.end() && !u->is_null()) {
      if (!u->is_number_integer() || u->get<int64_t>() < 0 || u->get<uint64_t>() >= texts.size())
        fail(where, "Unigram unk_id is outside the vocab of {} pieces", texts.size());
      unk = u->get<int32_t>();
    }
    opt.unk_id = unk.value_or(-1);
    if (auto b = model.find("byte_fallback"); b != model.end() && b->is_boolean()) opt.byte_fallback = b->get<bool>();
    model_ = UnigramModel(&vocab_, std::move(scores), opt);
    init_pipeline(tj, config, where, &vocab_, unk);
  }
  std::string_view type() const override { return "unigram"; }

 protected:
  void encode_word(std::string_view word, std::vector<int32_t>& out) const override { model_.encode_word(word, out); }

 private:
  TokenVocab vocab_;
  UnigramModel model_;
};

}  // namespace

std::unique_ptr<Tokenizer> unigram_from_json(const json& tj, const json& config, const std::string& where) {
  if (!tj.is_object() || !tj.contains("model") || !tj["model"].is_object())
    fail(where, "tokenizer.json has no \"model\" object");
  return std::make_unique<JsonUnigramTokenizer>(tj, config, where);
}

}  // namespace kaival::tokenizer
